-- Every change to a read model and every checkpoint move is announced on the channel
-- `prism_read_models`, so that a process can keep read models in memory and wait for a checkpoint
-- without polling. PostgreSQL delivers a notification only once its transaction has committed, in the
-- order the transactions committed, and the notifications of one transaction in the order they were
-- sent; a projector changes its rows before it moves its checkpoint, so a listener has seen every
-- change of a commit before it sees the checkpoint that covers it. Identical notifications of one
-- transaction are delivered once.
--
-- Payloads (space-separated; the last field may contain spaces):
--   checkpoint <generation> <sequence> <projection>   a checkpoint row was created or moved
--   row <model> <uuid>                                 a row of that model changed (any statement)
--   truncate <model>                                   every row of that model is gone

CREATE FUNCTION prism_announce_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('prism_read_models',
                      'checkpoint ' || NEW.generation || ' ' || NEW.sequence || ' ' || NEW.name);
    RETURN NULL;
END
$$;

CREATE TRIGGER announce_checkpoint_created AFTER INSERT ON projection_checkpoints
    FOR EACH ROW EXECUTE FUNCTION prism_announce_checkpoint();

-- A projector writes its checkpoint after every batch, also when another projector had applied the
-- batch already; only a real move is announced.
CREATE TRIGGER announce_checkpoint_moved AFTER UPDATE ON projection_checkpoints
    FOR EACH ROW
    WHEN (OLD.sequence IS DISTINCT FROM NEW.sequence OR OLD.generation IS DISTINCT FROM NEW.generation)
    EXECUTE FUNCTION prism_announce_checkpoint();

-- A row of the model TG_ARGV[0] changed; its key is the row's `id`. (Keys never change, but an
-- update that changed one would announce both.)
CREATE FUNCTION prism_announce_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('prism_read_models', 'row ' || TG_ARGV[0] || ' ' || OLD.id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id) THEN
        PERFORM pg_notify('prism_read_models', 'row ' || TG_ARGV[0] || ' ' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;

-- A participant belongs to the view of its computation.
CREATE FUNCTION prism_announce_participant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('prism_read_models', 'row computations ' || OLD.computation_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.computation_id IS DISTINCT FROM OLD.computation_id) THEN
        PERFORM pg_notify('prism_read_models', 'row computations ' || NEW.computation_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION prism_announce_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('prism_read_models', 'truncate ' || TG_ARGV[0]);
    RETURN NULL;
END
$$;

CREATE TRIGGER announce_workspace_row AFTER INSERT OR UPDATE OR DELETE ON workspaces
    FOR EACH ROW EXECUTE FUNCTION prism_announce_row('workspaces');
CREATE TRIGGER announce_workspace_truncate AFTER TRUNCATE ON workspaces
    FOR EACH STATEMENT EXECUTE FUNCTION prism_announce_truncate('workspaces');

-- A computation's view is its row and its participants.
CREATE TRIGGER announce_computation_row AFTER INSERT OR UPDATE OR DELETE ON computations
    FOR EACH ROW EXECUTE FUNCTION prism_announce_row('computations');
CREATE TRIGGER announce_participant_row AFTER INSERT OR UPDATE OR DELETE ON participants
    FOR EACH ROW EXECUTE FUNCTION prism_announce_participant();
CREATE TRIGGER announce_computation_truncate AFTER TRUNCATE ON computations
    FOR EACH STATEMENT EXECUTE FUNCTION prism_announce_truncate('computations');
CREATE TRIGGER announce_participant_truncate AFTER TRUNCATE ON participants
    FOR EACH STATEMENT EXECUTE FUNCTION prism_announce_truncate('computations');
