-- The renewal sweep looks for active lineages whose newest certificate ends soon.
CREATE INDEX certificates_due ON certificates (not_after) WHERE status = 'active';
