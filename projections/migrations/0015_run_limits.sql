-- Each computation's run limit (`limits.max_run_seconds` of its definition). Computations defined
-- before computations set their own had the one-hour default, which is what the column starts with.
ALTER TABLE computations ADD COLUMN max_run_seconds bigint NOT NULL DEFAULT 3600;
