-- Evaluation reads keep each period's counts in memory and re-read only what changed since
-- (`Store::evaluation_counts`). Every counts row carries the stamp of the transaction that last
-- changed it; a reader remembers a watermark below which nothing new can appear.
--
-- SQLite has one writer: a counting transaction takes the next value of `eval_clock.stamp`, and a
-- reader's watermark is the clock it saw plus one. `generation` moves when rows are deleted or
-- rewritten wholesale (a rebuild), which drops every kept copy.
ALTER TABLE eval_counts ADD COLUMN stamp INTEGER NOT NULL DEFAULT 0;

CREATE TABLE eval_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    stamp INTEGER NOT NULL,
    generation INTEGER NOT NULL
);
INSERT INTO eval_clock (id, stamp, generation) VALUES (1, 0, 0);

-- A row written without a fresh stamp (a writer that does not know about stamps, an operator's
-- fix in the sqlite3 shell) takes the next clock value, so readers still see it. The store's own
-- writes set a fresh stamp and skip these. Rows deleted by hand need
-- `UPDATE eval_clock SET generation = generation + 1` (a per-row delete trigger would make a
-- rebuild's delete of millions of rows row by row; the rebuild moves the generation itself).
CREATE TRIGGER eval_counts_stamp_update AFTER UPDATE ON eval_counts
    WHEN NEW.stamp = OLD.stamp
BEGIN
    UPDATE eval_clock SET stamp = stamp + 1;
    UPDATE eval_counts SET stamp = (SELECT stamp FROM eval_clock)
        WHERE kind = NEW.kind AND period = NEW.period AND subject = NEW.subject;
END;
CREATE TRIGGER eval_counts_stamp_insert AFTER INSERT ON eval_counts
    WHEN NEW.stamp = 0
BEGIN
    UPDATE eval_clock SET stamp = stamp + 1;
    UPDATE eval_counts SET stamp = (SELECT stamp FROM eval_clock)
        WHERE kind = NEW.kind AND period = NEW.period AND subject = NEW.subject;
END;
