//! Rewards (有奖举报) and deductions (扣款): who is paid and who is docked for one problem, as
//! a pure function of the reports about it; and the ledger (台账) arithmetic that turns that
//! answer into immutable entries.
//!
//! A *set* is one problem: a root case and every case voided as its duplicate (merged), however
//! deep. [`assess`] says what the ledger should hold for the set — at most one reward, to the
//! earliest verified citizen report, and the deductions that go with it — and [`reconcile`]
//! turns the difference between that and what the ledger already holds into new entries:
//! reversals of what no longer holds, then what is newly due. Entries are never edited, so the
//! ledger tells the whole story, and running reconcile twice writes nothing the second time.

use crate::case::{Point, Source, State};
use crate::citizen::{DedupRule, Phone, Service};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use utoipa::ToSchema;

/// Reward or deduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Owed to a citizen (奖励).
    Reward,
    /// Owed by a contractor (扣款).
    Deduction,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Reward => "reward",
            EntryKind::Deduction => "deduction",
        }
    }
    pub fn parse(s: &str) -> Option<EntryKind> {
        [EntryKind::Reward, EntryKind::Deduction].into_iter().find(|k| k.as_str() == s)
    }
}

/// Who an entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartyKind {
    /// A citizen; the party is the user id.
    Citizen,
    /// A cleaning contractor (保洁公司); the party is its name as in the contractor areas.
    Contractor,
    /// The information-collection company (信息采集公司); the party is `collection`.
    Collection,
}

impl PartyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::Citizen => "citizen",
            PartyKind::Contractor => "contractor",
            PartyKind::Collection => "collection",
        }
    }
    pub fn parse(s: &str) -> Option<PartyKind> {
        [PartyKind::Citizen, PartyKind::Contractor, PartyKind::Collection].into_iter().find(|k| k.as_str() == s)
    }
}

/// The party name of the collection company.
pub const COLLECTION_PARTY: &str = "collection";

/// Who reported, as far as money is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reporter {
    /// A citizen account with a proven phone number; `excluded` is why that phone may not
    /// earn (staff, a contractor's people), from the exclusion list.
    Citizen { user_id: i64, phone: Phone, excluded: Option<String> },
    /// A citizen without an account (anonymous): may report, never earns.
    Anonymous,
    /// Staff or a machine: collector, camera, hotline operator, ...
    Staff,
}

/// What the reward decision needs to know about one report of the set.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFacts {
    pub case_id: i64,
    pub source: Source,
    /// Server receive time: who was first is decided by it, never by the client's clock.
    pub received_at: Timestamp,
    pub state: State,
    pub verified: Option<bool>,
    pub duplicate_of: Option<i64>,
    pub class_code: String,
    pub location: Point,
    pub grid_code: String,
    pub reporter: Reporter,
    /// Owner of the cleaning contractor area (保洁责任区) holding the point.
    pub contractor: Option<String>,
    /// Owner (collector username) of the collector area (监督员责任区) holding the point.
    pub collector: Option<String>,
}

/// The configurable rules (奖励规则): approval threshold, caps, the same-spot rule and the
/// deduction table. Amounts are integer fen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Rewards above this need an approver's yes before they are paid.
    pub approval_threshold_fen: i64,
    /// Most rewards one citizen earns in one local day.
    pub daily_cap: u32,
    /// Most fen one citizen earns in one local month.
    pub monthly_cap_fen: i64,
    /// A citizen rewarded for a spot is not rewarded again within this radius ...
    pub same_spot_radius_m: f64,
    /// ... for this many days.
    pub same_spot_days: u32,
    /// Deducted from the cleaning contractor of the area, per rewarded cleaning report.
    pub cleaning_deduction_fen: i64,
    /// Deducted from the collection company per citizen-found problem (漏报).
    pub missed_report_deduction_fen: i64,
    /// Per-class overrides of the two deductions (`class code → fen`).
    #[serde(default)]
    pub cleaning_deduction_by_class: BTreeMap<String, i64>,
    #[serde(default)]
    pub missed_report_deduction_by_class: BTreeMap<String, i64>,
    /// Monthly reward budget (MISSION.md: about 800,000 CNY).
    pub monthly_budget_fen: i64,
    /// Day of the month the settlement runs (the 5th).
    pub settlement_day: u8,
    /// Most reports one citizen account files in an hour (bulk reporting is refused, 429).
    #[serde(default = "default_per_hour")]
    pub max_reports_per_hour: u32,
    /// Most reports one citizen account files in 24 hours.
    #[serde(default = "default_per_day")]
    pub max_reports_per_day: u32,
}

fn default_per_hour() -> u32 {
    10
}

fn default_per_day() -> u32 {
    30
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            approval_threshold_fen: 10_000,
            daily_cap: 5,
            monthly_cap_fen: 50_000,
            same_spot_radius_m: 30.0,
            same_spot_days: 7,
            cleaning_deduction_fen: 5_000,
            missed_report_deduction_fen: 2_000,
            cleaning_deduction_by_class: BTreeMap::new(),
            missed_report_deduction_by_class: BTreeMap::new(),
            monthly_budget_fen: 80_000_000,
            settlement_day: 5,
            max_reports_per_hour: default_per_hour(),
            max_reports_per_day: default_per_day(),
        }
    }
}

impl Rules {
    /// `Err((field, why))` for a rule set that cannot be right.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let fen = |v: i64| (0..=100_000_000_000).contains(&v);
        if !fen(self.approval_threshold_fen) {
            return Err(("approval_threshold_fen", "0 to 10^11 fen".into()));
        }
        if self.daily_cap == 0 || self.daily_cap > 1000 {
            return Err(("daily_cap", "1 to 1000".into()));
        }
        if !fen(self.monthly_cap_fen) || !fen(self.monthly_budget_fen) {
            return Err(("monthly_cap_fen", "caps and budget are 0 to 10^11 fen".into()));
        }
        if !(self.same_spot_radius_m.is_finite() && (0.0..=5000.0).contains(&self.same_spot_radius_m)) {
            return Err(("same_spot_radius_m", "0 to 5000 metres".into()));
        }
        if self.same_spot_days > 366 {
            return Err(("same_spot_days", "0 to 366".into()));
        }
        for (f, v) in [
            ("cleaning_deduction_fen", self.cleaning_deduction_fen),
            ("missed_report_deduction_fen", self.missed_report_deduction_fen),
        ] {
            if !(0..=10_000_000).contains(&v) {
                return Err((f, "0 to 10,000,000 fen".into()));
            }
        }
        for (f, map) in [
            ("cleaning_deduction_by_class", &self.cleaning_deduction_by_class),
            ("missed_report_deduction_by_class", &self.missed_report_deduction_by_class),
        ] {
            for (code, v) in map {
                if crate::codes::ClassCode::parse(code).is_err() || !(0..=10_000_000).contains(v) {
                    return Err((f, format!("{code}: a class code and 0 to 10,000,000 fen")));
                }
            }
        }
        if !(1..=1000).contains(&self.max_reports_per_hour) || !(1..=10_000).contains(&self.max_reports_per_day) {
            return Err(("max_reports_per_hour", "1 to 1000 an hour and 1 to 10,000 a day".into()));
        }
        if !(1..=28).contains(&self.settlement_day) {
            return Err(("settlement_day", "1 to 28".into()));
        }
        Ok(())
    }

    fn cleaning_deduction(&self, class: &str) -> i64 {
        self.cleaning_deduction_by_class.get(class).copied().unwrap_or(self.cleaning_deduction_fen)
    }

    fn missed_deduction(&self, class: &str) -> i64 {
        self.missed_report_deduction_by_class.get(class).copied().unwrap_or(self.missed_report_deduction_fen)
    }
}

/// A reward the same citizen holds outside this set, for the caps and the same-spot rule.
#[derive(Debug, Clone, PartialEq)]
pub struct PastReward {
    pub case_id: i64,
    pub received_at: Timestamp,
    pub amount_fen: i64,
    pub location: Point,
}

/// An entry the ledger should hold for the set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Due {
    pub kind: EntryKind,
    pub party_kind: PartyKind,
    pub party: String,
    pub case_id: i64,
    pub amount_fen: i64,
    /// The rule that made it, e.g. `first_reporter`, `cleaning_missed`, `collection_missed`.
    pub rule: String,
    pub needs_approval: bool,
}

/// What [`assess`] decided, with the reason in words when nobody is rewarded.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub root: i64,
    /// The report that is rewarded (or would have been, when `reason` says why not).
    pub first: Option<i64>,
    pub due: Vec<Due>,
    /// `None` when a reward is due; otherwise a stable reason code.
    pub reason: Option<&'static str>,
}

/// The local calendar day and month of `t` at `offset_minutes` east of UTC.
pub fn local_day(t: Timestamp, offset_minutes: i32) -> (i16, i8, i8) {
    let off = jiff::tz::Offset::from_seconds(offset_minutes * 60).unwrap_or(jiff::tz::Offset::UTC);
    let d = off.to_datetime(t);
    (d.year(), d.month(), d.day())
}

/// `YYYY-MM` of `t`, local.
pub fn month_of(t: Timestamp, offset_minutes: i32) -> String {
    let (y, m, _) = local_day(t, offset_minutes);
    format!("{y:04}-{m:02}")
}

/// Great-circle distance in metres (spherical Earth; plenty for tens of metres).
pub fn distance_m(a: Point, b: Point) -> f64 {
    let r = 6_371_008.8;
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dla = la2 - la1;
    let dlo = (b.lon - a.lon).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().min(1.0).asin()
}

/// The root of `id` in a set given by `duplicate_of` links; stops on cycles.
pub fn root_of(id: i64, duplicate_of: &HashMap<i64, Option<i64>>) -> i64 {
    let mut cur = id;
    for _ in 0..=duplicate_of.len() {
        match duplicate_of.get(&cur).copied().flatten() {
            Some(next) if next != cur => cur = next,
            _ => return cur,
        }
    }
    cur
}

fn confirmed(set: &[ReportFacts], root: &ReportFacts) -> bool {
    set.iter().any(|r| r.verified == Some(true))
        || (!root.source.needs_verification()
            && matches!(
                root.state,
                State::Accepted
                    | State::Filed
                    | State::Dispatched
                    | State::Disposed
                    | State::Checked
                    | State::Closed
                    | State::Suspended
            ))
}

/// What the ledger should hold for one set. `set` holds every report of it (root included);
/// `service` is the citizen category of the first report's class (none: not a citizen
/// category, no reward); `history` the first reporter's rewards outside the set; `declined`
/// the cases whose reward an approver turned down; `existing` the entries the set's cases
/// hold now.
///
/// The facts of the problem (which report came first, was it confirmed, who reported it, did
/// an approver decline) are re-decided every time. The configuration (category, amounts,
/// exclusions, caps, the same-spot rule) applies when a reward is first granted: a reward that
/// stands is kept with its deductions as they were, so a later change of the tables or a
/// later reward elsewhere never takes back money already granted.
pub fn assess(
    set: &[ReportFacts],
    service: Option<&Service>,
    rules: &Rules,
    history: &[PastReward],
    declined: &HashSet<i64>,
    offset_minutes: i32,
    existing: &[Entry],
) -> Assessment {
    let none = |root: i64, first: Option<i64>, reason| Assessment { root, first, due: vec![], reason: Some(reason) };
    let links: HashMap<i64, Option<i64>> = set.iter().map(|r| (r.case_id, r.duplicate_of)).collect();
    let Some(any) = set.first() else {
        return none(0, None, "empty");
    };
    let root_id = root_of(any.case_id, &links);
    let Some(root) = set.iter().find(|r| r.case_id == root_id) else {
        return none(root_id, None, "root_missing");
    };
    // A report found not to exist on site, or rejected, is not a report of this problem.
    let Some(first) = set
        .iter()
        .filter(|r| r.verified != Some(false) && !matches!(r.state, State::Rejected | State::Refused))
        .min_by_key(|r| (r.received_at, r.case_id))
    else {
        return none(root_id, None, "not_confirmed");
    };
    let fid = Some(first.case_id);
    if matches!(root.state, State::Rejected | State::Refused) || (root.state == State::Voided) {
        return none(root_id, fid, "not_confirmed");
    }
    if !confirmed(set, root) {
        return none(root_id, fid, "not_verified");
    }
    if first.source != Source::Citizen {
        return none(root_id, fid, "known_before");
    }
    let (user_id, phone, excluded) = match &first.reporter {
        Reporter::Citizen { user_id, phone, excluded } => (*user_id, phone, excluded),
        Reporter::Anonymous => return none(root_id, fid, "anonymous"),
        Reporter::Staff => return none(root_id, fid, "staff"),
    };
    if declined.contains(&first.case_id) {
        return none(root_id, fid, "approval_declined");
    }
    // A reward already standing for this very report is kept as granted, with its deductions.
    let held: Vec<&Entry> = standing(existing).into_iter().filter(|e| e.case_id == first.case_id).collect();
    if held.iter().any(|e| e.kind == EntryKind::Reward && e.party == user_id.to_string()) {
        let due = held
            .into_iter()
            .map(|e| Due {
                kind: e.kind,
                party_kind: e.party_kind,
                party: e.party.clone(),
                case_id: e.case_id,
                amount_fen: e.amount_fen,
                rule: e.rule.clone(),
                needs_approval: e.needs_approval,
            })
            .collect();
        return Assessment { root: root_id, first: fid, due, reason: None };
    }
    if excluded.is_some() {
        return none(root_id, fid, "excluded");
    }
    let Some(service) = service.filter(|s| s.code == first.class_code) else {
        return none(root_id, fid, "not_a_citizen_category");
    };
    let spot_window = jiff::SignedDuration::from_hours(24 * i64::from(rules.same_spot_days));
    if history.iter().any(|h| {
        h.received_at <= first.received_at
            && first.received_at.duration_since(h.received_at) <= spot_window
            && distance_m(h.location, first.location) <= rules.same_spot_radius_m
    }) {
        return none(root_id, fid, "same_spot");
    }
    let day = local_day(first.received_at, offset_minutes);
    if history.iter().filter(|h| local_day(h.received_at, offset_minutes) == day).count() >= rules.daily_cap as usize {
        return none(root_id, fid, "daily_cap");
    }
    let month = (day.0, day.1);
    let month_sum: i64 = history
        .iter()
        .filter(|h| {
            let d = local_day(h.received_at, offset_minutes);
            (d.0, d.1) == month
        })
        .map(|h| h.amount_fen)
        .sum();
    if month_sum + service.reward_fen > rules.monthly_cap_fen {
        return none(root_id, fid, "monthly_cap");
    }
    let _ = phone;
    let mut due = vec![Due {
        kind: EntryKind::Reward,
        party_kind: PartyKind::Citizen,
        party: user_id.to_string(),
        case_id: first.case_id,
        amount_fen: service.reward_fen,
        rule: "first_reporter".into(),
        needs_approval: service.reward_fen > rules.approval_threshold_fen,
    }];
    if service.cleaning {
        if let Some(contractor) = &first.contractor {
            let amount = rules.cleaning_deduction(&first.class_code);
            if amount > 0 {
                due.push(Due {
                    kind: EntryKind::Deduction,
                    party_kind: PartyKind::Contractor,
                    party: contractor.clone(),
                    case_id: first.case_id,
                    amount_fen: amount,
                    rule: "cleaning_missed".into(),
                    needs_approval: false,
                });
            }
        }
    }
    let missed = rules.missed_deduction(&first.class_code);
    if missed > 0 {
        due.push(Due {
            kind: EntryKind::Deduction,
            party_kind: PartyKind::Collection,
            party: COLLECTION_PARTY.into(),
            case_id: first.case_id,
            amount_fen: missed,
            rule: "collection_missed".into(),
            needs_approval: false,
        });
    }
    Assessment { root: root_id, first: fid, due, reason: None }
}

/// An entry already in the ledger, as reconcile needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    pub id: i64,
    pub kind: EntryKind,
    pub party_kind: PartyKind,
    pub party: String,
    pub case_id: i64,
    pub amount_fen: i64,
    pub rule: String,
    /// The entry this one reverses.
    pub reverses: Option<i64>,
    pub needs_approval: bool,
}

/// Where a ledger entry stands, for the people reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// Above the approval threshold, waiting for an approver.
    PendingApproval,
    /// The approver said no: never paid.
    Declined,
    /// Will be paid (or, for a correction, offset) at the next monthly settlement.
    Payable,
    /// Paid, deducted or offset by a settlement.
    Settled,
    /// Cancelled by a correcting entry before it was paid.
    Reversed,
}

impl EntryStatus {
    /// From what the ledger records about an entry: settled, the entry it reverses, the entry
    /// reversing it, and its approval.
    pub fn of(
        settled: bool,
        reverses: Option<i64>,
        reversed_by: Option<i64>,
        needs_approval: bool,
        approved: Option<bool>,
    ) -> EntryStatus {
        if settled {
            EntryStatus::Settled
        } else if reverses.is_some() {
            EntryStatus::Payable
        } else if reversed_by.is_some() {
            EntryStatus::Reversed
        } else if needs_approval && approved.is_none() {
            EntryStatus::PendingApproval
        } else if needs_approval && approved == Some(false) {
            EntryStatus::Declined
        } else {
            EntryStatus::Payable
        }
    }
}

/// An entry to append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewEntry {
    pub kind: EntryKind,
    pub party_kind: PartyKind,
    pub party: String,
    pub case_id: i64,
    pub amount_fen: i64,
    pub rule: String,
    pub reverses: Option<i64>,
    pub needs_approval: bool,
}

/// Entries still standing: not reversals, not reversed.
pub fn standing(existing: &[Entry]) -> Vec<&Entry> {
    let reversed: HashSet<i64> = existing.iter().filter_map(|e| e.reverses).collect();
    existing.iter().filter(|e| e.reverses.is_none() && !reversed.contains(&e.id)).collect()
}

/// The entries that turn `existing` (every entry of the set's cases) into `due`: a reversal
/// for each standing entry no longer due (`why` names the correction), then each due entry
/// not yet standing. A standing entry for the same party, case and rule is kept as it is,
/// whatever amount the rules say today, so reconcile is idempotent and rule changes are not
/// retroactive.
pub fn reconcile(existing: &[Entry], due: &[Due], why: &str) -> Vec<NewEntry> {
    let mut wanted: Vec<&Due> = due.iter().collect();
    let mut out = Vec::new();
    for e in standing(existing) {
        // Amount and approval are fixed when an entry is written: a later change of the
        // tables or the threshold applies to new entries and never claws back one standing.
        let same = wanted.iter().position(|d| {
            d.kind == e.kind
                && d.party_kind == e.party_kind
                && d.party == e.party
                && d.case_id == e.case_id
                && d.rule == e.rule
        });
        match same {
            Some(i) => {
                wanted.remove(i);
            }
            None => out.push(NewEntry {
                kind: e.kind,
                party_kind: e.party_kind,
                party: e.party.clone(),
                case_id: e.case_id,
                amount_fen: -e.amount_fen,
                rule: format!("reversal:{why}"),
                reverses: Some(e.id),
                needs_approval: false,
            }),
        }
    }
    out.extend(wanted.into_iter().map(|d| NewEntry {
        kind: d.kind,
        party_kind: d.party_kind,
        party: d.party.clone(),
        case_id: d.case_id,
        amount_fen: d.amount_fen,
        rule: d.rule.clone(),
        reverses: None,
        needs_approval: d.needs_approval,
    }));
    out
}

/// A report that may be the same problem as a new one (疑似重复), ranked for the acceptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Candidate {
    pub case_id: i64,
    pub distance_m: f64,
    /// Minutes between the two reports (absolute).
    pub minutes_apart: i64,
    /// Same class (true) or a related one (false).
    pub same_class: bool,
    /// 0..1, higher is more likely the same problem.
    pub score: f64,
}

/// What dedup needs to know about a report.
#[derive(Debug, Clone, PartialEq)]
pub struct DedupFacts {
    pub case_id: i64,
    pub class_code: String,
    pub location: Point,
    pub received_at: Timestamp,
}

/// The candidates among `others` for `new` under `rule`, most likely first: same or related
/// class, within the radius and the time window (either side: an older open case, or a later
/// report already filed).
pub fn rank_candidates(new: &DedupFacts, others: &[DedupFacts], rule: &DedupRule) -> Vec<Candidate> {
    let window_min = i64::from(rule.window_hours) * 60;
    let mut out: Vec<Candidate> = others
        .iter()
        .filter(|o| o.case_id != new.case_id)
        .filter_map(|o| {
            let same_class = o.class_code == new.class_code;
            if !same_class && !rule.related.contains(&o.class_code) {
                return None;
            }
            let d = distance_m(new.location, o.location);
            let minutes = (new.received_at.as_millisecond() - o.received_at.as_millisecond()).abs() / 60_000;
            if d > rule.radius_m || minutes > window_min {
                return None;
            }
            let near = 1.0 - d / rule.radius_m.max(1e-9);
            let recent = 1.0 - minutes as f64 / window_min.max(1) as f64;
            let score = 0.5 * near + 0.25 * recent + if same_class { 0.25 } else { 0.0 };
            Some(Candidate { case_id: o.case_id, distance_m: d, minutes_apart: minutes, same_class, score })
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.case_id.cmp(&b.case_id)));
    out
}

/// Month-to-date rewards against the monthly budget (预算).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BudgetView {
    pub month: String,
    pub budget_fen: i64,
    pub month_to_date_fen: i64,
    /// Month-to-date extrapolated to the whole month at the pace so far.
    pub projected_fen: i64,
    /// Budget share of the days elapsed.
    pub pro_rata_budget_fen: i64,
    /// The pace exceeds the budget (projected > budget).
    pub alert: bool,
}

/// `elapsed_ms` of `month_ms` of the month have passed.
pub fn budget_view(month: &str, budget_fen: i64, mtd_fen: i64, elapsed_ms: i64, month_ms: i64) -> BudgetView {
    let elapsed = elapsed_ms.clamp(1, month_ms.max(1)) as i128;
    let total = month_ms.max(1) as i128;
    let projected = (mtd_fen as i128 * total / elapsed) as i64;
    let pro_rata = (budget_fen as i128 * elapsed / total) as i64;
    BudgetView {
        month: month.to_owned(),
        budget_fen,
        month_to_date_fen: mtd_fen,
        projected_fen: projected,
        pro_rata_budget_fen: pro_rata,
        alert: projected > budget_fen,
    }
}

/// Format integer fen as yuan with two decimals (`1234` → `12.34`), exactly.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = fen.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

#[cfg(test)]
mod tests;
