-- A journal of which counts rows each transaction changed (`eval_changes`), so a reader that
-- keeps a period's counts in memory re-reads only those rows: one index range over the journal
-- and one index lookup per changed subject, instead of a pass over the stamps of every row of
-- the period (a city's month of grids is 20,000 wide rows spread over thousands of pages).
--
-- Statement-level triggers write a journal row per statement that changed counts — so
-- every writer is journaled, whatever it is (this binary, an older one during a rolling
-- upgrade, an operator's fix in psql) — keyed by the transaction id. A reader's watermark is its
-- snapshot's xmax plus the transactions that snapshot saw running (see
-- `CountsEngine::WATERMARK`): every change it did not see is in a journal row at or above the
-- one, or of one of the others.
--
-- A statement that changes thousands of rows (a rebuild, a bulk fix) moves the generation
-- instead (every reader reads its parts whole), so the journal stays small. Old journal rows
-- are pruned (`Store::prune_evaluation_journal`, only below the oldest running transaction);
-- `journal_floor` is above every pruned id, and a reader whose watermark is below it reads whole.
-- (Rows deleted from this table by hand must raise `journal_floor` the same way, or readers
-- miss the changes they named.)
--
-- The per-row stamp of migration 0011 is not needed here any more: its trigger (one plpgsql
-- call per row written) goes; the column stays, unused on this engine.
DROP TRIGGER eval_counts_stamp ON eval_counts;
DROP FUNCTION eval_counts_stamp();

ALTER TABLE eval_clock ADD COLUMN journal_floor BIGINT NOT NULL DEFAULT 0;

CREATE TABLE eval_changes (
    xid BIGINT NOT NULL,
    -- When it was written: pruning keeps the last hour.
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- 'kind|period|subject' of each row the statement inserted or updated.
    keys TEXT[] NOT NULL
);
CREATE INDEX eval_changes_xid ON eval_changes (xid);
-- Readers run one prepared statement, planned once for any watermark: the planner then expects
-- a third of the journal and would start parallel workers (milliseconds) to read a few rows.
ALTER TABLE eval_changes SET (parallel_workers = 0);

CREATE FUNCTION eval_counts_journal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed_keys TEXT[];
BEGIN
    -- An update that moves a row to another kind, period or subject (a fix by hand) empties the
    -- old key, which a reader re-reading the changed subjects would not see: every reader reads
    -- whole instead. (The store's writes never change a key.)
    -- (Nested: one expression naming old_rows would be planned for inserts too, which have none.)
    IF TG_OP = 'UPDATE' THEN
        IF EXISTS (SELECT kind, period, subject FROM old_rows
                   EXCEPT SELECT kind, period, subject FROM changed) THEN
            UPDATE eval_clock SET generation = generation + 1;
            RETURN NULL;
        END IF;
    END IF;
    SELECT array_agg(kind || '|' || period || '|' || subject) INTO changed_keys FROM changed;
    IF cardinality(changed_keys) > 5000 THEN
        UPDATE eval_clock SET generation = generation + 1;
    ELSIF cardinality(changed_keys) > 0 THEN
        INSERT INTO eval_changes (xid, keys) VALUES (pg_current_xact_id()::text::bigint, changed_keys);
    END IF;
    RETURN NULL;
END
$$;
-- (A trigger with transition tables fires for one kind of statement; an upsert fires both, so
-- it may journal two rows.)
CREATE TRIGGER eval_counts_inserted AFTER INSERT ON eval_counts
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION eval_counts_journal();
CREATE TRIGGER eval_counts_updated AFTER UPDATE ON eval_counts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION eval_counts_journal();
