//! `citygrid bench evaluate`: a month's comprehensive evaluation for every subject, answered from
//! the counts kept in each event's transaction, against a full recomputation of the same month
//! from the event log, with millions of historical cases in the store.

use anyhow::{bail, Context, Result};
use citygrid_core::case::{self, Action, ActionInput, Command, Ctx, NewReport, Point, Source, State};
use citygrid_core::codes::{ClassCode, Kind, RegionLevel, Urgency};
use citygrid_core::evaluation::{SubjectKind, TallyKind};
use citygrid_core::org::{Actor, Role};
use citygrid_geo::generate::{generate, CityParams};
use citygrid_server::routes::evaluation::{evaluate_shared, EvalQuery};
use citygrid_server::AppState;
use jiff::civil::Date;
use jiff::Timestamp;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::time::Instant;

/// New cases between two measured asks: a busy city's minute (Xuzhou: 20,000 cases a month
/// is one every two minutes; a trickle of 20 with their events is well above that).
const TRICKLE: usize = 20;

/// Every subject of the evaluation: regions at each level, then the others.
fn all_subjects(from: Date, to: Date) -> Vec<EvalQuery> {
    let mut qs: Vec<EvalQuery> =
        [RegionLevel::Grid, RegionLevel::Community, RegionLevel::Street, RegionLevel::District]
            .into_iter()
            .map(|l| EvalQuery { subject: SubjectKind::Region, level: Some(l), from, to, parent: None })
            .collect();
    for s in [
        SubjectKind::Department,
        SubjectKind::Collector,
        SubjectKind::Acceptor,
        SubjectKind::Leader,
        SubjectKind::Dispatcher,
    ] {
        qs.push(EvalQuery { subject: s, level: None, from, to, parent: None });
    }
    qs
}

fn actor(u: &citygrid_store::User) -> Actor {
    Actor { user_id: u.id, username: u.username.clone(), role: u.role, scope: u.scope.clone() }
}

/// The people who work the month's cases.
struct Crew {
    collectors: Vec<Actor>,
    acceptor: Actor,
    leader: Actor,
    dispatcher: Actor,
    handler: Actor,
    department: i64,
}

pub async fn evaluate(
    database: Option<String>,
    cases: u64,
    month_cases: usize,
    clients: usize,
    runs: usize,
    scale: u32,
) -> Result<()> {
    if runs == 0 || clients == 0 || month_cases == 0 {
        bail!("runs, clients and month cases must be positive");
    }
    let tmp = tempfile::tempdir()?;
    let (url, store, app, existing) = crate::bench_map::bench_app(database, tmp.path(), "evaluate.db").await?;
    if existing > 0 {
        bail!("bench evaluate needs an empty database ({existing} cases in {url})");
    }
    let city = generate(&CityParams { scale, seed: crate::city::DEMO_SEED }).map_err(|e| anyhow::anyhow!("{e}"))?;
    let points = crate::bench_map::import_regions_and_points(&store, &app, &city.map, 11).await?;
    let grids = app.grids();
    // History: the years before, as rows and their counts (no logs: a bench database only).
    let t = Instant::now();
    let pb = indicatif::ProgressBar::new(cases);
    store.bench_fill_cases(cases, 42, &points, &|done| pb.set_position(done)).await?;
    pb.finish_and_clear();
    let rows = store.bench_fill_evaluation().await?;
    println!(
        "history: {cases} cases over {} grids and {rows} evaluation rows in {:.1} s",
        grids.len(),
        t.elapsed().as_secs_f64()
    );

    // The month measured: next month, which the history (the two years up to now) does not touch.
    let offset = app.calendar().utc_offset_minutes();
    let (y, m, _) = citygrid_core::reward::local_day(Timestamp::now(), offset);
    let from = Date::new(y, m, 1)?.last_of_month().tomorrow()?;
    let to = from.last_of_month();
    let start = jiff::tz::Offset::from_seconds(offset * 60)?
        .to_timestamp(from.to_datetime(jiff::civil::Time::new(8, 0, 0, 0)?))?;
    let users = store.list_users().await?;
    let by_name = |name: &str| users.iter().find(|u| u.username == name).map(actor).context(format!("no user {name}"));
    let crew = Crew {
        collectors: users.iter().filter(|u| u.role == Role::Collector).map(actor).collect(),
        acceptor: by_name("acceptor")?,
        leader: by_name("leader")?,
        dispatcher: by_name("dispatcher")?,
        handler: by_name("handler")?,
        department: match &by_name("handler")?.scope {
            citygrid_core::org::Scope::Department { department_id } => *department_id,
            _ => bail!("the demo handler has no department"),
        },
    };
    let t = Instant::now();
    let events = work_the_month(&app, &crew, &points, start, month_cases, clients, 0).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "the month {from}..{to}: {month_cases} cases, {events} events through the store ({:.0} events/s, counts kept in each transaction)",
        events as f64 / secs
    );

    // Incremental: every subject's rows from the kept counts. The first ask after start reads
    // each period part whole and scores every subject; after that a live city keeps writing, so
    // each measured ask follows a trickle of new cases through the real write path and answers
    // from what changed since the last ask.
    let queries = all_subjects(from, to);
    let ask = |label: String| {
        let (app, queries) = (&app, &queries);
        async move {
            let t = Instant::now();
            let mut rows_answered = 0;
            let mut each = Vec::new();
            for q in queries {
                let t = Instant::now();
                rows_answered += evaluate_shared(app, q).await.map_err(|e| anyhow::anyhow!("{e}"))?.len();
                let name = q.level.map_or(q.subject.as_str(), |l| l.as_str());
                each.push(format!("{name} {:.1}", t.elapsed().as_secs_f64() * 1000.0));
            }
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            println!("{label}, every subject ({rows_answered} rows): {ms:.1} ms ({})", each.join(", "));
            Ok::<f64, anyhow::Error>(ms)
        }
    };
    let cold = ask("first ask after start".into()).await?;
    let mut incremental = Vec::new();
    for run in 1..=runs {
        let events = work_the_month(&app, &crew, &points, start, TRICKLE, 1, run as u64).await?;
        incremental.push(ask(format!("run {run}: after {TRICKLE} more cases ({events} events)")).await?);
    }
    let counts_only = {
        let t = Instant::now();
        for kind in TallyKind::ALL {
            store.evaluation_tallies(kind, from, to, None).await?;
        }
        t.elapsed().as_secs_f64() * 1000.0
    };
    // Full: the same month recomputed from the log, then checked against the kept counts.
    let t = Instant::now();
    let full_counts = store.evaluation_from_log(from, to).await?;
    let full_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut kept: HashMap<(TallyKind, String), citygrid_core::evaluation::Tally> = HashMap::new();
    for kind in TallyKind::ALL {
        for (id, t) in store.evaluation_tallies(kind, from, to, None).await? {
            if !t.is_zero() {
                kept.insert((kind, id), t);
            }
        }
    }
    if kept != full_counts {
        bail!("the kept counts differ from the recomputation ({} vs {} subjects)", kept.len(), full_counts.len());
    }
    let inc = crate::bench::median(incremental);
    println!(
        "full recomputation of the month from the log: {full_ms:.0} ms; identical to the kept counts ({} subjects)",
        kept.len()
    );
    println!("cold_ms={cold:.1}");
    println!("incremental_ms={inc:.1}");
    println!("incremental_counts_ms={counts_only:.1}");
    println!("full_ms={full_ms:.0}");
    println!("ratio={:.2}", full_ms / inc.max(0.001));
    store.close().await;
    Ok(())
}

/// Report and work `n` cases through the real write path (domain decisions, one transaction
/// per step, counts kept in it), spread over the month from `start`, by `clients` workers.
async fn work_the_month(
    app: &AppState,
    crew: &Crew,
    points: &[(f64, f64, String)],
    start: Timestamp,
    n: usize,
    clients: usize,
    seed: u64,
) -> Result<u64> {
    let shared = std::sync::Arc::new((app.clone(), points.to_vec(), start));
    let crew = std::sync::Arc::new(Crew {
        collectors: crew.collectors.clone(),
        acceptor: crew.acceptor.clone(),
        leader: crew.leader.clone(),
        dispatcher: crew.dispatcher.clone(),
        handler: crew.handler.clone(),
        department: crew.department,
    });
    let pb = indicatif::ProgressBar::new(n as u64);
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (shared, crew, pb) = (shared.clone(), crew.clone(), pb.clone());
        tasks.push(tokio::spawn(async move {
            let (app, points, start) = &*shared;
            let mut rng = ChaCha8Rng::seed_from_u64(1000 + 100 * seed + worker as u64);
            let mut events = 0u64;
            for _ in (worker..n).step_by(clients) {
                events += one_case(app, &crew, points, *start, &mut rng).await?;
                pb.inc(1);
            }
            Ok::<u64, anyhow::Error>(events)
        }));
    }
    let mut events = 0;
    for t in tasks {
        events += t.await??;
    }
    pb.finish_and_clear();
    Ok(events)
}

async fn one_case(
    app: &AppState,
    crew: &Crew,
    points: &[(f64, f64, String)],
    start: Timestamp,
    rng: &mut ChaCha8Rng,
) -> Result<u64> {
    let (lon, lat, grid) = &points[rng.gen_range(0..points.len())];
    let grid = citygrid_core::codes::RegionCode::parse_grid(grid)?;
    let class = app.class(Kind::Event, "06010").context("class 06010")?;
    let citizen = rng.gen_bool(0.2);
    let reporter = if citizen {
        Actor {
            user_id: 1_000_000 + rng.gen_range(0..5000),
            username: "citizen".into(),
            role: Role::Citizen,
            scope: citygrid_core::org::Scope::Own,
        }
    } else {
        crew.collectors[rng.gen_range(0..crew.collectors.len())].clone()
    };
    let collector = crew.collectors[rng.gen_range(0..crew.collectors.len())].clone();
    let mut now = start.checked_add(jiff::SignedDuration::from_mins(rng.gen_range(0..28 * 24 * 60)))?;
    let (calendar, stages, departments) =
        (app.calendar(), app.stages(), app.departments().await.map_err(|e| anyhow::anyhow!("{e}"))?);
    let report = NewReport {
        number: String::new(),
        source: if citizen { Source::Citizen } else { Source::Collector },
        kind: Kind::Event,
        class_code: ClassCode::parse("06010")?,
        urgency: Urgency::Ordinary,
        description: "bench".into(),
        address: None,
        location: Point { lon: *lon, lat: *lat },
        grid_code: grid.clone(),
        area_class: app.area_class(grid.as_str()),
        photo_ids: Vec::new(),
        component_id: None,
    };
    let day = {
        let (y, m, d) = citygrid_core::reward::local_day(now, calendar.utc_offset_minutes());
        format!("{y:04}{m:02}{d:02}")
    };
    let ctx = Ctx { now, calendar: &calendar, stages: &stages, departments: &departments, class: &class };
    let created = app
        .store
        .create_case(&day, None, now, |number| case::report(NewReport { number, ..report }, &reporter, &ctx))
        .await?;
    let mut c = created.case;
    let mut events = 1u64;
    let photo = "ab".repeat(32);
    let mut step = |c: &case::Case| -> Option<(Actor, Action, ActionInput)> {
        let input = ActionInput::default();
        Some(match c.state {
            State::Verifying => {
                (collector.clone(), Action::Verify, ActionInput { confirmed: Some(rng.gen_bool(0.9)), ..input })
            }
            State::Reported => (crew.acceptor.clone(), Action::Accept, input),
            State::Accepted => (crew.leader.clone(), Action::File, input),
            State::Filed => (
                crew.dispatcher.clone(),
                Action::Dispatch,
                ActionInput { department_id: Some(crew.department), ..input },
            ),
            State::Dispatched if rng.gen_bool(0.1) => return None,
            State::Dispatched => {
                (crew.handler.clone(), Action::Dispose, ActionInput { photo_ids: Some(vec![photo.clone()]), ..input })
            }
            State::Disposed => {
                (collector.clone(), Action::Check, ActionInput { passed: Some(rng.gen_bool(0.9)), ..input })
            }
            State::Checked => (crew.leader.clone(), Action::Close, input),
            _ => return None,
        })
    };
    while let Some((who, action, input)) = step(&c) {
        now = now.checked_add(jiff::SignedDuration::from_mins(5 + (events as i64 * 37) % 180))?;
        let command = Command::parse(action, input).map_err(|r| anyhow::anyhow!("{r}"))?;
        let ctx = Ctx { now, calendar: &calendar, stages: &stages, departments: &departments, class: &class };
        c = app.store.act(c.id, |current| case::decide(current, &command, &who, &ctx)).await?;
        events += 1;
    }
    Ok(events)
}
