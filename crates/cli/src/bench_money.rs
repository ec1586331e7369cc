//! `citygrid bench money`: the ledger's cost. Citizen reports are filed and verified through
//! the same code the API uses; then every problem is reconciled (the work each verification
//! triggers) and the month is settled. The ceiling is the raw durable single-row insert rate of
//! the same backend: a reconciliation is one durable transaction too.

use crate::bench::{drive, median};
use anyhow::{bail, Context, Result};
use citygrid_core::case::{self, Action, ActionInput, Command, Ctx};
use citygrid_core::codes::Kind;
use citygrid_core::org::{Actor, Role, Scope};
use citygrid_server::routes::cases::{file_report, LocationIn, ReportBody};
use citygrid_server::{bootstrap, AppState, Clock, Settings};
use citygrid_store::Store;
use std::sync::Arc;
use std::time::Instant;

/// Half exposed garbage (a cleaning category: three entries a problem), half manhole covers.
const CLASSES: [&str; 2] = ["06010", "01001"];

pub async fn money(
    database: Option<String>,
    reports: usize,
    citizens: usize,
    clients: usize,
    runs: usize,
) -> Result<()> {
    if reports == 0 || citizens == 0 || clients == 0 || runs == 0 {
        bail!("reports, citizens, clients and runs must be positive");
    }
    let dir = tempfile::tempdir()?;
    let url = database.unwrap_or_else(|| format!("sqlite:{}", dir.path().join("bench.db").display()));
    let store = Store::connect(&url).await.with_context(|| format!("opening {url}"))?;
    bootstrap::init(&store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    // The reports are filed in the middle of last month, so that month can be settled now.
    let now = jiff::Timestamp::now();
    let filed_at = now.checked_sub(jiff::SignedDuration::from_hours(24 * 35))?;
    let clock = Clock::manual(filed_at);
    let app =
        AppState::load(store.clone(), clock.clone(), Settings::default()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    bootstrap::load_demo(&app).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    // A bench city: caps and rate limits out of the way, so every verified report earns.
    let mut rules = store.reward_rules().await?;
    rules.daily_cap = 1000;
    rules.monthly_cap_fen = 100_000_000_000;
    rules.max_reports_per_hour = 1000;
    rules.max_reports_per_day = 10_000;
    rules.same_spot_radius_m = 0.0;
    store.put_reward_rules(&rules).await?;
    println!("bench money: backend={} reports={reports} citizens={citizens} clients={clients}", store.backend());

    let t = Instant::now();
    let mut actors = Vec::with_capacity(citizens);
    for i in 0..citizens {
        let phone = format!("139{:08}", 10_000_000 + i);
        let user = store
            .create_citizen(
                &citygrid_store::NewUser {
                    username: format!("p{phone}"),
                    display_name: format!("bench {i}"),
                    password_hash: "!".into(),
                    role: Role::Citizen,
                    scope: Scope::Own,
                },
                &phone,
                "wechat",
                filed_at,
            )
            .await?;
        actors.push(Actor { user_id: user.id, username: user.username, role: Role::Citizen, scope: Scope::Own });
    }
    let actors = Arc::new(actors);
    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(reports)));
    let file = {
        let (app, actors, ids) = (app.clone(), actors.clone(), ids.clone());
        move |i: usize| {
            let (app, actors, ids) = (app.clone(), actors.clone(), ids.clone());
            async move {
                // Distinct spots over the demo city, a few metres apart at least.
                let lon = 117.1650 + (i % 211) as f64 * 0.00022;
                let lat = 34.2480 + (i / 211 % 113) as f64 * 0.00022;
                let body = ReportBody {
                    kind: Kind::Event,
                    class_code: CLASSES[i % CLASSES.len()].into(),
                    urgency: None,
                    description: format!("bench citizen report {i}"),
                    location: LocationIn { lon, lat, coord_sys: None },
                    address: None,
                    photo_ids: None,
                    source: None,
                    component_id: None,
                };
                let created = file_report(&app, actors[i % actors.len()].clone(), body, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("report {i}: {e}"))?;
                ids.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(created.case.id);
                Ok(())
            }
        }
    };
    let filed = drive(clients, reports, file).await?;
    let ids: Vec<i64> = ids.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let collector = app
        .store
        .user_by_name("collector")
        .await?
        .map(|(u, _)| Actor { user_id: u.id, username: u.username, role: u.role, scope: u.scope })
        .context("demo collector")?;
    let verify = {
        let (app, ids, collector) = (app.clone(), Arc::new(ids.clone()), collector.clone());
        move |i: usize| {
            let (app, ids, collector) = (app.clone(), ids.clone(), collector.clone());
            async move {
                let step =
                    Command::parse(Action::Verify, ActionInput { confirmed: Some(true), ..ActionInput::default() })?;
                let (calendar, stages, now) = (app.calendar(), app.stages(), app.now());
                let tree = app.departments().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                let class = app.class(Kind::Event, CLASSES[i % CLASSES.len()]).context("class")?;
                app.store
                    .act(ids[i], |c| {
                        let ctx = Ctx { now, calendar: &calendar, stages: &stages, departments: &tree, class: &class };
                        case::decide(c, &step, &collector, &ctx)
                    })
                    .await?;
                Ok(())
            }
        }
    };
    let verified = drive(clients, ids.len(), verify).await?;
    println!(
        "setup: {citizens} citizens, {} reports filed ({filed:.0}/s) and verified ({verified:.0}/s) in {:.1} s",
        ids.len(),
        t.elapsed().as_secs_f64()
    );

    let ids = Arc::new(ids);
    let reconcile = {
        let (app, ids) = (app.clone(), ids.clone());
        move |i: usize| {
            let (app, ids) = (app.clone(), ids.clone());
            async move {
                citygrid_server::routes::money::reconcile(&app, ids[i], "bench")
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
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
    // First pass writes the entries; later passes find nothing to write (the idempotent check
    // every settlement makes). Both are measured against the raw insert ceiling.
    let first = drive(clients, ids.len(), reconcile.clone()).await?;
    let r1 = drive(1, ids.len(), raw.clone()).await?;
    let rn = drive(clients, ids.len(), raw.clone()).await?;
    let ceiling_first = r1.max(rn);
    let entries =
        store.table_counts().await?.into_iter().find(|(t, _)| t == "ledger_entries").map(|(_, n)| n).unwrap_or(0);
    println!(
        "reconcile (writing): {first:.0} problems/s, {entries} entries; raw {ceiling_first:.0} inserts/s; ratio {:.3}",
        first / ceiling_first
    );
    let mut ratios = Vec::new();
    let mut rates = Vec::new();
    for run in 1..=runs {
        let again = drive(clients, ids.len(), reconcile.clone()).await?;
        let r = drive(1, ids.len(), raw.clone()).await?.max(drive(clients, ids.len(), raw.clone()).await?);
        println!(
            "run {run}: reconcile (nothing to write) {again:.0} problems/s, raw {r:.0} inserts/s, ratio {:.3}",
            again / r
        );
        ratios.push(again / r);
        rates.push(again);
    }
    let after =
        store.table_counts().await?.into_iter().find(|(t, _)| t == "ledger_entries").map(|(_, n)| n).unwrap_or(0);
    if after != entries {
        bail!("a second reconciliation wrote {} entries", after - entries);
    }
    clock.set(now);
    let t = Instant::now();
    let s = citygrid_server::routes::money::settle(&app, None, None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "settle {}: {} entries, {} citizens paid {} CNY, {} parties docked {} CNY, in {secs:.2} s (reconciling first)",
        s.month,
        s.outcome.lines.len(),
        s.outcome.citizens.len(),
        citygrid_core::reward::yuan(s.outcome.rewards_fen),
        s.outcome.contractors.len(),
        citygrid_core::reward::yuan(s.outcome.deductions_fen),
    );
    let t = Instant::now();
    let again =
        citygrid_server::routes::money::settle(&app, Some(&s.month), None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if again.created || again.files != s.files {
        bail!("the second settlement run differed");
    }
    println!("settle again: frozen, same files, {:.3} s", t.elapsed().as_secs_f64());
    println!("reconcile_per_sec={:.0}", median(rates));
    println!("ratio={:.3}", median(ratios));
    store.close().await;
    Ok(())
}
