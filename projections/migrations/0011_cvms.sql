-- Backends and the CVMs made on them. Written by the `backends` and `cvms` projections.

CREATE TABLE backends (
    id             uuid PRIMARY KEY,
    -- NULL: a backend of the whole platform, usable by every workspace.
    workspace_id   uuid,
    name           text NOT NULL,
    -- `local`, `cocos_manager` or `byo`.
    kind           text NOT NULL,
    -- The settings as the latest event has them (driver, platforms, capacity, labels, price).
    settings       jsonb NOT NULL,
    healthy        boolean NOT NULL,
    health_detail  text NOT NULL DEFAULT '',
    status         text NOT NULL CHECK (status IN ('active', 'removed')),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL
);

-- "Which backends may this workspace use?"
CREATE INDEX backends_by_workspace ON backends (workspace_id, id);

CREATE TABLE cvms (
    id                  uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL,
    -- What was asked, as the request has it.
    spec                jsonb NOT NULL,
    provider            text NOT NULL,
    platform            text NOT NULL,
    vcpus               integer NOT NULL,
    memory_mib          bigint NOT NULL,
    status              text NOT NULL CHECK (status IN
                            ('creating', 'starting', 'online', 'offline', 'destroying', 'destroyed', 'failed')),
    backend_id          uuid,
    -- Why that backend (the placement's reason, as recorded).
    backend_reason      text,
    hourly_cost_micros  bigint,
    backend_ref         text,
    agent_address       text,
    requested_by        text NOT NULL,
    requested_at        timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    started_at          timestamptz,
    online_since        timestamptz,
    -- Seconds online before the current connection (uptime = this + now − online_since).
    online_seconds      bigint NOT NULL DEFAULT 0,
    disconnections      integer NOT NULL DEFAULT 0,
    last_heard_at       timestamptz,
    messages_received   bigint NOT NULL DEFAULT 0,
    -- The agent's latest answer to a state request.
    agent_state         text,
    destroy_reason      text,
    destroy_requested_at timestamptz,
    destroyed_at        timestamptz,
    failure             text,
    -- What the backend reports about the machine (CVMInfo, attestation policy).
    description         jsonb,
    updated_at          timestamptz NOT NULL,
    version             bigint NOT NULL
);

-- Lists per workspace, the reaper's "which are overdue?", and per-backend load.
CREATE INDEX cvms_by_workspace ON cvms (workspace_id, id);
CREATE INDEX cvms_live_by_expiry ON cvms (expires_at)
    WHERE status IN ('creating', 'starting', 'online', 'offline');
CREATE INDEX cvms_live_by_backend ON cvms (backend_id)
    WHERE status IN ('creating', 'starting', 'online', 'offline', 'destroying');

-- No change notifications: these rows are read from the database, never from the in-memory views,
-- and a CVM's row changes with every message of its agent.
