-- Certificates the platform's authority issued. Written by the `certificates` projection. Keys are
-- never here (the authority keeps those it generated, sealed, in its key store).

-- One row per lineage: a certificate and its renewals for one entity, profile and key.
CREATE TABLE certificates (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL,
    entity_kind     text NOT NULL,
    entity_id       text NOT NULL,
    profile         text NOT NULL,
    common_name     text NOT NULL,
    -- The subject's alternative names, as the event has them.
    subject         jsonb NOT NULL,
    -- `authority` (the platform generated and keeps the key) or `holder` (signed from a CSR).
    key_custody     text NOT NULL,
    status          text NOT NULL CHECK (status IN ('active', 'revoked', 'expired')),
    current_serial  text NOT NULL,
    not_after       timestamptz NOT NULL,
    revoked_at      timestamptz,
    reason          text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL
);

-- "The certificates of this entity", newest first.
CREATE INDEX certificates_by_entity ON certificates (workspace_id, entity_id, created_at DESC);
-- Keyset pagination within a workspace (ids are UUIDv7).
CREATE INDEX certificates_by_workspace ON certificates (workspace_id, id);

-- One row per certificate (serial) of every lineage: what OCSP, the CRL and lookups by serial read.
CREATE TABLE certificate_serials (
    -- Lowercase hexadecimal, as `Serial` writes it.
    serial          text PRIMARY KEY,
    certificate_id  uuid NOT NULL REFERENCES certificates (id) ON DELETE CASCADE,
    workspace_id    uuid NOT NULL,
    not_before      timestamptz NOT NULL,
    not_after       timestamptz NOT NULL,
    certificate     text NOT NULL,
    revoked_at      timestamptz,
    -- RFC 5280 `CRLReason` code.
    reason_code     smallint,
    -- Stream sequence of the revocation: the CRL is numbered by the newest one.
    revoked_sequence bigint
);

CREATE INDEX certificate_serials_revoked ON certificate_serials (revoked_sequence) WHERE revoked_sequence IS NOT NULL;
