//! The citizen channel (市民举报): phone numbers, payout channels, and the citizen-facing
//! categories (Open311 "services") with their attributes, reward amounts, duplicate rules and
//! who gets docked when a citizen finds the problem first.
//!
//! A service's code is the event class code it files as (`06010` exposed garbage), so a
//! service and its class never disagree.

use crate::codes::ClassCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A mainland mobile number (手机号), normalised to its 11 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    /// Accepts `13812345678`, `+86 138-1234-5678`, `0086 13812345678`, full-width digits.
    pub fn parse(raw: &str) -> Result<Phone, String> {
        let digits: String = raw
            .chars()
            .filter_map(|c| match c {
                '0'..='9' => Some(c),
                '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
                ' ' | '-' | '+' | '(' | ')' => None,
                _ => Some('x'),
            })
            .collect();
        let local = digits.strip_prefix("0086").or_else(|| digits.strip_prefix("86")).filter(|d| d.len() == 11);
        let d = local.unwrap_or(&digits);
        let b = d.as_bytes();
        if d.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && b.iter().all(u8::is_ascii_digit) {
            Ok(Phone(d.to_owned()))
        } else {
            Err(format!("{raw:?} is not a mainland mobile number (11 digits starting 13-19)"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `138****5678`: how a phone number appears anywhere but to its owner and the payout file.
    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }
}

impl TryFrom<String> for Phone {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Phone::parse(&s)
    }
}

impl From<Phone> for String {
    fn from(p: Phone) -> String {
        p.0
    }
}

impl std::fmt::Display for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a citizen is paid (兑付方式): the three channels of MISSION.md §4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayoutChannel {
    /// 现金: collected at the street office.
    Cash,
    /// 话费: credited to the phone number.
    PhoneCredit,
    /// 微信红包.
    Wechat,
}

impl PayoutChannel {
    pub const ALL: [PayoutChannel; 3] = [PayoutChannel::Cash, PayoutChannel::PhoneCredit, PayoutChannel::Wechat];
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutChannel::Cash => "cash",
            PayoutChannel::PhoneCredit => "phone_credit",
            PayoutChannel::Wechat => "wechat",
        }
    }
    pub fn parse(s: &str) -> Option<PayoutChannel> {
        PayoutChannel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Open311 service type: what a POST returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum ServiceType {
    /// The request id comes back at once.
    #[default]
    Realtime,
    /// A token comes back; `tokens/{token}` gives the id.
    Batch,
    /// Nothing comes back.
    Blackbox,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Realtime => "realtime",
            ServiceType::Batch => "batch",
            ServiceType::Blackbox => "blackbox",
        }
    }
}

/// Open311 attribute datatypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Datatype {
    String,
    Number,
    Datetime,
    Text,
    Singlevaluelist,
    Multivaluelist,
}

impl Datatype {
    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::String => "string",
            Datatype::Number => "number",
            Datatype::Datetime => "datetime",
            Datatype::Text => "text",
            Datatype::Singlevaluelist => "singlevaluelist",
            Datatype::Multivaluelist => "multivaluelist",
        }
    }
}

/// One option of a list attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttributeValue {
    pub key: String,
    pub name: String,
}

/// A question the citizen answers when reporting (Open311 attribute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attribute {
    /// false: informational text only, no answer expected.
    pub variable: bool,
    pub code: String,
    pub datatype: Datatype,
    pub required: bool,
    pub datatype_description: Option<String>,
    /// 1 is shown first; unique within the service.
    pub order: u32,
    pub description: String,
    #[serde(default)]
    pub values: Vec<AttributeValue>,
}

/// Where to look for the same problem (同一问题): a manhole cover is one point for weeks,
/// garbage along a street is a stretch for a day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DedupRule {
    /// Reports farther apart than this are different problems.
    pub radius_m: f64,
    /// Reports further apart in time than this are different problems.
    pub window_hours: u32,
    /// Other class codes that may describe the same problem (暴露垃圾 vs 积存垃圾).
    #[serde(default)]
    pub related: Vec<String>,
}

/// A citizen-facing category (市民举报类别).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Service {
    /// The event class code it files as, e.g. `06010`.
    pub code: String,
    pub name: String,
    pub description: String,
    /// Open311 `group`, e.g. `市容环境`.
    pub group: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub service_type: ServiceType,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Reward of the first verified reporter, integer fen (分); 200 to 20,000 (2–200 CNY).
    pub reward_fen: i64,
    pub dedup: DedupRule,
    /// A cleaning category (保洁类): the cleaning contractor of the area is docked.
    #[serde(default)]
    pub cleaning: bool,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Lowest and highest reward of one problem (MISSION.md §4.3: 2 to 200 CNY).
pub const MIN_REWARD_FEN: i64 = 200;
pub const MAX_REWARD_FEN: i64 = 20_000;

impl Service {
    /// Open311 `metadata`: true when the client must fetch the definition.
    pub fn metadata(&self) -> bool {
        !self.attributes.is_empty()
    }

    /// The class code it files as.
    pub fn class_code(&self) -> Result<ClassCode, String> {
        ClassCode::parse(&self.code).map_err(|e| e.to_string())
    }

    /// Check the definition itself; `Err((field, why))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.class_code().map_err(|e| ("code", e))?;
        let len = |s: &str| s.chars().count();
        if self.name.trim().is_empty() || len(&self.name) > 100 {
            return Err(("name", "1 to 100 characters".into()));
        }
        if len(&self.description) > 1000 || len(&self.group) > 100 {
            return Err(("description", "description ≤ 1000 and group ≤ 100 characters".into()));
        }
        if !(MIN_REWARD_FEN..=MAX_REWARD_FEN).contains(&self.reward_fen) {
            return Err(("reward_fen", format!("must be {MIN_REWARD_FEN} to {MAX_REWARD_FEN} fen (2–200 CNY)")));
        }
        if !(self.dedup.radius_m.is_finite() && (1.0..=5000.0).contains(&self.dedup.radius_m)) {
            return Err(("dedup.radius_m", "1 to 5000 metres".into()));
        }
        if !(1..=24 * 366).contains(&self.dedup.window_hours) {
            return Err(("dedup.window_hours", "1 hour to a year".into()));
        }
        if let Some(r) = self.dedup.related.iter().find(|r| ClassCode::parse(r).is_err()) {
            return Err(("dedup.related", format!("{r:?} is not a class code")));
        }
        let mut orders = std::collections::BTreeSet::new();
        let mut codes = std::collections::BTreeSet::new();
        for a in &self.attributes {
            if a.order == 0 || !orders.insert(a.order) {
                return Err(("attributes", format!("attribute {}: order must be positive and unique", a.code)));
            }
            if a.code.is_empty()
                || a.code.len() > 50
                || !a.code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                || !codes.insert(a.code.clone())
            {
                return Err((
                    "attributes",
                    format!("attribute code {:?} must be unique, [A-Za-z0-9_-]{{1,50}}", a.code),
                ));
            }
            let list = matches!(a.datatype, Datatype::Singlevaluelist | Datatype::Multivaluelist);
            if list == a.values.is_empty() {
                return Err(("attributes", format!("attribute {}: list types need values, others none", a.code)));
            }
        }
        Ok(())
    }

    /// Check a citizen's answers (`code → values`; one value except for multivaluelist) and
    /// return them in attribute order. `Err((attribute code, why))`.
    pub fn check_answers(
        &self,
        answers: &BTreeMap<String, Vec<String>>,
    ) -> Result<BTreeMap<String, Vec<String>>, (String, String)> {
        if let Some(unknown) = answers.keys().find(|k| !self.attributes.iter().any(|a| a.variable && &a.code == *k)) {
            return Err((unknown.clone(), "no such attribute for this service".into()));
        }
        let mut out = BTreeMap::new();
        for a in self.attributes.iter().filter(|a| a.variable) {
            let given: Vec<String> = answers
                .get(&a.code)
                .map(|v| v.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            if given.is_empty() {
                if a.required {
                    return Err((a.code.clone(), "required".into()));
                }
                continue;
            }
            let bad = |why: &str| Err((a.code.clone(), why.to_owned()));
            match a.datatype {
                Datatype::Multivaluelist => {}
                _ if given.len() > 1 => return bad("one value only"),
                _ => {}
            }
            for v in &given {
                let ok = match a.datatype {
                    Datatype::String => v.chars().count() <= 500 && !v.contains('\n'),
                    Datatype::Text => v.chars().count() <= 4000,
                    Datatype::Number => v.parse::<f64>().is_ok_and(f64::is_finite),
                    Datatype::Datetime => v.parse::<jiff::Timestamp>().is_ok(),
                    Datatype::Singlevaluelist | Datatype::Multivaluelist => a.values.iter().any(|x| &x.key == v),
                };
                if !ok {
                    return bad(&format!("{v:?} is not a valid {}", a.datatype.as_str()));
                }
            }
            out.insert(a.code.clone(), given);
        }
        Ok(out)
    }
}

/// The state of a report as the public and its reporter see it: honest about how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PublicStatus {
    /// Waiting for a collector to check it on site (核实中).
    Investigating,
    /// Received, not yet filed (已受理).
    Open,
    /// Filed, waiting for a department (已立案).
    ActionScheduled,
    /// With a department (处置中).
    InProgress,
    /// Fixed and checked (已办结).
    Fixed,
    /// Ended without a fix; the notes say why (不予处理).
    NotFixed,
    /// Merged into another report of the same problem (重复).
    Duplicate,
    /// Not the city's responsibility (非城管职责).
    NotCityResponsibility,
}

impl PublicStatus {
    pub fn of(case: &crate::case::Case) -> PublicStatus {
        use crate::case::{EndReason, State};
        match case.state {
            State::Verifying => PublicStatus::Investigating,
            State::Reported | State::Accepted => PublicStatus::Open,
            State::Filed => PublicStatus::ActionScheduled,
            State::Dispatched | State::Disposed | State::Checked | State::Suspended => PublicStatus::InProgress,
            State::Closed => PublicStatus::Fixed,
            State::Voided if case.duplicate_of.is_some() => PublicStatus::Duplicate,
            State::Rejected | State::Refused if case.end_reason == Some(EndReason::NotCityResponsibility) => {
                PublicStatus::NotCityResponsibility
            }
            State::Voided | State::Rejected | State::Refused => PublicStatus::NotFixed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PublicStatus::Investigating => "investigating",
            PublicStatus::Open => "open",
            PublicStatus::ActionScheduled => "action_scheduled",
            PublicStatus::InProgress => "in_progress",
            PublicStatus::Fixed => "fixed",
            PublicStatus::NotFixed => "not_fixed",
            PublicStatus::Duplicate => "duplicate",
            PublicStatus::NotCityResponsibility => "not_city_responsibility",
        }
    }

    /// Open311 core status: `open` or `closed`.
    pub fn open311(self) -> &'static str {
        match self {
            PublicStatus::Investigating
            | PublicStatus::Open
            | PublicStatus::ActionScheduled
            | PublicStatus::InProgress => "open",
            _ => "closed",
        }
    }

    /// FixMyStreet's extended status (upper case, as its Open311 updates carry them).
    pub fn fixmystreet(self) -> &'static str {
        match self {
            PublicStatus::Investigating => "INVESTIGATING",
            PublicStatus::Open => "OPEN",
            PublicStatus::ActionScheduled => "ACTION_SCHEDULED",
            PublicStatus::InProgress => "IN_PROGRESS",
            PublicStatus::Fixed => "FIXED",
            PublicStatus::NotFixed => "NO_FURTHER_ACTION",
            PublicStatus::Duplicate => "DUPLICATE",
            PublicStatus::NotCityResponsibility => "NOT_COUNCILS_RESPONSIBILITY",
        }
    }

    /// The label a citizen reads.
    pub fn label_zh(self) -> &'static str {
        match self {
            PublicStatus::Investigating => "核实中",
            PublicStatus::Open => "已受理",
            PublicStatus::ActionScheduled => "已立案",
            PublicStatus::InProgress => "处置中",
            PublicStatus::Fixed => "已办结",
            PublicStatus::NotFixed => "不予处理",
            PublicStatus::Duplicate => "重复举报",
            PublicStatus::NotCityResponsibility => "非城管职责",
        }
    }
}

fn point(radius_m: f64, days: u32) -> DedupRule {
    DedupRule { radius_m, window_hours: days * 24, related: vec![] }
}

fn stretch(radius_m: f64, hours: u32, related: &[&str]) -> DedupRule {
    DedupRule { radius_m, window_hours: hours, related: related.iter().map(|s| (*s).to_owned()).collect() }
}

/// The demo city's citizen categories: the problems residents report most, with rewards in
/// the 2–200 CNY range and the cleaning categories marked.
pub fn demo_services() -> Vec<Service> {
    let s =
        |code: &str, name: &str, group: &str, keywords: &[&str], reward_fen: i64, dedup: DedupRule, cleaning| Service {
            code: code.into(),
            name: name.into(),
            description: format!("{name}：拍照并标出位置，核实属实后首位举报人可获奖励。"),
            group: group.into(),
            keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
            service_type: ServiceType::Realtime,
            attributes: vec![],
            reward_fen,
            dedup,
            cleaning,
            active: true,
        };
    let covers: Vec<Service> = [
        ("01001", "供水井盖破损或丢失"),
        ("01002", "污水井盖破损或丢失"),
        ("01003", "雨水井盖破损或丢失"),
        ("01004", "雨水箅子破损或丢失"),
    ]
    .into_iter()
    .map(|(code, name)| {
        let mut svc = s(code, name, "井盖", &["井盖", "窨井", "manhole"], 5000, point(15.0, 30), false);
        svc.dedup.related =
            ["01001", "01002", "01003", "01004"].into_iter().filter(|c| *c != code).map(Into::into).collect();
        svc.attributes = vec![Attribute {
            variable: true,
            code: "condition".into(),
            datatype: Datatype::Singlevaluelist,
            required: true,
            datatype_description: None,
            order: 1,
            description: "井盖情况".into(),
            values: vec![
                AttributeValue { key: "missing".into(), name: "丢失".into() },
                AttributeValue { key: "broken".into(), name: "破损".into() },
                AttributeValue { key: "sunken".into(), name: "沉陷或凸起".into() },
            ],
        }];
        svc
    })
    .collect();
    let mut out = covers;
    out.extend([
        s(
            "06010",
            "暴露垃圾",
            "市容环境",
            &["垃圾", "garbage", "litter"],
            500,
            stretch(50.0, 24, &["06011", "06036"]),
            true,
        ),
        s("06011", "积存垃圾渣土", "市容环境", &["渣土", "垃圾堆"], 1000, stretch(80.0, 48, &["06010", "06036"]), true),
        s("06012", "道路不洁", "市容环境", &["路面脏", "street cleaning"], 300, stretch(100.0, 24, &["06014"]), true),
        s("06013", "道路破损", "市容环境", &["坑洞", "pothole"], 2000, point(30.0, 30), false),
        s("06014", "道路遗撒", "市容环境", &["遗撒", "spillage"], 500, stretch(150.0, 12, &["06012"]), true),
        s("06017", "绿地脏乱", "市容环境", &["绿地"], 300, stretch(60.0, 48, &[]), true),
        s("06034", "废弃车辆", "市容环境", &["僵尸车", "abandoned vehicle"], 2000, point(30.0, 60), false),
        s("06036", "乱堆杂物", "市容环境", &["杂物"], 500, stretch(50.0, 72, &["06010", "06011"]), true),
        s("06037", "动物尸体", "市容环境", &["尸体"], 500, point(30.0, 2), true),
        s("07001", "非法小广告", "宣传广告", &["牛皮癣", "小广告"], 200, stretch(50.0, 72, &[]), false),
        s(
            "09006",
            "占道经营",
            "街面秩序",
            &["摆摊", "street vendor"],
            300,
            stretch(80.0, 6, &["09001", "09005"]),
            false,
        ),
    ]);
    // One batch service, so that token look-ups have something to answer for.
    if let Some(bulky) = out.iter_mut().find(|x| x.code == "06036") {
        bulky.service_type = ServiceType::Batch;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        for ok in ["13812345678", "+86 138-1234-5678", "0086 13812345678", "８６１３８１２３４５６７８"] {
            assert_eq!(Phone::parse(ok).map(|p| p.0), Ok("13812345678".to_owned()), "{ok}");
        }
        assert!(Phone::parse("19900000000").is_ok());
        for bad in ["", "1381234567", "12812345678", "138123456789", "23812345678", "1381234567a", "138 1234 567x"] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Phone::parse("13812345678").unwrap().masked(), "138****5678");
    }

    #[test]
    fn demo_services_are_valid() {
        let all = demo_services();
        assert!(all.iter().any(|s| s.code == "06010"));
        for s in &all {
            s.validate().unwrap_or_else(|e| panic!("{}: {e:?}", s.code));
        }
        let mut codes: Vec<_> = all.iter().map(|s| &s.code).collect();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn answers_are_checked() {
        let cover = demo_services().into_iter().find(|s| s.code == "01001").unwrap();
        let mut a = BTreeMap::new();
        assert_eq!(cover.check_answers(&a).unwrap_err().1, "required");
        a.insert("condition".to_owned(), vec!["missing".to_owned()]);
        assert_eq!(cover.check_answers(&a).unwrap()["condition"], vec!["missing"]);
        a.insert("condition".to_owned(), vec!["gone".to_owned()]);
        assert!(cover.check_answers(&a).is_err());
        a.insert("condition".to_owned(), vec!["missing".to_owned(), "broken".to_owned()]);
        assert_eq!(cover.check_answers(&a).unwrap_err().1, "one value only");
        let mut b = BTreeMap::new();
        b.insert("colour".to_owned(), vec!["red".to_owned()]);
        assert_eq!(cover.check_answers(&b).unwrap_err().0, "colour");
    }

    #[test]
    fn service_validation() {
        let mut s = demo_services().remove(0);
        s.reward_fen = 199;
        assert_eq!(s.validate().unwrap_err().0, "reward_fen");
        s.reward_fen = 20_001;
        assert_eq!(s.validate().unwrap_err().0, "reward_fen");
        s.reward_fen = 500;
        s.attributes[0].values.clear();
        assert_eq!(s.validate().unwrap_err().0, "attributes");
    }
}
