-- Commits a reader did not apply because they failed verification (a rewritten, misplaced or
-- mis-chained event) or could not be held by the read model. Recorded in the same transaction as the
-- checkpoint that moves past them, so a quarantined commit is never silently skipped.

CREATE TABLE quarantine (
    -- The projection (or worker) that refused it.
    reader       text NOT NULL,
    sequence     bigint NOT NULL,
    subject      text NOT NULL,
    event_ids    text[] NOT NULL,
    reason       text NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (reader, sequence)
);
