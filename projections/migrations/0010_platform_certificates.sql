-- The renewal sweep looks for active lineages whose newest certificate ends soon.
CREATE INDEX certificates_due ON certificates (not_after) WHERE status = 'active';

-- The platform's own certificates (its API server, its agent channel) belong to no workspace.
ALTER TABLE certificates ALTER COLUMN workspace_id DROP NOT NULL;
ALTER TABLE certificate_serials ALTER COLUMN workspace_id DROP NOT NULL;
