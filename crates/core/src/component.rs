//! City components (部件): their 17-digit identifiers, their states, and the unified social credit
//! code (统一社会信用代码) that names a component's competent department.
//!
//! A component identifier (GB/T 47678.5-2026) is 6-digit division + 5-digit class + 6-digit
//! serial, e.g. `320311` `01001` `000042` for a water-supply manhole cover in 泉山区. Cities
//! surveyed under GB/T 30428.2 hold 16-digit ids (6 + 2-digit major + 2-digit minor + 6); those
//! are accepted on import and mapped to the 17-digit form, keeping the legacy id beside it.

use crate::codes::{ClassCode, CodeError, RegionCode};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A 17-digit component identifier (部件标识码).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ComponentId(String);

impl ComponentId {
    /// A 17-digit id: a district division (not a city's `..00`), a valid class, a serial.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let bad = || CodeError::Malformed {
            expected: "a 17-digit component id (division + class + serial)",
            got: s.to_owned(),
        };
        if !(all_digits(s) && s.len() == 17) {
            return Err(bad());
        }
        ClassCode::parse(&s[6..11]).map_err(|_| bad())?;
        Ok(ComponentId(s.to_owned()))
    }

    /// Maps a legacy 16-digit GB/T 30428.2 id (6 + `MM` + `NN` + 6) to the 17-digit form: the
    /// major code is kept and the 2-digit minor becomes `0NN` (`01`-`01` → `01001`), the
    /// correspondence the 2026 table keeps for component classes. 17-digit ids pass unchanged.
    pub fn parse_or_legacy(s: &str) -> Result<Self, CodeError> {
        if s.len() == 16 && all_digits(s) {
            let mapped = format!("{}{}0{}{}", &s[..6], &s[6..8], &s[8..10], &s[10..]);
            return ComponentId::parse(&mapped).map_err(|_| CodeError::Malformed {
                expected: "a 16-digit legacy component id (division + major + minor + serial)",
                got: s.to_owned(),
            });
        }
        ComponentId::parse(s)
    }

    /// Builds an id from its parts; `serial` must be below 1,000,000.
    pub fn new(division: &RegionCode, class: &ClassCode, serial: u32) -> Result<Self, CodeError> {
        let district = division.as_str().get(..6).unwrap_or_default();
        ComponentId::parse(&format!("{district}{class}{serial:06}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 6-digit division the component was registered in.
    pub fn division(&self) -> &str {
        &self.0[..6]
    }

    /// The component's class (always a component class, never an event class).
    pub fn class_code(&self) -> ClassCode {
        ClassCode(self.0[6..11].to_owned())
    }

    pub fn serial(&self) -> &str {
        &self.0[11..]
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ComponentId {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, CodeError> {
        ComponentId::parse(&s)
    }
}

impl From<ComponentId> for String {
    fn from(c: ComponentId) -> String {
        c.0
    }
}

/// The state of a component in the census (部件状态).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    /// 完好
    #[default]
    Intact,
    /// 破损
    Damaged,
    /// 丢失
    Lost,
    /// 废弃
    Abandoned,
    /// 移除
    Removed,
}

impl ComponentState {
    pub const ALL: [ComponentState; 5] = [
        ComponentState::Intact,
        ComponentState::Damaged,
        ComponentState::Lost,
        ComponentState::Abandoned,
        ComponentState::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ComponentState::Intact => "intact",
            ComponentState::Damaged => "damaged",
            ComponentState::Lost => "lost",
            ComponentState::Abandoned => "abandoned",
            ComponentState::Removed => "removed",
        }
    }

    /// Accepts the English names and the Chinese terms surveys deliver.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL.into_iter().find(|c| c.as_str() == s).or(match s {
            "完好" => Some(ComponentState::Intact),
            "破损" => Some(ComponentState::Damaged),
            "丢失" => Some(ComponentState::Lost),
            "废弃" => Some(ComponentState::Abandoned),
            "移除" => Some(ComponentState::Removed),
            _ => None,
        })
    }
}

/// The 31 characters of GB 32100-2015 (no I, O, S, V, Z).
const CREDIT_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const CREDIT_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// An 18-character unified social credit code (统一社会信用代码, GB 32100-2015) with a valid
/// check character: the identifier of a component's competent department.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CreditCode(String);

impl CreditCode {
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let bad = || CodeError::Malformed { expected: "an 18-character unified social credit code", got: s.to_owned() };
        let s = s.trim().to_ascii_uppercase();
        if s.len() != 18 || !s.bytes().all(|b| CREDIT_CHARS.contains(&b)) {
            return Err(bad());
        }
        match Self::check_char(&s[..17]) {
            Some(c) if c == s.as_bytes()[17] => Ok(CreditCode(s)),
            _ => Err(bad()),
        }
    }

    /// Completes 17 characters with their check character.
    pub fn with_check(first17: &str) -> Result<Self, CodeError> {
        let bad = || CodeError::Malformed { expected: "17 credit-code characters", got: first17.to_owned() };
        let c = Self::check_char(first17).ok_or_else(bad)?;
        Ok(CreditCode(format!("{first17}{}", c as char)))
    }

    fn check_char(first17: &str) -> Option<u8> {
        if first17.len() != 17 {
            return None;
        }
        let mut sum = 0u32;
        for (b, w) in first17.bytes().zip(CREDIT_WEIGHTS) {
            let v = CREDIT_CHARS.iter().position(|&c| c == b)?;
            sum += u32::try_from(v).ok()? * w;
        }
        let check = (31 - sum % 31) % 31;
        CREDIT_CHARS.get(usize::try_from(check).ok()?).copied()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CreditCode {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, CodeError> {
        CreditCode::parse(&s)
    }
}

impl From<CreditCode> for String {
    fn from(c: CreditCode) -> String {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn component_ids() {
        let id = ComponentId::parse("32031101001000042").unwrap();
        assert_eq!(id.division(), "320311");
        assert_eq!(id.class_code().as_str(), "01001");
        assert_eq!(id.serial(), "000042");
        assert!(ComponentId::parse("3203110100100004").is_err(), "16 digits is legacy, not 17");
        assert!(ComponentId::parse("32031100001000042").is_err(), "class 00xxx does not exist");
        assert!(ComponentId::parse("3203110100100004x").is_err());
        let class = ClassCode::parse("03012").unwrap();
        let built = ComponentId::new(&RegionCode::parse("320311001002003").unwrap(), &class, 7).unwrap();
        assert_eq!(built.as_str(), "32031103012000007");
        assert!(ComponentId::new(&RegionCode::parse("320311").unwrap(), &class, 1_000_000).is_err());
    }

    #[test]
    fn legacy_ids_map_to_17_digits() {
        let id = ComponentId::parse_or_legacy("3203110101000042").unwrap();
        assert_eq!(id.as_str(), "32031101001000042");
        assert_eq!(ComponentId::parse_or_legacy("32031101001000042").unwrap(), id);
        assert!(ComponentId::parse_or_legacy("3203110001000042").is_err(), "major 00");
        assert!(ComponentId::parse_or_legacy("320311010100004").is_err());
    }

    #[test]
    fn component_states() {
        for s in ComponentState::ALL {
            assert_eq!(ComponentState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ComponentState::parse("破损"), Some(ComponentState::Damaged));
        assert_eq!(ComponentState::parse("broken"), None);
    }

    #[test]
    fn credit_codes() {
        // A published code (国家市场监督管理总局's own registration example, GB 32100 annex).
        let known = "91350100M000100Y43";
        assert!(CreditCode::parse(known).is_ok());
        assert!(CreditCode::parse("91350100M000100Y44").is_err());
        assert!(CreditCode::parse("91350100M000100Y4").is_err());
        assert!(CreditCode::parse("91350100I000100Y43").is_err(), "I is not in the alphabet");
        assert_eq!(CreditCode::with_check("91350100M000100Y4").unwrap().as_str(), known);
    }

    proptest! {
        #[test]
        fn credit_check_round_trips(body in "[0-9A-HJ-NPQRTUWXY]{17}") {
            let c = CreditCode::with_check(&body).unwrap();
            prop_assert_eq!(CreditCode::parse(c.as_str()).unwrap(), c.clone());
            // any single changed character is caught
            let mut bytes = c.as_str().as_bytes().to_vec();
            bytes[3] = if bytes[3] == b'0' { b'1' } else { b'0' };
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(CreditCode::parse(&changed).is_err());
        }

        #[test]
        fn legacy_mapping_keeps_division_and_serial(div in "[1-9][0-9]{5}", mm in "0[1-5]", nn in "[0-9]{2}", ser in "[0-9]{6}") {
            let legacy = format!("{div}{mm}{nn}{ser}");
            let id = ComponentId::parse_or_legacy(&legacy).unwrap();
            prop_assert_eq!(id.division(), div.as_str());
            prop_assert_eq!(id.serial(), ser.as_str());
            prop_assert_eq!(id.class_code().as_str().to_owned(), format!("{mm}0{nn}"));
        }
    }
}
