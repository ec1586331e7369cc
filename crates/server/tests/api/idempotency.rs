//! `Idempotency-Key` on `POST /api/v1/cases`: a retry returns the first answer and writes nothing.

use crate::helpers::{garbage, spawn_app, Backend};
use serde_json::json;

async fn same_key_same_body_replays(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    let before = app.counts().await;
    let key = [("idempotency-key", "c0ffee-1")];
    let first = app.post_json_with(&collector, "/api/v1/cases", &garbage(), &key).await;
    let a = first.ok(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let after_first = app.counts().await;
    let second = app.post_json_with(&collector, "/api/v1/cases", &garbage(), &key).await;
    let b = second.ok(201);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["number"], b["number"]);
    assert_eq!(a, b, "the replay answers with the same case");
    assert_eq!(app.counts().await, after_first, "the replay wrote nothing");
    let grew = |t: &str| {
        let get = |v: &Vec<(String, i64)>| v.iter().find(|(n, _)| n == t).map(|(_, c)| *c).unwrap();
        get(&after_first) - get(&before)
    };
    assert_eq!(grew("cases"), 1);
    assert_eq!(grew("case_events"), 1);
    assert_eq!(grew("idempotency"), 1);

    // The same body again with another key, or without one, is a new case.
    let c =
        app.post_json_with(&collector, "/api/v1/cases", &garbage(), &[("idempotency-key", "c0ffee-2")]).await.ok(201);
    let d = app.report(&collector, &garbage()).await;
    assert_ne!(c["id"], a["id"]);
    assert_ne!(d["id"], c["id"]);
    assert_eq!(app.count("cases").await, 3);
}

async fn same_key_other_body_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    let key = [("idempotency-key", "report-42")];
    app.post_json_with(&collector, "/api/v1/cases", &garbage(), &key).await.ok(201);
    let before = app.counts().await;
    let mut other = garbage();
    other["description"] = json!("另一处暴露垃圾");
    let r = app.post_json_with(&collector, "/api/v1/cases", &other, &key).await;
    r.problem(422, "idempotency_mismatch", Some("Idempotency-Key"));
    assert_eq!(app.counts().await, before, "nothing written");
    // A key that came with a refused request was never claimed: it works afterwards.
    let mut bad = garbage();
    bad["class_code"] = json!("06999");
    let fresh = [("idempotency-key", "report-43")];
    app.post_json_with(&collector, "/api/v1/cases", &bad, &fresh).await.problem(
        422,
        "invalid_field",
        Some("class_code"),
    );
    assert_eq!(app.counts().await, before);
    app.post_json_with(&collector, "/api/v1/cases", &other, &fresh).await.ok(201);
}

async fn keys_are_per_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    let acceptor = app.sign_in("acceptor").await;
    let key = [("idempotency-key", "shared-key")];
    let a = app.post_json_with(&collector, "/api/v1/cases", &garbage(), &key).await;
    let b = app.post_json_with(&acceptor, "/api/v1/cases", &garbage(), &key).await;
    let (a, b) = (a.ok(201), b.ok(201));
    assert_ne!(a["id"], b["id"]);
    assert_eq!(a["source"], "collector");
    assert_eq!(b["source"], "hotline");
    assert_eq!(b["state"], "verifying", "hotline reports are verified first");
    assert_eq!(app.count("cases").await, 2);
    assert_eq!(app.count("idempotency").await, 2);
}

async fn concurrent_retries_create_one_case(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    let key = [("idempotency-key", "burst")];
    let body = garbage();
    let tries: Vec<_> = (0..8).map(|_| app.spawn_post_json(&collector, "/api/v1/cases", &body, &key)).collect();
    let mut answers = Vec::new();
    for t in tries {
        answers.push(t.await.unwrap());
    }
    let ids: std::collections::BTreeSet<i64> = answers.iter().map(|r| r.ok(201)["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 1, "every retry answers with the same case");
    assert_eq!(answers.iter().filter(|r| r.header("idempotent-replayed").is_none()).count(), 1);
    assert_eq!(app.count("cases").await, 1);
    app.assert_replays().await;
}

async fn concurrent_reports_get_distinct_numbers(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    let tries: Vec<_> = (0..12).map(|_| app.spawn_post_json(&collector, "/api/v1/cases", &garbage(), &[])).collect();
    let mut numbers = std::collections::BTreeSet::new();
    for t in tries {
        numbers.insert(t.await.unwrap().ok(201)["number"].as_str().unwrap().to_owned());
    }
    let expected: std::collections::BTreeSet<String> = (1..=12).map(|n| format!("20260928{n:05}")).collect();
    assert_eq!(numbers, expected);
    assert_eq!(app.count("cases").await, 12);
}

backend_tests!(
    concurrent_reports_get_distinct_numbers,
    same_key_same_body_replays,
    same_key_other_body_is_refused,
    keys_are_per_user,
    concurrent_retries_create_one_case
);
