-- Who belongs to which workspace, with which roles; the invitations sent; and the workspaces' custom
-- roles. Written by the `workspaces` projection from the workspace's membership events. Invitation
-- tokens are not kept here (the event log has their hashes; nobody needs them in a read model).

CREATE TABLE workspace_members (
    workspace_id  uuid NOT NULL,
    user_id       uuid NOT NULL,
    role          text NOT NULL,
    custom_roles  text[] NOT NULL DEFAULT '{}',
    since         timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);

-- "Which workspaces does this user belong to?"
CREATE INDEX workspace_members_by_user ON workspace_members (user_id, workspace_id);

CREATE TABLE workspace_invitations (
    id             uuid PRIMARY KEY,
    workspace_id   uuid NOT NULL,
    -- Exactly one of the two: a registered user, or an address that may register later.
    invitee_user   uuid,
    invitee_email  text,
    role           text NOT NULL,
    custom_roles   text[] NOT NULL DEFAULT '{}',
    status         text NOT NULL,
    expires_at     timestamptz NOT NULL,
    invited_by     text NOT NULL,
    invited_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    CHECK ((invitee_user IS NULL) <> (invitee_email IS NULL))
);

CREATE INDEX workspace_invitations_by_workspace ON workspace_invitations (workspace_id, id);
CREATE INDEX workspace_invitations_by_user ON workspace_invitations (invitee_user) WHERE invitee_user IS NOT NULL;
CREATE INDEX workspace_invitations_by_email ON workspace_invitations (invitee_email) WHERE invitee_email IS NOT NULL;

CREATE TABLE workspace_roles (
    workspace_id  uuid NOT NULL,
    name          text NOT NULL,
    permissions   text[] NOT NULL,
    defined_at    timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, name)
);
