//! `/api/v1/citizen/...`: phone sign-in with a one-time code (limits, attempts, expiry, reuse),
//! the account made once on the first sign-in, the follow-up of the citizen's reports with
//! their honest end states and after-photos, rewards from the ledger, the payout channel, the
//! exclusion list, and every refusal. Codes are read from the in-memory SMS sender.
//!
//! The SQLite and PostgreSQL variants of a test run at the same time in one process and share
//! the sender's memory, so each backend uses its own phone numbers ([`phone`]).

use crate::helpers::{garbage_at, spawn_app, tiny_jpeg, tiny_png, Backend, Resp, TestApp, QUANSHAN, YUNLONG};
use axum::http::Method;
use citygrid_server::sms;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

/// Phone number `n` of this backend's tests.
fn phone(backend: &Backend, n: u32) -> String {
    match backend {
        Backend::Sqlite => format!("1390000{n:04}"),
        Backend::Postgres(_) => format!("1370000{n:04}"),
    }
}

/// The app, with codes going to the in-memory sender.
async fn app(backend: Backend) -> TestApp {
    sms::install(sms::Configured::Memory(sms::MemorySender)).expect("the memory SMS sender");
    spawn_app(backend).await
}

/// Beijing time to the second: `at("2026-09-28 09:00:59")`.
fn at(local: &str) -> Timestamp {
    format!("{}+08:00", local.replacen(' ', "T", 1)).parse().unwrap_or_else(|e| panic!("{local}: {e}"))
}

fn set_clock(app: &TestApp, local: &str) {
    app.state.clock.set(at(local));
}

/// Move the clock past the resend limit.
fn later(app: &TestApp, seconds: i64) {
    let now = app.state.now();
    app.state.clock.set(now.checked_add(SignedDuration::from_secs(seconds)).unwrap());
}

async fn post_anon(app: &TestApp, uri: &str, body: &Value) -> Resp {
    app.request(Method::POST, uri, None, &[("content-type", "application/json")], body.to_string().into_bytes()).await
}

async fn send_code(app: &TestApp, phone: &str) -> Resp {
    post_anon(app, "/api/v1/citizen/codes", &json!({ "phone": phone })).await
}

async fn redeem(app: &TestApp, phone: &str, code: &str) -> Resp {
    post_anon(app, "/api/v1/citizen/token", &json!({ "phone": phone, "code": code })).await
}

/// A 6-digit code that is not `code`.
fn wrong(code: &str) -> String {
    if code == "000000" { "000001" } else { "000000" }.to_owned()
}

/// Sign in by code (the clock must allow a code now); returns the token answer.
async fn sign_in_phone(app: &TestApp, phone: &str) -> Value {
    send_code(app, phone).await.ok(202);
    let code = sms::last_code(phone).expect("a code was sent");
    redeem(app, phone, &code).await.ok(200)
}

async fn token_of(app: &TestApp, phone: &str) -> String {
    sign_in_phone(app, phone).await["token"].as_str().expect("token").to_owned()
}

async fn put_json(app: &TestApp, token: &str, uri: &str, body: &Value) -> Resp {
    app.request(Method::PUT, uri, Some(token), &[("content-type", "application/json")], body.to_string().into_bytes())
        .await
}

// ---- codes ---------------------------------------------------------------------------------

async fn code_flow(backend: Backend) {
    let p = phone(&backend, 1);
    let app = app(backend).await;
    let accounts = app.count("citizen_accounts").await;
    let users = app.count("users").await;

    // A code is sent; only its hash is stored.
    let r = send_code(&app, &format!("+86 {}-{}-{}", &p[..3], &p[3..7], &p[7..])).await;
    let v = r.ok(202);
    assert_eq!(v["phone_masked"], format!("{}****{}", &p[..3], &p[7..]));
    assert_eq!(v["expires_in"], 300);
    assert_eq!(v["resend_after"], 60);
    let code = sms::last_code(&p).unwrap();
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(app.count("otp_codes").await, 1);

    // Bad input is refused naming the field, and writes nothing.
    send_code(&app, "12345").await.problem(422, "invalid_field", Some("phone"));
    redeem(&app, "12345", "123456").await.problem(422, "invalid_field", Some("phone"));
    redeem(&app, &p, "12345").await.problem(422, "invalid_field", Some("code"));
    redeem(&app, &p, "abcdef").await.problem(422, "invalid_field", Some("code"));
    post_anon(&app, "/api/v1/citizen/codes", &json!({})).await.problem(422, "invalid_field", Some("phone"));
    let r = app.request(Method::POST, "/api/v1/citizen/codes", None, &[], json!({"phone": p}).to_string().into()).await;
    r.problem(415, "unsupported_media_type", None);
    assert_eq!(app.count("otp_codes").await, 1);
    assert_eq!(sms::codes_sent(&p).len(), 1);

    // Wrong guesses count; after the fifth the code is dead, even the right one.
    let bad = wrong(&code);
    for left in (1..=4).rev() {
        let r = redeem(&app, &p, &bad).await;
        r.problem(422, "wrong_code", Some("code"));
        assert!(r.json()["detail"].as_str().unwrap().contains(&format!("{left} attempts left")), "{left}");
    }
    let r = redeem(&app, &p, &bad).await;
    r.problem(422, "wrong_code", Some("code"));
    assert!(r.json()["detail"].as_str().unwrap().contains("last"));
    redeem(&app, &p, &code).await.problem(422, "code_expired", Some("code"));
    assert_eq!(app.count("citizen_accounts").await, accounts);
    assert_eq!(app.count("users").await, users);

    // A new code (a minute later) works once; using it again is refused.
    later(&app, 60);
    send_code(&app, &p).await.ok(202);
    let code2 = sms::last_code(&p).unwrap();
    let v = redeem(&app, &p, &code2).await.ok(200);
    assert_eq!(v["new_account"], true);
    assert!(v["token"].as_str().unwrap().len() >= 40);
    let tokens = app.count("tokens").await;
    redeem(&app, &p, &code2).await.problem(422, "code_expired", Some("code"));
    assert_eq!(app.count("tokens").await, tokens);

    // A code lives 5 minutes: valid at 4:59, dead at 5:00.
    later(&app, 60);
    let sent = app.state.now();
    send_code(&app, &p).await.ok(202);
    let code3 = sms::last_code(&p).unwrap();
    app.state.clock.set(sent.checked_add(SignedDuration::from_secs(300)).unwrap());
    redeem(&app, &p, &code3).await.problem(422, "code_expired", Some("code"));
    later(&app, 60);
    let sent = app.state.now();
    send_code(&app, &p).await.ok(202);
    let code4 = sms::last_code(&p).unwrap();
    app.state.clock.set(sent.checked_add(SignedDuration::from_secs(299)).unwrap());
    assert_eq!(redeem(&app, &p, &code4).await.ok(200)["new_account"], false);

    // A newer code replaces the older one (an hour later, clear of the hourly limit).
    later(&app, 3600);
    send_code(&app, &p).await.ok(202);
    let old = sms::last_code(&p).unwrap();
    later(&app, 60);
    send_code(&app, &p).await.ok(202);
    let new = sms::last_code(&p).unwrap();
    if old != new {
        redeem(&app, &p, &old).await.problem(422, "wrong_code", Some("code"));
    }
    redeem(&app, &p, &new).await.ok(200);
    // No code was ever sent to this phone.
    redeem(&app, &phone(&app_backend(&app), 2), "123456").await.problem(422, "code_expired", Some("code"));
}

/// The backend of an app (for phone numbers in helpers that only hold the app).
fn app_backend(app: &TestApp) -> Backend {
    if app.store.backend() == "sqlite" {
        Backend::Sqlite
    } else {
        Backend::Postgres(String::new())
    }
}

async fn rate_limits(backend: Backend) {
    let p = phone(&backend, 3);
    let other = phone(&backend, 4);
    let app = app(backend).await;
    set_clock(&app, "2026-09-28 09:00:00");
    send_code(&app, &p).await.ok(202);
    // Within the minute: 429 with Retry-After, nothing written, nothing sent.
    set_clock(&app, "2026-09-28 09:00:59");
    let r = send_code(&app, &p).await;
    r.problem(429, "too_many_codes", Some("phone"));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(app.count("otp_codes").await, 1);
    assert_eq!(sms::codes_sent(&p).len(), 1);
    // A minute on, and four more in the hour.
    for t in ["09:01:00", "09:02:00", "09:03:00", "09:04:00"] {
        set_clock(&app, &format!("2026-09-28 {t}"));
        send_code(&app, &p).await.ok(202);
    }
    // The sixth in the hour is refused until the first leaves the window (10:00).
    set_clock(&app, "2026-09-28 09:30:00");
    let r = send_code(&app, &p).await;
    r.problem(429, "too_many_codes", Some("phone"));
    assert_eq!(r.header("retry-after"), Some("1800"));
    assert!(r.json()["detail"].as_str().unwrap().contains("per hour"));
    assert_eq!(app.count("otp_codes").await, 5);
    assert_eq!(sms::codes_sent(&p).len(), 5);
    // Another phone is not affected.
    send_code(&app, &other).await.ok(202);
    set_clock(&app, "2026-09-28 10:00:00");
    send_code(&app, &p).await.ok(202);
    assert_eq!(sms::codes_sent(&p).len(), 6);
}

/// Requests racing for one phone: one code is sent, and a code signs in once.
async fn races(backend: Backend) {
    let p = phone(&backend, 14);
    let app = app(backend).await;
    let codes = app.count("otp_codes").await;
    // The token is ignored: these endpoints take none.
    let sends: Vec<_> =
        (0..8).map(|_| app.spawn_post_json("unused", "/api/v1/citizen/codes", &json!({"phone": p}), &[])).collect();
    let mut statuses = Vec::new();
    for h in sends {
        statuses.push(h.await.unwrap().status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 429, 429, 429, 429, 429, 429, 429]);
    assert_eq!(app.count("otp_codes").await, codes + 1);
    assert_eq!(sms::codes_sent(&p).len(), 1);

    let code = sms::last_code(&p).unwrap();
    let (users, tokens) = (app.count("users").await, app.count("tokens").await);
    let body = json!({"phone": p, "code": code});
    let tries: Vec<_> = (0..6).map(|_| app.spawn_post_json("unused", "/api/v1/citizen/token", &body, &[])).collect();
    let mut ok = 0;
    for h in tries {
        let r = h.await.unwrap();
        match r.status.as_u16() {
            200 => ok += 1,
            _ => r.problem(422, "code_expired", Some("code")),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!((app.count("users").await, app.count("tokens").await), (users + 1, tokens + 1));
}

// ---- accounts ------------------------------------------------------------------------------

async fn first_sign_in_creates_the_account_once(backend: Backend) {
    let p = phone(&backend, 5);
    let app = app(backend).await;
    let users = app.count("users").await;
    let accounts = app.count("citizen_accounts").await;
    let v = sign_in_phone(&app, &p).await;
    assert_eq!(v["new_account"], true);
    let masked = format!("{}****{}", &p[..3], &p[7..]);
    assert_eq!(v["user"]["username"], format!("p{p}"));
    assert_eq!(v["user"]["display_name"], format!("市民{masked}"));
    assert_eq!(v["user"]["role"], "citizen");
    assert_eq!(v["user"]["scope"], serde_json::to_value(citygrid_core::org::Scope::Own).unwrap());
    let id = v["user"]["id"].as_i64().unwrap();
    assert_eq!(app.count("users").await, users + 1);
    assert_eq!(app.count("citizen_accounts").await, accounts + 1);
    let token = v["token"].as_str().unwrap().to_owned();
    // The token is a session like any other.
    assert_eq!(app.get(&token, "/api/v1/auth/me").await.ok(200)["id"], id);
    let me = app.get(&token, "/api/v1/citizen/me").await.ok(200);
    assert_eq!(me["user_id"], id);
    assert_eq!(me["phone"], p.as_str());
    assert_eq!(me["phone_masked"], masked);
    assert_eq!(me["payout"], json!({"channel": "phone_credit", "account": null}));
    assert_eq!(me["reward_eligible"], true);
    assert_eq!(me["rewards"], json!({"earned_fen": 0, "paid_fen": 0, "pending_fen": 0, "awaiting_approval_fen": 0}));

    // The second sign-in finds the same account.
    later(&app, 60);
    let v = sign_in_phone(&app, &p).await;
    assert_eq!(v["new_account"], false);
    assert_eq!(v["user"]["id"], id);
    assert_eq!(app.count("users").await, users + 1);
    assert_eq!(app.count("citizen_accounts").await, accounts + 1);

    // No password opens a phone account.
    for pw in ["", "demo", &p] {
        let r = post_anon(&app, "/api/v1/auth/token", &json!({"username": format!("p{p}"), "password": pw})).await;
        r.problem(401, "unauthorized", None);
    }

    // The demo has a rewardable citizen with a phone (signed in by code like anyone); the
    // `citizen` demo account has none and stays anonymous.
    let demo = app.store.citizen_account_by_phone("13800000001").await.unwrap().expect("demo citizen");
    let (user, _) = app.store.user_by_name("p13800000001").await.unwrap().expect("demo user");
    assert_eq!(demo.user_id, user.id);
    assert_eq!(user.display_name, "市民138****0001");
    let (anon, _) = app.store.user_by_name("citizen").await.unwrap().expect("citizen");
    assert!(app.store.citizen_account(anon.id).await.unwrap().is_none());
    // Seeding again adds nobody.
    let (users, accounts) = (app.count("users").await, app.count("citizen_accounts").await);
    citygrid_server::bootstrap::load_demo(&app.state).await.unwrap();
    assert_eq!((app.count("users").await, app.count("citizen_accounts").await), (users, accounts));
}

async fn payout_channel(backend: Backend) {
    let p = phone(&backend, 6);
    let app = app(backend).await;
    let token = token_of(&app, &p).await;
    let uri = "/api/v1/citizen/me/payout";
    let refused: Vec<(Value, &str)> = vec![
        (json!({"channel": "wechat"}), "account"),
        (json!({"channel": "wechat", "account": "  "}), "account"),
        (json!({"channel": "wechat", "account": "abc"}), "account"),
        (json!({"channel": "wechat", "account": "has space 123"}), "account"),
        (json!({"channel": "wechat", "account": "x".repeat(65)}), "account"),
        (json!({"channel": "phone_credit", "account": "13800000001"}), "account"),
        (json!({"channel": "cash", "account": "wx_123456"}), "account"),
        (json!({"channel": "bitcoin"}), "channel"),
        (json!({"account": "wx_123456"}), "channel"),
    ];
    for (body, field) in refused {
        put_json(&app, &token, uri, &body).await.problem_in(&body.to_string(), 422, "invalid_field", Some(field));
    }
    let r = app.request(Method::PUT, uri, Some(&token), &[], b"{}".to_vec()).await;
    r.problem(415, "unsupported_media_type", None);
    // Nothing changed.
    let me = app.get(&token, "/api/v1/citizen/me").await.ok(200);
    assert_eq!(me["payout"], json!({"channel": "phone_credit", "account": null}));

    let me = put_json(&app, &token, uri, &json!({"channel": "wechat", "account": " wx_Openid-123456 "})).await.ok(200);
    assert_eq!(me["payout"], json!({"channel": "wechat", "account": "wx_Openid-123456"}));
    let me = put_json(&app, &token, uri, &json!({"channel": "cash"})).await.ok(200);
    assert_eq!(me["payout"], json!({"channel": "cash", "account": null}));
    let me = put_json(&app, &token, uri, &json!({"channel": "phone_credit", "account": null})).await.ok(200);
    assert_eq!(me["payout"], json!({"channel": "phone_credit", "account": null}));
    assert_eq!(app.get(&token, "/api/v1/citizen/me").await.ok(200)["payout"]["channel"], "phone_credit");
}

// ---- follow-up -----------------------------------------------------------------------------

/// A point `n` × ~110 m north of the Quanshan test point: far enough apart for the same-spot
/// rule, in the same unit grid area of the demo city.
fn spot(n: u32) -> (f64, f64) {
    (QUANSHAN.0, QUANSHAN.1 + 0.001 * f64::from(n))
}

async fn report_at(app: &TestApp, token: &str, (lon, lat): (f64, f64), photos: &[&str]) -> Value {
    let mut body = garbage_at(lon, lat);
    if !photos.is_empty() {
        body["photo_ids"] = json!(photos);
    }
    app.report(token, &body).await
}

async fn follow_up_shows_honest_end_states(backend: Backend) {
    let p = phone(&backend, 7);
    let app = app(backend).await;
    let token = token_of(&app, &p).await;
    let collector = app.sign_in("collector").await;
    let acceptor = app.sign_in("acceptor").await;
    let leader = app.sign_in("leader").await;
    let dispatcher = app.sign_in("dispatcher").await;
    let handler = app.sign_in("handler").await;
    let hw = app.department("HW").await;
    let before = app.photo_id(&token, &tiny_png(31)).await;
    let after = app.photo_id(&handler, &tiny_jpeg(None)).await;

    // A: fixed, the whole loop.
    let a = report_at(&app, &token, spot(0), &[&before]).await;
    let a_id = a["id"].as_i64().unwrap();
    assert_eq!(a["source"], "citizen");
    app.step(&collector, a_id, "verify", json!({"confirmed": true, "note": "现场属实"})).await;
    app.step(&acceptor, a_id, "accept", Value::Null).await;
    app.step(&leader, a_id, "file", json!({})).await;
    app.step(&dispatcher, a_id, "dispatch", json!({"department_id": hw})).await;
    app.step(&handler, a_id, "dispose", json!({"note": "已清运", "photo_ids": [after]})).await;
    app.step(&collector, a_id, "check", json!({"passed": true})).await;
    app.step(&leader, a_id, "close", Value::Null).await;
    // B: not the city's responsibility.
    let b_id = report_at(&app, &token, spot(1), &[]).await["id"].as_i64().unwrap();
    app.step(&collector, b_id, "verify", json!({"confirmed": true})).await;
    let note = "该处为小区内部道路，由物业负责";
    app.step(&acceptor, b_id, "reject", json!({"note": note, "reason": "not_city_responsibility"})).await;
    // C: a duplicate of A.
    let c_id = report_at(&app, &token, spot(0), &[]).await["id"].as_i64().unwrap();
    app.step(&acceptor, c_id, "void", json!({"note": "同一问题已在处理", "duplicate_of": a_id})).await;
    // D: not fixed: the collector did not find it.
    let d_id = report_at(&app, &token, spot(2), &[]).await["id"].as_i64().unwrap();
    app.step(&collector, d_id, "verify", json!({"confirmed": false, "note": "现场未发现"})).await;
    app.step(&acceptor, d_id, "reject", json!({"note": "现场未发现该问题", "reason": "not_found"})).await;
    // E: still being verified.
    let e_id = report_at(&app, &token, spot(3), &[]).await["id"].as_i64().unwrap();

    let list = app.get(&token, "/api/v1/citizen/me/reports").await.ok(200);
    let items = list["items"].as_array().unwrap();
    let ids: Vec<i64> = items.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![e_id, d_id, c_id, b_id, a_id], "newest first");
    assert_eq!(list["next_cursor"], Value::Null);
    let by = |id: i64| items.iter().find(|i| i["id"] == id).unwrap().clone();

    let ra = by(a_id);
    assert_eq!((ra["status"].as_str(), ra["status_label"].as_str()), (Some("fixed"), Some("已办结")));
    assert_eq!(ra["number"], a["number"]);
    assert_eq!(ra["class_code"], "06010");
    assert_eq!(ra["class_name"], "暴露垃圾");
    assert_eq!(ra["description"], "路边有一堆暴露垃圾");
    assert_eq!(ra["after_photo_ids"], json!([after]));
    assert_eq!(ra["photo_ids"], json!([before]));
    assert_eq!(ra["status_note"], Value::Null);
    assert_eq!(ra["reward"], json!({"amount_fen": 500, "status": "payable"}), "first verified reporter");
    assert!(ra.get("timeline").is_none(), "lists carry no timeline");

    let rb = by(b_id);
    assert_eq!(
        (rb["status"].as_str(), rb["status_label"].as_str()),
        (Some("not_city_responsibility"), Some("非城管职责"))
    );
    assert_eq!(rb["end_reason"], "not_city_responsibility");
    assert_eq!(rb["status_note"], format!("不属于城市管理职责范围：{note}"));
    assert_eq!(rb["after_photo_ids"], json!([]));
    // Verified, so rewarded, then rejected: the reward was reversed.
    assert_eq!(rb["reward"], json!({"amount_fen": 0, "status": "reversed"}));

    let rc = by(c_id);
    assert_eq!((rc["status"].as_str(), rc["status_label"].as_str()), (Some("duplicate"), Some("重复举报")));
    assert_eq!(rc["duplicate_of"], a["number"]);
    assert_eq!(rc["status_note"], "同一问题已在处理");
    assert_eq!(rc["reward"], Value::Null);

    let rd = by(d_id);
    assert_eq!((rd["status"].as_str(), rd["status_label"].as_str()), (Some("not_fixed"), Some("不予处理")));
    assert_eq!(rd["end_reason"], "not_found");
    assert_eq!(rd["status_note"], "现场核实不属实：现场未发现该问题");

    let re = by(e_id);
    assert_eq!((re["status"].as_str(), re["status_label"].as_str()), (Some("investigating"), Some("核实中")));
    assert_eq!(re["end_reason"], Value::Null);

    // One report, with its public timeline: no staff names, no internal steps.
    let r = app.get(&token, &format!("/api/v1/citizen/me/reports/{a_id}")).await;
    let text = String::from_utf8_lossy(&r.body).to_string();
    let one = r.ok(200);
    let steps: Vec<&str> = one["timeline"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["received", "verified", "accepted", "filed", "dispatched", "disposed", "checked", "fixed"]);
    let tl = one["timeline"].as_array().unwrap();
    assert_eq!(tl[0]["photo_ids"], json!([before]));
    assert_eq!(tl[7]["photo_ids"], json!([after]));
    assert_eq!(tl[7]["label"], "已办结");
    for name in ["张监督员", "李受理员", "王值班长", "赵派遣员", "环卫处处置员", "collector", "acceptor", "actor"]
    {
        assert!(!text.contains(name), "{name} in {text}");
    }
    let one = app.get(&token, &format!("/api/v1/citizen/me/reports/{c_id}")).await.ok(200);
    let last = one["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["step"], "duplicate");
    assert!(last["label"].as_str().unwrap().contains(a["number"].as_str().unwrap()));
    let one = app.get(&token, &format!("/api/v1/citizen/me/reports/{b_id}")).await.ok(200);
    let steps: Vec<&str> = one["timeline"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["received", "verified", "rejected"]);

    // The after-photo: not through /photos (a citizen reads only their uploads there), but
    // through the report it belongs to.
    app.get(&token, &format!("/api/v1/photos/{after}")).await.problem(404, "not_found", None);
    let r = app.get(&token, &format!("/api/v1/citizen/me/reports/{a_id}/photos/{after}")).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let r = app.get(&token, &format!("/api/v1/citizen/me/reports/{a_id}/photos/{before}")).await;
    assert_eq!(r.header("content-type"), Some("image/png"));
    for uri in [
        format!("/api/v1/citizen/me/reports/{b_id}/photos/{after}"),
        format!("/api/v1/citizen/me/reports/{a_id}/photos/{}", "0".repeat(64)),
        format!("/api/v1/citizen/me/reports/{a_id}/photos/x"),
    ] {
        app.get(&token, &uri).await.problem_in(&uri, 404, "not_found", None);
    }

    // Paging.
    let page = app.get(&token, "/api/v1/citizen/me/reports?limit=2").await.ok(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page = app.get(&token, &format!("/api/v1/citizen/me/reports?limit=2&cursor={cursor}")).await.ok(200);
    let ids: Vec<i64> = page["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![c_id, b_id]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page = app.get(&token, &format!("/api/v1/citizen/me/reports?limit=2&cursor={cursor}")).await.ok(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_cursor"], Value::Null);
    for (q, field) in [("limit=0", "limit"), ("limit=101", "limit"), ("cursor=abc", "cursor"), ("cursor=-1", "cursor")]
    {
        let uri = format!("/api/v1/citizen/me/reports?{q}");
        app.get(&token, &uri).await.problem_in(&uri, 400, "invalid_query", Some(field));
    }
    app.get(&token, "/api/v1/citizen/me/reports/abc").await.problem(400, "invalid_path", Some("path"));
    app.get(&token, "/api/v1/citizen/me/reports/999999").await.problem(404, "not_found", None);
    app.assert_replays().await;
}

async fn rewards_follow_the_ledger(backend: Backend) {
    let p = phone(&backend, 8);
    let app = app(backend).await;
    let token = token_of(&app, &p).await;
    let collector = app.sign_in("collector").await;
    let acceptor = app.sign_in("acceptor").await;

    // A verified first report earns the category's reward (exposed garbage: 5 CNY).
    let x = report_at(&app, &token, spot(0), &[]).await;
    let x_id = x["id"].as_i64().unwrap();
    app.step(&collector, x_id, "verify", json!({"confirmed": true})).await;
    let me = app.get(&token, "/api/v1/citizen/me").await.ok(200);
    assert_eq!(
        me["rewards"],
        json!({"earned_fen": 500, "paid_fen": 0, "pending_fen": 500, "awaiting_approval_fen": 0})
    );
    let rw = app.get(&token, "/api/v1/citizen/me/rewards").await.ok(200);
    let items = rw["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["amount_fen"], 500);
    assert_eq!(items[0]["case_id"], x_id);
    assert_eq!(items[0]["case_number"], x["number"]);
    assert_eq!(items[0]["month"], "2026-09");
    assert_eq!(items[0]["status"], "payable");
    assert_eq!(items[0]["settled_month"], Value::Null);
    assert_eq!(rw["totals"], me["rewards"]);

    // A second report, verified and then rejected: its reward is reversed, the totals net out.
    let y_id = report_at(&app, &token, spot(2), &[]).await["id"].as_i64().unwrap();
    app.step(&collector, y_id, "verify", json!({"confirmed": true})).await;
    assert_eq!(app.get(&token, "/api/v1/citizen/me").await.ok(200)["rewards"]["earned_fen"], 1000);
    app.step(&acceptor, y_id, "reject", json!({"note": "经复核不属实", "reason": "other"})).await;
    let rw = app.get(&token, "/api/v1/citizen/me/rewards").await.ok(200);
    let of_y: Vec<&Value> = rw["items"].as_array().unwrap().iter().filter(|i| i["case_id"] == y_id).collect();
    assert_eq!(of_y.len(), 2, "the reward and its reversal: {rw}");
    let (rev, orig) = (of_y[0], of_y[1]);
    assert_eq!((orig["amount_fen"].as_i64(), orig["status"].as_str()), (Some(500), Some("reversed")));
    assert_eq!((rev["amount_fen"].as_i64(), rev["reverses"].as_i64()), (Some(-500), orig["id"].as_i64()));
    assert_eq!(orig["reversed_by"], rev["id"]);
    assert_eq!(rw["totals"]["earned_fen"], 500);
    let report = app.get(&token, &format!("/api/v1/citizen/me/reports/{y_id}")).await.ok(200);
    assert_eq!(report["reward"], json!({"amount_fen": 0, "status": "reversed"}));

    // Paging of the entries.
    let page = app.get(&token, "/api/v1/citizen/me/rewards?limit=2").await.ok(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page = app.get(&token, &format!("/api/v1/citizen/me/rewards?limit=2&cursor={cursor}")).await.ok(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["case_id"], x_id);
    assert_eq!(page["next_cursor"], Value::Null);

    // The settlement of September pays what is payable; the reward and its reversal are
    // settled together (net nothing).
    set_clock(&app, "2026-10-05 10:00:00");
    let token = token_of(&app, &p).await;
    let admin = app.sign_in("admin").await;
    let collector = app.sign_in("collector").await;
    let r = app.post_json(&admin, "/api/v1/settlements", &json!({"month": "2026-09"})).await;
    assert!(matches!(r.status.as_u16(), 200 | 201), "settlement: {}", String::from_utf8_lossy(&r.body));
    let me = app.get(&token, "/api/v1/citizen/me").await.ok(200);
    assert_eq!(
        me["rewards"],
        json!({"earned_fen": 500, "paid_fen": 500, "pending_fen": 0, "awaiting_approval_fen": 0})
    );
    let rw = app.get(&token, "/api/v1/citizen/me/rewards").await.ok(200);
    let x_entry = rw["items"].as_array().unwrap().iter().find(|i| i["case_id"] == x_id).unwrap().clone();
    assert_eq!((x_entry["status"].as_str(), x_entry["settled_month"].as_str()), (Some("settled"), Some("2026-09")));

    // Rewards above the approval threshold wait for an approver.
    let mut rules = app.get(&admin, "/api/v1/rewards/rules").await.ok(200);
    rules["approval_threshold_fen"] = json!(400);
    put_json(&app, &admin, "/api/v1/rewards/rules", &rules).await.ok(200);
    let z_id = report_at(&app, &token, spot(4), &[]).await["id"].as_i64().unwrap();
    app.step(&collector, z_id, "verify", json!({"confirmed": true})).await;
    let me = app.get(&token, "/api/v1/citizen/me").await.ok(200);
    assert_eq!(
        me["rewards"],
        json!({"earned_fen": 500, "paid_fen": 500, "pending_fen": 0, "awaiting_approval_fen": 500})
    );
    let report = app.get(&token, &format!("/api/v1/citizen/me/reports/{z_id}")).await.ok(200);
    assert_eq!(report["reward"], json!({"amount_fen": 500, "status": "pending_approval"}));
    let rw = app.get(&token, "/api/v1/citizen/me/rewards").await.ok(200);
    assert_eq!((rw["items"][0]["case_id"].as_i64(), rw["items"][0]["month"].as_str()), (Some(z_id), Some("2026-10")));

    // An excluded phone earns nothing, and its owner is told.
    let q = phone(&app_backend(&app), 9);
    let q_token = token_of(&app, &q).await;
    let r = app.post_json(&admin, "/api/v1/citizen/exclusions", &json!({"phone": q, "reason": "contractor"})).await;
    r.ok(201);
    assert_eq!(app.get(&q_token, "/api/v1/citizen/me").await.ok(200)["reward_eligible"], false);
    let w_id = report_at(&app, &q_token, YUNLONG, &[]).await["id"].as_i64().unwrap();
    app.step(&collector, w_id, "verify", json!({"confirmed": true})).await;
    let me = app.get(&q_token, "/api/v1/citizen/me").await.ok(200);
    assert_eq!(me["rewards"]["earned_fen"], 0);
    assert_eq!(app.get(&q_token, "/api/v1/citizen/me/rewards").await.ok(200)["items"], json!([]));
}

// ---- exclusions and refusals ---------------------------------------------------------------

async fn exclusions_are_admin_only(backend: Backend) {
    let p = phone(&backend, 10);
    let x = phone(&backend, 11);
    let app = app(backend).await;
    let admin = app.sign_in("admin").await;
    let uri = "/api/v1/citizen/exclusions";
    let spaced = format!("+86 {}-{}-{}", &x[..3], &x[3..7], &x[7..]);
    let v = app.post_json(&admin, uri, &json!({"phone": spaced, "reason": "staff", "note": " 监督员 "})).await.ok(201);
    assert_eq!(v["phone"], x.as_str());
    assert_eq!(v["reason"], "staff");
    assert_eq!(v["note"], "监督员");
    let n = app.count("reward_exclusions").await;
    app.post_json(&admin, uri, &json!({"phone": x, "reason": "other"})).await.problem(409, "already_excluded", None);
    let refused: Vec<(Value, &str)> = vec![
        (json!({"phone": "12345", "reason": "staff"}), "phone"),
        (json!({"phone": p, "reason": "friend"}), "reason"),
        (json!({"phone": p}), "reason"),
        (json!({"reason": "staff"}), "phone"),
        (json!({"phone": p, "reason": "staff", "note": "长".repeat(201)}), "note"),
    ];
    for (body, field) in refused {
        app.post_json(&admin, uri, &body).await.problem_in(&body.to_string(), 422, "invalid_field", Some(field));
    }
    assert_eq!(app.count("reward_exclusions").await, n);
    let list = app.get(&admin, uri).await.ok(200);
    assert!(list["items"].as_array().unwrap().iter().any(|e| e["phone"] == x.as_str() && e["reason"] == "staff"));

    // Nobody else may read or change the list.
    let citizen = token_of(&app, &p).await;
    for who in ["collector", "acceptor", "leader", "dispatcher", "commander", "evaluator", "handler", "citizen"] {
        let t = app.sign_in(who).await;
        for t in [t.as_str(), citizen.as_str()] {
            app.get(t, uri).await.problem_in(who, 403, "forbidden_role", None);
            let r = app.post_json(t, uri, &json!({"phone": p, "reason": "staff"})).await;
            r.problem_in(who, 403, "forbidden_role", None);
            let r = app.request(Method::DELETE, &format!("{uri}/{x}"), Some(t), &[], vec![]).await;
            r.problem_in(who, 403, "forbidden_role", None);
        }
    }
    assert_eq!(app.count("reward_exclusions").await, n);

    let del = |phone: &str| format!("{uri}/{phone}");
    let r = app.request(Method::DELETE, &del(&x), Some(&admin), &[], vec![]).await;
    assert_eq!(r.status.as_u16(), 204);
    let r = app.request(Method::DELETE, &del(&x), Some(&admin), &[], vec![]).await;
    r.problem(404, "not_found", None);
    let r = app.request(Method::DELETE, &del("abc"), Some(&admin), &[], vec![]).await;
    r.problem(400, "invalid_path", Some("phone"));
    assert_eq!(app.count("reward_exclusions").await, n - 1);
}

async fn refusals(backend: Backend) {
    let p = phone(&backend, 12);
    let q = phone(&backend, 13);
    let app = app(backend).await;
    let mine = token_of(&app, &p).await;
    let theirs = token_of(&app, &q).await;
    let photo = app.photo_id(&mine, &tiny_png(77)).await;
    let case = report_at(&app, &mine, spot(0), &[&photo]).await;
    let id = case["id"].as_i64().unwrap();

    let reads = [
        "/api/v1/citizen/me".to_owned(),
        "/api/v1/citizen/me/reports".to_owned(),
        format!("/api/v1/citizen/me/reports/{id}"),
        format!("/api/v1/citizen/me/reports/{id}/photos/{photo}"),
        "/api/v1/citizen/me/rewards".to_owned(),
    ];
    // Without a token.
    for uri in &reads {
        app.request(Method::GET, uri, None, &[], vec![]).await.problem_in(uri, 401, "unauthorized", None);
    }
    let r = app
        .request(
            Method::PUT,
            "/api/v1/citizen/me/payout",
            None,
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await;
    r.problem(401, "unauthorized", None);
    // Staff roles have no citizen account.
    for who in ["admin", "collector", "acceptor", "leader", "dispatcher", "commander", "evaluator", "handler"] {
        let t = app.sign_in(who).await;
        for uri in &reads {
            app.get(&t, uri).await.problem_in(&format!("{who} {uri}"), 403, "forbidden_role", None);
        }
        let r = put_json(&app, &t, "/api/v1/citizen/me/payout", &json!({"channel": "cash"})).await;
        r.problem_in(who, 403, "forbidden_role", None);
    }
    // The anonymous demo citizen has no phone: its reports never earn, and it has no follow-up.
    let anon = app.sign_in("citizen").await;
    for uri in &reads {
        app.get(&anon, uri).await.problem_in(uri, 403, "no_citizen_account", None);
    }
    // Another citizen never sees this one's report.
    app.get(&theirs, &format!("/api/v1/citizen/me/reports/{id}")).await.problem(404, "not_found", None);
    let uri = format!("/api/v1/citizen/me/reports/{id}/photos/{photo}");
    app.get(&theirs, &uri).await.problem(404, "not_found", None);
    assert_eq!(app.get(&theirs, "/api/v1/citizen/me/reports").await.ok(200)["items"], json!([]));
    assert_eq!(app.get(&mine, "/api/v1/citizen/me/reports").await.ok(200)["items"][0]["id"], id);
}

/// The SMS senders themselves: the file sender appends JSON lines, the webhook sender POSTs
/// JSON to the gateway and fails on a non-2xx answer.
async fn senders(_backend: Backend) {
    use sms::CodeSender;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sms.jsonl");
    let file = sms::Configured::parse(&format!("file:{}", path.display()), None).unwrap();
    let m1 = sms::Message::sign_in_code("13900000001", "123456", 5);
    let m2 = sms::Message::sign_in_code("13900000002", "654321", 5);
    file.send(&m1).await.unwrap();
    file.send(&m2).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["phone"].as_str(), lines[0]["code"].as_str()), (Some("13900000001"), Some("123456")));
    assert_eq!(lines[1]["code"], "654321");
    assert!(lines[1]["text"].as_str().unwrap().contains("654321"));
    assert!(lines[1]["at"].is_string());

    // A gateway on loopback that records what it gets and fails for one phone.
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Option<String>, Value)>::new()));
    let seen = got.clone();
    let gateway = axum::Router::new().route(
        "/sms",
        axum::routing::post(move |headers: axum::http::HeaderMap, axum::Json(v): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let auth = headers.get("authorization").and_then(|h| h.to_str().ok()).map(str::to_owned);
                let fail = v["phone"] == "13900000002";
                seen.lock().unwrap().push((auth, v));
                if fail {
                    axum::http::StatusCode::BAD_GATEWAY
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, gateway).await });
    let hook = sms::Configured::parse(&format!("webhook:http://{addr}/sms"), Some("s3cret".into())).unwrap();
    hook.send(&m1).await.unwrap();
    assert!(matches!(hook.send(&m2).await, Err(sms::SmsError::Delivery(_))));
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0.as_deref(), Some("Bearer s3cret"));
    assert_eq!(got[0].1, json!({"phone": "13900000001", "code": "123456", "text": m1.text}));
    server.abort();
    // Nobody listening: a delivery error, not a hang.
    let dead = sms::Configured::parse(&format!("webhook:http://{addr}/sms"), None).unwrap();
    assert!(dead.send(&m1).await.is_err());
}

/// The citizen operations are in the OpenAPI document under the `citizens` tag; all but the
/// two sign-in steps want a token.
async fn documented(backend: Backend) {
    let app = app(backend).await;
    let doc = app.request(Method::GET, "/api/v1/openapi.json", None, &[], vec![]).await.ok(200);
    let ops: &[(&str, &str, bool)] = &[
        ("/api/v1/citizen/codes", "post", false),
        ("/api/v1/citizen/token", "post", false),
        ("/api/v1/citizen/me", "get", true),
        ("/api/v1/citizen/me/payout", "put", true),
        ("/api/v1/citizen/me/reports", "get", true),
        ("/api/v1/citizen/me/reports/{id}", "get", true),
        ("/api/v1/citizen/me/reports/{id}/photos/{photo_id}", "get", true),
        ("/api/v1/citizen/me/rewards", "get", true),
        ("/api/v1/citizen/exclusions", "get", true),
        ("/api/v1/citizen/exclusions", "post", true),
        ("/api/v1/citizen/exclusions/{phone}", "delete", true),
    ];
    for (path, m, secured) in ops {
        let op = &doc["paths"][path][m];
        assert_eq!(op["tags"], json!(["citizens"]), "{m} {path}");
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{m} {path}"));
        assert!(responses.keys().any(|k| k.starts_with('2')), "{m} {path}");
        assert_eq!(op["security"].is_array(), *secured, "{m} {path}");
        if *secured {
            assert!(responses.contains_key("401"), "{m} {path}");
        }
    }
    assert!(doc["paths"]["/api/v1/citizen/codes"]["post"]["responses"]["429"].is_object());
    // The schemas say what the answers hold, and no more.
    let reward = &doc["components"]["schemas"]["RewardOut"]["properties"];
    assert!(reward["amount_fen"].is_object() && reward["status"].is_object());
    assert!(reward.get("needs_approval").is_none() && reward.get("approved").is_none());
}

backend_tests!(
    code_flow,
    rate_limits,
    races,
    first_sign_in_creates_the_account_once,
    payout_channel,
    follow_up_shows_honest_end_states,
    rewards_follow_the_ledger,
    exclusions_are_admin_only,
    refusals,
    senders,
    documented,
);
