//! The test harness: a fresh database per test (SQLite in a temp dir, or a fresh PostgreSQL
//! schema), the demo city, a manual clock, and a small typed client that drives the router
//! in-process with `tower::ServiceExt::oneshot`.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use citygrid_server::{bootstrap, AppState, Clock, Settings};
use citygrid_store::Store;
use http_body_util::BodyExt;
use jiff::Timestamp;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Run the listed `async fn name(backend: Backend)` tests on SQLite and, when
/// `CITYGRID_TEST_POSTGRES` is set, on PostgreSQL: `sqlite::name` and `postgres::name`.
macro_rules! backend_tests {
    ($($(#[$attr:meta])* $name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    match $crate::helpers::Backend::postgres() {
                        Some(backend) => super::$name(backend).await,
                        None => eprintln!("skipped: set CITYGRID_TEST_POSTGRES=postgres://... to run on PostgreSQL"),
                    }
                }
            )+
        }
    };
}

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// Base URL of a PostgreSQL database; every test gets its own schema in it.
    Postgres(String),
}

impl Backend {
    pub fn postgres() -> Option<Backend> {
        std::env::var("CITYGRID_TEST_POSTGRES").ok().filter(|u| !u.trim().is_empty()).map(Backend::Postgres)
    }
}

/// An instant in Beijing time: `bj("2026-09-30 16:00")`.
pub fn bj(local: &str) -> Timestamp {
    let text = format!("{}:00+08:00", local.replacen(' ', "T", 1));
    text.parse().unwrap_or_else(|e| panic!("bad test time {local:?}: {e}"))
}

/// The same instant as the API writes it (`deadline` etc. parse back to it).
pub fn ts(v: &Value) -> Option<Timestamp> {
    v.as_str().map(|s| s.parse().unwrap_or_else(|e| panic!("not a timestamp: {s:?}: {e}")))
}

/// One answer of the API.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{} body is not JSON ({e}): {}", self.status, String::from_utf8_lossy(&self.body))
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert a success status and return the JSON body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", String::from_utf8_lossy(&self.body));
        self.json()
    }

    /// Assert an `application/problem+json` refusal with this status, code and (if given) field.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str, field: Option<&str>) {
        self.problem_in("", status, code, field);
    }

    /// [`Resp::problem`], naming the case in the table that failed.
    #[track_caller]
    pub fn problem_in(&self, what: &str, status: u16, code: &str, field: Option<&str>) {
        let text = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status.as_u16(), status, "{what}: status; body: {text}");
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{what}: content-type; body: {text}");
        let p = self.json();
        assert_eq!(p["status"], status, "{what}: problem.status; body: {text}");
        assert_eq!(p["code"], code, "{what}: problem.code; body: {text}");
        assert!(p["title"].is_string() && p["detail"].is_string(), "{what}: title and detail; body: {text}");
        match field {
            Some(field) => assert_eq!(p["field"], field, "{what}: problem.field; body: {text}"),
            None => assert!(p.get("field").is_none(), "{what}: no field expected; body: {text}"),
        }
    }
}

/// A running app on a fresh database with the demo city loaded.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub store: Store,
    /// The database URL (for PostgreSQL with the test's schema as its search path), for a test
    /// that writes what an older version left behind.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: (base URL, schema), dropped when the test passes.
    pg_schema: Option<(String, String)>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some((base, schema)) = self.pg_schema.take() else {
            return;
        };
        if std::thread::panicking() {
            eprintln!("kept PostgreSQL schema {schema} of the failed test for inspection");
            return;
        }
        // Drop is synchronous: do the clean-up on a thread with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            use citygrid_store::sqlx::{self, Connection};
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&base).await.ok()?;
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut conn).await.ok()?;
                conn.close().await.ok()
            })
        });
        let _ = cleanup.join();
    }
}

/// The demo city on a fresh database, the clock at 2026-09-28 09:00 (a Monday), default settings.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, Settings::default()).await
}

/// Settings whose tokens outlive tests that move the clock by days.
pub fn long_tokens() -> Settings {
    Settings { token_ttl: jiff::SignedDuration::from_hours(24 * 60), ..Settings::default() }
}

pub async fn spawn_app_with(backend: Backend, settings: Settings) -> TestApp {
    let (url, dir, pg_schema) = match &backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            (format!("sqlite:{}", dir.path().join("t.db").display()), Some(dir), None)
        }
        Backend::Postgres(base) => {
            let (url, schema) = fresh_pg_schema(base).await;
            (url, None, Some((base.clone(), schema)))
        }
    };
    let store = Store::connect(&url).await.unwrap_or_else(|e| panic!("connect {url}: {e}"));
    // Migrations first: `AppState::load` reads settings and grids from the tables.
    bootstrap::init(&store).await.expect("migrate");
    let state =
        AppState::load(store.clone(), Clock::manual(bj("2026-09-28 09:00")), settings).await.expect("load state");
    bootstrap::load_demo(&state).await.expect("demo city");
    let expected = if matches!(backend, Backend::Sqlite) { "sqlite" } else { "postgres" };
    assert_eq!(store.backend(), expected);
    TestApp { router: citygrid_server::app(state.clone()), state, store, url, _dir: dir, pg_schema }
}

async fn send(router: Router, req: Request<Body>) -> Resp {
    let res = router.oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
    Resp { status, headers, body }
}

/// Create schema `t_<random>` in the database at `base` and return it with a URL whose
/// connections use it as their search path (sqlx 0.8 passes `options` to the server as startup
/// options: `-csearch_path=t_...`).
async fn fresh_pg_schema(base: &str) -> (String, String) {
    use citygrid_store::sqlx::{self, Connection};
    use rand::Rng;
    let schema = format!("t_{:016x}", rand::thread_rng().gen::<u64>());
    let mut conn = sqlx::PgConnection::connect(base).await.unwrap_or_else(|e| panic!("connect {base}: {e}"));
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.expect("create schema");
    conn.close().await.expect("close");
    let sep = if base.contains('?') { '&' } else { '?' };
    (format!("{base}{sep}options=-csearch_path%3D{schema}"), schema)
}

impl TestApp {
    /// Run one SQL statement on the database, outside the store.
    pub async fn raw_execute(&self, sql: &str) {
        use citygrid_store::sqlx::{self, Connection};
        if self.store.backend() == "sqlite" {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.expect("connect");
            sqlx::query(sql).execute(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            c.close().await.expect("close");
        } else {
            let mut c = sqlx::PgConnection::connect(&self.url).await.expect("connect");
            sqlx::query(sql).execute(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            c.close().await.expect("close");
        }
    }

    pub fn set_time(&self, local: &str) {
        self.state.clock.set(bj(local));
    }

    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body)).expect("request");
        send(self.router.clone(), req).await
    }

    /// `POST` JSON on a task of its own, for tests of concurrent requests.
    pub fn spawn_post_json(
        &self,
        token: &str,
        uri: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> tokio::task::JoinHandle<Resp> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body.to_string())).expect("request");
        tokio::spawn(send(self.router.clone(), req))
    }

    pub async fn get(&self, token: &str, uri: &str) -> Resp {
        self.request(Method::GET, uri, Some(token), &[], Vec::new()).await
    }

    pub async fn post_json(&self, token: &str, uri: &str, body: &Value) -> Resp {
        self.post_json_with(token, uri, body, &[]).await
    }

    pub async fn put_json(&self, token: &str, uri: &str, body: &Value) -> Resp {
        let headers = [("content-type", "application/json")];
        self.request(Method::PUT, uri, Some(token), &headers, body.to_string().into_bytes()).await
    }

    /// `GET` a text body (CSV, XML), asserting 200.
    pub async fn get_text(&self, token: &str, uri: &str) -> String {
        let r = self.request(Method::GET, uri, Some(token), &[], vec![]).await;
        assert_eq!(r.status.as_u16(), 200, "GET {uri}: {}", String::from_utf8_lossy(&r.body));
        String::from_utf8(r.body).expect("UTF-8 body")
    }

    pub async fn post_json_with(&self, token: &str, uri: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.request(Method::POST, uri, Some(token), &all, body.to_string().into_bytes()).await
    }

    /// `POST /api/v1/cases/{id}/actions/{action}`; `Value::Null` sends an empty body.
    pub async fn act(&self, token: &str, id: i64, action: &str, body: Value) -> Resp {
        let uri = format!("/api/v1/cases/{id}/actions/{action}");
        if body.is_null() {
            self.request(Method::POST, &uri, Some(token), &[], Vec::new()).await
        } else {
            self.post_json(token, &uri, &body).await
        }
    }

    /// Sign in with the demo password; a new token each time.
    pub async fn sign_in(&self, username: &str) -> String {
        self.sign_in_with(username, bootstrap::DEMO_PASSWORD).await
    }

    pub async fn sign_in_with(&self, username: &str, password: &str) -> String {
        let body = json!({"username": username, "password": password});
        let r = self
            .request(
                Method::POST,
                "/api/v1/auth/token",
                None,
                &[("content-type", "application/json")],
                body.to_string().into_bytes(),
            )
            .await;
        let v = r.ok(200);
        v["token"].as_str().expect("token").to_owned()
    }

    /// Upload a photo as `multipart/form-data` (built by hand).
    pub async fn upload_photo(&self, token: &str, bytes: &[u8]) -> Resp {
        let boundary = "citygrid-test-boundary-7f3a9c";
        let mut body = Vec::new();
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(b"Content-Disposition: form-data; name=\"file\"; filename=\"photo.bin\"\r\n");
        body.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let ct = format!("multipart/form-data; boundary={boundary}");
        self.request(Method::POST, "/api/v1/photos", Some(token), &[("content-type", &ct)], body).await
    }

    /// Upload and return the photo id.
    pub async fn photo_id(&self, token: &str, bytes: &[u8]) -> String {
        let v = self.upload_photo(token, bytes).await.ok(201);
        v["id"].as_str().expect("photo id").to_owned()
    }

    /// Row count of every table.
    pub async fn counts(&self) -> Vec<(String, i64)> {
        self.store.table_counts().await.expect("table counts")
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.counts().await.into_iter().find(|(t, _)| t == table).map(|(_, n)| n).expect("table")
    }

    /// Every case replays from its log to exactly its stored row.
    pub async fn assert_replays(&self) {
        for id in self.store.case_ids().await.expect("case ids") {
            let events = self.store.case_events(id).await.expect("events");
            let stored = self.store.get_case(id).await.expect("case").expect("case row");
            assert_eq!(citygrid_core::case::replay(id, &events), Some(stored), "case {id} replays to its row");
        }
    }

    /// Report a case and return its JSON (asserting 201).
    pub async fn report(&self, token: &str, body: &Value) -> Value {
        self.post_json(token, "/api/v1/cases", body).await.ok(201)
    }

    /// Take an action and return the case (asserting 200).
    pub async fn step(&self, token: &str, id: i64, action: &str, body: Value) -> Value {
        self.act(token, id, action, body).await.ok(200)
    }

    /// The id of the department with this code.
    pub async fn department(&self, code: &str) -> i64 {
        self.store
            .list_departments()
            .await
            .expect("departments")
            .into_iter()
            .find(|d| d.code == code)
            .map(|d| d.id)
            .unwrap_or_else(|| panic!("no department {code}"))
    }
}

/// A report body of exposed garbage (event 06010) at a point.
pub fn garbage_at(lon: f64, lat: f64) -> Value {
    json!({
        "kind": "event",
        "class_code": "06010",
        "description": "路边有一堆暴露垃圾",
        "location": {"lon": lon, "lat": lat},
    })
}

/// (117.18, 34.26): grid 320311002002001, 泉山区 七里沟街道.
pub const QUANSHAN: (f64, f64) = (117.18, 34.26);
/// (117.19, 34.27): grid 320303001001004, 云龙区 彭城街道.
pub const YUNLONG: (f64, f64) = (117.19, 34.27);

pub fn garbage() -> Value {
    garbage_at(QUANSHAN.0, QUANSHAN.1)
}

// ---- images built by hand ------------------------------------------------------------------

/// A valid 8×8 mid-grey baseline JPEG (one block: DC difference 0, end of block), optionally with
/// an APP1 segment carrying `app1` (e.g. `Exif\0\0...`).
pub fn tiny_jpeg(app1: Option<&[u8]>) -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8];
    if let Some(payload) = app1 {
        segment(&mut j, 0xE1, payload);
    }
    // DQT: table 0, 8-bit, all ones.
    let mut dqt = vec![0x00];
    dqt.extend_from_slice(&[1u8; 64]);
    segment(&mut j, 0xDB, &dqt);
    // SOF0: 8-bit precision, 8×8, one component (id 1, 1×1 sampling, table 0).
    segment(&mut j, 0xC0, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    // DHT: DC table 0 and AC table 0, each a single 1-bit code "0" for symbol 0x00.
    let mut one_code = vec![1u8];
    one_code.extend_from_slice(&[0u8; 15]);
    one_code.push(0x00);
    let mut dc = vec![0x00];
    dc.extend_from_slice(&one_code);
    segment(&mut j, 0xC4, &dc);
    let mut ac = vec![0x10];
    ac.extend_from_slice(&one_code);
    segment(&mut j, 0xC4, &ac);
    // SOS: one component, tables 0/0, spectral 0..63.
    segment(&mut j, 0xDA, &[1, 1, 0x00, 0, 63, 0]);
    // Entropy data: DC "0" (difference 0), AC "0" (EOB), padded with ones.
    j.push(0b0011_1111);
    j.extend_from_slice(&[0xFF, 0xD9]);
    j
}

fn segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
    let len = u16::try_from(payload.len() + 2).expect("segment length");
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// A valid 1×1 8-bit greyscale PNG; `seed` changes the pixel so that tests can make distinct photos.
pub fn tiny_png(seed: u8) -> Vec<u8> {
    let mut p = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    // IHDR: 1×1, bit depth 8, colour type 0 (grey), deflate, filter 0, no interlace.
    chunk(&mut p, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
    // IDAT: zlib stream with one stored block holding the scanline [filter 0, pixel].
    let raw = [0u8, seed];
    let mut z = vec![0x78, 0x01, 0x01, 0x02, 0x00, 0xFD, 0xFF];
    z.extend_from_slice(&raw);
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    chunk(&mut p, b"IDAT", &z);
    chunk(&mut p, b"IEND", &[]);
    p
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).expect("chunk length").to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// A valid 1×1 lossless WebP (VP8L): every prefix code is a simple one-symbol code, so the one
/// pixel takes no bits.
pub fn tiny_webp() -> Vec<u8> {
    // Signature, then 14 bits width-1, 14 bits height-1, alpha flag, 3-bit version: all zero.
    // Then (LSB first): no transform, no colour cache, no meta prefix codes, and five simple
    // codes "1 0 0 0" (simple, one symbol, 1-bit symbol 0).
    let vp8l = [0x2F, 0x00, 0x00, 0x00, 0x00, 0x88, 0x88, 0x08];
    let mut w = b"RIFF".to_vec();
    w.extend_from_slice(&(4u32 + 8 + vp8l.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WEBP");
    w.extend_from_slice(b"VP8L");
    w.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
    w.extend_from_slice(&vp8l);
    w
}

// ---- shared by the money, evaluation, reports and assessment tests ------------------------

/// A citizen account with a proven phone (as the one-time-code sign-in creates it); returns
/// (token, user id).
pub async fn citizen(app: &TestApp, phone: &str) -> (String, i64) {
    let username = format!("p{phone}");
    let user = app
        .store
        .create_citizen(
            &citygrid_store::NewUser {
                username: username.clone(),
                display_name: format!("市民{phone}"),
                password_hash: citygrid_server::auth::hash_password("pw").expect("hash"),
                role: citygrid_core::org::Role::Citizen,
                scope: citygrid_core::org::Scope::Own,
            },
            phone,
            "wechat",
            app.state.now(),
        )
        .await
        .expect("citizen account");
    (app.sign_in_with(&username, "pw").await, user.id)
}

/// A GeoJSON polygon of the box (x0, y0)–(x1, y1).
pub fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]})
}

/// One cleaning contractor area (彭城保洁公司) and one collector area (`collector`) over the
/// whole demo city, imported by `admin`.
pub async fn import_areas(app: &TestApp, admin: &str) {
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

/// A CSV download's lines: UTF-8 with a BOM, CRLF. The demo city's names and the test data hold
/// no commas or quotes, so a plain split is enough.
pub fn csv_lines(body: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(body).expect("UTF-8");
    let text = text.strip_prefix('\u{feff}').expect("a BOM first");
    assert!(text.ends_with("\r\n"));
    text.split_terminator("\r\n").map(|l| l.split(',').map(str::to_owned).collect()).collect()
}

/// One part of a zip (an XLSX download) as text.
pub fn zip_part(bytes: &[u8], name: &str) -> String {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("an XLSX is a zip");
    let mut text = String::new();
    zip.by_name(name).expect(name).read_to_string(&mut text).expect("UTF-8 part");
    text
}
