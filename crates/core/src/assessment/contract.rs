//! Contracts paid against performance: the information-collection contract (信息采集市场化,
//! MISSION §4.2: 156 collectors, 6.93 M CNY a year) and the cleaning contracts (保洁).
//!
//! A monthly statement is the month's share of the yearly fee, the deductions itemised with the
//! cases behind them — the ledger's deductions for problems citizens found first (see
//! `reward.rs`), the on-site assessment findings in the contractor's areas, and a penalty for
//! every service level not met — and the net payable. Money is integer fen throughout; rates
//! are compared in integers and shown as decimals for reading only.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A rate that must reach `min_pct` percent; otherwise `penalty_bp` basis points (1/100 %) of
/// the month's fee are deducted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MinLevel {
    pub min_pct: u32,
    pub penalty_bp: u32,
}

/// A rate or count that may not exceed `max` (percent for rates, a number for counts);
/// otherwise `penalty_bp` basis points of the month's fee are deducted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxLevel {
    pub max: u32,
    pub penalty_bp: u32,
}

/// The collection contract's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CollectionTerms {
    /// Yearly fee, fen (6,930,000 CNY = 693,000,000 fen).
    pub yearly_fee_fen: i64,
    /// Collectors the contract asks for (shown beside the number that worked in the month).
    pub collectors: u32,
    /// Share of grids covered in the month: a collector reported, verified or checked there.
    pub coverage: MinLevel,
    /// Valid-report rate 有效上报率 = (filed + merged as duplicate) / reported.
    pub valid_reports: MinLevel,
    /// Missed-report rate 漏报率 = problems the collectors missed — found first by citizens
    /// (standing `collection` deductions of the ledger) or by on-site assessments (findings in
    /// a collector's area) — / cases filed, percent.
    pub missed_reports: MaxLevel,
    pub on_time_verification: MinLevel,
    pub on_time_check: MinLevel,
    /// Deducted per on-site assessment finding in a collector's area, fen.
    pub on_site_finding_fen: i64,
}

impl Default for CollectionTerms {
    fn default() -> Self {
        CollectionTerms {
            yearly_fee_fen: 693_000_000,
            collectors: 156,
            // The contract asks for every grid in every month.
            coverage: MinLevel { min_pct: 100, penalty_bp: 100 },
            valid_reports: MinLevel { min_pct: 90, penalty_bp: 50 },
            missed_reports: MaxLevel { max: 5, penalty_bp: 100 },
            on_time_verification: MinLevel { min_pct: 95, penalty_bp: 50 },
            on_time_check: MinLevel { min_pct: 95, penalty_bp: 50 },
            on_site_finding_fen: 2_000,
        }
    }
}

/// The cleaning contracts' terms: one set for all contractors, the fee per contractor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CleaningTerms {
    /// Yearly fee per contractor (by the name its contractor areas carry as owner), fen.
    pub yearly_fee_fen: BTreeMap<String, i64>,
    /// Yearly fee of a contractor not listed above (0: fee not configured, the statement then
    /// lists the deductions only).
    pub default_yearly_fee_fen: i64,
    /// Problems in the contractor's areas that citizens found first (standing ledger
    /// deductions), at most this many a month.
    pub citizen_found: MaxLevel,
    /// On-site assessment findings of cleaning classes in the contractor's areas, at most this
    /// many a month.
    pub on_site_findings: MaxLevel,
    /// Deducted per on-site assessment finding of a cleaning class in the contractor's area, fen.
    pub on_site_finding_fen: i64,
}

impl Default for CleaningTerms {
    fn default() -> Self {
        CleaningTerms {
            yearly_fee_fen: BTreeMap::new(),
            default_yearly_fee_fen: 0,
            citizen_found: MaxLevel { max: 20, penalty_bp: 100 },
            on_site_findings: MaxLevel { max: 5, penalty_bp: 100 },
            on_site_finding_fen: 5_000,
        }
    }
}

/// A year's fee is at most 100 billion CNY: far beyond any contract, far below `i64` overflow.
const MAX_FEE_FEN: i64 = 10_000_000_000_000;

fn fee_ok(v: i64) -> bool {
    (0..=MAX_FEE_FEN).contains(&v)
}

fn min_ok(l: &MinLevel) -> bool {
    l.min_pct <= 100 && l.penalty_bp <= 10_000
}

impl CollectionTerms {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !fee_ok(self.yearly_fee_fen) {
            return Err(("yearly_fee_fen".into(), "0 to 10,000,000,000,000 fen".into()));
        }
        for (name, l) in [
            ("coverage", &self.coverage),
            ("valid_reports", &self.valid_reports),
            ("on_time_verification", &self.on_time_verification),
            ("on_time_check", &self.on_time_check),
        ] {
            if !min_ok(l) {
                return Err((name.into(), "min_pct 0–100, penalty_bp 0–10,000".into()));
            }
        }
        if self.missed_reports.max > 100 || self.missed_reports.penalty_bp > 10_000 {
            return Err(("missed_reports".into(), "max 0–100 %, penalty_bp 0–10,000".into()));
        }
        if !(0..=100_000_000).contains(&self.on_site_finding_fen) {
            return Err(("on_site_finding_fen".into(), "0 to 1,000,000 CNY in fen".into()));
        }
        Ok(())
    }
}

impl CleaningTerms {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some((name, _)) = self.yearly_fee_fen.iter().find(|(n, v)| n.trim().is_empty() || !fee_ok(**v)) {
            return Err(("yearly_fee_fen".into(), format!("{name:?}: a contractor name and 0 to 10^13 fen")));
        }
        if !fee_ok(self.default_yearly_fee_fen) {
            return Err(("default_yearly_fee_fen".into(), "0 to 10,000,000,000,000 fen".into()));
        }
        for (name, l) in [("citizen_found", &self.citizen_found), ("on_site_findings", &self.on_site_findings)] {
            if l.penalty_bp > 10_000 {
                return Err((name.into(), "penalty_bp 0–10,000".into()));
            }
        }
        if !(0..=100_000_000).contains(&self.on_site_finding_fen) {
            return Err(("on_site_finding_fen".into(), "0 to 1,000,000 CNY in fen".into()));
        }
        Ok(())
    }

    pub fn fee_for(&self, contractor: &str) -> i64 {
        self.yearly_fee_fen.get(contractor).copied().unwrap_or(self.default_yearly_fee_fen)
    }
}

/// The month's share of a yearly fee, exact to the fen: a twelfth, and the fen that do not
/// divide go one each to the first months of the year, so that the twelve months sum to the
/// yearly fee exactly. `None` for a month that is not `YYYY-MM`.
pub fn monthly_fee(yearly_fen: i64, month: &str) -> Option<i64> {
    let m: i64 = month.get(5..7)?.parse().ok().filter(|m| (1..=12).contains(m))?;
    Some(yearly_fen / 12 + i64::from(m <= yearly_fen % 12))
}

/// A ledger deduction behind a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerLine {
    pub entry_id: i64,
    pub case_id: i64,
    pub case_number: String,
    pub rule: String,
    /// Positive: a deduction; negative: the reversal of one.
    pub amount_fen: i64,
    /// The collector whose area held the problem (collection deductions).
    pub collector: Option<String>,
}

/// An on-site assessment finding behind a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FindingLine {
    pub finding_id: i64,
    pub case_id: i64,
    pub case_number: String,
    pub class_code: String,
    pub grid_code: String,
    /// Whose area held it (collector username or contractor name).
    pub owner: Option<String>,
}

/// One service level of a statement and whether it was met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LevelResult {
    pub name: String,
    /// The rate (0–1) or count reached, for reading.
    pub value: f64,
    pub numerator: i64,
    pub denominator: i64,
    /// `≥ 95 %`, `≤ 5 %`, `≤ 20`.
    pub target: String,
    pub met: bool,
    /// Deducted for missing it, fen.
    pub penalty_fen: i64,
}

/// Where a deduction comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeductionSource {
    /// A ledger deduction: citizens found the problem first (漏报 / 保洁不到位).
    Ledger,
    /// An on-site assessment finding (实地考核).
    OnSite,
    /// A service level not met.
    ServiceLevel,
}

/// One deduction of a statement, with the case behind it when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deduction {
    pub source: DeductionSource,
    pub amount_fen: i64,
    pub rule: String,
    pub case_id: Option<i64>,
    pub case_number: Option<String>,
    pub entry_id: Option<i64>,
    pub finding_id: Option<i64>,
    /// Collector or contractor area owner, when known.
    pub owner: Option<String>,
}

/// A contract's monthly statement (合同月度结算单). Named `ContractStatement` in the OpenAPI
/// document: the ledger's deduction statement is `Statement` there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ContractStatement)]
pub struct Statement {
    /// `collection` or `cleaning`.
    pub contract: String,
    /// `collection`, or the contractor's name.
    pub party: String,
    pub month: String,
    pub fee_fen: i64,
    pub levels: Vec<LevelResult>,
    pub deductions: Vec<Deduction>,
    pub deductions_fen: i64,
    /// Fee minus deductions; negative when the deductions exceed the fee.
    pub net_payable_fen: i64,
    pub fee_yuan: String,
    pub deductions_yuan: String,
    pub net_payable_yuan: String,
}

/// What the month's data says about the collection company.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionFacts {
    pub grids: i64,
    pub grids_covered: i64,
    pub reported: i64,
    pub valid: i64,
    pub filed: i64,
    pub verified: i64,
    pub verified_on_time: i64,
    pub checked: i64,
    pub checked_on_time: i64,
    pub ledger: Vec<LedgerLine>,
    pub findings: Vec<FindingLine>,
}

fn penalty(fee: i64, bp: u32) -> i64 {
    // fee ≤ 10^13 and bp ≤ 10^4: the product fits in i64 with room to spare.
    fee.saturating_mul(i64::from(bp)) / 10_000
}

fn ratio(n: i64, d: i64) -> f64 {
    if d <= 0 {
        1.0
    } else {
        n as f64 / d as f64
    }
}

/// n / d ≥ min % (nothing to do meets the level).
fn min_level(name: &str, n: i64, d: i64, l: MinLevel, fee: i64) -> LevelResult {
    let met = d <= 0 || n.saturating_mul(100) >= i64::from(l.min_pct).saturating_mul(d);
    LevelResult {
        name: name.into(),
        value: ratio(n, d),
        numerator: n,
        denominator: d,
        target: format!("≥ {} %", l.min_pct),
        met,
        penalty_fen: if met { 0 } else { penalty(fee, l.penalty_bp) },
    }
}

/// Standing deductions: originals minus reversals, as a count.
fn standing(lines: &[LedgerLine]) -> i64 {
    lines.iter().map(|l| l.amount_fen.signum()).sum::<i64>().max(0)
}

fn finish(
    contract: &str,
    party: &str,
    month: &str,
    fee: i64,
    levels: Vec<LevelResult>,
    mut d: Vec<Deduction>,
) -> Statement {
    for l in levels.iter().filter(|l| !l.met && l.penalty_fen != 0) {
        d.push(Deduction {
            source: DeductionSource::ServiceLevel,
            amount_fen: l.penalty_fen,
            rule: l.name.clone(),
            case_id: None,
            case_number: None,
            entry_id: None,
            finding_id: None,
            owner: None,
        });
    }
    let total: i64 = d.iter().map(|x| x.amount_fen).sum();
    let net = fee - total;
    Statement {
        contract: contract.into(),
        party: party.into(),
        month: month.into(),
        fee_fen: fee,
        levels,
        deductions: d,
        deductions_fen: total,
        net_payable_fen: net,
        fee_yuan: crate::reward::yuan(fee),
        deductions_yuan: crate::reward::yuan(total),
        net_payable_yuan: crate::reward::yuan(net),
    }
}

fn ledger_deductions(lines: &[LedgerLine], owner: impl Fn(&LedgerLine) -> Option<String>) -> Vec<Deduction> {
    lines
        .iter()
        .map(|l| Deduction {
            source: DeductionSource::Ledger,
            amount_fen: l.amount_fen,
            rule: l.rule.clone(),
            case_id: Some(l.case_id),
            case_number: Some(l.case_number.clone()),
            entry_id: Some(l.entry_id),
            finding_id: None,
            owner: owner(l),
        })
        .collect()
}

fn finding_deductions(findings: &[FindingLine], fen: i64) -> Vec<Deduction> {
    findings
        .iter()
        .map(|f| Deduction {
            source: DeductionSource::OnSite,
            amount_fen: fen,
            rule: format!("on_site_finding:{}", f.class_code),
            case_id: Some(f.case_id),
            case_number: Some(f.case_number.clone()),
            entry_id: None,
            finding_id: Some(f.finding_id),
            owner: f.owner.clone(),
        })
        .collect()
}

/// The collection company's statement for `month` (`None` for a malformed month).
pub fn collection_statement(t: &CollectionTerms, month: &str, f: &CollectionFacts) -> Option<Statement> {
    let fee = monthly_fee(t.yearly_fee_fen, month)?;
    let missed = standing(&f.ledger) + f.findings.len() as i64;
    let missed_met =
        f.filed <= 0 || missed.saturating_mul(100) <= i64::from(t.missed_reports.max).saturating_mul(f.filed);
    let levels = vec![
        min_level("coverage", f.grids_covered, f.grids, t.coverage, fee),
        min_level("valid_reports", f.valid, f.reported, t.valid_reports, fee),
        LevelResult {
            name: "missed_reports".into(),
            value: if f.filed <= 0 { 0.0 } else { missed as f64 / f.filed as f64 },
            numerator: missed,
            denominator: f.filed,
            target: format!("≤ {} %", t.missed_reports.max),
            met: missed_met,
            penalty_fen: if missed_met { 0 } else { penalty(fee, t.missed_reports.penalty_bp) },
        },
        min_level("on_time_verification", f.verified_on_time, f.verified, t.on_time_verification, fee),
        min_level("on_time_check", f.checked_on_time, f.checked, t.on_time_check, fee),
    ];
    let mut d = ledger_deductions(&f.ledger, |l| l.collector.clone());
    d.extend(finding_deductions(&f.findings, t.on_site_finding_fen));
    Some(finish("collection", "collection", month, fee, levels, d))
}

/// A count that may not exceed `l.max`.
fn max_count(name: &str, n: i64, l: MaxLevel, fee: i64) -> LevelResult {
    let met = n <= i64::from(l.max);
    LevelResult {
        name: name.into(),
        value: n as f64,
        numerator: n,
        denominator: 1,
        target: format!("≤ {}", l.max),
        met,
        penalty_fen: if met { 0 } else { penalty(fee, l.penalty_bp) },
    }
}

/// A cleaning contractor's statement for `month`: its ledger deductions and the on-site findings
/// of cleaning classes in its areas (`None` for a malformed month).
pub fn cleaning_statement(
    t: &CleaningTerms,
    contractor: &str,
    month: &str,
    ledger: &[LedgerLine],
    findings: &[FindingLine],
) -> Option<Statement> {
    let fee = monthly_fee(t.fee_for(contractor), month)?;
    let levels = vec![
        max_count("citizen_found", standing(ledger), t.citizen_found, fee),
        max_count("on_site_findings", findings.len() as i64, t.on_site_findings, fee),
    ];
    let owner = contractor.to_owned();
    let mut d = ledger_deductions(ledger, |_| Some(owner.clone()));
    d.extend(finding_deductions(findings, t.on_site_finding_fen));
    Some(finish("cleaning", contractor, month, fee, levels, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monthly_fees_sum_to_the_yearly_fee() {
        assert_eq!(monthly_fee(693_000_000, "2026-10"), Some(57_750_000));
        for yearly in [0, 1, 11, 13, 693_000_000, 693_000_007, 999_999_999_999] {
            let sum: i64 = (1..=12).map(|m| monthly_fee(yearly, &format!("2026-{m:02}")).unwrap()).sum();
            assert_eq!(sum, yearly);
        }
        assert_eq!(monthly_fee(100, "2026-13"), None);
        assert_eq!(monthly_fee(100, "2026"), None);
    }

    fn line(id: i64, amount: i64) -> LedgerLine {
        LedgerLine {
            entry_id: id,
            case_id: 100 + id,
            case_number: format!("N{id}"),
            rule: "missed_report".into(),
            amount_fen: amount,
            collector: Some("collector007".into()),
        }
    }

    #[test]
    fn collection_statement_by_hand() {
        let t = CollectionTerms::default();
        let f = CollectionFacts {
            grids: 100,
            grids_covered: 94, // not every grid: 1 % of the fee
            reported: 50,
            valid: 45, // exactly 90 %: met
            filed: 60,
            verified: 10,
            verified_on_time: 10,
            checked: 0, // nothing to check: met
            checked_on_time: 0,
            // three deductions, one reversed: 2 standing, and the on-site finding below:
            // 3 missed of 60 filed = 5 %: met (≤ 5 %)
            ledger: vec![line(1, 2000), line(2, 2000), line(3, 2000), line(4, -2000)],
            findings: vec![FindingLine {
                finding_id: 9,
                case_id: 200,
                case_number: "N200".into(),
                class_code: "06010".into(),
                grid_code: "320311001001001".into(),
                owner: Some("collector007".into()),
            }],
        };
        let s = collection_statement(&t, "2026-10", &f).unwrap();
        assert_eq!(s.fee_fen, 57_750_000);
        let met: Vec<(&str, bool)> = s.levels.iter().map(|l| (l.name.as_str(), l.met)).collect();
        assert_eq!(
            met,
            vec![
                ("coverage", false),
                ("valid_reports", true),
                ("missed_reports", true),
                ("on_time_verification", true),
                ("on_time_check", true)
            ]
        );
        // 2000 × 3 − 2000 + 2000 (finding) + 577,500 (1 % of 57,750,000)
        assert_eq!(s.deductions_fen, 6000 - 2000 + 2000 + 577_500);
        assert_eq!(s.net_payable_fen, 57_750_000 - 583_500);
        assert_eq!(s.net_payable_yuan, "571665.00");
        assert_eq!(s.deductions.iter().filter(|d| d.source == DeductionSource::Ledger).count(), 4);
        let on_site = s.deductions.iter().find(|d| d.source == DeductionSource::OnSite).unwrap();
        assert_eq!((on_site.case_id, on_site.finding_id), (Some(200), Some(9)));
        assert_eq!((s.levels[2].numerator, s.levels[2].denominator), (3, 60));
        // One more standing deduction, or one more on-site finding: 4 of 60 = 6.7 % > 5 %.
        let mut f2 = f.clone();
        f2.ledger.push(line(5, 2000));
        let mut f3 = f.clone();
        f3.findings.push(FindingLine { finding_id: 10, case_id: 201, ..f.findings[0].clone() });
        for f in [f2, f3] {
            let s = collection_statement(&t, "2026-10", &f).unwrap();
            assert_eq!((s.levels[2].numerator, s.levels[2].met), (4, false));
            assert_eq!(s.levels[2].penalty_fen, 577_500);
        }
    }

    #[test]
    fn cleaning_statement_by_hand() {
        let mut t = CleaningTerms::default();
        t.yearly_fee_fen.insert("彭城保洁公司".into(), 12_000_001);
        let s = cleaning_statement(&t, "彭城保洁公司", "2026-01", &[line(1, 5000)], &[]).unwrap();
        assert_eq!(s.fee_fen, 1_000_001, "January takes the odd fen");
        assert_eq!(s.deductions_fen, 5000);
        assert_eq!(s.net_payable_fen, 995_001);
        assert!(s.levels.iter().all(|l| l.met));
        let other = cleaning_statement(&t, "别的公司", "2026-01", &[], &[]).unwrap();
        assert_eq!(other.fee_fen, 0, "fee not configured");
    }
}
