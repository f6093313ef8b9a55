-- Personal API keys. Written by the `api_keys` projection. The hash of a key's secret is not kept here
-- (the event log has it; authentication reads it from the aggregate).

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    owner         uuid NOT NULL,
    workspace_id  uuid NOT NULL,
    name          text NOT NULL,
    permissions   text[] NOT NULL,
    -- `active` or `revoked`; an active key past `expires_at` no longer authenticates either.
    status        text NOT NULL CHECK (status IN ('active', 'revoked')),
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    version       bigint NOT NULL
);

-- "Which keys does this user own?"
CREATE INDEX api_keys_by_owner ON api_keys (owner, created_at, id);

-- Change notifications (see 0003_change_notifications).
CREATE TRIGGER announce_api_key_row AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION prism_announce_row('api_keys');
CREATE TRIGGER announce_api_key_truncate AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION prism_announce_truncate('api_keys');
