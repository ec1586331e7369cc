//! The case (案件) and its state machine.
//!
//! The state machine is data plus two functions: [`decide`] checks an action against the case,
//! the actor and the context and returns the one [`Event`] it produces (or a [`Refusal`]);
//! [`project`] folds an event into the case row. Storage appends the event and writes the
//! projection in one transaction; replaying the log with [`replay`] rebuilds the row exactly,
//! because every value the projection needs (deadlines included) is carried by the event.

use crate::calendar::{Limit, WorkCalendar};
use crate::catalogue::ClassInfo;
use crate::codes::{AreaClass, ClassCode, Kind, RegionCode, RegionLevel, Urgency};
use crate::component::ComponentId;
use crate::org::{Actor, DepartmentTree, Role, Scope};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a report came from (案件来源).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A collector's patrol (监督员上报).
    Collector,
    /// A citizen (市民举报): app, web, Open311.
    Citizen,
    /// The 12345 / 12319 hotline.
    Hotline,
    /// Video surveillance (视频监控).
    Video,
    /// A patrol car's camera (车载监控).
    Vehicle,
    /// Drone inspection (无人机).
    Drone,
    /// An urban-management kiosk (城管岗亭).
    Kiosk,
    /// A leader's instruction (领导交办).
    Leader,
}

impl Source {
    pub const ALL: [Source; 8] = [
        Source::Collector,
        Source::Citizen,
        Source::Hotline,
        Source::Video,
        Source::Vehicle,
        Source::Drone,
        Source::Kiosk,
        Source::Leader,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Collector => "collector",
            Source::Citizen => "citizen",
            Source::Hotline => "hotline",
            Source::Video => "video",
            Source::Vehicle => "vehicle",
            Source::Drone => "drone",
            Source::Kiosk => "kiosk",
            Source::Leader => "leader",
        }
    }
    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|x| x.as_str() == s)
    }
    /// Citizen and hotline reports are verified on site by a collector before intake (核实).
    pub fn needs_verification(self) -> bool {
        matches!(self, Source::Citizen | Source::Hotline)
    }
}

/// The state of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Reported (上报), waiting for the acceptor.
    Reported,
    /// Waiting for a collector's on-site verification (核实).
    Verifying,
    /// Accepted (受理), waiting for the shift leader to file it.
    Accepted,
    /// Filed (立案), waiting for dispatch (also after a return).
    Filed,
    /// With a department for disposal (处置), also after a failed check (返工).
    Dispatched,
    /// The department reported it fixed (反馈); waiting for the on-site check (核查).
    Disposed,
    /// The check passed; waiting for the shift leader to close it.
    Checked,
    /// Closed (结案).
    Closed,
    /// Not accepted (不予受理).
    Rejected,
    /// Not filed (不予立案).
    Refused,
    /// Voided (作废): duplicate, merged or invalid.
    Voided,
    /// Suspended (挂账): the clock is stopped until it is resumed.
    Suspended,
}

impl State {
    pub const ALL: [State; 12] = [
        State::Reported,
        State::Verifying,
        State::Accepted,
        State::Filed,
        State::Dispatched,
        State::Disposed,
        State::Checked,
        State::Closed,
        State::Rejected,
        State::Refused,
        State::Voided,
        State::Suspended,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            State::Reported => "reported",
            State::Verifying => "verifying",
            State::Accepted => "accepted",
            State::Filed => "filed",
            State::Dispatched => "dispatched",
            State::Disposed => "disposed",
            State::Checked => "checked",
            State::Closed => "closed",
            State::Rejected => "rejected",
            State::Refused => "refused",
            State::Voided => "voided",
            State::Suspended => "suspended",
        }
    }
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|x| x.as_str() == s)
    }
    /// A terminal state: no action applies any more.
    pub fn is_final(self) -> bool {
        matches!(self, State::Closed | State::Rejected | State::Refused | State::Voided)
    }
}

/// Every action of the state machine, as named in `POST /api/v1/cases/{id}/actions/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Report,
    Verify,
    Accept,
    Reject,
    File,
    Refuse,
    Void,
    Dispatch,
    HandDown,
    Return,
    RequestExtension,
    ApproveExtension,
    RejectExtension,
    RequestSuspension,
    ApproveSuspension,
    RejectSuspension,
    Resume,
    Dispose,
    Check,
    Close,
    Urge,
}

impl Action {
    pub const ALL: [Action; 21] = [
        Action::Report,
        Action::Verify,
        Action::Accept,
        Action::Reject,
        Action::File,
        Action::Refuse,
        Action::Void,
        Action::Dispatch,
        Action::HandDown,
        Action::Return,
        Action::RequestExtension,
        Action::ApproveExtension,
        Action::RejectExtension,
        Action::RequestSuspension,
        Action::ApproveSuspension,
        Action::RejectSuspension,
        Action::Resume,
        Action::Dispose,
        Action::Check,
        Action::Close,
        Action::Urge,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Report => "report",
            Action::Verify => "verify",
            Action::Accept => "accept",
            Action::Reject => "reject",
            Action::File => "file",
            Action::Refuse => "refuse",
            Action::Void => "void",
            Action::Dispatch => "dispatch",
            Action::HandDown => "hand_down",
            Action::Return => "return",
            Action::RequestExtension => "request_extension",
            Action::ApproveExtension => "approve_extension",
            Action::RejectExtension => "reject_extension",
            Action::RequestSuspension => "request_suspension",
            Action::ApproveSuspension => "approve_suspension",
            Action::RejectSuspension => "reject_suspension",
            Action::Resume => "resume",
            Action::Dispose => "dispose",
            Action::Check => "check",
            Action::Close => "close",
            Action::Urge => "urge",
        }
    }
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Who may take this action.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::Report => &[Collector, Citizen, Acceptor, Leader],
            Action::Verify | Action::Check => &[Collector],
            Action::Accept | Action::Reject => &[Acceptor],
            Action::File | Action::Refuse | Action::Close => &[Leader],
            Action::Void => &[Acceptor, Leader],
            Action::Dispatch => &[Dispatcher, Commander],
            Action::HandDown
            | Action::Return
            | Action::RequestExtension
            | Action::RequestSuspension
            | Action::Dispose => &[Handler],
            Action::ApproveExtension
            | Action::RejectExtension
            | Action::ApproveSuspension
            | Action::RejectSuspension
            | Action::Resume => &[Dispatcher, Leader, Commander],
            Action::Urge => &[Leader, Commander],
        }
    }

    /// States in which this action applies.
    pub fn from_states(self) -> &'static [State] {
        use State::*;
        match self {
            Action::Report => &[],
            Action::Verify => &[Verifying],
            Action::Accept => &[Reported],
            Action::Reject => &[Reported, Verifying],
            Action::File | Action::Refuse => &[Accepted],
            Action::Void => &[Reported, Verifying, Accepted, Filed],
            Action::Dispatch => &[Filed],
            Action::HandDown
            | Action::Return
            | Action::RequestExtension
            | Action::RequestSuspension
            | Action::Dispose => &[Dispatched],
            Action::ApproveExtension
            | Action::RejectExtension
            | Action::ApproveSuspension
            | Action::RejectSuspension => &[Dispatched],
            Action::Resume => &[Suspended],
            Action::Check => &[Disposed],
            Action::Close => &[Checked],
            Action::Urge => &[Reported, Verifying, Accepted, Filed, Dispatched, Disposed, Checked, Suspended],
        }
    }
}

/// Time limits of the stages that are not the disposal itself (DOMAIN.md defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StageLimits {
    pub verify: Limit,
    pub accept: Limit,
    pub file: Limit,
    pub dispatch: Limit,
    pub check: Limit,
    pub close: Limit,
}

impl Default for StageLimits {
    /// Typical defaults: verify ≤ 1 working hour; accept, file, dispatch ≤ 30 working minutes
    /// each; check ≤ 1 working hour after feedback; close ≤ 30 working minutes.
    fn default() -> Self {
        StageLimits {
            verify: Limit::working_hours(1),
            accept: Limit::working_minutes(30),
            file: Limit::working_minutes(30),
            dispatch: Limit::working_minutes(30),
            check: Limit::working_hours(1),
            close: Limit::working_minutes(30),
        }
    }
}

/// The disposal a failed check found not done (返工), and the dispatch behind it: whom the
/// evaluation charges the rework to, on the days they were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReworkOf {
    pub department_id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub disposed_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched_by: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub dispatched_at: Option<Timestamp>,
}

/// A pending request of the department, waiting for the command centre's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pending {
    /// 延期: more time, by `limit`.
    Extension { limit: Limit, reason: String, requested_by: i64 },
    /// 挂账: stop the clock until resumed.
    Suspension { reason: String, requested_by: i64 },
}

/// Why a report ended without a fix (reject 不予受理 / refuse 不予立案), as the citizen is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The problem was not found on site (核实不属实).
    NotFound,
    /// Not the city's responsibility (非城管职责): private property, another authority.
    NotCityResponsibility,
    /// Not a valid report: no problem described, a test, abuse.
    Invalid,
    /// Anything else; the note says what.
    Other,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::NotFound => "not_found",
            EndReason::NotCityResponsibility => "not_city_responsibility",
            EndReason::Invalid => "invalid",
            EndReason::Other => "other",
        }
    }
}

/// A point, WGS-84.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Point {
    pub lon: f64,
    pub lat: f64,
}

/// The case row: the projection of its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Case {
    pub id: i64,
    /// Human-readable number: local date + daily sequence, e.g. `2026112800017`.
    pub number: String,
    pub source: Source,
    pub kind: Kind,
    #[schema(value_type = String, example = "06010")]
    pub class_code: ClassCode,
    pub urgency: Urgency,
    pub description: String,
    pub address: Option<String>,
    pub location: Point,
    #[schema(value_type = String, example = "320311001001008")]
    pub grid_code: RegionCode,
    #[schema(value_type = String)]
    pub community_code: RegionCode,
    #[schema(value_type = String)]
    pub street_code: RegionCode,
    #[schema(value_type = String)]
    pub district_code: RegionCode,
    pub area_class: AreaClass,
    pub photo_ids: Vec<String>,
    pub reporter_id: Option<i64>,
    /// The component (部件) the case is about: named by the reporter or, for a component
    /// class, the nearest one of that class to the reported point.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "32031101001000042")]
    pub component_id: Option<ComponentId>,
    pub state: State,
    /// The department the case is with (while dispatched, disposed, checked or suspended).
    pub department_id: Option<i64>,
    /// Disposal limit picked at dispatch from class, urgency and area class.
    pub disposal_limit: Option<Limit>,
    /// When the current stage started.
    #[schema(value_type = String, format = DateTime)]
    pub stage_started_at: Timestamp,
    /// Deadline of the current stage; none in final states and while suspended.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deadline: Option<Timestamp>,
    /// Deadline of the whole case (to closure); set at filing.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub case_deadline: Option<Timestamp>,
    pub pending: Option<Pending>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub suspended_at: Option<Timestamp>,
    /// Result of the on-site verification, for citizen and hotline reports.
    pub verified: Option<bool>,
    pub duplicate_of: Option<i64>,
    /// Why it was rejected or refused, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    pub dispatch_count: u32,
    pub return_count: u32,
    pub rework_count: u32,
    pub extension_count: u32,
    /// The shift leader who filed it (立案), for evaluation's accurate-filing rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filed_by: Option<i64>,
    /// The dispatcher of the latest dispatch, charged when the department returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched_by: Option<i64>,
    /// When it was filed (立案时间): the evaluation dates a later void of the filing by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub filed_at: Option<Timestamp>,
    /// When the latest dispatch was made (派遣时间): a return of it is dated by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub dispatched_at: Option<Timestamp>,
    /// What the first failed check (返工) judged: the department whose disposal failed and the
    /// dispatch that sent the case there. The rework is charged to them when the case closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rework_of: Option<ReworkOf>,
    /// The due date (应结时间) the evaluation's "due to close" (应结案数) is dated by. It
    /// follows `case_deadline` while that deadline has not passed; once an event happens after
    /// it while the case is open and its clock runs, it stays at that passed deadline for good
    /// (a later return, failed check, extension or resumed suspension moves `case_deadline`, not
    /// this). A case suspended before its due date is not due while suspended (the clock
    /// stopped); one suspended after it stays due. None before filing and once voided or
    /// refused. See `evaluation::due_facts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_at: Option<Timestamp>,
    /// The department answerable for closing by `due_at`: the one holding the case while the
    /// due date has not passed, then the one that held it when it passed, for good (returning
    /// or handing down an overdue case does not take its overdue away, nor give it to another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_department_id: Option<i64>,
    /// Marked for attention by a leader (督办).
    pub urged: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<Timestamp>,
    /// Number of events so far; the next event's sequence number is `version + 1`.
    pub version: u32,
}

impl Case {
    /// Overdue: open, not suspended, and past the current stage's deadline.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        !self.state.is_final() && self.state != State::Suspended && self.deadline.is_some_and(|d| d < now)
    }

    /// Suspended at or before its due date: the clock stopped before the due date came, so
    /// the case is not due while suspended and its due date still follows the deadline.
    pub fn suspended_before_due(&self) -> bool {
        self.state == State::Suspended && self.suspended_at.zip(self.due_at).is_some_and(|(s, due)| s <= due)
    }

    /// Whether an event at `at` finds the due date passed: the case is open, its clock runs
    /// (not suspended before the due date) and `at` is after `due_at`. From such an event on,
    /// [`project`] keeps `due_at` and `due_department_id` as they are.
    pub fn due_passed(&self, at: Timestamp) -> bool {
        !self.state.is_final() && !self.suspended_before_due() && self.due_at.is_some_and(|due| at > due)
    }
}

/// What an event changed, by action. Carries every value the projection needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    Report {
        number: String,
        source: Source,
        kind: Kind,
        #[schema(value_type = String)]
        class_code: ClassCode,
        urgency: Urgency,
        description: String,
        address: Option<String>,
        location: Point,
        #[schema(value_type = String)]
        grid_code: RegionCode,
        area_class: AreaClass,
        reporter_id: Option<i64>,
        /// The component (部件) the report is about, when one is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        component_id: Option<ComponentId>,
    },
    Verify {
        confirmed: bool,
    },
    Accept,
    Reject {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<EndReason>,
    },
    File {
        urgency: Urgency,
    },
    Refuse {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<EndReason>,
    },
    Void {
        duplicate_of: Option<i64>,
    },
    Dispatch {
        department_id: i64,
        disposal_limit: Limit,
    },
    HandDown {
        department_id: i64,
    },
    Return {
        department_id: i64,
    },
    RequestExtension {
        limit: Limit,
    },
    ApproveExtension {
        limit: Limit,
    },
    RejectExtension,
    RequestSuspension,
    ApproveSuspension,
    RejectSuspension,
    Resume,
    Dispose,
    Check {
        passed: bool,
    },
    Close,
    Urge,
}

impl Change {
    pub fn action(&self) -> Action {
        match self {
            Change::Report { .. } => Action::Report,
            Change::Verify { .. } => Action::Verify,
            Change::Accept => Action::Accept,
            Change::Reject { .. } => Action::Reject,
            Change::File { .. } => Action::File,
            Change::Refuse { .. } => Action::Refuse,
            Change::Void { .. } => Action::Void,
            Change::Dispatch { .. } => Action::Dispatch,
            Change::HandDown { .. } => Action::HandDown,
            Change::Return { .. } => Action::Return,
            Change::RequestExtension { .. } => Action::RequestExtension,
            Change::ApproveExtension { .. } => Action::ApproveExtension,
            Change::RejectExtension => Action::RejectExtension,
            Change::RequestSuspension => Action::RequestSuspension,
            Change::ApproveSuspension => Action::ApproveSuspension,
            Change::RejectSuspension => Action::RejectSuspension,
            Change::Resume => Action::Resume,
            Change::Dispose => Action::Dispose,
            Change::Check { .. } => Action::Check,
            Change::Close => Action::Close,
            Change::Urge => Action::Urge,
        }
    }
}

/// One entry of the append-only case log (案件日志). Never updated, never deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// 1-based position in the case's log.
    pub seq: u32,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub actor_role: Role,
    pub from_state: Option<State>,
    pub to_state: State,
    #[serde(flatten)]
    pub change: Change,
    pub note: Option<String>,
    pub photo_ids: Vec<String>,
    /// Current-stage deadline after this event.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deadline: Option<Timestamp>,
    /// Whole-case deadline after this event.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub case_deadline: Option<Timestamp>,
    /// The step was taken after the deadline of the stage it ended (for evaluation).
    pub late: bool,
}

/// Why an action was refused. Each maps to one HTTP status in the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The role may not take this action at all (403).
    #[error("role {role} may not {action}")]
    Role { role: &'static str, action: &'static str },
    /// The case (or a department named) is outside the actor's data scope (403).
    #[error("outside your data scope")]
    Scope,
    /// The action does not apply in the case's state (409).
    #[error("cannot {action} a case that is {state}")]
    State { action: &'static str, state: &'static str },
    /// Some other precondition does not hold (409), e.g. a request already pending.
    #[error("{0}")]
    Conflict(String),
    /// Bad input, naming the field (422).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
}

fn invalid(field: &'static str, message: impl Into<String>) -> Refusal {
    Refusal::Invalid { field, message: message.into() }
}

/// The input of an action, as clients send it: one shape for all actions; each action reads the
/// fields it needs and [`Command::parse`] says which one is missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionInput {
    /// Free text for the log (required for reject, refuse, void, return and the requests).
    pub note: Option<String>,
    /// `dispatch`, `hand_down`: the department.
    pub department_id: Option<i64>,
    /// `check`: did the disposal pass the on-site check.
    pub passed: Option<bool>,
    /// `verify`: does the problem exist as reported.
    pub confirmed: Option<bool>,
    /// `dispose` (required), `check`, `verify`: photos from `POST /api/v1/photos`.
    pub photo_ids: Option<Vec<String>>,
    /// `file`: the urgency the leader files it with (defaults to the reported one).
    pub urgency: Option<Urgency>,
    /// `void`: the case this one duplicates.
    pub duplicate_of: Option<i64>,
    /// `request_extension`: how much more time.
    pub limit: Option<Limit>,
    /// `reject`, `refuse`: why, as the reporter will be told (the note explains).
    pub reason: Option<EndReason>,
}

/// A parsed, validated action.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Verify { confirmed: bool },
    Accept,
    Reject { reason: Option<EndReason> },
    File { urgency: Option<Urgency> },
    Refuse { reason: Option<EndReason> },
    Void { duplicate_of: Option<i64> },
    Dispatch { department_id: i64 },
    HandDown { department_id: i64 },
    Return,
    RequestExtension { limit: Limit },
    ApproveExtension,
    RejectExtension,
    RequestSuspension,
    ApproveSuspension,
    RejectSuspension,
    Resume,
    Dispose,
    Check { passed: bool },
    Close,
    Urge,
}

/// Longest free text we keep in the log.
pub const MAX_NOTE: usize = 2000;
/// Most photos on one step.
pub const MAX_PHOTOS: usize = 9;

/// A validated action with its free text and photos.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub action: Action,
    pub command: Command,
    pub note: Option<String>,
    pub photo_ids: Vec<String>,
}

impl Command {
    /// Validate the input of `action` (not `report`, which has its own body).
    pub fn parse(action: Action, input: ActionInput) -> Result<Step, Refusal> {
        let note = match input.note.map(|n| n.trim().to_owned()) {
            Some(n) if n.chars().count() > MAX_NOTE => {
                return Err(invalid("note", format!("at most {MAX_NOTE} characters")))
            }
            Some(n) if n.is_empty() => None,
            n => n,
        };
        let photo_ids = input.photo_ids.unwrap_or_default();
        if photo_ids.len() > MAX_PHOTOS {
            return Err(invalid("photo_ids", format!("at most {MAX_PHOTOS} photos")));
        }
        for p in &photo_ids {
            if !is_photo_id(p) {
                return Err(invalid("photo_ids", format!("{p:?} is not a photo id")));
            }
        }
        let need_note = |what: &str| -> Result<(), Refusal> {
            if note.is_none() {
                Err(invalid("note", format!("a {what} is required")))
            } else {
                Ok(())
            }
        };
        let department = || input.department_id.ok_or_else(|| invalid("department_id", "required"));
        let command = match action {
            Action::Report => return Err(invalid("action", "report by POST /api/v1/cases")),
            Action::Verify => {
                Command::Verify { confirmed: input.confirmed.ok_or_else(|| invalid("confirmed", "required"))? }
            }
            Action::Accept => Command::Accept,
            Action::Reject => {
                need_note("reason")?;
                Command::Reject { reason: input.reason }
            }
            Action::File => Command::File { urgency: input.urgency },
            Action::Refuse => {
                need_note("reason")?;
                Command::Refuse { reason: input.reason }
            }
            Action::Void => {
                need_note("reason")?;
                Command::Void { duplicate_of: input.duplicate_of }
            }
            Action::Dispatch => Command::Dispatch { department_id: department()? },
            Action::HandDown => Command::HandDown { department_id: department()? },
            Action::Return => {
                need_note("reason")?;
                Command::Return
            }
            Action::RequestExtension => {
                need_note("reason")?;
                let limit = input.limit.ok_or_else(|| invalid("limit", "required"))?;
                if limit.amount == 0 || limit.amount > 10_000 {
                    return Err(invalid("limit", "amount must be 1 to 10000"));
                }
                Command::RequestExtension { limit }
            }
            Action::ApproveExtension => Command::ApproveExtension,
            Action::RejectExtension => Command::RejectExtension,
            Action::RequestSuspension => {
                need_note("reason")?;
                Command::RequestSuspension
            }
            Action::ApproveSuspension => Command::ApproveSuspension,
            Action::RejectSuspension => Command::RejectSuspension,
            Action::Resume => Command::Resume,
            Action::Dispose => {
                if photo_ids.is_empty() {
                    return Err(invalid("photo_ids", "an after-photo is required"));
                }
                Command::Dispose
            }
            Action::Check => Command::Check { passed: input.passed.ok_or_else(|| invalid("passed", "required"))? },
            Action::Close => Command::Close,
            Action::Urge => Command::Urge,
        };
        Ok(Step { action, command, note, photo_ids })
    }
}

/// A photo id is the SHA-256 of its bytes, lowercase hex.
pub fn is_photo_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Everything outside the case that a decision needs.
pub struct Ctx<'a> {
    pub now: Timestamp,
    pub calendar: &'a WorkCalendar,
    pub stages: &'a StageLimits,
    pub departments: &'a DepartmentTree,
    /// The case's class.
    pub class: &'a ClassInfo,
}

/// A validated new report, with its location resolved to a unit grid.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReport {
    pub number: String,
    pub source: Source,
    pub kind: Kind,
    pub class_code: ClassCode,
    pub urgency: Urgency,
    pub description: String,
    pub address: Option<String>,
    pub location: Point,
    pub grid_code: RegionCode,
    pub area_class: AreaClass,
    pub photo_ids: Vec<String>,
    /// The component (部件) concerned: a broken cover's 17-digit id.
    pub component_id: Option<ComponentId>,
}

/// Sources each role may report as; the first is the default.
pub fn sources_for(role: Role) -> &'static [Source] {
    match role {
        Role::Collector => &[Source::Collector],
        Role::Citizen => &[Source::Citizen],
        Role::Acceptor => &[
            Source::Hotline,
            Source::Citizen,
            Source::Video,
            Source::Vehicle,
            Source::Drone,
            Source::Kiosk,
            Source::Leader,
        ],
        Role::Leader => &[Source::Leader],
        _ => &[],
    }
}

/// The first event of a case: a report.
pub fn report(r: NewReport, actor: &Actor, ctx: &Ctx) -> Result<Event, Refusal> {
    if !Action::Report.roles().contains(&actor.role) {
        return Err(Refusal::Role { role: actor.role.as_str(), action: "report" });
    }
    if !sources_for(actor.role).contains(&r.source) {
        return Err(invalid("source", format!("a {} cannot report as {}", actor.role.as_str(), r.source.as_str())));
    }
    // Collectors and the centre work inside their region; citizens may report anywhere.
    if actor.role != Role::Citizen && !actor.scope.covers_region(&r.grid_code) {
        return Err(Refusal::Scope);
    }
    if !ctx.class.active {
        return Err(invalid("class_code", "this class is not in use"));
    }
    let (to_state, limit) = if r.source.needs_verification() {
        (State::Verifying, ctx.stages.verify)
    } else {
        (State::Reported, ctx.stages.accept)
    };
    Ok(Event {
        seq: 1,
        at: ctx.now,
        actor_id: Some(actor.user_id),
        actor_name: actor.username.clone(),
        actor_role: actor.role,
        from_state: None,
        to_state,
        change: Change::Report {
            number: r.number,
            source: r.source,
            kind: r.kind,
            class_code: r.class_code,
            urgency: r.urgency,
            description: r.description,
            address: r.address,
            location: r.location,
            grid_code: r.grid_code,
            area_class: r.area_class,
            reporter_id: Some(actor.user_id),
            component_id: r.component_id,
        },
        note: None,
        photo_ids: r.photo_ids,
        deadline: Some(ctx.calendar.deadline(ctx.now, limit)),
        case_deadline: None,
        late: false,
    })
}

fn chain(cal: &WorkCalendar, start: Timestamp, limits: &[Limit]) -> Timestamp {
    limits.iter().fold(start, |t, l| cal.deadline(t, *l))
}

/// Check an action against the case, the actor and the context; on success return the one event
/// it produces. Refusals change nothing.
pub fn decide(case: &Case, step: &Step, actor: &Actor, ctx: &Ctx) -> Result<Event, Refusal> {
    let action = step.action;
    if !action.roles().contains(&actor.role) {
        return Err(Refusal::Role { role: actor.role.as_str(), action: action.as_str() });
    }
    let in_scope = match &actor.scope {
        Scope::Region { .. } => actor.scope.covers_region(&case.grid_code),
        Scope::Department { .. } => {
            case.department_id.is_some_and(|d| actor.scope.covers_department(ctx.departments, d))
        }
        Scope::Own => false,
    };
    if !in_scope {
        return Err(Refusal::Scope);
    }
    if !action.from_states().contains(&case.state) {
        return Err(Refusal::State { action: action.as_str(), state: case.state.as_str() });
    }
    let now = ctx.now;
    let cal = ctx.calendar;
    let st = ctx.stages;
    let late = case.deadline.is_some_and(|d| now > d);
    let mut deadline = case.deadline;
    let mut case_deadline = case.case_deadline;
    let mut to_state = case.state;
    let disposal = |urgency: Urgency| ctx.class.limits.get(urgency, case.area_class);
    let no_pending = || match &case.pending {
        Some(_) => Err(Refusal::Conflict("a request is already pending".into())),
        None => Ok(()),
    };
    let change = match &step.command {
        Command::Verify { confirmed } => {
            to_state = State::Reported;
            deadline = Some(cal.deadline(now, st.accept));
            Change::Verify { confirmed: *confirmed }
        }
        Command::Accept => {
            to_state = State::Accepted;
            deadline = Some(cal.deadline(now, st.file));
            Change::Accept
        }
        Command::Reject { reason } => {
            to_state = State::Rejected;
            deadline = None;
            Change::Reject { reason: *reason }
        }
        Command::File { urgency } => {
            let urgency = urgency.unwrap_or(case.urgency);
            to_state = State::Filed;
            deadline = Some(cal.deadline(now, st.dispatch));
            case_deadline = Some(chain(cal, now, &[st.dispatch, disposal(urgency), st.check, st.close]));
            Change::File { urgency }
        }
        Command::Refuse { reason } => {
            to_state = State::Refused;
            deadline = None;
            case_deadline = None;
            Change::Refuse { reason: *reason }
        }
        Command::Void { duplicate_of } => {
            if *duplicate_of == Some(case.id) {
                return Err(invalid("duplicate_of", "a case cannot duplicate itself"));
            }
            to_state = State::Voided;
            deadline = None;
            case_deadline = None;
            Change::Void { duplicate_of: *duplicate_of }
        }
        Command::Dispatch { department_id } => {
            if ctx.departments.get(*department_id).is_none() {
                return Err(invalid("department_id", "no such department"));
            }
            let limit = disposal(case.urgency);
            to_state = State::Dispatched;
            let d = cal.deadline(now, limit);
            deadline = Some(d);
            case_deadline = Some(chain(cal, d, &[st.check, st.close]));
            Change::Dispatch { department_id: *department_id, disposal_limit: limit }
        }
        Command::HandDown { department_id } => {
            no_pending()?;
            let target =
                ctx.departments.get(*department_id).ok_or_else(|| invalid("department_id", "no such department"))?;
            if target.parent_id != case.department_id {
                return Err(invalid("department_id", "must be a sub-unit of the department holding the case"));
            }
            Change::HandDown { department_id: *department_id }
        }
        Command::Return => {
            no_pending()?;
            to_state = State::Filed;
            deadline = Some(cal.deadline(now, st.dispatch));
            let limit = disposal(case.urgency);
            case_deadline = Some(chain(cal, now, &[st.dispatch, limit, st.check, st.close]));
            Change::Return { department_id: case.department_id.unwrap_or_default() }
        }
        Command::RequestExtension { limit } => {
            no_pending()?;
            Change::RequestExtension { limit: *limit }
        }
        Command::RequestSuspension => {
            no_pending()?;
            Change::RequestSuspension
        }
        Command::ApproveExtension => {
            let Some(Pending::Extension { limit, .. }) = &case.pending else {
                return Err(Refusal::Conflict("no extension request is pending".into()));
            };
            // An extension moves the disposal deadline by the granted working time.
            let base = case.deadline.unwrap_or(now);
            let d = cal.deadline(base, *limit);
            deadline = Some(d);
            case_deadline = Some(chain(cal, d, &[st.check, st.close]));
            Change::ApproveExtension { limit: *limit }
        }
        Command::RejectExtension => {
            if !matches!(case.pending, Some(Pending::Extension { .. })) {
                return Err(Refusal::Conflict("no extension request is pending".into()));
            }
            Change::RejectExtension
        }
        Command::ApproveSuspension => {
            if !matches!(case.pending, Some(Pending::Suspension { .. })) {
                return Err(Refusal::Conflict("no suspension request is pending".into()));
            }
            to_state = State::Suspended;
            Change::ApproveSuspension
        }
        Command::RejectSuspension => {
            if !matches!(case.pending, Some(Pending::Suspension { .. })) {
                return Err(Refusal::Conflict("no suspension request is pending".into()));
            }
            Change::RejectSuspension
        }
        Command::Resume => {
            // Suspended time does not count: both deadlines move by the working time the case
            // spent suspended, so an overdue case stays exactly as overdue as it was.
            let since = case.suspended_at.unwrap_or(now);
            to_state = State::Dispatched;
            if case.disposal_limit.is_some_and(|l| l.is_natural()) {
                // A natural-time limit keeps running at night and on holidays, so the pause
                // is measured the same way.
                let paused = jiff::SignedDuration::from_millis((now.as_millisecond() - since.as_millisecond()).max(0));
                deadline = case.deadline.and_then(|d| d.checked_add(paused).ok());
                let working = cal.working_millis_between(since, now);
                case_deadline = case.case_deadline.map(|d| cal.add_working_millis(d, working));
            } else {
                let paused = cal.working_millis_between(since, now);
                deadline = case.deadline.map(|d| cal.add_working_millis(d, paused));
                case_deadline = case.case_deadline.map(|d| cal.add_working_millis(d, paused));
            }
            Change::Resume
        }
        Command::Dispose => {
            no_pending()?;
            to_state = State::Disposed;
            deadline = Some(cal.deadline(now, st.check));
            Change::Dispose
        }
        Command::Check { passed } => {
            if *passed {
                to_state = State::Checked;
                deadline = Some(cal.deadline(now, st.close));
            } else {
                // Rework (返工): back to the same department with a fresh disposal limit.
                to_state = State::Dispatched;
                let limit = case.disposal_limit.unwrap_or_else(|| disposal(case.urgency));
                let d = cal.deadline(now, limit);
                deadline = Some(d);
                case_deadline = Some(chain(cal, d, &[st.check, st.close]));
            }
            Change::Check { passed: *passed }
        }
        Command::Close => {
            to_state = State::Closed;
            deadline = None;
            Change::Close
        }
        Command::Urge => Change::Urge,
    };
    // Hand-downs, requests, urging and rulings on requests do not end a stage.
    let ends_stage = !matches!(
        change,
        Change::HandDown { .. }
            | Change::RequestExtension { .. }
            | Change::RequestSuspension
            | Change::RejectExtension
            | Change::RejectSuspension
            | Change::ApproveExtension { .. }
            | Change::ApproveSuspension
            | Change::Urge
            | Change::Resume
    );
    Ok(Event {
        seq: case.version + 1,
        at: now,
        actor_id: Some(actor.user_id),
        actor_name: actor.username.clone(),
        actor_role: actor.role,
        from_state: Some(case.state),
        to_state,
        change,
        note: step.note.clone(),
        photo_ids: step.photo_ids.clone(),
        deadline,
        case_deadline,
        late: ends_stage && late,
    })
}

/// Fold one event into the case. `case` is `None` for the first (report) event.
pub fn project(case: Option<Case>, id: i64, e: &Event) -> Option<Case> {
    let mut c = match case {
        None => {
            let Change::Report {
                number,
                source,
                kind,
                class_code,
                urgency,
                description,
                address,
                location,
                grid_code,
                area_class,
                reporter_id,
                component_id,
            } = &e.change
            else {
                return None;
            };
            if e.seq != 1 || e.from_state.is_some() {
                return None;
            }
            return Some(Case {
                id,
                number: number.clone(),
                source: *source,
                kind: *kind,
                class_code: class_code.clone(),
                urgency: *urgency,
                description: description.clone(),
                address: address.clone(),
                location: *location,
                community_code: grid_code.at_level(RegionLevel::Community)?,
                street_code: grid_code.at_level(RegionLevel::Street)?,
                district_code: grid_code.at_level(RegionLevel::District)?,
                grid_code: grid_code.clone(),
                area_class: *area_class,
                photo_ids: e.photo_ids.clone(),
                reporter_id: *reporter_id,
                component_id: component_id.clone(),
                state: e.to_state,
                department_id: None,
                disposal_limit: None,
                stage_started_at: e.at,
                deadline: e.deadline,
                case_deadline: e.case_deadline,
                pending: None,
                suspended_at: None,
                verified: None,
                duplicate_of: None,
                end_reason: None,
                filed_by: None,
                dispatched_by: None,
                filed_at: None,
                dispatched_at: None,
                rework_of: None,
                due_at: e.case_deadline,
                due_department_id: None,
                dispatch_count: 0,
                return_count: 0,
                rework_count: 0,
                extension_count: 0,
                urged: false,
                created_at: e.at,
                updated_at: e.at,
                closed_at: None,
                version: 1,
            });
        }
        Some(c) if c.id == id && e.seq == c.version + 1 && e.from_state == Some(c.state) => c,
        Some(_) => return None,
    };
    // Decided on the case as it was before this event.
    let due_passed = c.due_passed(e.at);
    match &e.change {
        Change::Report { .. } => return None,
        Change::Verify { confirmed } => c.verified = Some(*confirmed),
        Change::File { urgency } => {
            c.urgency = *urgency;
            c.filed_by = e.actor_id;
            c.filed_at = Some(e.at);
        }
        Change::Void { duplicate_of } => c.duplicate_of = *duplicate_of,
        Change::Dispatch { department_id, disposal_limit } => {
            c.department_id = Some(*department_id);
            c.disposal_limit = Some(*disposal_limit);
            c.dispatch_count += 1;
            c.dispatched_by = e.actor_id;
            c.dispatched_at = Some(e.at);
        }
        Change::HandDown { department_id } => c.department_id = Some(*department_id),
        Change::Return { .. } => {
            c.department_id = None;
            c.return_count += 1;
        }
        Change::RequestExtension { limit } => {
            c.pending = Some(Pending::Extension {
                limit: *limit,
                reason: e.note.clone().unwrap_or_default(),
                requested_by: e.actor_id.unwrap_or_default(),
            })
        }
        Change::RequestSuspension => {
            c.pending = Some(Pending::Suspension {
                reason: e.note.clone().unwrap_or_default(),
                requested_by: e.actor_id.unwrap_or_default(),
            })
        }
        Change::ApproveExtension { .. } => {
            c.pending = None;
            c.extension_count += 1;
        }
        Change::RejectExtension | Change::RejectSuspension => c.pending = None,
        Change::ApproveSuspension => {
            c.pending = None;
            c.suspended_at = Some(e.at);
        }
        Change::Resume => c.suspended_at = None,
        Change::Check { passed: false } => {
            c.rework_count += 1;
            if c.rework_of.is_none() {
                if let Some(department_id) = c.department_id {
                    // Checked in the disposed state, which began with the disposal.
                    let (disposed_at, dispatched_by, dispatched_at) =
                        (c.stage_started_at, c.dispatched_by, c.dispatched_at);
                    c.rework_of = Some(ReworkOf { department_id, disposed_at, dispatched_by, dispatched_at });
                }
            }
        }
        Change::Close => c.closed_at = Some(e.at),
        Change::Urge => c.urged = true,
        Change::Reject { reason } | Change::Refuse { reason } => c.end_reason = *reason,
        Change::Accept | Change::Dispose | Change::Check { passed: true } => {}
    }
    if e.to_state != c.state || matches!(e.change, Change::Check { .. } | Change::Resume) {
        c.stage_started_at = e.at;
    }
    if e.to_state.is_final() {
        c.department_id = match e.to_state {
            State::Closed => c.department_id,
            _ => None,
        };
    }
    c.state = e.to_state;
    c.deadline = e.deadline;
    c.case_deadline = e.case_deadline;
    if e.case_deadline.is_none() {
        // Voided or refused: nothing is due any more.
        c.due_at = None;
        c.due_department_id = None;
    } else if !due_passed {
        c.due_at = e.case_deadline;
        c.due_department_id = c.department_id;
    }
    c.updated_at = e.at;
    c.version = e.seq;
    Some(c)
}

/// Rebuild a case from its whole log; `None` if the log is not a valid history.
pub fn replay(id: i64, events: &[Event]) -> Option<Case> {
    let mut case = None;
    for (i, e) in events.iter().enumerate() {
        if e.seq as usize != i + 1 {
            return None;
        }
        case = Some(project(case, id, e)?);
    }
    case
}

#[cfg(test)]
mod tests;
