-- TRUNCATE bypasses row and statement DELETE triggers: refuse it too.
CREATE TRIGGER case_events_no_truncate BEFORE TRUNCATE ON case_events
FOR EACH STATEMENT EXECUTE FUNCTION case_events_append_only();
