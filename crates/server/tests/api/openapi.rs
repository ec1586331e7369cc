//! `GET /api/v1/openapi.json`: valid JSON, every path the router serves, every `$ref` resolves,
//! and every documented operation is really served.

use crate::helpers::{spawn_app, Backend};
use axum::http::Method;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Every API path and its methods. `/api/v1/openapi.json` itself and `/healthz` are served
/// beside the API and not documented in it.
const PATHS: &[(&str, &[&str])] = &[
    ("/api/v1/auth/token", &["post", "delete"]),
    ("/api/v1/auth/me", &["get"]),
    ("/api/v1/cases", &["get", "post"]),
    ("/api/v1/cases/{id}", &["get"]),
    ("/api/v1/cases/{id}/actions/{action}", &["post"]),
    ("/api/v1/photos", &["post"]),
    ("/api/v1/photos/{id}", &["get"]),
    ("/api/v1/catalogue", &["get", "post"]),
    ("/api/v1/catalogue/{kind}/{code}", &["get", "put", "delete"]),
    ("/api/v1/regions", &["get", "post"]),
    ("/api/v1/regions/{code}", &["get", "put", "delete"]),
    ("/api/v1/departments", &["get", "post"]),
    ("/api/v1/departments/{id}", &["get", "put", "delete"]),
    ("/api/v1/users", &["get", "post"]),
    ("/api/v1/settings/stage-limits", &["get", "put"]),
    ("/api/v1/calendar", &["get"]),
    ("/api/v1/calendar/{year}", &["put"]),
    ("/api/v1/map", &["get"]),
    ("/api/v1/map/locate", &["get"]),
    ("/api/v1/map/geocode", &["get"]),
    ("/api/v1/map/reverse", &["get"]),
    ("/api/v1/map/components", &["get"]),
    ("/api/v1/map/components/{id}", &["get"]),
    ("/api/v1/map/layers/{layer}", &["get"]),
    ("/api/v1/map/layers/{layer}/import", &["post"]),
    ("/api/v1/map/cases", &["get"]),
    ("/api/v1/map/cases/within", &["post"]),
    ("/api/v1/citizen/codes", &["post"]),
    ("/api/v1/citizen/token", &["post"]),
    ("/api/v1/citizen/me", &["get"]),
    ("/api/v1/citizen/me/payout", &["put"]),
    ("/api/v1/citizen/me/reports", &["get"]),
    ("/api/v1/citizen/me/reports/{id}", &["get"]),
    ("/api/v1/citizen/me/reports/{id}/photos/{photo_id}", &["get"]),
    ("/api/v1/citizen/me/rewards", &["get"]),
    ("/api/v1/citizen/exclusions", &["get", "post"]),
    ("/api/v1/citizen/exclusions/{phone}", &["delete"]),
    ("/api/v1/rewards/rules", &["get", "put"]),
    ("/api/v1/citizen-services", &["get"]),
    ("/api/v1/citizen-services/{code}", &["put"]),
    ("/api/v1/cases/{id}/duplicates", &["get"]),
    ("/api/v1/cases/{id}/merge", &["post"]),
    ("/api/v1/ledger", &["get"]),
    ("/api/v1/ledger/{id}", &["get"]),
    ("/api/v1/ledger/{id}/approval", &["post"]),
    ("/api/v1/ledger/reconcile", &["post"]),
    ("/api/v1/rewards/budget", &["get"]),
    ("/api/v1/evaluations", &["get"]),
    ("/api/v1/evaluations/cases", &["get"]),
    ("/api/v1/evaluations/config", &["get", "put"]),
    ("/api/v1/settlements", &["get", "post"]),
    ("/api/v1/settlements/{month}", &["get"]),
    ("/api/v1/settlements/{month}/files/{name}", &["get"]),
    ("/api/v1/deductions/statements", &["get"]),
    ("/api/v1/assessments/config", &["get", "put"]),
    ("/api/v1/assessments/streets", &["get"]),
    ("/api/v1/assessments/streets/{month}/publish", &["post"]),
    ("/api/v1/assessments/special", &["get", "post"]),
    ("/api/v1/assessments/draws", &["get", "post"]),
    ("/api/v1/assessments/draws/{id}", &["get"]),
    ("/api/v1/assessments/draws/{id}/inputs", &["get"]),
    ("/api/v1/assessments/draws/{id}/reveal", &["post"]),
    ("/api/v1/assessments/draws/{id}/verify", &["get"]),
    ("/api/v1/assessments/draws/{id}/places/{n}/findings", &["post"]),
    ("/api/v1/assessments/draws/{id}/findings", &["get"]),
    ("/api/v1/contracts/collection/statements", &["get"]),
    ("/api/v1/contracts/cleaning/statements", &["get"]),
    ("/api/v1/evaluations/chart.svg", &["get"]),
    ("/api/v1/evaluations/chart.png", &["get"]),
    ("/api/v1/reports/districts/{code}/{month}", &["get"]),
    ("/api/v1/assessments/streets/chart.svg", &["get"]),
    ("/api/v1/assessments/streets/chart.png", &["get"]),
    ("/api/v1/reports/assessments/{month}", &["get"]),
];

/// Operations that need no token: signing in.
const PUBLIC: &[(&str, &str)] =
    &[("/api/v1/auth/token", "post"), ("/api/v1/citizen/codes", "post"), ("/api/v1/citizen/token", "post")];

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{action}", "accept")
        .replace("{kind}", "event")
        .replace(
            "{code}",
            if path.contains("catalogue") || path.contains("citizen-services") { "06010" } else { "320311" },
        )
        .replace("{month}", "2026-09")
        .replace("{name}", "report-2026-09.csv")
        .replace("{phone}", "13800000001")
        .replace("{photo_id}", &"a".repeat(64))
        .replace("{year}", "2026")
        .replace("{layer}", "grids")
}

fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(s) = x.as_str() {
                        out.insert(s.to_owned());
                    }
                }
                refs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

async fn document(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.request(Method::GET, "/api/v1/openapi.json", None, &[], Vec::new()).await;
    let doc = r.ok(200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["info"]["title"].is_string());

    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(p, ops)| {
            (p.clone(), ops.as_object().unwrap().keys().filter(|k| METHODS.contains(&k.as_str())).cloned().collect())
        })
        .collect();
    let expected: BTreeMap<String, BTreeSet<String>> =
        PATHS.iter().map(|(p, ms)| ((*p).to_owned(), ms.iter().map(|m| (*m).to_owned()).collect())).collect();
    assert_eq!(documented, expected, "documented paths and methods");

    // Every reference resolves.
    let mut all = BTreeSet::new();
    refs(&doc, &mut all);
    assert!(all.len() > 10);
    for r in &all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "$ref {r} does not resolve");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    for name in ["Case", "CaseOut", "Event", "ReportBody", "ActionInput", "Problem", "Limit"] {
        assert!(doc["components"]["schemas"][name].is_object(), "schema {name} is documented");
    }

    // Each documented operation is served, and all but sign-in want a token; each has a
    // success response and documents its 401.
    for (path, methods) in PATHS {
        for m in *methods {
            let op = &doc["paths"][path][m];
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{m} {path}: responses"));
            assert!(responses.keys().any(|k| k.starts_with('2')), "{m} {path}: a 2xx response");
            if PUBLIC.contains(&(*path, *m)) {
                continue;
            }
            assert!(op["security"].is_array(), "{m} {path}: security");
            assert!(responses.contains_key("401"), "{m} {path}: documents 401");
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let res = app.request(method, &concrete(path), None, &[], Vec::new()).await;
            res.problem_in(&format!("{m} {path} without a token"), 401, "unauthorized", None);
        }
    }
    // Served beside the API.
    let health = app.request(Method::GET, "/healthz", None, &[], Vec::new()).await;
    assert_eq!(health.status.as_u16(), 200);
}

/// A method a path does not serve is refused with 405 — as a problem document, like every error.
async fn method_not_allowed_is_a_problem(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.sign_in("admin").await;
    for (path, methods) in PATHS {
        for m in METHODS.iter().filter(|m| !methods.contains(m)) {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let res = app.request(method, &concrete(path), Some(&token), &[], Vec::new()).await;
            let what = format!("{m} {path}");
            assert_eq!(res.status.as_u16(), 405, "{what}");
            assert!(res.header("allow").is_some(), "{what}: Allow header");
            assert_eq!(res.header("content-type"), Some("application/problem+json"), "{what}: content-type");
            assert!(res.json()["code"].is_string(), "{what}: code");
        }
    }
}

backend_tests!(document, method_not_allowed_is_a_problem,);
