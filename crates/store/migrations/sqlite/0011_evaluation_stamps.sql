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
