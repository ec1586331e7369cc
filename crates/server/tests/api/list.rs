//! `GET /api/v1/cases`: filters, cursor paging, data scope, and bad filter values.

use crate::helpers::{garbage, garbage_at, spawn_app, Backend, TestApp, QUANSHAN, YUNLONG};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// (117.165, 34.274): grid 320311001001001, 泉山区 王陵街道.
const WANGLING: (f64, f64) = (117.165, 34.274);

/// Ids of one page (asserting 200), and every item's shape.
async fn ids(app: &TestApp, token: &str, query: &str) -> BTreeSet<i64> {
    let page = app.get(token, &format!("/api/v1/cases?{query}")).await.ok(200);
    let items = page["items"].as_array().unwrap_or_else(|| panic!("{query}: {page}"));
    assert!(page["next_cursor"].is_null(), "{query}: one page expected");
    items
        .iter()
        .map(|c| {
            assert!(c.get("events").is_none(), "lists carry no events");
            assert!(c["overdue"].is_boolean());
            c["id"].as_i64().unwrap()
        })
        .collect()
}

fn set(v: &[i64]) -> BTreeSet<i64> {
    v.iter().copied().collect()
}

struct Seven {
    app: TestApp,
    t: std::collections::HashMap<&'static str, String>,
    ids: [i64; 7],
    hw: i64,
    hw_qs: i64,
    sz: i64,
}

/// Seven cases, A–G:
/// - 09:00 A collector 泉山 七里沟 grid 320311002002001, reported (accept due 09:30)
/// - 09:00 B collector 云龙 彭城 grid 320303001001004, reported (due 09:30)
/// - 10:30 C citizen 泉山 七里沟, verifying (due 11:30)
/// - 10:30 D hotline (acceptor) 云龙, verifying (due 11:30)
/// - 11:00 E collector 泉山 王陵 grid 320311001001001 → dispatched to HW (due 14:30)
/// - 11:00 F collector 云龙 → dispatched to SZ
/// - 11:00 G collector 泉山 七里沟 → dispatched to HW, handed down to HW-QS
async fn seven(backend: Backend) -> Seven {
    let app = spawn_app(backend).await;
    let mut t = std::collections::HashMap::new();
    for u in ["collector", "acceptor", "leader", "dispatcher", "commander", "handler", "citizen", "evaluator"] {
        t.insert(u, app.sign_in(u).await);
    }
    let (hw, hw_qs, sz) = (app.department("HW").await, app.department("HW-QS").await, app.department("SZ").await);
    let id = |v: Value| v["id"].as_i64().unwrap();
    app.set_time("2026-09-28 09:00");
    let a = id(app.report(&t["collector"], &garbage()).await);
    let b = id(app.report(&t["collector"], &garbage_at(YUNLONG.0, YUNLONG.1)).await);
    app.set_time("2026-09-28 10:30");
    let c = id(app.report(&t["citizen"], &garbage()).await);
    let d = id(app.report(&t["acceptor"], &garbage_at(YUNLONG.0, YUNLONG.1)).await);
    app.set_time("2026-09-28 11:00");
    let mut dispatched = Vec::new();
    for (at, dept) in [(WANGLING, hw), (YUNLONG, sz), (QUANSHAN, hw)] {
        let x = id(app.report(&t["collector"], &garbage_at(at.0, at.1)).await);
        app.step(&t["acceptor"], x, "accept", Value::Null).await;
        app.step(&t["leader"], x, "file", Value::Null).await;
        let c = app.step(&t["dispatcher"], x, "dispatch", json!({"department_id": dept})).await;
        assert_eq!(crate::helpers::ts(&c["deadline"]), Some(crate::helpers::bj("2026-09-28 14:30")));
        dispatched.push(x);
    }
    let [e, f, g] = dispatched[..] else { unreachable!() };
    let handed = app.step(&t["handler"], g, "hand_down", json!({"department_id": hw_qs})).await;
    assert_eq!(handed["department_id"], hw_qs);
    Seven { app, t, ids: [a, b, c, d, e, f, g], hw, hw_qs, sz }
}

async fn filters(backend: Backend) {
    let s = seven(backend).await;
    let [a, b, c, d, e, f, g] = s.ids;
    let app = &s.app;
    let tok = s.t["collector"].clone();
    let q = |query: String| {
        let tok = tok.clone();
        async move { ids(app, &tok, &query).await }
    };
    app.set_time("2026-09-28 11:05");
    assert_eq!(q(String::new()).await, set(&[a, b, c, d, e, f, g]));
    assert_eq!(q("state=reported".into()).await, set(&[a, b]));
    assert_eq!(q("state=reported,verifying".into()).await, set(&[a, b, c, d]));
    assert_eq!(q("state=dispatched".into()).await, set(&[e, f, g]));
    assert_eq!(q("state=closed".into()).await, set(&[]));
    assert_eq!(q("district=320311".into()).await, set(&[a, c, e, g]));
    assert_eq!(q("district=320303".into()).await, set(&[b, d, f]));
    assert_eq!(q("street=320311001".into()).await, set(&[e]));
    assert_eq!(q("street=320311002".into()).await, set(&[a, c, g]));
    assert_eq!(q("community=320311002002".into()).await, set(&[a, c, g]));
    assert_eq!(q("grid=320311002002001".into()).await, set(&[a, c, g]));
    assert_eq!(q("grid=320303001001004".into()).await, set(&[b, d, f]));
    assert_eq!(q(format!("department_id={}", s.hw)).await, set(&[e]));
    assert_eq!(q(format!("department_id={}", s.hw_qs)).await, set(&[g]));
    assert_eq!(q(format!("department_id={}", s.sz)).await, set(&[f]));
    assert_eq!(q("source=citizen".into()).await, set(&[c]));
    assert_eq!(q("source=hotline".into()).await, set(&[d]));
    assert_eq!(q("source=collector".into()).await, set(&[a, b, e, f, g]));
    assert_eq!(q("kind=event&class_code=06010".into()).await, set(&[a, b, c, d, e, f, g]));
    assert_eq!(q("kind=component".into()).await, set(&[]));
    assert_eq!(q("district=320311&state=dispatched".into()).await, set(&[e, g]));
    // Time range: [from, to), RFC 3339 with offset.
    assert_eq!(q("from=2026-09-28T10:30:00%2B08:00".into()).await, set(&[c, d, e, f, g]));
    assert_eq!(q("to=2026-09-28T10:30:00%2B08:00".into()).await, set(&[a, b]));
    assert_eq!(q("from=2026-09-28T02:00:00Z&to=2026-09-28T03:00:00Z".into()).await, set(&[c, d]));
    // Overdue at 11:05: A and B (accept due 09:30); C and D are due 11:30, E–G 14:30.
    assert_eq!(q("overdue=true".into()).await, set(&[a, b]));
    assert_eq!(q("overdue=false".into()).await, set(&[c, d, e, f, g]));
    let page = app.get(&tok, "/api/v1/cases?state=reported").await.ok(200);
    assert!(page["items"].as_array().unwrap().iter().all(|c| c["overdue"] == true && c["light"] == "red"));
    // At 15:00 everything is overdue; a closed case never is.
    app.set_time("2026-09-28 15:00");
    assert_eq!(q("overdue=true".into()).await, set(&[a, b, c, d, e, f, g]));
    assert_eq!(q("overdue=false".into()).await, set(&[]));
    app.step(&s.t["acceptor"], a, "reject", json!({"note": "不属于受理范围"})).await;
    assert_eq!(q("overdue=true".into()).await, set(&[b, c, d, e, f, g]));
    assert_eq!(q("overdue=false".into()).await, set(&[a]));
    // Urged cases.
    app.step(&s.t["commander"], e, "urge", Value::Null).await;
    assert_eq!(q("urged=true".into()).await, set(&[e]));
    app.assert_replays().await;
}

async fn scope(backend: Backend) {
    let s = seven(backend).await;
    let [a, b, c, d, e, f, g] = s.ids;
    let app = &s.app;
    assert_eq!(ids(app, &s.t["collector"], "").await, set(&[a, b, c, d, e, f, g]), "collector: the city");
    assert_eq!(ids(app, &s.t["evaluator"], "").await, set(&[a, b, c, d, e, f, g]), "evaluator: the city");
    assert_eq!(ids(app, &s.t["commander"], "").await, set(&[a, c, e, g]), "commander: 320311 only");
    assert_eq!(ids(app, &s.t["commander"], "district=320303").await, set(&[]));
    assert_eq!(ids(app, &s.t["handler"], "").await, set(&[e, g]), "handler: HW and its sub-units");
    assert_eq!(ids(app, &s.t["handler"], &format!("department_id={}", s.sz)).await, set(&[]));
    assert_eq!(ids(app, &s.t["citizen"], "").await, set(&[c]), "citizen: own reports");
    // The same scope on single reads.
    for (who, visible) in [("commander", vec![a, c, e, g]), ("handler", vec![e, g]), ("citizen", vec![c])] {
        for id in s.ids {
            let r = app.get(&s.t[who], &format!("/api/v1/cases/{id}")).await;
            if visible.contains(&id) {
                assert_eq!(r.ok(200)["id"], id);
            } else {
                r.problem(404, "not_found", None);
            }
        }
    }
}

async fn paging(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    let mut created = Vec::new();
    for i in 0..60 {
        let at = if i % 2 == 0 { QUANSHAN } else { YUNLONG };
        created.push(app.report(&collector, &garbage_at(at.0, at.1)).await["id"].as_i64().unwrap());
    }
    for (limit, pages) in [(25, vec![25, 25, 10]), (20, vec![20, 20, 20]), (60, vec![60]), (500, vec![60])] {
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let uri = match &cursor {
                Some(c) => format!("/api/v1/cases?limit={limit}&cursor={c}"),
                None => format!("/api/v1/cases?limit={limit}"),
            };
            let page = app.get(&collector, &uri).await.ok(200);
            let items = page["items"].as_array().unwrap();
            sizes.push(items.len());
            seen.extend(items.iter().map(|c| c["id"].as_i64().unwrap()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
            assert!(sizes.len() <= 10, "paging does not end");
        }
        assert_eq!(sizes, pages, "page sizes with limit {limit}");
        let mut newest_first = created.clone();
        newest_first.reverse();
        assert_eq!(seen, newest_first, "limit {limit}: every case once, newest first");
    }
    // Paging composes with filters: 30 cases in 泉山区.
    let first = app.get(&collector, "/api/v1/cases?district=320311&limit=25").await.ok(200);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = app.get(&collector, &format!("/api/v1/cases?district=320311&limit=25&cursor={cursor}")).await.ok(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 25);
    assert_eq!(second["items"].as_array().unwrap().len(), 5);
    assert!(second["next_cursor"].is_null());
    // The default page is 50.
    let default = app.get(&collector, "/api/v1/cases").await.ok(200);
    assert_eq!(default["items"].as_array().unwrap().len(), 50);
    assert!(default["next_cursor"].is_string());
}

async fn bad_filters(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    app.report(&collector, &garbage()).await;
    let before = app.counts().await;
    for (query, field) in [
        ("state=bogus", "state"),
        ("state=reported,nope", "state"),
        ("district=1234", "district"),
        ("district=320311001", "district"),
        ("street=320311", "street"),
        ("community=32031100200", "community"),
        ("grid=abc", "grid"),
        ("class_code=123", "class_code"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=-5", "cursor"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2026-09-28", "from"),
        ("department_id=abc", "department_id"),
        ("limit=-1", "limit"),
        ("foo=1", "foo"),
    ] {
        let r = app.get(&collector, &format!("/api/v1/cases?{query}")).await;
        r.problem_in(query, 400, "invalid_query", Some(field));
    }
    assert_eq!(app.counts().await, before);
}

/// Enum and bool filter values name their parameter, not the rejected value.
async fn bad_enum_filters(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    let mut wrong = Vec::new();
    for (query, field) in [("source=martian", "source"), ("kind=animal", "kind"), ("overdue=maybe", "overdue")] {
        let r = app.get(&collector, &format!("/api/v1/cases?{query}")).await;
        assert_eq!(r.status.as_u16(), 400, "{query}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{query}");
        let p = r.json();
        assert_eq!(p["code"], "invalid_query", "{query}");
        if p["field"] != field {
            wrong.push(format!("{query}: field {} (detail {})", p["field"], p["detail"]));
        }
    }
    assert!(wrong.is_empty(), "wrong field named:\n{}", wrong.join("\n"));
}

backend_tests!(filters, scope, paging, bad_filters, bad_enum_filters,);
