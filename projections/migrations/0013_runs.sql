-- Runs of computations. Written by the `runs` projection.

CREATE TABLE runs (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL,
    computation_id  uuid NOT NULL,
    -- SHA-256 (hex) of the manifest the run executes.
    manifest_id     text NOT NULL,
    -- Where the run is, as `RunStatus` writes it. No CHECK: the state machine may grow states, and the
    -- projection takes them from it.
    status          text NOT NULL,
    -- The CVM made for it, once provisioning has started.
    cvm_id          uuid,
    requested_by    text NOT NULL,
    requested_at    timestamptz NOT NULL,
    -- When it times out if it has not ended by then.
    deadline        timestamptz NOT NULL,
    -- Once its result is ready: until when its consumers may fetch it.
    fetch_until     timestamptz,
    -- In which state it was stopped, failed or timed out, and why.
    ending_during   text,
    ending_reason   text,
    -- When it completed, was asked to stop, failed or timed out.
    ended_at        timestamptz,
    closed_at       timestamptz,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL
);

-- A workspace's runs and a computation's runs, newest first; "which run is this CVM for?".
CREATE INDEX runs_by_workspace ON runs (workspace_id, requested_at DESC);
CREATE INDEX runs_by_computation ON runs (computation_id, requested_at DESC);
CREATE INDEX runs_by_cvm ON runs (cvm_id);

-- No change notifications: these rows are read from the database, never from the in-memory views.
