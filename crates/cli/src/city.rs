//! City map commands: `generate-city` (the synthetic Xuzhou-shaped demo city, written as the
//! GeoJSON/CSV files a city GIS department delivers), `import city` (one directory, one
//! transaction) and `export city`, plus the demo-city loader `citygrid demo` uses.
//!
//! The demo goes through exactly the import path a real city uses: generate → files → read →
//! validate → store.

use anyhow::{bail, Context, Result};
use citygrid_core::org::{Role, Scope};
use citygrid_geo::citydir;
use citygrid_geo::generate::{generate, CityParams};
use citygrid_geo::layers::{CityMap, Component};
use citygrid_geo::CoordSys;
use citygrid_server::AppState;
use citygrid_store::{NewUser, Store};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// The demo city's parameters: `citygrid demo` generates this city once per database.
pub const DEMO_SEED: u64 = 2026;
const DEMO_SETTING: &str = "demo_city";

fn bar(total: Option<u64>, what: &str) -> ProgressBar {
    let pb = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let style =
        ProgressStyle::with_template("{spinner} {msg:<14} [{bar:30}] {human_pos}/{human_len} ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(what.to_owned());
    pb
}

/// `citygrid generate-city`: build the city and write its directory.
pub fn generate_city(scale: u32, seed: u64, out: &Path) -> Result<()> {
    if scale == 0 {
        bail!("--scale must be at least 1");
    }
    let started = Instant::now();
    let spinner = bar(None, "generating");
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let city = generate(&CityParams { scale, seed }).map_err(|e| anyhow::anyhow!("{e}"))?;
    spinner.finish_and_clear();
    println!("generated in {:.1} s", started.elapsed().as_secs_f64());
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let pb = bar(Some(city.component_count() as u64), "components");
    let components = city.components().inspect(|_| pb.inc(1));
    let summary =
        citydir::write_city_dir(out, &city.map, components).with_context(|| format!("writing {}", out.display()))?;
    pb.finish_and_clear();
    print_counts(&city.map, city.component_count());
    println!("written to {} in {:.1} s total: {summary:?}", out.display(), started.elapsed().as_secs_f64());
    Ok(())
}

fn print_counts(map: &CityMap, components: usize) {
    use citygrid_core::codes::RegionLevel as L;
    let level = |l: L| map.regions.iter().filter(|r| r.level() == l).count();
    let area = |l: citygrid_geo::layers::AreaLayer| map.areas.iter().filter(|a| a.layer == l).count();
    use citygrid_geo::layers::AreaLayer as A;
    println!(
        "{} districts, {} streets, {} communities, {} unit grids; {} patrol districts, {} kiosks, {} collector areas, \
         {} contractor areas, {} jurisdictions; {} departments, {} users; {} roads, {} addresses; {} components",
        level(L::District),
        level(L::Street),
        level(L::Community),
        level(L::Grid),
        area(A::PatrolDistrict),
        map.kiosks.len(),
        area(A::CollectorArea),
        area(A::ContractorArea),
        area(A::Jurisdiction),
        map.departments.len(),
        map.users.len(),
        map.roads.len(),
        map.addresses.len(),
        components
    );
}

/// What one import did, for the bench and the command's output.
pub struct Imported {
    pub rows: u64,
    pub read_secs: f64,
    pub write_secs: f64,
    pub users: usize,
}

/// Read a city directory and write it to the store in one transaction. Users in `users.csv` are
/// created (or left as they are if the name exists) with `user_password`, or skipped without it.
pub async fn import_city(store: &Store, dir: &Path, sys: CoordSys, user_password: Option<&str>) -> Result<Imported> {
    let read_started = Instant::now();
    let map = citydir::read_city_dir(dir, sys).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Levels not in this directory may already be stored: their codes count as parents.
    let known: std::collections::HashSet<_> =
        store.list_regions(None, None).await?.into_iter().map(|r| r.code).collect();
    let issues = citygrid_geo::validate::validate_regions_with(&map.regions, &known, 1.0);
    if !issues.is_empty() {
        for i in issues.iter().take(20) {
            eprintln!("{} {:?}: {}", i.code, i.kind, i.detail);
        }
        bail!("the administrative layers have {} problem(s); nothing was imported", issues.len());
    }
    // Accounts are created after the map's transaction: check every row first, so a bad
    // users.csv refuses the whole import instead of leaving it half done.
    if user_password.is_some() {
        let mut known: std::collections::HashSet<String> =
            store.list_departments().await?.into_iter().map(|d| d.code).collect();
        known.extend(map.departments.iter().map(|d| d.code.clone()));
        for u in &map.users {
            user_scope_check(u, &known)?;
        }
    }
    let read_secs = read_started.elapsed().as_secs_f64();
    let write_started = Instant::now();
    let multi = MultiProgress::new();
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let progress = |layer: &str, done: u64| {
        if let Ok(mut bars) = bars.lock() {
            let pb = bars.entry(layer.to_owned()).or_insert_with(|| multi.add(bar(None, layer)));
            pb.set_position(done);
        }
    };
    let components_path = citydir::components_file(dir);
    let summary = match components_path {
        Some(path) => {
            let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let reader = std::io::BufReader::with_capacity(1 << 20, file);
            let mut rows = citydir::read_components_csv(&name, reader, sys).map(|r| r.map_err(|e| e.to_string()));
            store.import_map(&map, &mut rows, &progress).await?
        }
        None => {
            let mut none = std::iter::empty::<Result<Component, String>>();
            store.import_map(&map, &mut none, &progress).await?
        }
    };
    if let Ok(bars) = bars.lock() {
        for pb in bars.values() {
            pb.finish_and_clear();
        }
    }
    let write_secs = write_started.elapsed().as_secs_f64();
    let users = match user_password {
        Some(pw) if !map.users.is_empty() => create_users(store, &map, pw).await?,
        _ => 0,
    };
    let rows = summary.regions
        + summary.areas
        + summary.kiosks
        + summary.roads
        + summary.addresses
        + summary.components
        + summary.departments;
    Ok(Imported { rows, read_secs, write_secs, users })
}

fn user_scope_check(u: &citygrid_geo::layers::UserRow, departments: &std::collections::HashSet<String>) -> Result<()> {
    Role::parse(&u.role).with_context(|| format!("users.csv: {}: unknown role {}", u.username, u.role))?;
    match u.scope.split_once(':') {
        Some(("region", code)) => {
            citygrid_core::codes::RegionCode::parse(code)
                .with_context(|| format!("users.csv: {}: bad region code {code}", u.username))?;
        }
        Some(("department", code)) if departments.contains(code) => {}
        Some(("department", code)) => bail!("users.csv: {}: no department {code}", u.username),
        _ if u.scope == "own" => {}
        _ => bail!("users.csv: {}: scope must be region:CODE, department:CODE or own", u.username),
    }
    Ok(())
}

/// Create the accounts of `users.csv`. One password hash serves all of them: hashing 156 times
/// would only slow the demo down, and each account can change its password later.
async fn create_users(store: &Store, map: &CityMap, password: &str) -> Result<usize> {
    let hash = citygrid_server::auth::hash_password(password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let departments = store.list_departments().await?;
    let existing: std::collections::HashSet<String> =
        store.list_users().await?.into_iter().map(|u| u.username).collect();
    let mut created = 0;
    for u in &map.users {
        if existing.contains(&u.username) {
            continue;
        }
        let role =
            Role::parse(&u.role).with_context(|| format!("users.csv: {}: unknown role {}", u.username, u.role))?;
        let scope = match u.scope.split_once(':') {
            Some(("region", code)) => Scope::Region { code: citygrid_core::codes::RegionCode::parse(code)? },
            Some(("department", code)) => {
                let d = departments
                    .iter()
                    .find(|d| d.code == code)
                    .with_context(|| format!("users.csv: {}: no department {code}", u.username))?;
                Scope::Department { department_id: d.id }
            }
            _ if u.scope == "own" => Scope::Own,
            _ => bail!("users.csv: {}: scope must be region:CODE, department:CODE or own", u.username),
        };
        let new = NewUser {
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            password_hash: hash.clone(),
            role,
            scope,
        };
        store.create_user(&new, jiff::Timestamp::now()).await?;
        created += 1;
    }
    Ok(created)
}

/// Generate the demo city into a temporary directory and import it, once per database: a
/// second `citygrid demo` on the same database starts at once.
pub async fn load_demo_city(app: &AppState, scale: u32) -> Result<()> {
    let marker = format!("scale={scale},seed={DEMO_SEED}");
    if app.store.get_setting(DEMO_SETTING).await?.as_deref() == Some(marker.as_str()) {
        println!("demo city already loaded ({marker})");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    println!("building the Xuzhou-scale demo city ({marker}); the first start takes a minute…");
    generate_city(scale, DEMO_SEED, dir.path())?;
    let imported =
        import_city(&app.store, dir.path(), CoordSys::Wgs84, Some(citygrid_server::bootstrap::DEMO_PASSWORD)).await?;
    println!(
        "imported {} rows in {:.1} s (read {:.1} s, write {:.1} s); {} collector accounts",
        imported.rows,
        imported.read_secs + imported.write_secs,
        imported.read_secs,
        imported.write_secs,
        imported.users
    );
    app.store.put_setting(DEMO_SETTING, &marker).await?;
    app.reload_map().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// `citygrid export city DIR`: every layer from the store, as the files import reads.
pub async fn export_city(store: &Store, out: &Path, geojson: bool) -> Result<()> {
    use citygrid_core::codes::RegionLevel;
    use citygrid_geo::layers::{DepartmentRow, RegionFeature, UserRow};
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let world = citygrid_server::state::WORLD;
    let mut map = CityMap::default();
    for level in [RegionLevel::District, RegionLevel::Street, RegionLevel::Community, RegionLevel::Grid] {
        for (region, geometry) in store.regions_in_bbox(level, world, u32::MAX).await? {
            let Some(geometry) = geometry else { continue };
            let polygon = citygrid_geo::geojson::multipolygon_from_geojson(&geometry)
                .map_err(|e| anyhow::anyhow!("region {}: {e}", region.code))?;
            map.regions.push(RegionFeature {
                code: region.code,
                name: region.name,
                area_class: region.area_class,
                polygon,
            });
        }
    }
    map.areas = store.all_areas().await?;
    map.kiosks = store.all_kiosks().await?;
    map.roads = store.all_roads().await?;
    map.addresses = store.all_addresses().await?;
    let departments = store.list_departments().await?;
    map.departments = departments
        .iter()
        .map(|d| DepartmentRow {
            code: d.code.clone(),
            name: d.name.clone(),
            parent: d.parent_id.and_then(|p| departments.iter().find(|x| x.id == p)).map(|p| p.code.clone()),
            credit_code: None,
        })
        .collect();
    map.users = store
        .list_users()
        .await?
        .into_iter()
        .filter(|u| u.active)
        .map(|u| UserRow {
            scope: match &u.scope {
                Scope::Region { code } => format!("region:{code}"),
                Scope::Department { department_id } => departments
                    .iter()
                    .find(|d| d.id == *department_id)
                    .map_or_else(|| "own".to_owned(), |d| format!("department:{}", d.code)),
                Scope::Own => "own".to_owned(),
            },
            username: u.username,
            display_name: u.display_name,
            role: u.role.as_str().to_owned(),
        })
        .collect();
    // Components page by page: a city has a million of them.
    let mut components = Vec::new();
    let mut after = None;
    let pb = bar(None, "components");
    loop {
        let page = store.list_components(&citygrid_store::ComponentFilter::default(), after, 1000).await?;
        pb.inc(page.items.len() as u64);
        components.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    pb.finish_and_clear();
    let n = components.len();
    if geojson {
        write_geojson_points(out, &map, &components)?;
    }
    let summary = citydir::write_city_dir(out, &map, components.into_iter())?;
    print_counts(&map, n);
    println!("written to {}: {summary:?}", out.display());
    Ok(())
}

/// `components.geojson` and `addresses.geojson` beside the CSV files, for GIS tools that take
/// GeoJSON only. Written feature by feature: the component layer is hundreds of megabytes.
fn write_geojson_points(out: &Path, map: &CityMap, components: &[Component]) -> Result<()> {
    use std::io::Write;
    let addresses = citydir::addresses_to_geojson(&map.addresses);
    std::fs::write(out.join("addresses.geojson"), addresses.to_string())?;
    let file = std::fs::File::create(out.join("components.geojson"))?;
    let mut w = std::io::BufWriter::new(file);
    w.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[\n")?;
    for (i, c) in components.iter().enumerate() {
        let one = citydir::components_to_geojson(std::iter::once(c));
        let feature = one["features"].get(0).cloned().unwrap_or_default();
        if i > 0 {
            w.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut w, &feature)?;
    }
    w.write_all(b"\n]}\n")?;
    w.flush()?;
    Ok(())
}
