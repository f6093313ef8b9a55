-- Reactions that workers gave up on, and what became of them: the operator's view of failures that
-- need attention (`GET /operations/reactions`, `prism reactions list`).

CREATE TABLE reactions (
    -- The aggregate id: `<worker>-<event id>`.
    id               text PRIMARY KEY,
    worker           text NOT NULL,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    stream_sequence  bigint NOT NULL,
    attempts         bigint NOT NULL,
    error            text NOT NULL,
    -- `failed`, `retry_requested` or `resolved`.
    status           text NOT NULL,
    failed_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint NOT NULL
);

CREATE INDEX reactions_by_status ON reactions (status, failed_at DESC);
