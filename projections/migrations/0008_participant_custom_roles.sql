-- Custom roles granted to a participant on one computation (named custom roles of its workspace).
ALTER TABLE participants ADD COLUMN custom_roles text[] NOT NULL DEFAULT '{}';
