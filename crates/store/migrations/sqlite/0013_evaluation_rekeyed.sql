-- A counts row moved to another kind, period or subject (a fix by hand) changes the sums of
-- both keys, but readers re-read only subjects with a fresh stamp (migration 0011) — the new
-- key: the old one would keep its counts in every server that kept them. Such an update moves
-- the generation instead (every reader reads whole). The store's writes never change a key, so
-- this costs them nothing (the trigger fires only for updates naming these columns).
CREATE TRIGGER eval_counts_rekeyed AFTER UPDATE OF kind, period, subject ON eval_counts
WHEN OLD.kind IS NOT NEW.kind OR OLD.period IS NOT NEW.period OR OLD.subject IS NOT NEW.subject
BEGIN
    UPDATE eval_clock SET generation = generation + 1;
END;
