//! The classification catalogue (管理部件和事项分类) of GB/T 47678.5-2026, keyed by
//! (kind, 5-digit code), with each class's filing condition (立案条件), closing condition
//! (结案条件), default responsible department and disposal limits per urgency and area class.
//!
//! The standard leaves conditions and limits to the city; we ship typical defaults from
//! DOMAIN.md and flag them (`defaults: true`) until an administrator sets the city's own.

use crate::calendar::Limit;
use crate::codes::{AreaClass, ClassCode, Kind, Urgency};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The shipped national table (all 403 classes).
pub const NATIONAL_TABLE_CSV: &str = include_str!("../../../data/classification-gb47678.5-2026.csv");

/// Disposal limits for one urgency, per area class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct AreaLimits {
    pub A: Limit,
    pub B: Limit,
    pub C: Limit,
}

impl AreaLimits {
    pub fn get(&self, area: AreaClass) -> Limit {
        match area {
            AreaClass::A => self.A,
            AreaClass::B => self.B,
            AreaClass::C => self.C,
        }
    }
}

/// Disposal limits (处置时限) of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DisposalLimits {
    pub urgent: AreaLimits,
    pub important: AreaLimits,
    pub ordinary: AreaLimits,
}

impl DisposalLimits {
    pub fn get(&self, urgency: Urgency, area: AreaClass) -> Limit {
        match urgency {
            Urgency::Urgent => self.urgent.get(area),
            Urgency::Important => self.important.get(area),
            Urgency::Ordinary => self.ordinary.get(area),
        }
    }

    /// Typical defaults by kind and major (DOMAIN.md "Time limits"): urgent 0.5–2 hours,
    /// ordinary 2 working hours to 5 working days; outer (C) areas get more time.
    pub fn typical(kind: Kind, major: &str) -> DisposalLimits {
        let (u, i, o) = match (kind, major) {
            // Appearance and street order are quick jobs: a sweeper or an officer on foot.
            (Kind::Event, "06") | (Kind::Event, "09") => {
                (Limit::working_minutes(30), Limit::working_hours(1), Limit::working_hours(2))
            }
            (Kind::Event, "07") => (Limit::working_hours(2), Limit::working_days(1), Limit::working_days(3)),
            (Kind::Event, "08") => (Limit::working_hours(2), Limit::working_days(2), Limit::working_days(5)),
            (Kind::Event, "10") => (Limit::working_hours(2), Limit::working_days(1), Limit::working_days(3)),
            // Facilities need a crew and parts.
            _ => (Limit::working_hours(2), Limit::working_days(1), Limit::working_days(5)),
        };
        let area = |l: Limit| AreaLimits { A: l, B: l, C: l.scaled(200) };
        DisposalLimits { urgent: area(u), important: area(i), ordinary: area(o) }
    }
}

/// One class of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClassInfo {
    pub kind: Kind,
    #[schema(value_type = String, example = "06010")]
    pub code: ClassCode,
    pub major_code: String,
    pub major_name_zh: String,
    pub name_zh: String,
    pub name_en: String,
    /// The standard the code comes from, e.g. `GB/T 47678.5-2026`; `local` for a city's own.
    pub standard: String,
    /// A class the city added (地方扩展类), not in the national table.
    pub local: bool,
    pub filing_condition: String,
    pub closing_condition: String,
    /// Code of the department that answers for this class unless dispatch says otherwise.
    pub department_code: Option<String>,
    pub limits: DisposalLimits,
    /// True while conditions, department and limits are still the shipped typical values.
    pub defaults: bool,
    /// Offered to citizens (Open311 services, the citizen app).
    pub citizen: bool,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
}

/// Default responsible department by kind and major, by department code.
pub fn typical_department(kind: Kind, major: &str) -> &'static str {
    match (kind, major) {
        (_, "01") => "SZ",
        (_, "02") => "JT",
        (_, "03") => "HW",
        (_, "04") => "YL",
        (Kind::Event, "06") => "HW",
        (Kind::Event, "08") => "ZJ",
        _ => "CG",
    }
}

/// Parse the national table (same columns as the shipped CSV) into classes carrying the typical
/// defaults where the table leaves conditions and limits empty.
pub fn parse_table(csv_text: &str) -> Result<Vec<ClassInfo>, CatalogueError> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(csv_text.as_bytes());
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let err = |message: String| CatalogueError::Line { line, message };
        let rec = rec.map_err(|e| err(e.to_string()))?;
        let field = |n: usize| rec.get(n).unwrap_or("").trim().to_owned();
        let kind = Kind::parse(&field(0)).ok_or_else(|| err(format!("unknown kind {:?}", field(0))))?;
        let code = ClassCode::parse(&field(3)).map_err(|e| err(e.to_string()))?;
        if code.major() != field(1) {
            return Err(err(format!("class {} is not in major {}", code, field(1))));
        }
        if !seen.insert((kind, code.clone())) {
            return Err(err(format!("duplicate class {} {}", kind.as_str(), code)));
        }
        let name_zh = field(4);
        if name_zh.is_empty() {
            return Err(err("empty Chinese name".into()));
        }
        let filing = field(6);
        let closing = field(7);
        let defaults = filing.is_empty() && closing.is_empty();
        let standard = field(10);
        out.push(ClassInfo {
            kind,
            major_code: field(1),
            major_name_zh: field(2),
            filing_condition: if filing.is_empty() { typical_filing(&name_zh) } else { filing },
            closing_condition: if closing.is_empty() { typical_closing(&name_zh) } else { closing },
            department_code: Some(typical_department(kind, code.major()).to_owned()),
            limits: DisposalLimits::typical(kind, code.major()),
            defaults,
            citizen: kind == Kind::Event && matches!(code.major(), "06" | "07" | "09"),
            active: true,
            local: standard.is_empty() || standard == "local",
            standard: if standard.is_empty() { "local".into() } else { standard },
            name_en: field(5),
            name_zh,
            code,
        });
    }
    Ok(out)
}

fn typical_filing(name: &str) -> String {
    format!("经监督员核实，城市公共区域内存在“{name}”问题，位置明确且属于本类管理范围")
}

fn typical_closing(name: &str) -> String {
    format!("“{name}”问题已处置完毕，处置后照片与现场核查一致，监督员核查通过")
}

/// The shipped national catalogue with typical defaults.
pub fn national() -> Vec<ClassInfo> {
    // The table is compiled in and tested below, so a parse failure is a build defect.
    parse_table(NATIONAL_TABLE_CSV).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_table_has_all_403_classes() {
        let all = national();
        assert_eq!(all.len(), 403);
        assert_eq!(all.iter().filter(|c| c.kind == Kind::Component).count(), 153);
        assert_eq!(all.iter().filter(|c| c.kind == Kind::Event).count(), 250);
        assert!(all.iter().all(|c| c.defaults && !c.local && c.department_code.is_some()));
        let garbage = all.iter().find(|c| c.kind == Kind::Event && c.code.as_str() == "06010").unwrap();
        assert_eq!(garbage.name_zh, "暴露垃圾");
        assert_eq!(garbage.department_code.as_deref(), Some("HW"));
        assert_eq!(garbage.limits.get(Urgency::Ordinary, AreaClass::A), Limit::working_hours(2));
        assert_eq!(garbage.limits.get(Urgency::Ordinary, AreaClass::C), Limit::working_hours(4));
        assert!(garbage.citizen);
        // both code spaces hold 01001
        assert_eq!(all.iter().filter(|c| c.code.as_str() == "01001").count(), 2);
    }

    #[test]
    fn bad_tables_are_refused_with_the_line() {
        let head = "kind,major_code,major_name_zh,minor_code,minor_name_zh,minor_name_en,filing_condition,closing_condition,disposal_time_limit,urgency,standard\n";
        let bad = format!("{head}event,06,x,0601,名,n,,,,,s\n");
        assert_eq!(
            parse_table(&bad).unwrap_err(),
            CatalogueError::Line { line: 2, message: "must be a 5-digit class code, got \"0601\"".into() }
        );
        let dup = format!("{head}event,06,x,06010,名,n,,,,,s\nevent,06,x,06010,名,n,,,,,s\n");
        assert!(matches!(parse_table(&dup), Err(CatalogueError::Line { line: 3, .. })));
        let wrong_major = format!("{head}event,07,x,06010,名,n,,,,,s\n");
        assert!(parse_table(&wrong_major).is_err());
        let local = format!("{head}event,10,其他,10901,共享单车乱停,Bike clutter,,,,,\n");
        let c = &parse_table(&local).unwrap()[0];
        assert!(c.local);
    }
}
