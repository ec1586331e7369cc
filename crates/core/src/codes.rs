//! Standard codes: region codes (GB/T 2260 division + street + community + grid sequence),
//! class codes of GB/T 47678.5 and the small closed vocabularies (kind, urgency, area class).
//!
//! Each code is a newtype whose only constructor checks it ("parse, don't validate"): once you
//! hold a `RegionCode` it has a valid length and only digits.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// Why a code did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("must be {expected}, got {got:?}")]
    Malformed { expected: &'static str, got: String },
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The level of a region in the tree city → district → street (街道) → community (社区) →
/// unit grid (单元网格). The level is implied by the code length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    City,
    District,
    Street,
    Community,
    Grid,
}

impl RegionLevel {
    /// Code length of this level; the city and its districts share the 6-digit division code
    /// space (a city ends in `00`).
    pub fn code_len(self) -> usize {
        match self {
            RegionLevel::City | RegionLevel::District => 6,
            RegionLevel::Street => 9,
            RegionLevel::Community => 12,
            RegionLevel::Grid => 15,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegionLevel::City => "city",
            RegionLevel::District => "district",
            RegionLevel::Street => "street",
            RegionLevel::Community => "community",
            RegionLevel::Grid => "grid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "city" => RegionLevel::City,
            "district" => RegionLevel::District,
            "street" => RegionLevel::Street,
            "community" => RegionLevel::Community,
            "grid" => RegionLevel::Grid,
            _ => return None,
        })
    }
}

/// A region code: 6 digits (city or district), 9 (street), 12 (community) or 15 (unit grid).
/// A child's code starts with its parent's, so "is inside" is a prefix test.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(String);

impl RegionCode {
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        if all_digits(s) && matches!(s.len(), 6 | 9 | 12 | 15) {
            Ok(RegionCode(s.to_owned()))
        } else {
            Err(CodeError::Malformed { expected: "a region code of 6, 9, 12 or 15 digits", got: s.to_owned() })
        }
    }

    /// A 15-digit unit grid code (the 2005 14-digit form is not accepted here).
    pub fn parse_grid(s: &str) -> Result<Self, CodeError> {
        if all_digits(s) && s.len() == 15 {
            Ok(RegionCode(s.to_owned()))
        } else {
            Err(CodeError::Malformed { expected: "a 15-digit unit grid code", got: s.to_owned() })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Level from the code's length; a 6-digit code ending in `00` is a city.
    pub fn level(&self) -> RegionLevel {
        match self.0.len() {
            6 if self.0.ends_with("00") => RegionLevel::City,
            6 => RegionLevel::District,
            9 => RegionLevel::Street,
            12 => RegionLevel::Community,
            _ => RegionLevel::Grid,
        }
    }

    /// The enclosing region one level up, if any.
    pub fn parent(&self) -> Option<RegionCode> {
        match self.level() {
            RegionLevel::City => None,
            RegionLevel::District => Some(RegionCode(format!("{}00", &self.0[..4]))),
            _ => Some(RegionCode(self.0[..self.0.len() - 3].to_owned())),
        }
    }

    /// The ancestor (or self) at `level`, if the code is at or below it.
    pub fn at_level(&self, level: RegionLevel) -> Option<RegionCode> {
        if level > self.level() {
            return None;
        }
        match level {
            RegionLevel::City => Some(RegionCode(format!("{}00", &self.0[..4]))),
            _ => Some(RegionCode(self.0[..level.code_len()].to_owned())),
        }
    }

    /// True when `other` is this region or lies inside it.
    pub fn contains(&self, other: &RegionCode) -> bool {
        match self.level() {
            RegionLevel::City => other.0.starts_with(&self.0[..4]),
            _ => other.0.starts_with(&self.0),
        }
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RegionCode {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, CodeError> {
        RegionCode::parse(&s)
    }
}

impl From<RegionCode> for String {
    fn from(c: RegionCode) -> String {
        c.0
    }
}

impl FromStr for RegionCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, CodeError> {
        RegionCode::parse(s)
    }
}

/// Component (部件) or event/matter (事件, since 2026 管理事项). The two have separate code spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Component,
    Event,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Component => "component",
            Kind::Event => "event",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "component" => Some(Kind::Component),
            "event" => Some(Kind::Event),
            _ => None,
        }
    }
}

/// A 5-digit class code: 2-digit major + 3-digit minor (GB/T 47678.5-2026).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClassCode(pub(crate) String);

impl ClassCode {
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        if all_digits(s) && s.len() == 5 && &s[..2] != "00" {
            Ok(ClassCode(s.to_owned()))
        } else {
            Err(CodeError::Malformed { expected: "a 5-digit class code", got: s.to_owned() })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn major(&self) -> &str {
        &self.0[..2]
    }
}

impl fmt::Display for ClassCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ClassCode {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, CodeError> {
        ClassCode::parse(&s)
    }
}

impl From<ClassCode> for String {
    fn from(c: ClassCode) -> String {
        c.0
    }
}

/// Urgency (紧急程度) picks the disposal limit of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Urgent,
    Important,
    #[default]
    Ordinary,
}

impl Urgency {
    pub const ALL: [Urgency; 3] = [Urgency::Urgent, Urgency::Important, Urgency::Ordinary];
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Urgent => "urgent",
            Urgency::Important => "important",
            Urgency::Ordinary => "ordinary",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

/// Area class of a region (A core, B and C general), which changes disposal limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema, Default)]
pub enum AreaClass {
    #[default]
    A,
    B,
    C,
}

impl AreaClass {
    pub const ALL: [AreaClass; 3] = [AreaClass::A, AreaClass::B, AreaClass::C];
    pub fn as_str(self) -> &'static str {
        match self {
            AreaClass::A => "A",
            AreaClass::B => "B",
            AreaClass::C => "C",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn region_levels_and_parents() {
        let g = RegionCode::parse("320311001002003").unwrap();
        assert_eq!(g.level(), RegionLevel::Grid);
        assert_eq!(g.parent().unwrap().as_str(), "320311001002");
        assert_eq!(g.at_level(RegionLevel::Street).unwrap().as_str(), "320311001");
        assert_eq!(g.at_level(RegionLevel::District).unwrap().as_str(), "320311");
        assert_eq!(g.at_level(RegionLevel::City).unwrap().as_str(), "320300");
        let d = RegionCode::parse("320311").unwrap();
        assert_eq!(d.level(), RegionLevel::District);
        assert_eq!(d.parent().unwrap().as_str(), "320300");
        assert!(RegionCode::parse("320300").unwrap().contains(&g));
        assert!(d.contains(&g));
        assert!(!RegionCode::parse("320303").unwrap().contains(&g));
        assert!(RegionCode::parse("32031").is_err());
        assert!(RegionCode::parse("3203110010020a3").is_err());
        assert!(RegionCode::parse_grid("320311001002").is_err());
    }

    #[test]
    fn class_codes() {
        let c = ClassCode::parse("06010").unwrap();
        assert_eq!(c.major(), "06");
        assert!(ClassCode::parse("6010").is_err());
        assert!(ClassCode::parse("00010").is_err());
        assert!(ClassCode::parse("0601x").is_err());
    }

    proptest! {
        #[test]
        fn region_code_round_trips(digits in "[0-9]{15}") {
            let g = RegionCode::parse(&digits).unwrap();
            let s: String = g.clone().into();
            prop_assert_eq!(&RegionCode::parse(&s).unwrap(), &g);
            // every ancestor contains the grid and is a prefix of it
            let mut cur = g.clone();
            while let Some(p) = cur.parent() {
                prop_assert!(p.contains(&g));
                prop_assert!(p.level() < cur.level());
                cur = p;
            }
            prop_assert_eq!(cur.level(), RegionLevel::City);
        }

        #[test]
        fn garbage_never_parses(s in "\\PC{0,20}") {
            let ok = s.len() == 15 && s.bytes().all(|b| b.is_ascii_digit());
            prop_assert_eq!(RegionCode::parse_grid(&s).is_ok(), ok);
        }
    }
}
