//! The `citygrid` command: serve the API, load the demo city, migrate, add users, import the
//! catalogue and holiday schedules, audit the case log, and benchmark.

mod bench;
mod bench_evaluate;
mod bench_map;
mod bench_money;
mod city;

use anyhow::{bail, Context, Result};
use citygrid_core::codes::RegionCode;
use citygrid_core::org::{Role, Scope};
use citygrid_server::routes::org::{add_user, UserNew};
use citygrid_server::{bootstrap, AppState, Clock, Settings};
use citygrid_store::Store;
use clap::{Parser, Subcommand};

/// citygrid — digital urban management (数字化城市管理).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Db {
    /// Database URL: `sqlite:PATH` (embedded default) or `postgres://user@host/db`.
    #[arg(long, env = "CITYGRID_DATABASE", default_value = "sqlite:./data/citygrid.db")]
    database: String,
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CITYGRID_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    #[command(flatten)]
    db: Db,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API.
    Serve(ServeArgs),
    /// Load the demo city (the Xuzhou-scale synthetic city, generated and imported on the first
    /// start) and its accounts (password `demo`), then serve.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// City size: 1 is Xuzhou's 253 km² built-up core (20,000 unit grids).
        #[arg(long, default_value_t = 1)]
        scale: u32,
        /// Only the small 100-grid test city (starts at once; what the test suite uses).
        #[arg(long)]
        small: bool,
    },
    /// Write a deterministic synthetic city shaped like Xuzhou (GeoJSON and CSV, the files
    /// `citygrid import city` reads).
    GenerateCity {
        /// 1 = 253 km², about 20,000 unit grids and 1,000,000 components; 10 = ten times that.
        #[arg(long, default_value_t = 1)]
        scale: u32,
        #[arg(long, default_value_t = city::DEMO_SEED)]
        seed: u64,
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Export data.
    #[command(subcommand)]
    Export(ExportCmd),
    /// Create or upgrade the database schema.
    Migrate(Db),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Import data.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Working calendar: load a year's official holiday schedule, list loaded years.
    #[command(subcommand)]
    Calendar(CalendarCmd),
    /// Replay every case's log and compare it with the stored case row.
    Audit(Db),
    /// Benchmarks; each ends with a machine-readable `ratio=` line.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Close a month of rewards and deductions (月度结算): reconcile, pay, write the payout files
    /// into DIR. Idempotent: a settled month is frozen and gives the same files again.
    Settle {
        /// `YYYY-MM`; default the previous month.
        #[arg(long)]
        month: Option<String>,
        /// Where to write the CSV files.
        #[arg(long, default_value = ".")]
        out: std::path::PathBuf,
        #[command(flatten)]
        db: Db,
    },
    /// The comprehensive evaluation (综合评价): print a period's rows, or with `--rebuild`
    /// recompute the evaluation counts from the whole case log first (case writes wait
    /// meanwhile; the result equals what the events kept incrementally).
    Evaluate {
        /// Recompute the counts from the event log.
        #[arg(long)]
        rebuild: bool,
        /// region, department, collector, acceptor, leader, dispatcher.
        #[arg(long, default_value = "region")]
        subject: String,
        /// Regions: grid, community, street, district.
        #[arg(long)]
        level: Option<String>,
        /// 2026-11-05, 2026-W45, 2026-11, 2026-Q4 or 2026; default this month up to today.
        #[arg(long)]
        period: Option<String>,
        /// Print the rows as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: Db,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long, env = "CITYGRID_NEW_PASSWORD")]
        password: String,
        /// admin, collector, acceptor, leader, dispatcher, handler, commander, evaluator, citizen
        #[arg(long)]
        role: String,
        /// `region:CODE`, `department:CODE` (department code, e.g. HW) or `own`.
        #[arg(long)]
        scope: String,
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        db: Db,
    },
    /// List users.
    List(Db),
}

#[derive(Subcommand)]
enum ImportCmd {
    /// Load a classification table (CSV with the columns of data/classification-gb47678.5-2026.csv).
    /// All or nothing: one bad line rejects the file.
    Catalogue {
        file: std::path::PathBuf,
        #[command(flatten)]
        db: Db,
    },
    /// Load a city's map from a directory (see `citygrid generate-city` and the README for the
    /// files): regions and unit grids, responsibility areas, kiosks, roads, addresses,
    /// departments, components, in one transaction. One bad feature rejects everything.
    City {
        dir: std::path::PathBuf,
        /// Coordinate system of the files: wgs84, gcj02, bd09 or cgcs2000.
        #[arg(long, default_value = "wgs84")]
        coord_sys: String,
        /// Create the accounts in users.csv with this password (skipped without it).
        #[arg(long, env = "CITYGRID_NEW_PASSWORD")]
        user_password: Option<String>,
        #[command(flatten)]
        db: Db,
    },
}

#[derive(Subcommand)]
enum ExportCmd {
    /// Every map layer as the files `citygrid import city` reads (GeoJSON and CSV, WGS-84).
    City {
        out: std::path::PathBuf,
        /// Also write components.geojson and addresses.geojson (the CSV files stay).
        #[arg(long)]
        geojson: bool,
        #[command(flatten)]
        db: Db,
    },
}

#[derive(Subcommand)]
enum CalendarCmd {
    /// Load one year's schedule (`date,kind,name` CSV; see data/holidays/).
    Load {
        file: std::path::PathBuf,
        #[command(flatten)]
        db: Db,
    },
    /// The years the calendar knows and whether their data is official.
    List(Db),
}

async fn open(db: &Db) -> Result<Store> {
    let store = Store::connect(&db.database).await.with_context(|| format!("opening {}", db.database))?;
    bootstrap::init(&store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(store)
}

async fn state(db: &Db) -> Result<AppState> {
    let store = open(db).await?;
    AppState::load(store, Clock::System, Settings::default()).await.map_err(|e| anyhow::anyhow!("{e}"))
}

async fn serve(app: AppState, listen: &str) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = app.store.backend(), "citygrid listening");
    println!("citygrid listening on http://{addr} ({} backend)", app.store.backend());
    // A misconfigured SMS gateway is a start-up error, not a 500 on the first sign-in code.
    let sms = citygrid_server::sms::sender().map_err(|e| anyhow::anyhow!("CITYGRID_SMS_SENDER: {e}"))?;
    println!("sign-in codes go to: {}", sms.name());
    // The monthly settlement runs by itself from the settlement day on.
    let _scheduler = citygrid_server::routes::money::spawn_scheduler(app.clone());
    // The journal of evaluation counts changes (PostgreSQL) keeps its last hour.
    let _pruning = citygrid_server::routes::evaluation::spawn_journal_pruning(app.clone());
    axum::serve(listener, citygrid_server::app(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn parse_scope(s: &str) -> Result<(Option<RegionCode>, Option<String>)> {
    match s.split_once(':') {
        Some(("region", code)) => Ok((Some(RegionCode::parse(code)?), None)),
        Some(("department", code)) => Ok((None, Some(code.to_owned()))),
        None if s == "own" => Ok((None, None)),
        _ => bail!("scope must be region:CODE, department:CODE or own"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "citygrid=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(a) => serve(state(&a.db).await?, &a.listen).await,
        Command::Demo { serve: a, scale, small } => {
            let app = state(&a.db).await?;
            let accounts = bootstrap::load_demo(&app).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if small {
                println!("small demo city: 2 districts, 4 streets, 8 communities, 100 unit grids");
            } else {
                city::load_demo_city(&app, scale).await?;
            }
            println!("accounts (password `{}`; collector001…collector156 too):", bootstrap::DEMO_PASSWORD);
            for (name, role, scope) in accounts {
                println!("  {name:<11} {:<11} {scope}", role.as_str());
            }
            serve(app, &a.listen).await
        }
        Command::Migrate(db) => {
            let store = open(&db).await?;
            println!("{} schema is up to date", store.backend());
            Ok(())
        }
        Command::User(UserCmd::Add { username, password, role, scope, display_name, db }) => {
            let app = state(&db).await?;
            let role = Role::parse(&role).with_context(|| format!("unknown role {role}"))?;
            let scope = match parse_scope(&scope)? {
                (Some(code), _) => Scope::Region { code },
                (None, Some(dept)) => {
                    let d = app
                        .store
                        .list_departments()
                        .await?
                        .into_iter()
                        .find(|d| d.code == dept)
                        .with_context(|| format!("no department {dept}"))?;
                    Scope::Department { department_id: d.id }
                }
                (None, None) => Scope::Own,
            };
            let u = add_user(&app, UserNew { username, display_name, password, role, scope })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("user {} ({}) created with id {}", u.username, u.role.as_str(), u.id);
            Ok(())
        }
        Command::User(UserCmd::List(db)) => {
            let store = open(&db).await?;
            for u in store.list_users().await? {
                println!(
                    "{:>5}  {:<16} {:<11} {}",
                    u.id,
                    u.username,
                    u.role.as_str(),
                    serde_json::to_string(&u.scope)?
                );
            }
            Ok(())
        }
        Command::Import(ImportCmd::Catalogue { file, db }) => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let classes =
                citygrid_core::catalogue::parse_table(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let store = open(&db).await?;
            store.upsert_classes(&classes).await?;
            println!("{} classes loaded; restart running servers to use them", classes.len());
            Ok(())
        }
        Command::GenerateCity { scale, seed, out } => city::generate_city(scale, seed, &out),
        Command::Import(ImportCmd::City { dir, coord_sys, user_password, db }) => {
            let sys = citygrid_geo::CoordSys::parse(&coord_sys)
                .with_context(|| format!("unknown coordinate system {coord_sys} (wgs84, gcj02, bd09, cgcs2000)"))?;
            let store = open(&db).await?;
            let done = city::import_city(&store, &dir, sys, user_password.as_deref()).await?;
            println!(
                "imported {} rows in {:.1} s (read and validate {:.1} s, write {:.1} s), {} users created; \
                 restart running servers to use the new map",
                done.rows,
                done.read_secs + done.write_secs,
                done.read_secs,
                done.write_secs,
                done.users
            );
            Ok(())
        }
        Command::Export(ExportCmd::City { out, geojson, db }) => {
            let store = open(&db).await?;
            city::export_city(&store, &out, geojson).await
        }
        Command::Calendar(CalendarCmd::Load { file, db }) => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut cal = citygrid_core::calendar::WorkCalendar::china_default();
            let year = cal.load_year_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let store = open(&db).await?;
            store.put_setting(&format!("{}{year}", citygrid_server::state::CALENDAR_KEY_PREFIX), &text).await?;
            println!("holiday schedule for {year} loaded; restart the server to use it");
            Ok(())
        }
        Command::Calendar(CalendarCmd::List(db)) => {
            let app = state(&db).await?;
            for (year, official) in app.calendar().years() {
                println!("{year} {}", if official { "official" } else { "provisional (statutory days only)" });
            }
            Ok(())
        }
        Command::Audit(db) => {
            let store = open(&db).await?;
            let ids = store.case_ids().await?;
            if !ids.is_empty() && store.get_setting(citygrid_server::state::EVALUATION_COUNTED_KEY).await?.is_none() {
                // The audit changes nothing, so it does not run the upgrade itself.
                eprintln!(
                    "note: this database has not been upgraded by this version yet (start the server or run \
                     `citygrid evaluate` once): rows written by older versions lack fields their replay has"
                );
            }
            let mut bad = 0;
            for id in &ids {
                let events = store.case_events(*id).await?;
                let replayed = citygrid_core::case::replay(*id, &events);
                let stored = store.get_case(*id).await?;
                if replayed != stored {
                    bad += 1;
                    eprintln!("case {id}: stored row differs from its replayed log");
                }
            }
            println!("{} cases audited, {bad} differ", ids.len());
            if bad > 0 {
                bail!("{bad} cases differ from their logs");
            }
            Ok(())
        }
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Settle { month, out, db } => {
            let app = state(&db).await?;
            let s = citygrid_server::routes::money::settle(&app, month.as_deref(), None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for name in s.files.keys() {
                let text = app.store.settlement_file(&s.month, name).await?.unwrap_or_default();
                std::fs::write(out.join(name), text).with_context(|| format!("writing {name}"))?;
            }
            let o = &s.outcome;
            println!(
                "{} {}: {} entries, rewards {} CNY to {} citizens, deductions {} CNY from {} parties, {} awaiting approval",
                s.month,
                if s.created { "settled now" } else { "was settled before (frozen; same files)" },
                o.lines.len(),
                citygrid_core::reward::yuan(o.rewards_fen),
                o.citizens.len(),
                citygrid_core::reward::yuan(o.deductions_fen),
                o.contractors.len(),
                o.awaiting_approval
            );
            for name in s.files.keys() {
                println!("  {}", out.join(name).display());
            }
            Ok(())
        }
        Command::Evaluate { rebuild, subject, level, period, json, db } => {
            let app = state(&db).await?;
            if rebuild {
                let started = std::time::Instant::now();
                let events = app.store.rebuild_evaluation(&|n| eprint!("\r{n} events folded")).await?;
                eprintln!();
                println!("evaluation counts rebuilt from {events} events in {:.1} s", started.elapsed().as_secs_f64());
            }
            use citygrid_server::routes::evaluation as ev;
            let kind = citygrid_core::evaluation::SubjectKind::parse(&subject).ok_or_else(|| {
                anyhow::anyhow!("--subject: region, department, collector, acceptor, leader or dispatcher")
            })?;
            let level = level
                .map(|l| {
                    citygrid_core::codes::RegionLevel::parse(&l)
                        .ok_or_else(|| anyhow::anyhow!("--level: grid, community, street or district"))
                })
                .transpose()?;
            let (from, to) =
                ev::period_of(&app, period.as_deref(), None, None).map_err(|e| anyhow::anyhow!("--period: {e}"))?;
            let rows = ev::evaluate(&app, &ev::EvalQuery { subject: kind, level, from, to, parent: None })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{subject} {from}..{to}: {} rows", rows.len());
                for r in &rows {
                    println!("{:>5}  {:<16} {:<24} {:>6.2}  {}", r.rank, r.subject_id, r.name, r.score, r.grade);
                }
            }
            Ok(())
        }
    }
}
