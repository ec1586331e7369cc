//! End-to-end tests of the `citygrid` binary: a crash (SIGKILL) under concurrent intake, the
//! intake benchmark's output, and the administrative subcommands.
//!
//! Every child process is bounded in time and killed when its guard is dropped, so a failing
//! test never leaves a server behind.

// A test binary: its helpers panic on setup failures by design (clippy's
// allow-expect-in-tests covers only `#[test]` functions, not these helpers).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_citygrid");

/// How long a server may take to answer `/healthz` after it was started.
const STARTUP: Duration = Duration::from_secs(30);
/// How long a one-shot subcommand (`user add`, `audit`, `bench` …) may run.
const COMMAND: Duration = Duration::from_secs(60);

/// A free loopback port: bind port 0, read the port the OS chose, release it.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite:{}", dir.join(name).display())
}

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("http client")
}

/// A running `citygrid serve`/`citygrid demo`; killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    /// Start `citygrid <subcommand> --listen 127.0.0.1:PORT --database URL` and wait until
    /// `/healthz` answers, polling until a deadline.
    fn start(subcommand: &str, database: &str, dir: &Path) -> Server {
        // Another process may grab the port between the probe and the server's bind; retry a
        // few times with a fresh port before giving up.
        let mut last_log = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let log = dir.join(format!("{}-{port}-{attempt}.log", subcommand.replace(' ', "_")));
            let out = std::fs::File::create(&log).expect("create server log");
            let err = out.try_clone().expect("clone log handle");
            let child = Command::new(BIN)
                .args(subcommand.split_whitespace())
                .args(["--listen", &format!("127.0.0.1:{port}"), "--database", database])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("spawn citygrid");
            let mut server = Server { child, base: format!("http://127.0.0.1:{port}"), log };
            match server.wait_healthy() {
                Ok(()) => return server,
                Err(e) => {
                    last_log = format!("{e}\n{}", server.log_text());
                    // Only a lost race for the port is worth another try.
                    if !last_log.contains("binding") {
                        break;
                    }
                }
            }
        }
        panic!("citygrid {subcommand} did not become healthy:\n{last_log}");
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let client = Client::builder().timeout(Duration::from_secs(2)).build().expect("http client");
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("server exited early with {status}"));
            }
            if let Ok(res) = client.get(format!("{}/healthz", self.base)).send() {
                if res.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("no healthy /healthz within {STARTUP:?}"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL (on Unix) and reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Output of a one-shot subcommand.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n--- stdout ---\n{}--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Run `citygrid ARGS…` to completion, killing it if it outlives `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn citygrid");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "citygrid {args:?} did not finish within {limit:?}\n--- stdout ---\n{}--- stderr ---\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

fn sign_in(client: &Client, server: &Server, username: &str, password: &str) -> reqwest::blocking::Response {
    client
        .post(server.url("/api/v1/auth/token"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .expect("POST /api/v1/auth/token")
}

fn token(client: &Client, server: &Server, username: &str, password: &str) -> String {
    let res = sign_in(client, server, username, password);
    assert_eq!(res.status(), StatusCode::OK, "sign-in as {username}: {:?}", res.text());
    let body: Value = res.json().expect("token json");
    body["token"].as_str().expect("token field").to_owned()
}

/// Every case visible to `token`, following `next_cursor` to the end.
fn all_cases(client: &Client, server: &Server, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _page in 0..1000 {
        let mut req = client.get(server.url("/api/v1/cases")).bearer_auth(token).query(&[("limit", "500")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c.as_str())]);
        }
        let res = req.send().expect("GET /api/v1/cases");
        assert_eq!(res.status(), StatusCode::OK, "listing cases: {:?}", res.text());
        let page: Value = res.json().expect("case page json");
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
    panic!("more than 1000 pages of cases: the cursor does not advance?");
}

/// An acknowledged (201) report: what was sent and the id the server answered with.
#[derive(Clone, Debug)]
struct Acked {
    description: String,
    key: String,
    body: Value,
    id: i64,
}

fn report_body(description: &str, thread: usize, n: usize) -> Value {
    // Spread the points over the demo city (lon 117.1625–117.2125, lat 34.2455–34.2755).
    let lon = 117.1650 + ((thread * 131 + n) % 97) as f64 * 0.00049;
    let lat = 34.2480 + ((thread * 71 + n) % 89) as f64 * 0.00030;
    json!({
        "kind": "event",
        "class_code": "06010",
        "description": description,
        "location": {"lon": lon, "lat": lat},
    })
}

#[test]
fn acknowledged_reports_survive_sigkill() {
    const THREADS: usize = 8;
    const TARGET: usize = 300;
    let test_deadline = Instant::now() + Duration::from_secs(50);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_url(dir.path(), "crash.db");

    let mut demo = Server::start("demo --small", &db, dir.path());
    let client = http();
    let collector = token(&client, &demo, "collector", "demo");

    let acked: Arc<Mutex<Vec<Acked>>> = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (acked, count, stop, unexpected) = (acked.clone(), count.clone(), stop.clone(), unexpected.clone());
            let url = demo.url("/api/v1/cases");
            let token = collector.clone();
            thread::spawn(move || {
                let client = http();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) && Instant::now() < test_deadline {
                    n += 1;
                    let description = format!("crash {t}-{n}");
                    let key = format!("crash-key-{t}-{n}");
                    let body = report_body(&description, t, n);
                    let res = client.post(&url).bearer_auth(&token).header("Idempotency-Key", &key).json(&body).send();
                    let res = match res {
                        Ok(res) => res,
                        // The server was killed: connection reset or refused.
                        Err(_) => break,
                    };
                    let status = res.status();
                    let text = match res.text() {
                        Ok(text) => text,
                        // Killed after the status line but before the body: not acknowledged.
                        Err(_) => break,
                    };
                    if status != StatusCode::CREATED {
                        unexpected.lock().expect("lock").push(format!("{description}: {status} {text}"));
                        continue;
                    }
                    let case: Value = match serde_json::from_str(&text) {
                        Ok(v) => v,
                        Err(e) => {
                            unexpected.lock().expect("lock").push(format!("{description}: bad json {e}: {text}"));
                            continue;
                        }
                    };
                    let id = case["id"].as_i64().expect("case id");
                    assert_eq!(case["description"], description.as_str());
                    acked.lock().expect("lock").push(Acked { description, key, body, id });
                    count.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // Kill while the workers are still sending.
    let wait_deadline = Instant::now() + Duration::from_secs(30);
    while count.load(Ordering::SeqCst) < TARGET {
        assert!(
            Instant::now() < wait_deadline,
            "only {} reports acknowledged in 30 s; unexpected answers: {:?}\n{}",
            count.load(Ordering::SeqCst),
            unexpected.lock().expect("lock"),
            demo.log_text()
        );
        assert!(
            workers.iter().any(|w| !w.is_finished()),
            "all workers stopped before {TARGET} acknowledgements: {:?}\n{}",
            unexpected.lock().expect("lock"),
            demo.log_text()
        );
        thread::sleep(Duration::from_millis(5));
    }
    let in_flight = workers.iter().filter(|w| !w.is_finished()).count();
    demo.kill();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker panicked");
    }
    assert!(in_flight > 0, "no worker was running when the server was killed");
    let unexpected = unexpected.lock().expect("lock").clone();
    assert!(unexpected.is_empty(), "non-201 answers before the crash: {unexpected:?}");
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= TARGET, "{} acknowledged", acked.len());

    // Restart on the same database and look for every acknowledged report.
    let server = Server::start("serve", &db, dir.path());
    let admin = token(&client, &server, "admin", "demo");
    let cases = all_cases(&client, &server, &admin);
    let mut by_description: HashMap<String, Vec<i64>> = HashMap::new();
    for c in &cases {
        if let Some(d) = c["description"].as_str() {
            by_description.entry(d.to_owned()).or_default().push(c["id"].as_i64().expect("id"));
        }
    }
    let mut ids = HashSet::new();
    for c in &cases {
        assert!(ids.insert(c["id"].as_i64().expect("id")), "case {} listed twice", c["id"]);
    }
    let duplicated: Vec<_> = by_description.iter().filter(|(d, v)| d.starts_with("crash ") && v.len() > 1).collect();
    assert!(duplicated.is_empty(), "descriptions stored more than once: {duplicated:?}");
    let mut lost = Vec::new();
    for a in &acked {
        match by_description.get(&a.description).map(Vec::as_slice) {
            Some([id]) => {
                assert_eq!(*id, a.id, "{} was acknowledged as case {} but is stored as {id}", a.description, a.id)
            }
            Some(more) => panic!("{} stored as {more:?}", a.description),
            None => lost.push((a.description.clone(), a.id)),
        }
    }
    assert!(lost.is_empty(), "{} acknowledged reports lost after SIGKILL: {lost:?}", lost.len());
    let unacked = by_description.keys().filter(|d| d.starts_with("crash ")).count() - acked.len();
    eprintln!(
        "crash test: {} acknowledged, {in_flight} workers in flight at SIGKILL, {unacked} unacknowledged stored, {} cases in all",
        acked.len(),
        cases.len()
    );

    // Retries of acknowledged requests with their original keys answer the same case.
    let collector = token(&client, &server, "collector", "demo");
    let total_before = cases.len();
    let step = (acked.len() / 5).max(1);
    for a in acked.iter().step_by(step) {
        let res = client
            .post(server.url("/api/v1/cases"))
            .bearer_auth(&collector)
            .header("Idempotency-Key", &a.key)
            .json(&a.body)
            .send()
            .expect("retry");
        assert_eq!(res.status(), StatusCode::CREATED, "retry of {}", a.description);
        assert_eq!(
            res.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()),
            Some("true"),
            "retry of {} not marked as replayed",
            a.description
        );
        let case: Value = res.json().expect("case json");
        assert_eq!(case["id"].as_i64(), Some(a.id), "retry of {} answered another case", a.description);
    }
    let after = all_cases(&client, &server, &admin);
    assert_eq!(after.len(), total_before, "idempotent retries created cases");
    drop(server);

    let audit = run(&["audit", "--database", &db], COMMAND);
    assert!(audit.status.success(), "audit failed: {audit}");
    assert!(Instant::now() < test_deadline + Duration::from_secs(10), "crash test took too long");
}

#[test]
fn bench_intake_ends_with_ratio() {
    let out = run(&["bench", "intake", "--requests", "200", "--runs", "1", "--clients", "4"], COMMAND);
    assert!(out.status.success(), "bench failed: {out}");
    let last = out.stdout.lines().last().unwrap_or_default();
    let value = last.strip_prefix("ratio=").unwrap_or_else(|| panic!("last line {last:?} is not ratio=…\n{out}"));
    assert!(
        !value.is_empty() && value.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "last line {last:?} does not match ^ratio=[0-9.]+$"
    );
    assert!(value.parse::<f64>().is_ok_and(|r| r > 0.0), "ratio {value} is not a positive number");
}

#[test]
fn user_add_then_sign_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_url(dir.path(), "users.db");
    // Load the demo city (for the region the new user's scope names), then stop it.
    drop(Server::start("demo --small", &db, dir.path()));

    let out = run(
        &[
            "user",
            "add",
            "--username",
            "wang.collector",
            "--password",
            "s3cret-pw",
            "--role",
            "collector",
            "--scope",
            "region:320300",
            "--display-name",
            "王监督员",
            "--database",
            &db,
        ],
        COMMAND,
    );
    assert!(out.status.success(), "user add failed: {out}");
    assert!(out.stdout.contains("wang.collector"), "{out}");

    // The same username again is refused.
    let again = run(
        &[
            "user",
            "add",
            "--username",
            "wang.collector",
            "--password",
            "other-pw",
            "--role",
            "collector",
            "--scope",
            "region:320300",
            "--database",
            &db,
        ],
        COMMAND,
    );
    assert!(!again.status.success(), "adding a user twice succeeded: {again}");

    let list = run(&["user", "list", "--database", &db], COMMAND);
    assert!(list.status.success(), "user list failed: {list}");
    assert!(list.stdout.contains("wang.collector"), "{list}");

    let server = Server::start("serve", &db, dir.path());
    let client = http();
    let res = sign_in(&client, &server, "wang.collector", "s3cret-pw");
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text());
    let body: Value = res.json().expect("json");
    assert!(body["token"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    assert_eq!(body["user"]["username"], "wang.collector", "{body}");
    assert_eq!(body["user"]["role"], "collector", "{body}");
    assert_eq!(body["user"]["display_name"], "王监督员", "{body}");
    // The token works: the new collector can report.
    let token = body["token"].as_str().expect("token").to_owned();
    let res = client
        .post(server.url("/api/v1/cases"))
        .bearer_auth(&token)
        .json(&report_body("reported by the new user", 0, 1))
        .send()
        .expect("report");
    assert_eq!(res.status(), StatusCode::CREATED, "{:?}", res.text());
    // A wrong password is refused.
    let res = sign_in(&client, &server, "wang.collector", "wrong-pw");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn import_catalogue_rejects_a_bad_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_url(dir.path(), "catalogue.db");
    let header = "kind,major_code,major_name_zh,minor_code,minor_name_zh,minor_name_en,filing_condition,closing_condition,disposal_time_limit,urgency,standard";
    let good = "component,01,市政公用设施,01001,供水井盖,Water-supply manhole cover,,,,,GB/T 47678.5-2026";
    let bad = "component,01,市政公用设施,0102,污水井盖,Sewage manhole cover,,,,,GB/T 47678.5-2026";
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, format!("{header}\n{good}\n{bad}\n")).expect("write csv");
    let out = run(&["import", "catalogue", csv.to_str().expect("utf-8 path"), "--database", &db], COMMAND);
    assert!(!out.status.success(), "a bad catalogue was accepted: {out}");
    assert!(out.stderr.contains("line 3"), "the error does not name line 3: {out}");

    // The shipped table imports.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/classification-gb47678.5-2026.csv");
    let out = run(&["import", "catalogue", shipped.to_str().expect("utf-8 path"), "--database", &db], COMMAND);
    assert!(out.status.success(), "the shipped catalogue was refused: {out}");
}

#[test]
fn calendar_load_and_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_url(dir.path(), "calendar.db");
    let csv = dir.path().join("2028.csv");
    std::fs::write(
        &csv,
        "# Test schedule for 2028.\n# official: true\ndate,kind,name\n\
         2028-01-01,holiday,元旦\n2028-01-25,holiday,春节\n2028-01-26,holiday,春节\n\
         2028-01-27,holiday,春节\n2028-01-28,holiday,春节\n2028-01-22,workday,春节调休上班\n\
         2028-10-01,holiday,国庆节\n2028-10-02,holiday,国庆节\n2028-10-03,holiday,国庆节\n",
    )
    .expect("write csv");
    let out = run(&["calendar", "load", csv.to_str().expect("utf-8 path"), "--database", &db], COMMAND);
    assert!(out.status.success(), "calendar load failed: {out}");
    assert!(out.stdout.contains("2028"), "{out}");

    let list = run(&["calendar", "list", "--database", &db], COMMAND);
    assert!(list.status.success(), "calendar list failed: {list}");
    let line = list.stdout.lines().find(|l| l.starts_with("2028")).unwrap_or_else(|| panic!("no 2028 in {list}"));
    assert!(line.contains("official") && !line.contains("provisional"), "2028 not official: {line:?}");

    // A file with a bad date is refused with its line.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "date,kind,name\n2028-01-01,holiday,元旦\n2028-02-30,holiday,x\n").expect("write csv");
    let out = run(&["calendar", "load", bad.to_str().expect("utf-8 path"), "--database", &db], COMMAND);
    assert!(!out.status.success(), "a bad calendar was accepted: {out}");
    assert!(out.stderr.contains("line 3"), "the error does not name line 3: {out}");
}

/// Keep the header and the first `rows` rows of a CSV file.
fn truncate_csv(path: &Path, rows: usize) {
    let text = std::fs::read_to_string(path).expect("read csv");
    let kept: Vec<&str> = text.lines().take(rows + 1).collect();
    std::fs::write(path, kept.join("\n") + "\n").expect("write csv");
}

fn features(path: &Path) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read geojson")).expect("geojson");
    doc["features"].as_array().expect("features").clone()
}

fn ratio_line(out: &Output) -> f64 {
    let last = out.stdout.lines().last().unwrap_or_default();
    let value = last.strip_prefix("ratio=").unwrap_or_else(|| panic!("last line {last:?} is not ratio=…\n{out}"));
    value.parse::<f64>().unwrap_or_else(|_| panic!("ratio {value:?} is not a number"))
}

/// The demo city goes through the import path a real city uses: generate the files, import
/// them in one transaction, export them back; a file with one bad feature changes nothing.
#[test]
fn generate_import_export_city() {
    let dir = tempfile::tempdir().expect("tempdir");
    let city = dir.path().join("city");
    let out = run(&["generate-city", "--scale", "1", "--seed", "7", "--out", city.to_str().unwrap()], COMMAND);
    assert!(out.status.success(), "generate-city failed: {out}");
    assert!(out.stdout.contains("20000 unit grids"), "{out}");
    assert_eq!(features(&city.join("districts.geojson")).len(), 7);
    assert_eq!(features(&city.join("streets.geojson")).len(), 51);
    assert_eq!(features(&city.join("patrol_districts.geojson")).len(), 64);
    assert_eq!(features(&city.join("kiosks.geojson")).len(), 48);
    let grids = features(&city.join("grids.geojson"));
    assert_eq!(grids.len(), 20_000);
    // The debug build imports a slice of the two big files; the release bench imports them all.
    truncate_csv(&city.join("components.csv"), 3000);
    truncate_csv(&city.join("addresses.csv"), 3000);

    let db = sqlite_url(dir.path(), "city.db");
    let city_arg = city.to_str().unwrap();
    let out = run(&["import", "city", city_arg, "--user-password", "pw-123456", "--database", &db], COMMAND);
    assert!(out.status.success(), "import city failed: {out}");
    assert!(out.stdout.contains("156 users created"), "{out}");

    // A grid whose code is not a grid code: refused with the file and feature named.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let mut bad = grids.clone();
    bad[17]["properties"]["code"] = json!("3203");
    let doc = json!({"type": "FeatureCollection", "features": bad});
    std::fs::write(broken.join("grids.geojson"), doc.to_string()).unwrap();
    let out = run(&["import", "city", broken.to_str().unwrap(), "--database", &db], COMMAND);
    assert!(!out.status.success(), "a bad grid was imported: {out}");
    assert!(out.stderr.contains("grids.geojson") && out.stderr.contains("feature 17"), "{out}");

    let back = dir.path().join("back");
    let out = run(&["export", "city", back.to_str().unwrap(), "--geojson", "--database", &db], COMMAND);
    assert!(out.status.success(), "export failed: {out}");
    let exported = features(&back.join("grids.geojson"));
    assert_eq!(exported.len(), 20_000, "the refused import changed nothing");
    let code = |f: &Value| f["properties"]["code"].as_str().unwrap().to_owned();
    let mut want: Vec<String> = grids.iter().map(code).collect();
    let mut got: Vec<String> = exported.iter().map(code).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    let components = std::fs::read_to_string(back.join("components.csv")).unwrap();
    assert_eq!(components.lines().count(), 3001, "header and 3000 components");
    assert_eq!(features(&back.join("components.geojson")).len(), 3000);
    assert_eq!(features(&back.join("addresses.geojson")).len(), 3000);
    let users = std::fs::read_to_string(back.join("users.csv")).unwrap();
    assert!(users.contains("collector001"), "collectors were created");

    // The import bench on the same directory: time, peak memory, ratio against reading alone.
    let out = run(&["bench", "import", "--dir", city_arg], COMMAND);
    assert!(out.status.success(), "bench import failed: {out}");
    assert!(out.stdout.contains("peak_rss_mib="), "{out}");
    assert!(ratio_line(&out) > 0.0);
}

#[test]
fn bench_geo_and_read_end_with_ratio() {
    let out =
        run(&["bench", "geo", "--scales", "1", "--lookups", "20000", "--runs", "1", "--geocodes", "2000"], COMMAND);
    assert!(out.status.success(), "bench geo failed: {out}");
    assert!(out.stdout.contains("scale_1_lookups_per_sec_per_core="), "{out}");
    assert!(out.stdout.contains("0 differ"), "citygrid and the bare R-tree disagree: {out}");
    assert!(out.stdout.contains("geocodes_per_sec="), "{out}");
    assert!(ratio_line(&out) > 0.0);

    let out = run(&["bench", "read", "--cases", "20000", "--requests", "60", "--runs", "1", "--clients", "2"], COMMAND);
    assert!(out.status.success(), "bench read failed: {out}");
    assert!(out.stdout.contains("http_p99_ms="), "{out}");
    assert!(ratio_line(&out) > 0.0);
}

#[test]
fn settle_twice_gives_the_same_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_url(dir.path(), "settle.db");
    let out = dir.path().join("out");
    let out_s = out.to_str().expect("utf-8 path");
    let first = run(&["settle", "--month", "2026-01", "--out", out_s, "--database", &db], COMMAND);
    assert!(first.status.success(), "{first}");
    assert!(first.stdout.contains("2026-01 settled now"), "{first}");
    let names = ["payout-2026-01-cash.csv", "payout-2026-01-phone_credit.csv", "payout-2026-01-wechat.csv"];
    let read = |name: &str| std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let before: Vec<Vec<u8>> =
        names.iter().chain(&["deductions-2026-01.csv", "report-2026-01.csv"]).map(|n| read(n)).collect();
    assert!(String::from_utf8_lossy(&before[0]).starts_with("citizen_id,phone,payout_account,amount_yuan"));
    let second = run(&["settle", "--month", "2026-01", "--out", out_s, "--database", &db], COMMAND);
    assert!(second.status.success(), "{second}");
    assert!(second.stdout.contains("was settled before"), "{second}");
    let after: Vec<Vec<u8>> =
        names.iter().chain(&["deductions-2026-01.csv", "report-2026-01.csv"]).map(|n| read(n)).collect();
    assert_eq!(before, after);
    for bad in ["2026-13", "next"] {
        let r = run(&["settle", "--month", bad, "--out", out_s, "--database", &db], COMMAND);
        assert!(!r.status.success() && r.stderr.contains("month"), "{bad}: {r}");
    }
    // The current month has not ended.
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)));
    let current = format!("{:04}-{:02}", now.year(), now.month());
    let r = run(&["settle", "--month", &current, "--out", out_s, "--database", &db], COMMAND);
    assert!(!r.status.success() && r.stderr.contains("has not ended"), "{r}");
}

#[test]
fn bench_money_ends_with_ratio() {
    let out =
        run(&["bench", "money", "--reports", "120", "--citizens", "12", "--runs", "1", "--clients", "2"], COMMAND);
    assert!(out.status.success(), "bench money failed: {out}");
    assert!(out.stdout.contains("240 entries"), "two entries a problem: {out}");
    assert!(out.stdout.contains("settle again: frozen, same files"), "{out}");
    assert!(ratio_line(&out) > 0.0);
}

#[test]
fn bench_evaluate_then_evaluate_and_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_url(dir.path(), "evaluate.db");
    let out = run(
        &[
            "bench",
            "evaluate",
            "--database",
            &db,
            "--cases",
            "3000",
            "--month-cases",
            "40",
            "--runs",
            "1",
            "--clients",
            "2",
        ],
        COMMAND,
    );
    assert!(out.status.success(), "bench evaluate failed: {out}");
    assert!(out.stdout.contains("identical to the kept counts"), "{out}");
    assert!(ratio_line(&out) > 0.0);
    // The bench worked next month's cases: their evaluation, before and after a rebuild from the
    // log, is the same (the bench's historical rows have no log, so the whole rebuild is only
    // compared on the month the log covers).
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)));
    let next = now.date().last_of_month().tomorrow().expect("next month");
    let period = format!("{:04}-{:02}", next.year(), next.month());
    let args =
        ["evaluate", "--subject", "region", "--level", "district", "--period", &period, "--json", "--database", &db];
    let kept = run(&args, COMMAND);
    assert!(kept.status.success(), "{kept}");
    let rows: Vec<Value> = serde_json::from_str(&kept.stdout).expect("rows as JSON");
    let reported: f64 = rows.iter().map(|r| r["metrics"]["reported"]["value"].as_f64().expect("reported")).sum();
    // 40 worked first, then 20 more before the one measured ask.
    assert_eq!(reported, 60.0, "the month's 60 reports, each counted in its district");
    let mut rebuild = args.to_vec();
    rebuild.insert(1, "--rebuild");
    let rebuilt = run(&rebuild, COMMAND);
    assert!(rebuilt.status.success(), "{rebuilt}");
    assert!(rebuilt.stdout.contains("evaluation counts rebuilt from"), "{rebuilt}");
    let json = &rebuilt.stdout[rebuilt.stdout.find('[').expect("rows")..];
    assert_eq!(serde_json::from_str::<Vec<Value>>(json).expect("rows"), rows);
    let table = run(&["evaluate", "--subject", "leader", "--period", &period, "--database", &db], COMMAND);
    assert!(table.status.success() && table.stdout.contains("leader "), "{table}");
}
