//! One case through the whole loop over HTTP — report, verify, accept, file, dispatch, return,
//! dispatch again, extension, dispose, failed check (rework), dispose again, check, close — with
//! every deadline computed by hand across the 2026 National Day holiday, its make-up Saturday and
//! a Sunday.
//!
//! The working calendar: office hours 08:30–12:00 and 13:30–17:30 (450 working minutes a day).
//! 2026-09-30 is a Wednesday; Oct 1 (Thu) – Oct 7 (Wed) are the National Day holiday; Oct 8 (Thu)
//! and Oct 9 (Fri) are working days; Oct 10 (Sat) is a make-up working day (国庆节调休上班);
//! Oct 11 (Sun) is off; Oct 12 (Mon) on are plain weeks.
//! Stage limits (defaults): verify 1 working hour; accept, file, dispatch 30 working minutes;
//! check 1 working hour; close 30 working minutes. Exposed garbage (event 06010), ordinary,
//! area class A: disposal 2 working hours. The whole-case deadline set at filing is
//! dispatch + disposal + check + close = 30 + 120 + 60 + 30 = 240 working minutes; after a
//! dispatch it is the disposal deadline + check + close = + 90 working minutes.

use crate::helpers::{bj, garbage, long_tokens, spawn_app_with, tiny_jpeg, tiny_png, ts, Backend, TestApp};
use citygrid_core::case::{Case, Event};
use jiff::Timestamp;
use serde_json::{json, Value};

/// Assert the state and both deadlines of a case as the API returned it.
#[track_caller]
fn expect(case: &Value, state: &str, deadline: Option<&str>, case_deadline: Option<&str>) {
    assert_eq!(case["state"], state, "state of {case}");
    assert_eq!(ts(&case["deadline"]), deadline.map(bj), "deadline in state {state}");
    assert_eq!(ts(&case["case_deadline"]), case_deadline.map(bj), "case_deadline in state {state}");
}

async fn whole_loop(backend: Backend) {
    // Tokens live 12 hours by default; the loop spans two weeks of the manual clock.
    let app: TestApp = spawn_app_with(backend, long_tokens()).await;
    app.set_time("2026-09-30 15:55");
    let citizen = app.sign_in("citizen").await;
    let collector = app.sign_in("collector").await;
    let acceptor = app.sign_in("acceptor").await;
    let leader = app.sign_in("leader").await;
    let dispatcher = app.sign_in("dispatcher").await;
    let handler = app.sign_in("handler").await;
    let hw = app.department("HW").await;
    let before_photo = app.photo_id(&citizen, &tiny_png(7)).await;
    let after_photo = app.photo_id(&handler, &tiny_jpeg(None)).await;
    let after_photo_2 = app.photo_id(&handler, &tiny_png(200)).await;

    // 1. Wed 2026-09-30 16:00, a citizen reports → verifying.
    //    verify ≤ 1 working hour: 16:00 + 60 min = 17:00 the same day.
    app.set_time("2026-09-30 16:00");
    let mut body = garbage();
    body["photo_ids"] = json!([before_photo]);
    body["address"] = json!("七里沟街道 杏林路口");
    let c = app.report(&citizen, &body).await;
    expect(&c, "verifying", Some("2026-09-30 17:00"), None);
    assert_eq!(c["source"], "citizen");
    assert_eq!(c["number"], "2026093000001");
    assert_eq!(c["grid_code"], "320311002002001");
    assert_eq!(c["community_code"], "320311002002");
    assert_eq!(c["street_code"], "320311002");
    assert_eq!(c["district_code"], "320311");
    assert_eq!(c["kind"], "event");
    assert_eq!(c["class_code"], "06010");
    assert_eq!(c["urgency"], "ordinary");
    assert_eq!(c["department_id"], Value::Null);
    let id = c["id"].as_i64().expect("id");

    // 2. Wed 17:10 (10 minutes late), the collector confirms on site → reported.
    //    accept ≤ 30 working minutes: 17:10–17:30 is 20 min; Oct 1–7 are holidays; the other
    //    10 min are Thu Oct 8 08:30–08:40.
    app.set_time("2026-09-30 17:10");
    let c = app.step(&collector, id, "verify", json!({"confirmed": true, "note": "现场属实"})).await;
    expect(&c, "reported", Some("2026-10-08 08:40"), None);
    assert_eq!(c["verified"], true);

    // 3. Thu Oct 8 08:35, the acceptor accepts → accepted. file ≤ 30 min: 08:35 + 30 = 09:05.
    app.set_time("2026-10-08 08:35");
    let c = app.step(&acceptor, id, "accept", Value::Null).await;
    expect(&c, "accepted", Some("2026-10-08 09:05"), None);

    // 4. Fri Oct 9 16:00 (late), the leader files → filed. dispatch ≤ 30 min: 16:30.
    //    Case deadline: 240 working minutes from Fri 16:00 = 90 on Friday (16:00–17:30) + 150 on
    //    the make-up Saturday Oct 10 (08:30 + 150 min = 11:00).
    app.set_time("2026-10-09 16:00");
    let c = app.step(&leader, id, "file", json!({})).await;
    expect(&c, "filed", Some("2026-10-09 16:30"), Some("2026-10-10 11:00"));

    // 5. Fri 16:20, the dispatcher sends it to sanitation (HW) → dispatched.
    //    Disposal 2 working hours: 70 min on Friday (16:20–17:30) + 50 on Sat Oct 10 → 09:20.
    //    Case deadline: 09:20 + 60 (check) + 30 (close) = Sat 10:50.
    app.set_time("2026-10-09 16:20");
    let c = app.step(&dispatcher, id, "dispatch", json!({"department_id": hw})).await;
    expect(&c, "dispatched", Some("2026-10-10 09:20"), Some("2026-10-10 10:50"));
    assert_eq!(c["department_id"], hw);
    assert_eq!(c["disposal_limit"], json!({"amount": 2, "unit": "working_hours"}));

    // 6. Fri 16:45, the handler returns it (not ours) → filed, dispatch ≤ 30 min: 17:15.
    //    Case deadline: 240 min from 16:45 = 45 on Friday + 195 on Saturday → 08:30 + 195 = 11:45.
    app.set_time("2026-10-09 16:45");
    let c = app.step(&handler, id, "return", json!({"note": "该点位属园林绿地范围"})).await;
    expect(&c, "filed", Some("2026-10-09 17:15"), Some("2026-10-10 11:45"));
    assert_eq!(c["department_id"], Value::Null);

    // 7. Sat Oct 10 17:00 (the make-up working day, late), dispatched to HW again.
    //    Disposal 2 h: 30 min on Saturday (17:00–17:30), Sunday Oct 11 is off, 90 min on Mon
    //    Oct 12 → 10:00. Case deadline 10:00 + 90 = 11:30.
    app.set_time("2026-10-10 17:00");
    let c = app.step(&dispatcher, id, "dispatch", json!({"department_id": hw})).await;
    expect(&c, "dispatched", Some("2026-10-12 10:00"), Some("2026-10-12 11:30"));

    // 8. Mon Oct 12 09:00, the handler asks for 1 more working day: nothing moves yet.
    app.set_time("2026-10-12 09:00");
    let c = app
        .step(
            &handler,
            id,
            "request_extension",
            json!({"limit": {"amount": 1, "unit": "working_days"}, "note": "需调派清运车辆"}),
        )
        .await;
    expect(&c, "dispatched", Some("2026-10-12 10:00"), Some("2026-10-12 11:30"));
    assert_eq!(c["pending"]["kind"], "extension");

    // 9. Mon 09:30, the dispatcher approves: the disposal deadline moves by 450 working minutes
    //    from Mon 10:00: 120 (10:00–12:00) + 240 (13:30–17:30) + 90 on Tue Oct 13 → 10:00.
    //    Case deadline 10:00 + 90 = Tue 11:30.
    app.set_time("2026-10-12 09:30");
    let c = app.step(&dispatcher, id, "approve_extension", Value::Null).await;
    expect(&c, "dispatched", Some("2026-10-13 10:00"), Some("2026-10-13 11:30"));
    assert_eq!(c["pending"], Value::Null);

    // 10. Tue Oct 13 09:00, the handler reports it fixed with an after-photo → disposed.
    //     check ≤ 1 working hour: 10:00. The case deadline stays.
    app.set_time("2026-10-13 09:00");
    let c = app.step(&handler, id, "dispose", json!({"note": "已清运", "photo_ids": [after_photo]})).await;
    expect(&c, "disposed", Some("2026-10-13 10:00"), Some("2026-10-13 11:30"));

    // 11. Tue 11:30 (late), the collector's check fails → rework: dispatched to HW again with a
    //     fresh 2 working hours: 30 min (11:30–12:00) + 90 from 13:30 → 15:00; case deadline
    //     15:00 + 90 = 16:30.
    app.set_time("2026-10-13 11:30");
    let c = app.step(&collector, id, "check", json!({"passed": false, "note": "仍有残留垃圾"})).await;
    expect(&c, "dispatched", Some("2026-10-13 15:00"), Some("2026-10-13 16:30"));
    assert_eq!(c["department_id"], hw);

    // 12. Tue 16:00 (late), disposed again → check ≤ 1 h: 17:00. Case deadline stays 16:30.
    app.set_time("2026-10-13 16:00");
    let c = app.step(&handler, id, "dispose", json!({"note": "已彻底清理", "photo_ids": [after_photo_2]})).await;
    expect(&c, "disposed", Some("2026-10-13 17:00"), Some("2026-10-13 16:30"));

    // 13. Tue 17:20 (late), the check passes → checked. close ≤ 30 min: 10 min (17:20–17:30) +
    //     20 min on Wed Oct 14 → 08:50.
    app.set_time("2026-10-13 17:20");
    let c = app.step(&collector, id, "check", json!({"passed": true})).await;
    expect(&c, "checked", Some("2026-10-14 08:50"), Some("2026-10-13 16:30"));

    // 14. Wed Oct 14 08:45, the leader closes → closed: no stage deadline any more.
    app.set_time("2026-10-14 08:45");
    let c = app.step(&leader, id, "close", Value::Null).await;
    expect(&c, "closed", None, Some("2026-10-13 16:30"));
    assert_eq!(ts(&c["closed_at"]), Some(bj("2026-10-14 08:45")));
    assert_eq!(c["department_id"], hw);
    assert_eq!(c["dispatch_count"], 2);
    assert_eq!(c["return_count"], 1);
    assert_eq!(c["rework_count"], 1);
    assert_eq!(c["extension_count"], 1);
    assert_eq!(c["overdue"], false);

    // The log: one event per step, in order, with its states, actor and lateness.
    let full = app.get(&leader, &format!("/api/v1/cases/{id}")).await.ok(200);
    let events: Vec<Event> = serde_json::from_value(full["events"].clone()).expect("events");
    // (action, from state, to state, actor, local time, late)
    type Row<'a> = (&'a str, Option<&'a str>, &'a str, &'a str, &'a str, bool);
    let expected: [Row; 14] = [
        ("report", None, "verifying", "citizen", "2026-09-30 16:00", false),
        ("verify", Some("verifying"), "reported", "collector", "2026-09-30 17:10", true),
        ("accept", Some("reported"), "accepted", "acceptor", "2026-10-08 08:35", false),
        ("file", Some("accepted"), "filed", "leader", "2026-10-09 16:00", true),
        ("dispatch", Some("filed"), "dispatched", "dispatcher", "2026-10-09 16:20", false),
        ("return", Some("dispatched"), "filed", "handler", "2026-10-09 16:45", false),
        ("dispatch", Some("filed"), "dispatched", "dispatcher", "2026-10-10 17:00", true),
        ("request_extension", Some("dispatched"), "dispatched", "handler", "2026-10-12 09:00", false),
        ("approve_extension", Some("dispatched"), "dispatched", "dispatcher", "2026-10-12 09:30", false),
        ("dispose", Some("dispatched"), "disposed", "handler", "2026-10-13 09:00", false),
        ("check", Some("disposed"), "dispatched", "collector", "2026-10-13 11:30", true),
        ("dispose", Some("dispatched"), "disposed", "handler", "2026-10-13 16:00", true),
        ("check", Some("disposed"), "checked", "collector", "2026-10-13 17:20", true),
        ("close", Some("checked"), "closed", "leader", "2026-10-14 08:45", false),
    ];
    assert_eq!(events.len(), expected.len(), "one event per step");
    let raw = full["events"].as_array().expect("events array");
    for (i, (e, (action, from, to, actor, at, late))) in events.iter().zip(expected).enumerate() {
        assert_eq!(e.seq as usize, i + 1);
        assert_eq!(e.change.action().as_str(), action, "event {}", i + 1);
        assert_eq!(raw[i]["action"], action);
        assert_eq!(e.from_state.map(|s| s.as_str()), from, "from_state of event {} ({action})", i + 1);
        assert_eq!(e.to_state.as_str(), to, "to_state of event {} ({action})", i + 1);
        assert_eq!(e.actor_name, actor, "actor of event {}", i + 1);
        assert_eq!(e.at, bj(at), "time of event {}", i + 1);
        assert_eq!(e.late, late, "late flag of event {} ({action})", i + 1);
    }
    assert_eq!(events[0].photo_ids, vec![before_photo]);
    assert_eq!(events[9].photo_ids, vec![after_photo]);
    assert_eq!(events[5].note.as_deref(), Some("该点位属园林绿地范围"));

    // Replaying the log gives the stored case, bit for bit (through the API and in the store).
    let from_api: Case = serde_json::from_value(full.clone()).expect("case");
    let replayed = citygrid_core::case::replay(id, &events).expect("valid history");
    assert_eq!(replayed, from_api);
    let stored = app.store.get_case(id).await.expect("get").expect("case");
    assert_eq!(replayed, stored);
    assert_eq!(app.store.case_events(id).await.expect("events"), events);
    // Stage start times are exact too (they drive the traffic light).
    assert_eq!(stored.stage_started_at, bj("2026-10-14 08:45"));
    assert_eq!(stored.created_at, "2026-09-30T08:00:00Z".parse::<Timestamp>().expect("ts"));
    assert_eq!(app.count("case_events").await, 14);
    assert_eq!(app.count("cases").await, 1);
}

/// Suspension (挂账) stops the clock: on resumption both deadlines move by the working time the
/// case spent suspended.
async fn suspension_stops_the_clock(backend: Backend) {
    let app = spawn_app_with(backend, long_tokens()).await;
    let collector = app.sign_in("collector").await;
    let acceptor = app.sign_in("acceptor").await;
    let leader = app.sign_in("leader").await;
    let dispatcher = app.sign_in("dispatcher").await;
    let handler = app.sign_in("handler").await;
    let hw = app.department("HW").await;
    // Mon 2026-09-28 08:50: reported by a collector (accept due 09:20), accepted and filed at
    // 08:55 (dispatch due 09:25), dispatched at 09:00: disposal due 11:00, case due 12:00 + 30
    // → 13:30 is not office time, so 30 min after 12:00 = 14:00.
    app.set_time("2026-09-28 08:50");
    let c = app.report(&collector, &garbage()).await;
    expect(&c, "reported", Some("2026-09-28 09:20"), None);
    let id = c["id"].as_i64().unwrap();
    app.set_time("2026-09-28 08:55");
    app.step(&acceptor, id, "accept", Value::Null).await;
    let c = app.step(&leader, id, "file", Value::Null).await;
    // 08:55 + 240 working minutes: 185 to 12:00, 55 from 13:30 → 14:25.
    expect(&c, "filed", Some("2026-09-28 09:25"), Some("2026-09-28 14:25"));
    app.set_time("2026-09-28 09:00");
    let c = app.step(&dispatcher, id, "dispatch", json!({"department_id": hw})).await;
    // 09:00 + 120 = 11:00; + 60 = 12:00; + 30 → 14:00 (lunch 12:00–13:30 does not count).
    expect(&c, "dispatched", Some("2026-09-28 11:00"), Some("2026-09-28 14:00"));
    app.set_time("2026-09-28 09:30");
    let c = app.step(&handler, id, "request_suspension", json!({"note": "需业主单位配合"})).await;
    assert_eq!(c["pending"]["kind"], "suspension");
    app.set_time("2026-09-28 10:00");
    let c = app.step(&dispatcher, id, "approve_suspension", Value::Null).await;
    expect(&c, "suspended", Some("2026-09-28 11:00"), Some("2026-09-28 14:00"));
    assert_eq!(ts(&c["suspended_at"]), Some(bj("2026-09-28 10:00")));
    // A suspended case is never overdue, however long it waits.
    app.set_time("2026-09-29 10:00");
    let got = app.get(&dispatcher, &format!("/api/v1/cases/{id}")).await.ok(200);
    assert_eq!(got["overdue"], false);
    let overdue = app.get(&dispatcher, "/api/v1/cases?overdue=true").await.ok(200);
    assert_eq!(overdue["items"], json!([]));
    // The handler cannot dispose while suspended.
    let photo = app.photo_id(&handler, &tiny_png(1)).await;
    app.act(&handler, id, "dispose", json!({"photo_ids": [photo]})).await.problem(409, "wrong_state", None);
    // Resumed Tue 10:00: suspended for Mon 10:00–12:00 (120) + 13:30–17:30 (240) + Tue
    // 08:30–10:00 (90) = 450 working minutes. Disposal due Mon 11:00 + 450 = Tue 11:00; case due
    // Mon 14:00 + 450: 210 to 17:30, 240 on Tuesday → 08:30 + 240 = 12:00 + 30 → 14:00.
    let c = app.step(&dispatcher, id, "resume", Value::Null).await;
    expect(&c, "dispatched", Some("2026-09-29 11:00"), Some("2026-09-29 14:00"));
    assert_eq!(c["suspended_at"], Value::Null);
    app.assert_replays().await;
}

/// Case numbers are the local (Beijing) date and the day's sequence.
async fn case_numbers_follow_the_local_day(backend: Backend) {
    let app = spawn_app_with(backend, long_tokens()).await;
    let collector = app.sign_in("collector").await;
    // 2026-10-01 00:30 in Beijing is still 2026-09-30 in UTC.
    app.set_time("2026-10-01 00:30");
    assert_eq!(app.report(&collector, &garbage()).await["number"], "2026100100001");
    assert_eq!(app.report(&collector, &garbage()).await["number"], "2026100100002");
    app.set_time("2026-10-01 23:59");
    assert_eq!(app.report(&collector, &garbage()).await["number"], "2026100100003");
    app.set_time("2026-10-02 00:00");
    assert_eq!(app.report(&collector, &garbage()).await["number"], "2026100200001");
}

backend_tests!(whole_loop, suspension_stops_the_clock, case_numbers_follow_the_local_day);
