//! Tests of the case state machine.
//!
//! All times are Beijing time (UTC+8). The calendar is `WorkCalendar::china_default()`: office
//! hours 08:30–12:00 (210 min) and 13:30–17:30 (240 min), 450 working minutes a day; in 2026
//! Sep 20 (Sun) is a make-up working day, Sep 25–27 and Oct 1–7 are holidays, Oct 10 (Sat) is a
//! make-up working day and Oct 11 is an ordinary Sunday. So Wed Sep 30 is followed, as working
//! days go, by Thu Oct 8, Fri Oct 9, Sat Oct 10 and Mon Oct 12.
//!
//! Stage limits are the defaults: verify 1 h, accept/file/dispatch 30 min, check 1 h, close
//! 30 min (all working time). The class is national event 06010 (暴露垃圾): ordinary disposal in
//! area A is 2 working hours, urgent 30 min, important 1 h; area C doubles them.

use super::*;
use crate::calendar::LimitUnit;
use crate::catalogue::{national, AreaLimits, DisposalLimits};
use crate::org::Department;
use jiff::SignedDuration;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

const ID: i64 = 7;
/// A unit grid in Quanshan district (320311) of Xuzhou (320300).
const GRID: &str = "320311001001008";
/// A unit grid in Gulou district (320302), outside 320311 but inside the city.
const OTHER_GRID: &str = "320302001001001";

// --- fixtures -----------------------------------------------------------------------------

struct World {
    cal: WorkCalendar,
    stages: StageLimits,
    tree: DepartmentTree,
    class: ClassInfo,
}

impl World {
    fn ctx(&self, now: Timestamp) -> Ctx<'_> {
        Ctx { now, calendar: &self.cal, stages: &self.stages, departments: &self.tree, class: &self.class }
    }
}

fn departments() -> Vec<Department> {
    vec![
        Department { id: 1, code: "HW".into(), name: "环卫处".into(), parent_id: None, tier: 2 },
        Department { id: 2, code: "HW-QS".into(), name: "泉山环卫所".into(), parent_id: Some(1), tier: 3 },
        Department { id: 3, code: "SZ".into(), name: "市政处".into(), parent_id: None, tier: 2 },
    ]
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let class = national()
            .into_iter()
            .find(|c| c.kind == Kind::Event && c.code.as_str() == "06010")
            .expect("06010 is in the national table");
        World {
            cal: WorkCalendar::china_default(),
            stages: StageLimits::default(),
            tree: DepartmentTree::new(departments()),
            class,
        }
    })
}

/// Beijing local time "YYYY-MM-DD HH:MM" (or with ":SS") as an instant.
fn bj(s: &str) -> Timestamp {
    let s = s.replace(' ', "T");
    let s = if s.len() == 16 { format!("{s}:00+08:00") } else { format!("{s}+08:00") };
    s.parse().unwrap_or_else(|e| panic!("bad time {s}: {e}"))
}

fn plus_min(t: Timestamp, minutes: i64) -> Timestamp {
    t + SignedDuration::from_mins(minutes)
}

fn grid(code: &str) -> RegionCode {
    RegionCode::parse_grid(code).expect("valid grid code")
}

fn region(code: &str) -> RegionCode {
    RegionCode::parse(code).expect("valid region code")
}

/// A valid photo id: 64 lowercase hex digits.
fn photo(n: u8) -> String {
    format!("{n:064x}")
}

fn region_actor(user_id: i64, role: Role, code: &str) -> Actor {
    Actor {
        user_id,
        username: format!("{}{user_id}", role.as_str()),
        role,
        scope: Scope::Region { code: region(code) },
    }
}

fn collector() -> Actor {
    region_actor(11, Role::Collector, "320300")
}
fn acceptor() -> Actor {
    region_actor(12, Role::Acceptor, "320300")
}
fn leader() -> Actor {
    region_actor(13, Role::Leader, "320300")
}
fn dispatcher() -> Actor {
    region_actor(14, Role::Dispatcher, "320300")
}
/// The Quanshan district command centre.
fn commander() -> Actor {
    region_actor(15, Role::Commander, "320311")
}
fn citizen() -> Actor {
    Actor { user_id: 18, username: "citizen18".into(), role: Role::Citizen, scope: Scope::Own }
}
fn handler(department_id: i64) -> Actor {
    Actor {
        user_id: 20 + department_id,
        username: format!("handler{department_id}"),
        role: Role::Handler,
        scope: Scope::Department { department_id },
    }
}

/// An actor of `role` with the scope that role normally has; handlers work for HW (1).
fn actor_for(role: Role) -> Actor {
    actor_with(role, 1)
}

fn actor_with(role: Role, handler_department: i64) -> Actor {
    match role {
        Role::Collector => collector(),
        Role::Acceptor => acceptor(),
        Role::Leader => leader(),
        Role::Dispatcher => dispatcher(),
        Role::Commander => commander(),
        Role::Evaluator => region_actor(16, Role::Evaluator, "320300"),
        Role::Admin => region_actor(17, Role::Admin, "320300"),
        Role::Citizen => citizen(),
        Role::Handler => handler(handler_department),
    }
}

fn new_report(source: Source) -> NewReport {
    NewReport {
        number: "2026093000001".into(),
        source,
        kind: Kind::Event,
        class_code: ClassCode::parse("06010").expect("class code"),
        urgency: Urgency::Ordinary,
        description: "路边堆放暴露垃圾".into(),
        address: Some("泉山区湖北路 18 号".into()),
        location: Point { lon: 117.1623, lat: 34.2431 },
        grid_code: grid(GRID),
        area_class: AreaClass::A,
        photo_ids: vec![photo(1)],
        component_id: None,
    }
}

// --- inputs -------------------------------------------------------------------------------

fn no_input() -> ActionInput {
    ActionInput::default()
}
fn with_note(note: &str) -> ActionInput {
    ActionInput { note: Some(note.into()), ..ActionInput::default() }
}
fn to_department(id: i64) -> ActionInput {
    ActionInput { department_id: Some(id), ..ActionInput::default() }
}
fn with_photos(n: u8) -> ActionInput {
    ActionInput { photo_ids: Some((1..=n).map(photo).collect()), ..ActionInput::default() }
}
fn verified(confirmed: bool) -> ActionInput {
    ActionInput { confirmed: Some(confirmed), photo_ids: Some(vec![photo(2)]), ..ActionInput::default() }
}
fn checked(passed: bool) -> ActionInput {
    ActionInput { passed: Some(passed), photo_ids: Some(vec![photo(3)]), ..ActionInput::default() }
}
fn extension(limit: Limit) -> ActionInput {
    ActionInput { note: Some("需要调运压缩车".into()), limit: Some(limit), ..ActionInput::default() }
}

/// An input that `Command::parse` accepts for `action` (and that `decide` accepts on a case
/// with HW (1) holding it).
fn valid_input(action: Action) -> ActionInput {
    match action {
        Action::Report => no_input(),
        Action::Verify => verified(true),
        Action::Reject | Action::Refuse | Action::Void | Action::Return | Action::RequestSuspension => {
            with_note("理由")
        }
        Action::RequestExtension => extension(Limit::working_hours(4)),
        Action::Dispatch => to_department(1),
        Action::HandDown => to_department(2),
        Action::Dispose => with_photos(1),
        Action::Check => checked(true),
        Action::File
        | Action::Accept
        | Action::ApproveExtension
        | Action::RejectExtension
        | Action::ApproveSuspension
        | Action::RejectSuspension
        | Action::Resume
        | Action::Close
        | Action::Urge => no_input(),
    }
}

// --- a case and its log -------------------------------------------------------------------

struct Run {
    case: Case,
    events: Vec<Event>,
}

impl Run {
    fn report(r: NewReport, actor: &Actor, at: Timestamp) -> Run {
        let e = report(r, actor, &world().ctx(at)).unwrap_or_else(|r| panic!("report refused: {r}"));
        assert_eq!(e.seq, 1);
        assert_eq!(e.from_state, None);
        let case = project(None, ID, &e).expect("a report projects");
        let run = Run { case, events: vec![e] };
        run.check_log();
        run
    }

    fn start(source: Source, actor: &Actor, at: &str) -> Run {
        Run::report(new_report(source), actor, bj(at))
    }

    fn try_act_at(&self, actor: &Actor, at: Timestamp, action: Action, input: ActionInput) -> Result<Event, Refusal> {
        let step = Command::parse(action, input)?;
        decide(&self.case, &step, actor, &world().ctx(at))
    }

    fn try_act(&self, actor: &Actor, at: &str, action: Action, input: ActionInput) -> Result<Event, Refusal> {
        self.try_act_at(actor, bj(at), action, input)
    }

    fn act_at(&mut self, actor: &Actor, at: Timestamp, action: Action, input: ActionInput) -> Event {
        let before = self.case.clone();
        let e = self
            .try_act_at(actor, at, action, input)
            .unwrap_or_else(|r| panic!("{} by {} at {at} refused: {r}", action.as_str(), actor.role.as_str()));
        assert_eq!(self.case, before, "decide must not change the case");
        assert_eq!(e.seq, before.version + 1);
        assert_eq!(e.at, at);
        assert_eq!(e.from_state, Some(before.state));
        assert_eq!(e.change.action(), action);
        assert_eq!(e.actor_id, Some(actor.user_id));
        assert_eq!(e.actor_role, actor.role);
        self.case = project(Some(before), ID, &e).expect("the event projects");
        self.events.push(e.clone());
        self.check_log();
        e
    }

    fn act(&mut self, actor: &Actor, at: &str, action: Action, input: ActionInput) -> Event {
        self.act_at(actor, bj(at), action, input)
    }

    /// Replaying the log gives the case row, and the log survives a JSON round trip.
    fn check_log(&self) {
        assert_eq!(replay(ID, &self.events).as_ref(), Some(&self.case));
        assert_eq!(self.case.version as usize, self.events.len());
        let json = serde_json::to_string(&self.events).expect("events serialise");
        let back: Vec<Event> = serde_json::from_str(&json).expect("events deserialise");
        assert_eq!(back, self.events);
        assert_eq!(replay(ID, &back).as_ref(), Some(&self.case));
    }
}

/// Assert state, stage deadline and case deadline (Beijing "YYYY-MM-DD HH:MM").
fn assert_at(c: &Case, state: State, deadline: Option<&str>, case_deadline: Option<&str>) {
    assert_eq!(c.state, state, "state");
    assert_eq!(c.deadline, deadline.map(bj), "deadline in {}", state.as_str());
    assert_eq!(c.case_deadline, case_deadline.map(bj), "case deadline in {}", state.as_str());
}

/// A case reported by a collector on Thu 2026-10-08 at 09:00 and taken to `state` one minute
/// a step with the first permitted role of each action (handlers of HW (1)).
fn case_in(state: State) -> Run {
    use Action::*;
    let mut run = match state {
        State::Verifying => Run::start(Source::Citizen, &citizen(), "2026-10-08 09:00"),
        _ => Run::start(Source::Collector, &collector(), "2026-10-08 09:00"),
    };
    let path: &[Action] = match state {
        State::Reported | State::Verifying => &[],
        State::Accepted => &[Accept],
        State::Filed => &[Accept, File],
        State::Dispatched => &[Accept, File, Dispatch],
        State::Disposed => &[Accept, File, Dispatch, Dispose],
        State::Checked => &[Accept, File, Dispatch, Dispose, Check],
        State::Closed => &[Accept, File, Dispatch, Dispose, Check, Close],
        State::Rejected => &[Reject],
        State::Refused => &[Accept, Refuse],
        State::Voided => &[Accept, File, Void],
        State::Suspended => &[Accept, File, Dispatch, RequestSuspension, ApproveSuspension],
    };
    let start = bj("2026-10-08 09:00");
    for (i, a) in path.iter().enumerate() {
        let minute = i64::try_from(i).expect("short path") + 1;
        run.act_at(&actor_for(a.roles()[0]), plus_min(start, minute), *a, valid_input(*a));
    }
    assert_eq!(run.case.state, state);
    run
}

/// A case on which `action` succeeds for every permitted role (at `NOW`).
fn ready_for(action: Action) -> Run {
    match action {
        Action::Report => panic!("report is not decided on a case"),
        Action::Verify => case_in(State::Verifying),
        Action::Accept | Action::Reject => case_in(State::Reported),
        Action::File | Action::Refuse => case_in(State::Accepted),
        Action::Void | Action::Dispatch => case_in(State::Filed),
        Action::HandDown
        | Action::Return
        | Action::RequestExtension
        | Action::RequestSuspension
        | Action::Dispose
        | Action::Urge => case_in(State::Dispatched),
        Action::ApproveExtension | Action::RejectExtension => {
            let mut run = case_in(State::Dispatched);
            run.act(&handler(1), "2026-10-08 09:30", Action::RequestExtension, valid_input(Action::RequestExtension));
            run
        }
        Action::ApproveSuspension | Action::RejectSuspension => {
            let mut run = case_in(State::Dispatched);
            run.act(&handler(1), "2026-10-08 09:30", Action::RequestSuspension, valid_input(Action::RequestSuspension));
            run
        }
        Action::Resume => case_in(State::Suspended),
        Action::Check => case_in(State::Disposed),
        Action::Close => case_in(State::Checked),
    }
}

const NOW: &str = "2026-10-08 10:00";

fn decided_actions() -> impl Iterator<Item = Action> {
    Action::ALL.into_iter().filter(|a| *a != Action::Report)
}

// --- 1. the happy path --------------------------------------------------------------------

#[test]
fn happy_path_through_every_stage_across_national_day_and_the_weekend() {
    let hw = handler(1);
    let hw_qs = handler(2);

    // Wed 2026-09-30 16:00, a citizen reports: citizen reports go to verification first.
    // Verify limit 1 working hour: 16:00 + 60 min = 17:00 (afternoon office runs to 17:30).
    let mut run = Run::start(Source::Citizen, &citizen(), "2026-09-30 16:00");
    let c = &run.case;
    assert_at(c, State::Verifying, Some("2026-09-30 17:00"), None);
    assert_eq!(c.id, ID);
    assert_eq!(c.number, "2026093000001");
    assert_eq!(c.source, Source::Citizen);
    assert_eq!(c.reporter_id, Some(18));
    assert_eq!(c.community_code.as_str(), "320311001001");
    assert_eq!(c.street_code.as_str(), "320311001");
    assert_eq!(c.district_code.as_str(), "320311");
    assert_eq!(c.photo_ids, vec![photo(1)]);
    assert_eq!(c.created_at, bj("2026-09-30 16:00"));
    assert_eq!(c.stage_started_at, bj("2026-09-30 16:00"));
    assert_eq!((c.department_id, c.version, c.verified), (None, 1, None));
    assert!(!run.events[0].late);

    // 17:20 the collector confirms on site: 20 min past the 17:00 deadline, so late.
    // Accept limit 30 min from 17:20: 10 min to 17:30; Oct 1–7 are holidays; the remaining
    // 20 min are on Thu Oct 8 from 08:30 → 08:50.
    let e = run.act(&collector(), "2026-09-30 17:20", Action::Verify, verified(true));
    assert!(e.late);
    assert_eq!(e.photo_ids, vec![photo(2)]);
    assert_at(&run.case, State::Reported, Some("2026-10-08 08:50"), None);
    assert_eq!(run.case.verified, Some(true));
    assert_eq!(run.case.stage_started_at, bj("2026-09-30 17:20"));

    // Thu Oct 8 08:45 accepted (before 08:50: on time). File limit 30 min → 09:15.
    let e = run.act(&acceptor(), "2026-10-08 08:45", Action::Accept, no_input());
    assert!(!e.late);
    assert_at(&run.case, State::Accepted, Some("2026-10-08 09:15"), None);

    // 09:10 filed. Dispatch limit 30 min → 09:40.
    // Case deadline: dispatch 30 + disposal 120 + check 60 + close 30 = 240 working min from
    // 09:10: 170 min to 12:00, the other 70 from 13:30 → 14:40.
    let e = run.act(&leader(), "2026-10-08 09:10", Action::File, no_input());
    assert!(!e.late);
    assert_eq!(e.change, Change::File { urgency: Urgency::Ordinary });
    assert_at(&run.case, State::Filed, Some("2026-10-08 09:40"), Some("2026-10-08 14:40"));

    // 09:30 dispatched to HW. Disposal (ordinary, area A) 2 h: 09:30 + 120 = 11:30.
    // Case deadline: 11:30 + check 60 (30 to 12:00, 30 from 13:30 → 14:00) + close 30 → 14:30.
    let e = run.act(&dispatcher(), "2026-10-08 09:30", Action::Dispatch, to_department(1));
    assert_eq!(e.change, Change::Dispatch { department_id: 1, disposal_limit: Limit::working_hours(2) });
    assert_at(&run.case, State::Dispatched, Some("2026-10-08 11:30"), Some("2026-10-08 14:30"));
    assert_eq!(run.case.department_id, Some(1));
    assert_eq!(run.case.disposal_limit, Some(Limit::working_hours(2)));
    assert_eq!(run.case.dispatch_count, 1);
    assert_eq!(run.case.stage_started_at, bj("2026-10-08 09:30"));

    // 10:00 HW hands it down to its sub-unit HW-QS: same stage, same deadlines.
    let e = run.act(&hw, "2026-10-08 10:00", Action::HandDown, to_department(2));
    assert_eq!(e.change, Change::HandDown { department_id: 2 });
    assert_at(&run.case, State::Dispatched, Some("2026-10-08 11:30"), Some("2026-10-08 14:30"));
    assert_eq!(run.case.department_id, Some(2));
    assert_eq!(run.case.stage_started_at, bj("2026-10-08 09:30"));
    // HW can still see and act on it (HW-QS is inside HW); SZ cannot.
    assert!(run.try_act(&hw, "2026-10-08 10:05", Action::Dispose, with_photos(1)).is_ok());
    assert_eq!(run.try_act(&handler(3), "2026-10-08 10:05", Action::Dispose, with_photos(1)), Err(Refusal::Scope));

    // 11:00 HW-QS asks for 2 more working days.
    run.act(&hw_qs, "2026-10-08 11:00", Action::RequestExtension, extension(Limit::working_days(2)));
    assert_at(&run.case, State::Dispatched, Some("2026-10-08 11:30"), Some("2026-10-08 14:30"));
    assert_eq!(
        run.case.pending,
        Some(Pending::Extension {
            limit: Limit::working_days(2), reason: "需要调运压缩车".into(), requested_by: 22
        })
    );

    // 11:15 the dispatcher approves: the deadline moves from 11:30 by 2 × 450 = 900 min.
    // Oct 8: 30 (to 12:00) + 240 = 270, 630 left; Fri Oct 9: 450, 180 left; Sat Oct 10 is a
    // make-up working day: 08:30 + 180 min = 11:30.
    // Case deadline: Oct 10 11:30 + check 60 → 14:00, + close 30 → 14:30.
    let e = run.act(&dispatcher(), "2026-10-08 11:15", Action::ApproveExtension, no_input());
    assert!(!e.late);
    assert_at(&run.case, State::Dispatched, Some("2026-10-10 11:30"), Some("2026-10-10 14:30"));
    assert_eq!(run.case.pending, None);
    assert_eq!(run.case.extension_count, 1);
    assert!(!run.case.is_overdue(bj("2026-10-10 11:30")));
    assert!(run.case.is_overdue(bj("2026-10-10 11:31")));

    // Sat Oct 10 17:00 HW-QS reports it fixed: after the 11:30 deadline, so late.
    // Check limit 1 h: 30 min to 17:30, Sun Oct 11 is off, 30 min on Mon Oct 12 → 09:00.
    let e = run.act(&hw_qs, "2026-10-10 17:00", Action::Dispose, with_photos(2));
    assert!(e.late);
    assert_eq!(e.photo_ids, vec![photo(1), photo(2)]);
    assert_at(&run.case, State::Disposed, Some("2026-10-12 09:00"), Some("2026-10-10 14:30"));
    assert_eq!(run.case.department_id, Some(2));

    // Mon Oct 12 08:50 the check fails: rework, back to HW-QS with a fresh 2 h disposal limit.
    // 08:50 + 120 = 10:50; case deadline 10:50 + 60 = 11:50, + 30 (10 to 12:00, 20 from 13:30)
    // → 13:50.
    let e = run.act(&collector(), "2026-10-12 08:50", Action::Check, checked(false));
    assert!(!e.late);
    assert_at(&run.case, State::Dispatched, Some("2026-10-12 10:50"), Some("2026-10-12 13:50"));
    assert_eq!(run.case.rework_count, 1);
    assert_eq!(run.case.department_id, Some(2));
    assert_eq!(run.case.dispatch_count, 1);
    assert_eq!(run.case.stage_started_at, bj("2026-10-12 08:50"));

    // 10:30 disposed again, on time. Check deadline 10:30 + 60 = 11:30.
    let e = run.act(&hw_qs, "2026-10-12 10:30", Action::Dispose, with_photos(1));
    assert!(!e.late);
    assert_at(&run.case, State::Disposed, Some("2026-10-12 11:30"), Some("2026-10-12 13:50"));

    // 11:40 the check passes (10 min late). Close limit 30: 20 to 12:00, 10 from 13:30 → 13:40.
    let e = run.act(&collector(), "2026-10-12 11:40", Action::Check, checked(true));
    assert!(e.late);
    assert_at(&run.case, State::Checked, Some("2026-10-12 13:40"), Some("2026-10-12 13:50"));

    // 13:35 closed, on time; the case deadline stays for the on-time closure figure.
    let e = run.act(&leader(), "2026-10-12 13:35", Action::Close, no_input());
    assert!(!e.late);
    let c = &run.case;
    assert_at(c, State::Closed, None, Some("2026-10-12 13:50"));
    assert_eq!(c.closed_at, Some(bj("2026-10-12 13:35")));
    assert_eq!(c.updated_at, bj("2026-10-12 13:35"));
    assert_eq!(c.department_id, Some(2));
    assert_eq!((c.dispatch_count, c.return_count, c.rework_count, c.extension_count, c.version), (1, 0, 1, 1, 13));
    assert!(!c.is_overdue(bj("2026-12-31 12:00")));
    // Nothing applies to a closed case any more.
    for action in decided_actions() {
        for role in action.roles() {
            assert!(run.try_act(&actor_for(*role), "2026-10-12 14:00", action, valid_input(action)).is_err());
        }
    }
}

#[test]
fn reports_pick_their_first_stage_by_source() {
    // Collector report, Fri Oct 9 17:20: accept limit 30 → 10 min to 17:30, then Sat Oct 10
    // (make-up working day) 08:30 + 20 → 08:50.
    let run = Run::start(Source::Collector, &collector(), "2026-10-09 17:20");
    assert_at(&run.case, State::Reported, Some("2026-10-10 08:50"), None);

    // Sat Oct 10 17:20: Sunday Oct 11 is off → Mon Oct 12 08:50.
    let run = Run::start(Source::Collector, &collector(), "2026-10-10 17:20");
    assert_at(&run.case, State::Reported, Some("2026-10-12 08:50"), None);

    // A hotline call taken by the acceptor on Sat Sep 19 at 10:00 (an ordinary Saturday):
    // verification 1 h counts from Sun Sep 20 (make-up working day) 08:30 → 09:30.
    let mut r = new_report(Source::Hotline);
    r.photo_ids.clear();
    let run = Run::report(r, &acceptor(), bj("2026-09-19 10:00"));
    assert_at(&run.case, State::Verifying, Some("2026-09-20 09:30"), None);
    assert_eq!(run.case.reporter_id, Some(12));

    // A video report goes straight to intake; during lunch counting starts at 13:30.
    let run = Run::report(new_report(Source::Video), &acceptor(), bj("2026-10-09 12:10"));
    assert_at(&run.case, State::Reported, Some("2026-10-09 14:00"), None);

    // A leader's instruction, Thu Sep 24 17:10: 20 min that day, Sep 25–27 are the Mid-Autumn
    // holiday, so the last 10 min are on Mon Sep 28 → 08:40.
    let run = Run::report(new_report(Source::Leader), &leader(), bj("2026-09-24 17:10"));
    assert_at(&run.case, State::Reported, Some("2026-09-28 08:40"), None);

    // Citizens report anywhere, even outside every region scope of the centre.
    let mut r = new_report(Source::Citizen);
    r.grid_code = grid("110101001001001");
    let run = Run::report(r, &citizen(), bj("2026-10-09 09:00"));
    assert_eq!(run.case.district_code.as_str(), "110101");
}

#[test]
fn report_refusals() {
    let w = world();
    let ctx = w.ctx(bj("2026-10-09 09:00"));
    for role in Role::ALL {
        let actor = actor_for(role);
        let source = sources_for(role).first().copied().unwrap_or(Source::Collector);
        let got = report(new_report(source), &actor, &ctx);
        if Action::Report.roles().contains(&role) {
            assert!(got.is_ok(), "{role:?}: {got:?}");
        } else {
            assert_eq!(got, Err(Refusal::Role { role: role.as_str(), action: "report" }));
        }
    }
    // Sources a role may not use.
    for (actor, source) in [
        (collector(), Source::Citizen),
        (citizen(), Source::Collector),
        (citizen(), Source::Hotline),
        (leader(), Source::Video),
        (acceptor(), Source::Collector),
    ] {
        assert!(
            matches!(report(new_report(source), &actor, &ctx), Err(Refusal::Invalid { field: "source", .. })),
            "{:?} as {source:?}",
            actor.role
        );
    }
    // Out of region scope.
    let gulou_collector = region_actor(31, Role::Collector, "320302");
    assert_eq!(report(new_report(Source::Collector), &gulou_collector, &ctx), Err(Refusal::Scope));
    assert_eq!(
        report(new_report(Source::Leader), &region_actor(32, Role::Leader, "320303"), &ctx),
        Err(Refusal::Scope)
    );
    let mut r = new_report(Source::Collector);
    r.grid_code = grid(OTHER_GRID);
    assert!(report(r, &gulou_collector, &ctx).is_ok());
    // A class that is not in use.
    let mut inactive = w.class.clone();
    inactive.active = false;
    let ctx = Ctx { class: &inactive, ..w.ctx(bj("2026-10-09 09:00")) };
    assert!(matches!(
        report(new_report(Source::Collector), &collector(), &ctx),
        Err(Refusal::Invalid { field: "class_code", .. })
    ));
}

#[test]
fn filing_with_another_urgency_and_area_c_limits() {
    // Filed as urgent at Fri Oct 9 17:00: dispatch 30 → 17:30 (exactly at the end of the
    // afternoon: the deadline is that instant, not the next morning).
    // Case deadline 30 + urgent 30 + 60 + 30 = 150 min: 30 on Oct 9, 120 on Sat Oct 10 → 10:30.
    let mut run = case_in(State::Accepted);
    let input = ActionInput { urgency: Some(Urgency::Urgent), ..no_input() };
    run.act(&leader(), "2026-10-09 17:00", Action::File, input);
    assert_at(&run.case, State::Filed, Some("2026-10-09 17:30"), Some("2026-10-10 10:30"));
    assert_eq!(run.case.urgency, Urgency::Urgent);
    // Dispatched at 17:20: urgent 30 min → 10 min + Oct 10 08:30 + 20 → 08:50;
    // case deadline 08:50 + 60 + 30 → 10:20.
    let e = run.act(&commander(), "2026-10-09 17:20", Action::Dispatch, to_department(3));
    assert_eq!(e.change, Change::Dispatch { department_id: 3, disposal_limit: Limit::working_minutes(30) });
    assert_at(&run.case, State::Dispatched, Some("2026-10-10 08:50"), Some("2026-10-10 10:20"));

    // Area C: ordinary disposal is 4 working hours. Filed Mon Oct 12 16:00:
    // case deadline 30 + 240 + 60 + 30 = 360 min: 90 on Oct 12, 270 on Tue Oct 13: 210 to 12:00,
    // 60 from 13:30 → 14:30.
    let mut r = new_report(Source::Collector);
    r.area_class = AreaClass::C;
    let mut run = Run::report(r, &collector(), bj("2026-10-12 15:00"));
    run.act(&acceptor(), "2026-10-12 15:30", Action::Accept, no_input());
    run.act(&leader(), "2026-10-12 16:00", Action::File, no_input());
    assert_at(&run.case, State::Filed, Some("2026-10-12 16:30"), Some("2026-10-13 14:30"));
    // Dispatched 16:30: 4 h → 60 on Oct 12, 180 on Oct 13 → 11:30; + 60 → 14:00, + 30 → 14:30.
    let e = run.act(&dispatcher(), "2026-10-12 16:30", Action::Dispatch, to_department(1));
    assert_eq!(e.change, Change::Dispatch { department_id: 1, disposal_limit: Limit::working_hours(4) });
    assert_at(&run.case, State::Dispatched, Some("2026-10-13 11:30"), Some("2026-10-13 14:30"));
}

#[test]
fn intake_exits_reject_refuse_void() {
    // Not confirmed on site: back to intake, where the acceptor rejects it.
    let mut run = case_in(State::Verifying);
    run.act(&collector(), "2026-10-08 09:30", Action::Verify, verified(false));
    assert_eq!(run.case.verified, Some(false));
    assert_eq!(run.case.state, State::Reported);
    let e = run.act(&acceptor(), "2026-10-08 09:40", Action::Reject, with_note("现场未发现"));
    assert_eq!(e.note.as_deref(), Some("现场未发现"));
    assert_at(&run.case, State::Rejected, None, None);

    // Rejected straight from verification.
    let mut run = case_in(State::Verifying);
    run.act(&acceptor(), "2026-10-08 09:30", Action::Reject, with_note("重复举报"));
    assert_at(&run.case, State::Rejected, None, None);

    let mut run = case_in(State::Accepted);
    run.act(&leader(), "2026-10-08 09:30", Action::Refuse, with_note("不符合立案条件"));
    assert_at(&run.case, State::Refused, None, None);

    // Void after filing clears the case deadline and records the duplicate.
    let mut run = case_in(State::Filed);
    assert!(run.case.case_deadline.is_some());
    let input = ActionInput { duplicate_of: Some(5), ..with_note("重复") };
    run.act(&acceptor(), "2026-10-08 09:30", Action::Void, input);
    assert_at(&run.case, State::Voided, None, None);
    assert_eq!(run.case.duplicate_of, Some(5));
    assert_eq!(run.case.department_id, None);

    // A case cannot duplicate itself.
    let run = case_in(State::Reported);
    let input = ActionInput { duplicate_of: Some(ID), ..with_note("重复") };
    assert!(matches!(
        run.try_act(&leader(), NOW, Action::Void, input),
        Err(Refusal::Invalid { field: "duplicate_of", .. })
    ));
}

#[test]
fn urging_marks_the_case_and_changes_no_deadline() {
    let mut run = case_in(State::Dispatched);
    let before = run.case.clone();
    let e = run.act(&commander(), NOW, Action::Urge, no_input());
    assert!(!e.late);
    assert!(run.case.urged);
    assert_eq!(run.case.state, State::Dispatched);
    assert_eq!(run.case.deadline, before.deadline);
    assert_eq!(run.case.case_deadline, before.case_deadline);
    assert_eq!(run.case.stage_started_at, before.stage_started_at);
}

// --- 2. the return path -------------------------------------------------------------------

#[test]
fn return_goes_back_to_dispatch_and_redispatch_counts() {
    let sz = handler(3);
    // Fri Oct 9: reported 15:00 (accept → 15:30), accepted 15:10 (file → 15:40).
    let mut run = Run::start(Source::Collector, &collector(), "2026-10-09 15:00");
    assert_at(&run.case, State::Reported, Some("2026-10-09 15:30"), None);
    run.act(&acceptor(), "2026-10-09 15:10", Action::Accept, no_input());
    assert_at(&run.case, State::Accepted, Some("2026-10-09 15:40"), None);
    // Filed 15:20: dispatch → 15:50; case 240 min: 130 to 17:30, 110 on Sat Oct 10 → 10:20.
    run.act(&leader(), "2026-10-09 15:20", Action::File, no_input());
    assert_at(&run.case, State::Filed, Some("2026-10-09 15:50"), Some("2026-10-10 10:20"));
    // 16:00 wrongly dispatched to SZ (municipal works). 2 h: 90 to 17:30, 30 on Oct 10 → 09:00;
    // case deadline 09:00 + 60 + 30 → 10:30.
    run.act(&dispatcher(), "2026-10-09 16:00", Action::Dispatch, to_department(3));
    assert_at(&run.case, State::Dispatched, Some("2026-10-10 09:00"), Some("2026-10-10 10:30"));
    assert_eq!(run.case.department_id, Some(3));

    // A return needs a reason.
    assert!(matches!(
        run.try_act(&sz, "2026-10-09 17:20", Action::Return, no_input()),
        Err(Refusal::Invalid { field: "note", .. })
    ));
    // HW may not return a case SZ holds.
    assert_eq!(run.try_act(&handler(1), "2026-10-09 17:20", Action::Return, with_note("x")), Err(Refusal::Scope));

    // 17:20 SZ returns it. Back to Filed: dispatch 30 → 10 min + Oct 10 08:50.
    // Case deadline from 17:20: 30 + 120 + 60 + 30 = 240: 10 on Oct 9, 230 on Oct 10: 210 to
    // 12:00 and 20 from 13:30 → 13:50.
    let e = run.act(&sz, "2026-10-09 17:20", Action::Return, with_note("不属于市政处职责"));
    assert_eq!(e.change, Change::Return { department_id: 3 });
    assert!(!e.late);
    assert_at(&run.case, State::Filed, Some("2026-10-10 08:50"), Some("2026-10-10 13:50"));
    assert_eq!(run.case.department_id, None);
    assert_eq!(run.case.return_count, 1);
    assert_eq!(run.case.dispatch_count, 1);
    assert_eq!(run.case.stage_started_at, bj("2026-10-09 17:20"));
    // SZ no longer sees it.
    assert_eq!(run.try_act(&sz, "2026-10-10 08:40", Action::Dispose, with_photos(1)), Err(Refusal::Scope));

    // Sat Oct 10 08:40 the district centre dispatches it to HW: 2 h → 10:40;
    // case deadline 10:40 + 60 → 11:40, + 30 (20 to 12:00, 10 from 13:30) → 13:40.
    run.act(&commander(), "2026-10-10 08:40", Action::Dispatch, to_department(1));
    assert_at(&run.case, State::Dispatched, Some("2026-10-10 10:40"), Some("2026-10-10 13:40"));
    assert_eq!(run.case.department_id, Some(1));
    assert_eq!((run.case.dispatch_count, run.case.return_count), (2, 1));
}

#[test]
fn return_after_hand_down_returns_the_whole_case() {
    let mut run = case_in(State::Dispatched);
    run.act(&handler(1), "2026-10-08 09:10", Action::HandDown, to_department(2));
    let e = run.act(&handler(2), "2026-10-08 09:20", Action::Return, with_note("不属于本所辖区"));
    assert_eq!(e.change, Change::Return { department_id: 2 });
    assert_eq!(run.case.state, State::Filed);
    assert_eq!(run.case.department_id, None);
}

// --- 3. suspension ------------------------------------------------------------------------

/// Collector report Thu Oct 8 08:40 → accepted 08:50 → filed 09:00 → dispatched to HW 09:30:
/// disposal deadline 09:30 + 2 h = 11:30; case deadline 11:30 + 60 → 14:00, + 30 → 14:30.
fn dispatched_at_0930() -> Run {
    let mut run = Run::start(Source::Collector, &collector(), "2026-10-08 08:40");
    run.act(&acceptor(), "2026-10-08 08:50", Action::Accept, no_input());
    // Filed 09:00: case deadline 09:00 + 240: 180 to 12:00, 60 from 13:30 → 14:30.
    run.act(&leader(), "2026-10-08 09:00", Action::File, no_input());
    assert_at(&run.case, State::Filed, Some("2026-10-08 09:30"), Some("2026-10-08 14:30"));
    run.act(&dispatcher(), "2026-10-08 09:30", Action::Dispatch, to_department(1));
    assert_at(&run.case, State::Dispatched, Some("2026-10-08 11:30"), Some("2026-10-08 14:30"));
    run
}

#[test]
fn suspension_across_the_weekend_does_not_count() {
    let mut run = dispatched_at_0930();
    run.act(&handler(1), "2026-10-08 10:00", Action::RequestSuspension, with_note("需市政管网改造后处理"));
    assert_eq!(run.case.pending, Some(Pending::Suspension { reason: "需市政管网改造后处理".into(), requested_by: 21 }));
    let e = run.act(&leader(), "2026-10-08 10:30", Action::ApproveSuspension, no_input());
    assert!(!e.late);
    assert_eq!(run.case.state, State::Suspended);
    assert_eq!(run.case.suspended_at, Some(bj("2026-10-08 10:30")));
    assert_eq!(run.case.pending, None);
    assert_eq!(run.case.stage_started_at, bj("2026-10-08 10:30"));
    assert_eq!(run.case.department_id, Some(1));
    // The handler can do nothing while suspended.
    assert!(matches!(
        run.try_act(&handler(1), "2026-10-09 10:00", Action::Dispose, with_photos(1)),
        Err(Refusal::State { action: "dispose", state: "suspended" })
    ));
    // Urging a suspended case is allowed and keeps it suspended.
    run.act(&leader(), "2026-10-09 10:00", Action::Urge, no_input());
    assert_eq!(run.case.state, State::Suspended);

    // Resumed Mon Oct 12 09:00. Working time suspended:
    // Oct 8 10:30–12:00 = 90 + 13:30–17:30 = 240 → 330; Fri Oct 9 450; Sat Oct 10 (make-up)
    // 450; Sun Oct 11 0; Oct 12 08:30–09:00 = 30 → 1260 min = 21 working hours.
    let w = world();
    assert_eq!(w.cal.working_millis_between(bj("2026-10-08 10:30"), bj("2026-10-12 09:00")), 1260 * 60_000);
    // Disposal deadline 11:30 Oct 8 + 1260 min: 30 + 240 = 270 on Oct 8 (990 left), 450 on
    // Oct 9 (540 left), 450 on Oct 10 (90 left), Oct 12 08:30 + 90 → 10:00. Cross-check: 60 min
    // were left at 10:30 on Oct 8, and 09:00 + 60 = 10:00.
    // Case deadline 14:30 Oct 8 + 1260: 180 on Oct 8 (1080 left), 450, 450 (180 left), Oct 12
    // 08:30 + 180 → 11:30. Cross-check: 150 min were left (90 to 12:00 + 60), 09:00 + 150 = 11:30.
    let e = run.act(&dispatcher(), "2026-10-12 09:00", Action::Resume, no_input());
    assert!(!e.late);
    assert_at(&run.case, State::Dispatched, Some("2026-10-12 10:00"), Some("2026-10-12 11:30"));
    assert_eq!(run.case.suspended_at, None);
    assert_eq!(run.case.stage_started_at, bj("2026-10-12 09:00"));
    assert!(!run.case.is_overdue(bj("2026-10-12 10:00")));
    assert!(run.case.is_overdue(bj("2026-10-12 10:01")));
}

#[test]
fn suspension_for_four_working_hours_moves_deadlines_by_four_hours() {
    let mut run = dispatched_at_0930();
    run.act(&handler(1), "2026-10-08 10:00", Action::RequestSuspension, with_note("等待天然气公司"));
    run.act(&commander(), "2026-10-08 10:30", Action::ApproveSuspension, no_input());
    // Resumed 16:00 the same day: 10:30–12:00 = 90 + 13:30–16:00 = 150 → 240 min = 4 h.
    // Disposal: 11:30 + 240 = 30 to 12:00 + 210 from 13:30 → 17:00 (60 min left from 16:00).
    // Case: 14:30 + 240 = 180 to 17:30 + 60 on Fri Oct 9 → 09:30 (150 left from 16:00: 90 to
    // 17:30 + 60 → 09:30).
    run.act(&leader(), "2026-10-08 16:00", Action::Resume, no_input());
    assert_at(&run.case, State::Dispatched, Some("2026-10-08 17:00"), Some("2026-10-09 09:30"));
    // Dispose and check keep working normally afterwards.
    run.act(&handler(1), "2026-10-08 16:30", Action::Dispose, with_photos(1));
    assert_at(&run.case, State::Disposed, Some("2026-10-08 17:30"), Some("2026-10-09 09:30"));
}

#[test]
fn an_overdue_case_stays_exactly_as_overdue_after_a_suspension() {
    let mut run = dispatched_at_0930();
    run.act(&handler(1), "2026-10-08 11:00", Action::RequestSuspension, with_note("暂无法处置"));
    // Approved 14:00, when the 11:30 deadline is 60 working min past (30 + 30).
    run.act(&leader(), "2026-10-08 14:00", Action::ApproveSuspension, no_input());
    // Resumed Fri Oct 9 09:00: 14:00–17:30 = 210 + 08:30–09:00 = 30 → 240 min suspended.
    // New deadline 11:30 + 240 → 17:00 Oct 8; from there to 09:00 Oct 9 is 30 + 30 = 60 working
    // min: still 60 min overdue. Case deadline 14:30 + 240 → Oct 9 09:30.
    let e = run.act(&dispatcher(), "2026-10-09 09:00", Action::Resume, no_input());
    assert!(!e.late, "a resume ends no stage");
    assert_at(&run.case, State::Dispatched, Some("2026-10-08 17:00"), Some("2026-10-09 09:30"));
    let w = world();
    assert_eq!(w.cal.working_millis_between(bj("2026-10-08 17:00"), bj("2026-10-09 09:00")), 60 * 60_000);
    assert!(run.case.is_overdue(bj("2026-10-09 09:00")));
    // Disposing now is late.
    let e = run.act(&handler(1), "2026-10-09 09:10", Action::Dispose, with_photos(1));
    assert!(e.late);
}

#[test]
fn rejecting_requests_clears_them_and_keeps_deadlines() {
    let mut run = dispatched_at_0930();
    run.act(&handler(1), "2026-10-08 10:00", Action::RequestSuspension, with_note("x"));
    run.act(&dispatcher(), "2026-10-08 10:10", Action::RejectSuspension, with_note("不予挂账"));
    assert_at(&run.case, State::Dispatched, Some("2026-10-08 11:30"), Some("2026-10-08 14:30"));
    assert_eq!(run.case.pending, None);
    run.act(&handler(1), "2026-10-08 10:20", Action::RequestExtension, extension(Limit::working_days(1)));
    run.act(&leader(), "2026-10-08 10:30", Action::RejectExtension, no_input());
    assert_at(&run.case, State::Dispatched, Some("2026-10-08 11:30"), Some("2026-10-08 14:30"));
    assert_eq!((run.case.pending.clone(), run.case.extension_count), (None, 0));
    assert_eq!(run.case.stage_started_at, bj("2026-10-08 09:30"));
    run.act(&handler(1), "2026-10-08 10:40", Action::Dispose, with_photos(1));
    assert_eq!(run.case.state, State::Disposed);
}

#[test]
fn a_late_approved_extension_counts_from_the_old_deadline() {
    // The extension moves the deadline by the granted time, from the old deadline (11:30), not
    // from the approval: approved at 14:00 with 1 working hour → 11:30 + 60 = 30 to 12:00 + 30
    // → 14:00; case deadline 14:00 + 60 + 30 → 15:30.
    let mut run = dispatched_at_0930();
    run.act(&handler(1), "2026-10-08 11:00", Action::RequestExtension, extension(Limit::working_hours(1)));
    let e = run.act(&dispatcher(), "2026-10-08 14:00", Action::ApproveExtension, no_input());
    assert!(!e.late);
    assert_at(&run.case, State::Dispatched, Some("2026-10-08 14:00"), Some("2026-10-08 15:30"));
    assert!(!run.case.is_overdue(bj("2026-10-08 14:00")));
    // A natural-time extension: 24 h from 14:00 Oct 8 → 14:00 Oct 9.
    run.act(&handler(1), "2026-10-08 14:10", Action::RequestExtension, extension(Limit::natural_hours(24)));
    run.act(&dispatcher(), "2026-10-08 14:20", Action::ApproveExtension, no_input());
    assert_eq!(run.case.deadline, Some(bj("2026-10-09 14:00")));
    assert_eq!(run.case.extension_count, 2);

    // Approved even later, the new deadline is already past when it is set (current behaviour,
    // consistent with "an overdue case stays as overdue"; see the report): dispatched 09:30,
    // deadline 11:30, 1 h asked at 11:00, approved Fri Oct 9 09:00 → deadline Oct 8 14:00.
    let mut run = dispatched_at_0930();
    run.act(&handler(1), "2026-10-08 11:00", Action::RequestExtension, extension(Limit::working_hours(1)));
    run.act(&dispatcher(), "2026-10-09 09:00", Action::ApproveExtension, no_input());
    assert_eq!(run.case.deadline, Some(bj("2026-10-08 14:00")));
    assert!(run.case.is_overdue(bj("2026-10-09 09:00")));
}

/// `Case::is_overdue` says "open, not suspended, and past the current stage's deadline", and the
/// `deadline` field says "none ... while suspended"; but `decide` keeps the disposal deadline on
/// `approve_suspension` (it needs it to resume) and `is_overdue` does not look at the state.
#[test]
fn a_suspended_case_is_never_overdue() {
    let mut run = dispatched_at_0930();
    run.act(&handler(1), "2026-10-08 10:00", Action::RequestSuspension, with_note("x"));
    run.act(&leader(), "2026-10-08 10:30", Action::ApproveSuspension, no_input());
    assert_eq!(run.case.state, State::Suspended);
    assert!(!run.case.is_overdue(bj("2026-10-09 09:00")));
}

#[test]
fn resume_moves_a_natural_time_deadline_by_natural_time() {
    // A city that sets ordinary disposal of 06010 to 2 natural hours (DOMAIN.md: "for some
    // stages natural time"). Dispatched Thu Oct 8 16:00 → deadline 18:00 (wall clock).
    let w = world();
    let mut class = w.class.clone();
    let two_hours = AreaLimits { A: Limit::natural_hours(2), B: Limit::natural_hours(2), C: Limit::natural_hours(2) };
    class.limits = DisposalLimits { urgent: two_hours, important: two_hours, ordinary: two_hours };
    let ctx = |now: &str| Ctx { class: &class, ..w.ctx(bj(now)) };
    let mut case = case_in(State::Filed).case;
    let fold = |case: &mut Case, action: Action, input: ActionInput, actor: &Actor, now: &str| {
        let step = Command::parse(action, input).expect("valid");
        let e = decide(case, &step, actor, &ctx(now)).expect("decided");
        *case = project(Some(case.clone()), ID, &e).expect("projects");
    };
    fold(&mut case, Action::Dispatch, to_department(1), &dispatcher(), "2026-10-08 16:00");
    assert_eq!(case.deadline, Some(bj("2026-10-08 18:00")));
    fold(&mut case, Action::RequestSuspension, with_note("x"), &handler(1), "2026-10-08 16:10");
    fold(&mut case, Action::ApproveSuspension, no_input(), &leader(), "2026-10-08 16:30");
    // Suspended 16:30–17:00: 30 minutes, of wall-clock and of working time alike. The 90
    // minutes left at 16:30 are left at 17:00: the deadline is 18:30.
    fold(&mut case, Action::Resume, no_input(), &leader(), "2026-10-08 17:00");
    assert_eq!(case.deadline, Some(bj("2026-10-08 18:30")));
}

// --- 4. refusals --------------------------------------------------------------------------

#[test]
fn every_role_outside_the_roles_of_an_action_is_refused() {
    let mut refused = 0;
    for action in decided_actions() {
        let run = ready_for(action);
        let step = Command::parse(action, valid_input(action)).expect("valid input");
        for role in Role::ALL {
            let got = decide(&run.case, &step, &actor_for(role), &world().ctx(bj(NOW)));
            if action.roles().contains(&role) {
                assert!(got.is_ok(), "{} by {}: {got:?}", action.as_str(), role.as_str());
            } else {
                assert_eq!(got, Err(Refusal::Role { role: role.as_str(), action: action.as_str() }));
                refused += 1;
            }
        }
    }
    // 20 actions × 9 roles minus the 33 permitted pairs.
    let permitted: usize = decided_actions().map(|a| a.roles().len()).sum();
    assert_eq!(permitted, 33);
    assert_eq!(refused, 20 * 9 - permitted);
    // Evaluators and administrators take no case action; citizens only report.
    for role in [Role::Admin, Role::Evaluator, Role::Citizen] {
        assert!(decided_actions().all(|a| !a.roles().contains(&role)));
    }
}

#[test]
fn every_state_outside_the_from_states_of_an_action_is_refused() {
    let cases: Vec<(State, Run)> = State::ALL.into_iter().map(|s| (s, case_in(s))).collect();
    let (mut state_refusals, mut scope_refusals) = (0, 0);
    for action in decided_actions() {
        for (state, run) in &cases {
            for role in action.roles() {
                let got = run.try_act(&actor_for(*role), NOW, action, valid_input(action));
                let what = format!("{} by {} on {}: {got:?}", action.as_str(), role.as_str(), state.as_str());
                if action.from_states().contains(state) {
                    assert!(
                        !matches!(got, Err(Refusal::Role { .. } | Refusal::Scope | Refusal::State { .. })),
                        "{what}"
                    );
                } else if *role == Role::Handler && run.case.department_id.is_none() {
                    // A case no department holds is outside every handler's scope; the scope
                    // check comes before the state check.
                    assert_eq!(got, Err(Refusal::Scope), "{what}");
                    scope_refusals += 1;
                } else {
                    assert_eq!(got, Err(Refusal::State { action: action.as_str(), state: state.as_str() }), "{what}");
                    state_refusals += 1;
                }
            }
        }
    }
    assert!(state_refusals > 300, "{state_refusals}");
    assert!(scope_refusals > 0);
    // Report is never decided on a case.
    assert!(Action::Report.from_states().is_empty());
}

#[test]
fn the_tables_are_consistent() {
    for action in Action::ALL {
        assert_eq!(Action::parse(action.as_str()), Some(action));
        assert!(action.from_states().iter().all(|s| !s.is_final()), "{action:?} applies to a final state");
        assert!(!action.roles().is_empty());
    }
    for state in State::ALL {
        assert_eq!(State::parse(state.as_str()), Some(state));
        let leaving = decided_actions().filter(|a| a.from_states().contains(&state)).count();
        assert_eq!(leaving == 0, state.is_final(), "{state:?}");
    }
    for source in Source::ALL {
        assert_eq!(Source::parse(source.as_str()), Some(source));
    }
    // The only ways out of a suspension are resuming it (and urging keeps it suspended).
    let from_suspended: Vec<Action> =
        decided_actions().filter(|a| a.from_states().contains(&State::Suspended)).collect();
    assert_eq!(from_suspended, vec![Action::Resume, Action::Urge]);
    assert_eq!(serde_json::to_string(&Action::HandDown).expect("json"), "\"hand_down\"");
    assert_eq!(serde_json::to_string(&State::Suspended).expect("json"), "\"suspended\"");
}

#[test]
fn scope_refusals() {
    let ctx_now = bj(NOW);
    // A collector of Yunlong district (320303) cannot verify a case in Quanshan (320311).
    let run = case_in(State::Verifying);
    let yunlong = region_actor(41, Role::Collector, "320303");
    assert_eq!(run.try_act_at(&yunlong, ctx_now, Action::Verify, verified(true)), Err(Refusal::Scope));
    // A collector of the street that holds the grid can.
    let street = region_actor(42, Role::Collector, "320311001");
    assert!(run.try_act_at(&street, ctx_now, Action::Verify, verified(true)).is_ok());
    // Nor can a Yunlong dispatcher dispatch or the Yunlong centre urge.
    let run = case_in(State::Filed);
    assert_eq!(
        run.try_act_at(&region_actor(43, Role::Dispatcher, "320303"), ctx_now, Action::Dispatch, to_department(1)),
        Err(Refusal::Scope)
    );
    assert_eq!(
        run.try_act_at(&region_actor(44, Role::Commander, "320303"), ctx_now, Action::Urge, no_input()),
        Err(Refusal::Scope)
    );
    // A role bound to the wrong kind of scope sees nothing.
    let misbound = Actor { scope: Scope::Department { department_id: 1 }, ..dispatcher() };
    assert_eq!(run.try_act_at(&misbound, ctx_now, Action::Dispatch, to_department(1)), Err(Refusal::Scope));
    let own = Actor { scope: Scope::Own, ..leader() };
    assert_eq!(run.try_act_at(&own, ctx_now, Action::Urge, no_input()), Err(Refusal::Scope));

    // Handlers: SZ (3) on an HW (1) case; HW-QS (2) on a case HW itself holds.
    let mut run = case_in(State::Dispatched);
    assert_eq!(run.try_act_at(&handler(3), ctx_now, Action::Dispose, with_photos(1)), Err(Refusal::Scope));
    assert_eq!(run.try_act_at(&handler(2), ctx_now, Action::Dispose, with_photos(1)), Err(Refusal::Scope));
    assert_eq!(run.try_act_at(&handler(99), ctx_now, Action::Dispose, with_photos(1)), Err(Refusal::Scope));
    // Once handed down, both HW and HW-QS may act; SZ still not.
    run.act(&handler(1), "2026-10-08 09:30", Action::HandDown, to_department(2));
    assert!(run.try_act_at(&handler(1), ctx_now, Action::Dispose, with_photos(1)).is_ok());
    assert!(run.try_act_at(&handler(2), ctx_now, Action::Dispose, with_photos(1)).is_ok());
    assert_eq!(run.try_act_at(&handler(3), ctx_now, Action::Dispose, with_photos(1)), Err(Refusal::Scope));

    // Citizens take no action on a case, not even on their own report.
    let run = case_in(State::Verifying);
    for action in decided_actions() {
        assert_eq!(
            run.try_act_at(&citizen(), ctx_now, action, valid_input(action)),
            Err(Refusal::Role { role: "citizen", action: action.as_str() })
        );
    }
    // The role check comes first: an out-of-scope actor of the wrong role gets a role refusal.
    assert_eq!(
        run.try_act_at(&handler(3), ctx_now, Action::Verify, verified(true)),
        Err(Refusal::Role { role: "handler", action: "verify" })
    );
}

fn parse_err(action: Action, input: ActionInput) -> Refusal {
    match Command::parse(action, input) {
        Ok(step) => panic!("{} parsed: {step:?}", action.as_str()),
        Err(r) => r,
    }
}

fn assert_invalid(action: Action, input: ActionInput, field: &str) {
    match parse_err(action, input) {
        Refusal::Invalid { field: f, .. } => assert_eq!(f, field, "{}", action.as_str()),
        other => panic!("{}: expected invalid {field}, got {other:?}", action.as_str()),
    }
}

#[test]
fn command_parse_refuses_bad_input() {
    // Notes are required for the refusals and the requests; blank notes do not count.
    for action in [
        Action::Reject,
        Action::Refuse,
        Action::Void,
        Action::Return,
        Action::RequestExtension,
        Action::RequestSuspension,
    ] {
        let mut input = valid_input(action);
        input.note = None;
        assert_invalid(action, input.clone(), "note");
        input.note = Some(" \n\t ".into());
        assert_invalid(action, input, "note");
        assert!(Command::parse(action, valid_input(action)).is_ok());
    }
    // Notes are optional elsewhere.
    for action in [Action::Accept, Action::File, Action::Dispatch, Action::Close, Action::Urge, Action::Resume] {
        let mut input = valid_input(action);
        input.note = None;
        assert!(Command::parse(action, input).is_ok(), "{action:?}");
    }
    assert_invalid(Action::Dispatch, no_input(), "department_id");
    assert_invalid(Action::HandDown, no_input(), "department_id");
    assert_invalid(Action::Dispose, no_input(), "photo_ids");
    assert_invalid(Action::Dispose, ActionInput { photo_ids: Some(vec![]), ..no_input() }, "photo_ids");
    assert_invalid(Action::Check, with_photos(1), "passed");
    assert_invalid(Action::Verify, with_photos(1), "confirmed");
    assert_invalid(Action::RequestExtension, with_note("x"), "limit");
    for amount in [0, 10_001] {
        assert_invalid(Action::RequestExtension, extension(Limit::working_hours(amount)), "limit");
    }
    assert!(Command::parse(Action::RequestExtension, extension(Limit::working_minutes(10_000))).is_ok());
    assert!(Command::parse(Action::RequestExtension, extension(Limit::natural_days(1))).is_ok());
    assert_invalid(Action::Report, no_input(), "action");

    // Photo ids: 64 lowercase hex digits, at most 9.
    for bad in ["A".repeat(64), "a".repeat(63), "a".repeat(65), format!("{}g", "a".repeat(63)), String::new()] {
        let input = ActionInput { photo_ids: Some(vec![photo(1), bad]), ..no_input() };
        assert_invalid(Action::Accept, input.clone(), "photo_ids");
        assert_invalid(Action::Dispose, input, "photo_ids");
    }
    assert!(is_photo_id(&photo(255)));
    assert!(Command::parse(Action::Dispose, with_photos(9)).is_ok());
    assert_invalid(Action::Dispose, with_photos(10), "photo_ids");

    // Notes: at most 2000 characters (not bytes), counted after trimming.
    assert!(Command::parse(Action::Reject, with_note(&"字".repeat(MAX_NOTE))).is_ok());
    assert!(Command::parse(Action::Reject, with_note(&format!("  {}  ", "a".repeat(MAX_NOTE)))).is_ok());
    assert_invalid(Action::Reject, with_note(&"字".repeat(MAX_NOTE + 1)), "note");
    assert_invalid(Action::Urge, with_note(&"a".repeat(MAX_NOTE + 1)), "note");

    // Unknown fields are refused when the input comes as JSON.
    assert!(serde_json::from_str::<ActionInput>(r#"{"note":"x","nope":1}"#).is_err());
    assert!(serde_json::from_str::<ActionInput>(r#"{"note":"x","department_id":3}"#).is_ok());
}

#[test]
fn command_parse_builds_the_right_command() {
    let step = Command::parse(Action::Reject, with_note("  重复  ")).expect("ok");
    assert_eq!(
        step,
        Step {
            action: Action::Reject,
            command: Command::Reject { reason: None },
            note: Some("重复".into()),
            photo_ids: vec![]
        }
    );
    let cases = [
        (Action::Verify, Command::Verify { confirmed: true }),
        (Action::Accept, Command::Accept),
        (Action::Reject, Command::Reject { reason: None }),
        (Action::File, Command::File { urgency: None }),
        (Action::Refuse, Command::Refuse { reason: None }),
        (Action::Void, Command::Void { duplicate_of: None }),
        (Action::Dispatch, Command::Dispatch { department_id: 1 }),
        (Action::HandDown, Command::HandDown { department_id: 2 }),
        (Action::Return, Command::Return),
        (Action::RequestExtension, Command::RequestExtension { limit: Limit::working_hours(4) }),
        (Action::ApproveExtension, Command::ApproveExtension),
        (Action::RejectExtension, Command::RejectExtension),
        (Action::RequestSuspension, Command::RequestSuspension),
        (Action::ApproveSuspension, Command::ApproveSuspension),
        (Action::RejectSuspension, Command::RejectSuspension),
        (Action::Resume, Command::Resume),
        (Action::Dispose, Command::Dispose),
        (Action::Check, Command::Check { passed: true }),
        (Action::Close, Command::Close),
        (Action::Urge, Command::Urge),
    ];
    assert_eq!(cases.len(), decided_actions().count());
    for (action, command) in cases {
        let step = Command::parse(action, valid_input(action)).expect("valid");
        assert_eq!((step.action, step.command), (action, command));
    }
    let step = Command::parse(Action::Dispose, with_photos(2)).expect("ok");
    assert_eq!(step.photo_ids, vec![photo(1), photo(2)]);
    assert_eq!(step.note, None);
}

#[test]
fn pending_request_conflicts() {
    let now = "2026-10-08 10:00";
    let hw = handler(1);
    let conflict = |r: Result<Event, Refusal>| matches!(r, Err(Refusal::Conflict(_)));

    // Nothing pending: nothing to rule on.
    let run = case_in(State::Dispatched);
    for action in
        [Action::ApproveExtension, Action::RejectExtension, Action::ApproveSuspension, Action::RejectSuspension]
    {
        assert!(conflict(run.try_act(&dispatcher(), now, action, no_input())), "{action:?}");
    }

    // An extension pending.
    let mut run = case_in(State::Dispatched);
    run.act(&hw, "2026-10-08 09:30", Action::RequestExtension, extension(Limit::working_hours(2)));
    assert!(conflict(run.try_act(&hw, now, Action::RequestExtension, extension(Limit::working_hours(3)))));
    assert!(conflict(run.try_act(&hw, now, Action::RequestSuspension, with_note("x"))));
    assert!(conflict(run.try_act(&hw, now, Action::Dispose, with_photos(1))));
    assert!(conflict(run.try_act(&hw, now, Action::HandDown, to_department(2))));
    assert!(conflict(run.try_act(&hw, now, Action::Return, with_note("x"))));
    assert!(conflict(run.try_act(&leader(), now, Action::ApproveSuspension, no_input())));
    assert!(conflict(run.try_act(&leader(), now, Action::RejectSuspension, no_input())));
    assert!(run.try_act(&leader(), now, Action::Urge, no_input()).is_ok());
    assert!(run.try_act(&leader(), now, Action::ApproveExtension, no_input()).is_ok());

    // A suspension pending.
    let mut run = case_in(State::Dispatched);
    run.act(&hw, "2026-10-08 09:30", Action::RequestSuspension, with_note("x"));
    assert!(conflict(run.try_act(&hw, now, Action::RequestSuspension, with_note("y"))));
    assert!(conflict(run.try_act(&hw, now, Action::RequestExtension, extension(Limit::working_hours(3)))));
    assert!(conflict(run.try_act(&hw, now, Action::Dispose, with_photos(1))));
    assert!(conflict(run.try_act(&dispatcher(), now, Action::ApproveExtension, no_input())));
    assert!(conflict(run.try_act(&dispatcher(), now, Action::RejectExtension, no_input())));
    assert!(run.try_act(&dispatcher(), now, Action::RejectSuspension, no_input()).is_ok());
}

#[test]
fn hand_down_only_to_a_direct_sub_unit() {
    let now = "2026-10-08 10:00";
    let run = case_in(State::Dispatched);
    let hw = handler(1);
    for target in [1, 3, 99] {
        assert!(
            matches!(
                run.try_act(&hw, now, Action::HandDown, to_department(target)),
                Err(Refusal::Invalid { field: "department_id", .. })
            ),
            "{target}"
        );
    }
    // A grandchild is not a direct sub-unit.
    let mut deps = departments();
    deps.push(Department {
        id: 4, code: "HW-QS-1".into(), name: "泉山环卫一队".into(), parent_id: Some(2), tier: 3
    });
    let tree = DepartmentTree::new(deps);
    let w = world();
    let ctx = Ctx { departments: &tree, ..w.ctx(bj(now)) };
    let step = Command::parse(Action::HandDown, to_department(4)).expect("ok");
    assert!(matches!(decide(&run.case, &step, &hw, &ctx), Err(Refusal::Invalid { field: "department_id", .. })));
    let step = Command::parse(Action::HandDown, to_department(2)).expect("ok");
    assert!(decide(&run.case, &step, &hw, &ctx).is_ok());

    // Once with HW-QS, which has no sub-units here, nothing can be handed further down.
    let mut run = case_in(State::Dispatched);
    run.act(&hw, "2026-10-08 09:30", Action::HandDown, to_department(2));
    for target in [1, 2, 3] {
        assert!(matches!(
            run.try_act(&handler(2), now, Action::HandDown, to_department(target)),
            Err(Refusal::Invalid { field: "department_id", .. })
        ));
    }

    // Dispatch needs an existing department.
    let run = case_in(State::Filed);
    assert!(matches!(
        run.try_act(&dispatcher(), now, Action::Dispatch, to_department(99)),
        Err(Refusal::Invalid { field: "department_id", .. })
    ));
}

// --- 6. project and replay ----------------------------------------------------------------

#[test]
fn project_refuses_events_out_of_order() {
    let run = case_in(State::Disposed);
    let ev = &run.events;
    assert_eq!(ev.len(), 5);
    let after = |n: usize| replay(ID, &ev[..n]).expect("prefix replays");

    // The first event must be a report with seq 1.
    assert_eq!(project(None, ID, &ev[1]), None);
    let mut report_later = ev[0].clone();
    report_later.seq = 2;
    assert_eq!(project(None, ID, &report_later), None);
    // A report cannot come second.
    let mut second_report = ev[0].clone();
    second_report.seq = 2;
    second_report.from_state = Some(State::Reported);
    assert_eq!(project(Some(after(1)), ID, &second_report), None);

    // Seq gap, repeated seq, wrong from_state, wrong id.
    assert_eq!(project(Some(after(1)), ID, &ev[2]), None);
    assert_eq!(project(Some(after(2)), ID, &ev[1]), None);
    // The same, with a from_state that matches: only the seq is wrong.
    let mut gap = ev[1].clone();
    gap.seq = 3;
    assert_eq!(project(Some(after(1)), ID, &gap), None);
    let mut stale = ev[2].clone();
    stale.seq = 2;
    assert_eq!(project(Some(after(2)), ID, &stale), None);
    let mut wrong_from = ev[2].clone();
    wrong_from.from_state = Some(State::Reported);
    assert_eq!(project(Some(after(2)), ID, &wrong_from), None);
    let mut no_from = ev[2].clone();
    no_from.from_state = None;
    assert_eq!(project(Some(after(2)), ID, &no_from), None);
    assert_eq!(project(Some(after(2)), ID + 1, &ev[2]), None);
    assert!(project(Some(after(2)), ID, &ev[2]).is_some());

    // Replay: the whole log must be there, in order.
    assert_eq!(replay(ID, &[]), None);
    assert_eq!(replay(ID, &ev[1..]), None);
    let mut swapped = ev.clone();
    swapped.swap(1, 2);
    assert_eq!(replay(ID, &swapped), None);
    let mut doubled = ev.clone();
    doubled.insert(2, ev[1].clone());
    assert_eq!(replay(ID, &doubled), None);
    assert_eq!(replay(ID, ev).as_ref(), Some(&run.case));
    // The id is the caller's.
    assert_eq!(replay(99, ev).map(|c| c.id), Some(99));
}

#[test]
fn project_refuses_a_report_with_a_from_state() {
    let run = case_in(State::Reported);
    let mut e = run.events[0].clone();
    e.from_state = Some(State::Checked);
    assert_eq!(project(None, ID, &e), None);
}

// --- 5. random walks ----------------------------------------------------------------------

/// Departments' parents, written out independently of the tree.
fn parent_of(department_id: i64) -> Option<Option<i64>> {
    match department_id {
        1 | 3 => Some(None),
        2 => Some(Some(1)),
        _ => None,
    }
}

/// Is department `d` within the subtree of `own`?
fn covers(own: i64, d: i64) -> bool {
    own == d || (own == 1 && d == 2)
}

/// The state an accepted command leads to, per DOMAIN.md "The case loop".
fn expected_to_state(from: State, command: &Command) -> State {
    match command {
        Command::Verify { .. } => State::Reported,
        Command::Accept => State::Accepted,
        Command::Reject { .. } => State::Rejected,
        Command::File { .. } | Command::Return => State::Filed,
        Command::Refuse { .. } => State::Refused,
        Command::Void { .. } => State::Voided,
        Command::Dispatch { .. } | Command::Resume | Command::Check { passed: false } => State::Dispatched,
        Command::ApproveSuspension => State::Suspended,
        Command::Dispose => State::Disposed,
        Command::Check { passed: true } => State::Checked,
        Command::Close => State::Closed,
        Command::HandDown { .. }
        | Command::RequestExtension { .. }
        | Command::ApproveExtension
        | Command::RejectExtension
        | Command::RequestSuspension
        | Command::RejectSuspension
        | Command::Urge => from,
    }
}

/// What kind of refusal (if any) `decide` must give, by an oracle independent of `decide`.
fn expected_refusal(case: &Case, action: Action, command: &Command, actor: &Actor) -> Option<String> {
    if !action.roles().contains(&actor.role) {
        return Some("role".into());
    }
    let in_scope = match actor.scope {
        Scope::Department { department_id } => case.department_id.is_some_and(|d| covers(department_id, d)),
        Scope::Own => false,
        Scope::Region { .. } => true, // every region actor of the walk covers GRID
    };
    if !in_scope {
        return Some("scope".into());
    }
    if !action.from_states().contains(&case.state) {
        return Some("state".into());
    }
    let pending = case.pending.is_some();
    let invalid = |field: &str| Some(format!("invalid:{field}"));
    match command {
        Command::Void { duplicate_of: Some(d) } if *d == case.id => invalid("duplicate_of"),
        Command::Dispatch { department_id } if parent_of(*department_id).is_none() => invalid("department_id"),
        Command::HandDown { .. } if pending => Some("conflict".into()),
        Command::HandDown { department_id } => match parent_of(*department_id) {
            Some(parent) if parent == case.department_id => None,
            _ => invalid("department_id"),
        },
        Command::Return | Command::RequestExtension { .. } | Command::RequestSuspension | Command::Dispose
            if pending =>
        {
            Some("conflict".into())
        }
        Command::ApproveExtension | Command::RejectExtension
            if !matches!(case.pending, Some(Pending::Extension { .. })) =>
        {
            Some("conflict".into())
        }
        Command::ApproveSuspension | Command::RejectSuspension
            if !matches!(case.pending, Some(Pending::Suspension { .. })) =>
        {
            Some("conflict".into())
        }
        _ => None,
    }
}

/// The commands an action can carry that lead to different states.
fn commands_of(action: Action) -> Vec<Command> {
    match action {
        Action::Report => vec![],
        Action::Verify => vec![Command::Verify { confirmed: true }, Command::Verify { confirmed: false }],
        Action::Check => vec![Command::Check { passed: true }, Command::Check { passed: false }],
        a => vec![Command::parse(a, valid_input(a)).expect("valid input").command],
    }
}

/// States reachable from the first states of a report through `from_states` and the oracle.
fn reachable_states() -> HashSet<State> {
    let mut seen: HashSet<State> = [State::Reported, State::Verifying].into();
    loop {
        let size = seen.len();
        for action in decided_actions() {
            for from in action.from_states() {
                if seen.contains(from) {
                    seen.extend(commands_of(action).iter().map(|c| expected_to_state(*from, c)));
                }
            }
        }
        if seen.len() == size {
            return seen;
        }
    }
}

fn refusal_kind(r: &Refusal) -> String {
    match r {
        Refusal::Role { .. } => "role".into(),
        Refusal::Scope => "scope".into(),
        Refusal::State { .. } => "state".into(),
        Refusal::Conflict(_) => "conflict".into(),
        Refusal::Invalid { field, .. } => format!("invalid:{field}"),
    }
}

/// Events after which the stage deadline is freshly computed from the event time, with the
/// limit they must use.
fn fresh_limit(before: &Case, command: &Command, st: &StageLimits, class: &ClassInfo) -> Option<Limit> {
    match command {
        Command::Verify { .. } => Some(st.accept),
        Command::Accept => Some(st.file),
        Command::File { .. } | Command::Return => Some(st.dispatch),
        Command::Dispatch { .. } => Some(class.limits.get(before.urgency, before.area_class)),
        Command::Dispose => Some(st.check),
        Command::Check { passed: true } => Some(st.close),
        Command::Check { passed: false } => before.disposal_limit,
        _ => None,
    }
}

fn ends_stage(command: &Command) -> bool {
    !matches!(
        command,
        Command::HandDown { .. }
            | Command::RequestExtension { .. }
            | Command::RequestSuspension
            | Command::RejectExtension
            | Command::RejectSuspension
            | Command::ApproveExtension
            | Command::ApproveSuspension
            | Command::Urge
            | Command::Resume
    )
}

#[derive(Debug, Clone)]
struct Move {
    /// Pick among the actions that apply in the current state (else among all of them).
    follow: bool,
    pick: usize,
    /// Pick among the roles permitted for the action (else among all roles).
    right_role: bool,
    role: usize,
    /// The department of a handler; 0 for the one holding the case (HW if none).
    handler_department: i64,
    input: ActionInput,
    /// Time since the previous move: whole minutes mostly, sometimes an odd number of
    /// nanoseconds (the calendar works in whole milliseconds).
    advance: SignedDuration,
}

fn any_input() -> impl Strategy<Value = ActionInput> {
    let note = prop_oneof![
        6 => Just(Some("现场情况说明".to_owned())),
        1 => Just(None),
        1 => Just(Some("   ".to_owned())),
    ];
    let department = prop_oneof![
        3 => Just(Some(1i64)),
        3 => Just(Some(2)),
        2 => Just(Some(3)),
        1 => Just(Some(99)),
        1 => Just(None),
    ];
    let photos = prop_oneof![
        6 => (1u8..4).prop_map(|n| Some((1..=n).map(photo).collect::<Vec<_>>())),
        1 => Just(None),
        1 => Just(Some(vec!["not-a-photo".to_owned()])),
    ];
    let urgency = proptest::option::weighted(
        0.3,
        prop_oneof![Just(Urgency::Urgent), Just(Urgency::Important), Just(Urgency::Ordinary)],
    );
    let unit = prop_oneof![
        Just(LimitUnit::WorkingMinutes),
        Just(LimitUnit::WorkingHours),
        Just(LimitUnit::WorkingDays),
        Just(LimitUnit::NaturalHours),
    ];
    let limit = proptest::option::weighted(0.9, (0u32..6, unit).prop_map(|(amount, unit)| Limit { amount, unit }));
    let duplicate_of = proptest::option::weighted(0.2, prop_oneof![Just(ID), Just(ID - 2)]);
    (
        note,
        department,
        proptest::option::weighted(0.9, any::<bool>()),
        proptest::option::weighted(0.9, any::<bool>()),
        photos,
        urgency,
        duplicate_of,
        limit,
    )
        .prop_map(|(note, department_id, passed, confirmed, photo_ids, urgency, duplicate_of, limit)| {
            ActionInput {
                note,
                department_id,
                passed,
                confirmed,
                photo_ids,
                urgency,
                duplicate_of,
                limit,
                reason: None,
            }
        })
}

fn any_move() -> impl Strategy<Value = Move> {
    (
        proptest::bool::weighted(0.85),
        0usize..1000,
        proptest::bool::weighted(0.85),
        0usize..1000,
        prop_oneof![4 => Just(0i64), 2 => Just(1), 1 => Just(2), 1 => Just(3)],
        any_input(),
        prop_oneof![
            8 => (0i64..120).prop_map(SignedDuration::from_mins),
            2 => (0i64..(4 * 24 * 60)).prop_map(SignedDuration::from_mins),
            1 => (0i64..600_000_000_000).prop_map(SignedDuration::from_nanos),
        ],
    )
        .prop_map(|(follow, pick, right_role, role, handler_department, input, advance)| Move {
            follow,
            pick,
            right_role,
            role,
            handler_department,
            input,
            advance,
        })
}

#[derive(Debug, Clone)]
struct Start {
    reporter: usize,
    /// Minutes after 2026-09-15 00:00 Beijing time (40 days: Sep 20 make-up, Mid-Autumn,
    /// National Day, Oct 10 make-up).
    minute: i64,
    urgency: Urgency,
    area_class: AreaClass,
}

fn any_start() -> impl Strategy<Value = Start> {
    (
        0usize..5,
        0i64..(40 * 24 * 60),
        prop_oneof![Just(Urgency::Urgent), Just(Urgency::Important), Just(Urgency::Ordinary)],
        prop_oneof![Just(AreaClass::A), Just(AreaClass::B), Just(AreaClass::C)],
    )
        .prop_map(|(reporter, minute, urgency, area_class)| Start { reporter, minute, urgency, area_class })
}

/// Invariants of a case row after any valid history.
fn check_case(case: &Case, events: &[Event]) -> Result<(), TestCaseError> {
    use State::*;
    let s = case.state;
    // (c) replay gives the row, bit for bit (also through JSON).
    let replayed = replay(ID, events);
    prop_assert_eq!(replayed.as_ref(), Some(case));
    let json = serde_json::to_string(events).expect("events serialise");
    let back: Vec<Event> = serde_json::from_str(&json).expect("events deserialise");
    prop_assert_eq!(&back, &events.to_vec());
    prop_assert_eq!(
        serde_json::to_string(&replay(ID, &back)).expect("json"),
        serde_json::to_string(&Some(case)).expect("json")
    );
    // (d) contiguous sequence numbers.
    for (i, e) in events.iter().enumerate() {
        prop_assert_eq!(e.seq as usize, i + 1);
    }
    prop_assert_eq!(case.version as usize, events.len());
    prop_assert_eq!(case.created_at, events[0].at);
    prop_assert_eq!(Some(case.updated_at), events.last().map(|e| e.at));
    prop_assert!(case.stage_started_at <= case.updated_at);
    // (g) a department holds the case exactly while it is dispatched or after.
    let with_department = matches!(s, Dispatched | Disposed | Checked | Suspended | Closed);
    prop_assert_eq!(case.department_id.is_some(), with_department, "department in {:?}", s);
    if with_department {
        prop_assert!(case.disposal_limit.is_some());
    }
    prop_assert_eq!(
        case.case_deadline.is_some(),
        matches!(s, Filed | Dispatched | Disposed | Checked | Suspended | Closed)
    );
    prop_assert_eq!(case.deadline.is_none(), s.is_final(), "deadline in {:?}", s);
    prop_assert!(case.pending.is_none() || s == Dispatched, "pending in {:?}", s);
    prop_assert_eq!(case.suspended_at.is_some(), s == Suspended);
    prop_assert_eq!(case.closed_at.is_some(), s == Closed);
    // Counters are counts of the log.
    let count = |f: &dyn Fn(&Change) -> bool| events.iter().filter(|e| f(&e.change)).count() as u32;
    prop_assert_eq!(case.dispatch_count, count(&|c| matches!(c, Change::Dispatch { .. })));
    prop_assert_eq!(case.return_count, count(&|c| matches!(c, Change::Return { .. })));
    prop_assert_eq!(case.rework_count, count(&|c| matches!(c, Change::Check { passed: false })));
    prop_assert_eq!(case.extension_count, count(&|c| matches!(c, Change::ApproveExtension { .. })));
    prop_assert_eq!(case.urged, count(&|c| matches!(c, Change::Urge)) > 0);
    prop_assert_eq!(case.verified.is_some(), count(&|c| matches!(c, Change::Verify { .. })) > 0);
    if with_department {
        prop_assert!(case.dispatch_count >= 1);
    }
    // The times the evaluation dates its charges by are those of the log's events.
    let last_at = |f: &dyn Fn(&Change) -> bool| events.iter().rev().find(|e| f(&e.change)).map(|e| e.at);
    prop_assert_eq!(case.filed_at, last_at(&|c| matches!(c, Change::File { .. })));
    prop_assert_eq!(case.dispatched_at, last_at(&|c| matches!(c, Change::Dispatch { .. })));
    // A due date exactly while there is a case deadline; the same one until it has passed.
    prop_assert_eq!(case.due_at.is_some(), case.case_deadline.is_some());
    prop_assert!(case.due_department_id.is_none() || case.due_at.is_some());
    if case.due_at != case.case_deadline {
        let due = case.due_at.expect("due");
        prop_assert!(events.iter().any(|e| e.at > due), "the due date {} stayed though nothing happened after it", due);
    }
    Ok(())
}

/// Apply random moves to a fresh report, checking every decision against the oracles above;
/// returns the log.
fn random_walk(start: Start, moves: Vec<Move>) -> Result<Vec<Event>, TestCaseError> {
    let w = world();
    let (source, actor) = match start.reporter {
        0 => (Source::Collector, collector()),
        1 => (Source::Citizen, citizen()),
        2 => (Source::Hotline, acceptor()),
        3 => (Source::Video, acceptor()),
        _ => (Source::Leader, leader()),
    };
    let mut now = plus_min(bj("2026-09-15 00:00"), start.minute);
    let mut r = new_report(source);
    r.urgency = start.urgency;
    r.area_class = start.area_class;
    let first = report(r, &actor, &w.ctx(now)).map_err(|e| TestCaseError::fail(format!("report refused: {e}")))?;
    let expected_first = if source.needs_verification() { State::Verifying } else { State::Reported };
    prop_assert_eq!(first.to_state, expected_first);
    prop_assert!(first.deadline.is_some_and(|d| d >= now));
    let mut case = project(None, ID, &first).expect("report projects");
    let mut events = vec![first];
    check_case(&case, &events)?;

    for m in moves {
        now += m.advance;
        let enabled: Vec<Action> = decided_actions().filter(|a| a.from_states().contains(&case.state)).collect();
        // (a) from a final state, nothing is enabled and every attempt is refused.
        prop_assert_eq!(enabled.is_empty(), case.state.is_final());
        // Following the loop: the enabled actions whose pending-request precondition holds,
        // weighted.
        let useful: Vec<Action> = enabled
            .iter()
            .copied()
            .filter(|a| match (&case.pending, a) {
                (None, Action::ApproveExtension | Action::RejectExtension)
                | (None, Action::ApproveSuspension | Action::RejectSuspension) => false,
                (None, _) => true,
                (Some(Pending::Extension { .. }), a) => {
                    matches!(a, Action::ApproveExtension | Action::RejectExtension | Action::Urge)
                }
                (Some(Pending::Suspension { .. }), a) => {
                    matches!(a, Action::ApproveSuspension | Action::RejectSuspension | Action::Urge)
                }
            })
            // Dead ends and urging are picked less often than moving on, so walks get deep.
            .flat_map(|a| {
                let weight = match a {
                    Action::Reject | Action::Refuse | Action::Void | Action::Urge => 1,
                    _ => 5,
                };
                std::iter::repeat_n(a, weight)
            })
            .collect();
        let action = if m.follow && !useful.is_empty() {
            useful[m.pick % useful.len()]
        } else {
            Action::ALL[m.pick % Action::ALL.len()]
        };
        let role = if m.right_role && !action.roles().is_empty() {
            action.roles()[m.role % action.roles().len()]
        } else {
            Role::ALL[m.role % Role::ALL.len()]
        };
        let department = match m.handler_department {
            0 => case.department_id.unwrap_or(1),
            d => d,
        };
        let actor = actor_with(role, department);
        let step = match Command::parse(action, m.input.clone()) {
            Ok(step) => step,
            Err(refusal) => {
                prop_assert!(matches!(refusal, Refusal::Invalid { .. }), "{:?}", refusal);
                continue;
            }
        };
        let before = case.clone();
        let got = decide(&case, &step, &actor, &w.ctx(now));
        // (f) deciding never touches the case.
        prop_assert_eq!(&case, &before);
        let expected = expected_refusal(&case, action, &step.command, &actor);
        match got {
            Err(refusal) => {
                prop_assert_eq!(Some(refusal_kind(&refusal)), expected, "{:?} on {:?}", action, case.state);
                // Nothing folded: the version is unchanged.
                prop_assert_eq!(case.version as usize, events.len());
            }
            Ok(e) => {
                prop_assert_eq!(expected, None, "{:?} on {:?} by {:?}", action, case.state, role);
                prop_assert!(!before.state.is_final());
                prop_assert_eq!(e.seq, before.version + 1);
                prop_assert_eq!(e.at, now);
                prop_assert_eq!(e.from_state, Some(before.state));
                prop_assert_eq!(e.change.action(), action);
                prop_assert_eq!(e.actor_id, Some(actor.user_id));
                prop_assert_eq!(e.to_state, expected_to_state(before.state, &step.command));
                prop_assert_eq!(&e.note, &step.note);
                prop_assert_eq!(&e.photo_ids, &step.photo_ids);
                let late = ends_stage(&step.command) && before.deadline.is_some_and(|d| now > d);
                prop_assert_eq!(e.late, late);
                // (e) fresh working deadlines are never before the event.
                if let Some(limit) = fresh_limit(&before, &step.command, &w.stages, &w.class) {
                    prop_assert_eq!(e.deadline, Some(w.cal.deadline(now, limit)));
                    prop_assert!(e.deadline.is_some_and(|d| d >= now));
                }
                if let Some(cd) = e.case_deadline {
                    if matches!(
                        step.command,
                        Command::File { .. }
                            | Command::Dispatch { .. }
                            | Command::Return
                            | Command::Check { passed: false }
                    ) {
                        prop_assert!(e.deadline.is_some_and(|d| d <= cd) && cd >= now);
                    }
                }
                if !ends_stage(&step.command) && !matches!(step.command, Command::ApproveExtension | Command::Resume) {
                    prop_assert_eq!(e.deadline, before.deadline);
                    prop_assert_eq!(e.case_deadline, before.case_deadline);
                }
                if step.command == Command::ApproveExtension {
                    let Some(Pending::Extension { limit, .. }) = before.pending else {
                        return Err(TestCaseError::fail("approved an extension with none pending"));
                    };
                    prop_assert_eq!(e.deadline, before.deadline.map(|d| w.cal.deadline(d, limit)));
                }
                if step.command == Command::Resume {
                    // Suspended time does not count: the working time left (or overdue) is the
                    // same at the resume as it was at the suspension.
                    let s = before.suspended_at.expect("suspended_at while suspended");
                    let (old, new) = (before.deadline.expect("deadline kept"), e.deadline.expect("deadline"));
                    if old >= s {
                        prop_assert_eq!(w.cal.working_millis_between(now, new), w.cal.working_millis_between(s, old));
                    } else {
                        prop_assert_eq!(w.cal.working_millis_between(new, now), w.cal.working_millis_between(old, s));
                    }
                    prop_assert_eq!(
                        e.case_deadline,
                        before.case_deadline.map(|d| w.cal.add_working_millis(d, w.cal.working_millis_between(s, now)))
                    );
                }
                case = project(Some(case), ID, &e).expect("a decided event projects");
                events.push(e);
                check_case(&case, &events)?;
                // (b) the state is one the tables can reach.
                prop_assert!(action.from_states().contains(&before.state));
                prop_assert!(reachable_states().contains(&case.state));
                if case.state.is_final() {
                    for a in decided_actions() {
                        for r in Role::ALL {
                            let refused = Command::parse(a, valid_input(a))
                                .map(|s| decide(&case, &s, &actor_for(r), &w.ctx(now)));
                            prop_assert!(
                                !matches!(refused, Ok(Ok(_))),
                                "{:?} by {:?} on a {:?} case",
                                a,
                                r,
                                case.state
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(events)
}

#[test]
fn random_walks_keep_the_invariants() {
    let config = ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x2026_1008),
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let seen = Mutex::new(HashSet::new());
    let strategy = (any_start(), proptest::collection::vec(any_move(), 1..60));
    let result = runner.run(&strategy, |(start, moves)| {
        let log = random_walk(start, moves)?;
        let mut seen = seen.lock().expect("lock");
        seen.extend(log.iter().map(|e| (e.change.action(), e.to_state)));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The walks get everywhere: every state reached, every action taken.
    let seen = seen.into_inner().expect("lock");
    for state in State::ALL {
        assert!(seen.iter().any(|(_, s)| *s == state), "no walk reached {state:?}");
    }
    for action in Action::ALL {
        assert!(seen.iter().any(|(a, _)| *a == action), "no walk took {action:?}");
    }
}

#[test]
fn every_state_is_reachable_and_the_fixtures_keep_the_invariants() {
    assert_eq!(reachable_states().len(), State::ALL.len());
    let mut seen = HashSet::new();
    for state in State::ALL {
        let run = case_in(state);
        seen.insert(run.case.state);
        check_case(&run.case, &run.events).expect("invariants");
    }
    assert_eq!(seen.len(), State::ALL.len());
}

/// Sums a log's contributions per subject (all days together).
fn tallies_of(
    events: &[Event],
) -> std::collections::BTreeMap<(crate::evaluation::TallyKind, String), crate::evaluation::Tally> {
    let mut tallies: std::collections::BTreeMap<_, crate::evaluation::Tally> = Default::default();
    let mut before: Option<Case> = None;
    for e in events {
        let after = project(before.clone(), ID, e).expect("the log projects");
        for c in crate::evaluation::contributions(before.as_ref(), &after, e, 480) {
            tallies.entry((c.kind, c.id)).or_default().add(c.counter, c.delta);
        }
        before = Some(after);
    }
    tallies
}

fn named(
    tallies: &std::collections::BTreeMap<(crate::evaluation::TallyKind, String), crate::evaluation::Tally>,
    kind: crate::evaluation::TallyKind,
    id: impl ToString,
) -> std::collections::BTreeMap<&'static str, i64> {
    tallies.get(&(kind, id.to_string())).map(|t| t.named()).unwrap_or_default()
}

fn pairs(p: &[(&'static str, i64)]) -> std::collections::BTreeMap<&'static str, i64> {
    p.iter().copied().collect()
}

/// What a whole loop with one rework counts for each subject, by hand: the evaluation's
/// contributions summed over the log.
#[test]
fn evaluation_counts_a_loop_with_rework() {
    use crate::evaluation::TallyKind;
    use Action::*;
    let mut run = Run::start(Source::Citizen, &citizen(), "2026-10-08 09:00");
    run.act(&collector(), "2026-10-08 09:20", Verify, verified(true));
    run.act(&acceptor(), "2026-10-08 09:30", Accept, no_input());
    run.act(&leader(), "2026-10-08 09:40", File, no_input());
    run.act(&dispatcher(), "2026-10-08 09:50", Dispatch, to_department(1));
    run.act(&handler(1), "2026-10-08 10:30", Dispose, with_photos(2));
    run.act(&collector(), "2026-10-08 10:40", Check, checked(false));
    run.act(&handler(1), "2026-10-08 11:00", Dispose, with_photos(3));
    run.act(&collector(), "2026-10-08 11:10", Check, checked(true));
    run.act(&leader(), "2026-10-08 11:20", Close, no_input());
    let t = tallies_of(&run.events);
    // The grid and every region above it count the same: disposal took 40 + 20 minutes
    // (from the dispatch, then from the failed check), acceptance 30 minutes after the report.
    for (level, kind) in [
        (RegionLevel::Grid, TallyKind::Grid),
        (RegionLevel::Community, TallyKind::Community),
        (RegionLevel::Street, TallyKind::Street),
        (RegionLevel::District, TallyKind::District),
    ] {
        let code = run.case.grid_code.at_level(level).expect("level");
        assert_eq!(
            named(&t, kind, code.as_str()),
            pairs(&[
                ("reported", 1),
                ("citizen_confirmed", 1),
                ("accepted", 1),
                ("accept_minutes", 30),
                ("filed", 1),
                ("dispatched", 1),
                ("disposed", 2),
                ("disposed_on_time", 2),
                ("dispose_minutes", 60),
                ("reworked", 1),
                ("closed", 1),
                ("closed_on_time", 1),
                ("due", 1),
                ("due_closed", 1),
                ("due_closed_on_time", 1),
            ]),
            "{level:?}"
        );
    }
    assert_eq!(
        named(&t, TallyKind::Collector, collector().user_id),
        pairs(&[("verified", 1), ("verified_on_time", 1), ("checked", 2), ("checked_on_time", 2)])
    );
    assert_eq!(
        named(&t, TallyKind::Department, 1),
        pairs(&[
            ("dispatched", 1),
            ("disposed", 2),
            ("disposed_on_time", 2),
            ("dispose_minutes", 60),
            ("reworked", 1),
            ("closed", 1),
            ("closed_on_time", 1),
            ("due", 1),
            ("due_closed", 1),
            ("due_closed_on_time", 1),
        ])
    );
    assert_eq!(
        named(&t, TallyKind::Acceptor, acceptor().user_id),
        pairs(&[("accepted", 1), ("accepted_on_time", 1), ("accept_minutes", 30)])
    );
    assert_eq!(
        named(&t, TallyKind::Leader, leader().user_id),
        pairs(&[("filed", 1), ("filed_on_time", 1), ("closed", 1), ("closed_on_time", 1)])
    );
    assert_eq!(
        named(&t, TallyKind::Dispatcher, dispatcher().user_id),
        pairs(&[("dispatched", 1), ("dispatched_on_time", 1), ("reworked", 1)])
    );
    assert_eq!(t.len(), 4 + 5, "nobody else is counted");
}

/// The exception paths by hand: a collector's report filed late, dispatched to the wrong
/// department and returned, extended, suspended over the weekend, closed after its deadline;
/// a second report voided as its duplicate before filing; a third voided after filing.
#[test]
fn evaluation_counts_returns_extensions_suspensions_and_voids() {
    use crate::evaluation::{due_facts, TallyKind};
    use Action::*;
    let mut run = Run::start(Source::Collector, &collector(), "2026-10-09 09:00");
    run.act(&acceptor(), "2026-10-09 10:00", Accept, no_input());
    // Filing is due within 30 working minutes: 11:00 is late.
    let filed = run.act(&leader(), "2026-10-09 11:00", File, no_input());
    assert!(filed.late);
    run.act(&dispatcher(), "2026-10-09 11:10", Dispatch, to_department(1));
    run.act(&handler(1), "2026-10-09 11:30", Return, with_note("不归我们"));
    run.act(&dispatcher(), "2026-10-09 11:40", Dispatch, to_department(1));
    run.act(&handler(1), "2026-10-09 13:00", RequestExtension, extension(Limit::working_hours(4)));
    run.act(&leader(), "2026-10-09 14:10", ApproveExtension, no_input());
    run.act(&handler(1), "2026-10-09 14:20", RequestSuspension, with_note("等材料"));
    run.act(&leader(), "2026-10-09 14:30", ApproveSuspension, no_input());
    // While suspended the case is not due at all.
    let suspended = due_facts(&run.case, 480);
    assert!(suspended.is_empty(), "{suspended:?}");
    run.act(&leader(), "2026-10-12 09:00", Resume, no_input());
    run.act(&handler(1), "2026-10-20 09:00", Dispose, with_photos(1));
    run.act(&collector(), "2026-10-20 09:30", Check, checked(true));
    run.act(&leader(), "2026-10-20 09:40", Close, no_input());
    let t = tallies_of(&run.events);
    let street = run.case.street_code.as_str().to_owned();
    let s = named(&t, TallyKind::Street, &street);
    assert_eq!(s.get("closed_on_time"), None, "closed after its deadline");
    assert_eq!((s["due"], s["due_closed"], s.get("due_closed_on_time")), (1, 1, None));
    assert_eq!((s["wrongly_dispatched"], s["dispatched"], s["extended"], s["suspended"]), (1, 2, 1, 1));
    // The deadline-dated facts sit on the final deadline's day only.
    let deadline_day = crate::evaluation::day_key(run.case.case_deadline.expect("deadline"), 480);
    let mut due_days = std::collections::BTreeMap::new();
    let mut before: Option<Case> = None;
    for e in &run.events {
        let after = project(before.clone(), ID, e).expect("projects");
        for c in crate::evaluation::contributions(before.as_ref(), &after, e, 480) {
            if c.kind == TallyKind::Street && c.counter == crate::evaluation::Counter::Due {
                *due_days.entry(c.day).or_insert(0) += c.delta;
            }
        }
        before = Some(after);
    }
    due_days.retain(|_, v| *v != 0);
    assert_eq!(due_days, [(deadline_day, 1)].into());
    assert_eq!(named(&t, TallyKind::Collector, collector().user_id)["report_filed"], 1);
    assert_eq!(named(&t, TallyKind::Leader, leader().user_id).get("filed_on_time"), None, "filed late");
    assert_eq!(named(&t, TallyKind::Dispatcher, dispatcher().user_id)["redispatched"], 1);
    let d = named(&t, TallyKind::Department, 1);
    assert_eq!((d["dispatched"], d["returned"], d["extended"], d["suspended"], d["closed"]), (2, 1, 1, 1, 1));

    // A duplicate voided before filing is a justified void for the collector who reported it.
    let mut dup = Run::start(Source::Collector, &collector(), "2026-10-09 09:05");
    dup.act(&acceptor(), "2026-10-09 09:10", Void, ActionInput { duplicate_of: Some(ID + 1), ..with_note("重复") });
    let t = tallies_of(&dup.events);
    assert_eq!(
        named(&t, TallyKind::Collector, collector().user_id),
        pairs(&[("reported", 1), ("report_justified_void", 1)])
    );
    assert_eq!(named(&t, TallyKind::Grid, GRID), pairs(&[("reported", 1), ("voided", 1)]));

    // Voided after filing: charged to the leader who filed it, and no longer due.
    let mut wrong = Run::start(Source::Collector, &collector(), "2026-10-09 09:05");
    wrong.act(&acceptor(), "2026-10-09 09:10", Accept, no_input());
    wrong.act(&leader(), "2026-10-09 09:15", File, no_input());
    wrong.act(&leader(), "2026-10-09 09:20", Void, with_note("无效"));
    let t = tallies_of(&wrong.events);
    assert_eq!(named(&t, TallyKind::Leader, leader().user_id)["voided_after_filing"], 1);
    assert_eq!(named(&t, TallyKind::Grid, GRID).get("due"), None);
    assert_eq!(named(&t, TallyKind::Collector, collector().user_id).get("report_justified_void"), None);
}

/// Every run's contributions summed per subject and month (`yyyymm`).
fn monthly(
    runs: &[&Run],
) -> std::collections::BTreeMap<(crate::evaluation::TallyKind, String, i32), crate::evaluation::Tally> {
    let mut out: std::collections::BTreeMap<_, crate::evaluation::Tally> = Default::default();
    for run in runs {
        let mut before: Option<Case> = None;
        for e in &run.events {
            let after = project(before.clone(), ID, e).expect("the log projects");
            for c in crate::evaluation::contributions(before.as_ref(), &after, e, 480) {
                out.entry((c.kind, c.id, crate::evaluation::month_key(c.day))).or_default().add(c.counter, c.delta);
            }
            before = Some(after);
        }
    }
    out
}

fn in_month(
    t: &std::collections::BTreeMap<(crate::evaluation::TallyKind, String, i32), crate::evaluation::Tally>,
    kind: crate::evaluation::TallyKind,
    id: impl ToString,
    month: i32,
) -> std::collections::BTreeMap<&'static str, i64> {
    t.get(&(kind, id.to_string(), month)).map(|t| t.named()).unwrap_or_default()
}

/// A metric of a subject over one month: (value, numerator, denominator).
fn metric_in_month(
    t: &std::collections::BTreeMap<(crate::evaluation::TallyKind, String, i32), crate::evaluation::Tally>,
    (subject, kind): (crate::evaluation::SubjectKind, crate::evaluation::TallyKind),
    id: impl ToString,
    month: i32,
    name: &str,
) -> (f64, i64, i64) {
    use crate::evaluation::{metrics, Context, EvalConfig, Tally};
    let tally = t.get(&(kind, id.to_string(), month)).cloned().unwrap_or_else(Tally::default);
    let ctx = Context { level: Some(RegionLevel::Grid), days: 30, ..Context::default() };
    let m = metrics(subject, &tally, &EvalConfig::default(), &ctx);
    let m = m.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no metric {name}"));
    (m.value, m.numerator, m.denominator)
}

const NOV: i32 = 202611;
const DEC: i32 = 202612;

/// A case filed on Friday 27 November, returned on Tuesday 1 December after its due date had
/// passed, then dispatched elsewhere and closed: it stays due on Monday 30 November (not in
/// December, where its new deadline is), it was not closed on time, the department that held it
/// when the due date passed keeps the overdue, and the return is charged to the dispatcher on
/// the November day of the returned dispatch.
#[test]
fn a_return_after_the_due_date_stays_due_in_its_month() {
    use crate::evaluation::{SubjectKind, TallyKind};
    use Action::*;
    let mut run = Run::start(Source::Collector, &collector(), "2026-11-27 15:00");
    run.act(&acceptor(), "2026-11-27 15:05", Accept, no_input());
    run.act(&leader(), "2026-11-27 15:10", File, no_input());
    // 4 working hours from Fri 15:10: 140 minutes on Friday, 100 on Monday from 08:30.
    assert_eq!(run.case.due_at, Some(bj("2026-11-30 10:10")));
    run.act(&dispatcher(), "2026-11-27 15:20", Dispatch, to_department(1));
    // Disposal by Fri 17:20 (2 h), then check 1 h and close 30 min: 10 minutes on Friday, 80
    // on Monday.
    assert_eq!((run.case.case_deadline, run.case.due_at), (Some(bj("2026-11-30 09:50")), Some(bj("2026-11-30 09:50"))));
    run.act(&handler(1), "2026-12-01 09:00", Return, with_note("不归我们"));
    // The new deadline is 4 working hours from the return; the due date stays.
    assert_eq!(run.case.case_deadline, Some(bj("2026-12-01 14:30")));
    assert_eq!((run.case.due_at, run.case.due_department_id), (Some(bj("2026-11-30 09:50")), Some(1)));
    run.act(&dispatcher(), "2026-12-01 09:10", Dispatch, to_department(3));
    assert_eq!((run.case.due_at, run.case.due_department_id), (Some(bj("2026-11-30 09:50")), Some(1)));
    run.act(&handler(3), "2026-12-01 10:00", Dispose, with_photos(1));
    run.act(&collector(), "2026-12-01 10:30", Check, checked(true));
    run.act(&leader(), "2026-12-01 10:40", Close, no_input());
    let t = monthly(&[&run]);
    let street = run.case.street_code.as_str().to_owned();
    let nov = in_month(&t, TallyKind::Street, &street, NOV);
    assert_eq!((nov["due"], nov["due_closed"], nov.get("due_closed_on_time")), (1, 1, None));
    let dec = in_month(&t, TallyKind::Street, &street, DEC);
    assert_eq!(dec.get("due"), None, "the later deadline does not make it due in December");
    // Closed before its new deadline (14:30) but after its due date: not on time.
    assert_eq!((dec["closed"], dec.get("closed_on_time")), (1, None));
    // November's street: closed 1 of 1 due, none on time; December has nothing due.
    let street_metric =
        |month, name| metric_in_month(&t, (SubjectKind::Region, TallyKind::Street), &street, month, name);
    assert_eq!(street_metric(NOV, "closure_rate"), (1.0, 1, 1));
    assert_eq!(street_metric(NOV, "on_time_closure_rate"), (0.0, 0, 1));
    assert_eq!(street_metric(DEC, "on_time_closure_rate"), (1.0, 0, 0));
    // Closed in December after two departments held it: wrongly dispatched, 1 of 1 closed.
    assert_eq!(street_metric(DEC, "wrong_dispatch_rate"), (1.0, 1, 1));
    assert_eq!(street_metric(NOV, "wrong_dispatch_rate"), (0.0, 0, 0));
    // The count bands against their defaults per 30 days: one acceptance of 1,500, one
    // dispatch a month of 1,500 for the dispatcher, of 100 for each department.
    let accepted =
        metric_in_month(&t, (SubjectKind::Acceptor, TallyKind::Acceptor), acceptor().user_id, NOV, "accepted_band");
    assert_eq!(accepted, (1.0, 1, 1500));
    let dispatched = metric_in_month(
        &t,
        (SubjectKind::Dispatcher, TallyKind::Dispatcher),
        dispatcher().user_id,
        DEC,
        "dispatched_band",
    );
    assert_eq!(dispatched, (1.0, 1, 1500));
    let department = metric_in_month(&t, (SubjectKind::Department, TallyKind::Department), 3, DEC, "dispatched_band");
    assert_eq!(department, (1.0, 1, 100));
    // HW (1) held it when the due date passed; SZ (3) got it overdue and is not charged.
    let hw = in_month(&t, TallyKind::Department, 1, NOV);
    assert_eq!((hw["due"], hw["due_closed"], hw.get("due_closed_on_time")), (1, 1, None));
    assert_eq!(in_month(&t, TallyKind::Department, 3, NOV), pairs(&[]));
    let sz = in_month(&t, TallyKind::Department, 3, DEC);
    assert_eq!((sz.get("due"), sz["closed"], sz.get("closed_on_time")), (None, 1, None));
    // The dispatcher: the November dispatch was returned (shown in November as `returned`);
    // accurate dispatch is the standard's (dispatched − reworked) / dispatched, and nothing
    // was reworked.
    let d = dispatcher().user_id;
    assert_eq!(
        in_month(&t, TallyKind::Dispatcher, d, NOV),
        pairs(&[("dispatched", 1), ("dispatched_on_time", 1), ("redispatched", 1)])
    );
    assert_eq!(in_month(&t, TallyKind::Dispatcher, d, DEC), pairs(&[("dispatched", 1), ("dispatched_on_time", 1)]));
    let rate = |month| {
        metric_in_month(&t, (SubjectKind::Dispatcher, TallyKind::Dispatcher), d, month, "accurate_dispatch_rate")
    };
    assert_eq!(rate(NOV), (1.0, 1, 1));
    assert_eq!(rate(DEC), (1.0, 1, 1));
    let returned = |month| metric_in_month(&t, (SubjectKind::Dispatcher, TallyKind::Dispatcher), d, month, "returned");
    assert_eq!((returned(NOV).1, returned(DEC).1), (1, 0));
}

/// A case dispatched and disposed in November, found not fixed at the check on 1 December,
/// disposed again and closed in December: the region counts the rework on the closing day; the
/// department is charged on the day of the disposal that failed (November: reworked 1 of 1
/// disposed; December's disposal passed) and the dispatcher on the day of the dispatch
/// (November: accurate dispatch 0 of 1). Handed down to a sub-unit after the failed check, the
/// rework stays with the department whose disposal failed.
#[test]
fn a_rework_is_charged_to_the_disposal_and_the_dispatch_it_judges() {
    use crate::evaluation::{SubjectKind, TallyKind};
    use Action::*;
    let loop_with = |hand_down: bool| {
        let mut run = Run::start(Source::Collector, &collector(), "2026-11-27 15:00");
        run.act(&acceptor(), "2026-11-27 15:05", Accept, no_input());
        run.act(&leader(), "2026-11-27 15:10", File, no_input());
        run.act(&dispatcher(), "2026-11-27 15:20", Dispatch, to_department(1));
        run.act(&handler(1), "2026-11-27 16:00", Dispose, with_photos(1));
        run.act(&collector(), "2026-12-01 09:00", Check, checked(false));
        let fixer = if hand_down {
            run.act(&handler(1), "2026-12-01 09:30", HandDown, to_department(2));
            handler(2)
        } else {
            handler(1)
        };
        run.act(&fixer, "2026-12-01 11:00", Dispose, with_photos(1));
        run.act(&collector(), "2026-12-01 11:30", Check, checked(true));
        run.act(&leader(), "2026-12-01 11:40", Close, no_input());
        run
    };
    for hand_down in [false, true] {
        let run = loop_with(hand_down);
        let t = monthly(&[&run]);
        let street = run.case.street_code.as_str().to_owned();
        assert_eq!(in_month(&t, TallyKind::Street, &street, DEC).get("reworked"), Some(&1));
        assert_eq!(in_month(&t, TallyKind::Street, &street, NOV).get("reworked"), None);
        let dept = |id: i64, month, name| {
            metric_in_month(&t, (SubjectKind::Department, TallyKind::Department), id, month, name)
        };
        assert_eq!(dept(1, NOV, "rework_rate"), (1.0, 1, 1), "November's disposal failed");
        let fixer = if hand_down { 2 } else { 1 };
        assert_eq!(dept(fixer, DEC, "rework_rate"), (0.0, 0, 1), "December's disposal passed");
        let d = dispatcher().user_id;
        let disp = |month, name| metric_in_month(&t, (SubjectKind::Dispatcher, TallyKind::Dispatcher), d, month, name);
        assert_eq!(disp(NOV, "accurate_dispatch_rate"), (0.0, 0, 1));
        assert_eq!(disp(NOV, "reworked").1, 1);
        assert_eq!(disp(DEC, "accurate_dispatch_rate").2, 0, "nothing dispatched in December");
    }
}

/// A case filed and dispatched on Monday 30 November morning (due 14:10 that day), extended by
/// two working days: approved before the due date, the extension moves it to Wednesday
/// 2 December (due in December, closed on time); approved after it, it does not (due in
/// November, closed late).
#[test]
fn an_extension_moves_the_due_date_only_before_it_passes() {
    use crate::evaluation::TallyKind;
    use Action::*;
    let filed = || {
        let mut run = Run::start(Source::Collector, &collector(), "2026-11-30 08:40");
        run.act(&acceptor(), "2026-11-30 08:50", Accept, no_input());
        run.act(&leader(), "2026-11-30 09:00", File, no_input());
        run.act(&dispatcher(), "2026-11-30 09:10", Dispatch, to_department(1));
        // Disposal by 11:10, check by 12:00 + 10 min after lunch, close 30 min later.
        assert_eq!(run.case.due_at, Some(bj("2026-11-30 14:10")));
        run.act(&handler(1), "2026-11-30 10:00", RequestExtension, extension(Limit::working_days(2)));
        run
    };
    let close = |run: &mut Run| {
        run.act(&handler(1), "2026-12-02 09:00", Dispose, with_photos(1));
        run.act(&collector(), "2026-12-02 09:30", Check, checked(true));
        run.act(&leader(), "2026-12-02 09:40", Close, no_input());
    };
    // Two working days (900 minutes) from the disposal deadline, Mon 11:10: 290 on Monday, 450
    // on Tuesday, 160 on Wednesday → Wed 11:10; check and close → 14:10.
    let mut early = filed();
    early.act(&leader(), "2026-11-30 10:30", ApproveExtension, no_input());
    assert_eq!(
        (early.case.case_deadline, early.case.due_at),
        (Some(bj("2026-12-02 14:10")), Some(bj("2026-12-02 14:10")))
    );
    close(&mut early);
    let t = monthly(&[&early]);
    assert_eq!(in_month(&t, TallyKind::Grid, GRID, NOV).get("due"), None);
    let dec = in_month(&t, TallyKind::Grid, GRID, DEC);
    assert_eq!((dec["due"], dec["due_closed"], dec["due_closed_on_time"], dec["closed_on_time"]), (1, 1, 1, 1));

    let mut late = filed();
    late.act(&leader(), "2026-11-30 15:00", ApproveExtension, no_input());
    assert_eq!(
        (late.case.case_deadline, late.case.due_at),
        (Some(bj("2026-12-02 14:10")), Some(bj("2026-11-30 14:10")))
    );
    close(&mut late);
    let t = monthly(&[&late]);
    let nov = in_month(&t, TallyKind::Grid, GRID, NOV);
    assert_eq!((nov["due"], nov["due_closed"], nov.get("due_closed_on_time")), (1, 1, None));
    let dec = in_month(&t, TallyKind::Grid, GRID, DEC);
    assert_eq!((dec.get("due"), dec["closed"], dec.get("closed_on_time")), (None, 1, None));
}

/// Suspended before its due date (Mon 30 November 14:10) the case is not due while suspended,
/// even when urged after the old due date, and resuming a week later moves the due date by the
/// suspended working time (five working days, to Mon 7 December 14:10). Suspended after its due
/// date the case stays due on 30 November, overdue, and resuming does not move it.
#[test]
fn suspension_before_and_after_the_due_date() {
    use crate::evaluation::{due_facts, TallyKind};
    use Action::*;
    let dispatched = || {
        let mut run = Run::start(Source::Collector, &collector(), "2026-11-30 08:40");
        run.act(&acceptor(), "2026-11-30 08:50", Accept, no_input());
        run.act(&leader(), "2026-11-30 09:00", File, no_input());
        run.act(&dispatcher(), "2026-11-30 09:10", Dispatch, to_department(1));
        assert_eq!(run.case.due_at, Some(bj("2026-11-30 14:10")));
        run
    };
    let mut before = dispatched();
    before.act(&handler(1), "2026-11-30 09:30", RequestSuspension, with_note("等材料"));
    before.act(&leader(), "2026-11-30 09:40", ApproveSuspension, no_input());
    assert!(due_facts(&before.case, 480).is_empty(), "not due while suspended");
    before.act(&leader(), "2026-12-01 10:00", Urge, no_input());
    assert!(due_facts(&before.case, 480).is_empty(), "the clock stopped before the due date");
    assert_eq!(before.case.due_at, Some(bj("2026-11-30 14:10")), "follows the deadline while suspended");
    before.act(&leader(), "2026-12-07 09:40", Resume, no_input());
    assert_eq!(
        (before.case.case_deadline, before.case.due_at),
        (Some(bj("2026-12-07 14:10")), Some(bj("2026-12-07 14:10")))
    );
    before.act(&handler(1), "2026-12-07 10:30", Dispose, with_photos(1));
    before.act(&collector(), "2026-12-07 11:00", Check, checked(true));
    before.act(&leader(), "2026-12-07 11:30", Close, no_input());
    let t = monthly(&[&before]);
    let nov = in_month(&t, TallyKind::Grid, GRID, NOV);
    assert_eq!((nov.get("due"), nov["suspended"]), (None, 1));
    let dec = in_month(&t, TallyKind::Grid, GRID, DEC);
    assert_eq!((dec["due"], dec["due_closed"], dec["due_closed_on_time"]), (1, 1, 1));

    let mut after = dispatched();
    after.act(&handler(1), "2026-11-30 15:00", RequestSuspension, with_note("等材料"));
    after.act(&leader(), "2026-11-30 15:10", ApproveSuspension, no_input());
    let due: Vec<_> = due_facts(&after.case, 480).into_iter().map(|c| (c.kind, c.counter, c.day)).collect();
    assert!(due.contains(&(TallyKind::Grid, crate::evaluation::Counter::Due, 20261130)), "{due:?}");
    assert!(due.contains(&(TallyKind::Department, crate::evaluation::Counter::Due, 20261130)), "{due:?}");
    after.act(&leader(), "2026-12-07 09:00", Resume, no_input());
    assert_eq!(after.case.due_at, Some(bj("2026-11-30 14:10")));
    assert!(after.case.case_deadline > after.case.due_at);
    after.act(&handler(1), "2026-12-07 09:30", Dispose, with_photos(1));
    after.act(&collector(), "2026-12-07 10:00", Check, checked(true));
    after.act(&leader(), "2026-12-07 10:30", Close, no_input());
    let t = monthly(&[&after]);
    let nov = in_month(&t, TallyKind::Grid, GRID, NOV);
    assert_eq!((nov["due"], nov["due_closed"], nov.get("due_closed_on_time")), (1, 1, None));
    let dec = in_month(&t, TallyKind::Grid, GRID, DEC);
    assert_eq!((dec.get("due"), dec["closed"], dec.get("closed_on_time")), (None, 1, None));
}

/// Reports of the last afternoon of November handled on 1 December: a collector's report
/// voided as a duplicate, one filed and then voided, one filed in December, and one reported in
/// December; a citizen report verified in November and filed in December. Each credit and
/// charge lands on the day of the event it judges, so no month's rate leaves 0–1.
#[test]
fn credits_and_charges_are_dated_by_the_event_they_judge() {
    use crate::evaluation::{SubjectKind, TallyKind};
    use Action::*;
    let mut dup = Run::start(Source::Collector, &collector(), "2026-11-30 16:00");
    dup.act(&acceptor(), "2026-12-01 08:40", Void, ActionInput { duplicate_of: Some(ID + 1), ..with_note("重复") });
    let mut voided = Run::start(Source::Collector, &collector(), "2026-11-30 16:30");
    voided.act(&acceptor(), "2026-11-30 16:35", Accept, no_input());
    voided.act(&leader(), "2026-11-30 16:40", File, no_input());
    voided.act(&leader(), "2026-12-01 09:00", Void, with_note("无效"));
    let mut filed = Run::start(Source::Collector, &collector(), "2026-11-30 17:00");
    filed.act(&acceptor(), "2026-12-01 08:40", Accept, no_input());
    filed.act(&leader(), "2026-12-01 08:50", File, no_input());
    let fresh = Run::start(Source::Collector, &collector(), "2026-12-01 09:00");
    let mut public = Run::start(Source::Citizen, &citizen(), "2026-11-30 17:10");
    public.act(&collector(), "2026-11-30 17:20", Verify, verified(true));
    public.act(&acceptor(), "2026-12-01 08:35", Accept, no_input());
    public.act(&leader(), "2026-12-01 08:45", File, no_input());
    let t = monthly(&[&dup, &voided, &filed, &fresh, &public]);

    // The collector: November's three reports were all valid (two filed, one a justified
    // duplicate), whenever that was decided; December's one is still open.
    let c = collector().user_id;
    assert_eq!(
        in_month(&t, TallyKind::Collector, c, NOV),
        pairs(&[
            ("reported", 3),
            ("report_filed", 2),
            ("report_justified_void", 1),
            ("verified", 1),
            ("verified_on_time", 1)
        ])
    );
    assert_eq!(in_month(&t, TallyKind::Collector, c, DEC), pairs(&[("reported", 1)]));
    let valid =
        |month| metric_in_month(&t, (SubjectKind::Collector, TallyKind::Collector), c, month, "valid_report_rate");
    assert_eq!(valid(NOV), (1.0, 3, 3));
    assert_eq!(valid(DEC), (0.0, 0, 1), "was 2 / 1 when credits were dated by their own events");

    // The leader: the November filing voided in December is November's inaccuracy.
    let l = leader().user_id;
    let accurate =
        |month| metric_in_month(&t, (SubjectKind::Leader, TallyKind::Leader), l, month, "accurate_filing_rate");
    assert_eq!(accurate(NOV), (0.0, 0, 1));
    assert_eq!(accurate(DEC), (1.0, 2, 2));

    // The grid: the citizen report counts as a public find with its filing, in December.
    let grid = |month| in_month(&t, TallyKind::Grid, GRID, month);
    assert_eq!((grid(NOV)["filed"], grid(NOV).get("citizen_confirmed")), (1, None));
    assert_eq!((grid(DEC)["filed"], grid(DEC)["citizen_confirmed"]), (2, 1));
    let citizen_rate =
        |month| metric_in_month(&t, (SubjectKind::Region, TallyKind::Grid), GRID, month, "citizen_report_rate");
    assert_eq!(citizen_rate(NOV), (0.0, 0, 1));
    assert_eq!(citizen_rate(DEC), (0.5, 1, 2));
}

/// One move of an evaluation walk: (which action of those that apply, a variant picking the
/// role and the input, minutes since the previous move).
type EvalMove = (usize, u32, i64);

type Sums = std::collections::BTreeMap<(crate::evaluation::TallyKind, String, crate::evaluation::Counter, i32), i64>;

fn any_eval_source() -> impl Strategy<Value = Source> {
    prop_oneof![Just(Source::Citizen), Just(Source::Collector), Just(Source::Hotline), Just(Source::Video)]
}

/// A random history of one case from Thu 29 October 16:00 (so it crosses the month end,
/// weekends and, with long gaps, several months), its contributions added to `sums`. Checks,
/// event by event, how each contribution is dated — its own event's day, the day of the event
/// it judges, or the due date — and that the due date stays put once it has passed.
fn evaluation_walk(source: Source, moves: &[EvalMove], sums: &mut Sums) -> Result<Run, TestCaseError> {
    use crate::evaluation::{contributions, day_key, Counter};
    let reporter = match source {
        Source::Citizen => citizen(),
        Source::Collector => collector(),
        _ => acceptor(),
    };
    let mut run = Run::start(source, &reporter, "2026-10-29 16:00");
    let mut now = bj("2026-10-29 16:00");
    for c in contributions(None, &run.case, &run.events[0], 480) {
        *sums.entry((c.kind, c.id, c.counter, c.day)).or_default() += c.delta;
    }
    // The due date and department once the due date has passed with the clock running.
    let mut fixed: Option<(Timestamp, Option<i64>)> = None;
    for &(pick, variant, gap) in moves {
        if run.case.state.is_final() {
            break;
        }
        now = plus_min(now, gap);
        // The actions ending a case early (reject, refuse, void) one time in eight, so most
        // histories get to dispatches, returns, extensions, suspensions and closing.
        let ends = |a: &Action| matches!(a, Action::Reject | Action::Refuse | Action::Void);
        let options: Vec<Action> = decided_actions()
            .filter(|a| a.from_states().contains(&run.case.state))
            .filter(|a| pick % 8 == 0 || !ends(a))
            .collect();
        if options.is_empty() {
            continue;
        }
        let action = options[pick / 8 % options.len()];
        let role = action.roles()[variant as usize % action.roles().len()];
        let input = match (action, variant) {
            (Action::Check, 1) => checked(false),
            (Action::Verify, 2) => verified(false),
            (Action::Dispatch, 1) => to_department(3),
            (Action::Void, 2) => ActionInput { duplicate_of: Some(ID + 1), ..with_note("重复") },
            _ => valid_input(action),
        };
        let actor = actor_with(role, run.case.department_id.unwrap_or(1));
        let Ok(e) = run.try_act_at(&actor, now, action, input) else { continue };
        let before = run.case.clone();
        let after = project(Some(before.clone()), ID, &e).expect("projects");
        let day = |t: Option<Timestamp>| t.map(|t| day_key(t, 480));
        for c in contributions(Some(&before), &after, &e, 480) {
            let expected = match c.counter {
                Counter::Due | Counter::DueClosed | Counter::DueClosedOnTime => {
                    prop_assert!(
                        Some(c.day) == day(before.due_at) || Some(c.day) == day(after.due_at),
                        "{:?} dated {} is on neither due date",
                        c,
                        c.day
                    );
                    c.day
                }
                Counter::ReportFiled | Counter::ReportJustifiedVoid => day_key(after.created_at, 480),
                Counter::VoidedAfterFiling => day_key(before.filed_at.expect("filed"), 480),
                Counter::Redispatched => day_key(before.dispatched_at.expect("dispatched"), 480),
                Counter::Reworked if c.kind == crate::evaluation::TallyKind::Department => {
                    let r = after.rework_of.expect("a failed check");
                    prop_assert_eq!(c.id.clone(), r.department_id.to_string());
                    day_key(r.disposed_at, 480)
                }
                Counter::Reworked if c.kind == crate::evaluation::TallyKind::Dispatcher => {
                    day_key(after.rework_of.and_then(|r| r.dispatched_at).expect("dispatched"), 480)
                }
                _ => day_key(e.at, 480),
            };
            prop_assert_eq!(c.day, expected, "{:?} after {:?}", c, e.change);
            *sums.entry((c.kind, c.id, c.counter, c.day)).or_default() += c.delta;
        }
        // Sticky: once an event found the due date passed, due date and department stay.
        if before.due_passed(e.at) && fixed.is_none() {
            fixed = Some((before.due_at.expect("due"), before.due_department_id));
        }
        match fixed {
            Some((due, dept)) if after.state != State::Voided => {
                prop_assert_eq!((after.due_at, after.due_department_id), (Some(due), dept))
            }
            Some(_) => prop_assert_eq!((after.due_at, after.due_department_id), (None, None)),
            None => {
                prop_assert_eq!(after.due_at, after.case_deadline, "follows the deadline until it passes");
                prop_assert_eq!(after.due_department_id, after.department_id);
            }
        }
        prop_assert_eq!(after.due_at.is_some(), after.case_deadline.is_some());
        run.case = after;
        run.events.push(e);
    }
    Ok(run)
}

/// `metrics` of every subject in `sums` over every period `[a, b]` whose ends are days with
/// counts (every distinct period there is): each rate's numerator lies within 0 and its
/// denominator, so the rate within 0–1.
fn check_rates_of_every_period(sums: &Sums) -> Result<(), TestCaseError> {
    use crate::evaluation::{
        metrics, AreaFacts, Context, Counter, EvalConfig, MetricKind, SubjectKind, Tally, TallyKind,
    };
    use std::collections::{BTreeMap, BTreeSet};
    let days: Vec<i32> = sums.keys().map(|k| k.3).collect::<BTreeSet<_>>().into_iter().collect();
    // Per subject, the running totals up to and including each day.
    let mut prefix: BTreeMap<(TallyKind, String), Vec<Vec<i64>>> = BTreeMap::new();
    for ((kind, id, counter, day), v) in sums {
        let series =
            prefix.entry((*kind, id.clone())).or_insert_with(|| vec![vec![0; Counter::ALL.len()]; days.len() + 1]);
        let at = days.binary_search(day).expect("a day with counts") + 1;
        series[at][counter.index()] += v;
    }
    for series in prefix.values_mut() {
        for i in 1..series.len() {
            let previous = series[i - 1].clone();
            for (sum, v) in series[i].iter_mut().zip(previous) {
                *sum += v;
            }
        }
    }
    let cfg = EvalConfig::default();
    let between = |series: &Vec<Vec<i64>>, a: usize, b: usize| {
        Tally(series[b + 1].iter().zip(&series[a]).map(|(hi, lo)| hi - lo).collect())
    };
    let grid_series = prefix.get(&(TallyKind::Grid, GRID.to_owned()));
    for ((kind, id), series) in &prefix {
        let (subject, level) = match kind {
            TallyKind::Grid => (SubjectKind::Region, Some(RegionLevel::Grid)),
            TallyKind::Community => (SubjectKind::Region, Some(RegionLevel::Community)),
            TallyKind::Street => (SubjectKind::Region, Some(RegionLevel::Street)),
            TallyKind::District => (SubjectKind::Region, Some(RegionLevel::District)),
            TallyKind::Department => (SubjectKind::Department, None),
            TallyKind::Collector => (SubjectKind::Collector, None),
            TallyKind::Acceptor => (SubjectKind::Acceptor, None),
            TallyKind::Leader => (SubjectKind::Leader, None),
            TallyKind::Dispatcher => (SubjectKind::Dispatcher, None),
        };
        for a in 0..days.len() {
            for b in a..days.len() {
                let t = between(series, a, b);
                for (counter, v) in Counter::ALL.iter().zip(&t.0) {
                    prop_assert!(*v >= 0, "{:?} {} {:?} is {} in {}..{}", kind, id, counter, v, days[a], days[b]);
                }
                // The collector covers the whole city; their area is the one grid of the cases.
                let area = grid_series.map_or(AreaFacts::default(), |g| {
                    let g = between(g, a, b);
                    AreaFacts { citizen_confirmed: g.get(Counter::CitizenConfirmed), filed: g.get(Counter::Filed) }
                });
                let ctx = Context { level, area, days: 30, ..Context::default() };
                for m in metrics(subject, &t, &cfg, &ctx).iter().filter(|m| m.kind == MetricKind::Rate) {
                    prop_assert!(
                        0 <= m.numerator && m.numerator <= m.denominator.max(0) && (0.0..=1.0).contains(&m.value),
                        "{:?} {}: {} = {} / {} in {}..{}",
                        kind,
                        id,
                        m.name,
                        m.numerator,
                        m.denominator,
                        days[a],
                        days[b]
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Over random histories (every action, random gaps crossing days, weekends and months),
    /// the evaluation's contributions add up to what the final case and its log say directly:
    /// the due-dated facts telescope to those of the final case (on its final due date), and
    /// each flow counter counts its events once — on the event's day, or on the day of the
    /// event it judges (`evaluation_walk` checks the dating event by event).
    #[test]
    fn evaluation_contributions_telescope(
        source in any_eval_source(),
        moves in proptest::collection::vec((0usize..512, 0u32..3, 1i64..4000), 1..40),
    ) {
        use crate::evaluation::{due_facts, Counter, TallyKind};
        use std::collections::BTreeMap;
        let mut sums = Sums::new();
        let run = evaluation_walk(source, &moves, &mut sums)?;
        sums.retain(|_, v| *v != 0);
        prop_assert!(sums.values().all(|v| *v > 0), "no counter ends negative: {:?}", sums);
        let due: BTreeMap<_, i64> = sums
            .iter()
            .filter(|((_, _, c, _), _)| matches!(c, Counter::Due | Counter::DueClosed | Counter::DueClosedOnTime))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let direct: BTreeMap<_, i64> =
            due_facts(&run.case, 480).into_iter().map(|c| ((c.kind, c.id, c.counter, c.day), c.delta)).collect();
        prop_assert_eq!(due, direct);
        let total = |kind: TallyKind, counter: Counter| -> i64 {
            sums.iter().filter(|((k, _, c, _), _)| *k == kind && *c == counter).map(|(_, v)| v).sum()
        };
        let events_of = |f: &dyn Fn(&Change) -> bool| run.events.iter().filter(|e| f(&e.change)).count() as i64;
        let filed = events_of(&|c| matches!(c, Change::File { .. }));
        let case = &run.case;
        prop_assert_eq!(total(TallyKind::Grid, Counter::Reported), 1);
        prop_assert_eq!(total(TallyKind::District, Counter::Filed), filed);
        prop_assert_eq!(total(TallyKind::Street, Counter::Disposed), events_of(&|c| matches!(c, Change::Dispose)));
        prop_assert_eq!(total(TallyKind::Department, Counter::Dispatched), events_of(&|c| matches!(c, Change::Dispatch { .. })));
        prop_assert_eq!(total(TallyKind::Department, Counter::Returned), events_of(&|c| matches!(c, Change::Return { .. })));
        prop_assert_eq!(total(TallyKind::Dispatcher, Counter::Redispatched), events_of(&|c| matches!(c, Change::Return { .. })));
        prop_assert_eq!(total(TallyKind::Collector, Counter::Checked), events_of(&|c| matches!(c, Change::Check { .. })));
        prop_assert_eq!(total(TallyKind::Grid, Counter::Closed), i64::from(case.state == State::Closed));
        let reworked = i64::from(case.state == State::Closed && case.rework_count > 0);
        prop_assert_eq!(total(TallyKind::Grid, Counter::Reworked), reworked);
        prop_assert_eq!(total(TallyKind::Department, Counter::Reworked), reworked);
        prop_assert_eq!(case.rework_of.is_some(), case.rework_count > 0, "the first failed check is kept");
        prop_assert_eq!(
            total(TallyKind::Dispatcher, Counter::Reworked),
            reworked * i64::from(case.rework_of.is_some_and(|r| r.dispatched_by.is_some()))
        );
        // The credits and charges judging one event: at most once each, as the log says.
        let public = case.source.needs_verification() && case.verified == Some(true);
        prop_assert_eq!(total(TallyKind::Grid, Counter::CitizenConfirmed), filed * i64::from(public));
        let own = i64::from(case.source == Source::Collector);
        prop_assert_eq!(total(TallyKind::Collector, Counter::Reported), own);
        prop_assert_eq!(total(TallyKind::Collector, Counter::ReportFiled), own * filed);
        let voided_after_filing = i64::from(case.state == State::Voided && filed > 0);
        prop_assert_eq!(total(TallyKind::Leader, Counter::VoidedAfterFiling), voided_after_filing);
        let justified = i64::from(case.state == State::Voided && filed == 0 && case.duplicate_of.is_some());
        prop_assert_eq!(total(TallyKind::Collector, Counter::ReportJustifiedVoid), own * justified);
        // On time means closed by the due date; a due date that had passed before the close
        // (it stayed) never is.
        if case.state == State::Closed {
            let on_time = total(TallyKind::Grid, Counter::DueClosedOnTime);
            prop_assert_eq!(on_time, i64::from(case.closed_at <= case.due_at));
            prop_assert_eq!(total(TallyKind::Grid, Counter::ClosedOnTime), on_time);
        }
    }

    /// Over several random histories counted together, every rate of every subject over every
    /// period — any two days with counts as its ends — lies within 0–1: each numerator is dated
    /// by the event its denominator counts.
    #[test]
    fn every_rate_of_any_period_is_within_0_and_1(
        histories in proptest::collection::vec(
            (any_eval_source(), proptest::collection::vec((0usize..512, 0u32..3, 1i64..4000), 1..30)),
            1..4,
        ),
    ) {
        let mut sums = Sums::new();
        for (source, moves) in &histories {
            evaluation_walk(*source, moves, &mut sums)?;
        }
        sums.retain(|_, v| *v != 0);
        check_rates_of_every_period(&sums)?;
    }
}
