-- Security events: what a workspace's administrators (and the platform's) review. Three projections,
-- each owning its table, so that each rebuilds alone; queries read them together.

-- Refused requests (`io.prism.access.denied.v1`): of a workspace when the resource was in it, of the
-- platform otherwise (a failed sign-in of an unknown account, a refused client certificate).
CREATE TABLE security_denials (
    sequence      bigint NOT NULL,
    version       bigint NOT NULL,
    event_id      text NOT NULL,
    type          text NOT NULL,
    workspace_id  uuid,
    -- The denial's reason: `missing_permission`, `not_visible`, `invalid_credentials`,
    -- `certificate_refused`, `sign_in_failed`, `throttled`, `unauthenticated`.
    kind          text NOT NULL,
    actor         text NOT NULL,
    -- What was asked for.
    subject       text NOT NULL,
    detail        text NOT NULL,
    source        text,
    time          timestamptz NOT NULL,
    PRIMARY KEY (sequence, version)
);

CREATE INDEX security_denials_by_workspace ON security_denials (workspace_id, sequence);

-- Failed sign-ins and lock-outs of an account (its workspaces are those it is a member of).
CREATE TABLE security_sign_ins (
    sequence      bigint NOT NULL,
    version       bigint NOT NULL,
    event_id      text NOT NULL,
    type          text NOT NULL,
    user_id       uuid NOT NULL,
    -- `sign_in_failed` or `locked_out`.
    kind          text NOT NULL,
    actor         text NOT NULL,
    subject       text NOT NULL,
    detail        text NOT NULL,
    source        text,
    time          timestamptz NOT NULL,
    PRIMARY KEY (sequence, version)
);

CREATE INDEX security_sign_ins_by_user ON security_sign_ins (user_id, sequence);

-- Refused attestations of a workspace's CVMs.
CREATE TABLE security_attestations (
    sequence      bigint NOT NULL,
    version       bigint NOT NULL,
    event_id      text NOT NULL,
    type          text NOT NULL,
    workspace_id  uuid NOT NULL,
    -- `attestation_refused`.
    kind          text NOT NULL,
    actor         text NOT NULL,
    subject       text NOT NULL,
    detail        text NOT NULL,
    source        text,
    time          timestamptz NOT NULL,
    PRIMARY KEY (sequence, version)
);

CREATE INDEX security_attestations_by_workspace ON security_attestations (workspace_id, sequence);

-- Which workspace each CVM is of, for the attestations above.
CREATE TABLE security_cvm_workspaces (
    cvm_id        uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL
);
