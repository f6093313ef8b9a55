-- Attestation verdicts of CVMs' evidence. Written by the `cvms` projection.

ALTER TABLE cvms
    -- The latest verdict's outcome: `verified`, `accepted_insecure` or `refused`.
    ADD COLUMN attestation_outcome text,
    ADD COLUMN attested_at timestamptz;

CREATE TABLE cvm_attestations (
    cvm_id                uuid NOT NULL,
    -- The CVM's aggregate version of the `attestation_appraised` event.
    version               bigint NOT NULL,
    workspace_id          uuid NOT NULL,
    outcome               text NOT NULL CHECK (outcome IN ('verified', 'accepted_insecure', 'refused')),
    platform              text NOT NULL,
    -- The nonce answered; NULL for the agent's start-up report.
    nonce                 text,
    evidence_sha256       text NOT NULL,
    policy_sha256         text NOT NULL,
    policy_source         jsonb NOT NULL,
    -- The whole event: evidence, expectations, policy, verdict and EAR, for offline re-verification.
    appraisal             jsonb NOT NULL,
    appraised_at          timestamptz NOT NULL,
    PRIMARY KEY (cvm_id, version)
);

-- "The workspace's refused attestations, newest first."
CREATE INDEX cvm_attestations_by_workspace ON cvm_attestations (workspace_id, appraised_at DESC);
