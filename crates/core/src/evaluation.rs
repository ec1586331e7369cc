//! Comprehensive evaluation (综合评价, GB/T 30428.4): what each event of the case log counts for
//! whom, and the metrics, scores and grades computed from those counts.
//!
//! One function, [`contributions`], says what an event adds to which subject's counters, on
//! which local day. Incremental aggregates (written in the event's transaction) and a full
//! recomputation from the log both sum exactly these contributions, so they cannot disagree.
//!
//! How counts are dated, so that every rate of any period stays within 0–1:
//! - Plain flows (reported, accepted, filed, dispatched, disposed, checked, closed, …) and the
//!   "on time" of a step count on the local day of their own event.
//! - A rate's numerator is dated by the event its denominator counts (cohort dating): a
//!   collector's report filed, or voided before filing as a duplicate, counts on the day it
//!   was reported; a void after filing is charged on the filing day; a return is charged to
//!   the dispatcher on the day of the dispatch it returns; a rework (counted at closing) is
//!   charged to the department whose disposal failed the first failed check, on that
//!   disposal's day, and to the dispatcher of the dispatch behind it, on its day; a confirmed citizen (or hotline)
//!   report counts when it is filed, beside the filing. Such a charge may land in a past
//!   period — the day judged is where it belongs — and is never more than what that day
//!   counted in the denominator.
//! - The "due to close" family (应结案数) is dated by the case's due date (`Case::due_at`,
//!   应结时间) and derived from the case before and after the event ([`due_facts`]): an
//!   extension, a resumed suspension or a return before the due date moves it, a void removes
//!   it, but once the due date has passed nothing moves it out of its period any more.
//!
//! [`metrics`] turns a subject's summed [`Tally`] into the standard rates, [`score`] weights
//! them under an [`EvalConfig`], [`EvalConfig::grade`] bands the score.

use crate::case::{Case, Change, Event, Source, State};
use crate::codes::RegionLevel;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Who is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A region at any level (grid, community, street, district); id = region code.
    Region,
    /// A department (专业部门); id = department id.
    Department,
    /// A collector (监督员/信息采集员); id = user id.
    Collector,
    /// An acceptor (受理员); id = user id.
    Acceptor,
    /// A shift leader (值班长); id = user id.
    Leader,
    /// A dispatcher (派遣员); id = user id.
    Dispatcher,
}

impl SubjectKind {
    pub const ALL: [SubjectKind; 6] = [
        SubjectKind::Region,
        SubjectKind::Department,
        SubjectKind::Collector,
        SubjectKind::Acceptor,
        SubjectKind::Leader,
        SubjectKind::Dispatcher,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Region => "region",
            SubjectKind::Department => "department",
            SubjectKind::Collector => "collector",
            SubjectKind::Acceptor => "acceptor",
            SubjectKind::Leader => "leader",
            SubjectKind::Dispatcher => "dispatcher",
        }
    }
    pub fn parse(s: &str) -> Option<SubjectKind> {
        SubjectKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The kind of a stored tally: a region tally is kept per level, so a level's rows are read
/// without looking at code lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TallyKind {
    Grid,
    Community,
    Street,
    District,
    Department,
    Collector,
    Acceptor,
    Leader,
    Dispatcher,
}

impl TallyKind {
    pub const ALL: [TallyKind; 9] = [
        TallyKind::Grid,
        TallyKind::Community,
        TallyKind::Street,
        TallyKind::District,
        TallyKind::Department,
        TallyKind::Collector,
        TallyKind::Acceptor,
        TallyKind::Leader,
        TallyKind::Dispatcher,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TallyKind::Grid => "grid",
            TallyKind::Community => "community",
            TallyKind::Street => "street",
            TallyKind::District => "district",
            TallyKind::Department => "department",
            TallyKind::Collector => "collector",
            TallyKind::Acceptor => "acceptor",
            TallyKind::Leader => "leader",
            TallyKind::Dispatcher => "dispatcher",
        }
    }
    pub fn parse(s: &str) -> Option<TallyKind> {
        TallyKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// The stored kind for a subject; regions need their level (grid … district).
    pub fn of(subject: SubjectKind, level: Option<RegionLevel>) -> Option<TallyKind> {
        Some(match subject {
            SubjectKind::Region => match level? {
                RegionLevel::Grid => TallyKind::Grid,
                RegionLevel::Community => TallyKind::Community,
                RegionLevel::Street => TallyKind::Street,
                RegionLevel::District => TallyKind::District,
                RegionLevel::City => return None,
            },
            SubjectKind::Department => TallyKind::Department,
            SubjectKind::Collector => TallyKind::Collector,
            SubjectKind::Acceptor => TallyKind::Acceptor,
            SubjectKind::Leader => TallyKind::Leader,
            SubjectKind::Dispatcher => TallyKind::Dispatcher,
        })
    }
    fn region(level: RegionLevel) -> Option<TallyKind> {
        TallyKind::of(SubjectKind::Region, Some(level))
    }
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident = $col:literal,)*) => {
        /// A counter of the evaluation: a count of events or cases (or, for the `*Minutes`
        /// counters, a sum of minutes) in a period.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum Counter {
            $($(#[$doc])* $name,)*
        }
        impl Counter {
            /// Every counter, in the order of the stored columns.
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)*];
            /// The counter's name in the API and its column (`c_<name>`) in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Counter::$name => $col,)*
                }
            }
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

counters! {
    /// Reports made (上报数).
    Reported = "reported",
    /// Filed cases that came from a citizen or hotline report confirmed on site (监督举报, the
    /// citizen-report rate's numerator): counted at filing, beside `Filed`.
    CitizenConfirmed = "citizen_confirmed",
    /// Accepted (受理数).
    Accepted = "accepted",
    AcceptedOnTime = "accepted_on_time",
    /// Minutes from report to acceptance, summed (for the average time to accept).
    AcceptMinutes = "accept_minutes",
    /// Filed (立案数).
    Filed = "filed",
    FiledOnTime = "filed_on_time",
    /// Voided (作废): a duplicate or an invalid report, at any stage.
    Voided = "voided",
    /// Voided after it was filed: charged to the leader who filed it (accurate filing), dated
    /// by the filing day.
    VoidedAfterFiling = "voided_after_filing",
    /// A collector's own report that was filed (valid report), dated by the report day.
    ReportFiled = "report_filed",
    /// A collector's own report voided before filing as a duplicate of a real problem
    /// (a justified void: the problem was real, someone was first), dated by the report day.
    ReportJustifiedVoid = "report_justified_void",
    /// Dispatched (派遣数); for a department: cases it received (应处置数).
    Dispatched = "dispatched",
    DispatchedOnTime = "dispatched_on_time",
    /// A dispatch the department returned as not its own (回退): charged to the dispatcher of
    /// that dispatch, dated by the dispatch day.
    Redispatched = "redispatched",
    /// Returned to dispatch by the department (回退).
    Returned = "returned",
    /// Disposed and reported back (处置数).
    Disposed = "disposed",
    DisposedOnTime = "disposed_on_time",
    /// Minutes from (re)dispatch to disposal, summed.
    DisposeMinutes = "dispose_minutes",
    /// Closed cases that had at least one failed check (返工, counted at closing): for a region
    /// on the closing day; charged to the department whose disposal failed the first check, on
    /// that disposal's day, and to the dispatcher who sent it there, on that dispatch's day
    /// (`Case::rework_of`).
    Reworked = "reworked",
    /// Closed cases that were dispatched to more than one department (counted at closing).
    WronglyDispatched = "wrongly_dispatched",
    /// Extensions granted (延期).
    Extended = "extended",
    /// Suspensions granted (挂账).
    Suspended = "suspended",
    /// Verification tasks done by a collector (核实).
    Verified = "verified",
    VerifiedOnTime = "verified_on_time",
    /// Checks done by a collector (核查).
    Checked = "checked",
    CheckedOnTime = "checked_on_time",
    /// Closed (结案数). For a region or department `ClosedOnTime` means closed by the case's
    /// due date (`Case::due_at`); for a shift leader, the close step itself taken in time.
    Closed = "closed",
    ClosedOnTime = "closed_on_time",
    /// Due to close (应结案数): filed cases whose due date (`Case::due_at`) falls in the
    /// period, those suspended before it excepted; dated by the due date.
    Due = "due",
    /// Of those due, closed (by now).
    DueClosed = "due_closed",
    /// Of those due, closed by the due date (按期结案).
    DueClosedOnTime = "due_closed_on_time",
}

/// Counters that are not stored but joined in when a collector is evaluated: the region
/// tallies of the grids in the collector's area (missed-report rate, 漏报率).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaFacts {
    pub citizen_confirmed: i64,
    pub filed: i64,
}

/// A local day as `yyyymmdd`, e.g. 20261130. Months are `yyyymm`; both are stored in one
/// integer column, the lengths keep them apart.
pub type DayKey = i32;

/// The local day of `t` at `offset_minutes` east of UTC, as a [`DayKey`].
pub fn day_key(t: Timestamp, offset_minutes: i32) -> DayKey {
    let (y, m, d) = crate::reward::local_day(t, offset_minutes);
    i32::from(y) * 10_000 + i32::from(m) * 100 + i32::from(d)
}

/// The month key (`yyyymm`) of a day key.
pub fn month_key(day: DayKey) -> i32 {
    day / 100
}

/// What one event adds: `delta` to `counter` of subject (`kind`, `id`) on `day`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Contribution {
    pub kind: TallyKind,
    pub id: String,
    pub counter: Counter,
    pub day: DayKey,
    pub delta: i64,
}

/// Region subjects of a case: its grid and the community, street and district above it.
fn regions(case: &Case) -> Vec<(TallyKind, String)> {
    [RegionLevel::Grid, RegionLevel::Community, RegionLevel::Street, RegionLevel::District]
        .into_iter()
        .filter_map(|l| Some((TallyKind::region(l)?, case.grid_code.at_level(l)?.as_str().to_owned())))
        .collect()
}

/// Whole minutes from `a` to `b`, never negative.
fn minutes(a: Timestamp, b: Timestamp) -> i64 {
    ((b.as_millisecond() - a.as_millisecond()) / 60_000).max(0)
}

/// The due-dated facts of a case as it stands: due to close, closed of those due, closed by
/// the due date — for its regions and the department answerable for it
/// (`Case::due_department_id`), on the day of its due date (`Case::due_at`). A case counts as
/// due once filed; not while suspended if the suspension began before the due date (suspended
/// time does not count, and resuming moves the due date), but still if it was suspended when
/// already overdue; it stops counting if it is voided or refused. Closed on time means closed
/// at or before the due date.
pub fn due_facts(case: &Case, offset_minutes: i32) -> Vec<Contribution> {
    let mut out = Vec::new();
    let counting = match case.state {
        State::Filed | State::Dispatched | State::Disposed | State::Checked | State::Closed => true,
        State::Suspended => !case.suspended_before_due(),
        _ => false,
    };
    let Some(due) = case.due_at.filter(|_| counting) else {
        return out;
    };
    let day = day_key(due, offset_minutes);
    let closed = case.state == State::Closed;
    let on_time = closed && case.closed_at.is_some_and(|c| c <= due);
    let mut subjects = regions(case);
    if let Some(d) = case.due_department_id {
        subjects.push((TallyKind::Department, d.to_string()));
    }
    for (kind, id) in subjects {
        let mut add = |counter| out.push(Contribution { kind, id: id.clone(), counter, day, delta: 1 });
        add(Counter::Due);
        if closed {
            add(Counter::DueClosed);
        }
        if on_time {
            add(Counter::DueClosedOnTime);
        }
    }
    out
}

/// The counters `event` adds to. `before` is the case before the event (`None` for the
/// report), `after` its projection with the event; `offset_minutes` is the city's UTC offset,
/// which decides the local day a contribution is dated by: the event's own day, except for the
/// charges and credits dated by the event they judge (see the module documentation) and the
/// due-dated facts.
pub fn contributions(before: Option<&Case>, after: &Case, event: &Event, offset_minutes: i32) -> Vec<Contribution> {
    let day = day_key(event.at, offset_minutes);
    // The day of an earlier event of the case (the report, the filing, the dispatch); the
    // event's own day for a row written before the case kept that time (never after an
    // upgrade, which rewrites every row from its log).
    let day_of = |t: Option<Timestamp>| t.map_or(day, |t| day_key(t, offset_minutes));
    let mut out = Vec::new();
    let mut add = |kind: TallyKind, id: &str, counter: Counter, delta: i64| {
        if delta != 0 {
            out.push(Contribution { kind, id: id.to_owned(), counter, day, delta });
        }
    };
    // Charges and credits dated by the earlier event they judge.
    let mut judged = Vec::new();
    let mut charge = |day: DayKey, kind: TallyKind, id: i64, counter: Counter| {
        judged.push(Contribution { kind, id: id.to_string(), counter, day, delta: 1 });
    };
    // A collector's own report: the subject of its `Reported` and of the credits judging it.
    let own_report = (after.source == Source::Collector).then_some(after.reporter_id).flatten();
    let reported_day = day_key(after.created_at, offset_minutes);
    let actor = event.actor_id.map(|a| a.to_string());
    let on_time = !event.late;
    let region_ids = regions(after);
    let department = after.department_id.map(|d| d.to_string());
    let for_regions = |add: &mut dyn FnMut(TallyKind, &str, Counter, i64), counter: Counter, delta: i64| {
        for (k, r) in &region_ids {
            add(*k, r, counter, delta);
        }
    };
    match &event.change {
        Change::Report { .. } => {
            for_regions(&mut add, Counter::Reported, 1);
            if let Some(r) = own_report {
                add(TallyKind::Collector, &r.to_string(), Counter::Reported, 1);
            }
        }
        Change::Verify { .. } => {
            if let Some(a) = &actor {
                add(TallyKind::Collector, a, Counter::Verified, 1);
                add(TallyKind::Collector, a, Counter::VerifiedOnTime, i64::from(on_time));
            }
        }
        Change::Accept => {
            let waited = minutes(after.created_at, event.at);
            for_regions(&mut add, Counter::Accepted, 1);
            for_regions(&mut add, Counter::AcceptMinutes, waited);
            if let Some(a) = &actor {
                add(TallyKind::Acceptor, a, Counter::Accepted, 1);
                add(TallyKind::Acceptor, a, Counter::AcceptedOnTime, i64::from(on_time));
                add(TallyKind::Acceptor, a, Counter::AcceptMinutes, waited);
            }
        }
        Change::File { .. } => {
            for_regions(&mut add, Counter::Filed, 1);
            // Citizens and the hotline are the public's supervision (监督举报); both are
            // verified. Counted with the filing, so the citizen-report rate compares the same
            // filings (a confirmed report merged into another one is not a missed problem).
            if after.verified == Some(true) && after.source.needs_verification() {
                for_regions(&mut add, Counter::CitizenConfirmed, 1);
            }
            if let Some(a) = &actor {
                add(TallyKind::Leader, a, Counter::Filed, 1);
                add(TallyKind::Leader, a, Counter::FiledOnTime, i64::from(on_time));
            }
            if let Some(r) = own_report {
                charge(reported_day, TallyKind::Collector, r, Counter::ReportFiled);
            }
        }
        Change::Void { duplicate_of } => {
            for_regions(&mut add, Counter::Voided, 1);
            // Void is allowed up to the filed state: filed means filed (also for cases written
            // before `filed_by` existed, which then charge nobody).
            let was_filed = before.is_some_and(|b| b.state == State::Filed);
            if was_filed {
                if let Some(b) = before {
                    if let Some(l) = b.filed_by {
                        charge(day_of(b.filed_at), TallyKind::Leader, l, Counter::VoidedAfterFiling);
                    }
                }
            } else if duplicate_of.is_some() {
                if let Some(r) = own_report {
                    charge(reported_day, TallyKind::Collector, r, Counter::ReportJustifiedVoid);
                }
            }
        }
        Change::Dispatch { department_id, .. } => {
            for_regions(&mut add, Counter::Dispatched, 1);
            if let Some(a) = &actor {
                add(TallyKind::Dispatcher, a, Counter::Dispatched, 1);
                add(TallyKind::Dispatcher, a, Counter::DispatchedOnTime, i64::from(on_time));
            }
            add(TallyKind::Department, &department_id.to_string(), Counter::Dispatched, 1);
        }
        Change::Return { department_id } => {
            add(TallyKind::Department, &department_id.to_string(), Counter::Returned, 1);
            if let Some(b) = before {
                if let Some(d) = b.dispatched_by {
                    charge(day_of(b.dispatched_at), TallyKind::Dispatcher, d, Counter::Redispatched);
                }
            }
        }
        Change::Dispose => {
            let took = before.map_or(0, |b| minutes(b.stage_started_at, event.at));
            for_regions(&mut add, Counter::Disposed, 1);
            for_regions(&mut add, Counter::DisposedOnTime, i64::from(on_time));
            for_regions(&mut add, Counter::DisposeMinutes, took);
            if let Some(d) = &department {
                add(TallyKind::Department, d, Counter::Disposed, 1);
                add(TallyKind::Department, d, Counter::DisposedOnTime, i64::from(on_time));
                add(TallyKind::Department, d, Counter::DisposeMinutes, took);
            }
        }
        Change::Check { .. } => {
            if let Some(a) = &actor {
                add(TallyKind::Collector, a, Counter::Checked, 1);
                add(TallyKind::Collector, a, Counter::CheckedOnTime, i64::from(on_time));
            }
        }
        Change::ApproveExtension { .. } => {
            for_regions(&mut add, Counter::Extended, 1);
            if let Some(d) = &department {
                add(TallyKind::Department, d, Counter::Extended, 1);
            }
        }
        Change::ApproveSuspension => {
            for_regions(&mut add, Counter::Suspended, 1);
            if let Some(d) = &department {
                add(TallyKind::Department, d, Counter::Suspended, 1);
            }
        }
        Change::Close => {
            // By the due date: a case returned or reworked after it passed is late, whatever
            // deadline it got afterwards.
            let closed_on_time = after.due_at.is_none_or(|d| event.at <= d);
            let reworked = i64::from(after.rework_count > 0);
            let wrongly = i64::from(after.return_count > 0);
            for_regions(&mut add, Counter::Closed, 1);
            for_regions(&mut add, Counter::ClosedOnTime, i64::from(closed_on_time));
            for_regions(&mut add, Counter::Reworked, reworked);
            for_regions(&mut add, Counter::WronglyDispatched, wrongly);
            if let Some(d) = &department {
                add(TallyKind::Department, d, Counter::Closed, 1);
                add(TallyKind::Department, d, Counter::ClosedOnTime, i64::from(closed_on_time));
            }
            // The rework rate of a department (reworked / disposed) and the accurate dispatch
            // of a dispatcher ((dispatched − reworked) / dispatched) judge the disposal the
            // first failed check found not done and the dispatch behind it: charged to them on
            // their days, so a period never charges more than it counted.
            if let Some(r) = after.rework_of.filter(|_| reworked > 0) {
                let at = |t: Timestamp| day_key(t, offset_minutes);
                charge(at(r.disposed_at), TallyKind::Department, r.department_id, Counter::Reworked);
                if let (Some(d), Some(t)) = (r.dispatched_by, r.dispatched_at) {
                    charge(at(t), TallyKind::Dispatcher, d, Counter::Reworked);
                }
            }
            if let Some(a) = &actor {
                add(TallyKind::Leader, a, Counter::Closed, 1);
                add(TallyKind::Leader, a, Counter::ClosedOnTime, i64::from(on_time));
            }
        }
        Change::Reject { .. }
        | Change::Refuse { .. }
        | Change::HandDown { .. }
        | Change::RequestExtension { .. }
        | Change::RejectExtension
        | Change::RequestSuspension
        | Change::RejectSuspension
        | Change::Resume
        | Change::Urge => {}
    }
    out.extend(judged);
    // The due-dated facts: what the case stands for now, minus what it stood for before.
    for mut c in before.map(|b| due_facts(b, offset_minutes)).unwrap_or_default() {
        c.delta = -c.delta;
        out.push(c);
    }
    out.extend(due_facts(after, offset_minutes));
    net(out)
}

/// Sums contributions with the same subject, counter and day, and drops the zeros (a deadline
/// that did not move gives +1 and −1 on the same day).
pub fn net(contributions: Vec<Contribution>) -> Vec<Contribution> {
    let mut sums: BTreeMap<(TallyKind, String, Counter, DayKey), i64> = BTreeMap::new();
    for c in contributions {
        *sums.entry((c.kind, c.id, c.counter, c.day)).or_default() += c.delta;
    }
    sums.into_iter()
        .filter(|(_, d)| *d != 0)
        .map(|((kind, id, counter, day), delta)| Contribution { kind, id, counter, day, delta })
        .collect()
}

/// A subject's counters summed over a period, indexed by [`Counter::index`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally(pub Vec<i64>);

impl Default for Tally {
    fn default() -> Self {
        Tally(vec![0; Counter::ALL.len()])
    }
}

impl Tally {
    pub fn get(&self, c: Counter) -> i64 {
        self.0.get(c.index()).copied().unwrap_or(0)
    }
    pub fn add(&mut self, c: Counter, delta: i64) {
        if let Some(v) = self.0.get_mut(c.index()) {
            *v += delta;
        }
    }
    pub fn merge(&mut self, other: &Tally) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0)
    }
    /// The non-zero counters by name, for display and tests.
    pub fn named(&self) -> BTreeMap<&'static str, i64> {
        Counter::ALL.iter().filter(|c| self.get(**c) != 0).map(|c| (c.as_str(), self.get(*c))).collect()
    }
}

/// How a metric's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A rate 0–1: numerator ÷ denominator; nothing to do counts as fully done (1), except for
    /// a rate where lower is better (0).
    Rate,
    /// A plain count (numerator = value, denominator 1); not scored.
    Count,
    /// A count scored against the expected count for the period (denominator): 档次 / band.
    Band,
    /// An average in minutes (numerator = total minutes, denominator = cases); not scored.
    Minutes,
}

/// One metric of a subject. Names and counters are static: a city's grids times the metrics
/// are hundreds of thousands of values per evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Metric {
    pub name: &'static str,
    pub kind: MetricKind,
    /// The rate, count, or average minutes.
    pub value: f64,
    pub numerator: i64,
    pub denominator: i64,
    /// For rates like rework and missed reports: the score counts 1 − value.
    pub lower_is_better: bool,
    /// The counters behind the numerator: what a drill-down lists.
    #[schema(value_type = Vec<Counter>)]
    pub counters: &'static [Counter],
}

fn rate(name: &'static str, numerator: i64, denominator: i64, counters: &'static [Counter]) -> Metric {
    let value = if denominator <= 0 { 1.0 } else { numerator as f64 / denominator as f64 };
    Metric { name, kind: MetricKind::Rate, value, numerator, denominator, lower_is_better: false, counters }
}

fn lower_rate(name: &'static str, numerator: i64, denominator: i64, counters: &'static [Counter]) -> Metric {
    let value = if denominator <= 0 { 0.0 } else { numerator as f64 / denominator as f64 };
    Metric { lower_is_better: true, value, ..rate(name, numerator, denominator, counters) }
}

fn count(name: &'static str, n: i64, counters: &'static [Counter]) -> Metric {
    Metric {
        name,
        kind: MetricKind::Count,
        value: n as f64,
        numerator: n,
        denominator: 1,
        lower_is_better: false,
        counters,
    }
}

fn band(name: &'static str, n: i64, expected: i64, counters: &'static [Counter]) -> Metric {
    Metric { kind: MetricKind::Band, denominator: expected.max(1), ..count(name, n, counters) }
}

fn average(name: &'static str, total: i64, n: i64, counters: &'static [Counter]) -> Metric {
    Metric {
        name,
        kind: MetricKind::Minutes,
        value: if n <= 0 { 0.0 } else { total as f64 / n as f64 },
        numerator: total,
        denominator: n,
        lower_is_better: true,
        counters,
    }
}

/// What a subject's metrics need besides its tally.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// For regions: the level; decides the band.
    pub level: Option<RegionLevel>,
    /// For regions: the region class (A, B, C …); decides the band.
    pub region_class: Option<String>,
    /// For collectors: the tallies of the grids of their area.
    pub area: AreaFacts,
    /// The period's length in days (bands are per 30 days).
    pub days: i64,
}

/// Every metric of DOMAIN.md's evaluation table for `kind`, with the figures every centre
/// expects beside them. Names are stable API field names.
pub fn metrics(kind: SubjectKind, t: &Tally, cfg: &EvalConfig, ctx: &Context) -> Vec<Metric> {
    use Counter::*;
    let expected = |per_30_days: u32| (i64::from(per_30_days) * ctx.days.max(1) + 29) / 30;
    match kind {
        SubjectKind::Region => {
            let per_30 = cfg.region_band(ctx.level.unwrap_or(RegionLevel::Street), ctx.region_class.as_deref());
            vec![
                // What the public had to report is what the region's own patrols missed: lower is better.
                lower_rate("citizen_report_rate", t.get(CitizenConfirmed), t.get(Filed), &[CitizenConfirmed]),
                band("filed_band", t.get(Filed), expected(per_30), &[Filed]),
                rate("closure_rate", t.get(DueClosed), t.get(Due), &[DueClosed]),
                rate("on_time_closure_rate", t.get(DueClosedOnTime), t.get(Due), &[DueClosedOnTime]),
                lower_rate("rework_rate", t.get(Reworked), t.get(Closed), &[Reworked]),
                lower_rate("wrong_dispatch_rate", t.get(WronglyDispatched), t.get(Closed), &[WronglyDispatched]),
                count("reported", t.get(Reported), &[Reported]),
                count("accepted", t.get(Accepted), &[Accepted]),
                count("filed", t.get(Filed), &[Filed]),
                count("voided", t.get(Voided), &[Voided]),
                count("dispatched", t.get(Dispatched), &[Dispatched]),
                count("disposed", t.get(Disposed), &[Disposed]),
                count("overdue_disposed", t.get(Disposed) - t.get(DisposedOnTime), &[Disposed]),
                count("due_to_close", t.get(Due), &[Due]),
                count("overdue_open", t.get(Due) - t.get(DueClosed), &[Due]),
                count("closed", t.get(Closed), &[Closed]),
                count("overdue_closed", t.get(Closed) - t.get(ClosedOnTime), &[Closed]),
                count("extended", t.get(Extended), &[Extended]),
                count("suspended", t.get(Suspended), &[Suspended]),
                average("avg_accept_minutes", t.get(AcceptMinutes), t.get(Accepted), &[Accepted]),
                average("avg_dispose_minutes", t.get(DisposeMinutes), t.get(Disposed), &[Disposed]),
            ]
        }
        SubjectKind::Collector => vec![
            rate(
                "valid_report_rate",
                t.get(ReportFiled) + t.get(ReportJustifiedVoid),
                t.get(Reported),
                &[ReportFiled, ReportJustifiedVoid],
            ),
            // Counted in the grids of the collector's area: the drill-down lists those grids'
            // confirmed citizen reports.
            lower_rate("missed_report_rate", ctx.area.citizen_confirmed, ctx.area.filed, &[CitizenConfirmed]),
            rate("on_time_verification_rate", t.get(VerifiedOnTime), t.get(Verified), &[VerifiedOnTime]),
            rate("on_time_check_rate", t.get(CheckedOnTime), t.get(Checked), &[CheckedOnTime]),
            count("reported", t.get(Reported), &[Reported]),
            count("verified", t.get(Verified), &[Verified]),
            count("checked", t.get(Checked), &[Checked]),
        ],
        SubjectKind::Acceptor => vec![
            band("accepted_band", t.get(Accepted), expected(cfg.bands.acceptor_accepted), &[Accepted]),
            rate("on_time_acceptance_rate", t.get(AcceptedOnTime), t.get(Accepted), &[AcceptedOnTime]),
            count("accepted", t.get(Accepted), &[Accepted]),
            average("avg_accept_minutes", t.get(AcceptMinutes), t.get(Accepted), &[Accepted]),
        ],
        SubjectKind::Leader => vec![
            rate("on_time_filing_rate", t.get(FiledOnTime), t.get(Filed), &[FiledOnTime]),
            rate("accurate_filing_rate", t.get(Filed) - t.get(VoidedAfterFiling), t.get(Filed), &[VoidedAfterFiling]),
            rate("on_time_closing_rate", t.get(ClosedOnTime), t.get(Closed), &[ClosedOnTime]),
            count("filed", t.get(Filed), &[Filed]),
            count("closed", t.get(Closed), &[Closed]),
        ],
        SubjectKind::Dispatcher => vec![
            band("dispatched_band", t.get(Dispatched), expected(cfg.bands.dispatcher_dispatched), &[Dispatched]),
            rate("on_time_dispatch_rate", t.get(DispatchedOnTime), t.get(Dispatched), &[DispatchedOnTime]),
            rate("accurate_dispatch_rate", t.get(Dispatched) - t.get(Reworked), t.get(Dispatched), &[Reworked]),
            count("dispatched", t.get(Dispatched), &[Dispatched]),
            count("reworked", t.get(Reworked), &[Reworked]),
            count("returned", t.get(Redispatched), &[Redispatched]),
        ],
        SubjectKind::Department => vec![
            rate("closure_rate", t.get(DueClosed), t.get(Due), &[DueClosed]),
            rate("on_time_disposal_rate", t.get(DisposedOnTime), t.get(Disposed), &[DisposedOnTime]),
            lower_rate("rework_rate", t.get(Reworked), t.get(Disposed), &[Reworked]),
            band("dispatched_band", t.get(Dispatched), expected(cfg.bands.department_dispatched), &[Dispatched]),
            count("to_dispose", t.get(Dispatched), &[Dispatched]),
            count("disposed", t.get(Disposed), &[Disposed]),
            count("overdue_disposed", t.get(Disposed) - t.get(DisposedOnTime), &[Disposed]),
            count("returned", t.get(Returned), &[Returned]),
            count("reworked", t.get(Reworked), &[Reworked]),
            count("extended", t.get(Extended), &[Extended]),
            count("suspended", t.get(Suspended), &[Suspended]),
            count("due_to_close", t.get(Due), &[Due]),
            count("overdue_open", t.get(Due) - t.get(DueClosed), &[Due]),
            count("closed", t.get(Closed), &[Closed]),
            average("avg_dispose_minutes", t.get(DisposeMinutes), t.get(Disposed), &[Disposed]),
        ],
    }
}

/// The metric names of `kind` that carry a score (rates and bands).
pub fn scored_metric_names(kind: SubjectKind) -> Vec<String> {
    metrics(kind, &Tally::default(), &EvalConfig::default(), &Context::default())
        .into_iter()
        .filter(|m| matches!(m.kind, MetricKind::Rate | MetricKind::Band))
        .map(|m| m.name.to_owned())
        .collect()
}

/// Weights of a subject kind's metrics, in percent; they must sum to 100.
pub type Weights = BTreeMap<String, u32>;

/// Expected counts per 30 days for the banded count metrics (档次): a subject reaching the
/// expectation scores the full weight, below it the share reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Bands {
    /// Filed cases per region level (`grid`, `community`, `street`, `district`) and region class
    /// (`A`, `B`, `C`, …).
    pub region_filed: BTreeMap<String, BTreeMap<String, u32>>,
    pub acceptor_accepted: u32,
    pub dispatcher_dispatched: u32,
    pub department_dispatched: u32,
}

/// A grade and the lowest score that earns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GradeBand {
    pub grade: String,
    pub min_score: f64,
}

/// The evaluation's configuration: DOMAIN.md's values are the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvalConfig {
    /// Per subject kind (`region`, `department`, …): metric name → weight in percent.
    #[schema(value_type = BTreeMap<String, BTreeMap<String, u32>>)]
    pub weights: BTreeMap<SubjectKind, Weights>,
    pub bands: Bands,
    /// Region code → region class; regions not listed are of `default_region_class`.
    pub region_classes: BTreeMap<String, String>,
    pub default_region_class: String,
    /// Highest first: A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, E below.
    pub grades: Vec<GradeBand>,
}

fn weights(pairs: &[(&str, u32)]) -> Weights {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

impl Default for EvalConfig {
    fn default() -> Self {
        let classes = |a: u32, b: u32, c: u32| -> BTreeMap<String, u32> {
            [("A".to_owned(), a), ("B".to_owned(), b), ("C".to_owned(), c)].into()
        };
        EvalConfig {
            weights: [
                (
                    SubjectKind::Region,
                    weights(&[
                        ("citizen_report_rate", 10),
                        ("filed_band", 20),
                        ("closure_rate", 35),
                        ("on_time_closure_rate", 35),
                    ]),
                ),
                (
                    SubjectKind::Department,
                    weights(&[
                        ("closure_rate", 30),
                        ("on_time_disposal_rate", 40),
                        ("rework_rate", 20),
                        ("dispatched_band", 10),
                    ]),
                ),
                // DOMAIN.md: 40/20/20/20.
                (
                    SubjectKind::Collector,
                    weights(&[
                        ("valid_report_rate", 40),
                        ("missed_report_rate", 20),
                        ("on_time_verification_rate", 20),
                        ("on_time_check_rate", 20),
                    ]),
                ),
                // DOMAIN.md gives 25/40/35 over the count band and the on-time dispatch of
                // verification and check tasks; in this loop those tasks follow the state
                // machine, not the acceptor, so acceptance in time carries both of them.
                (SubjectKind::Acceptor, weights(&[("accepted_band", 25), ("on_time_acceptance_rate", 75)])),
                (
                    SubjectKind::Leader,
                    weights(&[("on_time_filing_rate", 25), ("accurate_filing_rate", 40), ("on_time_closing_rate", 35)]),
                ),
                (
                    SubjectKind::Dispatcher,
                    weights(&[("dispatched_band", 20), ("on_time_dispatch_rate", 40), ("accurate_dispatch_rate", 40)]),
                ),
            ]
            .into(),
            bands: Bands {
                region_filed: [
                    ("grid".to_owned(), classes(10, 6, 3)),
                    ("community".to_owned(), classes(300, 180, 90)),
                    ("street".to_owned(), classes(3000, 1800, 900)),
                    ("district".to_owned(), classes(20000, 12000, 6000)),
                ]
                .into(),
                acceptor_accepted: 1500,
                dispatcher_dispatched: 1500,
                department_dispatched: 100,
            },
            region_classes: BTreeMap::new(),
            default_region_class: "A".into(),
            grades: [("A", 90.0), ("B", 75.0), ("C", 60.0), ("D", 40.0), ("E", 0.0)]
                .into_iter()
                .map(|(g, s)| GradeBand { grade: g.into(), min_score: s })
                .collect(),
        }
    }
}

/// A configuration error: the field (a JSON path) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

fn config_error(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError { field: field.into(), reason: reason.into() }
}

/// `Err(why)` unless `weights` name only scored metrics of `kind` and sum to 100 %.
pub fn validate_weights(kind: SubjectKind, weights: &Weights) -> Result<(), String> {
    let names = scored_metric_names(kind);
    if let Some(bad) = weights.keys().find(|k| !names.contains(k)) {
        return Err(format!("{bad} is not a scored {} metric (one of {})", kind.as_str(), names.join(", ")));
    }
    if let Some((name, w)) = weights.iter().find(|(_, w)| **w > 100) {
        return Err(format!("{name} weighs {w} %, more than 100 %"));
    }
    let sum: u64 = weights.values().map(|w| u64::from(*w)).sum();
    if sum != 100 {
        return Err(format!("{} weights sum to {sum} %, not 100 %", kind.as_str()));
    }
    Ok(())
}

impl EvalConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for kind in SubjectKind::ALL {
            let w =
                self.weights.get(&kind).ok_or_else(|| config_error(format!("weights.{}", kind.as_str()), "missing"))?;
            validate_weights(kind, w).map_err(|r| config_error(format!("weights.{}", kind.as_str()), r))?;
        }
        for level in ["grid", "community", "street", "district"] {
            let classes = self
                .bands
                .region_filed
                .get(level)
                .ok_or_else(|| config_error(format!("bands.region_filed.{level}"), "missing"))?;
            if classes.is_empty() {
                return Err(config_error(format!("bands.region_filed.{level}"), "names no region class"));
            }
            for (class, n) in classes {
                if *n == 0 {
                    return Err(config_error(format!("bands.region_filed.{level}.{class}"), "must be at least 1"));
                }
            }
        }
        if let Some(bad) =
            self.bands.region_filed.keys().find(|l| !["grid", "community", "street", "district"].contains(&l.as_str()))
        {
            return Err(config_error(format!("bands.region_filed.{bad}"), "not a region level"));
        }
        for (field, n) in [
            ("bands.acceptor_accepted", self.bands.acceptor_accepted),
            ("bands.dispatcher_dispatched", self.bands.dispatcher_dispatched),
            ("bands.department_dispatched", self.bands.department_dispatched),
        ] {
            if n == 0 {
                return Err(config_error(field, "must be at least 1"));
            }
        }
        let known = |class: &str| self.bands.region_filed.values().all(|m| m.contains_key(class));
        if !known(&self.default_region_class) {
            return Err(config_error("default_region_class", "has no band at every region level"));
        }
        for (code, class) in &self.region_classes {
            if crate::codes::RegionCode::parse(code).is_err() {
                return Err(config_error(format!("region_classes.{code}"), "not a region code"));
            }
            if !known(class) {
                return Err(config_error(
                    format!("region_classes.{code}"),
                    format!("class {class} has no band at every region level"),
                ));
            }
        }
        if self.grades.is_empty() {
            return Err(config_error("grades", "names no grade"));
        }
        for (i, g) in self.grades.iter().enumerate() {
            let field = format!("grades[{i}]");
            if g.grade.trim().is_empty() || g.grade.chars().count() > 8 {
                return Err(config_error(format!("{field}.grade"), "1–8 characters"));
            }
            if !(0.0..=100.0).contains(&g.min_score) {
                return Err(config_error(format!("{field}.min_score"), "must be within 0–100"));
            }
            if i > 0 && g.min_score >= self.grades[i - 1].min_score {
                return Err(config_error(format!("{field}.min_score"), "grades go from the highest score down"));
            }
            if self.grades[..i].iter().any(|o| o.grade == g.grade) {
                return Err(config_error(format!("{field}.grade"), "named twice"));
            }
        }
        if self.grades.last().is_some_and(|g| g.min_score != 0.0) {
            return Err(config_error(
                format!("grades[{}].min_score", self.grades.len() - 1),
                "the lowest grade starts at 0",
            ));
        }
        Ok(())
    }

    /// The class of a region: configured for it, else for the nearest region above it, else
    /// the default.
    pub fn region_class(&self, code: &str) -> String {
        [15, 12, 9, 6]
            .into_iter()
            .filter(|n| *n <= code.len())
            .find_map(|n| self.region_classes.get(&code[..n]))
            .cloned()
            .unwrap_or_else(|| self.default_region_class.clone())
    }

    fn region_band(&self, level: RegionLevel, class: Option<&str>) -> u32 {
        let class = class.unwrap_or(&self.default_region_class);
        self.bands.region_filed.get(level.as_str()).and_then(|m| m.get(class)).copied().unwrap_or(1)
    }

    /// The grade of a score.
    pub fn grade(&self, score: f64) -> String {
        self.grades
            .iter()
            .find(|g| score >= g.min_score)
            .or(self.grades.last())
            .map(|g| g.grade.clone())
            .unwrap_or_default()
    }
}

/// The score of one metric, 0–1: a rate (or 1 − rate where lower is better), a band as the
/// share of the expected count reached.
pub fn metric_score(m: &Metric) -> Option<f64> {
    match m.kind {
        MetricKind::Rate => Some(if m.lower_is_better { 1.0 - m.value } else { m.value }.clamp(0.0, 1.0)),
        MetricKind::Band => Some((m.numerator as f64 / m.denominator.max(1) as f64).clamp(0.0, 1.0)),
        MetricKind::Count | MetricKind::Minutes => None,
    }
}

/// Score 0–100: the weighted sum of the metric scores, rounded to 0.01.
pub fn score(metrics: &[Metric], weights: &Weights) -> f64 {
    let s: f64 = metrics.iter().filter_map(|m| Some(f64::from(*weights.get(m.name)?) * metric_score(m)?)).sum();
    (s * 100.0).round() / 100.0
}

/// DOMAIN.md's default grades: A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, E below.
pub fn grade(score: f64) -> String {
    EvalConfig::default().grade(score)
}

#[cfg(test)]
mod tests;
