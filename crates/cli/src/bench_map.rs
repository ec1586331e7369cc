//! Map benchmarks: `bench geo` (point → grid lookups and forward geocoding), `bench read` (the
//! big-screen map query and the filtered case list over millions of cases, through HTTP and
//! directly on the database) and `bench import` (the whole demo city into the store). Each
//! prints its ceiling, measured in the same run, and ends with a `ratio=` line.

use crate::bench::median;
use anyhow::{bail, Context, Result};
use citygrid_core::codes::RegionCode;
use citygrid_geo::generate::{generate, generate_grids, CityParams};
use citygrid_geo::grid::{GridIndex, GridPolygon};
use citygrid_geo::layers::CityMap;
use citygrid_server::{bootstrap, AppState, Clock, Settings};
use citygrid_store::{CaseFilter, Store, Visibility};
use geo::{BoundingRect, Contains};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Reset the peak so the next reading covers only what follows (Linux `clear_refs` 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn random_points(bbox: (f64, f64, f64, f64), n: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| (rng.gen_range(bbox.0..bbox.2), rng.gen_range(bbox.1..bbox.3))).collect()
}

/// The baseline: a bare R-tree of polygon bounding boxes and geo's `contains`, first hit wins.
struct Bare {
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
    polygons: Vec<geo::MultiPolygon<f64>>,
}

impl Bare {
    fn new(grids: &[GridPolygon]) -> Bare {
        let entries = grids
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let r = g.polygon.bounding_rect()?;
                Some(GeomWithData::new(Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]), i))
            })
            .collect();
        Bare { tree: RTree::bulk_load(entries), polygons: grids.iter().map(|g| g.polygon.clone()).collect() }
    }

    fn locate(&self, lon: f64, lat: f64) -> Option<usize> {
        let p = geo::Point::new(lon, lat);
        self.tree.locate_all_at_point(&[lon, lat]).map(|e| e.data).find(|i| self.polygons[*i].contains(&p))
    }
}

/// `citygrid bench geo`.
pub fn geo(scales: &[u32], lookups: usize, runs: usize, geocodes: usize, seed: u64) -> Result<()> {
    if scales.is_empty() || lookups == 0 || runs == 0 {
        bail!("scales, lookups and runs must be positive");
    }
    let mut first_ratio = None;
    for &scale in scales {
        let started = Instant::now();
        let regions = generate_grids(&CityParams { scale, seed }).map_err(|e| anyhow::anyhow!("{e}"))?;
        let grids: Vec<GridPolygon> =
            regions.into_iter().map(|r| GridPolygon { code: r.code, polygon: r.polygon }).collect();
        let built = Instant::now();
        let index = GridIndex::new(grids.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let index_secs = built.elapsed().as_secs_f64();
        let bare = Bare::new(index.grids());
        let bbox = index.bbox().context("no grids")?;
        println!(
            "scale {scale}: {} unit grids, generated in {:.1} s, index built in {index_secs:.2} s",
            index.len(),
            started.elapsed().as_secs_f64() - index_secs
        );
        let points = random_points(bbox, lookups, seed ^ 0x9e37);
        // Agreement first: both must name the same grid wherever the point is not on an edge.
        let mut found = 0usize;
        let mut differ = 0usize;
        for &(x, y) in points.iter().take(100_000) {
            let a = index.locate(x, y);
            let b = bare.locate(x, y).map(|i| &index.grids()[i].code);
            found += usize::from(a.is_some());
            differ += usize::from(a != b);
        }
        println!("  agreement on {} points: {found} inside the city, {differ} differ", points.len().min(100_000));
        let (mut ours, mut base, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for run in 1..=runs {
            let t = Instant::now();
            let mut hits = 0usize;
            for &(x, y) in &points {
                hits += usize::from(index.locate(x, y).is_some());
            }
            let ours_rate = points.len() as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut bare_hits = 0usize;
            for &(x, y) in &points {
                bare_hits += usize::from(bare.locate(x, y).is_some());
            }
            let base_rate = points.len() as f64 / t.elapsed().as_secs_f64();
            std::hint::black_box((hits, bare_hits));
            println!(
                "  run {run}: citygrid {ours_rate:.0} lookups/s, bare R-tree + contains {base_rate:.0} lookups/s, ratio {:.3}",
                ours_rate / base_rate
            );
            ours.push(ours_rate);
            base.push(base_rate);
            ratios.push(ours_rate / base_rate);
        }
        let ratio = median(ratios);
        println!(
            "scale_{scale}_lookups_per_sec_per_core={:.0} scale_{scale}_baseline_per_sec={:.0} scale_{scale}_ratio={ratio:.3}",
            median(ours),
            median(base)
        );
        first_ratio.get_or_insert(ratio);
    }
    if geocodes > 0 {
        geocode_rate(geocodes, seed)?;
    }
    println!("ratio={:.3}", first_ratio.unwrap_or_default());
    Ok(())
}

/// Forward geocoding over the scale-1 city's address book, with the spellings people type.
fn geocode_rate(n: usize, seed: u64) -> Result<()> {
    let city = generate(&CityParams { scale: 1, seed }).map_err(|e| anyhow::anyhow!("{e}"))?;
    let districts: Vec<(RegionCode, String)> = city
        .map
        .regions
        .iter()
        .filter(|r| r.level() == citygrid_core::codes::RegionLevel::District)
        .map(|r| (r.code.clone(), r.name.clone()))
        .collect();
    let names: std::collections::HashMap<&str, &str> =
        districts.iter().map(|(c, n)| (c.as_str(), n.as_str())).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let addresses = &city.map.addresses;
    if addresses.is_empty() {
        bail!("the generated city has no addresses");
    }
    let queries: Vec<String> = (0..n)
        .map(|i| {
            let a = &addresses[rng.gen_range(0..addresses.len())];
            let district = names.get(a.district.as_str()).copied().unwrap_or("");
            match i % 3 {
                0 => a.name.clone(),
                1 => format!("江苏省徐州市{district}{}", a.name),
                // Full-width digits and a space, as typed on a phone.
                _ => format!("徐州市 {}", to_full_width(&a.name)),
            }
        })
        .collect();
    let t = Instant::now();
    let book = citygrid_geo::geocode::AddressBook::new(city.map.addresses.clone(), city.map.roads.clone(), districts);
    let build = t.elapsed().as_secs_f64();
    let mut rates = Vec::new();
    let mut matched = 0;
    for _ in 0..3 {
        let t = Instant::now();
        matched = queries.iter().filter(|q| book.geocode(q).is_some()).count();
        rates.push(queries.len() as f64 / t.elapsed().as_secs_f64());
    }
    // The ceiling: an exact-name hash lookup of the same addresses, no parsing, no tolerance.
    let exact: std::collections::HashMap<&str, usize> =
        addresses.iter().enumerate().map(|(i, a)| (a.name.as_str(), i)).collect();
    let t = Instant::now();
    let mut hits = 0usize;
    for q in &queries {
        hits += usize::from(exact.contains_key(q.as_str()));
    }
    std::hint::black_box(hits);
    let exact_rate = queries.len() as f64 / t.elapsed().as_secs_f64();
    println!(
        "geocoding: {} addresses, book built in {build:.2} s, {matched}/{} queries matched, {:.0} geocodes/s (exact-name hash lookup {exact_rate:.0}/s)",
        addresses.len(),
        queries.len(),
        median(rates.clone())
    );
    println!("geocodes_per_sec={:.0}", median(rates));
    Ok(())
}

fn to_full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap_or(c),
            '-' => '－',
            c => c,
        })
        .collect()
}

/// `citygrid bench import`.
pub async fn import(database: Option<String>, scale: u32, dir: Option<std::path::PathBuf>) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let city_dir = match dir {
        Some(d) => d,
        None => {
            let d = tmp.path().join("city");
            crate::city::generate_city(scale, crate::city::DEMO_SEED, &d)?;
            d
        }
    };
    let url = database.unwrap_or_else(|| format!("sqlite:{}", tmp.path().join("import.db").display()));
    let store = Store::connect(&url).await.with_context(|| format!("opening {url}"))?;
    bootstrap::init(&store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    reset_peak_rss();
    // The ceiling: reading and validating every file, without the database.
    let t = Instant::now();
    let map = citygrid_geo::citydir::read_city_dir(&city_dir, citygrid_geo::CoordSys::Wgs84)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rows = map_rows(&map);
    if let Some(path) = citygrid_geo::citydir::components_file(&city_dir) {
        let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
        for c in citygrid_geo::citydir::read_components_csv("components.csv", file, citygrid_geo::CoordSys::Wgs84) {
            c.map_err(|e| anyhow::anyhow!("{e}"))?;
            rows += 1;
        }
    }
    drop(map);
    let read_secs = t.elapsed().as_secs_f64();
    let read_peak = peak_rss_mib();
    reset_peak_rss();
    let t = Instant::now();
    let done = crate::city::import_city(&store, &city_dir, citygrid_geo::CoordSys::Wgs84, None).await?;
    let secs = t.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    println!("bench import: backend={} rows={rows}", store.backend());
    println!(
        "read and validate only: {read_secs:.1} s ({:.0} rows/s), peak memory {:.0} MiB",
        rows as f64 / read_secs,
        read_peak.unwrap_or_default()
    );
    println!(
        "import: {secs:.1} s ({:.0} rows/s; read {:.1} s, write {:.1} s), {} rows written, peak memory {:.0} MiB",
        rows as f64 / secs,
        done.read_secs,
        done.write_secs,
        done.rows,
        peak.unwrap_or_default()
    );
    println!("import_secs={secs:.1}");
    println!("peak_rss_mib={:.0}", peak.unwrap_or_default());
    println!("ratio={:.3}", read_secs / secs);
    store.close().await;
    Ok(())
}

fn map_rows(map: &CityMap) -> u64 {
    (map.regions.len()
        + map.areas.len()
        + map.kiosks.len()
        + map.roads.len()
        + map.addresses.len()
        + map.departments.len()
        + map.users.len()) as u64
}

/// One request of the read mix: the big-screen map view (open cases of one class in a
/// district-sized box, as the "cases in view, by state and class") or two pages of the
/// filtered list (district + state, with or without a class).
#[derive(Clone)]
enum ReadQuery {
    Map { bbox: (f64, f64, f64, f64), class: Option<&'static str> },
    List { district: String, state: &'static str, class: Option<&'static str> },
}

const CLASSES: [&str; 4] = ["06010", "01001", "03012", "09002"];

fn read_queries(n: usize, bbox: (f64, f64, f64, f64), districts: &[String], seed: u64) -> Vec<ReadQuery> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A district-sized view: about 3 km × 3 km.
    let (w, h) = (0.032, 0.027);
    (0..n)
        .map(|i| {
            let class = Some(CLASSES[rng.gen_range(0..CLASSES.len())]);
            if i % 2 == 0 {
                let x = rng.gen_range(bbox.0..(bbox.2 - w).max(bbox.0 + 1e-6));
                let y = rng.gen_range(bbox.1..(bbox.3 - h).max(bbox.1 + 1e-6));
                ReadQuery::Map { bbox: (x, y, x + w, y + h), class }
            } else {
                let state = ["closed", "dispatched", "filed"][rng.gen_range(0..3)];
                // Lists are asked with and without a class.
                let class = class.filter(|_| rng.gen_bool(0.5));
                ReadQuery::List { district: districts[rng.gen_range(0..districts.len())].clone(), state, class }
            }
        })
        .collect()
}

const OPEN: [&str; 7] = ["verifying", "reported", "accepted", "filed", "dispatched", "disposed", "checked"];

async fn direct(store: &Store, vis: &Visibility, q: &ReadQuery) -> Result<usize> {
    match q {
        ReadQuery::Map { bbox, class } => {
            let filter = CaseFilter {
                states: OPEN.iter().map(|s| (*s).to_owned()).collect(),
                class_code: class.map(str::to_owned),
                bbox: Some(*bbox),
                ..CaseFilter::default()
            };
            Ok(store.case_markers(vis, &filter, 2001).await?.len())
        }
        ReadQuery::List { district, state, class } => {
            let filter = CaseFilter {
                states: vec![(*state).to_owned()],
                class_code: class.map(str::to_owned),
                district: Some(RegionCode::parse(district)?),
                ..CaseFilter::default()
            };
            let page = store.list_cases(vis, &filter, None, 50).await?;
            let mut n = page.items.len();
            if let Some(next) = page.next {
                n += store.list_cases(vis, &filter, Some(next), 50).await?.items.len();
            }
            Ok(n)
        }
    }
}

async fn over_http(http: &reqwest::Client, base: &str, token: &str, q: &ReadQuery) -> Result<usize> {
    match q {
        ReadQuery::Map { bbox, class } => {
            let mut url =
                format!("{base}/api/v1/map/cases?bbox={},{},{},{}&limit=2000", bbox.0, bbox.1, bbox.2, bbox.3);
            if let Some(c) = class {
                url.push_str(&format!("&class_code={c}"));
            }
            let res = http.get(url).bearer_auth(token).send().await?;
            if !res.status().is_success() {
                bail!("map query: {} {}", res.status(), res.text().await.unwrap_or_default());
            }
            let body: Items = serde_json::from_slice(&res.bytes().await?)?;
            Ok(body.items.len())
        }
        ReadQuery::List { district, state, class } => {
            let mut url = format!("{base}/api/v1/cases?district={district}&state={state}&limit=50");
            if let Some(c) = class {
                url.push_str(&format!("&class_code={c}"));
            }
            let res = http.get(&url).bearer_auth(token).send().await?;
            if !res.status().is_success() {
                bail!("case list: {} {}", res.status(), res.text().await.unwrap_or_default());
            }
            let body: Items = serde_json::from_slice(&res.bytes().await?)?;
            let mut n = body.items.len();
            if let Some(cursor) = body.next_cursor {
                let res = http.get(format!("{url}&cursor={cursor}")).bearer_auth(token).send().await?;
                let body: Items = serde_json::from_slice(&res.error_for_status()?.bytes().await?)?;
                n += body.items.len();
            }
            Ok(n)
        }
    }
}

/// What the load generator reads of a page: the items are parsed but not kept (the direct
/// baseline does not build JSON values either), and the cursor.
#[derive(serde::Deserialize)]
struct Items {
    items: Vec<serde::de::IgnoredAny>,
    next_cursor: Option<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Run the queries over `clients` workers; returns (queries/s, per-kind sorted latencies).
async fn drive_reads<F, Fut>(
    clients: usize,
    queries: Arc<Vec<ReadQuery>>,
    run: F,
) -> Result<(f64, Vec<Duration>, Vec<Duration>)>
where
    F: Fn(ReadQuery) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<usize>> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let workers = (0..clients).map(|_| {
        let next = next.clone();
        let run = run.clone();
        let queries = queries.clone();
        tokio::spawn(async move {
            let (mut map, mut list) = (Vec::new(), Vec::new());
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(q) = queries.get(i) else { return Ok::<_, anyhow::Error>((map, list)) };
                let t = Instant::now();
                run(q.clone()).await?;
                match q {
                    ReadQuery::Map { .. } => map.push(t.elapsed()),
                    ReadQuery::List { .. } => list.push(t.elapsed()),
                }
            }
        })
    });
    let (mut map, mut list) = (Vec::new(), Vec::new());
    for r in futures::future::join_all(workers).await {
        let (m, l) = r??;
        map.extend(m);
        list.extend(l);
    }
    let rate = queries.len() as f64 / start.elapsed().as_secs_f64();
    map.sort();
    list.sort();
    Ok((rate, map, list))
}

/// `citygrid bench read`.
/// A bench database with the demo accounts: `database`, or a fresh SQLite file `file` in `dir`.
/// Returns its URL, the store, the server state and how many cases it already holds.
pub async fn bench_app(
    database: Option<String>,
    dir: &std::path::Path,
    file: &str,
) -> Result<(String, Store, AppState, i64)> {
    let url = database.unwrap_or_else(|| format!("sqlite:{}", dir.join(file).display()));
    let store = Store::connect(&url).await.with_context(|| format!("opening {url}"))?;
    bootstrap::init(&store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let app =
        AppState::load(store.clone(), Clock::System, Settings::default()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    bootstrap::load_demo(&app).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let existing = store.table_counts().await?.into_iter().find(|(t, _)| t == "cases").map_or(0, |(_, n)| n);
    Ok((url, store, app, existing))
}

/// Import the regions of `map` and draw one random point inside each of its grids, with the
/// grid's code: where the bench's synthetic cases lie.
pub async fn import_regions_and_points(
    store: &Store,
    app: &AppState,
    map: &CityMap,
    seed: u64,
) -> Result<Vec<(f64, f64, String)>> {
    let regions = CityMap { regions: map.regions.clone(), ..CityMap::default() };
    store.import_map(&regions, &mut std::iter::empty(), &|_, _| {}).await?;
    app.reload_map().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let grids = app.grids();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok(grids
        .iter()
        .filter_map(|g| {
            let r = g.polygon.bounding_rect()?;
            let (x, y) = (rng.gen_range(r.min().x..r.max().x), rng.gen_range(r.min().y..r.max().y));
            Some((x, y, grids.locate(x, y)?.as_str().to_owned()))
        })
        .collect())
}

pub async fn read(
    database: Option<String>,
    cases: u64,
    requests: usize,
    clients: usize,
    runs: usize,
    scale: u32,
) -> Result<()> {
    if requests == 0 || clients == 0 || runs == 0 {
        bail!("requests, clients and runs must be positive");
    }
    let tmp = tempfile::tempdir()?;
    let (url, store, app, existing) = bench_app(database, tmp.path(), "read.db").await?;
    let city = generate(&CityParams { scale, seed: crate::city::DEMO_SEED }).map_err(|e| anyhow::anyhow!("{e}"))?;
    if existing == 0 {
        let t = Instant::now();
        let points = import_regions_and_points(&store, &app, &city.map, 7).await?;
        let grids = app.grids();
        let pb = indicatif::ProgressBar::new(cases);
        store.bench_fill_cases(cases, 42, &points, &|done| pb.set_position(done)).await?;
        pb.finish_and_clear();
        println!("filled {cases} cases over {} grids in {:.1} s", grids.len(), t.elapsed().as_secs_f64());
    } else {
        app.reload_map().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("reusing {existing} cases already in {url}");
    }
    let grids = app.grids();
    let bbox = grids.bbox().context("no grids")?;
    let districts: Vec<String> = city
        .map
        .regions
        .iter()
        .filter(|r| r.level() == citygrid_core::codes::RegionLevel::District)
        .map(|r| r.code.as_str().to_owned())
        .collect();
    let (server, http, base, token) = crate::bench::serve_signed_in(app, clients, "leader").await?;
    let vis = Visibility::Region(RegionCode::parse("320300")?);
    println!("bench read: backend={} clients={clients} requests={requests} runs={runs}", store.backend());
    let mut ratios = Vec::new();
    for run in 1..=runs {
        let queries = Arc::new(read_queries(requests, bbox, &districts, 1000 + run as u64));
        let (h, hm, hl) = {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            drive_reads(clients, queries.clone(), move |q| {
                let (http, base, token) = (http.clone(), base.clone(), token.clone());
                async move { over_http(&http, &base, &token, &q).await }
            })
            .await?
        };
        let (d, dm, dl) = {
            let (store, vis) = (store.clone(), vis.clone());
            drive_reads(clients, queries.clone(), move |q| {
                let (store, vis) = (store.clone(), vis.clone());
                async move { direct(&store, &vis, &q).await }
            })
            .await?
        };
        println!(
            "run {run}: http {h:.0} req/s (map p50 {:.1} ms p99 {:.1} ms; list p50 {:.1} ms p99 {:.1} ms), \
             direct {d:.0} req/s (map p99 {:.1} ms, list p99 {:.1} ms), ratio {:.3}",
            percentile(&hm, 0.5),
            percentile(&hm, 0.99),
            percentile(&hl, 0.5),
            percentile(&hl, 0.99),
            percentile(&dm, 0.99),
            percentile(&dl, 0.99),
            h / d
        );
        let mut all = hm.clone();
        all.extend(hl.iter().copied());
        all.sort();
        if run == runs {
            println!("http_p50_ms={:.1}", percentile(&all, 0.5));
            println!("http_p99_ms={:.1}", percentile(&all, 0.99));
        }
        ratios.push(h / d);
    }
    println!("ratio={:.3}", median(ratios));
    server.abort();
    store.close().await;
    Ok(())
}
