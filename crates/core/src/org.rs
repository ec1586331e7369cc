//! The organisation: regions (city → district → street 街道 → community 社区 → unit grid
//! 单元网格), departments in two tiers (二级 city-level departments and their 三级 sub-units),
//! users with roles, and the data scope (数据权限) every role is bound to.

use crate::codes::{AreaClass, RegionCode, RegionLevel};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

/// A node of the region tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Region {
    #[schema(value_type = String, example = "320311001001001")]
    pub code: RegionCode,
    pub name: String,
    pub level: RegionLevel,
    #[schema(value_type = Option<String>)]
    pub parent: Option<RegionCode>,
    /// Area class of the region (A core, B/C general); picks disposal limits.
    pub area_class: AreaClass,
}

/// A department (专业部门): tier 2 is a city-level department (二级终端), tier 3 a sub-unit
/// (三级终端: street office, branch, company) under one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Department {
    pub id: i64,
    /// Short stable code, e.g. `HW` for sanitation (环卫); the catalogue names departments by it.
    pub code: String,
    pub name: String,
    pub parent_id: Option<i64>,
    pub tier: u8,
}

/// All departments, for subtree questions.
#[derive(Debug, Clone, Default)]
pub struct DepartmentTree {
    by_id: HashMap<i64, Department>,
}

impl DepartmentTree {
    pub fn new(departments: impl IntoIterator<Item = Department>) -> Self {
        DepartmentTree { by_id: departments.into_iter().map(|d| (d.id, d)).collect() }
    }

    pub fn get(&self, id: i64) -> Option<&Department> {
        self.by_id.get(&id)
    }

    pub fn by_code(&self, code: &str) -> Option<&Department> {
        self.by_id.values().find(|d| d.code == code)
    }

    /// Ids of `root` and every department below it.
    pub fn subtree(&self, root: i64) -> Vec<i64> {
        let mut ids: Vec<i64> = self.by_id.keys().copied().filter(|id| self.is_within(*id, root)).collect();
        ids.sort_unstable();
        ids
    }

    /// True when `id` is `ancestor` or below it. Walks at most a few levels; a cycle in bad
    /// data cannot loop forever because the walk is bounded by the tree size.
    pub fn is_within(&self, id: i64, ancestor: i64) -> bool {
        let mut cur = Some(id);
        for _ in 0..=self.by_id.len() {
            match cur {
                Some(c) if c == ancestor => return true,
                Some(c) => cur = self.by_id.get(&c).and_then(|d| d.parent_id),
                None => return false,
            }
        }
        false
    }
}

/// Roles of the case loop (DOMAIN.md "The case loop").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 系统管理员: configuration, users, catalogue; no case actions.
    Admin,
    /// 信息采集员 / 监督员: reports in the field, verifies citizen reports, checks disposals.
    Collector,
    /// 受理员: intake; accepts, rejects, voids.
    Acceptor,
    /// 值班长: files, refuses, closes.
    Leader,
    /// 派遣员: dispatches to departments, rules on returns, extensions, suspensions.
    Dispatcher,
    /// 专业部门处置人员: disposes, hands down, returns, asks for extension or suspension.
    Handler,
    /// 区指挥中心: a district command centre; dispatches and approves within its district.
    Commander,
    /// 考评员: reads everything in scope for evaluation.
    Evaluator,
    /// 市民: reports and follows their own reports.
    Citizen,
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::Admin,
        Role::Collector,
        Role::Acceptor,
        Role::Leader,
        Role::Dispatcher,
        Role::Handler,
        Role::Commander,
        Role::Evaluator,
        Role::Citizen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Collector => "collector",
            Role::Acceptor => "acceptor",
            Role::Leader => "leader",
            Role::Dispatcher => "dispatcher",
            Role::Handler => "handler",
            Role::Commander => "commander",
            Role::Evaluator => "evaluator",
            Role::Citizen => "citizen",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The kind of scope this role must be bound to.
    pub fn scope_kind(self) -> ScopeKind {
        match self {
            Role::Handler => ScopeKind::Department,
            Role::Citizen => ScopeKind::Own,
            _ => ScopeKind::Region,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    Region,
    Department,
    Own,
}

/// The data a user may see and act on: a region subtree, a department subtree, or only their
/// own reports (citizens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    Region {
        #[schema(value_type = String)]
        code: RegionCode,
    },
    Department {
        department_id: i64,
    },
    Own,
}

impl Scope {
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Region { .. } => ScopeKind::Region,
            Scope::Department { .. } => ScopeKind::Department,
            Scope::Own => ScopeKind::Own,
        }
    }

    pub fn covers_region(&self, code: &RegionCode) -> bool {
        matches!(self, Scope::Region { code: own } if own.contains(code))
    }

    pub fn covers_department(&self, tree: &DepartmentTree, department_id: i64) -> bool {
        matches!(self, Scope::Department { department_id: own } if tree.is_within(department_id, *own))
    }
}

/// Who is acting: the authenticated user as the domain needs to know them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub scope: Scope,
}

/// Region levels below `level`, for listing children.
pub fn child_level(level: RegionLevel) -> Option<RegionLevel> {
    match level {
        RegionLevel::City => Some(RegionLevel::District),
        RegionLevel::District => Some(RegionLevel::Street),
        RegionLevel::Street => Some(RegionLevel::Community),
        RegionLevel::Community => Some(RegionLevel::Grid),
        RegionLevel::Grid => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> DepartmentTree {
        DepartmentTree::new([
            Department { id: 1, code: "HW".into(), name: "环卫处".into(), parent_id: None, tier: 2 },
            Department { id: 2, code: "HW-QS".into(), name: "泉山环卫所".into(), parent_id: Some(1), tier: 3 },
            Department { id: 3, code: "SZ".into(), name: "市政处".into(), parent_id: None, tier: 2 },
        ])
    }

    #[test]
    fn department_subtrees() {
        let t = tree();
        assert!(t.is_within(2, 1));
        assert!(t.is_within(1, 1));
        assert!(!t.is_within(1, 2));
        assert!(!t.is_within(2, 3));
        assert!(!t.is_within(99, 1));
        assert_eq!(t.subtree(1), vec![1, 2]);
        assert_eq!(t.subtree(2), vec![2]);
        assert!(t.subtree(99).is_empty());
        let s = Scope::Department { department_id: 1 };
        assert!(s.covers_department(&t, 2));
        assert!(!s.covers_department(&t, 3));
        assert!(!s.covers_region(&RegionCode::parse("320311").unwrap()));
    }

    #[test]
    fn region_scope() {
        let s = Scope::Region { code: RegionCode::parse("320311").unwrap() };
        assert!(s.covers_region(&RegionCode::parse("320311001001001").unwrap()));
        assert!(!s.covers_region(&RegionCode::parse("320303001001001").unwrap()));
        let city = Scope::Region { code: RegionCode::parse("320300").unwrap() };
        assert!(city.covers_region(&RegionCode::parse("320303001001001").unwrap()));
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
