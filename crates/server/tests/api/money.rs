//! Rewards, deductions, the ledger, settlements: the scenarios of issue 4 end to end through the
//! API, and the refusals.

use crate::helpers::{citizen, import_areas, long_tokens, spawn_app_with, Backend, TestApp};
use serde_json::{json, Value};

backend_tests!(
    first_citizen_is_rewarded_once_after_verification,
    collector_first_means_no_reward_and_no_deduction,
    failed_verification_and_anonymous_reports_earn_nothing,
    cleaning_contractor_is_docked_and_statement_traces_the_case,
    settlement_twice_pays_once_with_the_same_files,
    large_rewards_wait_for_approval_and_a_decline_reverses,
    caps_and_exclusions_are_enforced,
    money_is_refused_to_those_it_does_not_concern,
    budget_pace_alert,
    bulk_reports_from_one_account_are_refused,
);

const P: (f64, f64) = (117.18, 34.26);

/// Months pass in these tests: tokens must outlive them.
async fn spawn(backend: Backend) -> TestApp {
    spawn_app_with(backend, long_tokens()).await
}

fn cover_at(lon: f64, lat: f64) -> Value {
    json!({"kind": "event", "class_code": "01001", "description": "井盖破了一个角", "location": {"lon": lon, "lat": lat}})
}

fn garbage_at(lon: f64, lat: f64) -> Value {
    crate::helpers::garbage_at(lon, lat)
}

/// 4 metres east of `P` (at 34.26° N a degree of longitude is ~92 km).
fn near_p() -> (f64, f64) {
    (P.0 + 0.00004, P.1)
}

async fn ledger(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let page = app.get(token, &format!("/api/v1/ledger?{query}")).await.ok(200);
    page["items"].as_array().unwrap().clone()
}

fn sum(entries: &[Value]) -> i64 {
    entries.iter().map(|e| e["amount_fen"].as_i64().unwrap()).sum()
}

async fn first_citizen_is_rewarded_once_after_verification(backend: Backend) {
    let app = spawn(backend).await;
    let (c1, u1) = citizen(&app, "13900000001").await;
    let (c2, u2) = citizen(&app, "13900000002").await;
    let acceptor = app.sign_in("acceptor").await;
    let collector = app.sign_in("collector").await;
    let admin = app.sign_in("admin").await;
    app.set_time("2026-09-28 10:00");
    let first = app.report(&c1, &cover_at(P.0, P.1)).await;
    app.set_time("2026-09-28 10:03");
    let second = app.report(&c2, &cover_at(near_p().0, near_p().1)).await;
    let (a, b) = (first["id"].as_i64().unwrap(), second["id"].as_i64().unwrap());
    // The acceptor sees the first as the likely duplicate of the second.
    let dups = app.get(&acceptor, &format!("/api/v1/cases/{b}/duplicates")).await.ok(200);
    assert_eq!(dups[0]["case_id"], a, "{dups}");
    assert!(dups[0]["distance_m"].as_f64().unwrap() < 10.0);
    assert_eq!(dups[0]["minutes_apart"], 3);
    // Citizens may not look for duplicates.
    app.get(&c1, &format!("/api/v1/cases/{b}/duplicates")).await.problem(403, "forbidden_role", None);
    // Merge: the second into the first; the merged report keeps its own events.
    let merged = app.post_json(&acceptor, &format!("/api/v1/cases/{b}/merge"), &json!({"into": a})).await.ok(200);
    assert_eq!(merged["state"], "voided");
    assert_eq!(merged["duplicate_of"], a);
    // Nothing before verification.
    assert!(ledger(&app, &admin, "").await.is_empty());
    app.set_time("2026-09-28 10:30");
    app.step(&collector, a, "verify", json!({"confirmed": true})).await;
    let entries = ledger(&app, &admin, "").await;
    let rewards: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "reward").collect();
    assert_eq!(rewards.len(), 1, "{entries:?}");
    assert_eq!(rewards[0]["party"], u1.to_string());
    assert_eq!(rewards[0]["case_id"], a);
    assert_eq!(rewards[0]["amount_fen"], 5000);
    assert_eq!(rewards[0]["amount_yuan"], "50.00");
    assert_eq!(rewards[0]["rule"], "first_reporter");
    assert_eq!(rewards[0]["status"], "payable");
    let mut set = rewards[0]["set_cases"].as_array().unwrap().clone();
    set.sort_by_key(|v| v.as_i64());
    assert_eq!(set, vec![json!(a), json!(b)]);
    // The collection company missed it (漏报); a cover is not a cleaning category.
    let deductions: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "deduction").collect();
    assert_eq!(deductions.len(), 1);
    assert_eq!(
        (deductions[0]["party_kind"].as_str(), deductions[0]["amount_fen"].as_i64()),
        (Some("collection"), Some(2000))
    );
    assert!(ledger(&app, &admin, &format!("party={u2}")).await.is_empty(), "the second reporter earns nothing");
    // Further actions and an explicit reconcile write nothing more.
    app.step(&acceptor, a, "accept", json!({})).await;
    let again = app.post_json(&admin, "/api/v1/ledger/reconcile", &json!({})).await.ok(200);
    assert_eq!(again["written"], 0, "{again}");
    assert_eq!(ledger(&app, &admin, "").await.len(), 2);
}

async fn collector_first_means_no_reward_and_no_deduction(backend: Backend) {
    let app = spawn(backend).await;
    let (c1, _) = citizen(&app, "13900000001").await;
    let acceptor = app.sign_in("acceptor").await;
    let collector = app.sign_in("collector").await;
    let admin = app.sign_in("admin").await;
    app.set_time("2026-09-28 10:00");
    let known = app.report(&collector, &cover_at(P.0, P.1)).await["id"].as_i64().unwrap();
    app.set_time("2026-09-28 10:20");
    let late = app.report(&c1, &cover_at(near_p().0, near_p().1)).await["id"].as_i64().unwrap();
    app.step(&acceptor, known, "accept", json!({})).await;
    app.post_json(&acceptor, &format!("/api/v1/cases/{late}/merge"), &json!({"into": known})).await.ok(200);
    assert!(ledger(&app, &admin, "").await.is_empty());
    // Even merged the other way round, the collector was first.
    let app2 = spawn(Backend::Sqlite).await;
    let (c, _) = citizen(&app2, "13900000001").await;
    let (acc2, col2, adm2) =
        (app2.sign_in("acceptor").await, app2.sign_in("collector").await, app2.sign_in("admin").await);
    app2.set_time("2026-09-28 10:00");
    let known = app2.report(&col2, &cover_at(P.0, P.1)).await["id"].as_i64().unwrap();
    app2.set_time("2026-09-28 10:20");
    let cit = app2.report(&c, &cover_at(P.0, P.1)).await["id"].as_i64().unwrap();
    app2.post_json(&acc2, &format!("/api/v1/cases/{known}/merge"), &json!({"into": cit})).await.ok(200);
    app2.step(&col2, cit, "verify", json!({"confirmed": true})).await;
    assert!(ledger(&app2, &adm2, "").await.is_empty());
}

async fn failed_verification_and_anonymous_reports_earn_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let (c1, _) = citizen(&app, "13900000001").await;
    let acceptor = app.sign_in("acceptor").await;
    let collector = app.sign_in("collector").await;
    let admin = app.sign_in("admin").await;
    let id = app.report(&c1, &cover_at(P.0, P.1)).await["id"].as_i64().unwrap();
    app.step(&collector, id, "verify", json!({"confirmed": false})).await;
    app.step(&acceptor, id, "reject", json!({"note": "现场未发现", "reason": "not_found"})).await;
    assert!(ledger(&app, &admin, "").await.is_empty());
    // The demo `citizen` account has no proven phone: anonymous, never rewarded.
    let anon = app.sign_in("citizen").await;
    let id = app.report(&anon, &cover_at(117.19, 34.25)).await["id"].as_i64().unwrap();
    app.step(&collector, id, "verify", json!({"confirmed": true})).await;
    assert!(ledger(&app, &admin, "").await.is_empty());
    // A class that is not a citizen category earns nothing either.
    let id = app
        .report(&c1, &json!({"kind": "event", "class_code": "08001", "description": "施工扰民", "location": {"lon": 117.17, "lat": 34.25}}))
        .await["id"]
        .as_i64()
        .unwrap();
    app.step(&collector, id, "verify", json!({"confirmed": true})).await;
    assert!(ledger(&app, &admin, "").await.is_empty());
}

async fn cleaning_contractor_is_docked_and_statement_traces_the_case(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.sign_in("admin").await;
    import_areas(&app, &admin).await;
    let (c1, u1) = citizen(&app, "13900000001").await;
    let collector = app.sign_in("collector").await;
    let photo = app.photo_id(&c1, &crate::helpers::tiny_png(7)).await;
    let mut body = garbage_at(P.0, P.1);
    body["photo_ids"] = json!([photo]);
    let id = app.report(&c1, &body).await["id"].as_i64().unwrap();
    app.step(&collector, id, "verify", json!({"confirmed": true})).await;
    let entries = ledger(&app, &admin, "").await;
    let parties: Vec<(String, String, i64)> = entries
        .iter()
        .map(|e| {
            (
                e["party_kind"].as_str().unwrap().into(),
                e["party"].as_str().unwrap().into(),
                e["amount_fen"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(parties.contains(&("citizen".into(), u1.to_string(), 500)), "{parties:?}");
    assert!(parties.contains(&("contractor".into(), "彭城保洁公司".into(), 5000)), "{parties:?}");
    assert!(parties.contains(&("collection".into(), "collection".into(), 2000)), "{parties:?}");
    let collection = entries.iter().find(|e| e["party_kind"] == "collection").unwrap();
    assert_eq!(collection["collector"], "collector", "the collector whose area it was");
    let st = app.get(&admin, "/api/v1/deductions/statements?month=2026-09").await.ok(200);
    let contractor = st.as_array().unwrap().iter().find(|s| s["party"] == "彭城保洁公司").unwrap();
    assert_eq!(contractor["total_fen"], 5000);
    assert_eq!(contractor["total_yuan"], "50.00");
    assert_eq!(contractor["lines"][0]["case_id"], id);
    assert_eq!(contractor["lines"][0]["photo_ids"], json!([photo]));
    app.get(&admin, "/api/v1/deductions/statements?month=2026-9").await.problem(400, "invalid_query", Some("month"));
    app.get(&admin, "/api/v1/deductions/statements?month=2026-09&party_kind=citizen").await.problem(
        400,
        "invalid_query",
        Some("party_kind"),
    );
}

async fn settlement_twice_pays_once_with_the_same_files(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.sign_in("admin").await;
    let (c1, u1) = citizen(&app, "13900000001").await;
    let (c2, u2) = citizen(&app, "13900000002").await;
    let collector = app.sign_in("collector").await;
    app.store.set_payout(u2, "cash", None).await.unwrap();
    app.set_time("2026-09-28 10:00");
    for (token, lon) in [(&c1, 117.17), (&c2, 117.19)] {
        let id = app.report(token, &cover_at(lon, 34.26)).await["id"].as_i64().unwrap();
        app.step(&collector, id, "verify", json!({"confirmed": true})).await;
    }
    // September has not ended: refused, nothing written.
    app.post_json(&admin, "/api/v1/settlements", &json!({"month": "2026-09"})).await.problem(
        422,
        "invalid_field",
        Some("month"),
    );
    app.post_json(&admin, "/api/v1/settlements", &json!({"month": "2026/09"})).await.problem(
        422,
        "invalid_field",
        Some("month"),
    );
    assert_eq!(app.count("settlements").await, 0);
    app.set_time("2026-10-05 09:00");
    let first = app.post_json(&admin, "/api/v1/settlements", &json!({"month": "2026-09"})).await;
    assert_eq!(first.status.as_u16(), 201, "{:?}", first.json());
    let s1 = first.json();
    assert_eq!(s1["created"], true);
    assert_eq!(s1["rewards_fen"], 10_000);
    assert_eq!(s1["per_channel_fen"]["wechat"], 5000);
    assert_eq!(s1["per_channel_fen"]["cash"], 5000);
    assert_eq!(s1["deductions_fen"], 4000);
    let lines = app.count("settlement_lines").await;
    let second = app.post_json(&admin, "/api/v1/settlements", &json!({"month": "2026-09"})).await.ok(200);
    assert_eq!(second["created"], false);
    assert_eq!(second["files"], s1["files"], "same files");
    assert_eq!(app.count("settlement_lines").await, lines, "paid once");
    let wechat = app.get_text(&admin, "/api/v1/settlements/2026-09/files/payout-2026-09-wechat.csv").await;
    assert!(wechat.contains(&format!("{u1},13900000001,,50.00,5000,1,")), "{wechat}");
    let cash = app.get_text(&admin, "/api/v1/settlements/2026-09/files/payout-2026-09-cash.csv").await;
    assert!(cash.contains(&format!("{u2},13900000002,,50.00,5000,1,")), "{cash}");
    assert!(app
        .get_text(&admin, "/api/v1/settlements/2026-09/files/report-2026-09.csv")
        .await
        .contains("rewards,100.00,10000,2"));
    app.get(&admin, "/api/v1/settlements/2026-09/files/nope.csv").await.problem(404, "not_found", None);
    // Every entry is settled; the month is frozen in the database.
    for e in ledger(&app, &admin, "").await {
        assert_eq!(e["status"], "settled");
        assert_eq!(e["settled_in"], "2026-09");
    }
    // The CLI path and the list agree.
    let list = app.get(&admin, "/api/v1/settlements").await.ok(200);
    assert_eq!(list[0]["month"], "2026-09");
    // A new reward in October is not in September's run, and goes into October's.
    let id = app.report(&c1, &cover_at(117.20, 34.25)).await["id"].as_i64().unwrap();
    app.step(&collector, id, "verify", json!({"confirmed": true})).await;
    app.set_time("2026-11-05 09:00");
    let oct = app.post_json(&admin, "/api/v1/settlements", &json!({})).await.ok(201);
    assert_eq!(oct["month"], "2026-10");
    assert_eq!(oct["rewards_fen"], 5000);
}

async fn large_rewards_wait_for_approval_and_a_decline_reverses(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.sign_in("admin").await;
    let leader = app.sign_in("leader").await;
    let collector = app.sign_in("collector").await;
    let mut rules = app.get(&admin, "/api/v1/rewards/rules").await.ok(200);
    rules["approval_threshold_fen"] = json!(1000);
    app.put_json(&admin, "/api/v1/rewards/rules", &rules).await.ok(200);
    let (c1, _) = citizen(&app, "13900000001").await;
    let (c2, _) = citizen(&app, "13900000002").await;
    let a = app.report(&c1, &cover_at(117.17, 34.26)).await["id"].as_i64().unwrap();
    let b = app.report(&c2, &cover_at(117.19, 34.26)).await["id"].as_i64().unwrap();
    app.step(&collector, a, "verify", json!({"confirmed": true})).await;
    app.step(&collector, b, "verify", json!({"confirmed": true})).await;
    let waiting = ledger(&app, &admin, "awaiting_approval=true").await;
    assert_eq!(waiting.len(), 2);
    assert!(waiting.iter().all(|e| e["status"] == "pending_approval"));
    let ea = waiting.iter().find(|e| e["case_id"] == a).unwrap()["id"].as_i64().unwrap();
    let eb = waiting.iter().find(|e| e["case_id"] == b).unwrap()["id"].as_i64().unwrap();
    // Collectors cannot approve; declining needs a reason.
    app.post_json(&collector, &format!("/api/v1/ledger/{ea}/approval"), &json!({"approved": true})).await.problem(
        403,
        "forbidden_role",
        None,
    );
    app.post_json(&leader, &format!("/api/v1/ledger/{eb}/approval"), &json!({"approved": false})).await.problem(
        422,
        "invalid_field",
        Some("note"),
    );
    let ok = app.post_json(&leader, &format!("/api/v1/ledger/{ea}/approval"), &json!({"approved": true})).await.ok(200);
    assert_eq!(ok["status"], "payable");
    app.post_json(&leader, &format!("/api/v1/ledger/{ea}/approval"), &json!({"approved": false, "note": "x"}))
        .await
        .problem(409, "conflict", None);
    let no = app
        .post_json(&leader, &format!("/api/v1/ledger/{eb}/approval"), &json!({"approved": false, "note": "照片不清"}))
        .await
        .ok(200);
    assert_eq!(no["status"], "reversed");
    // The decline reversed the reward and its deduction; the case nets zero.
    let case_b = ledger(&app, &admin, &format!("case_id={b}")).await;
    assert_eq!(sum(&case_b), 0, "{case_b:?}");
    assert!(case_b.iter().any(|e| e["rule"].as_str().unwrap().starts_with("reversal:")));
    app.set_time("2026-10-05 09:00");
    let s = app.post_json(&admin, "/api/v1/settlements", &json!({"month": "2026-09"})).await.ok(201);
    assert_eq!(s["rewards_fen"], 5000, "only the approved one is paid: {s}");
}

async fn caps_and_exclusions_are_enforced(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.sign_in("admin").await;
    let collector = app.sign_in("collector").await;
    let mut rules = app.get(&admin, "/api/v1/rewards/rules").await.ok(200);
    rules["daily_cap"] = json!(1);
    app.put_json(&admin, "/api/v1/rewards/rules", &rules).await.ok(200);
    rules["daily_cap"] = json!(0);
    app.put_json(&admin, "/api/v1/rewards/rules", &rules).await.problem(422, "invalid_field", Some("daily_cap"));
    let (c1, u1) = citizen(&app, "13900000001").await;
    for lon in [117.17, 117.19] {
        let id = app.report(&c1, &cover_at(lon, 34.26)).await["id"].as_i64().unwrap();
        app.step(&collector, id, "verify", json!({"confirmed": true})).await;
    }
    let mine = ledger(&app, &admin, &format!("party={u1}")).await;
    assert_eq!(mine.len(), 1, "one a day: {mine:?}");
    // Same spot again the next day: no reward (repeated reports of one spot).
    app.set_time("2026-09-29 10:00");
    let id = app.report(&c1, &cover_at(117.17, 34.26)).await["id"].as_i64().unwrap();
    app.step(&collector, id, "verify", json!({"confirmed": true})).await;
    assert_eq!(ledger(&app, &admin, &format!("party={u1}")).await.len(), 1);
    // A staff phone on the exclusion list earns nothing.
    let (c3, u3) = citizen(&app, "13900000003").await;
    app.store.add_exclusion("13900000003", "staff", Some("城管局职工"), app.state.now()).await.unwrap();
    let id = app.report(&c3, &cover_at(117.20, 34.25)).await["id"].as_i64().unwrap();
    app.step(&collector, id, "verify", json!({"confirmed": true})).await;
    assert!(ledger(&app, &admin, &format!("party={u3}")).await.is_empty());
}

async fn money_is_refused_to_those_it_does_not_concern(backend: Backend) {
    let app = spawn(backend).await;
    let (c1, _) = citizen(&app, "13900000001").await;
    let collector = app.sign_in("collector").await;
    let commander = app.sign_in("commander").await;
    let evaluator = app.sign_in("evaluator").await;
    let handler = app.sign_in("handler").await;
    let admin = app.sign_in("admin").await;
    // A reward outside the commander's district (泉山区 320311): the demo city's east half.
    let id = app.report(&c1, &cover_at(117.205, 34.25)).await["id"].as_i64().unwrap();
    app.step(&collector, id, "verify", json!({"confirmed": true})).await;
    for t in [&c1, &collector, &handler] {
        app.get(t, "/api/v1/ledger").await.problem(403, "forbidden_role", None);
        app.get(t, "/api/v1/rewards/budget").await.problem(403, "forbidden_role", None);
        app.post_json(t, "/api/v1/settlements", &json!({})).await.problem(403, "forbidden_role", None);
    }
    assert_eq!(ledger(&app, &evaluator, "").await.len(), 2);
    let grid = ledger(&app, &admin, "").await[0]["grid_code"].as_str().unwrap().to_owned();
    let mine = ledger(&app, &commander, "").await;
    assert_eq!(mine.is_empty(), !grid.starts_with("320311"), "commander sees only 320311: {grid}");
    let rules = app.get(&evaluator, "/api/v1/rewards/rules").await.ok(200);
    app.put_json(&evaluator, "/api/v1/rewards/rules", &rules).await.problem(403, "forbidden_role", None);
    app.get(&c1, "/api/v1/rewards/rules").await.problem(403, "forbidden_role", None);
    app.post_json(&evaluator, "/api/v1/settlements", &json!({})).await.problem(403, "forbidden_role", None);
    app.get(&admin, "/api/v1/ledger?month=13").await.problem(400, "invalid_query", Some("month"));
    app.get(&admin, "/api/v1/ledger?limit=0").await.problem(400, "invalid_query", Some("limit"));
    app.get(&admin, "/api/v1/ledger/999999").await.problem(404, "not_found", None);
    // Categories: anyone signed in reads them; only administrators change them, validated.
    let services = app.get(&c1, "/api/v1/citizen-services").await.ok(200);
    let mut garbage = services.as_array().unwrap().iter().find(|s| s["code"] == "06010").unwrap().clone();
    garbage["reward_fen"] = json!(100);
    app.put_json(&admin, "/api/v1/citizen-services/06010", &garbage).await.problem(
        422,
        "invalid_field",
        Some("reward_fen"),
    );
    garbage["reward_fen"] = json!(800);
    app.put_json(&c1, "/api/v1/citizen-services/06010", &garbage).await.problem(403, "forbidden_role", None);
    app.put_json(&admin, "/api/v1/citizen-services/06011", &garbage).await.problem(422, "invalid_field", Some("code"));
    assert_eq!(app.put_json(&admin, "/api/v1/citizen-services/06010", &garbage).await.ok(200)["reward_fen"], 800);
    // Merging needs the void roles, and a real target.
    app.post_json(&c1, &format!("/api/v1/cases/{id}/merge"), &json!({"into": id})).await.problem(
        403,
        "forbidden_role",
        None,
    );
    let acceptor = app.sign_in("acceptor").await;
    app.post_json(&acceptor, &format!("/api/v1/cases/{id}/merge"), &json!({"into": id})).await.problem(
        422,
        "invalid_field",
        Some("into"),
    );
    app.post_json(&acceptor, &format!("/api/v1/cases/{id}/merge"), &json!({"into": 987654})).await.problem(
        422,
        "invalid_field",
        Some("into"),
    );
    // Neither merge nor void may name a case that no longer stands, or make a loop.
    let rejected = app.report(&c1, &cover_at(117.17, 34.25)).await["id"].as_i64().unwrap();
    app.step(&acceptor, rejected, "reject", json!({"note": "无效", "reason": "invalid"})).await;
    let fresh = app.report(&c1, &cover_at(117.171, 34.25)).await["id"].as_i64().unwrap();
    app.post_json(&acceptor, &format!("/api/v1/cases/{fresh}/merge"), &json!({"into": rejected})).await.problem(
        422,
        "invalid_field",
        Some("into"),
    );
    app.act(&acceptor, fresh, "void", json!({"note": "重复", "duplicate_of": rejected})).await.problem(
        422,
        "invalid_field",
        Some("duplicate_of"),
    );
    let other = app.report(&c1, &cover_at(117.172, 34.25)).await["id"].as_i64().unwrap();
    app.post_json(&acceptor, &format!("/api/v1/cases/{other}/merge"), &json!({"into": fresh})).await.ok(200);
    app.act(&acceptor, fresh, "void", json!({"note": "重复", "duplicate_of": other})).await.problem(
        422,
        "invalid_field",
        Some("duplicate_of"),
    );
    app.get(&admin, "/api/v1/rewards/budget?month=9999-12").await.problem(400, "invalid_query", Some("month"));
}

async fn budget_pace_alert(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.sign_in("admin").await;
    let collector = app.sign_in("collector").await;
    let (c1, _) = citizen(&app, "13900000001").await;
    let mut rules = app.get(&admin, "/api/v1/rewards/rules").await.ok(200);
    rules["monthly_budget_fen"] = json!(100_000);
    app.put_json(&admin, "/api/v1/rewards/rules", &rules).await.ok(200);
    app.set_time("2026-09-28 10:00");
    let id = app.report(&c1, &cover_at(117.17, 34.26)).await["id"].as_i64().unwrap();
    app.step(&collector, id, "verify", json!({"confirmed": true})).await;
    let b = app.get(&admin, "/api/v1/rewards/budget").await.ok(200);
    assert_eq!(b["month"], "2026-09");
    assert_eq!(b["month_to_date_fen"], 5000);
    assert_eq!(b["budget_fen"], 100_000);
    assert_eq!(b["alert"], false, "{b}");
    rules["monthly_budget_fen"] = json!(5000);
    app.put_json(&admin, "/api/v1/rewards/rules", &rules).await.ok(200);
    let b = app.get(&admin, "/api/v1/rewards/budget?month=2026-09").await.ok(200);
    assert_eq!(b["alert"], true, "{b}");
}

async fn bulk_reports_from_one_account_are_refused(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.sign_in("admin").await;
    let mut rules = app.get(&admin, "/api/v1/rewards/rules").await.ok(200);
    rules["max_reports_per_hour"] = json!(3);
    app.put_json(&admin, "/api/v1/rewards/rules", &rules).await.ok(200);
    let (c1, _) = citizen(&app, "13900000001").await;
    let key = [("idempotency-key", "first-report")];
    let first = app.post_json_with(&c1, "/api/v1/cases", &cover_at(117.17, 34.26), &key).await.ok(201);
    for lon in [117.18, 117.19] {
        app.report(&c1, &cover_at(lon, 34.26)).await;
    }
    let before = app.counts().await;
    let r = app.post_json(&c1, "/api/v1/cases", &cover_at(117.20, 34.26)).await;
    r.problem(429, "rate_limited", None);
    assert_eq!(app.counts().await, before, "a refused report writes nothing");
    // A retry of an accepted request still gets its case back.
    let again = app.post_json_with(&c1, "/api/v1/cases", &cover_at(117.17, 34.26), &key).await.ok(201);
    assert_eq!(again["id"], first["id"]);
    // Staff are not limited; an hour later the citizen may report again.
    let collector = app.sign_in("collector").await;
    app.report(&collector, &cover_at(117.20, 34.26)).await;
    app.set_time("2026-09-28 10:01");
    app.report(&c1, &cover_at(117.20, 34.25)).await;
    rules["max_reports_per_hour"] = json!(0);
    app.put_json(&admin, "/api/v1/rewards/rules", &rules).await.problem(
        422,
        "invalid_field",
        Some("max_reports_per_hour"),
    );
}
