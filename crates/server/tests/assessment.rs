//! The street assessment, the three-random draws and the contract statements through the API
//! (issue 5), on SQLite and — with `CITYGRID_TEST_POSTGRES` — on PostgreSQL. Refusals are
//! tested beside the successes: wrong role, wrong scope, bad input (nothing written), a
//! published month.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use axum::http::Method;
use citygrid_core::assessment::draw::{self, Inputs, Place};
use citygrid_core::codes::RegionCode;
use citygrid_core::org::{Role, Scope};
use helpers::{long_tokens, spawn_app_with, tiny_png, Backend, TestApp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

backend_tests!(
    configuration_is_validated_and_guarded,
    special_work_ranking_and_publication,
    draw_commit_reveal_verify_and_findings,
    contract_statements_trace_their_deductions,
);

async fn spawn(backend: Backend) -> TestApp {
    spawn_app_with(backend, long_tokens()).await
}

async fn assessment_count(app: &TestApp, table: &str) -> i64 {
    app.store.assessment_counts().await.unwrap().into_iter().find(|(t, _)| t == table).unwrap().1
}

/// A user with password `pw`; returns its token.
async fn user(app: &TestApp, username: &str, role: Role, scope: Scope) -> String {
    app.store
        .create_user(
            &citygrid_store::NewUser {
                username: username.into(),
                display_name: username.into(),
                password_hash: citygrid_server::auth::hash_password("pw").unwrap(),
                role,
                scope,
            },
            app.state.now(),
        )
        .await
        .unwrap();
    app.sign_in_with(username, "pw").await
}

fn region(code: &str) -> Scope {
    Scope::Region { code: RegionCode::parse(code).unwrap() }
}

async fn configuration_is_validated_and_guarded(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.sign_in("admin").await;
    let evaluator = app.sign_in("evaluator").await;
    let cfg = app.get(&evaluator, "/api/v1/assessments/config").await.ok(200);
    assert_eq!(cfg["weights"], json!({"digital": 60, "special": 20, "on_site": 20}));
    assert_eq!(cfg["collection"]["yearly_fee_fen"], 693_000_000);
    assert_eq!(cfg["collection"]["collectors"], 156);
    for who in ["citizen", "handler", "collector", "acceptor", "dispatcher"] {
        let t = app.sign_in(who).await;
        app.get(&t, "/api/v1/assessments/config").await.problem_in(who, 403, "forbidden_role", None);
    }
    app.put_json(&evaluator, "/api/v1/assessments/config", &cfg).await.problem(403, "forbidden_role", None);
    let mut bad = cfg.clone();
    bad["weights"]["special"] = json!(30);
    app.put_json(&admin, "/api/v1/assessments/config", &bad).await.problem(422, "invalid_field", Some("weights"));
    let mut bad = cfg.clone();
    bad["collection"]["yearly_fee_fen"] = json!(-5);
    app.put_json(&admin, "/api/v1/assessments/config", &bad).await.problem(
        422,
        "invalid_field",
        Some("collection.yearly_fee_fen"),
    );
    let mut bad = cfg.clone();
    bad["street_classes"] = json!({"3203": "fringe"});
    app.put_json(&admin, "/api/v1/assessments/config", &bad).await.problem(
        422,
        "invalid_field",
        Some("street_classes"),
    );
    assert_eq!(app.store.get_setting("assessment.config").await.unwrap(), None, "nothing written");
    let mut good = cfg.clone();
    good["weights"] = json!({"digital": 50, "special": 25, "on_site": 25});
    good["street_classes"] = json!({"320303002": "fringe"});
    app.put_json(&admin, "/api/v1/assessments/config", &good).await.ok(200);
    assert_eq!(app.get(&evaluator, "/api/v1/assessments/config").await.ok(200), good);
}

fn special(month: &str, street: &str, points: f64, photo: &str) -> Value {
    json!({"month": month, "street_code": street, "title": "背街小巷专项整治",
           "items": [{"item": "垃圾清运不及时", "points": points}], "photo_ids": [photo]})
}

/// Part (a): the comprehensive evaluation's street scores for a month, by street code.
async fn digital(app: &TestApp, token: &str, month: &str) -> std::collections::HashMap<String, f64> {
    let last = if month == "2026-09" { "30" } else { "31" };
    let page = app
        .get(token, &format!("/api/v1/evaluations?subject=region&level=street&from={month}-01&to={month}-{last}"))
        .await
        .ok(200);
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["subject_id"].as_str().unwrap().to_owned(), r["score"].as_f64().unwrap()))
        .collect()
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn row<'a>(ranking: &'a Value, street: &str) -> &'a Value {
    ranking["rows"].as_array().unwrap().iter().find(|r| r["street_code"] == street).unwrap()
}

async fn special_work_ranking_and_publication(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.sign_in("admin").await;
    let evaluator = app.sign_in("evaluator").await;
    let commander = app.sign_in("commander").await;
    let photo = app.photo_id(&evaluator, &tiny_png(3)).await;
    let uri = "/api/v1/assessments/special";
    // Refusals first: roles, scope, bad input. Nothing is written.
    for who in ["citizen", "handler", "collector", "leader", "commander"] {
        let t = app.sign_in(who).await;
        app.post_json(&t, uri, &special("2026-09", "320311001", -5.0, &photo)).await.problem_in(
            who,
            403,
            "forbidden_role",
            None,
        );
    }
    let yunlong = user(&app, "kp-yl", Role::Evaluator, region("320303")).await;
    app.post_json(&yunlong, uri, &special("2026-09", "320311001", -5.0, &photo)).await.problem(
        403,
        "out_of_scope",
        None,
    );
    let bad: Vec<(Value, &str)> = vec![
        (special("2026-9", "320311001", -5.0, &photo), "month"),
        (special("2026-10", "320311001", -5.0, &photo), "month"),
        (special("2026-09", "320311", -5.0, &photo), "street_code"),
        (special("2026-09", "320311009", -5.0, &photo), "street_code"),
        (special("2026-09", "320311001", -500.0, &photo), "items[0].points"),
        (special("2026-09", "320311001", -5.0, &"0".repeat(64)), "photo_ids"),
        (special("2026-09", "320311001", -5.0, "not-a-photo"), "photo_ids"),
    ];
    for (body, field) in bad {
        app.post_json(&evaluator, uri, &body).await.problem_in(field, 422, "invalid_field", Some(field));
    }
    let mut no_photo = special("2026-09", "320311001", -5.0, &photo);
    no_photo["photo_ids"] = json!([]);
    app.post_json(&evaluator, uri, &no_photo).await.problem(422, "invalid_field", Some("photo_ids"));
    let mut no_items = special("2026-09", "320311001", -5.0, &photo);
    no_items["items"] = json!([]);
    app.post_json(&evaluator, uri, &no_items).await.problem(422, "invalid_field", Some("items"));
    assert_eq!(assessment_count(&app, "special_assessments").await, 0);
    // Two entries for 七里沟 (−5, +1), one for 彭城 by the Yunlong evaluator (in scope).
    let s = app.post_json(&evaluator, uri, &special("2026-09", "320311002", -5.0, &photo)).await.ok(201);
    assert_eq!(s["points"], -5.0);
    app.post_json(&evaluator, uri, &special("2026-09", "320311002", 1.0, &photo)).await.ok(201);
    app.post_json(&yunlong, uri, &special("2026-09", "320303001", -10.0, &photo)).await.ok(201);
    let list = app.get(&commander, "/api/v1/assessments/special?month=2026-09").await.ok(200);
    assert_eq!(list.as_array().unwrap().len(), 2, "the commander sees its district's entries");
    // The ranking: 0.6 × (a) + 0.2 × (b) + 0.2 × (c), (a) from the comprehensive evaluation.
    let sept = app.get(&evaluator, "/api/v1/assessments/streets?month=2026-09").await.ok(200);
    assert_eq!(sept["published"], false);
    let a = digital(&app, &evaluator, "2026-09").await;
    assert_eq!(a.len(), 4, "one evaluation row per street");
    let rows = sept["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        let d = a[r["street_code"].as_str().unwrap()];
        assert_eq!(r["digital"].as_f64().unwrap(), d, "part (a) is the evaluation's score");
        let expected =
            round2((60.0 * d + 20.0 * r["special"].as_f64().unwrap() + 20.0 * r["on_site"].as_f64().unwrap()) / 100.0);
        assert_eq!(r["score"].as_f64().unwrap(), expected);
    }
    // No case in the demo city yet: every street has the same (a), so (b) decides.
    assert!(a.values().all(|v| *v == a["320311001"]), "{a:?}");
    let got: Vec<(&str, u64, f64)> = rows
        .iter()
        .map(|r| (r["street_code"].as_str().unwrap(), r["rank"].as_u64().unwrap(), r["special"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![("320303002", 1, 100.0), ("320311001", 1, 100.0), ("320311002", 3, 96.0), ("320303001", 4, 90.0)]
    );
    assert_eq!(row(&sept, "320311002")["special_count"], 2);
    assert_eq!(row(&sept, "320311002")["class"], "urban");
    let own = app.get(&commander, "/api/v1/assessments/streets?month=2026-09").await.ok(200);
    let codes: Vec<&str> = own["rows"].as_array().unwrap().iter().map(|r| r["street_code"].as_str().unwrap()).collect();
    assert_eq!(codes, vec!["320311001", "320311002"], "a district sees its streets, with city ranks");
    for who in ["citizen", "handler", "acceptor"] {
        let t = app.sign_in(who).await;
        app.get(&t, "/api/v1/assessments/streets?month=2026-09").await.problem_in(who, 403, "forbidden_role", None);
    }
    app.get(&evaluator, "/api/v1/assessments/streets?month=2026-13").await.problem(400, "invalid_query", Some("month"));
    // Publication: only once the month has ended, only by an administrator, only once.
    let publish = "/api/v1/assessments/streets/2026-09/publish";
    app.request(Method::POST, publish, Some(&admin), &[], vec![]).await.problem(422, "invalid_field", Some("month"));
    app.set_time("2026-10-02 09:00");
    app.request(Method::POST, publish, Some(&evaluator), &[], vec![]).await.problem(403, "forbidden_role", None);
    app.request(Method::POST, publish, Some(&commander), &[], vec![]).await.problem(403, "forbidden_role", None);
    let p = app.request(Method::POST, publish, Some(&admin), &[], vec![]).await.ok(201);
    assert_eq!(p["published"], true);
    app.request(Method::POST, publish, Some(&admin), &[], vec![]).await.problem(409, "already_published", None);
    // Frozen: no more entries for September, and the published rows stay as they were.
    app.post_json(&evaluator, uri, &special("2026-09", "320311001", -1.0, &photo)).await.problem(
        409,
        "published",
        None,
    );
    assert_eq!(assessment_count(&app, "special_assessments").await, 3);
    let mut cfg = app.get(&admin, "/api/v1/assessments/config").await.ok(200);
    cfg["weights"] = json!({"digital": 0, "special": 100, "on_site": 0});
    app.put_json(&admin, "/api/v1/assessments/config", &cfg).await.ok(200);
    let frozen = app.get(&evaluator, "/api/v1/assessments/streets?month=2026-09").await.ok(200);
    assert_eq!(frozen["rows"], p["rows"]);
    // October against the published September: 彭城 moves from 4th to 1st (everyone 100 now).
    let oct = app.get(&evaluator, "/api/v1/assessments/streets?month=2026-10").await.ok(200);
    assert_eq!(row(&oct, "320303001")["rank"], 1);
    assert_eq!(row(&oct, "320303001")["rank_delta"], 3);
    let before = row(&p, "320303001")["score"].as_f64().unwrap();
    assert_eq!(row(&oct, "320303001")["score"], 100.0, "weights now 0/100/0");
    assert_eq!(row(&oct, "320303001")["score_delta"].as_f64().unwrap(), round2(100.0 - before));
    assert_eq!(row(&oct, "320311002")["rank_delta"], 2);
}

/// The grid's centre, a point inside it.
fn centre(app: &TestApp, grid: &str) -> (f64, f64) {
    app.state.grids().centroid(&RegionCode::parse(grid).unwrap()).unwrap()
}

fn finding(lon: f64, lat: f64, photo: &str) -> Value {
    json!({"kind": "event", "class_code": "06010", "description": "实地考核：路边暴露垃圾",
           "location": {"lon": lon, "lat": lat}, "photo_ids": [photo]})
}

async fn draw_commit_reveal_verify_and_findings(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.sign_in("admin").await;
    let evaluator = app.sign_in("evaluator").await;
    let commander = app.sign_in("commander").await;
    let mut tokens = std::collections::HashMap::new();
    tokens.insert("evaluator".to_owned(), evaluator.clone());
    tokens.insert("kp2".to_owned(), user(&app, "kp2", Role::Evaluator, region("320300")).await);
    tokens.insert("kp-qs".to_owned(), user(&app, "kp-qs", Role::Evaluator, region("320311")).await);
    tokens.insert("kp4".to_owned(), user(&app, "kp4", Role::Evaluator, region("320300")).await);
    let uri = "/api/v1/assessments/draws";
    // Refusals: roles, scope, periods in the past or outside the month.
    for who in ["citizen", "handler", "collector", "leader"] {
        let t = app.sign_in(who).await;
        app.post_json(&t, uri, &json!({"month": "2026-10"})).await.problem_in(who, 403, "forbidden_role", None);
    }
    app.post_json(&tokens["kp-qs"], uri, &json!({"month": "2026-10"})).await.problem(403, "out_of_scope", None);
    for (body, field) in [
        (json!({"month": "2026-09", "from": "2026-09-28"}), "from"),
        (json!({"month": "2026-10", "from": "2026-11-02"}), "from"),
        (json!({"month": "2026-10", "to": "2026-10-40"}), "to"),
        (json!({"month": "2026-10", "from": "2026-10-20", "to": "2026-10-19"}), "to"),
        (json!({"month": "2026-10", "places_per_street": 0}), "places_per_street"),
        (json!({"month": "10/2026"}), "month"),
    ] {
        app.post_json(&evaluator, uri, &body).await.problem_in(field, 422, "invalid_field", Some(field));
    }
    assert_eq!(assessment_count(&app, "assessment_draws").await, 0);
    // The three city-wide assessors belong to 云龙's streets (configuration), so 云龙 can only
    // get kp-qs, whose own district is 泉山.
    let mut cfg = app.get(&admin, "/api/v1/assessments/config").await.ok(200);
    let yunlong = json!(["320303001", "320303002"]);
    cfg["assessor_streets"] = json!({"evaluator": yunlong, "kp2": yunlong, "kp4": yunlong});
    app.put_json(&admin, "/api/v1/assessments/config", &cfg).await.ok(200);
    // The draw: the hash is published, the seed is not.
    let d = app.post_json(&evaluator, uri, &json!({"month": "2026-10"})).await.ok(201);
    let id = d["id"].as_i64().unwrap();
    assert_eq!(d["seed"], Value::Null);
    assert_eq!(d["revealed"], false);
    assert_eq!(d["seed_hash"].as_str().unwrap().len(), 64);
    assert_eq!((d["from"].as_str(), d["to"].as_str()), (Some("2026-10-01"), Some("2026-10-31")));
    let places: Vec<Place> = serde_json::from_value(d["places"].clone()).unwrap();
    assert_eq!(places.len(), 4, "every street drawn");
    for p in &places {
        assert!(!(p.assessor == "kp-qs" && p.street_code.starts_with("320311")), "never an assessor's own street");
        assert_eq!(p.assessor == "kp-qs", p.street_code.starts_with("320303"), "{p:?}");
        assert!(p.grid_code.starts_with(&p.street_code));
    }
    let seen = app.get(&commander, &format!("{uri}/{id}")).await.ok(200);
    assert_eq!(seen["seed"], Value::Null, "GET shows the hash, not the seed");
    assert_eq!(seen["places"].as_array().unwrap().len(), 2, "a district sees its streets' places");
    app.get(&evaluator, &format!("{uri}/{id}/verify")).await.problem(409, "not_revealed", None);
    let inputs_text = app.get_text(&evaluator, &format!("{uri}/{id}/inputs")).await;
    assert_eq!(hex::encode(Sha256::digest(inputs_text.as_bytes())), d["inputs_sha256"].as_str().unwrap());
    // Reveal: the seed hashes to the published hash, and re-running the draw gives its places.
    app.request(Method::POST, &format!("{uri}/{id}/reveal"), Some(&commander), &[], vec![]).await.problem(
        403,
        "forbidden_role",
        None,
    );
    let r = app.request(Method::POST, &format!("{uri}/{id}/reveal"), Some(&evaluator), &[], vec![]).await.ok(200);
    let seed: [u8; 32] = hex::decode(r["seed"].as_str().unwrap()).unwrap().try_into().unwrap();
    assert_eq!(hex::encode(Sha256::digest(seed)), d["seed_hash"].as_str().unwrap());
    let inputs: Inputs = serde_json::from_str(&inputs_text).unwrap();
    assert_eq!(draw::draw(seed, &inputs).unwrap(), places, "reproducible from the revealed seed");
    let v = app.get(&commander, &format!("{uri}/{id}/verify")).await.ok(200);
    assert_eq!(v["valid"], true, "{v}");
    // The next draw may not repeat a pair of this one: with 云龙 reserved for kp-qs, nobody is
    // left for it (409, nothing written); without the reservation it draws other pairs.
    app.post_json(&evaluator, uri, &json!({"month": "2026-10"})).await.problem(409, "draw_impossible", None);
    assert_eq!(assessment_count(&app, "assessment_draws").await, 1);
    cfg["assessor_streets"] = json!({});
    app.put_json(&admin, "/api/v1/assessments/config", &cfg).await.ok(200);
    let d2 = app.post_json(&evaluator, uri, &json!({"month": "2026-10", "from": "2026-10-15"})).await.ok(201);
    let places2: Vec<Place> = serde_json::from_value(d2["places"].clone()).unwrap();
    for p in &places2 {
        assert!(!places.iter().any(|q| q.assessor_id == p.assessor_id && q.street_code == p.street_code));
    }
    // Findings at place 1, by its assessor, inside its grid.
    let place = &places[0];
    let assessor = tokens[&place.assessor].clone();
    let other = tokens.iter().find(|(u, _)| **u != place.assessor).map(|(_, t)| t.clone()).unwrap();
    let photo = app.photo_id(&assessor, &tiny_png(9)).await;
    let (lon, lat) = centre(&app, &place.grid_code);
    let furi = format!("{uri}/{id}/places/1/findings");
    let cases_before = app.count("cases").await;
    app.post_json(&other, &furi, &finding(lon, lat, &photo)).await.problem(403, "not_your_place", None);
    app.post_json(&commander, &furi, &finding(lon, lat, &photo)).await.problem(403, "forbidden_role", None);
    app.post_json(&assessor, &format!("{uri}/{id}/places/99/findings"), &finding(lon, lat, &photo)).await.problem(
        404,
        "not_found",
        None,
    );
    app.post_json(&assessor, &format!("{uri}/999/places/1/findings"), &finding(lon, lat, &photo)).await.problem(
        404,
        "not_found",
        None,
    );
    let elsewhere = centre(&app, if place.grid_code.ends_with("001") { "320311001001002" } else { "320311001001001" });
    app.post_json(&assessor, &furi, &finding(elsewhere.0, elsewhere.1, &photo)).await.problem(
        422,
        "invalid_field",
        Some("location"),
    );
    let mut no_photo = finding(lon, lat, &photo);
    no_photo["photo_ids"] = json!([]);
    app.post_json(&assessor, &furi, &no_photo).await.problem(422, "invalid_field", Some("photo_ids"));
    let mut bad_class = finding(lon, lat, &photo);
    bad_class["class_code"] = json!("99999");
    app.post_json(&assessor, &furi, &bad_class).await.problem(422, "invalid_field", Some("class_code"));
    assert_eq!(app.count("cases").await, cases_before, "refused findings file no case");
    assert_eq!(assessment_count(&app, "assessment_findings").await, 0);
    let f = app.post_json(&assessor, &furi, &finding(lon, lat, &photo)).await.ok(201);
    assert_eq!(f["grid_code"], place.grid_code.as_str());
    assert_eq!(f["points"], 2.0);
    let case = app.get(&admin, &format!("/api/v1/cases/{}", f["case_id"])).await.ok(200);
    assert_eq!(case["source"], "leader");
    assert_eq!(case["state"], "reported");
    assert_eq!(case["grid_code"], place.grid_code.as_str());
    // Every other place too, each by its assessor: kp-qs files in 云龙, outside its own scope,
    // because the draw sent it there.
    for p in &places[1..] {
        let t = &tokens[&p.assessor];
        let photo = app.photo_id(t, &tiny_png(10 + p.n as u8)).await;
        let (lon, lat) = centre(&app, &p.grid_code);
        let f =
            app.post_json(t, &format!("{uri}/{id}/places/{}/findings", p.n), &finding(lon, lat, &photo)).await.ok(201);
        assert_eq!(f["street_code"], p.street_code.as_str());
    }
    let listed = app.get(&evaluator, &format!("{uri}/{id}/findings")).await.ok(200);
    assert_eq!(listed.as_array().unwrap().len(), 4);
    let theirs = app.get(&commander, &format!("{uri}/{id}/findings")).await.ok(200);
    assert_eq!(theirs.as_array().unwrap().len(), 2, "a district sees its streets' findings");
    // A finding takes its points off the street's on-site part of October.
    let oct = app.get(&evaluator, "/api/v1/assessments/streets?month=2026-10").await.ok(200);
    let r = row(&oct, &place.street_code);
    assert_eq!((r["on_site"].as_f64(), r["findings"].as_u64()), (Some(98.0), Some(1)));
    let d = digital(&app, &evaluator, "2026-10").await[&place.street_code];
    assert_eq!(r["score"].as_f64().unwrap(), round2(0.6 * d + 20.0 + 0.2 * 98.0));
    app.assert_replays().await;
}

async fn citizen(app: &TestApp, phone: &str) -> String {
    let username = format!("p{phone}");
    app.store
        .create_citizen(
            &citygrid_store::NewUser {
                username: username.clone(),
                display_name: format!("市民{phone}"),
                password_hash: citygrid_server::auth::hash_password("pw").unwrap(),
                role: Role::Citizen,
                scope: Scope::Own,
            },
            phone,
            "wechat",
            app.state.now(),
        )
        .await
        .unwrap();
    app.sign_in_with(&username, "pw").await
}

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]})
}

async fn import_areas(app: &TestApp, admin: &str) {
    for (layer, owner) in [("contractor_areas", "彭城保洁公司"), ("collector_areas", "collector")] {
        let body = json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"code": "A1", "name": "全域", "owner": owner},
             "geometry": rect(117.1625, 34.2455, 117.2125, 34.2755)}]})
        .to_string();
        app.request(
            Method::POST,
            &format!("/api/v1/map/layers/{layer}/import"),
            Some(admin),
            &[("content-type", "application/geo+json")],
            body.into_bytes(),
        )
        .await
        .ok(200);
    }
}

async fn contract_statements_trace_their_deductions(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.sign_in("admin").await;
    let evaluator = app.sign_in("evaluator").await;
    import_areas(&app, &admin).await;
    let c1 = citizen(&app, "13900000001").await;
    let collector = app.sign_in("collector").await;
    let id = app.report(&c1, &helpers::garbage_at(117.18, 34.26)).await["id"].as_i64().unwrap();
    app.step(&collector, id, "verify", json!({"confirmed": true})).await;
    // Refusals: roles and scope (contracts are city-wide), bad month.
    let c = "/api/v1/contracts/collection/statements?month=2026-09";
    for who in ["citizen", "handler", "collector", "acceptor", "dispatcher"] {
        let t = app.sign_in(who).await;
        app.get(&t, c).await.problem_in(who, 403, "forbidden_role", None);
    }
    let commander = app.sign_in("commander").await;
    app.get(&commander, c).await.problem(403, "forbidden_role", None);
    let district_evaluator = user(&app, "kp-qs", Role::Evaluator, region("320311")).await;
    app.get(&district_evaluator, c).await.problem(403, "out_of_scope", None);
    app.get(&evaluator, "/api/v1/contracts/collection/statements?month=2026-9").await.problem(
        400,
        "invalid_query",
        Some("month"),
    );
    // The collection statement: a twelfth of 6.93 M CNY, the missed report with its case, and
    // coverage below 95 % (one grid of 100 visited) costing 1 % of the month's fee.
    let s = app.get(&evaluator, c).await.ok(200);
    assert_eq!(s["fee_fen"], 57_750_000);
    assert_eq!(s["collectors_contracted"], 156);
    assert_eq!(s["collectors_active"], 1);
    let level = |name: &str| s["levels"].as_array().unwrap().iter().find(|l| l["name"] == name).unwrap().clone();
    assert_eq!(
        (level("coverage")["numerator"].as_i64(), level("coverage")["denominator"].as_i64()),
        (Some(1), Some(100))
    );
    assert_eq!(level("coverage")["met"], false);
    assert_eq!(level("coverage")["penalty_fen"], 577_500);
    assert_eq!(level("on_time_verification")["met"], true);
    let ledger: Vec<&Value> = s["deductions"].as_array().unwrap().iter().filter(|d| d["source"] == "ledger").collect();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["case_id"], id);
    assert_eq!(ledger[0]["amount_fen"], 2000);
    assert_eq!(ledger[0]["owner"], "collector");
    assert_eq!(s["deductions_fen"], 2000 + 577_500);
    assert_eq!(s["net_payable_fen"], 57_750_000 - 579_500);
    assert_eq!(s["net_payable_yuan"], "571705.00");
    // Cleaning: the contractor's deduction with its case; the fee as configured.
    let mut cfg = app.get(&admin, "/api/v1/assessments/config").await.ok(200);
    cfg["cleaning"]["yearly_fee_fen"] = json!({"彭城保洁公司": 120_000_000});
    app.put_json(&admin, "/api/v1/assessments/config", &cfg).await.ok(200);
    let all = app.get(&evaluator, "/api/v1/contracts/cleaning/statements?month=2026-09").await.ok(200);
    assert_eq!(all.as_array().unwrap().len(), 1);
    let st = &all[0];
    assert_eq!(st["party"], "彭城保洁公司");
    assert_eq!(st["fee_fen"], 10_000_000);
    assert_eq!(st["deductions"][0]["case_id"], id);
    assert_eq!(st["deductions_fen"], 5000);
    assert_eq!(st["net_payable_fen"], 9_995_000);
    let one = app
        .get(&evaluator, "/api/v1/contracts/cleaning/statements?month=2026-09&contractor=%E5%BD%AD%E5%9F%8E%E4%BF%9D%E6%B4%81%E5%85%AC%E5%8F%B8")
        .await
        .ok(200);
    assert_eq!(one, all);
    app.get(&evaluator, "/api/v1/contracts/cleaning/statements?month=2026-09&contractor=nobody").await.problem(
        404,
        "not_found",
        None,
    );
    app.get(&commander, "/api/v1/contracts/cleaning/statements?month=2026-09").await.problem(
        403,
        "forbidden_role",
        None,
    );
}
