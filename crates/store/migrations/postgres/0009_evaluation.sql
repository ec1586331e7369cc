-- Comprehensive evaluation (综合评价): each subject's counters per local day (period = yyyymmdd)
-- and per month (period = yyyymm), kept up to date in the transaction of every case event from
-- `citygrid_core::evaluation::contributions`, so a month for every subject is one short range
-- read. `kind` is the tally kind (grid, community, street, district, department, collector,
-- acceptor, leader, dispatcher); `subject` the region code, department id or user id. Columns are
-- the counters of `Counter`, named c_<counter>. `citygrid evaluate --rebuild` recomputes the
-- whole table from the event log.
CREATE TABLE eval_counts (
    kind TEXT NOT NULL,
    period INTEGER NOT NULL,
    subject TEXT NOT NULL,
    c_reported BIGINT NOT NULL DEFAULT 0,
    c_citizen_confirmed BIGINT NOT NULL DEFAULT 0,
    c_accepted BIGINT NOT NULL DEFAULT 0,
    c_accepted_on_time BIGINT NOT NULL DEFAULT 0,
    c_accept_minutes BIGINT NOT NULL DEFAULT 0,
    c_filed BIGINT NOT NULL DEFAULT 0,
    c_filed_on_time BIGINT NOT NULL DEFAULT 0,
    c_voided BIGINT NOT NULL DEFAULT 0,
    c_voided_after_filing BIGINT NOT NULL DEFAULT 0,
    c_report_filed BIGINT NOT NULL DEFAULT 0,
    c_report_justified_void BIGINT NOT NULL DEFAULT 0,
    c_dispatched BIGINT NOT NULL DEFAULT 0,
    c_dispatched_on_time BIGINT NOT NULL DEFAULT 0,
    c_redispatched BIGINT NOT NULL DEFAULT 0,
    c_returned BIGINT NOT NULL DEFAULT 0,
    c_disposed BIGINT NOT NULL DEFAULT 0,
    c_disposed_on_time BIGINT NOT NULL DEFAULT 0,
    c_dispose_minutes BIGINT NOT NULL DEFAULT 0,
    c_reworked BIGINT NOT NULL DEFAULT 0,
    c_wrongly_dispatched BIGINT NOT NULL DEFAULT 0,
    c_extended BIGINT NOT NULL DEFAULT 0,
    c_suspended BIGINT NOT NULL DEFAULT 0,
    c_verified BIGINT NOT NULL DEFAULT 0,
    c_verified_on_time BIGINT NOT NULL DEFAULT 0,
    c_checked BIGINT NOT NULL DEFAULT 0,
    c_checked_on_time BIGINT NOT NULL DEFAULT 0,
    c_closed BIGINT NOT NULL DEFAULT 0,
    c_closed_on_time BIGINT NOT NULL DEFAULT 0,
    c_due BIGINT NOT NULL DEFAULT 0,
    c_due_closed BIGINT NOT NULL DEFAULT 0,
    c_due_closed_on_time BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, period, subject)
);

-- The full recomputation of a period and the drill-down from a figure to its cases read the
-- events of the period and the cases due in it.
CREATE INDEX case_events_at ON case_events(at, case_id);
CREATE INDEX cases_case_deadline ON cases(case_deadline);
