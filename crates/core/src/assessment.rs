//! The long-term management assessment of the street offices (长效管理考核, MISSION §4.1) and the
//! contracts paid against performance (合同考核, §4.2).
//!
//! A street's month score is the weighted sum of three parts, each 0–100: (a) the
//! digital-urban-management score (数字城管考核, from the comprehensive evaluation of the street
//! as a region subject), (b) special-work assessments (专项工作考核) entered by assessors, and (c)
//! on-site assessments (实地考核) from the findings of the three-random draws ([`draw`]). The
//! parts, the weights and the ranking with its changes against the previous month are decided
//! here; the contracts' monthly statements in [`contract`]. Nothing here reads the clock or does
//! I/O: months, findings and scores come in as data.

pub mod contract;
pub mod draw;

use crate::codes::RegionCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The two kinds of street office the regulation ranks: the 42 urban street offices and the 9
/// urban-rural fringe ones (城乡结合部: towns, management offices) added in 2017.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreetClass {
    /// 城区街道.
    Urban,
    /// 城乡结合部 (镇, 管委会, 场).
    Fringe,
}

impl StreetClass {
    pub fn as_str(self) -> &'static str {
        match self {
            StreetClass::Urban => "urban",
            StreetClass::Fringe => "fringe",
        }
    }
}

/// The class a street has unless configured otherwise, from its code: GB/T 10114 numbers a
/// district's 街道 (street offices) 001–099, its 镇 (towns) 100–199, 乡 200–399 and the bodies
/// "like a township" (管委会, 开发区, 农场) 400–599. Xuzhou's shipped street list follows it
/// (`data/xuzhou/streets.csv`: 铜山区 102 何桥镇, 泉山区 401 徐州泉山经济开发区), so everything that is
/// not a 街道 is urban-rural fringe.
pub fn default_street_class(street: &RegionCode) -> StreetClass {
    let code = street.as_str();
    match code.get(6..9).and_then(|s| s.parse::<u32>().ok()) {
        Some(n) if n >= 100 => StreetClass::Fringe,
        _ => StreetClass::Urban,
    }
}

/// Weights of the three parts of a street's score, in percent; they sum to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartWeights {
    /// (a) the digital-urban-management score.
    pub digital: u32,
    /// (b) special-work assessments.
    pub special: u32,
    /// (c) on-site assessments.
    pub on_site: u32,
}

impl Default for PartWeights {
    fn default() -> Self {
        PartWeights { digital: 60, special: 20, on_site: 20 }
    }
}

/// The assessment's configuration (settings key `assessment.config`), with defaults that a city
/// replaces with its regulation's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub weights: PartWeights,
    /// Street classes that differ from [`default_street_class`]: street code → class.
    pub street_classes: BTreeMap<String, StreetClass>,
    /// Points an on-site finding takes off part (c) (which starts at 100).
    pub on_site_points_per_finding: f64,
    /// Per event/component class code: points of a finding of that class, instead of the above.
    pub on_site_points_by_class: BTreeMap<String, f64>,
    /// Places drawn per street in a three-random draw.
    pub places_per_street: u32,
    /// Weight every grid has in the place draw before its problems are added (so that every
    /// grid of every street can be drawn).
    pub grid_weight_floor: u64,
    /// Days before the draw's period whose filed cases weight the grids (problem areas).
    pub grid_weight_days: u32,
    /// Assessors' own streets beyond what their data scope says: username → street codes. An
    /// assessor is never drawn for a street they are assigned to.
    pub assessor_streets: BTreeMap<String, Vec<String>>,
    /// The collection contract (信息采集市场化).
    pub collection: contract::CollectionTerms,
    /// The cleaning contracts (保洁), one set of terms for all, fees per contractor.
    pub cleaning: contract::CleaningTerms,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            weights: PartWeights::default(),
            street_classes: BTreeMap::new(),
            on_site_points_per_finding: 2.0,
            on_site_points_by_class: BTreeMap::new(),
            places_per_street: 1,
            grid_weight_floor: 1,
            grid_weight_days: 30,
            assessor_streets: BTreeMap::new(),
            collection: contract::CollectionTerms::default(),
            cleaning: contract::CleaningTerms::default(),
        }
    }
}

fn points_ok(p: f64) -> bool {
    p.is_finite() && (0.0..=100.0).contains(&p)
}

impl Config {
    /// `Err((field, why))` for a configuration that cannot be applied.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let w = self.weights;
        let sum = u64::from(w.digital) + u64::from(w.special) + u64::from(w.on_site);
        if sum != 100 {
            return Err(("weights".into(), format!("the three weights sum to {sum} %, not 100 %")));
        }
        for code in self.street_classes.keys() {
            if !RegionCode::parse(code).is_ok_and(|c| c.level() == crate::codes::RegionLevel::Street) {
                return Err(("street_classes".into(), format!("{code:?} is not a 9-digit street code")));
            }
        }
        if !points_ok(self.on_site_points_per_finding) {
            return Err(("on_site_points_per_finding".into(), "0 to 100 points".into()));
        }
        for (code, p) in &self.on_site_points_by_class {
            if crate::codes::ClassCode::parse(code).is_err() {
                return Err(("on_site_points_by_class".into(), format!("{code:?} is not a 5-digit class code")));
            }
            if !points_ok(*p) {
                return Err(("on_site_points_by_class".into(), format!("{code}: 0 to 100 points")));
            }
        }
        if !(1..=20).contains(&self.places_per_street) {
            return Err(("places_per_street".into(), "1 to 20 places per street".into()));
        }
        if !(1..=1_000_000).contains(&self.grid_weight_floor) {
            return Err(("grid_weight_floor".into(), "1 to 1,000,000 (every grid must be drawable)".into()));
        }
        if !(1..=366).contains(&self.grid_weight_days) {
            return Err(("grid_weight_days".into(), "1 to 366 days".into()));
        }
        for (user, streets) in &self.assessor_streets {
            if let Some(bad) = streets
                .iter()
                .find(|s| !RegionCode::parse(s).is_ok_and(|c| c.level() == crate::codes::RegionLevel::Street))
            {
                return Err(("assessor_streets".into(), format!("{user}: {bad:?} is not a 9-digit street code")));
            }
        }
        self.collection.validate().map_err(|(f, m)| (format!("collection.{f}"), m))?;
        self.cleaning.validate().map_err(|(f, m)| (format!("cleaning.{f}"), m))?;
        Ok(())
    }

    /// The class of a street: configured, else from its code.
    pub fn street_class(&self, street: &RegionCode) -> StreetClass {
        self.street_classes.get(street.as_str()).copied().unwrap_or_else(|| default_street_class(street))
    }

    /// Points one on-site finding of `class_code` takes off part (c).
    pub fn finding_points(&self, class_code: &str) -> f64 {
        self.on_site_points_by_class.get(class_code).copied().unwrap_or(self.on_site_points_per_finding)
    }
}

/// One item of a special-work assessment (专项工作考核): what was assessed and the points it adds
/// (a bonus, positive) or takes off (a deduction, negative).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecialItem {
    /// What was assessed, e.g. "背街小巷整治".
    #[schema(min_length = 1, max_length = 200)]
    pub item: String,
    /// −100 to 100.
    pub points: f64,
}

/// `Err((field, why))` unless the items can be scored.
pub fn validate_items(items: &[SpecialItem]) -> Result<(), (String, String)> {
    if items.is_empty() || items.len() > 100 {
        return Err(("items".into(), "1 to 100 items".into()));
    }
    for (i, it) in items.iter().enumerate() {
        let n = it.item.trim().chars().count();
        if n == 0 || n > 200 {
            return Err((format!("items[{i}].item"), "1 to 200 characters".into()));
        }
        if !(it.points.is_finite() && (-100.0..=100.0).contains(&it.points)) {
            return Err((format!("items[{i}].points"), "−100 to 100 points".into()));
        }
    }
    Ok(())
}

/// Part (b): 100 plus every item's points of the month (deductions are negative), kept in 0–100.
/// A month without special-work assessments scores 100: nothing was found wanting.
pub fn special_part<'a>(items: impl IntoIterator<Item = &'a SpecialItem>) -> f64 {
    round2((100.0 + items.into_iter().map(|i| i.points).sum::<f64>()).clamp(0.0, 100.0))
}

/// Part (c): 100 minus the points of the month's on-site findings, at least 0.
pub fn on_site_part(finding_points: impl IntoIterator<Item = f64>) -> f64 {
    round2((100.0 - finding_points.into_iter().sum::<f64>()).clamp(0.0, 100.0))
}

/// Scores are shown and ranked to the hundredth of a point, so that ties are ties.
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The weighted month score of the three parts (each 0–100), to the hundredth.
pub fn month_score(w: PartWeights, digital: f64, special: f64, on_site: f64) -> f64 {
    round2(
        (f64::from(w.digital) * digital.clamp(0.0, 100.0)
            + f64::from(w.special) * special.clamp(0.0, 100.0)
            + f64::from(w.on_site) * on_site.clamp(0.0, 100.0))
            / 100.0,
    )
}

/// One street's parts in a month, before ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreetParts {
    pub street_code: String,
    pub name: String,
    pub district_code: String,
    pub class: StreetClass,
    /// (a), 0–100.
    pub digital: f64,
    /// (b), 0–100.
    pub special: f64,
    /// (c), 0–100.
    pub on_site: f64,
    /// Special-work assessments and on-site findings counted.
    pub special_count: u32,
    pub findings: u32,
}

/// One row of a month's ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RankRow {
    /// 1 = best; equal scores share a rank (1, 2, 2, 4).
    pub rank: u32,
    /// Rank among the streets of the same class.
    pub class_rank: u32,
    #[serde(flatten)]
    pub parts: StreetParts,
    pub score: f64,
    /// Last month's rank minus this month's (positive = moved up); absent for a street not
    /// ranked last month.
    pub rank_delta: Option<i64>,
    /// This month's score minus last month's.
    pub score_delta: Option<f64>,
}

/// Competition ranking (1, 2, 2, 4) of `keys` sorted best first by score.
fn ranks(scores: &[f64]) -> Vec<u32> {
    let mut out = Vec::with_capacity(scores.len());
    for (i, s) in scores.iter().enumerate() {
        let r = if i > 0 && scores[i - 1] == *s { out[i - 1] } else { i as u32 + 1 };
        out.push(r);
    }
    out
}

/// Rank the streets of a month: by score, best first, equal scores sharing a rank and listed
/// by street code; each row with its change against `previous` (last month's ranking).
pub fn rank(w: PartWeights, parts: Vec<StreetParts>, previous: &[RankRow]) -> Vec<RankRow> {
    let mut rows: Vec<(f64, StreetParts)> =
        parts.into_iter().map(|p| (month_score(w, p.digital, p.special, p.on_site), p)).collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.street_code.cmp(&b.1.street_code)));
    let scores: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let overall = ranks(&scores);
    let mut by_class: BTreeMap<StreetClass, Vec<f64>> = BTreeMap::new();
    let mut class_rank = Vec::with_capacity(rows.len());
    for (score, p) in &rows {
        let list = by_class.entry(p.class).or_default();
        list.push(*score);
        class_rank.push(*ranks(list).last().unwrap_or(&1));
    }
    let prev: BTreeMap<&str, &RankRow> = previous.iter().map(|r| (r.parts.street_code.as_str(), r)).collect();
    rows.into_iter()
        .zip(overall)
        .zip(class_rank)
        .map(|(((score, parts), rank), class_rank)| {
            let before = prev.get(parts.street_code.as_str());
            RankRow {
                rank,
                class_rank,
                rank_delta: before.map(|b| i64::from(b.rank) - i64::from(rank)),
                score_delta: before.map(|b| round2(score - b.score)),
                score,
                parts,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(code: &str, digital: f64, special: f64, on_site: f64) -> StreetParts {
        let c = RegionCode::parse(code).unwrap();
        StreetParts {
            street_code: code.into(),
            name: code.into(),
            district_code: code[..6].into(),
            class: default_street_class(&c),
            digital,
            special,
            on_site,
            special_count: 0,
            findings: 0,
        }
    }

    #[test]
    fn classes_follow_gb_t_10114_unless_configured() {
        let s = |c: &str| RegionCode::parse(c).unwrap();
        assert_eq!(default_street_class(&s("320311001")), StreetClass::Urban);
        assert_eq!(default_street_class(&s("320312102")), StreetClass::Fringe, "何桥镇");
        assert_eq!(default_street_class(&s("320311401")), StreetClass::Fringe, "经济开发区");
        let mut cfg = Config::default();
        cfg.street_classes.insert("320311001".into(), StreetClass::Fringe);
        assert_eq!(cfg.street_class(&s("320311001")), StreetClass::Fringe);
        // The shipped Xuzhou list: 46 街道 and 30 towns and management bodies; the names agree.
        let csv = include_str!("../../../data/xuzhou/streets.csv");
        let codes: Vec<RegionCode> = csv
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                RegionCode::parse(&format!("{}{}", f[0], f[2])).ok()
            })
            .collect();
        assert_eq!(codes.len(), 76);
        let csv_lines: Vec<&str> = csv.lines().skip(1).collect();
        for (c, line) in codes.iter().zip(csv_lines) {
            let name = line.rsplit(',').next().unwrap();
            assert_eq!(default_street_class(c) == StreetClass::Urban, name.ends_with("街道"), "{line}");
        }
    }

    #[test]
    fn parts_and_score_by_hand() {
        let items = [
            SpecialItem { item: "背街小巷整治".into(), points: -3.5 },
            SpecialItem { item: "创文迎检".into(), points: 1.0 },
        ];
        assert_eq!(special_part(&items), 97.5);
        assert_eq!(special_part(&[]), 100.0);
        assert_eq!(special_part(&[SpecialItem { item: "x".into(), points: 50.0 }]), 100.0, "capped");
        assert_eq!(on_site_part([2.0, 2.0, 5.0]), 91.0);
        assert_eq!(on_site_part(vec![60.0, 60.0]), 0.0, "not below 0");
        // 0.6 × 80 + 0.2 × 97.5 + 0.2 × 91 = 48 + 19.5 + 18.2 = 85.7
        assert_eq!(month_score(PartWeights::default(), 80.0, 97.5, 91.0), 85.7);
    }

    #[test]
    fn ranking_with_ties_classes_and_deltas() {
        let w = PartWeights::default();
        let sept = rank(
            w,
            vec![
                parts("320311001", 90.0, 100.0, 100.0),
                parts("320311002", 80.0, 100.0, 100.0),
                parts("320312102", 70.0, 100.0, 100.0),
            ],
            &[],
        );
        assert_eq!(sept.iter().map(|r| r.rank).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(sept.iter().all(|r| r.rank_delta.is_none()));
        let oct = rank(
            w,
            vec![
                parts("320311001", 80.0, 100.0, 100.0),
                parts("320311002", 80.0, 100.0, 100.0),
                parts("320312102", 95.0, 100.0, 90.0),
            ],
            &sept,
        );
        type Row<'a> = (&'a str, u32, u32, Option<i64>, Option<f64>, f64);
        let got: Vec<Row> = oct
            .iter()
            .map(|r| (r.parts.street_code.as_str(), r.rank, r.class_rank, r.rank_delta, r.score_delta, r.score))
            .collect();
        assert_eq!(
            got,
            vec![
                // 57 + 20 + 18 = 95
                ("320312102", 1, 1, Some(2), Some(13.0), 95.0),
                ("320311001", 2, 1, Some(-1), Some(-6.0), 88.0),
                ("320311002", 2, 1, Some(0), Some(0.0), 88.0),
            ]
        );
    }

    #[test]
    fn config_validation_names_the_field() {
        assert!(Config::default().validate().is_ok());
        let mut c = Config::default();
        c.weights.special = 30;
        assert_eq!(c.validate().unwrap_err().0, "weights");
        let mut c = Config::default();
        c.street_classes.insert("320311".into(), StreetClass::Fringe);
        assert_eq!(c.validate().unwrap_err().0, "street_classes");
        let c = Config { on_site_points_per_finding: f64::NAN, ..Config::default() };
        assert_eq!(c.validate().unwrap_err().0, "on_site_points_per_finding");
        let mut c = Config::default();
        c.collection.yearly_fee_fen = -1;
        assert_eq!(c.validate().unwrap_err().0, "collection.yearly_fee_fen");
        assert_eq!(validate_items(&[]).unwrap_err().0, "items");
        let bad = [SpecialItem { item: "x".into(), points: 101.0 }];
        assert_eq!(validate_items(&bad).unwrap_err().0, "items[0].points");
    }
}
