-- Algorithm and dataset records of workspaces, and which computations link them. `assets` is written by
-- the `assets` projection; `computation_assets` by the `computations` projection, from the asset ids
-- its algorithm and datasets carry. Neither holds a sample's bytes: those are kept beside the log.

CREATE TABLE assets (
    id                  uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL,
    -- The user who registered it, who alone changes it.
    owner_id            uuid NOT NULL,
    -- `algorithm` or `dataset`.
    kind                text NOT NULL,
    -- How the agent runs an algorithm (`python`, `bin`, `wasm`, `docker`); NULL for a dataset.
    algorithm_type      text,
    mime_type           text NOT NULL,
    sha3_256            text NOT NULL,
    file_name           text NOT NULL,
    description         text NOT NULL,
    -- `active` or `archived`.
    status              text NOT NULL,
    -- The sample the platform keeps, when there is one: SHA-256 of its bytes, their size and type.
    sample_sha256       text,
    sample_size         bigint,
    sample_mime_type    text,
    sample_attached_at  timestamptz,
    created_by          text NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    version             bigint NOT NULL
);

-- A workspace's assets in creation order (ids are UUIDv7), filtered by kind or owner.
CREATE INDEX assets_by_workspace ON assets (workspace_id, id);
CREATE INDEX assets_by_owner ON assets (workspace_id, owner_id, id);

CREATE TABLE computation_assets (
    computation_id  uuid NOT NULL REFERENCES computations (id) ON DELETE CASCADE,
    asset_id        uuid NOT NULL,
    -- As the computation took it: its `algorithm` or one of its datasets.
    kind            text NOT NULL,
    PRIMARY KEY (computation_id, asset_id)
);

-- "Which computations link this asset?"
CREATE INDEX computation_assets_by_asset ON computation_assets (asset_id);

-- No change notifications: these rows are read from the database, never from the in-memory views (a
-- computation's view shows its linked assets through its algorithm and datasets, which are announced).
