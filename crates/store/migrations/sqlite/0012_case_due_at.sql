-- The due date of a case (应结时间, `Case::due_at`): what the evaluation's "due to close"
-- (应结案数) is dated by. It follows `case_deadline` until that deadline has passed, then stays,
-- so a case is found by the period it is due in even after a late return or extension moved its
-- deadline. Written with `case_deadline` on every case write; rows of older versions are filled
-- from their logs by the one-time upgrade pass at the first start (`Store::upgrade_cases_and_counts`).
-- The full recomputation of a period and the drill-down now look cases up by it, not by
-- `case_deadline`.
ALTER TABLE cases ADD COLUMN due_at INTEGER;
CREATE INDEX cases_due_at ON cases(due_at);
DROP INDEX cases_case_deadline;
