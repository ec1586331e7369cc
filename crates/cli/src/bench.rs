//! `citygrid bench …`: figures measured against a ceiling measured in the same run, on the same
//! machine and backend, ending with a machine-readable `ratio=` line.

use anyhow::{bail, Context, Result};
use citygrid_server::{bootstrap, AppState, Clock, Settings};
use citygrid_store::Store;
use futures::future::join_all;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Durable case reports per second through HTTP with concurrent clients, against the raw
    /// durable single-row insert rate of the same backend.
    Intake {
        /// Database to run on; default a fresh SQLite file in a temporary directory. A
        /// PostgreSQL URL must name a throwaway database: the benchmark fills it.
        #[arg(long)]
        database: Option<String>,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Reports per run.
        #[arg(long, default_value_t = 3000)]
        requests: usize,
        /// Runs; the medians are reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Point → unit grid lookups per second on one core, on the Xuzhou-scale city and larger
    /// ones, against a bare R-tree + `contains` over the same polygons; then forward geocoding.
    Geo {
        /// City scales to measure, comma-separated; the ratio line is the first one's.
        #[arg(long, default_value = "1,10", value_delimiter = ',')]
        scales: Vec<u32>,
        /// Random points per run.
        #[arg(long, default_value_t = 1_000_000)]
        lookups: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Forward geocoding queries (0 to skip).
        #[arg(long, default_value_t = 100_000)]
        geocodes: usize,
        #[arg(long, default_value_t = crate::city::DEMO_SEED)]
        seed: u64,
    },
    /// The read load: the big-screen map query (cases in view by state and class) and the
    /// filtered, cursor-paged case list, through HTTP, against the same queries run directly on
    /// the database, over millions of historical cases.
    Read {
        /// Database to run on; default a fresh SQLite file in a temporary directory. An existing
        /// database that already holds cases is reused as it is (no refill).
        #[arg(long)]
        database: Option<String>,
        /// Historical cases to fill a fresh database with.
        #[arg(long, default_value_t = 5_000_000)]
        cases: u64,
        /// Queries per run (half map views, half two-page list reads).
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 1)]
        scale: u32,
    },
    /// A month's comprehensive evaluation for every subject (regions at each level,
    /// departments, collectors, acceptors, leaders, dispatchers) from the counts kept in each
    /// event's transaction, against a full recomputation of the month from the event log, with
    /// millions of historical cases in the store. Ends with `ratio=<full ÷ incremental>`.
    Evaluate {
        /// Database to run on; default a fresh SQLite file in a temporary directory. A
        /// PostgreSQL URL must name an empty throwaway database: the benchmark fills it.
        #[arg(long)]
        database: Option<String>,
        /// Historical cases (the two years before; rows and their counts).
        #[arg(long, default_value_t = 5_000_000)]
        cases: u64,
        /// Cases of the measured month, worked through the real write path with their events.
        #[arg(long, default_value_t = 20_000)]
        month_cases: usize,
        /// Concurrent workers writing the month.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// City scale (1 = Xuzhou's 20,000 grids).
        #[arg(long, default_value_t = 1)]
        scale: u32,
    },
    /// The ledger: citizen reports filed and verified, every problem reconciled (what each
    /// verification triggers) and the month settled, against the raw durable insert rate.
    Money {
        /// Default: a fresh SQLite file. A PostgreSQL URL must name a throwaway database.
        #[arg(long)]
        database: Option<String>,
        #[arg(long, default_value_t = 20_000)]
        reports: usize,
        #[arg(long, default_value_t = 2_000)]
        citizens: usize,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Import the whole demo city (grids, areas, addresses, ~1,000,000 components) and report
    /// time and peak memory, against reading and validating the same files without a database.
    Import {
        /// Default: a fresh SQLite file. A PostgreSQL URL must name a throwaway database.
        #[arg(long)]
        database: Option<String>,
        #[arg(long, default_value_t = 1)]
        scale: u32,
        /// An already generated city directory (default: generate one first).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Run `total` jobs over `clients` concurrent workers; returns jobs per second.
pub async fn drive<F, Fut>(clients: usize, total: usize, job: F) -> Result<f64>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers = (0..clients).map(|_| {
        let next = next.clone();
        let job = job.clone();
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                job(i).await?;
            }
        })
    });
    for r in join_all(workers).await {
        r??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Serve `app` on a loopback port and sign in as the demo account `username`: the server task,
/// an HTTP client pooled for `clients`, the base URL and the token.
pub async fn serve_signed_in(
    app: AppState,
    clients: usize,
    username: &str,
) -> Result<(tokio::task::JoinHandle<std::io::Result<()>>, reqwest::Client, String, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, citygrid_server::app(app)).await });
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    let base = format!("http://{addr}");
    let token: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/token"))
        .json(&serde_json::json!({"username": username, "password": "demo"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["token"].as_str().context("no token")?.to_owned();
    Ok((server, http, base, token))
}

pub async fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Intake { database, clients, requests, runs } => intake(database, clients, requests, runs).await,
        BenchCmd::Geo { scales, lookups, runs, geocodes, seed } => {
            tokio::task::block_in_place(|| crate::bench_map::geo(&scales, lookups, runs, geocodes, seed))
        }
        BenchCmd::Read { database, cases, requests, clients, runs, scale } => {
            crate::bench_map::read(database, cases, requests, clients, runs, scale).await
        }
        BenchCmd::Import { database, scale, dir } => crate::bench_map::import(database, scale, dir).await,
        BenchCmd::Evaluate { database, cases, month_cases, clients, runs, scale } => {
            crate::bench_evaluate::evaluate(database, cases, month_cases, clients, runs, scale).await
        }
        BenchCmd::Money { database, reports, citizens, clients, runs } => {
            crate::bench_money::money(database, reports, citizens, clients, runs).await
        }
    }
}

async fn intake(database: Option<String>, clients: usize, requests: usize, runs: usize) -> Result<()> {
    if clients == 0 || requests == 0 || runs == 0 {
        bail!("clients, requests and runs must be positive");
    }
    let dir = tempfile::tempdir()?;
    let url = database.unwrap_or_else(|| format!("sqlite:{}", dir.path().join("bench.db").display()));
    let store = Store::connect(&url).await.with_context(|| format!("opening {url}"))?;
    bootstrap::init(&store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let app =
        AppState::load(store.clone(), Clock::System, Settings::default()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    bootstrap::load_demo(&app).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let (server, http, base, token) = serve_signed_in(app, clients, "collector").await?;
    println!("bench intake: backend={} clients={clients} requests={requests} runs={runs}", store.backend());

    let report = {
        let http = http.clone();
        let base = base.clone();
        move |i: usize| {
            let http = http.clone();
            let url = format!("{base}/api/v1/cases");
            let token = token.clone();
            async move {
                // Spread the points over the demo city so the grid lookup does real work.
                let lon = 117.1650 + (i % 97) as f64 * 0.00049;
                let lat = 34.2480 + (i % 89) as f64 * 0.00030;
                let res = http
                    .post(url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({
                        "kind": "event", "class_code": "06010",
                        "description": format!("bench report {i}"),
                        "location": {"lon": lon, "lat": lat}
                    }))
                    .send()
                    .await?;
                if res.status() != reqwest::StatusCode::CREATED {
                    bail!("report {i}: {} {}", res.status(), res.text().await.unwrap_or_default());
                }
                Ok(())
            }
        }
    };
    let raw = {
        let store = store.clone();
        move |i: usize| {
            let store = store.clone();
            async move {
                store
                    .bench_raw_insert(jiff::Timestamp::now(), &format!("{{\"raw\":{i}}}"))
                    .await
                    .map_err(anyhow::Error::from)
            }
        }
    };
    // Warm both paths up (connections, page cache) before measuring.
    drive(clients, requests.min(200), report.clone()).await?;
    drive(clients, requests.min(200), raw.clone()).await?;
    let mut http_rates = Vec::new();
    let mut raw_rates = Vec::new();
    let mut ratios = Vec::new();
    for run in 1..=runs {
        let h = drive(clients, requests, report.clone()).await?;
        // The ceiling is the better of one sequential writer and `clients` concurrent ones:
        // SQLite serialises writers, so contention alone can make the concurrent figure lower.
        let r1 = drive(1, requests, raw.clone()).await?;
        let rn = drive(clients, requests, raw.clone()).await?;
        let r = r1.max(rn);
        println!(
            "run {run}: http {h:.0} reports/s, raw {r:.0} inserts/s (1 writer {r1:.0}, {clients} writers {rn:.0}), ratio {:.3}",
            h / r
        );
        http_rates.push(h);
        raw_rates.push(r);
        ratios.push(h / r);
    }
    let (h, r) = (median(http_rates), median(raw_rates));
    println!("http_reports_per_sec={h:.0}");
    println!("raw_inserts_per_sec={r:.0}");
    // The median of the per-run ratios: each run's figure and its ceiling were measured together.
    println!("ratio={:.3}", median(ratios));
    server.abort();
    store.close().await;
    Ok(())
}
