//! Sign in, who am I, sign out, token expiry.

use crate::helpers::{bj, spawn_app, ts, Backend};
use axum::http::Method;
use serde_json::json;

async fn sign_in_and_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let json_ct = [("content-type", "application/json")];
    let sign_in = |body: serde_json::Value| {
        app.request(Method::POST, "/api/v1/auth/token", None, &json_ct, body.to_string().into_bytes())
    };
    // Refusals write nothing (no token row) and do not say which part was wrong.
    let before = app.counts().await;
    for body in [
        json!({"username": "leader", "password": "wrong"}),
        json!({"username": "leader", "password": ""}),
        json!({"username": "nobody", "password": "demo"}),
        json!({"username": "LEADER", "password": "demo"}),
    ] {
        let r = sign_in(body.clone()).await;
        r.problem_in(&body.to_string(), 401, "unauthorized", None);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    sign_in(json!({"username": "leader"})).await.problem(422, "invalid_field", Some("password"));
    sign_in(json!({"username": "leader", "password": "demo", "otp": 1})).await.problem(
        422,
        "invalid_field",
        Some("otp"),
    );
    app.request(Method::POST, "/api/v1/auth/token", None, &[("content-type", "text/plain")], b"leader:demo".to_vec())
        .await
        .problem(415, "unsupported_media_type", None);
    assert_eq!(app.counts().await, before);

    // 2026-09-28 09:00 + 12 hours.
    let v = sign_in(json!({"username": "leader", "password": "demo"})).await.ok(200);
    assert_eq!(ts(&v["expires_at"]), Some(bj("2026-09-28 21:00")));
    assert_eq!(v["user"]["username"], "leader");
    assert_eq!(v["user"]["role"], "leader");
    let token = v["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32);
    assert_eq!(app.count("tokens").await, 1);

    let me = app.get(&token, "/api/v1/auth/me").await.ok(200);
    assert_eq!(me["username"], "leader");
    assert_eq!(me["role"], "leader");
    assert_eq!(me["scope"], json!({"kind": "region", "code": "320300"}));
    assert_eq!(me["active"], true);
    assert!(me.get("password_hash").is_none());
    let handler = app.sign_in("handler").await;
    let hme = app.get(&handler, "/api/v1/auth/me").await.ok(200);
    assert_eq!(hme["scope"]["kind"], "department");
    assert_eq!(hme["scope"]["department_id"], app.department("HW").await);
    let citizen = app.sign_in("citizen").await;
    assert_eq!(app.get(&citizen, "/api/v1/auth/me").await.ok(200)["scope"], json!({"kind": "own"}));

    // Tokens are revoked one by one.
    let second = app.sign_in("leader").await;
    assert_ne!(second, token);
    let r = app.request(Method::DELETE, "/api/v1/auth/token", Some(&token), &[], Vec::new()).await;
    assert_eq!(r.status.as_u16(), 204);
    app.get(&token, "/api/v1/auth/me").await.problem(401, "unauthorized", None);
    app.request(Method::DELETE, "/api/v1/auth/token", Some(&token), &[], Vec::new()).await.problem(
        401,
        "unauthorized",
        None,
    );
    assert_eq!(app.get(&second, "/api/v1/auth/me").await.ok(200)["username"], "leader");

    // Malformed Authorization headers.
    for value in ["Basic bGVhZGVyOmRlbW8=", "Bearer", "Bearer ", &second] {
        let r = app.request(Method::GET, "/api/v1/auth/me", None, &[("authorization", value)], Vec::new()).await;
        r.problem_in(value, 401, "unauthorized", None);
    }
    let r = app.request(Method::GET, "/api/v1/auth/me", None, &[], Vec::new()).await;
    r.problem(401, "unauthorized", None);
}

async fn tokens_expire(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.sign_in("acceptor").await;
    app.set_time("2026-09-28 20:59");
    app.get(&token, "/api/v1/auth/me").await.ok(200);
    app.set_time("2026-09-28 21:00");
    app.get(&token, "/api/v1/auth/me").await.problem(401, "unauthorized", None);
}

backend_tests!(sign_in_and_out, tokens_expire);
