//! The comprehensive evaluation through the API: live figures after each step of real loops,
//! drill-down, periods, configuration, and the refusals.

use crate::helpers::{bj, citizen, garbage, import_areas, long_tokens, spawn_app_with, tiny_jpeg, Backend, TestApp};
use citygrid_server::{AppState, Clock};
use serde_json::{json, Value};

backend_tests!(
    evaluation_follows_the_cases_live,
    evaluation_dates_by_what_it_judges_across_a_month_end,
    evaluation_is_refused_outside_scope_and_validated,
    a_running_period_is_due_up_to_today,
    an_old_database_is_upgraded_once_at_start,
    a_rework_is_charged_where_the_failed_disposal_was,
);

/// 七里沟街道 of 泉山区, where QUANSHAN lies.
const STREET: &str = "320311002";

async fn spawn(backend: Backend) -> TestApp {
    spawn_app_with(backend, long_tokens()).await
}

fn row<'a>(page: &'a Value, id: &str) -> &'a Value {
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject_id"] == id)
        .unwrap_or_else(|| panic!("no row {id}: {page}"))
}

fn metric(row: &Value, name: &str) -> (f64, i64, i64) {
    let m = &row["metrics"][name];
    (m["value"].as_f64().unwrap(), m["numerator"].as_i64().unwrap(), m["denominator"].as_i64().unwrap())
}

/// The id of the user a token belongs to, as the evaluation's `subject_id`.
async fn user_id(app: &TestApp, token: &str) -> String {
    app.get(token, "/api/v1/auth/me").await.ok(200)["id"].as_i64().unwrap().to_string()
}

/// The case ids of a drill-down page (`/api/v1/evaluations/cases?{query}`).
async fn cases_behind(app: &TestApp, token: &str, query: &str) -> Vec<i64> {
    let page = app.get(token, &format!("/api/v1/evaluations/cases?{query}")).await.ok(200);
    page["items"].as_array().unwrap().iter().map(|i| i["case_id"].as_i64().unwrap()).collect()
}

/// One metric of one subject (`/api/v1/evaluations?subject={subject}&period={period}`).
async fn figure(app: &TestApp, token: &str, subject: &str, id: &str, name: &str, period: &str) -> (f64, i64, i64) {
    let page = app.get(token, &format!("/api/v1/evaluations?subject={subject}&period={period}")).await.ok(200);
    metric(row(&page, id), name)
}

/// A collector's report through the whole loop on Monday morning, on time everywhere, and a
/// citizen's report of the same spot verified and filed: the figures after each step, the
/// drill-down, other periods, the collector's missed report, and a rebuild that changes nothing.
async fn evaluation_follows_the_cases_live(backend: Backend) {
    let app = spawn(backend).await;
    let collector = app.sign_in("collector").await;
    let acceptor = app.sign_in("acceptor").await;
    let leader = app.sign_in("leader").await;
    let dispatcher = app.sign_in("dispatcher").await;
    let handler = app.sign_in("handler").await;
    let evaluator = app.sign_in("evaluator").await;
    let hw = app.department("HW").await;
    let streets = "/api/v1/evaluations?subject=region&level=street&period=2026-09";
    // The collector `collector` covers the whole demo city (collector areas, owner = username).
    let admin = app.sign_in("admin").await;
    import_areas(&app, &admin).await;

    app.set_time("2026-09-28 09:00");
    let id = app.report(&collector, &garbage()).await["id"].as_i64().unwrap();
    let page = app.get(&evaluator, streets).await.ok(200);
    assert_eq!(
        (page["from"].as_str(), page["to"].as_str(), page["days"].as_i64()),
        (Some("2026-09-01"), Some("2026-09-30"), Some(30))
    );
    let s = row(&page, STREET);
    assert_eq!(s["name"], "七里沟街道");
    assert_eq!(metric(s, "reported"), (1.0, 1, 1), "counted with the report's commit");
    assert_eq!(metric(s, "filed"), (0.0, 0, 1));
    assert_eq!(page["total"].as_u64().unwrap() as usize, page["rows"].as_array().unwrap().len());

    // Every answer asked once: from here on they are kept and re-scored where counts change.
    futures_all(&app, &evaluator).await;
    app.set_time("2026-09-28 09:10");
    app.step(&acceptor, id, "accept", Value::Null).await;
    app.set_time("2026-09-28 09:20");
    app.step(&leader, id, "file", Value::Null).await;
    app.set_time("2026-09-28 09:30");
    app.step(&dispatcher, id, "dispatch", json!({"department_id": hw})).await;
    app.set_time("2026-09-28 10:30");
    let photo = app.photo_id(&handler, &tiny_jpeg(None)).await;
    app.step(&handler, id, "dispose", json!({"photo_ids": [photo]})).await;
    app.set_time("2026-09-28 10:50");
    app.step(&collector, id, "check", json!({"passed": true})).await;
    app.set_time("2026-09-28 11:00");
    app.step(&leader, id, "close", Value::Null).await;

    assert_kept_is_fresh(&app, &evaluator).await;

    // A citizen's report of the same spot, verified on site and filed.
    let c1 = citizen(&app, "13900000001").await.0;
    app.set_time("2026-09-28 14:00");
    let id2 = app.report(&c1, &garbage()).await["id"].as_i64().unwrap();
    app.set_time("2026-09-28 14:20");
    app.step(&collector, id2, "verify", json!({"confirmed": true})).await;
    app.set_time("2026-09-28 14:30");
    app.step(&acceptor, id2, "accept", Value::Null).await;
    app.set_time("2026-09-28 14:40");
    app.step(&leader, id2, "file", Value::Null).await;

    let page = app.get(&evaluator, streets).await.ok(200);
    let s = row(&page, STREET);
    assert_eq!(metric(s, "reported"), (2.0, 2, 1));
    assert_eq!(metric(s, "filed"), (2.0, 2, 1));
    assert_eq!(metric(s, "citizen_report_rate"), (0.5, 1, 2));
    assert_eq!(metric(s, "closed"), (1.0, 1, 1));
    // Accepted 10 minutes after the first report, 30 after the second (it waited for the
    // verification): 20 minutes on average.
    assert_eq!(metric(s, "avg_accept_minutes"), (20.0, 40, 2));
    assert_eq!(metric(s, "avg_dispose_minutes"), (60.0, 60, 1));
    assert!(s["score"].as_f64().unwrap() > 0.0);
    assert!(["A", "B", "C", "D", "E"].contains(&s["grade"].as_str().unwrap()));
    assert_eq!(s["metrics"]["closure_rate"]["weight"], 35);
    assert_eq!(s["metrics"]["closed"].get("weight"), None, "plain counts are not scored");
    // Every other street of the city has a row too, with nothing filed.
    assert_eq!(page["rows"].as_array().unwrap().len(), page["total"].as_u64().unwrap() as usize);
    assert!(page["total"].as_u64().unwrap() > 1);
    // Active subjects first (the only street with cases ranks first however it scores: the
    // idle ones have nothing that could fail), each group best first.
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(
        (rows[0]["subject_id"].as_str(), rows[0]["rank"].as_u64(), rows[0]["active"].as_bool()),
        (Some(STREET), Some(1), Some(true))
    );
    assert!(rows[1..].iter().all(|r| r["active"] == false));
    let idle: Vec<f64> = rows[1..].iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(idle.windows(2).all(|w| w[0] >= w[1]));

    // The department and the posts.
    let depts = app.get(&evaluator, "/api/v1/evaluations?subject=department&period=2026-09").await.ok(200);
    let d = row(&depts, &hw.to_string());
    assert_eq!(metric(d, "to_dispose"), (1.0, 1, 1));
    assert_eq!(metric(d, "on_time_disposal_rate"), (1.0, 1, 1));
    assert_eq!(metric(d, "closed"), (1.0, 1, 1));
    let leaders = app.get(&evaluator, "/api/v1/evaluations?subject=leader&period=2026-09").await.ok(200);
    let l = row(&leaders, &user_id(&app, &leader).await);
    assert_eq!(metric(l, "on_time_filing_rate"), (1.0, 2, 2));
    assert_eq!(metric(l, "accurate_filing_rate"), (1.0, 2, 2));
    assert_eq!(metric(l, "on_time_closing_rate"), (1.0, 1, 1));
    assert_eq!(l["score"], 100.0);
    assert_eq!(l["grade"], "A");
    let collectors = app.get(&evaluator, "/api/v1/evaluations?subject=collector&period=2026-09").await.ok(200);
    let c = row(&collectors, &user_id(&app, &collector).await);
    assert_eq!(metric(c, "valid_report_rate"), (1.0, 1, 1));
    assert_eq!(metric(c, "on_time_verification_rate"), (1.0, 1, 1));
    assert_eq!(metric(c, "on_time_check_rate"), (1.0, 1, 1));
    // The citizen found what the collector of that area did not: a missed report for them.
    let collector_id = user_id(&app, &collector).await;
    assert_eq!(metric(row(&collectors, &collector_id), "missed_report_rate"), (0.5, 1, 2));
    let others = collectors["rows"].as_array().unwrap().iter().filter(|r| r["subject_id"] != collector_id.as_str());
    assert!(others.into_iter().all(|r| metric(r, "missed_report_rate").2 == 0), "nobody else covers that grid");
    // The missed report behind the rate: the citizen's case in the collector's area.
    assert_eq!(
        row(&collectors, &collector_id)["metrics"]["missed_report_rate"]["counters"],
        json!(["citizen_confirmed"])
    );
    let missed = format!("subject=collector&id={collector_id}&counter=citizen_confirmed&period=2026-09");
    assert_eq!(cases_behind(&app, &evaluator, &missed).await, vec![id2]);
    let acceptors = app.get(&evaluator, "/api/v1/evaluations?subject=acceptor&period=2026-09").await.ok(200);
    assert_eq!(metric(row(&acceptors, &user_id(&app, &acceptor).await), "on_time_acceptance_rate"), (1.0, 2, 2));
    let dispatchers = app.get(&evaluator, "/api/v1/evaluations?subject=dispatcher&period=2026-09").await.ok(200);
    assert_eq!(metric(row(&dispatchers, &user_id(&app, &dispatcher).await), "accurate_dispatch_rate"), (1.0, 1, 1));

    // Drill down from the street's filings to the two cases.
    let behind = app
        .get(
            &evaluator,
            &format!("/api/v1/evaluations/cases?subject=region&level=street&id={STREET}&counter=filed&period=2026-09"),
        )
        .await
        .ok(200);
    let ids: Vec<i64> = behind["items"].as_array().unwrap().iter().map(|i| i["case_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![id, id2]);
    assert_eq!(behind["next"], Value::Null);
    let page1 = app
        .get(&evaluator, &format!("/api/v1/evaluations/cases?subject=region&level=street&id={STREET}&counter=filed&period=2026-09&limit=1"))
        .await
        .ok(200);
    assert_eq!(page1["items"].as_array().unwrap().len(), 1);
    let next = page1["next"].as_i64().unwrap();
    let page2 = app
        .get(&evaluator, &format!("/api/v1/evaluations/cases?subject=region&level=street&id={STREET}&counter=filed&period=2026-09&after={next}"))
        .await
        .ok(200);
    assert_eq!(page2["items"][0]["case_id"], id2);

    // Other periods: the day, the ISO week, a custom range that misses it, the quarter, the year.
    for (q, filed) in [
        ("period=2026-09-28", 2),
        ("period=2026-W40", 2),
        ("from=2026-09-29&to=2026-10-05", 0),
        ("period=2026-Q3", 2),
        ("period=2026", 2),
        ("from=2026-09-20&to=2026-10-10", 2),
    ] {
        let p = app.get(&evaluator, &format!("/api/v1/evaluations?subject=region&level=district&{q}")).await.ok(200);
        assert_eq!(metric(row(&p, "320311"), "filed").1, filed, "{q}");
        let codes: Vec<&str> =
            p["rows"].as_array().unwrap().iter().map(|r| r["subject_id"].as_str().unwrap()).collect();
        assert!(codes.iter().all(|c| c.len() == 6 && *c != "320300"), "districts only, not the city: {codes:?}");
    }
    // Grid level under the street, sorted by code, paged.
    let grids = app
        .get(
            &evaluator,
            &format!(
                "/api/v1/evaluations?subject=region&level=grid&parent={STREET}&period=2026-09&sort=subject_id&limit=5"
            ),
        )
        .await
        .ok(200);
    let rows = grids["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["subject_id"].as_str().unwrap().starts_with(STREET)));
    assert!(rows.windows(2).all(|w| w[0]["subject_id"].as_str() < w[1]["subject_id"].as_str()));

    assert_kept_is_fresh(&app, &evaluator).await;
    // A new collector is listed at the next ask (with nothing to do yet).
    let created = json!({"username": "collector9", "password": "pw-9", "role": "collector", "scope": {"kind": "region", "code": "320311"}});
    app.post_json(&admin, "/api/v1/users", &created).await.ok(201);
    let page = app.get(&evaluator, "/api/v1/evaluations?subject=collector&period=2026-09").await.ok(200);
    let new = page["rows"].as_array().unwrap().iter().find(|r| r["name"] == "collector9").expect("the new collector");
    assert_eq!(new["active"], false);

    // A subject counted but listed nowhere (a leader account since removed) shows by its id,
    // and leaves when its counts go back to nothing — in kept answers as in fresh ones.
    let leaders = || async {
        let page = app.get(&evaluator, "/api/v1/evaluations?subject=leader&period=2026-09").await.ok(200);
        let gone = page["rows"].as_array().unwrap().iter().find(|r| r["subject_id"] == "990001").cloned();
        gone.map(|r| (r["name"].as_str().unwrap().to_owned(), r["active"].as_bool().unwrap()))
    };
    assert_eq!(leaders().await, None);
    app.raw_execute("INSERT INTO eval_counts (kind, period, subject, c_filed) VALUES ('leader', 202609, '990001', 3)")
        .await;
    assert_eq!(leaders().await, Some(("990001".to_owned(), true)));
    assert_kept_is_fresh(&app, &evaluator).await;
    app.raw_execute("UPDATE eval_counts SET c_filed = 0 WHERE subject = '990001'").await;
    assert_eq!(leaders().await, None, "back to nothing: gone");
    app.raw_execute("UPDATE eval_counts SET c_filed = 2 WHERE subject = '990001'").await;
    assert_eq!(leaders().await, Some(("990001".to_owned(), true)));
    // Deleted by hand: the generation moves, the kept answer is compared row by row.
    app.raw_execute("DELETE FROM eval_counts WHERE subject = '990001'").await;
    if app.store.backend() == "sqlite" {
        // (SQLite has no delete trigger: the README's hand step.)
        app.raw_execute("UPDATE eval_clock SET generation = generation + 1").await;
    }
    assert_eq!(leaders().await, None);
    assert_kept_is_fresh(&app, &evaluator).await;

    // A full recomputation from the log gives the same figures.
    let before: Vec<Value> = futures_all(&app, &evaluator).await;
    app.store.rebuild_evaluation(&|_| {}).await.unwrap();
    assert_eq!(futures_all(&app, &evaluator).await, before);
}

/// The centre's staff and the department of the month-end loops, signed in on their first day
/// (tokens last 60 days from there).
struct Crew {
    collector: String,
    acceptor: String,
    leader: String,
    dispatcher: String,
    handler: String,
    hw: i64,
}

/// A collector's report of Friday 27 November 15:00, accepted, filed and dispatched to HW by
/// 15:20: the crew, the case id and the case as dispatched.
async fn dispatched_on_friday(app: &TestApp) -> (Crew, i64, Value) {
    app.set_time("2026-11-27 15:00");
    let crew = Crew {
        collector: app.sign_in("collector").await,
        acceptor: app.sign_in("acceptor").await,
        leader: app.sign_in("leader").await,
        dispatcher: app.sign_in("dispatcher").await,
        handler: app.sign_in("handler").await,
        hw: app.department("HW").await,
    };
    let id = app.report(&crew.collector, &garbage()).await["id"].as_i64().unwrap();
    app.set_time("2026-11-27 15:05");
    app.step(&crew.acceptor, id, "accept", Value::Null).await;
    app.set_time("2026-11-27 15:10");
    app.step(&crew.leader, id, "file", Value::Null).await;
    app.set_time("2026-11-27 15:20");
    let case = app.step(&crew.dispatcher, id, "dispatch", json!({"department_id": crew.hw})).await;
    (crew, id, case)
}

/// The loop of [`evaluation_dates_by_what_it_judges_across_a_month_end`]; returns the ids of
/// the returned case and of the second report. Leaves the clock on 1 December 11:00.
async fn across_the_month_end(app: &TestApp) -> (i64, i64) {
    let (crew, id, case) = dispatched_on_friday(app).await;
    let Crew { collector, acceptor, leader, dispatcher, handler, hw } = &crew;
    // A few working hours after a Friday afternoon dispatch: Monday morning (UTC in the JSON).
    let due = case["due_at"].as_str().unwrap().to_owned();
    assert!(due.starts_with("2026-11-30T0"), "{case}");
    app.set_time("2026-11-30 16:50");
    let second = app.report(collector, &garbage()).await["id"].as_i64().unwrap();
    app.set_time("2026-12-01 09:00");
    let case = app.step(handler, id, "return", json!({"note": "不属于本单位"})).await;
    assert_eq!(case["due_at"].as_str(), Some(due.as_str()), "the due date stays after a late return");
    assert!(case["case_deadline"].as_str().unwrap().starts_with("2026-12-01"), "{case}");
    app.set_time("2026-12-01 09:10");
    app.step(dispatcher, id, "dispatch", json!({"department_id": *hw})).await;
    app.set_time("2026-12-01 10:00");
    let photo = app.photo_id(handler, &tiny_jpeg(None)).await;
    app.step(handler, id, "dispose", json!({"photo_ids": [photo]})).await;
    app.set_time("2026-12-01 10:30");
    app.step(collector, id, "check", json!({"passed": true})).await;
    app.set_time("2026-12-01 10:40");
    app.step(leader, id, "close", Value::Null).await;
    app.set_time("2026-12-01 10:50");
    app.step(acceptor, second, "accept", Value::Null).await;
    app.set_time("2026-12-01 11:00");
    app.step(leader, second, "file", Value::Null).await;
    (id, second)
}

/// Every subject's kept counts over the days `from..=to`, zero rows dropped.
async fn kept(
    app: &TestApp,
    from: &str,
    to: &str,
) -> std::collections::HashMap<(citygrid_core::evaluation::TallyKind, String), citygrid_core::evaluation::Tally> {
    let (from, to) = (from.parse().unwrap(), to.parse().unwrap());
    let mut kept = std::collections::HashMap::new();
    for kind in citygrid_core::evaluation::TallyKind::ALL {
        for (id, t) in app.store.evaluation_tallies(kind, from, to, None).await.unwrap() {
            if !t.is_zero() {
                kept.insert((kind, id), t);
            }
        }
    }
    kept
}

/// A database written and counted by the previous version — case rows without the fields this
/// one keeps (`due_at`, `filed_at`, …, and the `due_at` column), counts by the older rules, only
/// the older key `evaluation.counted` — is upgraded once when the state is loaded: every row
/// equals its replayed log again, the counts are the log's; a later load leaves it alone.
async fn an_old_database_is_upgraded_once_at_start(backend: Backend) {
    use citygrid_server::state::EVALUATION_COUNTED_KEY;
    let app = spawn(backend).await;
    let (id, second) = across_the_month_end(&app).await;
    let counted = kept(&app, "2026-11-01", "2026-12-31").await;
    for case in [id, second] {
        let mut json = serde_json::to_value(app.store.get_case(case).await.unwrap().unwrap()).unwrap();
        let obj = json.as_object_mut().unwrap();
        for key in ["filed_by", "dispatched_by", "filed_at", "dispatched_at", "due_at", "due_department_id"] {
            let had = obj.remove(key).is_some();
            assert!(had || case == second, "the returned case has {key}");
        }
        let data = json.to_string().replace('\'', "''");
        app.raw_execute(&format!("UPDATE cases SET data = '{data}', due_at = NULL WHERE id = {case}")).await;
    }
    // The older rules: the return charged on its own day, the case due at its last deadline.
    app.raw_execute("UPDATE eval_counts SET c_redispatched = 0, c_due = c_due + 1").await;
    // Written behind the store's back: readers keeping counts are told the rows were rewritten.
    app.raw_execute("UPDATE eval_clock SET generation = generation + 1").await;
    app.raw_execute(&format!("DELETE FROM settings WHERE key = '{EVALUATION_COUNTED_KEY}'")).await;
    app.store.put_setting("evaluation.counted", "1").await.unwrap();
    let replays = |case: i64| {
        let store = app.store.clone();
        async move {
            let replayed = citygrid_core::case::replay(case, &store.case_events(case).await.unwrap());
            replayed == store.get_case(case).await.unwrap()
        }
    };
    assert!(!replays(id).await, "what `citygrid audit` reports before the upgrade");
    assert_ne!(kept(&app, "2026-11-01", "2026-12-31").await, counted);

    let clock = || Clock::manual(bj("2026-12-02 09:00"));
    AppState::load(app.store.clone(), clock(), long_tokens()).await.unwrap();
    assert!(replays(id).await && replays(second).await);
    assert_eq!(kept(&app, "2026-11-01", "2026-12-31").await, counted);
    assert_eq!(app.store.get_setting(EVALUATION_COUNTED_KEY).await.unwrap().as_deref(), Some("1"));
    // Upgraded once: counts changed behind its back now stay as they are at the next start.
    app.raw_execute("UPDATE eval_counts SET c_reported = c_reported + 1").await;
    let changed = kept(&app, "2026-11-01", "2026-12-31").await;
    assert_ne!(changed, counted, "a change by hand is seen (the database stamps it)");
    AppState::load(app.store.clone(), clock(), long_tokens()).await.unwrap();
    assert_eq!(kept(&app, "2026-11-01", "2026-12-31").await, changed);
}

/// A collector's report filed and dispatched on Friday 27 November, due on Monday 30
/// November, returned by the department on Tuesday 1 December, dispatched again and closed that
/// day; and a second report of 30 November filed on 1 December. Through the API: the case stays
/// due in November (closed, not on time), December has nothing due; the return is shown in
/// November, beside the dispatch it returned; the collector's November reports are both valid, December has none.
async fn evaluation_dates_by_what_it_judges_across_a_month_end(backend: Backend) {
    let app = spawn(backend).await;
    let (id, second) = across_the_month_end(&app).await;
    let evaluator = app.sign_in("evaluator").await;
    let dispatcher = app.sign_in("dispatcher").await;
    let collector = app.sign_in("collector").await;
    let streets = |month: &str| format!("/api/v1/evaluations?subject=region&level=street&period={month}");
    let nov = app.get(&evaluator, &streets("2026-11")).await.ok(200);
    let s = row(&nov, STREET);
    assert_eq!(metric(s, "due_to_close"), (1.0, 1, 1));
    assert_eq!(metric(s, "closure_rate"), (1.0, 1, 1), "closed since, in December");
    assert_eq!(metric(s, "on_time_closure_rate"), (0.0, 0, 1), "not by its due date");
    let dec = app.get(&evaluator, &streets("2026-12")).await.ok(200);
    let s = row(&dec, STREET);
    // Due in December: only the second report, filed on 1 December and still open.
    assert_eq!(metric(s, "due_to_close"), (1.0, 1, 1));
    assert_eq!(metric(s, "closure_rate"), (0.0, 0, 1));
    assert_eq!(metric(s, "overdue_open"), (1.0, 1, 1), "due in December, still open");
    assert_eq!(metric(s, "closed"), (1.0, 1, 1));
    assert_eq!(metric(s, "overdue_closed"), (1.0, 1, 1));
    let due_cases = |month: &'static str| {
        let (app, evaluator) = (&app, evaluator.clone());
        async move {
            let q = format!("subject=region&level=street&id={STREET}&counter=due&period={month}");
            cases_behind(app, &evaluator, &q).await
        }
    };
    assert_eq!(due_cases("2026-11").await, vec![id]);
    assert_eq!(due_cases("2026-12").await, vec![second], "the returned case's new deadline does not make it due again");

    let dispatcher_id = user_id(&app, &dispatcher).await;
    let accurate = |month| figure(&app, &evaluator, "dispatcher", &dispatcher_id, "accurate_dispatch_rate", month);
    // Accurate dispatch is the standard's (dispatched − reworked) ÷ dispatched: a return is not
    // a rework. The return is shown as `returned`, in November, on the day of the dispatch it
    // returned (not in December, its own day).
    assert_eq!(accurate("2026-11").await, (1.0, 1, 1));
    assert_eq!(accurate("2026-12").await, (1.0, 1, 1));
    let returned = |month| figure(&app, &evaluator, "dispatcher", &dispatcher_id, "returned", month);
    assert_eq!((returned("2026-11").await.1, returned("2026-12").await.1), (1, 0));
    // The drill-down finds the returned dispatch in November, where it is charged.
    let returned = format!("subject=dispatcher&id={dispatcher_id}&counter=redispatched&period=2026-11");
    assert_eq!(cases_behind(&app, &evaluator, &returned).await, vec![id]);

    let collector_id = user_id(&app, &collector).await;
    let valid = |month| figure(&app, &evaluator, "collector", &collector_id, "valid_report_rate", month);
    // The second report (30 November) was filed in December: a November credit. Dated by the
    // filing, November was 1 / 2 and December 1 / 0 (a credit without a report).
    assert_eq!(valid("2026-11").await, (1.0, 2, 2));
    assert_eq!(valid("2026-12").await, (1.0, 0, 0));

    // The kept counts are what the log says.
    let before: Vec<Value> = futures_all(&app, &evaluator).await;
    app.store.rebuild_evaluation(&|_| {}).await.unwrap();
    assert_eq!(futures_all(&app, &evaluator).await, before);
    for (from, to) in [("2026-11-01", "2026-11-30"), ("2026-12-01", "2026-12-31"), ("2026-11-30", "2026-12-01")] {
        let full = app.store.evaluation_from_log(from.parse().unwrap(), to.parse().unwrap()).await.unwrap();
        assert_eq!(kept(&app, from, to).await, full, "{from}..{to}");
    }
}

/// The answers kept between asks (re-scored where counts changed) equal answers scored afresh.
async fn assert_kept_is_fresh(app: &TestApp, token: &str) {
    let kept = futures_all(app, token).await;
    app.state.eval_cache.clear();
    assert_eq!(futures_all(app, token).await, kept);
}

async fn futures_all(app: &TestApp, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for q in [
        "subject=region&level=grid&period=2026-09",
        "subject=region&level=community&period=2026-09",
        "subject=region&level=street&period=2026-09",
        "subject=region&level=district&period=2026-W40",
        "subject=department&period=2026-09",
        "subject=collector&period=2026-09",
        "subject=acceptor&period=2026-09",
        "subject=leader&period=2026-09",
        "subject=dispatcher&period=2026-09",
    ] {
        out.push(app.get(token, &format!("/api/v1/evaluations?{q}")).await.ok(200));
    }
    out
}

/// Who may not see what, bad queries, and configuration changes that are refused (and leave the
/// configuration as it was) or accepted (and change the scores).
async fn evaluation_is_refused_outside_scope_and_validated(backend: Backend) {
    let app = spawn(backend).await;
    let collector = app.sign_in("collector").await;
    let commander = app.sign_in("commander").await;
    let handler = app.sign_in("handler").await;
    let admin = app.sign_in("admin").await;
    let leader = app.sign_in("leader").await;
    let c1 = citizen(&app, "13900000002").await.0;
    app.report(&collector, &garbage()).await;
    let base = "/api/v1/evaluations?period=2026-09&subject=";

    // Citizens see nothing.
    app.get(&c1, &format!("{base}region")).await.problem(403, "forbidden_role", None);
    app.get(&c1, "/api/v1/evaluations/config").await.problem(403, "forbidden_role", None);
    // A department clerk: its departments only.
    app.get(&handler, &format!("{base}region")).await.problem(403, "out_of_scope", None);
    app.get(&handler, &format!("{base}leader")).await.problem(403, "out_of_scope", None);
    let hw = app.department("HW").await;
    let theirs = app.get(&handler, &format!("{base}department")).await.ok(200);
    let ids: Vec<i64> =
        theirs["rows"].as_array().unwrap().iter().map(|r| r["subject_id"].as_str().unwrap().parse().unwrap()).collect();
    assert!(ids.contains(&hw));
    let tree = app.state.departments().await.unwrap();
    assert!(ids.iter().all(|d| tree.is_within(*d, hw)), "{ids:?}");
    assert!(ids.len() < app.store.list_departments().await.unwrap().len());
    // A collector: their own row.
    let mine = app.get(&collector, &format!("{base}collector")).await.ok(200);
    assert_eq!(mine["rows"].as_array().unwrap().len(), 1);
    app.get(&collector, &format!("{base}region")).await.problem(403, "out_of_scope", None);
    // A district commander: its district's regions, not others', not the city's posts.
    let districts = app.get(&commander, &format!("{base}region&level=district")).await.ok(200);
    let codes: Vec<&str> =
        districts["rows"].as_array().unwrap().iter().map(|r| r["subject_id"].as_str().unwrap()).collect();
    assert_eq!(codes, vec!["320311"]);
    let streets = app.get(&commander, &format!("{base}region&level=street")).await.ok(200);
    assert!(streets["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["subject_id"].as_str().unwrap().starts_with("320311")));
    app.get(&commander, &format!("{base}region&parent=320303")).await.problem(403, "out_of_scope", None);
    app.get(&commander, &format!("{base}department")).await.problem(403, "out_of_scope", None);
    app.get(
        &commander,
        "/api/v1/evaluations/cases?subject=region&level=district&id=320303&counter=reported&period=2026-09",
    )
    .await
    .problem(403, "out_of_scope", None);
    app.get(&handler, "/api/v1/evaluations/cases?subject=department&id=999&counter=reported&period=2026-09")
        .await
        .problem(403, "out_of_scope", None);

    // Bad queries name their field.
    for (q, field) in [
        ("/api/v1/evaluations?subject=mayor", "subject"),
        ("/api/v1/evaluations?subject=region&level=city", "level"),
        ("/api/v1/evaluations?subject=department&level=street", "level"),
        ("/api/v1/evaluations?subject=region&period=2026-13", "period"),
        ("/api/v1/evaluations?subject=region&period=2026-09&from=2026-09-01", "period"),
        ("/api/v1/evaluations?subject=region&from=2026-09-10&to=2026-09-01", "to"),
        ("/api/v1/evaluations?subject=region&from=2026-09-10", "to"),
        ("/api/v1/evaluations?subject=region&from=2000-01-01&to=2026-09-01", "to"),
        ("/api/v1/evaluations?subject=region&parent=abc", "parent"),
        ("/api/v1/evaluations?subject=region&sort=name", "sort"),
        ("/api/v1/evaluations/cases?subject=region&level=street&id=320311002&counter=nope", "counter"),
        ("/api/v1/evaluations/cases?subject=region&level=street&id=320311&counter=filed", "id"),
        ("/api/v1/evaluations/cases?subject=leader&id=x&counter=filed", "id"),
        ("/api/v1/evaluations/cases?subject=leader&id=1&counter=filed&limit=0", "limit"),
    ] {
        app.get(&admin, q).await.problem(400, "invalid_query", Some(field));
    }

    // Configuration: validated, only administrators and evaluators of the city change it.
    let cfg = app.get(&leader, "/api/v1/evaluations/config").await.ok(200);
    app.put_json(&leader, "/api/v1/evaluations/config", &cfg).await.problem(403, "forbidden_role", None);
    let mut bad = cfg.clone();
    bad["weights"]["region"]["closure_rate"] = json!(50);
    app.put_json(&admin, "/api/v1/evaluations/config", &bad).await.problem(
        422,
        "invalid_field",
        Some("weights.region"),
    );
    let mut bad = cfg.clone();
    bad["grades"][1]["min_score"] = json!(95.0);
    app.put_json(&admin, "/api/v1/evaluations/config", &bad).await.problem(
        422,
        "invalid_field",
        Some("grades[1].min_score"),
    );
    assert_eq!(app.get(&admin, "/api/v1/evaluations/config").await.ok(200), cfg, "a refused change writes nothing");
    // All weight on the closure rate: a street with nothing due scores 100, grade A.
    let before = app.get(&admin, &format!("{base}region&level=street")).await.ok(200);
    let mut good = cfg.clone();
    good["weights"]["region"] = json!({"closure_rate": 100});
    good["grades"] = json!([{"grade": "优", "min_score": 95.0}, {"grade": "良", "min_score": 0.0}]);
    app.put_json(&admin, "/api/v1/evaluations/config", &good).await.ok(200);
    let after = app.get(&admin, &format!("{base}region&level=street")).await.ok(200);
    assert_ne!(before, after);
    let s = row(&after, STREET);
    assert_eq!((s["score"].as_f64(), s["grade"].as_str()), (Some(100.0), Some("优")));
}

/// A month still running counts as due only the deadlines up to today: a case due later this
/// month is not yet a closure the street failed. The same query asked again as the days pass
/// follows (the answer kept from the first ask is not reused); a period already over counts
/// every deadline in it.
async fn a_running_period_is_due_up_to_today(backend: Backend) {
    let app = spawn(backend).await;
    let collector = app.sign_in("collector").await;
    let acceptor = app.sign_in("acceptor").await;
    let leader = app.sign_in("leader").await;
    let dispatcher = app.sign_in("dispatcher").await;
    let evaluator = app.sign_in("evaluator").await;
    let handler = app.sign_in("handler").await;
    let hw = app.department("HW").await;
    // Tuesday 1 September: filed, dispatched, and given five more working days, so the case is
    // due later in September.
    app.set_time("2026-09-01 09:00");
    let id = app.report(&collector, &garbage()).await["id"].as_i64().unwrap();
    app.set_time("2026-09-01 09:05");
    app.step(&acceptor, id, "accept", Value::Null).await;
    app.step(&leader, id, "file", Value::Null).await;
    app.step(&dispatcher, id, "dispatch", json!({"department_id": hw})).await;
    let more = json!({"limit": {"amount": 5, "unit": "working_days"}, "note": "需调派清运车辆"});
    app.step(&handler, id, "request_extension", more).await;
    app.step(&dispatcher, id, "approve_extension", Value::Null).await;
    let case = app.get(&leader, &format!("/api/v1/cases/{id}")).await.ok(200);
    let deadline: jiff::Timestamp = case["case_deadline"].as_str().unwrap().parse().unwrap();
    let due_day = deadline.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).date();
    assert!(due_day > "2026-09-01".parse().unwrap() && due_day.month() == 9, "due later in September: {due_day}");
    let streets = "/api/v1/evaluations?subject=region&level=street&period=2026-09";
    let drill = format!("subject=region&level=street&id={STREET}&counter=due&period=2026-09");
    let due_now = |page: &Value| metric(row(page, STREET), "due_to_close").1;

    let page = app.get(&evaluator, streets).await.ok(200);
    assert_eq!(due_now(&page), 0, "not due yet: {}", row(&page, STREET));
    assert_eq!(metric(row(&page, STREET), "closure_rate").2, 0);
    assert_eq!(cases_behind(&app, &evaluator, &drill).await, Vec::<i64>::new());
    // A range that ended before today is not running: every deadline in it counts.
    let whole = format!("/api/v1/evaluations?subject=region&level=street&from=2026-08-01&to={due_day}");
    app.set_time(&format!("{} 08:00", due_day.tomorrow().unwrap()));
    assert_eq!(due_now(&app.get(&evaluator, &whole).await.ok(200)), 1);
    // The day before the deadline: still not due. The deadline's day: due, and not closed.
    app.set_time(&format!("{} 08:00", due_day.yesterday().unwrap()));
    assert_eq!(due_now(&app.get(&evaluator, streets).await.ok(200)), 0);
    app.set_time(&format!("{due_day} 08:00"));
    let page = app.get(&evaluator, streets).await.ok(200);
    assert_eq!(due_now(&page), 1);
    assert_eq!(metric(row(&page, STREET), "closure_rate"), (0.0, 0, 1));
    assert_eq!(cases_behind(&app, &evaluator, &drill).await, vec![id]);
    // Bands expect what the days so far could bring: on the 1st a thirtieth of the month's.
    app.set_time("2026-09-01 18:00");
    let first = app.get(&evaluator, streets).await.ok(200);
    app.set_time("2026-10-01 09:00");
    let whole = app.get(&evaluator, streets).await.ok(200);
    let band = |p: &Value| metric(row(p, STREET), "filed_band").2;
    assert_eq!(band(&whole), 30 * band(&first), "{} vs {}", band(&whole), band(&first));
    // The answers kept while the days passed are the ones a fresh ask gives.
    app.set_time(&format!("{due_day} 08:00"));
    let kept = app.get(&evaluator, streets).await.ok(200);
    app.state.eval_cache.clear();
    assert_eq!(app.get(&evaluator, streets).await.ok(200), kept);
}

/// A case disposed in November and found not done at the check on 1 December, disposed again
/// and closed in December, through the API: the department's November disposal carries the
/// rework (rework rate 1 of 1 in November, 0 of 1 in December), the dispatcher's November
/// dispatch too (accurate dispatch 0 of 1), the street counts it on the closing day; each
/// drill-down finds the case where it is charged; kept figures equal the log's.
async fn a_rework_is_charged_where_the_failed_disposal_was(backend: Backend) {
    let app = spawn(backend).await;
    let (crew, id, _) = dispatched_on_friday(&app).await;
    let Crew { collector, leader, dispatcher, handler, hw, .. } = &crew;
    let evaluator = app.sign_in("evaluator").await;
    let loops = [("2026-11-27 16:00", "2026-12-01 09:00", false), ("2026-12-01 11:00", "2026-12-01 11:30", true)];
    for (disposed, checked, passed) in loops {
        app.set_time(disposed);
        let photo = app.photo_id(handler, &tiny_jpeg(None)).await;
        app.step(handler, id, "dispose", json!({"photo_ids": [photo]})).await;
        app.set_time(checked);
        app.step(collector, id, "check", json!({"passed": passed})).await;
    }
    app.set_time("2026-12-01 11:40");
    let case = app.step(leader, id, "close", Value::Null).await;
    assert_eq!(case["rework_of"]["department_id"].as_i64(), Some(*hw), "{case}");
    let hw = hw.to_string();
    let rework = |month| figure(&app, &evaluator, "department", &hw, "rework_rate", month);
    assert_eq!(rework("2026-11").await, (1.0, 1, 1));
    assert_eq!(rework("2026-12").await, (0.0, 0, 1));
    let dispatcher_id = user_id(&app, dispatcher).await;
    let accurate = figure(&app, &evaluator, "dispatcher", &dispatcher_id, "accurate_dispatch_rate", "2026-11").await;
    assert_eq!(accurate, (0.0, 0, 1));
    let street = |month| figure(&app, &evaluator, "region", STREET, "rework_rate", month);
    assert_eq!((street("2026-11").await.1, street("2026-12").await.1), (0, 1), "the street counts it at closing");
    for (subject, subject_id, month) in [("department", &hw, "2026-11"), ("dispatcher", &dispatcher_id, "2026-11")] {
        let q = format!("subject={subject}&id={subject_id}&counter=reworked&period={month}");
        assert_eq!(cases_behind(&app, &evaluator, &q).await, vec![id], "{q}");
        let q = format!("subject={subject}&id={subject_id}&counter=reworked&period=2026-12");
        assert!(cases_behind(&app, &evaluator, &q).await.is_empty(), "{q}");
    }
    for (from, to) in [("2026-11-01", "2026-11-30"), ("2026-12-01", "2026-12-31")] {
        let full = app.store.evaluation_from_log(from.parse().unwrap(), to.parse().unwrap()).await.unwrap();
        assert_eq!(kept(&app, from, to).await, full, "{from}..{to}");
    }
}
