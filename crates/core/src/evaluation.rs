//! Comprehensive evaluation (综合评价, GB/T 30428.4): what each event of the case log counts for
//! whom, and the metrics, scores and grades computed from those counts.
//!
//! One function, [`contributions`], says what an event adds to which subject's counters, on
//! which day. Incremental aggregates (written in the event's transaction) and a full
//! recomputation from the log both sum exactly these contributions, so they cannot disagree.
//! [`metrics`] turns a subject's summed [`Tally`] into the standard rates, [`score`] weights
//! them, [`grade`] bands the score.

use crate::case::{Case, Change, Event, Source};
use crate::codes::RegionLevel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Who is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A region at any level (grid, community, street, district); id = region code.
    Region,
    /// A department; id = department id.
    Department,
    /// A collector (监督员); id = user id.
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

/// A counter of the evaluation. Each is a plain count of events (or cases) in a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Counter {
    /// Reports made (上报数).
    Reported,
    /// Citizen reports confirmed on site (监督举报).
    CitizenConfirmed,
    /// Accepted (受理数).
    Accepted,
    AcceptedOnTime,
    /// Filed (立案数).
    Filed,
    FiledOnTime,
    /// Voided after intake or filing (作废): a duplicate or an invalid report.
    Voided,
    /// Dispatched (派遣数); for a department: cases it received.
    Dispatched,
    DispatchedOnTime,
    /// Disposed and reported back by a department (处置数).
    Disposed,
    DisposedOnTime,
    /// A disposal that failed its check (返工).
    Reworked,
    /// Returned to dispatch by the department (回退).
    Returned,
    /// Verification tasks done by a collector (核实).
    Verified,
    VerifiedOnTime,
    /// Checks done by a collector (核查).
    Checked,
    CheckedOnTime,
    /// Closed (结案数).
    Closed,
    ClosedOnTime,
}

/// What one event adds: `delta` to `counter` of subject (`kind`, `id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Contribution {
    pub kind: SubjectKind,
    pub id: String,
    pub counter: Counter,
    pub delta: i64,
}

/// Region subjects of a case: its grid and the community, street and district above it.
fn regions(case: &Case) -> Vec<String> {
    [RegionLevel::Grid, RegionLevel::Community, RegionLevel::Street, RegionLevel::District]
        .into_iter()
        .filter_map(|l| case.grid_code.at_level(l).map(|c| c.as_str().to_owned()))
        .collect()
}

/// The counters `event` adds to. `case` is the case *after* the event (its projection), so
/// the grid, source and department are known for every event. The contribution is dated by
/// the event (`event.at`): periods are sums over days.
pub fn contributions(case: &Case, event: &Event) -> Vec<Contribution> {
    let mut out = Vec::new();
    let mut add =
        |kind: SubjectKind, id: String, counter: Counter| out.push(Contribution { kind, id, counter, delta: 1 });
    let actor = event.actor_id.map(|a| a.to_string());
    let on_time = !event.late;
    let region_ids = regions(case);
    let department = case.department_id.map(|d| d.to_string());
    match &event.change {
        Change::Report { source, .. } => {
            for r in &region_ids {
                add(SubjectKind::Region, r.clone(), Counter::Reported);
            }
            if *source == Source::Collector {
                if let Some(a) = &actor {
                    add(SubjectKind::Collector, a.clone(), Counter::Reported);
                }
            }
        }
        Change::Verify { confirmed } => {
            if let Some(a) = &actor {
                add(SubjectKind::Collector, a.clone(), Counter::Verified);
                if on_time {
                    add(SubjectKind::Collector, a.clone(), Counter::VerifiedOnTime);
                }
            }
            if *confirmed && case.source == Source::Citizen {
                for r in &region_ids {
                    add(SubjectKind::Region, r.clone(), Counter::CitizenConfirmed);
                }
            }
        }
        Change::Accept => {
            if let Some(a) = &actor {
                add(SubjectKind::Acceptor, a.clone(), Counter::Accepted);
                if on_time {
                    add(SubjectKind::Acceptor, a.clone(), Counter::AcceptedOnTime);
                }
            }
        }
        Change::File { .. } => {
            for r in &region_ids {
                add(SubjectKind::Region, r.clone(), Counter::Filed);
            }
            if let Some(a) = &actor {
                add(SubjectKind::Leader, a.clone(), Counter::Filed);
                if on_time {
                    add(SubjectKind::Leader, a.clone(), Counter::FiledOnTime);
                }
            }
        }
        Change::Void { .. } => {
            for r in &region_ids {
                add(SubjectKind::Region, r.clone(), Counter::Voided);
            }
            if let Some(a) = &actor {
                add(SubjectKind::Leader, a.clone(), Counter::Voided);
            }
        }
        Change::Dispatch { department_id, .. } => {
            if let Some(a) = &actor {
                add(SubjectKind::Dispatcher, a.clone(), Counter::Dispatched);
                if on_time {
                    add(SubjectKind::Dispatcher, a.clone(), Counter::DispatchedOnTime);
                }
            }
            add(SubjectKind::Department, department_id.to_string(), Counter::Dispatched);
        }
        Change::Return { department_id } => {
            add(SubjectKind::Department, department_id.to_string(), Counter::Returned);
        }
        Change::Dispose => {
            if let Some(d) = &department {
                add(SubjectKind::Department, d.clone(), Counter::Disposed);
                if on_time {
                    add(SubjectKind::Department, d.clone(), Counter::DisposedOnTime);
                }
            }
        }
        Change::Check { passed } => {
            if let Some(a) = &actor {
                add(SubjectKind::Collector, a.clone(), Counter::Checked);
                if on_time {
                    add(SubjectKind::Collector, a.clone(), Counter::CheckedOnTime);
                }
            }
            if !passed {
                if let Some(d) = &department {
                    add(SubjectKind::Department, d.clone(), Counter::Reworked);
                }
                // Rework is charged to the dispatch as well (accurate dispatch).
                for r in &region_ids {
                    add(SubjectKind::Region, r.clone(), Counter::Reworked);
                }
            }
        }
        Change::Close => {
            let closed_on_time = case.case_deadline.is_none_or(|d| event.at <= d);
            for r in &region_ids {
                add(SubjectKind::Region, r.clone(), Counter::Closed);
                if closed_on_time {
                    add(SubjectKind::Region, r.clone(), Counter::ClosedOnTime);
                }
            }
            if let Some(d) = &department {
                add(SubjectKind::Department, d.clone(), Counter::Closed);
                if closed_on_time {
                    add(SubjectKind::Department, d.clone(), Counter::ClosedOnTime);
                }
            }
            if let Some(a) = &actor {
                add(SubjectKind::Leader, a.clone(), Counter::Closed);
                if on_time {
                    add(SubjectKind::Leader, a.clone(), Counter::ClosedOnTime);
                }
            }
        }
        Change::Reject { .. }
        | Change::Refuse { .. }
        | Change::HandDown { .. }
        | Change::RequestExtension { .. }
        | Change::ApproveExtension { .. }
        | Change::RejectExtension
        | Change::RequestSuspension
        | Change::ApproveSuspension
        | Change::RejectSuspension
        | Change::Resume
        | Change::Urge => {}
    }
    out
}

/// A subject's counters summed over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally(pub BTreeMap<Counter, i64>);

impl Tally {
    pub fn get(&self, c: Counter) -> i64 {
        self.0.get(&c).copied().unwrap_or(0)
    }
    pub fn add(&mut self, c: Counter, delta: i64) {
        *self.0.entry(c).or_default() += delta;
    }
}

/// One metric of a subject: a rate with the counts behind it, or a count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Metric {
    pub name: String,
    /// The rate (0–1) or, for a count, the count.
    pub value: f64,
    pub numerator: i64,
    pub denominator: i64,
}

fn rate(name: &str, numerator: i64, denominator: i64) -> Metric {
    // Nothing to do counts as fully done: a grid with no filed case has not failed anyone.
    let value = if denominator <= 0 { 1.0 } else { numerator as f64 / denominator as f64 };
    Metric { name: name.to_owned(), value, numerator, denominator }
}

/// The metrics of DOMAIN.md's evaluation table that the case log alone determines.
pub fn metrics(kind: SubjectKind, t: &Tally) -> Vec<Metric> {
    use Counter::*;
    match kind {
        SubjectKind::Region => vec![
            rate("citizen_report_rate", t.get(CitizenConfirmed), t.get(Filed)),
            rate("closure_rate", t.get(Closed), t.get(Filed)),
            rate("on_time_closure_rate", t.get(ClosedOnTime), t.get(Filed)),
            rate("rework_rate", t.get(Reworked), t.get(Filed)),
        ],
        SubjectKind::Collector => vec![
            rate("on_time_verification_rate", t.get(VerifiedOnTime), t.get(Verified)),
            rate("on_time_check_rate", t.get(CheckedOnTime), t.get(Checked)),
        ],
        SubjectKind::Acceptor => vec![rate("on_time_acceptance_rate", t.get(AcceptedOnTime), t.get(Accepted))],
        SubjectKind::Leader => vec![
            rate("on_time_filing_rate", t.get(FiledOnTime), t.get(Filed)),
            rate("accurate_filing_rate", t.get(Filed) - t.get(Voided), t.get(Filed)),
            rate("on_time_closing_rate", t.get(ClosedOnTime), t.get(Closed)),
        ],
        SubjectKind::Dispatcher => vec![rate("on_time_dispatch_rate", t.get(DispatchedOnTime), t.get(Dispatched))],
        SubjectKind::Department => vec![
            rate("closure_rate", t.get(Closed), t.get(Dispatched)),
            rate("on_time_disposal_rate", t.get(DisposedOnTime), t.get(Disposed)),
            rate("rework_rate", t.get(Reworked), t.get(Disposed)),
        ],
    }
}

/// Weights of a subject kind's metrics, in percent; they must sum to 100.
pub type Weights = BTreeMap<String, u32>;

/// `Err(why)` unless `weights` name only metrics of `kind` and sum to 100 %.
pub fn validate_weights(kind: SubjectKind, weights: &Weights) -> Result<(), String> {
    let names: Vec<String> = metrics(kind, &Tally::default()).into_iter().map(|m| m.name).collect();
    if let Some(bad) = weights.keys().find(|k| !names.contains(k)) {
        return Err(format!("{bad} is not a {} metric", kind.as_str()));
    }
    let sum: u32 = weights.values().sum();
    if sum != 100 {
        return Err(format!("{} weights sum to {sum} %, not 100 %", kind.as_str()));
    }
    Ok(())
}

/// Score 0–100: the weighted sum of the rates (a rate "lower is better" counts as 1 − rate).
pub fn score(metrics: &[Metric], weights: &Weights) -> f64 {
    metrics
        .iter()
        .filter_map(|m| {
            let w = f64::from(*weights.get(&m.name)?);
            let v = if m.name == "rework_rate" { 1.0 - m.value } else { m.value };
            Some(w * v.clamp(0.0, 1.0))
        })
        .sum()
}

/// DOMAIN.md's grades: A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, E below.
pub fn grade(score: f64) -> char {
    match score {
        s if s >= 90.0 => 'A',
        s if s >= 75.0 => 'B',
        s if s >= 60.0 => 'C',
        s if s >= 40.0 => 'D',
        _ => 'E',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(pairs: &[(Counter, i64)]) -> Tally {
        let mut t = Tally::default();
        for (c, n) in pairs {
            t.add(*c, *n);
        }
        t
    }

    #[test]
    fn region_metrics_by_hand() {
        use Counter::*;
        // 10 filed, 3 confirmed citizen reports, 8 closed of which 6 on time, 1 rework.
        let t = tally(&[(Filed, 10), (CitizenConfirmed, 3), (Closed, 8), (ClosedOnTime, 6), (Reworked, 1)]);
        let m = metrics(SubjectKind::Region, &t);
        let v: Vec<(&str, f64, i64, i64)> =
            m.iter().map(|m| (m.name.as_str(), m.value, m.numerator, m.denominator)).collect();
        assert_eq!(
            v,
            vec![
                ("citizen_report_rate", 0.3, 3, 10),
                ("closure_rate", 0.8, 8, 10),
                ("on_time_closure_rate", 0.6, 6, 10),
                ("rework_rate", 0.1, 1, 10),
            ]
        );
        let w: Weights = [("closure_rate", 40), ("on_time_closure_rate", 40), ("rework_rate", 20)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        validate_weights(SubjectKind::Region, &w).unwrap();
        // 40 × 0.8 + 40 × 0.6 + 20 × (1 − 0.1) = 32 + 24 + 18 = 74 → C.
        let s = score(&m, &w);
        assert!((s - 74.0).abs() < 1e-9, "{s}");
        assert_eq!(grade(s), 'C');
    }

    #[test]
    fn leader_and_department_by_hand() {
        use Counter::*;
        let leader = metrics(SubjectKind::Leader, &tally(&[(Filed, 20), (FiledOnTime, 18), (Voided, 2), (Closed, 0)]));
        assert_eq!(leader[0].value, 0.9);
        assert_eq!((leader[1].numerator, leader[1].denominator), (18, 20));
        assert_eq!(leader[2].value, 1.0, "nothing to close is not a failure");
        let dept = metrics(
            SubjectKind::Department,
            &tally(&[(Dispatched, 4), (Disposed, 4), (DisposedOnTime, 3), (Reworked, 1), (Closed, 3)]),
        );
        assert_eq!(dept.iter().map(|m| m.value).collect::<Vec<_>>(), vec![0.75, 0.75, 0.25]);
    }

    #[test]
    fn weights_must_sum_to_100_and_name_real_metrics() {
        let mut w: Weights = [("on_time_dispatch_rate".to_owned(), 100)].into();
        assert!(validate_weights(SubjectKind::Dispatcher, &w).is_ok());
        w.insert("closure_rate".into(), 0);
        assert!(validate_weights(SubjectKind::Dispatcher, &w).unwrap_err().contains("not a dispatcher metric"));
        let w: Weights = [("on_time_dispatch_rate".to_owned(), 90)].into();
        assert!(validate_weights(SubjectKind::Dispatcher, &w).unwrap_err().contains("sum to 90"));
    }

    #[test]
    fn grades() {
        assert_eq!([95.0, 90.0, 89.9, 75.0, 60.0, 40.0, 39.9].map(grade), ['A', 'A', 'B', 'B', 'C', 'D', 'E']);
    }

    #[test]
    fn subject_kinds_round_trip() {
        for k in SubjectKind::ALL {
            assert_eq!(SubjectKind::parse(k.as_str()), Some(k));
        }
    }
}
