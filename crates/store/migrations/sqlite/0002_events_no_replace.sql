-- INSERT OR REPLACE deletes the old row without firing delete triggers: refuse any insert
-- that would land on an existing (case_id, seq), so the log stays append-only.
CREATE TRIGGER case_events_no_replace BEFORE INSERT ON case_events
WHEN EXISTS (SELECT 1 FROM case_events WHERE case_id = NEW.case_id AND seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END;
