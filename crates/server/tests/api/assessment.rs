//! The street assessment, the three-random draws and the contract statements through the API
//! (issue 5), on SQLite and — with `CITYGRID_TEST_POSTGRES` — on PostgreSQL. Refusals are
//! tested beside the successes: wrong role, wrong scope, bad input (nothing written), a
//! published month.

use crate::helpers::{citizen, import_areas, long_tokens, spawn_app_with, tiny_png, zip_part, Backend, TestApp};
use axum::http::Method;
use citygrid_core::assessment::draw::{self, Inputs, Place};
use citygrid_core::codes::RegionCode;
use citygrid_core::org::{Role, Scope};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

backend_tests!(
    configuration_is_validated_and_guarded,
    special_work_ranking_and_publication,
    draw_commit_reveal_verify_and_findings,
    contract_statements_trace_their_deductions,
    street_charts_and_the_monthly_report,
    report_chart_and_download_refusals,
);

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A CSV download's lines: UTF-8 with a BOM, CRLF. The demo city's names and the test data hold
/// no commas or quotes, so a plain split is enough.
fn csv_lines(r: &crate::helpers::Resp) -> Vec<Vec<String>> {
    assert_eq!(r.status.as_u16(), 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    crate::helpers::csv_lines(&r.body)
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// The first sheet of an XLSX download as rows of cell texts, by column: shared strings
/// resolved, numbers as stored (`<v>`), empty cells as "". Checks that numbers are numbers:
/// a number cell has no `t=` attribute.
fn xlsx_rows(r: &crate::helpers::Resp) -> Vec<Vec<String>> {
    assert_eq!(r.status.as_u16(), 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some(XLSX));
    let strings: Vec<String> = zip_part(&r.body, "xl/sharedStrings.xml")
        .split("<si>")
        .skip(1)
        .map(|si| {
            let t = si.split("</si>").next().unwrap();
            let inner = t.split_once('>').map(|(_, rest)| rest).unwrap(); // after <t ...>
            unescape(inner.split("</t>").next().unwrap())
        })
        .collect();
    let sheet = zip_part(&r.body, "xl/worksheets/sheet1.xml");
    let data = sheet.split("<sheetData>").nth(1).unwrap().split("</sheetData>").next().unwrap();
    let mut rows = Vec::new();
    for row in data.split("<row ").skip(1) {
        let mut cells: Vec<String> = Vec::new();
        for c in row.split("<c ").skip(1) {
            let c = c.split("</c>").next().unwrap();
            let r = c.split("r=\"").nth(1).unwrap().split('"').next().unwrap();
            let col =
                r.chars().take_while(char::is_ascii_uppercase).fold(0usize, |a, ch| a * 26 + (ch as usize - 64)) - 1;
            let v = c.split("<v>").nth(1).map(|v| v.split("</v>").next().unwrap().to_owned()).unwrap_or_default();
            let text = if c.contains("t=\"s\"") { strings[v.parse::<usize>().unwrap()].clone() } else { v };
            if cells.len() <= col {
                cells.resize(col + 1, String::new());
            }
            cells[col] = text;
        }
        rows.push(cells);
    }
    rows
}

/// A cell of `line` by its header label.
fn at<'a>(header: &[String], line: &'a [String], label: &str) -> &'a str {
    let i = header.iter().position(|h| h == label).unwrap_or_else(|| panic!("no column {label}: {header:?}"));
    line.get(i).map(String::as_str).unwrap_or("")
}

fn money(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

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
    // The ranking as CSV: every figure of the JSON rows, scores to the hundredth.
    let ranking = "/api/v1/assessments/streets?month=2026-09";
    let csv = app.get(&evaluator, &format!("{ranking}&format=csv")).await;
    assert_eq!(csv.header("content-disposition"), Some("attachment; filename=\"street-assessment-2026-09.csv\""));
    let lines = csv_lines(&csv);
    let h = &lines[0];
    assert_eq!(
        h,
        &[
            "排名",
            "类别排名",
            "街道编码",
            "街道",
            "区编码",
            "类别",
            "数字城管考核",
            "专项工作考核",
            "实地考核",
            "专项考核次数",
            "实地发现问题数",
            "总分",
            "名次变化",
            "得分变化"
        ]
    );
    assert_eq!(lines.len(), 1 + rows.len());
    for (line, r) in lines[1..].iter().zip(rows) {
        assert_eq!(at(h, line, "排名"), r["rank"].to_string());
        assert_eq!(at(h, line, "类别排名"), r["class_rank"].to_string());
        assert_eq!(at(h, line, "街道编码"), r["street_code"].as_str().unwrap());
        assert_eq!(at(h, line, "街道"), r["name"].as_str().unwrap());
        assert_eq!(at(h, line, "类别"), "城区街道");
        for (label, key) in
            [("数字城管考核", "digital"), ("专项工作考核", "special"), ("实地考核", "on_site"), ("总分", "score")]
        {
            assert_eq!(at(h, line, label), format!("{:.2}", r[key].as_f64().unwrap()), "{label}");
        }
        assert_eq!(at(h, line, "专项考核次数"), r["special_count"].to_string());
        assert_eq!(at(h, line, "名次变化"), r["rank_delta"].as_i64().map(|d| d.to_string()).unwrap_or_default());
        let delta = r["score_delta"].as_f64().map(|d| format!("{:.2}", d + 0.0)).unwrap_or_default();
        assert_eq!(at(h, line, "得分变化"), delta);
    }
    assert_eq!(at(h, &lines[3], "专项工作考核"), "96.00");
    // As XLSX, asked for by Accept: numbers stored as the JSON's numbers.
    let xlsx = app.request(Method::GET, ranking, Some(&evaluator), &[("accept", XLSX)], vec![]).await;
    assert_eq!(xlsx.header("content-disposition"), Some("attachment; filename=\"street-assessment-2026-09.xlsx\""));
    let cells = xlsx_rows(&xlsx);
    assert_eq!(cells[0], *h, "the same header");
    assert_eq!(cells.len(), 1 + rows.len());
    for (c, r) in cells[1..].iter().zip(rows) {
        assert_eq!(c[3], r["name"].as_str().unwrap());
        assert_eq!(c[0].parse::<u64>().unwrap(), r["rank"].as_u64().unwrap());
        for (i, key) in [(6, "digital"), (7, "special"), (8, "on_site"), (11, "score")] {
            assert_eq!(c[i].parse::<f64>().unwrap(), r[key].as_f64().unwrap(), "{key}");
        }
    }
    // format=json wins over Accept; the commander's download is its district's rows.
    let forced = app
        .request(Method::GET, &format!("{ranking}&format=json"), Some(&evaluator), &[("accept", "text/csv")], vec![])
        .await;
    assert_eq!(forced.ok(200)["rows"], sept["rows"]);
    let theirs = csv_lines(&app.get(&commander, &format!("{ranking}&format=csv")).await);
    assert_eq!(theirs.len(), 3);
    assert!(theirs[1..].iter().all(|l| l[2].starts_with("320311")), "{theirs:?}");
    // The special-work assessments as CSV, as the commander sees them.
    let sp = csv_lines(&app.get(&commander, "/api/v1/assessments/special?month=2026-09&format=csv").await);
    assert_eq!(sp.len(), 1 + 2);
    let h = &sp[0];
    for (line, entry) in sp[1..].iter().zip(list.as_array().unwrap()) {
        assert_eq!(at(h, line, "编号"), entry["id"].to_string());
        assert_eq!(at(h, line, "街道编码"), entry["street_code"].as_str().unwrap());
        assert_eq!(at(h, line, "街道"), "七里沟街道");
        assert_eq!(at(h, line, "考核事项"), "背街小巷专项整治");
        assert_eq!(at(h, line, "分值"), format!("{:.2}", entry["points"].as_f64().unwrap()));
        assert_eq!(at(h, line, "录入时间"), "2026-09-28 09:00");
    }
    assert_eq!(at(h, &sp[1], "考核内容"), "垃圾清运不及时 -5.00");
    let sx = xlsx_rows(&app.get(&evaluator, "/api/v1/assessments/special?month=2026-09&format=xlsx").await);
    assert_eq!(sx.len(), 1 + 3, "the city's three entries");
    assert_eq!(sx[1][6].parse::<f64>().unwrap(), -5.0);
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
    // Findings and draws as downloads: the same rows, a draw as one row per place.
    let fcsv = csv_lines(&app.get(&evaluator, &format!("{uri}/{id}/findings?format=csv")).await);
    assert_eq!(fcsv.len(), 1 + 4);
    let h = &fcsv[0];
    for (line, f) in fcsv[1..].iter().zip(listed.as_array().unwrap()) {
        assert_eq!(at(h, line, "编号"), f["id"].to_string());
        assert_eq!(at(h, line, "案件编号"), f["case_number"].as_str().unwrap());
        assert_eq!(at(h, line, "案件ID"), f["case_id"].to_string());
        assert_eq!(at(h, line, "网格编码"), f["grid_code"].as_str().unwrap());
        assert_eq!(at(h, line, "扣分"), "2.00");
        assert_eq!(at(h, line, "问题描述"), "实地考核：路边暴露垃圾");
        assert!(!at(h, line, "问题类别").is_empty(), "the class by name");
    }
    let fx = xlsx_rows(&app.get(&commander, &format!("{uri}/{id}/findings?format=xlsx")).await);
    assert_eq!(fx.len(), 1 + 2, "the commander's download is its district's");
    let draws_json = app.get(&evaluator, &format!("{uri}?month=2026-10")).await.ok(200);
    let dcsv = csv_lines(&app.get(&evaluator, &format!("{uri}?month=2026-10&format=csv")).await);
    let h = &dcsv[0];
    let json_places: Vec<(i64, String, String, String)> = draws_json
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| {
            d["places"].as_array().unwrap().iter().map(move |p| {
                (
                    d["id"].as_i64().unwrap(),
                    p["street_code"].as_str().unwrap().to_owned(),
                    p["grid_code"].as_str().unwrap().to_owned(),
                    p["assessor"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect();
    let csv_places: Vec<(i64, String, String, String)> = dcsv[1..]
        .iter()
        .map(|l| {
            (
                at(h, l, "抽取编号").parse().unwrap(),
                at(h, l, "街道编码").to_owned(),
                at(h, l, "网格编码").to_owned(),
                at(h, l, "考核员").to_owned(),
            )
        })
        .collect();
    assert_eq!(csv_places, json_places);
    assert_eq!(csv_places.len(), 8, "two draws of four places");
    for l in &dcsv[1..] {
        let revealed = at(h, l, "抽取编号") == id.to_string();
        assert_eq!(at(h, l, "种子已公开"), if revealed { "是" } else { "否" });
        assert_eq!(
            at(h, l, "种子"),
            if revealed { r["seed"].as_str().unwrap() } else { "" },
            "the seed only once revealed"
        );
    }
    // The month's report lists the findings with their cases.
    let html = String::from_utf8(app.get(&evaluator, "/api/v1/reports/assessments/2026-10.html").await.body).unwrap();
    let on_site = html.split("id=\"on-site\"").nth(1).unwrap().split("id=\"notes\"").next().unwrap();
    assert!(
        on_site.contains(
            "本月三随机抽取 2 次 (种子已公开 1 次), 抽取点位 8 个; 实地发现问题 4 个, 涉及街道 4 个, 扣分合计 8.00."
        ),
        "{on_site}"
    );
    for f in listed.as_array().unwrap() {
        assert!(on_site.contains(f["case_number"].as_str().unwrap()));
    }
    // A finding takes its points off the street's on-site part of October.
    let oct = app.get(&evaluator, "/api/v1/assessments/streets?month=2026-10").await.ok(200);
    let r = row(&oct, &place.street_code);
    assert_eq!((r["on_site"].as_f64(), r["findings"].as_u64()), (Some(98.0), Some(1)));
    let d = digital(&app, &evaluator, "2026-10").await[&place.street_code];
    assert_eq!(r["score"].as_f64().unwrap(), round2(0.6 * d + 20.0 + 0.2 * 98.0));
    app.assert_replays().await;
}

async fn contract_statements_trace_their_deductions(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.sign_in("admin").await;
    let evaluator = app.sign_in("evaluator").await;
    import_areas(&app, &admin).await;
    let c1 = citizen(&app, "13900000001").await.0;
    let collector = app.sign_in("collector").await;
    let id = app.report(&c1, &crate::helpers::garbage_at(117.18, 34.26)).await["id"].as_i64().unwrap();
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
    // coverage below 100 % (one grid of 100 visited) costing 1 % of the month's fee.
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
    // The statement as CSV: a line each for the fee, the collectors, the levels, the
    // deductions and the totals, money as yuan (exact) and fen.
    let lines = csv_lines(&app.get(&evaluator, &format!("{c}&format=csv")).await);
    let h = &lines[0];
    assert_eq!(&h[h.len() - 2..], ["金额(元)", "金额(分)"]);
    let item = |name: &str| lines.iter().find(|l| at(h, l, "项目") == name).unwrap_or_else(|| panic!("{name}")).clone();
    assert_eq!(
        (at(h, &item("月度合同费"), "金额(元)"), at(h, &item("月度合同费"), "金额(分)")),
        ("577500.00", "57750000")
    );
    assert_eq!(at(h, &item("本月在岗采集员人数"), "实际值"), "1");
    assert_eq!(at(h, &item("合同约定采集员人数"), "实际值"), "156");
    let coverage = item("网格覆盖率");
    assert_eq!(
        [at(h, &coverage, "实际值"), at(h, &coverage, "分子"), at(h, &coverage, "分母"), at(h, &coverage, "是否达标")],
        ["1.00%", "1", "100", "否"]
    );
    assert_eq!(at(h, &coverage, "目标"), level("coverage")["target"].as_str().unwrap());
    let deductions: Vec<&Vec<String>> = lines.iter().filter(|l| at(h, l, "类别") == "扣款").collect();
    assert_eq!(deductions.len(), s["deductions"].as_array().unwrap().len());
    for (line, d) in deductions.iter().zip(s["deductions"].as_array().unwrap()) {
        let fen = d["amount_fen"].as_i64().unwrap();
        assert_eq!((at(h, line, "金额(元)"), at(h, line, "金额(分)")), (money(fen).as_str(), fen.to_string().as_str()));
        assert_eq!(at(h, line, "规则代码"), d["rule"].as_str().unwrap());
        assert_eq!(at(h, line, "案件ID"), d["case_id"].as_i64().map(|c| c.to_string()).unwrap_or_default());
    }
    assert_eq!(at(h, deductions[0], "扣款来源"), "台账扣款");
    assert_eq!(at(h, deductions[0], "责任方"), "collector");
    assert_eq!(at(h, &item("扣款合计"), "金额(元)"), money(s["deductions_fen"].as_i64().unwrap()));
    assert_eq!(at(h, &item("应付金额"), "金额(元)"), s["net_payable_yuan"].as_str().unwrap());
    assert_eq!(at(h, &item("应付金额"), "金额(分)"), "57170500");
    // As XLSX the yuan are numbers: 571705 with the format 0.00.
    let x = xlsx_rows(&app.get(&evaluator, &format!("{c}&format=xlsx")).await);
    let net = x.iter().find(|r| r.get(4).map(String::as_str) == Some("应付金额")).unwrap();
    assert_eq!((net[16].parse::<f64>().unwrap(), net[17].parse::<i64>().unwrap()), (571_705.0, 57_170_500));
    // Same refusals for the download.
    app.get(&commander, &format!("{c}&format=csv")).await.problem(403, "forbidden_role", None);
    app.get(&district_evaluator, &format!("{c}&format=xlsx")).await.problem(403, "out_of_scope", None);
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
    let cl = csv_lines(&app.get(&evaluator, "/api/v1/contracts/cleaning/statements?month=2026-09&format=csv").await);
    let h = &cl[0];
    assert!(cl[1..].iter().all(|l| at(h, l, "合同方") == "彭城保洁公司" && at(h, l, "合同") == "保洁"));
    let net = cl.iter().find(|l| at(h, l, "项目") == "应付金额").unwrap();
    assert_eq!((at(h, net, "金额(元)"), at(h, net, "金额(分)")), ("99950.00", "9995000"));
    let ded = cl.iter().find(|l| at(h, l, "类别") == "扣款").unwrap();
    assert_eq!((at(h, ded, "案件ID"), at(h, ded, "金额(元)")), (id.to_string().as_str(), "50.00"));
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

/// PNG → (width, height), decoded in full.
fn png_decoded(r: &crate::helpers::Resp) -> (u32, u32) {
    assert_eq!(r.status.as_u16(), 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("image/png"));
    let mut reader = png::Decoder::new(std::io::Cursor::new(&r.body)).read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("the image decodes");
    assert!(buf.iter().any(|b| *b < 128), "something is drawn");
    (info.width, info.height)
}

fn svg_of(r: crate::helpers::Resp) -> String {
    assert_eq!(r.status.as_u16(), 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    let svg = String::from_utf8(r.body).unwrap();
    assert!(svg.starts_with("<svg"));
    svg
}

/// September: 七里沟 −5 and 彭城 −10 (published on October 2nd); October: 王陵 −3, provisional.
async fn two_months(app: &TestApp) {
    let evaluator = app.sign_in("evaluator").await;
    let admin = app.sign_in("admin").await;
    let photo = app.photo_id(&evaluator, &tiny_png(5)).await;
    let uri = "/api/v1/assessments/special";
    app.post_json(&evaluator, uri, &special("2026-09", "320311002", -5.0, &photo)).await.ok(201);
    app.post_json(&evaluator, uri, &special("2026-09", "320303001", -10.0, &photo)).await.ok(201);
    app.set_time("2026-10-02 09:00");
    app.request(Method::POST, "/api/v1/assessments/streets/2026-09/publish", Some(&admin), &[], vec![]).await.ok(201);
    app.post_json(&evaluator, uri, &special("2026-10", "320311001", -3.0, &photo)).await.ok(201);
}

async fn street_charts_and_the_monthly_report(backend: Backend) {
    let app = spawn(backend).await;
    two_months(&app).await;
    let evaluator = app.sign_in("evaluator").await;
    let commander = app.sign_in("commander").await;
    let sept = app.get(&evaluator, "/api/v1/assessments/streets?month=2026-09").await.ok(200);
    let oct = app.get(&evaluator, "/api/v1/assessments/streets?month=2026-10").await.ok(200);
    let rows = sept["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);

    // The ranking: a bar per street in the ranking's order, its score to the hundredth,
    // coloured by rank fifth (the best green, the last red).
    let base = "/api/v1/assessments/streets/chart";
    let svg = svg_of(app.get(&evaluator, &format!("{base}.svg?month=2026-09")).await);
    assert!(svg.contains("全市街道考核总分排名 2026-09") && !svg.contains("暂定"), "published: no provisional mark");
    for (i, r) in rows.iter().enumerate() {
        let label = format!("{}. {}", i + 1, r["name"].as_str().unwrap());
        assert!(svg.contains(&label), "{label}");
        assert!(svg.contains(&format!("{:.2}", r["score"].as_f64().unwrap())), "{}", r["score"]);
    }
    let last = rows.last().unwrap()["name"].as_str().unwrap();
    assert_eq!(last, "彭城街道", "−10 points: last");
    let fill = |c: &str| svg.lines().filter(|l| l.starts_with("<rect") && l.contains(&format!("fill=\"{c}\""))).count();
    assert_eq!((fill("#1A9850"), fill("#D73027")), (2, 1), "two tied best (green), one last (red)");
    let png = app.get(&evaluator, &format!("{base}.png?month=2026-09&kind=ranking")).await;
    assert_eq!(png_decoded(&png), (900, 60 + 4 * 28 + 70));
    let provisional = svg_of(app.get(&evaluator, &format!("{base}.svg?month=2026-10")).await);
    assert!(provisional.contains("街道考核总分排名 2026-10 (暂定)"));
    // A district's streets, with their city ranks.
    let theirs = svg_of(app.get(&commander, &format!("{base}.svg?month=2026-09")).await);
    assert!(theirs.contains("泉山区街道考核总分排名"));
    assert!(!theirs.contains("彭城街道"), "no street of another district");
    let qiligou = rows.iter().find(|r| r["street_code"] == "320311002").unwrap();
    assert!(theirs.contains(&format!("七里沟街道 (全市第{}名)", qiligou["rank"])), "{theirs}");

    // The trend: the months up to `month`, a line per street; `ids` picks them.
    let trend = svg_of(app.get(&evaluator, &format!("{base}.svg?month=2026-10&kind=trend&months=3")).await);
    assert!(trend.contains("全市街道考核总分趋势 2026-08 至 2026-10"));
    for label in ["2026-08", "2026-09", "2026-10"] {
        assert!(trend.contains(label), "{label}");
    }
    for r in rows {
        assert!(trend.contains(r["name"].as_str().unwrap()), "{}", r["name"]);
    }
    assert_eq!(trend.matches("<circle").count(), 4 * 3, "a point per street and month");
    let one = svg_of(app.get(&evaluator, &format!("{base}.svg?month=2026-10&kind=trend&ids=320303001")).await);
    assert!(one.contains("彭城街道") && !one.contains("七里沟街道"), "only the street asked for");
    assert_eq!(one.matches("<circle").count(), 6, "six months by default");
    let worst = svg_of(app.get(&evaluator, &format!("{base}.svg?month=2026-10&kind=trend&limit=1&order=worst")).await);
    let oct_last = oct["rows"].as_array().unwrap().last().unwrap()["name"].as_str().unwrap().to_owned();
    assert!(worst.contains(&oct_last), "the worst of October: {oct_last}");
    let png = app.get(&commander, &format!("{base}.png?month=2026-10&kind=trend")).await;
    assert_eq!(png_decoded(&png), (900, 520));

    // The printed report of September: published, every street with its three parts, the
    // changes, the chart inline, the special work and on-site summaries.
    let r = app.get(&evaluator, "/api/v1/reports/assessments/2026-09.html").await;
    assert_eq!(r.status.as_u16(), 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(r.body).unwrap();
    assert!(html.contains("<h1>全市 2026年9月 街道长效管理考核月度报告</h1>"));
    assert!(
        html.contains("<span class=\"stamp stamp-published\">已发布 · 正式结果 (Published 2026-10-02 09:00)</span>")
    );
    for id in ["summary", "ranking", "changes", "special", "on-site", "notes"] {
        assert!(html.contains(&format!("<h2 id=\"{id}\">")), "section {id}");
    }
    assert_eq!(html.matches("<figure>\n<svg").count(), 1, "the ranking chart inline");
    let ranking = html.split("id=\"ranking\"").nth(1).unwrap().split("id=\"changes\"").next().unwrap();
    for r in rows {
        let cells = format!(
            "<td>{}</td><td>城区街道</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td>",
            r["name"].as_str().unwrap(),
            r["digital"].as_f64().unwrap(),
            r["special"].as_f64().unwrap(),
            r["on_site"].as_f64().unwrap(),
            r["score"].as_f64().unwrap()
        );
        assert!(ranking.contains(&cells), "{cells} in {ranking}");
    }
    assert!(html.contains("参加考核街道 4 个 (城区街道 4 个, 城乡结合部 0 个)."));
    assert!(html.contains("最后一名 彭城街道"));
    let special = html.split("id=\"special\"").nth(1).unwrap().split("id=\"on-site\"").next().unwrap();
    assert!(special.contains("本月专项工作考核 2 次, 涉及街道 2 个; 扣分合计 15.00, 加分合计 0.00."), "{special}");
    assert_eq!(special.matches("背街小巷专项整治").count(), 2);
    assert!(html.contains("本月三随机抽取 0 次"));
    // October against the published September: 彭城 moves up (4th → 1st), 王陵 down.
    let html = String::from_utf8(app.get(&evaluator, "/api/v1/reports/assessments/2026-10.html").await.body).unwrap();
    assert!(html.contains("stamp stamp-provisional") && !html.contains("stamp stamp-published"));
    let changes = html.split("id=\"changes\"").nth(1).unwrap().split("id=\"special\"").next().unwrap();
    let pengcheng = row(&oct, "320303001");
    assert_eq!(pengcheng["rank_delta"], 3);
    assert!(changes.contains("与上月 (2026-09) 相比: 名次上升"), "{changes}");
    assert!(changes.contains("上升最多: 彭城街道 (↑3)"), "{changes}");
    assert!(
        changes.contains("<td>彭城街道</td><td class=\"num\">4</td><td class=\"num\">1</td><td>↑3</td>"),
        "{changes}"
    );
    // A district's report: its streets only, with their city ranks; `district=` gives the same.
    let own = app.get(&commander, "/api/v1/reports/assessments/2026-09.html").await;
    assert_eq!(own.header("content-disposition"), Some("inline; filename=\"street-assessment-320311-2026-09.html\""));
    let own = String::from_utf8(own.body).unwrap();
    assert!(own.contains("<h1>泉山区 2026年9月 街道长效管理考核月度报告</h1>"));
    assert!(own.contains("七里沟街道") && own.contains("王陵街道") && !own.contains("彭城街道"));
    assert!(own.contains("排名为全市 4 个街道中的名次"));
    let cut = app.get(&evaluator, "/api/v1/reports/assessments/2026-09.html?district=320311").await;
    let cut = String::from_utf8(cut.body).unwrap();
    let body = |h: &str| h.split("<header>").nth(1).unwrap().split("<footer>").next().unwrap().to_owned();
    assert_eq!(body(&cut), body(&own), "the same report");
}

async fn report_chart_and_download_refusals(backend: Backend) {
    let app = spawn(backend).await;
    let evaluator = app.sign_in("evaluator").await;
    let commander = app.sign_in("commander").await;
    let chart = "/api/v1/assessments/streets/chart.svg?month=2026-09";
    let report = "/api/v1/reports/assessments";
    // Roles: citizens, handlers, collectors read none of it, in any format.
    for who in ["citizen", "handler", "collector"] {
        let t = app.sign_in(who).await;
        for uri in [
            chart.to_owned(),
            "/api/v1/assessments/streets/chart.png?month=2026-09&kind=trend".to_owned(),
            format!("{report}/2026-09.html"),
            "/api/v1/assessments/streets?month=2026-09&format=csv".to_owned(),
            "/api/v1/assessments/special?month=2026-09&format=xlsx".to_owned(),
            "/api/v1/assessments/draws?format=csv".to_owned(),
        ] {
            app.get(&t, &uri).await.problem_in(&format!("{who} {uri}"), 403, "forbidden_role", None);
        }
    }
    // A district account stays in its district.
    app.get(&commander, &format!("{chart}&district=320303")).await.problem(403, "out_of_scope", None);
    app.get(&commander, &format!("{chart}&kind=trend&ids=320311001,320303001")).await.problem(
        403,
        "out_of_scope",
        None,
    );
    app.get(&commander, &format!("{report}/2026-09.html?district=320303")).await.problem(403, "out_of_scope", None);
    // Bad input, named: query parameters 400, the month of the path 422.
    for (query, field) in [
        ("/api/v1/assessments/streets/chart.svg?month=2026-13", "month"),
        ("/api/v1/assessments/streets/chart.png?month=09-2026", "month"),
        ("/api/v1/assessments/streets/chart.svg?month=2026-09&kind=pie", "kind"),
        ("/api/v1/assessments/streets/chart.svg?month=2026-09&kind=trend&months=1", "months"),
        ("/api/v1/assessments/streets/chart.svg?month=2026-09&kind=trend&months=25", "months"),
        ("/api/v1/assessments/streets/chart.svg?month=2026-09&kind=trend&ids=999", "ids"),
        ("/api/v1/assessments/streets/chart.svg?month=2026-09&kind=trend&limit=0", "limit"),
        ("/api/v1/assessments/streets/chart.svg?month=2026-09&kind=trend&order=up", "order"),
        ("/api/v1/assessments/streets/chart.svg?month=2026-09&district=3203", "district"),
        ("/api/v1/reports/assessments/2026-09.html?district=320311001", "district"),
        ("/api/v1/assessments/streets?month=2026-09&format=pdf", "format"),
        ("/api/v1/assessments/streets?month=2026-9&format=csv", "month"),
        ("/api/v1/assessments/special?month=2026-09&format=ods", "format"),
        ("/api/v1/assessments/draws?format=pdf", "format"),
        ("/api/v1/contracts/cleaning/statements?month=2026-09&format=pdf", "format"),
    ] {
        app.get(&evaluator, query).await.problem_in(query, 400, "invalid_query", Some(field));
    }
    for tail in ["2026-13.html", "2026-09.pdf", "2026-9.html", "26-09.html"] {
        app.get(&evaluator, &format!("{report}/{tail}")).await.problem_in(tail, 422, "invalid_field", Some("month"));
    }
    app.get(&evaluator, &format!("{chart}&district=320399")).await.problem(404, "not_found", None);
    app.get(&evaluator, "/api/v1/assessments/draws/999/findings?format=csv").await.problem(404, "not_found", None);
    let r = app.request(Method::GET, chart, None, &[], vec![]).await;
    r.problem(401, "unauthorized", None);
    let r = app.request(Method::GET, &format!("{report}/2026-09.html"), None, &[], vec![]).await;
    r.problem(401, "unauthorized", None);
}
