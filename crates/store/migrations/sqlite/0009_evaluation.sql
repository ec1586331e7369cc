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
    c_reported INTEGER NOT NULL DEFAULT 0,
    c_citizen_confirmed INTEGER NOT NULL DEFAULT 0,
    c_accepted INTEGER NOT NULL DEFAULT 0,
    c_accepted_on_time INTEGER NOT NULL DEFAULT 0,
    c_accept_minutes INTEGER NOT NULL DEFAULT 0,
    c_filed INTEGER NOT NULL DEFAULT 0,
    c_filed_on_time INTEGER NOT NULL DEFAULT 0,
    c_voided INTEGER NOT NULL DEFAULT 0,
    c_voided_after_filing INTEGER NOT NULL DEFAULT 0,
    c_report_filed INTEGER NOT NULL DEFAULT 0,
    c_report_justified_void INTEGER NOT NULL DEFAULT 0,
    c_dispatched INTEGER NOT NULL DEFAULT 0,
    c_dispatched_on_time INTEGER NOT NULL DEFAULT 0,
    c_redispatched INTEGER NOT NULL DEFAULT 0,
    c_returned INTEGER NOT NULL DEFAULT 0,
    c_disposed INTEGER NOT NULL DEFAULT 0,
    c_disposed_on_time INTEGER NOT NULL DEFAULT 0,
    c_dispose_minutes INTEGER NOT NULL DEFAULT 0,
    c_reworked INTEGER NOT NULL DEFAULT 0,
    c_wrongly_dispatched INTEGER NOT NULL DEFAULT 0,
    c_extended INTEGER NOT NULL DEFAULT 0,
    c_suspended INTEGER NOT NULL DEFAULT 0,
    c_verified INTEGER NOT NULL DEFAULT 0,
    c_verified_on_time INTEGER NOT NULL DEFAULT 0,
    c_checked INTEGER NOT NULL DEFAULT 0,
    c_checked_on_time INTEGER NOT NULL DEFAULT 0,
    c_closed INTEGER NOT NULL DEFAULT 0,
    c_closed_on_time INTEGER NOT NULL DEFAULT 0,
    c_due INTEGER NOT NULL DEFAULT 0,
    c_due_closed INTEGER NOT NULL DEFAULT 0,
    c_due_closed_on_time INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, period, subject)
) WITHOUT ROWID;

-- The full recomputation of a period and the drill-down from a figure to its cases read the
-- events of the period and the cases due in it.
CREATE INDEX case_events_at ON case_events(at, case_id);
CREATE INDEX cases_case_deadline ON cases(case_deadline);
