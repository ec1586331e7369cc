//! Reports and charts: evaluation downloads (CSV, XLSX), charts (SVG, PNG) and the monthly
//! district report, with their refusals.

use crate::helpers::{csv_lines, garbage_at, spawn_app, tiny_png, zip_part, Backend, TestApp, QUANSHAN, YUNLONG};
use axum::http::Method;
use serde_json::{json, Value};

backend_tests!(
    downloads_follow_format_and_accept,
    charts_render_in_both_formats,
    chart_refusals,
    district_report,
    district_report_refusals
);

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const STREETS: &str = "/api/v1/evaluations?subject=region&level=street&period=2026-09";

/// A month with something to evaluate: in 七里沟街道 a case taken through the whole loop on
/// time, in 王陵街道 one filed and left open, in 云龙区 one only reported.
async fn seeded(backend: Backend) -> TestApp {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    let acceptor = app.sign_in("acceptor").await;
    let leader = app.sign_in("leader").await;
    let dispatcher = app.sign_in("dispatcher").await;
    let handler = app.sign_in("handler").await;
    let hw = app.department("HW").await;

    let closed = app.report(&collector, &garbage_at(QUANSHAN.0, QUANSHAN.1)).await["id"].as_i64().unwrap();
    app.step(&acceptor, closed, "accept", Value::Null).await;
    app.step(&leader, closed, "file", json!({})).await;
    app.step(&dispatcher, closed, "dispatch", json!({"department_id": hw})).await;
    let photo = app.photo_id(&handler, &tiny_png(3)).await;
    app.step(&handler, closed, "dispose", json!({"note": "已清运", "photo_ids": [photo]})).await;
    app.step(&collector, closed, "check", json!({"passed": true})).await;
    app.step(&leader, closed, "close", Value::Null).await;

    // 王陵街道 is the northern half of 泉山区.
    let open = app.report(&collector, &garbage_at(117.165, 34.274)).await;
    assert_eq!(open["street_code"], "320311001");
    let open = open["id"].as_i64().unwrap();
    app.step(&acceptor, open, "accept", Value::Null).await;
    app.step(&leader, open, "file", json!({})).await;

    app.report(&collector, &garbage_at(YUNLONG.0, YUNLONG.1)).await;
    app
}

/// Width and height from a PNG's IHDR, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

async fn downloads_follow_format_and_accept(backend: Backend) {
    let app = seeded(backend).await;
    let admin = app.sign_in("admin").await;
    let json = app.get(&admin, STREETS).await;
    assert_eq!(json.header("content-type"), Some("application/json"));
    let rows = json.ok(200)["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 4, "the demo city's four streets");

    let csv = app.get(&admin, &format!("{STREETS}&format=csv")).await;
    assert_eq!(csv.status.as_u16(), 200, "{}", String::from_utf8_lossy(&csv.body));
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"evaluation-region-street-2026-09-01-2026-09-30.csv\"")
    );
    let lines = csv_lines(&csv.body);
    assert_eq!(&lines[0][..7], ["排名", "编码", "名称", "区域类别", "结案率", "结案率·分子", "结案率·分母"]);
    assert_eq!(lines[0].last().map(String::as_str), Some("等级"));
    assert_eq!(lines.len(), 1 + rows.len());
    let col = |label: &str| lines[0].iter().position(|h| h == label).unwrap_or_else(|| panic!("{label} column"));
    // Every row's figures are the JSON's, formatted: counts, rates as percentages, scores.
    for (line, row) in lines[1..].iter().zip(&rows) {
        assert_eq!(line[col("编码")], row["subject_id"].as_str().unwrap());
        assert_eq!(line[col("名称")], row["name"].as_str().unwrap());
        assert_eq!(line[col("排名")], row["rank"].to_string());
        assert_eq!(line[col("立案数")], row["metrics"]["filed"]["value"].as_f64().unwrap().to_string());
        assert_eq!(line[col("上报数")], row["metrics"]["reported"]["value"].as_f64().unwrap().to_string());
        let closure = row["metrics"]["closure_rate"]["value"].as_f64().unwrap();
        assert_eq!(line[col("结案率")], format!("{:.2}%", closure * 100.0));
        assert_eq!(line[col("得分")], format!("{:.1}", row["score"].as_f64().unwrap()));
        assert_eq!(line[col("等级")], row["grade"].as_str().unwrap());
    }
    let qiligou = lines.iter().find(|l| l[1] == "320311002").expect("七里沟街道");
    assert_eq!((qiligou[col("上报数")].as_str(), qiligou[col("结案数")].as_str()), ("1", "1"));
    let wangling = lines.iter().find(|l| l[1] == "320311001").expect("王陵街道");
    assert_eq!((wangling[col("立案数")].as_str(), wangling[col("结案数")].as_str()), ("1", "0"));

    // Accept picks the same download; format wins over Accept; */* stays JSON.
    let by_accept = app.request(Method::GET, STREETS, Some(&admin), &[("accept", "text/csv")], vec![]).await;
    assert_eq!(by_accept.body, csv.body);
    let forced = app
        .request(Method::GET, &format!("{STREETS}&format=json"), Some(&admin), &[("accept", "text/csv")], vec![])
        .await;
    assert_eq!(forced.ok(200)["rows"].as_array().map(Vec::len), Some(4));
    let any = app.request(Method::GET, STREETS, Some(&admin), &[("accept", "*/*")], vec![]).await;
    assert_eq!(any.header("content-type"), Some("application/json"));

    let xlsx = app.get(&admin, &format!("{STREETS}&format=xlsx")).await;
    assert_eq!(xlsx.status.as_u16(), 200);
    assert_eq!(xlsx.header("content-type"), Some(XLSX));
    assert!(xlsx.header("content-disposition").unwrap().ends_with(".xlsx\""));
    let strings = zip_part(&xlsx.body, "xl/sharedStrings.xml");
    for s in ["七里沟街道", "王陵街道", "结案率·分子", "得分"] {
        assert!(strings.contains(s), "{s} in the workbook");
    }
    let sheet = zip_part(&xlsx.body, "xl/worksheets/sheet1.xml");
    assert!(sheet.contains(r#"state="frozen""#));
    assert_eq!(sheet.matches("<row ").count(), 5, "header and four streets");
    let by_accept = app.request(Method::GET, STREETS, Some(&admin), &[("accept", XLSX)], vec![]).await;
    assert_eq!(by_accept.header("content-type"), Some(XLSX));

    app.get(&admin, &format!("{STREETS}&format=pdf")).await.problem(400, "invalid_query", Some("format"));
    // Downloads keep the evaluation's access rules.
    let citizen = app.sign_in("citizen").await;
    app.get(&citizen, &format!("{STREETS}&format=csv")).await.problem(403, "forbidden_role", None);
    let commander = app.sign_in("commander").await;
    let own = app.get(&commander, &format!("{STREETS}&format=csv")).await;
    let own = csv_lines(&own.body);
    assert_eq!(own.len(), 3, "泉山区's two streets only");
    assert!(own[1..].iter().all(|l| l[1].starts_with("320311")));
}

async fn charts_render_in_both_formats(backend: Backend) {
    let app = seeded(backend).await;
    let admin = app.sign_in("admin").await;
    let ranking = app.get(&admin, "/api/v1/evaluations/chart.svg?kind=ranking&level=street&period=2026-09").await;
    assert_eq!(ranking.status.as_u16(), 200, "{}", String::from_utf8_lossy(&ranking.body));
    assert_eq!(ranking.header("content-type"), Some("image/svg+xml"));
    let svg = String::from_utf8(ranking.body).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("街道得分排名 2026-09-01 至 2026-09-30"));
    let rows = app.get(&admin, STREETS).await.ok(200)["rows"].as_array().unwrap().clone();
    let active: Vec<&serde_json::Value> = rows.iter().filter(|r| r["active"] == true).collect();
    assert!(!active.is_empty());
    assert!(
        !svg.contains(rows.iter().find(|r| r["active"] == false).unwrap()["name"].as_str().unwrap()),
        "idle streets are not ranked"
    );
    for (i, row) in active.iter().enumerate() {
        // Bars in the evaluation's order (best first), each with its score and grade.
        let label = format!("{}. {}", i + 1, row["name"].as_str().unwrap());
        assert!(svg.contains(&label), "{label}");
        let value = format!("{:.1} {}", row["score"].as_f64().unwrap(), row["grade"].as_str().unwrap());
        assert!(svg.contains(&value), "{value}");
    }

    let png = app.get(&admin, "/api/v1/evaluations/chart.png?kind=ranking&level=street&period=2026-09&limit=3").await;
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert_eq!(png_size(&png.body), (900, 60 + 3 * 28 + 70), "three bars");

    let trend = app
        .get(&admin, "/api/v1/evaluations/chart.svg?kind=trend&level=street&period=2026-09&bucket=week&metric=filed")
        .await;
    let svg = String::from_utf8(trend.body).unwrap();
    assert!(svg.contains("街道立案数趋势"), "{svg}");
    for label in ["09-01起", "09-07起", "09-28起", "七里沟街道", "王陵街道"] {
        assert!(svg.contains(label), "{label}");
    }
    let picked =
        app.get(&admin, "/api/v1/evaluations/chart.svg?kind=trend&level=street&period=2026-09&ids=320303001").await;
    let svg = String::from_utf8(picked.body).unwrap();
    assert!(svg.contains("彭城街道") && !svg.contains("七里沟街道"), "only the subject asked for");

    // A district commander's heat map: the 50 grids of 泉山区, the worst outlined.
    let commander = app.sign_in("commander").await;
    let heat = app.get(&commander, "/api/v1/evaluations/chart.svg?kind=heatmap&period=2026-09").await;
    assert_eq!(heat.status.as_u16(), 200, "{}", String::from_utf8_lossy(&heat.body));
    let svg = String::from_utf8(heat.body).unwrap();
    assert_eq!(svg.matches("<polygon").count(), 50, "one polygon per grid of the district");
    assert!(svg.contains("网格得分分布") && svg.contains("最差网格"));
    // The worst ten grids are outlined, but only those strictly worse than the eleventh: grids
    // that tie with the rest (the quiet ones) are not singled out.
    let grids = app.get(&commander, "/api/v1/evaluations?subject=region&level=grid&period=2026-09").await.ok(200);
    let mut scores: Vec<f64> = grids["rows"].as_array().unwrap().iter().map(|r| r["score"].as_f64().unwrap()).collect();
    scores.sort_by(f64::total_cmp);
    let expected = scores.iter().filter(|s| **s < scores[10]).count();
    let outlined = svg.lines().filter(|l| l.starts_with("<polyline") && l.contains("stroke=\"#000000\"")).count();
    assert_eq!(outlined, expected, "{svg}");
    // Communities without a polygon of their own are drawn as their grids: 4 communities, 50 parts,
    // each named on the map.
    let by_community =
        app.get(&commander, "/api/v1/evaluations/chart.svg?kind=heatmap&period=2026-09&level=community").await;
    let svg = String::from_utf8(by_community.body).unwrap();
    assert_eq!(svg.matches("<polygon").count(), 50);
    let communities =
        app.get(&commander, "/api/v1/evaluations?subject=region&level=community&period=2026-09").await.ok(200)["rows"]
            .as_array()
            .unwrap()
            .clone();
    assert_eq!(communities.len(), 4);
    for c in &communities {
        assert!(svg.contains(c["name"].as_str().unwrap()), "{} labelled", c["name"]);
    }
    let png = app.get(&commander, "/api/v1/evaluations/chart.png?kind=heatmap&period=2026-09&level=community").await;
    assert_eq!(png.status.as_u16(), 200);
    assert_eq!(png_size(&png.body), (900, 720));
}

async fn chart_refusals(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.sign_in("admin").await;
    let base = "/api/v1/evaluations/chart.svg?period=2026-09";
    for (query, field) in [
        ("&kind=pie", "kind"),
        ("&kind=heatmap&subject=department", "subject"),
        ("&kind=ranking&metric=nope", "metric"),
        ("&kind=ranking&order=sideways", "order"),
        ("&kind=ranking&limit=0", "limit"),
        ("&kind=ranking&limit=201", "limit"),
        ("&kind=trend&bucket=hour", "bucket"),
        ("&kind=trend&ids=999999999", "ids"),
        ("&kind=ranking&level=planet", "level"),
    ] {
        app.get(&admin, &format!("{base}{query}")).await.problem_in(query, 400, "invalid_query", Some(field));
    }
    // A year by day is more points than a line can show.
    let by_day = "/api/v1/evaluations/chart.svg?kind=trend&period=2026&bucket=day";
    app.get(&admin, by_day).await.problem(400, "invalid_query", Some("bucket"));
    let r = app.request(Method::GET, &format!("{base}&kind=ranking"), None, &[], vec![]).await;
    r.problem(401, "unauthorized", None);
    let citizen = app.sign_in("citizen").await;
    app.get(&citizen, &format!("{base}&kind=ranking")).await.problem(403, "forbidden_role", None);
    let handler = app.sign_in("handler").await;
    app.get(&handler, &format!("{base}&kind=heatmap")).await.problem(403, "out_of_scope", None);
    let commander = app.sign_in("commander").await;
    app.get(&commander, &format!("{base}&kind=heatmap&parent=320303")).await.problem(403, "out_of_scope", None);
}

async fn district_report(backend: Backend) {
    let app = seeded(backend).await;
    let admin = app.sign_in("admin").await;
    let r = app.get(&admin, "/api/v1/reports/districts/320311/2026-09.html").await;
    assert_eq!(r.status.as_u16(), 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(r.body).unwrap();
    assert!(html.contains("<h1>泉山区 2026年9月 数字城管月度评价报告</h1>"));
    for id in ["summary", "streets", "communities", "heatmap", "worst-grids", "notes"] {
        assert!(html.contains(&format!("<h2 id=\"{id}\">")), "section {id}");
    }
    assert_eq!(html.matches("<svg").count(), 3, "trend, street ranking, heat map");
    assert!(html.contains("七里沟街道") && html.contains("王陵街道"));
    assert!(!html.contains("彭城街道"), "no street of another district");
    assert!(html.contains("全市第 ") && html.contains(" / 共 2 个区"), "rank among the two districts");
    // Generated at the (manual) clock's time, in Beijing time.
    assert!(html.contains("<time>2026-09-28 09:00 (UTC+8)</time>"));
    // The ten worst grids: a table of ten rows after its heading.
    let worst = html.split("id=\"worst-grids\"").nth(1).unwrap().split("</table>").next().unwrap();
    assert_eq!(worst.matches("<tr>").count(), 1 + 10, "{worst}");
    // The figures agree with the district's evaluation.
    let d =
        app.get(&admin, "/api/v1/evaluations?subject=region&level=district&period=2026-09&parent=320311").await.ok(200);
    let row = &d["rows"][0];
    assert!(html.contains(&format!("<span class=\"score\">{:.1}</span>", row["score"].as_f64().unwrap())));
    assert!(html.contains("<td>立案数</td><td>2</td>"), "two filed in 泉山区");

    let commander = app.sign_in("commander").await;
    let own = app.get(&commander, "/api/v1/reports/districts/320311/2026-09.html").await;
    assert_eq!(own.status.as_u16(), 200);
}

async fn district_report_refusals(backend: Backend) {
    let app = spawn_app(backend).await;
    let commander = app.sign_in("commander").await;
    let path = "/api/v1/reports/districts";
    app.get(&commander, &format!("{path}/320303/2026-09.html")).await.problem(403, "out_of_scope", None);
    for who in ["citizen", "handler", "collector"] {
        let token = app.sign_in(who).await;
        app.get(&token, &format!("{path}/320311/2026-09.html")).await.problem_in(who, 403, "forbidden_role", None);
    }
    for (tail, field) in [
        ("320311/2026-13.html", "month"),
        ("320311/2026-09.pdf", "month"),
        ("320311/26-09.html", "month"),
        ("320311/2026-9.html", "month"),
        ("32031/2026-09.html", "code"),
        ("320311002/2026-09.html", "code"),
        ("320300/2026-09.html", "code"),
    ] {
        app.get(&commander, &format!("{path}/{tail}")).await.problem_in(tail, 422, "invalid_field", Some(field));
    }
    let admin = app.sign_in("admin").await;
    app.get(&admin, &format!("{path}/320399/2026-09.html")).await.problem(404, "not_found", None);
    let r = app.request(Method::GET, &format!("{path}/320311/2026-09.html"), None, &[], vec![]).await;
    r.problem(401, "unauthorized", None);
}
