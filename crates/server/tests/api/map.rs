//! `/api/v1/map/...` and `/tiles/...`: layer import (atomic, admin only), the point lookups,
//! geocoding, components near a point, GeoJSON layers with bbox, vector tiles, and cases on the
//! map within the caller's data scope.

use crate::helpers::{garbage, garbage_at, spawn_app, Backend, TestApp, QUANSHAN, YUNLONG};
use axum::http::Method;
use citygrid_geo::coord::{from_wgs84, to_wgs84};
use citygrid_geo::CoordSys;
use serde_json::{json, Value};

const WEST: f64 = 117.1625;
const EAST: f64 = 117.2125;
const SOUTH: f64 = 34.2455;
const NORTH: f64 = 34.2755;
const MID: f64 = 117.1875;

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]})
}

fn collection(features: Vec<Value>) -> String {
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

fn patrol_districts() -> String {
    collection(vec![
        json!({"type": "Feature", "properties": {"code": "PD01", "name": "西片区", "owner": "执法一中队"},
            "geometry": rect(WEST, SOUTH, MID, NORTH)}),
        json!({"type": "Feature", "properties": {"code": "PD02", "name": "东片区", "owner": "执法二中队"},
            "geometry": rect(MID, SOUTH, EAST, NORTH)}),
    ])
}

fn kiosks() -> String {
    collection(vec![
        json!({"type": "Feature", "properties": {"code": "K01", "name": "淮海西路岗亭", "patrol_district": "PD01"},
            "geometry": {"type": "Point", "coordinates": [117.17, 34.26]}}),
        json!({"type": "Feature", "properties": {"code": "K02", "name": "彭城岗亭", "patrol_district": "PD02"},
            "geometry": {"type": "Point", "coordinates": [117.20, 34.26]}}),
    ])
}

fn roads() -> String {
    collection(vec![json!({"type": "Feature",
        "properties": {"code": "320311-R-0001", "name": "淮海西路", "aliases": "淮海路", "district": "320311"},
        "geometry": {"type": "LineString", "coordinates": [[WEST, 34.2600], [EAST, 34.2600]]}})])
}

const ADDRESSES: &str = "code,kind,name,aliases,district,road,number,lon,lat
320311-R-0001,road,淮海西路,淮海路,320311,,,117.1800,34.2600
320311-D-000001,door,淮海西路18号,,320311,淮海西路,18号,117.1801,34.2601
320311-D-000002,door,淮海西路20号,,320311,淮海西路,20号,117.1810,34.2601
320311-P-000001,poi,徐州市第一中学,徐州一中,320311,,,117.1750,34.2650
";

const COMPONENTS: &str = "id,class_code,name,dept_credit_code,dept_name,grid_code,state,start_date,owner,maintainer,change_date,data_source,note,lon,lat,wkt
32031101001000001,01001,供水井盖,91350100M000100Y43,徐州市水务局,320311002002001,intact,2019-05-01,,,,,,117.18005,34.26003,
32031101001000002,01001,供水井盖,91350100M000100Y43,徐州市水务局,320311002002001,damaged,2019-05-01,,徐州水务养护公司,,,,117.1810,34.2605,
32031101003000001,01003,雨水井盖,91350100M000100Y43,徐州市水务局,320311002002001,intact,2020-01-01,,,,,,117.18002,34.26001,
3203110101000003,01001,供水井盖,91350100M000100Y43,徐州市水务局,320311002002001,完好,2018-03-01,,,,,,117.1820,34.2610,
32031104003000001,04003,绿地,91350100M000100Y43,徐州市园林局,320311002002001,intact,2018-03-01,,,,,,,,\"POLYGON((117.181 34.259,117.182 34.259,117.182 34.2595,117.181 34.2595,117.181 34.259))\"
";

async fn import(app: &TestApp, token: &str, layer: &str, content_type: &str, body: &str) -> crate::helpers::Resp {
    app.request(
        Method::POST,
        &format!("/api/v1/map/layers/{layer}/import"),
        Some(token),
        &[("content-type", content_type)],
        body.as_bytes().to_vec(),
    )
    .await
}

/// The demo city with every map layer imported through the API.
async fn mapped(backend: Backend) -> (TestApp, String) {
    let app = spawn_app(backend).await;
    let admin = app.sign_in("admin").await;
    for (layer, ct, body) in [
        ("patrol_districts", "application/geo+json", patrol_districts()),
        ("kiosks", "application/geo+json", kiosks()),
        ("roads", "application/json", roads()),
        ("addresses", "text/csv", ADDRESSES.to_owned()),
        ("components", "text/csv", COMPONENTS.to_owned()),
    ] {
        let out = import(&app, &admin, layer, ct, &body).await.ok(200);
        assert_eq!(out["layer"], layer, "{out}");
    }
    (app, admin)
}

async fn import_and_lookups(backend: Backend) {
    let (app, _admin) = mapped(backend).await;
    let collector = app.sign_in("collector").await;
    let citizen = app.sign_in("citizen").await;

    let v = app.get(&collector, "/api/v1/map/locate?lon=117.18&lat=34.26").await.ok(200);
    assert_eq!(v["grid"]["code"], "320311002002001", "{v}");
    assert_eq!(v["community"]["code"], "320311002002");
    assert_eq!(v["street"]["code"], "320311002");
    assert_eq!(v["street"]["name"], "七里沟街道");
    assert_eq!(v["district"]["code"], "320311");
    assert_eq!(v["area_class"], "A");
    assert_eq!(v["areas"]["patrol_districts"]["code"], "PD01");
    assert_eq!(v["areas"]["patrol_districts"]["owner"], "执法一中队");
    assert_eq!(v["nearest_kiosk"]["code"], "K01");
    let d = v["nearest_kiosk"]["distance_m"].as_f64().unwrap();
    assert!((900.0..940.0).contains(&d), "0.01° of longitude at 34.26° N is about 920 m: {d}");
    assert_eq!(v["nearest_address"]["name"], "淮海西路18号");

    // East of the middle: the other patrol district and kiosk.
    let v = app.get(&collector, &format!("/api/v1/map/locate?lon={}&lat={}", YUNLONG.0, YUNLONG.1)).await.ok(200);
    assert_eq!(v["district"]["code"], "320303");
    assert_eq!(v["areas"]["patrol_districts"]["code"], "PD02");
    assert_eq!(v["nearest_kiosk"]["code"], "K02");

    // Citizens get the region chain, not who covers it.
    let v = app.get(&citizen, "/api/v1/map/locate?lon=117.18&lat=34.26").await.ok(200);
    assert_eq!(v["grid"]["code"], "320311002002001");
    assert!(v.get("areas").is_none() && v.get("nearest_kiosk").is_none(), "{v}");

    // The same place given in GCJ-02 and BD-09 is the same grid, and answers in that system.
    for sys in [CoordSys::Gcj02, CoordSys::Bd09] {
        let (x, y) = from_wgs84(sys, 117.18, 34.26);
        let v = app
            .get(&collector, &format!("/api/v1/map/locate?lon={x}&lat={y}&coord_sys={}", sys.as_str()))
            .await
            .ok(200);
        assert_eq!(v["grid"]["code"], "320311002002001", "{sys:?}");
        assert!((v["location"]["lon"].as_f64().unwrap() - x).abs() < 1e-7, "{v}");
        let back = (v["wgs84"]["lon"].as_f64().unwrap(), v["wgs84"]["lat"].as_f64().unwrap());
        assert!(citygrid_geo::coord::distance_m(back.0, back.1, 117.18, 34.26) < 0.5, "{sys:?}: {back:?}");
    }

    // Outside every grid: refused, naming the field.
    app.get(&collector, "/api/v1/map/locate?lon=116.0&lat=34.26").await.problem(422, "outside_city", Some("lon"));
    app.get(&collector, "/api/v1/map/locate?lon=200&lat=34.26").await.problem(400, "invalid_query", Some("lon"));
    app.get(&collector, "/api/v1/map/locate?lon=117.18&lat=34.26&coord_sys=mars").await.problem(
        400,
        "invalid_query",
        Some("coord_sys"),
    );
    let r = app.request(Method::GET, "/api/v1/map/locate?lon=117.18&lat=34.26", None, &[], Vec::new()).await;
    r.problem(401, "unauthorized", None);
}

async fn geocoding(backend: Backend) {
    let (app, _admin) = mapped(backend).await;
    let t = app.sign_in("acceptor").await;
    for q in ["淮海西路18号", "江苏省徐州市泉山区淮海西路18号", "徐州市 淮海西路 １８号", "淮海路18号"]
    {
        let v = app.get(&t, &format!("/api/v1/map/geocode?q={}", urlencode(q))).await.ok(200);
        let first = &v["items"][0];
        assert_eq!(first["address"]["name"], "淮海西路18号", "{q}: {v}");
        assert_eq!(first["grid"], "320311002002001", "{q}");
        assert!(first["confidence"].as_f64().unwrap() >= 0.8, "{q}: {v}");
    }
    let v = app.get(&t, &format!("/api/v1/map/geocode?q={}", urlencode("徐州一中"))).await.ok(200);
    assert_eq!(v["items"][0]["address"]["name"], "徐州市第一中学", "{v}");
    // A number that does not exist: the road, with less confidence.
    let v = app.get(&t, &format!("/api/v1/map/geocode?q={}", urlencode("淮海西路999号"))).await.ok(200);
    let c = v["items"][0]["confidence"].as_f64().unwrap();
    assert!(c < 0.8, "{v}");
    let v = app.get(&t, &format!("/api/v1/map/geocode?q={}", urlencode("不存在的地方"))).await.ok(200);
    assert_eq!(v["items"], json!([]));
    app.get(&t, "/api/v1/map/geocode?q=").await.problem(400, "invalid_query", Some("q"));
    app.get(&t, "/api/v1/map/geocode?q=a&limit=0").await.problem(400, "invalid_query", Some("limit"));

    let v = app.get(&t, "/api/v1/map/reverse?lon=117.1809&lat=34.2602").await.ok(200);
    assert_eq!(v["address"]["name"], "淮海西路20号", "{v}");
    assert!(v["address"]["distance_m"].as_f64().unwrap() < 20.0);
    assert_eq!(v["road"]["name"], "淮海西路");
    assert_eq!(v["grid"], "320311002002001");
    let v = app.get(&t, "/api/v1/map/reverse?lon=117.21&lat=34.247&max_distance=50").await.ok(200);
    assert!(v["address"].is_null(), "{v}");
    app.get(&t, "/api/v1/map/reverse?lon=117.18&lat=34.26&max_distance=0").await.problem(
        400,
        "invalid_query",
        Some("max_distance"),
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn components(backend: Backend) {
    let (app, _admin) = mapped(backend).await;
    let t = app.sign_in("collector").await;
    // Water-supply covers near the reported point, nearest first.
    let v = app.get(&t, "/api/v1/map/components?lon=117.18&lat=34.26&radius=300&class_code=01001").await.ok(200);
    let ids: Vec<&str> = v["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["32031101001000001", "32031101001000002", "32031101001000003"], "{v}");
    let d: Vec<f64> = v["items"].as_array().unwrap().iter().map(|c| c["distance_m"].as_f64().unwrap()).collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]) && d[0] < 10.0, "{d:?}");
    assert_eq!(v["items"][0]["class_name"], "供水井盖");
    assert_eq!(v["items"][1]["state"], "damaged");
    // Every class within 10 m: the water and the storm-water cover.
    let v = app.get(&t, "/api/v1/map/components?lon=117.18&lat=34.26&radius=10").await.ok(200);
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{v}");
    // A box.
    let v = app.get(&t, "/api/v1/map/components?bbox=117.1805,34.2600,117.1830,34.2620").await.ok(200);
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{v}");

    // One record, by its id and by its legacy 16-digit id.
    let v = app.get(&t, "/api/v1/map/components/32031101001000003").await.ok(200);
    assert_eq!(v["state"], "intact", "Chinese 完好 was read as intact");
    assert_eq!(v["legacy_id"], "3203110101000003");
    assert_eq!(v["street_code"], "320311002");
    let legacy = app.get(&t, "/api/v1/map/components/3203110101000003").await.ok(200);
    assert_eq!(legacy["id"], "32031101001000003");
    let lawn = app.get(&t, "/api/v1/map/components/32031104003000001").await.ok(200);
    assert_eq!(lawn["geometry"]["type"], "Polygon", "{lawn}");
    app.get(&t, "/api/v1/map/components/32031101001999999").await.problem(404, "not_found", None);
    app.get(&t, "/api/v1/map/components/123").await.problem(400, "invalid_query", Some("id"));

    for (q, field) in [
        ("lon=117.18&lat=34.26&class_code=06010", "class_code"),
        ("lon=117.18&lat=34.26&radius=0", "radius"),
        ("lon=117.18&lat=34.26&radius=5000", "radius"),
        ("lon=117.18", "lon"),
        ("bbox=1,2,3", "bbox"),
        ("bbox=117.19,34.26,117.18,34.27", "bbox"),
        ("bbox=117.18,34.26,117.19,34.27&lon=117.18&lat=34.26", "bbox"),
    ] {
        let r = app.get(&t, &format!("/api/v1/map/components?{q}")).await;
        r.problem_in(q, 400, "invalid_query", Some(field));
    }
}

async fn import_refusals_change_nothing(backend: Backend) {
    let (app, admin) = mapped(backend).await;
    let dispatcher = app.sign_in("dispatcher").await;
    let before = app.counts().await;
    import(&app, &dispatcher, "patrol_districts", "application/geo+json", &patrol_districts()).await.problem(
        403,
        "forbidden_role",
        None,
    );

    // One bad feature among good ones: refused whole, naming the feature.
    let bad = collection(vec![
        json!({"type": "Feature", "properties": {"code": "PD09", "name": "新片区", "owner": "执法九中队"},
            "geometry": rect(WEST, SOUTH, MID, NORTH)}),
        json!({"type": "Feature", "properties": {"code": "PD10", "name": "坏片区", "owner": "x"},
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}),
    ]);
    let r = import(&app, &admin, "patrol_districts", "application/geo+json", &bad).await;
    assert_eq!(r.status.as_u16(), 422, "{}", String::from_utf8_lossy(&r.body));
    let p = r.json();
    assert!(p["field"].as_str().unwrap().starts_with("features[1]"), "{p}");

    // A component CSV whose third row has a bad date.
    let csv = COMPONENTS.replacen("2020-01-01", "2020-13-01", 1);
    let r = import(&app, &admin, "components", "text/csv", &csv).await;
    assert_eq!(r.status.as_u16(), 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["detail"].as_str().unwrap().contains("start_date"), "{}", r.json());
    // An event class where a component class belongs.
    let csv = COMPONENTS.replacen(",01003,", ",06010,", 1);
    assert_eq!(import(&app, &admin, "components", "text/csv", &csv).await.status.as_u16(), 422);
    // Grids that overlap each other.
    let grids = collection(vec![
        json!({"type": "Feature", "properties": {"code": "320311001001001", "name": "a"}, "geometry": rect(WEST, SOUTH, MID, NORTH)}),
        json!({"type": "Feature", "properties": {"code": "320311001001002", "name": "b"}, "geometry": rect(WEST, SOUTH, MID, NORTH)}),
    ]);
    assert_eq!(import(&app, &admin, "grids", "application/geo+json", &grids).await.status.as_u16(), 422);

    import(&app, &admin, "components", "application/pdf", "x").await.problem(415, "unsupported_media_type", None);
    import(&app, &admin, "nowhere", "application/geo+json", "{}").await.problem(404, "not_found", None);
    import(&app, &admin, "kiosks", "application/geo+json", "not json").await.problem(
        422,
        "invalid_feature",
        Some("body"),
    );
    assert_eq!(app.counts().await, before, "refused imports wrote nothing");
    // Re-importing a layer replaces it.
    let one = collection(vec![
        json!({"type": "Feature", "properties": {"code": "K09", "name": "新岗亭", "patrol_district": "PD02"},
        "geometry": {"type": "Point", "coordinates": [117.20, 34.26]}}),
    ]);
    import(&app, &admin, "kiosks", "application/geo+json", &one).await.ok(200);
    let t = app.sign_in("collector").await;
    let v = app.get(&t, "/api/v1/map/layers/kiosks").await.ok(200);
    let codes: Vec<&str> =
        v["features"].as_array().unwrap().iter().map(|f| f["properties"]["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["K09"]);
}

async fn layers_and_tiles(backend: Backend) {
    let (app, _admin) = mapped(backend).await;
    let t = app.sign_in("collector").await;
    let citizen = app.sign_in("citizen").await;
    let all = app.get(&t, "/api/v1/map/layers/grids").await;
    assert_eq!(all.header("content-type"), Some("application/geo+json"));
    let all = all.json();
    assert_eq!(all["features"].as_array().unwrap().len(), 100);
    assert_eq!(all["truncated"], false);
    // A box over 2 × 2 cells (each 0.005° × 0.003°), inside their edges: exactly 4 grids.
    let v = app.get(&t, "/api/v1/map/layers/grids?bbox=117.1630,34.2700,117.1715,34.2750").await.ok(200);
    let codes: Vec<&str> =
        v["features"].as_array().unwrap().iter().map(|f| f["properties"]["code"].as_str().unwrap()).collect();
    assert_eq!(codes.len(), 4, "{codes:?}");
    assert!(codes.contains(&"320311001001001"), "{codes:?}");
    let v = app.get(&t, "/api/v1/map/layers/grids?limit=10").await.ok(200);
    assert_eq!(v["features"].as_array().unwrap().len(), 10);
    assert_eq!(v["truncated"], true);
    // GCJ-02 output moves every vertex by the GCJ offset.
    let w = app.get(&t, "/api/v1/map/layers/kiosks").await.ok(200);
    let g = app.get(&t, "/api/v1/map/layers/kiosks?coord_sys=gcj02").await.ok(200);
    let (x, y) = (
        w["features"][0]["geometry"]["coordinates"][0].as_f64().unwrap(),
        w["features"][0]["geometry"]["coordinates"][1].as_f64().unwrap(),
    );
    let (gx, gy) = (
        g["features"][0]["geometry"]["coordinates"][0].as_f64().unwrap(),
        g["features"][0]["geometry"]["coordinates"][1].as_f64().unwrap(),
    );
    let (bx, by) = to_wgs84(CoordSys::Gcj02, gx, gy);
    assert!(citygrid_geo::coord::distance_m(bx, by, x, y) < 0.5);
    assert!(citygrid_geo::coord::distance_m(gx, gy, x, y) > 100.0, "GCJ-02 is offset by hundreds of metres");
    // Responsibility areas are for staff.
    app.get(&citizen, "/api/v1/map/layers/patrol_districts").await.problem(403, "forbidden_role", None);
    app.get(&citizen, "/api/v1/map/layers/kiosks").await.problem(403, "forbidden_role", None);
    app.get(&t, "/api/v1/map/layers/cases?limit=10000").await.problem(400, "invalid_query", Some("limit"));
    app.get(&t, "/tiles/grids/14/13524/6530.mvt?coord_sys=bd09").await.problem(400, "invalid_query", Some("coord_sys"));
    let v = app.get(&t, "/api/v1/map/layers/patrol_districts").await.ok(200);
    assert_eq!(v["features"].as_array().unwrap().len(), 2);
    app.get(&t, "/api/v1/map/layers/rivers").await.problem(404, "not_found", None);
    app.get(&t, "/api/v1/map/layers/grids?limit=0").await.problem(400, "invalid_query", Some("limit"));
    let comps = app.get(&t, "/api/v1/map/layers/components?class_code=01001").await.ok(200);
    assert_eq!(comps["features"].as_array().unwrap().len(), 3);

    // The z=14 tile holding 117.18, 34.26 is (13524, 6530) (hand-computed Web Mercator).
    let r = app.get(&t, "/tiles/grids/14/13524/6530.mvt").await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.header("content-type"), Some("application/vnd.mapbox-vector-tile"));
    assert!(r.body.len() > 100, "a tile with grids in it");
    assert!(r.body.windows(5).any(|w| w == b"grids"), "the layer is named after the URL");
    let r = app.get(&t, "/tiles/components/14/13524/6530.mvt").await;
    assert_eq!(r.status.as_u16(), 200);
    // Far away: an empty tile, still a valid answer.
    let r = app.get(&t, "/tiles/grids/14/0/0.mvt").await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.body.len() < 50);
    app.get(&t, "/tiles/grids/14/99999/6602.mvt").await.problem(404, "not_found", None);
    app.get(&t, "/tiles/grids/14/13524/6530.png").await.problem(400, "invalid_query", Some("y"));
    app.get(&t, "/tiles/nowhere/14/13524/6530.mvt").await.problem(404, "not_found", None);
    let r = app.request(Method::GET, "/tiles/grids/14/13524/6530.mvt", None, &[], Vec::new()).await;
    r.problem(401, "unauthorized", None);
    app.get(&citizen, "/tiles/collector_areas/14/13524/6530.mvt").await.problem(403, "forbidden_role", None);

    let v = app.get(&t, "/api/v1/map").await.ok(200);
    assert_eq!(v["layers"]["kiosks"], 2, "{v}");
    assert_eq!(v["layers"]["components"], 5, "{v}");
    assert!(v["layer_names"].as_array().unwrap().len() >= 13);
}

async fn cases_on_the_map(backend: Backend) {
    let (app, _admin) = mapped(backend).await;
    let collector = app.sign_in("collector").await;
    let citizen = app.sign_in("citizen").await;
    let commander = app.sign_in("commander").await;
    let leader = app.sign_in("leader").await;
    let q = app.report(&collector, &garbage()).await["id"].as_i64().unwrap();
    let y = app.report(&collector, &garbage_at(YUNLONG.0, YUNLONG.1)).await["id"].as_i64().unwrap();
    let c = app.report(&citizen, &garbage_at(117.1801, 34.2601)).await["id"].as_i64().unwrap();
    let ids = |v: &Value| -> Vec<i64> {
        let mut ids: Vec<i64> = v["items"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
        ids.sort_unstable();
        ids
    };
    let whole = format!("bbox={WEST},{SOUTH},{EAST},{NORTH}");
    assert_eq!(ids(&app.get(&leader, &format!("/api/v1/map/cases?{whole}")).await.ok(200)), [q, y, c]);
    // The district command centre sees its district only; the citizen their own report.
    assert_eq!(ids(&app.get(&commander, &format!("/api/v1/map/cases?{whole}")).await.ok(200)), [q, c]);
    assert_eq!(ids(&app.get(&citizen, &format!("/api/v1/map/cases?{whole}")).await.ok(200)), [c]);
    // Radius, stored area, region, state and class filters.
    let near = format!("lon={}&lat={}&radius=50", QUANSHAN.0, QUANSHAN.1);
    assert_eq!(ids(&app.get(&leader, &format!("/api/v1/map/cases?{near}")).await.ok(200)), [q, c]);
    assert_eq!(ids(&app.get(&leader, "/api/v1/map/cases?area=patrol_districts:PD02").await.ok(200)), [y]);
    // The small demo city stores no polygon for its districts: nothing to search in.
    app.get(&leader, "/api/v1/map/cases?region=320303").await.problem(404, "not_found", None);
    assert_eq!(ids(&app.get(&leader, "/api/v1/map/cases?region=320311002002001").await.ok(200)), [q, c]);
    assert_eq!(ids(&app.get(&leader, &format!("/api/v1/map/cases?{whole}&state=verifying")).await.ok(200)), [c]);
    assert_eq!(
        ids(&app.get(&leader, &format!("/api/v1/map/cases?{whole}&class_code=01001")).await.ok(200)),
        Vec::<i64>::new()
    );
    let v = app.get(&leader, &format!("/api/v1/map/cases?{whole}&limit=1")).await.ok(200);
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["truncated"], true);
    let m = &app.get(&leader, &format!("/api/v1/map/cases?{near}&state=reported")).await.ok(200)["items"][0];
    assert_eq!(m["grid_code"], "320311002002001");
    assert_eq!(m["class_code"], "06010");
    assert!(m["deadline"].is_string(), "{m}");
    // A drawn polygon (lasso) in GCJ-02 around the Quanshan point.
    let ring: Vec<Value> = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0)]
        .iter()
        .map(|(dx, dy)| {
            let (x, y) = from_wgs84(CoordSys::Gcj02, QUANSHAN.0 + dx * 0.0005, QUANSHAN.1 + dy * 0.0005);
            json!([x, y])
        })
        .collect();
    let body = json!({"polygon": {"type": "Polygon", "coordinates": [ring]}, "coord_sys": "gcj02"});
    let v = app.post_json(&leader, "/api/v1/map/cases/within", &body).await.ok(200);
    assert_eq!(ids(&v), [q, c]);
    let loc = &v["items"][0]["location"];
    let (gx, gy) = from_wgs84(CoordSys::Gcj02, QUANSHAN.0, QUANSHAN.1);
    assert!((loc["lon"].as_f64().unwrap() - gx).abs() < 1e-3 && (loc["lat"].as_f64().unwrap() - gy).abs() < 1e-3);
    // Citizens may not probe responsibility areas; bad shapes are named.
    app.get(&citizen, "/api/v1/map/cases?area=patrol_districts:PD01").await.problem(403, "forbidden_role", None);
    app.get(&leader, "/api/v1/map/cases?area=patrol_districts:PD99").await.problem(404, "not_found", None);
    app.get(&leader, "/api/v1/map/cases").await.problem(400, "invalid_query", Some("bbox"));
    app.get(&leader, &format!("/api/v1/map/cases?{whole}&lon=1&lat=1")).await.problem(
        400,
        "invalid_query",
        Some("bbox"),
    );
    app.get(&leader, "/api/v1/map/cases?lon=117.18&lat=34.26").await.problem(400, "invalid_query", Some("radius"));
    app.get(&leader, &format!("/api/v1/map/cases?{whole}&state=lost")).await.problem(
        400,
        "invalid_query",
        Some("state"),
    );
    let huge: Vec<Value> = (0..=10_001)
        .map(|i| {
            let a = f64::from(i) / 10_001.0 * std::f64::consts::TAU;
            json!([117.18 + 0.01 * a.cos(), 34.26 + 0.01 * a.sin()])
        })
        .collect();
    let body = json!({"polygon": {"type": "Polygon", "coordinates": [huge]}});
    app.post_json(&leader, "/api/v1/map/cases/within", &body).await.problem(422, "invalid_field", Some("polygon"));
    let bad = json!({"polygon": {"type": "Point", "coordinates": [1, 2]}});
    app.post_json(&leader, "/api/v1/map/cases/within", &bad).await.problem(422, "invalid_field", Some("polygon"));
    // The case list takes the same box.
    let v = app.get(&leader, &format!("/api/v1/cases?bbox={},{},{},{}", MID, SOUTH, EAST, NORTH)).await.ok(200);
    assert_eq!(ids(&v), [y]);
    app.get(&leader, "/api/v1/cases?bbox=x").await.problem(400, "invalid_query", Some("bbox"));
}

type Bbox = (f64, f64, f64, f64);

/// A patrol-district layer as an ESRI Shapefile (.shp + .dbf), built in memory.
fn patrol_shapefile(codes: &[(&str, Bbox)]) -> (Vec<u8>, Vec<u8>) {
    use shapefile::dbase::{FieldName, FieldValue, Record, TableWriterBuilder};
    let mut shp = std::io::Cursor::new(Vec::new());
    let mut dbf = std::io::Cursor::new(Vec::new());
    {
        let table = TableWriterBuilder::new()
            .add_character_field(FieldName::try_from("CODE").unwrap(), 20)
            .add_character_field(FieldName::try_from("NAME").unwrap(), 50)
            .add_character_field(FieldName::try_from("OWNER").unwrap(), 50)
            .build_with_dest(&mut dbf);
        let mut w = shapefile::Writer::new(shapefile::ShapeWriter::new(&mut shp), table);
        for (code, (x0, y0, x1, y1)) in codes {
            let mut rec = Record::default();
            rec.insert("CODE".into(), FieldValue::Character(Some((*code).to_owned())));
            rec.insert("NAME".into(), FieldValue::Character(Some(format!("{code}片区"))));
            rec.insert("OWNER".into(), FieldValue::Character(Some("执法大队".to_owned())));
            let ring = geo::LineString::from(vec![(*x0, *y0), (*x1, *y0), (*x1, *y1), (*x0, *y1), (*x0, *y0)]);
            let polygon = geo::MultiPolygon(vec![geo::Polygon::new(ring, vec![])]);
            w.write_shape_and_record(&shapefile::Polygon::from(polygon), &rec).unwrap();
        }
    }
    (shp.into_inner(), dbf.into_inner())
}

fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "citygrid-shp-boundary-42";
    let mut body = Vec::new();
    for (name, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"layer.{name}\"\r\n").as_bytes(),
        );
        body.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn shapefile_and_grid_import(backend: Backend) {
    let (app, admin) = mapped(backend).await;
    let t = app.sign_in("collector").await;
    let (shp, dbf) = patrol_shapefile(&[("PD11", (WEST, SOUTH, MID, NORTH)), ("PD12", (MID, SOUTH, EAST, NORTH))]);
    let (ct, body) = multipart(&[("shp", &shp), ("dbf", &dbf)]);
    let uri = "/api/v1/map/layers/patrol_districts/import";
    let v = app.request(Method::POST, uri, Some(&admin), &[("content-type", &ct)], body).await.ok(200);
    assert_eq!(v["rows"]["areas"], 2, "{v}");
    let v = app.get(&t, &format!("/api/v1/map/locate?lon={}&lat={}", YUNLONG.0, YUNLONG.1)).await.ok(200);
    assert_eq!(v["areas"]["patrol_districts"]["code"], "PD12");
    assert_eq!(v["areas"]["patrol_districts"]["name"], "PD12片区");
    // A part missing, or a Shapefile for a CSV layer: refused, nothing changes.
    let before = app.counts().await;
    let (ct, body) = multipart(&[("shp", &shp)]);
    app.request(Method::POST, uri, Some(&admin), &[("content-type", &ct)], body).await.problem(
        422,
        "invalid_field",
        Some("dbf"),
    );
    let (ct, body) = multipart(&[("shp", &shp), ("dbf", &dbf)]);
    app.request(Method::POST, "/api/v1/map/layers/components/import", Some(&admin), &[("content-type", &ct)], body)
        .await
        .problem(415, "unsupported_media_type", None);
    // A Shapefile with a bad second record names it.
    let (bad_shp, bad_dbf) = patrol_shapefile(&[("PD13", (WEST, SOUTH, MID, NORTH)), ("", (MID, SOUTH, EAST, NORTH))]);
    let (ct, body) = multipart(&[("shp", &bad_shp), ("dbf", &bad_dbf)]);
    let r = app.request(Method::POST, uri, Some(&admin), &[("content-type", &ct)], body).await;
    assert_eq!(r.status.as_u16(), 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["field"].as_str().unwrap().starts_with("features[1]"), "{}", r.json());
    assert_eq!(app.counts().await, before);

    // The grid layer, exported and imported back: valid against the stored communities.
    let grids = app.get(&t, "/api/v1/map/layers/grids").await.ok(200);
    let v = import(&app, &admin, "grids", "application/geo+json", &grids.to_string()).await.ok(200);
    assert_eq!(v["rows"]["regions"], 100, "{v}");
    let v = app.get(&t, "/api/v1/map/locate?lon=117.18&lat=34.26").await.ok(200);
    assert_eq!(v["grid"]["code"], "320311002002001");
    // A grid whose community does not exist.
    let stray = collection(vec![json!({"type": "Feature", "properties": {"code": "320311009009001", "name": "x"},
        "geometry": rect(117.30, 34.30, 117.31, 34.31)})]);
    let r = import(&app, &admin, "grids", "application/geo+json", &stray).await;
    r.problem(422, "invalid_map", Some("features"));
    assert!(r.json()["detail"].as_str().unwrap().contains("320311009009001"), "{}", r.json());
}

async fn reports_link_their_component(backend: Backend) {
    let (app, _admin) = mapped(backend).await;
    let t = app.sign_in("collector").await;
    let report = |class: &str, extra: Value| {
        let mut body = json!({"kind": "event", "class_code": class, "description": "井盖破损",
            "location": {"lon": 117.18, "lat": 34.26}});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    // "Water-supply cover abnormal" at the point: the nearest water-supply cover, 6 m away.
    let v = app.report(&t, &report("01001", json!({}))).await;
    assert_eq!(v["component_id"], "32031101001000001", "{v}");
    // Storm-water cover abnormal: the storm-water cover right there, not the nearer water cover.
    let v = app.report(&t, &report("01003", json!({}))).await;
    assert_eq!(v["component_id"], "32031101003000001", "{v}");
    // Exposed garbage is about no component.
    assert!(app.report(&t, &garbage()).await["component_id"].is_null());
    // Named by the reporter, with a legacy id; it survives in the case's log.
    let mut named = report("01001", json!({"component_id": "3203110101000003"}));
    named["location"] = json!({"lon": 117.1815, "lat": 34.2605});
    let v = app.report(&t, &named).await;
    assert_eq!(v["component_id"], "32031101001000003");
    let id = v["id"].as_i64().unwrap();
    let full = app.get(&t, &format!("/api/v1/cases/{id}")).await.ok(200);
    assert_eq!(full["component_id"], "32031101001000003");
    assert_eq!(full["events"][0]["component_id"], "32031101001000003", "{full}");
    app.assert_replays().await;
    // The log answers in the asked system too.
    let g = app.get(&t, &format!("/api/v1/cases/{id}?coord_sys=gcj02")).await.ok(200);
    assert_eq!(g["location"], g["events"][0]["location"], "{g}");
    assert!((g["location"]["lon"].as_f64().unwrap() - 117.1815).abs() > 1e-3, "converted: {g}");
    // Unknown, malformed, far away or of another class: refused, nothing written.
    let before = app.counts().await;
    for (cid, lon) in
        [("32031101001999999", 117.18), ("123", 117.18), ("32031101001000001", 117.20), ("32031101003000001", 117.18)]
    {
        let mut body = report("01001", json!({"component_id": cid}));
        body["location"]["lon"] = json!(lon);
        app.post_json(&t, "/api/v1/cases", &body).await.problem_in(cid, 422, "invalid_field", Some("component_id"));
    }
    assert_eq!(app.counts().await, before);
}

async fn a_grid_drawn_on_a_gcj02_map(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.sign_in("admin").await;
    // A square east of the demo city, drawn on an AMap base map (GCJ-02).
    let ring: Vec<Value> =
        [(117.215, 34.270), (117.220, 34.270), (117.220, 34.273), (117.215, 34.273), (117.215, 34.270)]
            .iter()
            .map(|(x, y)| {
                let (gx, gy) = from_wgs84(CoordSys::Gcj02, *x, *y);
                json!([gx, gy])
            })
            .collect();
    let body = json!({"code": "320311001001099", "name": "新网格", "coord_sys": "gcj02",
        "geometry": {"type": "Polygon", "coordinates": [ring]}});
    app.post_json(&admin, "/api/v1/regions", &body).await.ok(201);
    let v = app.get(&admin, "/api/v1/map/locate?lon=117.2175&lat=34.2715").await.ok(200);
    assert_eq!(v["grid"]["code"], "320311001001099", "stored in WGS-84: {v}");
    let v = app.get(&admin, "/api/v1/map/layers/grids?bbox=117.216,34.271,117.219,34.272").await.ok(200);
    let x = v["features"][0]["geometry"]["coordinates"][0][0][0][0].as_f64().unwrap();
    assert!((x - 117.215).abs() < 1e-6, "{v}");
}

backend_tests!(
    a_grid_drawn_on_a_gcj02_map,
    reports_link_their_component,
    shapefile_and_grid_import,
    import_and_lookups,
    geocoding,
    components,
    import_refusals_change_nothing,
    layers_and_tiles,
    cases_on_the_map
);
