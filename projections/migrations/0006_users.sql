-- User accounts and the OpenID Connect identities linked to them. Written by the `users` projection.
-- Credentials are not kept here: no password hash, no verification or reset token hash (the event log
-- has them; the application reads them from the aggregate when it checks a credential). A read model
-- only says whether the user has a password.

CREATE TABLE users (
    -- Derived from the normalised e-mail address (`UserId::for_email`).
    id               uuid PRIMARY KEY,
    -- Normalised (trimmed, lowercase).
    email            text NOT NULL UNIQUE,
    display_name     text NOT NULL,
    status           text NOT NULL CHECK (status IN ('active', 'disabled')),
    email_verified   boolean NOT NULL,
    platform_admin   boolean NOT NULL,
    -- False for a user who signs in only through OpenID Connect.
    has_password     boolean NOT NULL,
    -- No sign-in is accepted before this (a lockout after too many wrong passwords).
    locked_until     timestamptz,
    last_sign_in_at  timestamptz,
    version          bigint NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

-- "Which user signs in with this OpenID Connect identity?" A subject is unique within its issuer; the
-- first user to link an identity keeps it.
CREATE TABLE user_identities (
    user_id    uuid NOT NULL,
    issuer     text NOT NULL,
    subject    text NOT NULL,
    linked_at  timestamptz NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX user_identities_by_user ON user_identities (user_id);

-- Change notifications (see 0003_change_notifications): a user's view is its row and its identities.
CREATE FUNCTION prism_announce_user_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('prism_read_models', 'row users ' || OLD.user_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        PERFORM pg_notify('prism_read_models', 'row users ' || NEW.user_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER announce_user_row AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION prism_announce_row('users');
CREATE TRIGGER announce_user_identity_row AFTER INSERT OR UPDATE OR DELETE ON user_identities
    FOR EACH ROW EXECUTE FUNCTION prism_announce_user_identity();
CREATE TRIGGER announce_user_truncate AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION prism_announce_truncate('users');
CREATE TRIGGER announce_user_identity_truncate AFTER TRUNCATE ON user_identities
    FOR EACH STATEMENT EXECUTE FUNCTION prism_announce_truncate('users');
