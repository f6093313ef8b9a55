-- What happened in each run and on its CVM, for the events and logs of a computation and of a run.
-- `run_activity` is written by the `run_activity` projection, `cvm_activity` and `cvm_activity_machines`
-- by `cvm_activity`: each projection owns its tables, so each rebuilds alone.

-- One row per event of a run.
CREATE TABLE run_activity (
    -- The stream sequence of the event's commit, and the run's version after it: together, the log's order.
    sequence        bigint NOT NULL,
    version         bigint NOT NULL,
    event_id        text NOT NULL,
    run_id          uuid NOT NULL,
    workspace_id    uuid NOT NULL,
    computation_id  uuid NOT NULL,
    -- The event's name (`requested`, `attested`, …) and its CloudEvents type.
    event           text NOT NULL,
    type            text NOT NULL,
    -- `user`, `platform`, `manager` or `agent`: see `docs/audit.md`.
    originator      text NOT NULL,
    actor           text NOT NULL,
    -- The run's state after the event.
    status          text NOT NULL,
    time            timestamptz NOT NULL,
    details         jsonb NOT NULL,
    PRIMARY KEY (sequence, version)
);

CREATE INDEX run_activity_by_run ON run_activity (run_id, sequence);
CREATE INDEX run_activity_by_computation ON run_activity (computation_id, sequence);

-- One row per event of a CVM made for a run; a log line of its agent also has its level and message.
CREATE TABLE cvm_activity (
    sequence        bigint NOT NULL,
    version         bigint NOT NULL,
    event_id        text NOT NULL,
    cvm_id          uuid NOT NULL,
    run_id          uuid NOT NULL,
    workspace_id    uuid NOT NULL,
    event           text NOT NULL,
    type            text NOT NULL,
    originator      text NOT NULL,
    actor           text NOT NULL,
    -- The CVM's state after the event.
    status          text NOT NULL,
    time            timestamptz NOT NULL,
    details         jsonb NOT NULL,
    log_level       text,
    log_message     text,
    PRIMARY KEY (sequence, version)
);

CREATE INDEX cvm_activity_by_run ON cvm_activity (run_id, sequence);
CREATE INDEX cvm_activity_log_lines ON cvm_activity (run_id, sequence) WHERE log_level IS NOT NULL;

-- The CVMs made for runs, with their state as of their last event.
CREATE TABLE cvm_activity_machines (
    cvm_id          uuid PRIMARY KEY,
    run_id          uuid NOT NULL,
    workspace_id    uuid NOT NULL,
    status          text NOT NULL
);
