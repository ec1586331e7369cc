-- Evaluation reads keep each period's counts in memory and re-read only what changed since
-- (`Store::evaluation_counts`). Every counts row carries the stamp of the transaction that last
-- changed it; a reader remembers a watermark below which nothing new can appear.
--
-- PostgreSQL has concurrent writers, so a counter would not be in commit order: the stamp is the
-- writing transaction's id (`pg_current_xact_id()`, 64 bits, never wraps), and a reader's
-- watermark is the oldest transaction still running in its snapshot (`pg_snapshot_xmin`) — any
-- change the reader did not see was made by a transaction at or above it. `eval_clock.stamp` is
-- unused here (no row every writer would queue on); `generation` moves when rows are deleted or
-- rewritten wholesale (a rebuild), which drops every kept copy.
ALTER TABLE eval_counts ADD COLUMN stamp BIGINT NOT NULL DEFAULT 0;

CREATE TABLE eval_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    stamp BIGINT NOT NULL,
    generation BIGINT NOT NULL
);
INSERT INTO eval_clock (id, stamp, generation) VALUES (1, 0, 0);

-- Every row a transaction writes is stamped by the database itself, so a writer that does not
-- know about stamps (an older binary during a rolling upgrade, an operator's fix in psql) is
-- still seen by the readers; rows deleted or truncated move the generation.
CREATE FUNCTION eval_counts_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.stamp := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END
$$;
CREATE TRIGGER eval_counts_stamp BEFORE INSERT OR UPDATE ON eval_counts
    FOR EACH ROW EXECUTE FUNCTION eval_counts_stamp();

CREATE FUNCTION eval_counts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE eval_clock SET generation = generation + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER eval_counts_deleted AFTER DELETE ON eval_counts
    FOR EACH STATEMENT EXECUTE FUNCTION eval_counts_removed();
CREATE TRIGGER eval_counts_truncated AFTER TRUNCATE ON eval_counts
    FOR EACH STATEMENT EXECUTE FUNCTION eval_counts_removed();
