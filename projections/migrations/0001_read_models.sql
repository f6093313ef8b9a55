-- Read models for workspaces, computations and their participants, and the checkpoints that say how far
-- each projection has read the event log. A projection writes its rows and its checkpoint in one
-- transaction, so a crash can never apply an event twice or skip one.

CREATE TABLE projection_checkpoints (
    name        text PRIMARY KEY,
    -- Stream sequence of the last commit applied (0: nothing yet).
    sequence    bigint NOT NULL DEFAULT 0,
    -- Bumped by a rebuild, so a projector still running on the old generation stops and restarts.
    generation  bigint NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspaces (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    description  text NOT NULL,
    status       text NOT NULL,
    version      bigint NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

CREATE TABLE computations (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL,
    name          text NOT NULL,
    description   text NOT NULL,
    status        text NOT NULL,
    algorithm     jsonb,
    datasets      jsonb NOT NULL,
    version       bigint NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- Keyset pagination within a workspace (ids are UUIDv7, so id order is creation order).
CREATE INDEX computations_by_workspace ON computations (workspace_id, id);

CREATE TABLE participants (
    computation_id  uuid NOT NULL REFERENCES computations (id) ON DELETE CASCADE,
    participant_id  text NOT NULL,
    -- Order of the participant in the definition, to give the list back as it was defined.
    position        integer NOT NULL,
    roles           text[] NOT NULL,
    public_key      text,
    PRIMARY KEY (computation_id, participant_id)
);

-- "Which computations does this participant take part in?"
CREATE INDEX participants_by_participant ON participants (participant_id);
