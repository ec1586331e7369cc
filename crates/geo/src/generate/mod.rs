//! A deterministic synthetic city shaped like Xuzhou's (徐州) built-up area, for
//! `citygrid generate-city --scale N --seed S --out DIR` and `citygrid demo`.
//!
//! Load tests, demos and map development need a city of realistic size and texture: about
//! 20,000 unit grids (单元网格) on 253 km² at scale 1 (Xuzhou's real figures), regions down to
//! communities (社区), patrol districts, responsibility areas, roads, an address database
//! (地址库) and a component census (部件普查) of ~1,000,000 components. Real data is not
//! available to ship, so this module builds one from what is public:
//!
//! - the real boundaries of Xuzhou's districts (`data/xuzhou/districts.geojson`, GCJ-02-like
//!   coordinates, converted to WGS-84) decide which district each grid is in;
//! - the real names and codes of their streets (街道, `data/xuzhou/streets.csv`) name the
//!   streets; streets beyond the real ones (at larger scales) get made-up names and free codes;
//! - the component classes and their names come from GB/T 47678.5-2026
//!   (`data/classification-gb47678.5-2026.csv`).
//!
//! # Shape
//! The city is a lattice of ~112 m cells ([`lattice`]), one cell per unit grid, with jittered
//! but shared vertices so grids tile exactly. The core is the cells nearest 117.18 E, 34.26 N
//! (with a lobed outline, as built-up areas are not round) whose centres fall in one of the five
//! urban districts (鼓楼 320302, 云龙 320303, 贾汪 320305, 泉山 320311, 铜山 320312), plus a
//! small satellite core around 贾汪's own town centre, which lies 30 km away. Xuzhou's 数字城管
//! runs seven districts: the five urban ones and two functional zones, which have no GB/T 2260
//! code. We carve them out of the real districts and give them **local codes**:
//! 徐州经济技术开发区 `320371` (north-east of the centre) and 新城区 `320372` (south-east).
//!
//! Streets partition a district, communities a street (about ten per street) and a unit grid
//! is one cell, numbered west→east, north→south inside its community as the standard asks.
//! Area classes: A for the centre, B for the ring around it, C for the outskirts.
//!
//! # Scale
//! `scale` multiplies the area and everything counted per area (streets, communities, patrol
//! districts, kiosks, collectors, contractors, roads, addresses, components); the city's
//! organisation (35 departments, 122 sub-units) and its seven districts stay. Codes keep
//! their digit budgets (3-digit street, community and grid sequence, 6-digit component and
//! address serials); the five urban districts hold about 3,000 km², so scales above
//! [`MAX_SCALE`] are refused.
//!
//! # Determinism
//! Every random choice comes from [`rand_chacha::ChaCha8Rng`] streams seeded from `seed` (one
//! stream per layer, so [`generate_grids`] makes the same grids as [`generate`] without
//! building the rest), and no output depends on hash-map order: the same parameters give
//! bit-identical output on every run.

mod lattice;
mod names;
mod org;
mod places;

use crate::coord::gcj02_to_wgs84;
use crate::layers::{Area, AreaLayer, CityMap, Component, DepartmentRow, Kiosk, RegionFeature, UserRow};
use crate::GeoError;
use citygrid_core::codes::{AreaClass, ClassCode, RegionCode};
use citygrid_core::component::{ComponentId, ComponentState};
use geo::{Geometry, MultiPolygon, Point};
use lattice::{Lattice, NONE};
use names::Names;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// Parameters of [`generate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CityParams {
    /// Multiplies the area (253 km² each) and everything counted per area; at least 1.
    pub scale: u32,
    pub seed: u64,
}

/// The largest scale the five urban districts have room for.
pub const MAX_SCALE: u32 = 11;

/// Cell side in metres: 20,000 cells of 112.5 m make 253 km².
const CELL_M: f64 = 112.5;
/// Per unit of scale.
const GRIDS: usize = 20_000;
const STREETS: usize = 51;
const COMMUNITIES: usize = 500;
const PATROL_DISTRICTS: usize = 64;
const KIOSKS: usize = 48;
const COLLECTORS: usize = 156;
const CONTRACTORS: usize = 16;
/// Mean components per unit grid.
const COMPONENTS_PER_GRID: f64 = 50.0;

/// The city centre (人民广场/彭城广场 area), WGS-84.
const CENTRE: (f64, f64) = (117.18, 34.26);
/// 贾汪's town centre (老矿街道), WGS-84, and its share of the cells at scale 1.
const JIAWANG_CENTRE: (f64, f64) = (117.45, 34.44);
const JIAWANG_SHARE: f64 = 0.06;
/// Where the functional zones are grown from, and their share of the cells at scale 1.
const ZONE_SEEDS: [(f64, f64); 2] = [(117.275, 34.29), (117.265, 34.205)];
const ZONE_SHARE: f64 = 0.08;

/// One of the city's seven districts.
pub(super) struct DistrictSpec {
    pub code: &'static str,
    pub name: &'static str,
    /// Pinyin abbreviation for sub-unit codes (`CG-QS`).
    pub abbr: &'static str,
    /// A real GB/T 2260 district (false: a functional zone with a local code).
    pub real: bool,
}

/// In code order; the first five are in `districts.geojson`.
pub(super) const DISTRICTS: [DistrictSpec; 7] = [
    DistrictSpec { code: "320302", name: "鼓楼区", abbr: "GL", real: true },
    DistrictSpec { code: "320303", name: "云龙区", abbr: "YL", real: true },
    DistrictSpec { code: "320305", name: "贾汪区", abbr: "JW", real: true },
    DistrictSpec { code: "320311", name: "泉山区", abbr: "QS", real: true },
    DistrictSpec { code: "320312", name: "铜山区", abbr: "TS", real: true },
    DistrictSpec { code: "320371", name: "徐州经济技术开发区", abbr: "JK", real: false },
    DistrictSpec { code: "320372", name: "新城区", abbr: "XC", real: false },
];
const JIAWANG: usize = 2;
const QUANSHAN: usize = 3;

/// Streets of the functional zones (the first five of 经开区 are its real streets; 新城区's
/// are made up, its real territory being streets of 云龙 and 铜山).
const ZONE_STREETS: [&[(&str, &str)]; 2] = [
    &[("001", "金山桥街道"), ("002", "大黄山街道"), ("003", "大庙街道"), ("004", "东环街道"), ("005", "徐庄街道")],
    &[("001", "元和街道"), ("002", "新城街道"), ("003", "汉源街道"), ("004", "和风街道")],
];

const DISTRICTS_GEOJSON: &str = include_str!("../../../../data/xuzhou/districts.geojson");
const STREETS_CSV: &str = include_str!("../../../../data/xuzhou/streets.csv");
const CLASSES_CSV: &str = include_str!("../../../../data/classification-gb47678.5-2026.csv");

/// Seeds of the independent random streams, one per layer.
mod stream {
    pub const LAYOUT: u64 = 1;
    pub const AREAS: u64 = 2;
    pub const ROADS: u64 = 3;
    pub const PLACES: u64 = 4;
    pub const PEOPLE: u64 = 5;
    pub const COMPONENTS: u64 = 6;
    pub const JITTER: u64 = 7;
    pub const ORG: u64 = 8;
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn bad(msg: String) -> GeoError {
    // GeoError has no variant for bad parameters or bad embedded data; this is the nearest.
    GeoError::GeoJson(msg)
}

/// A generated city: every layer in [`GeneratedCity::map`] except the components, which are
/// too many to hold (a million at scale 1) and come from [`GeneratedCity::components`].
pub struct GeneratedCity {
    /// Regions (districts, streets, communities, grids; each level sorted by code), areas,
    /// kiosks, roads, addresses, departments and users. `components` is left empty.
    pub map: CityMap,
    lattice: Lattice,
    /// Per grid, in code order: what its components need.
    grids: Vec<GridComponents>,
    classes: Vec<(ClassCode, String)>,
    /// Cumulative class weights, for drawing a class.
    cumulative: Vec<f64>,
    /// Per district, per class: index into `map.departments`.
    dept_of: Vec<Vec<usize>>,
    contractors: Vec<String>,
    seed: u64,
    total: usize,
}

struct GridComponents {
    code: RegionCode,
    cell: u32,
    district: usize,
    contractor: usize,
    count: u32,
}

impl GeneratedCity {
    /// Components are produced lazily, deterministic, in id order per grid; ~50 per grid at
    /// scale 1 (~1,000,000). Serials count per (district, class) in grid order, so ids are
    /// unique city-wide.
    pub fn components(&self) -> impl Iterator<Item = Component> + '_ {
        let mut serials = vec![0u32; DISTRICTS.len() * self.classes.len()];
        self.grids.iter().enumerate().flat_map(move |(g, _)| self.grid_components(g, &mut serials))
    }

    /// The exact number of components [`GeneratedCity::components`] yields.
    pub fn component_count(&self) -> usize {
        self.total
    }

    /// Draws the classes of a grid's components, sorted so ids come out in order. Kept apart
    /// so [`generate`] can count serials with exactly the draws the iterator makes.
    fn grid_classes(&self, g: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let mut classes: Vec<usize> = (0..self.grids[g].count)
            .map(|_| {
                let x = rng.gen::<f64>() * total;
                self.cumulative.partition_point(|&c| c <= x).min(self.classes.len() - 1)
            })
            .collect();
        classes.sort_unstable();
        classes
    }

    fn grid_components(&self, g: usize, serials: &mut [u32]) -> Vec<Component> {
        let grid = &self.grids[g];
        let mut rng = rng_for(self.seed ^ lattice::mix(g as u64), stream::COMPONENTS);
        let classes = self.grid_classes(g, &mut rng);
        let district = RegionCode::parse(DISTRICTS[grid.district].code).ok();
        let mut out = Vec::with_capacity(classes.len());
        for class in classes {
            let serial = &mut serials[grid.district * self.classes.len() + class];
            *serial += 1;
            let (code, name) = &self.classes[class];
            let Some(id) = district.as_ref().and_then(|d| ComponentId::new(d, code, *serial).ok()) else {
                continue;
            };
            let dept = &self.map.departments[self.dept_of[grid.district][class]];
            let Some(credit) = dept.credit_code.clone() else { continue };
            let p = self.lattice.point_in(grid.cell, rng.gen_range(0.04..0.96), rng.gen_range(0.04..0.96));
            let state = match rng.gen_range(0..1000) {
                0..=904 => ComponentState::Intact,
                905..=964 => ComponentState::Damaged,
                965..=979 => ComponentState::Lost,
                980..=991 => ComponentState::Abandoned,
                _ => ComponentState::Removed,
            };
            let year: i16 = rng.gen_range(2015..=2025);
            let start = jiff::civil::date(year, rng.gen_range(1..=12), rng.gen_range(1..=28));
            let change_date = (state != ComponentState::Intact && year < 2025).then(|| {
                jiff::civil::date(rng.gen_range(year + 1..=2025), rng.gen_range(1..=12), rng.gen_range(1..=28))
            });
            let major = &code.as_str()[..2];
            let owner = rng.gen_bool(0.35).then(|| dept.name.clone());
            // Cleaning and greening are contracted out street by street; the rest is kept up by
            // the competent department itself.
            let maintainer = if matches!(major, "03" | "04") && rng.gen_bool(0.6) {
                Some(self.contractors[grid.contractor].clone())
            } else {
                rng.gen_bool(0.2).then(|| dept.name.clone())
            };
            let data_source = Some(if rng.gen_bool(0.9) { "2025年部件普查" } else { "日常巡查更新" }.to_owned());
            out.push(Component {
                id,
                legacy_id: None,
                name: name.clone(),
                dept_credit_code: credit,
                dept_name: dept.name.clone(),
                grid_code: grid.code.clone(),
                state,
                start_date: start,
                owner,
                maintainer,
                change_date,
                data_source,
                note: None,
                geometry: Geometry::Point(Point::from(p)),
            });
        }
        out
    }
}

/// Region metadata for one district, street or community.
struct Region {
    code: String,
    name: String,
    parent: usize,
    class: AreaClass,
}

/// The grids and the region tree, without polygons: what [`generate`] and [`generate_grids`]
/// share.
struct Layout {
    lattice: Lattice,
    /// Per lattice cell: index of its grid in `grids`, or `NONE`.
    grid_at: Vec<u32>,
    /// In code order.
    grids: Vec<Grid>,
    districts: Vec<Region>,
    streets: Vec<Region>,
    communities: Vec<Region>,
    /// The cell holding 117.18 E, 34.26 N (in 泉山区): the centre landmarks and real road names
    /// are placed from.
    reference_cell: u32,
}

#[derive(Debug, Clone)]
struct Grid {
    cell: u32,
    community: usize,
    seq: u32,
    class: AreaClass,
}

impl Layout {
    fn grid_code(&self, g: &Grid) -> String {
        format!("{}{:03}", self.communities[g.community].code, g.seq)
    }
    fn street_of(&self, g: &Grid) -> usize {
        self.communities[g.community].parent
    }
    fn district_of(&self, g: &Grid) -> usize {
        self.streets[self.street_of(g)].parent
    }
}

/// Real district boundaries, WGS-84: per district, polygons of rings of (lon, lat).
type Rings = Vec<Vec<Vec<(f64, f64)>>>;

fn district_shapes() -> Result<Vec<Rings>, GeoError> {
    let doc: serde_json::Value =
        serde_json::from_str(DISTRICTS_GEOJSON).map_err(|e| bad(format!("districts.geojson: {e}")))?;
    let features = doc["features"].as_array().ok_or_else(|| bad("districts.geojson: no features".into()))?;
    let mut out = Vec::new();
    for d in DISTRICTS.iter().filter(|d| d.real) {
        let f = features
            .iter()
            .find(|f| f["properties"]["code"].as_str() == Some(d.code))
            .ok_or_else(|| bad(format!("districts.geojson: no district {}", d.code)))?;
        let geom = &f["geometry"];
        let coords = &geom["coordinates"];
        let polys: Vec<&serde_json::Value> = match geom["type"].as_str() {
            Some("MultiPolygon") => coords.as_array().map(|a| a.iter().collect()).unwrap_or_default(),
            _ => vec![coords],
        };
        let mut rings_out = Vec::new();
        for poly in polys {
            let mut rings = Vec::new();
            for ring in poly.as_array().into_iter().flatten() {
                let pts: Vec<(f64, f64)> = ring
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| Some(gcj02_to_wgs84(p[0].as_f64()?, p[1].as_f64()?)))
                    .collect();
                rings.push(pts);
            }
            rings_out.push(rings);
        }
        out.push(rings_out);
    }
    Ok(out)
}

/// Real streets per district (indexes of [`DISTRICTS`]): (3-digit code, name), 街道 first,
/// then towns (镇), then the management units.
fn real_streets() -> Result<Vec<Vec<(String, String)>>, GeoError> {
    let mut out = vec![Vec::new(); DISTRICTS.len()];
    let mut rdr = csv::Reader::from_reader(STREETS_CSV.as_bytes());
    for rec in rdr.records() {
        let rec = rec.map_err(|e| bad(format!("streets.csv: {e}")))?;
        if let Some(i) = DISTRICTS.iter().position(|d| Some(d.code) == rec.get(0)) {
            out[i].push((rec.get(2).unwrap_or_default().to_owned(), rec.get(3).unwrap_or_default().to_owned()));
        }
    }
    for (i, zone) in ZONE_STREETS.iter().enumerate() {
        out[5 + i] = zone.iter().map(|(c, n)| ((*c).to_owned(), (*n).to_owned())).collect();
    }
    for list in &mut out {
        list.sort_by_key(|(code, _)| (code.starts_with('4'), code.starts_with('1'), code.clone()));
    }
    Ok(out)
}

/// Metres per degree at the centre's latitude.
fn metres_per_degree() -> (f64, f64) {
    (111_320.0 * CENTRE.1.to_radians().cos(), 110_940.0)
}

/// For each lattice cell whose centre lies in a real district, that district's index (even-odd
/// rule, evaluated row by row from the crossings of the row's latitude with the boundary, which
/// is fast for thousands of boundary vertices).
fn classify(l: &Lattice, shapes: &[Rings]) -> Vec<u8> {
    let mut out = vec![u8::MAX; l.len()];
    for r in 0..l.rows {
        let (_, y) = l.nominal_centre(0, r);
        for (d, shape) in shapes.iter().enumerate() {
            let mut xs = Vec::new();
            for ring in shape.iter().flatten() {
                for w in ring.windows(2) {
                    let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                    if (y0 > y) != (y1 > y) {
                        xs.push(x0 + (y - y0) * (x1 - x0) / (y1 - y0));
                    }
                }
            }
            xs.sort_by(f64::total_cmp);
            for c in 0..l.cols {
                let (x, _) = l.nominal_centre(c, r);
                let i = l.cell(c, r) as usize;
                if out[i] == u8::MAX && xs.partition_point(|&v| v < x) % 2 == 1 {
                    out[i] = d as u8;
                }
            }
        }
    }
    out
}

/// Splits `total` into parts proportional to `sizes` (largest remainder), each at least `min`
/// where the size allows.
fn apportion(sizes: &[usize], total: usize, min: usize) -> Vec<usize> {
    let sum: usize = sizes.iter().sum::<usize>().max(1);
    let mut out: Vec<usize> = sizes.iter().map(|&s| (s * total / sum).max(min.min(s))).collect();
    let mut rest: Vec<(usize, usize)> = sizes.iter().enumerate().map(|(i, &s)| ((s * total) % sum, i)).collect();
    rest.sort_by(|a, b| b.cmp(a));
    let mut given: usize = out.iter().sum();
    for &(_, i) in rest.iter().cycle().take(sizes.len() * 4) {
        if given >= total {
            break;
        }
        if out[i] < sizes[i] {
            out[i] += 1;
            given += 1;
        }
    }
    out
}

fn check_params(params: &CityParams) -> Result<(), GeoError> {
    if params.scale == 0 || params.scale > MAX_SCALE {
        return Err(bad(format!("scale {} is outside 1..={MAX_SCALE}", params.scale)));
    }
    Ok(())
}

fn layout(params: &CityParams) -> Result<Layout, GeoError> {
    check_params(params)?;
    let scale = params.scale as usize;
    let mut rng = rng_for(params.seed, stream::LAYOUT);
    let shapes = district_shapes()?;
    let (mx, my) = metres_per_degree();
    let (mut west, mut south, mut east, mut north) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for &(x, y) in shapes.iter().flatten().flatten().flatten() {
        west = west.min(x);
        east = east.max(x);
        south = south.min(y);
        north = north.max(y);
    }
    let (dlon, dlat) = (CELL_M / mx, CELL_M / my);
    let lattice = Lattice {
        west: west - 2.0 * dlon,
        north: north + 2.0 * dlat,
        dlon,
        dlat,
        cols: ((east - west) / dlon) as u32 + 4,
        rows: ((north - south) / dlat) as u32 + 4,
        jitter_key: lattice::mix(params.seed ^ stream::JITTER),
    };
    let l = &lattice;
    let inside = classify(l, &shapes);
    let target = GRIDS * scale;
    let cell_at = |(x, y): (f64, f64)| -> u32 {
        let c = ((x - l.west) / l.dlon).clamp(0.0, f64::from(l.cols - 1)) as u32;
        let r = ((l.north - y) / l.dlat).clamp(0.0, f64::from(l.rows - 1)) as u32;
        l.cell(c, r)
    };
    let dist_m = |cell: u32, (x0, y0): (f64, f64)| -> f64 {
        let (c, r) = l.cr(cell);
        let (x, y) = l.nominal_centre(c, r);
        ((x - x0) * mx).hypot((y - y0) * my)
    };

    // The satellite core of 贾汪 first, then the main core, nearest first under a lobed metric.
    let mut district_of = vec![u8::MAX; l.len()];
    let mut chosen: Vec<u32> = Vec::with_capacity(target);
    let sat_target = (target as f64 * JIAWANG_SHARE / (scale as f64).sqrt()) as usize;
    let mut sat: Vec<(f64, u32)> = (0..l.len() as u32)
        .filter(|&c| inside[c as usize] == JIAWANG as u8)
        .map(|c| (dist_m(c, JIAWANG_CENTRE), c))
        .collect();
    sat.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for &(_, c) in sat.iter().take(sat_target) {
        district_of[c as usize] = JIAWANG as u8;
        chosen.push(c);
    }
    let phase: [f64; 3] = [rng.gen_range(0.0..6.3), rng.gen_range(0.0..6.3), rng.gen_range(0.0..6.3)];
    let mut main: Vec<(f64, u32)> = (0..l.len() as u32)
        .filter(|&c| inside[c as usize] != u8::MAX && district_of[c as usize] == u8::MAX)
        .map(|c| {
            let (cc, rr) = l.cr(c);
            let (x, y) = l.nominal_centre(cc, rr);
            let (dx, dy) = ((x - CENTRE.0) * mx, (y - CENTRE.1) * my);
            let t = dy.atan2(dx);
            let lobes = 1.0 + 0.14 * (2.0 * t + phase[0]).sin() + 0.09 * (3.0 * t + phase[1]).sin()
                - 0.06 * (5.0 * t + phase[2]).sin();
            (dx.hypot(dy) / lobes, c)
        })
        .collect();
    let need = target.saturating_sub(chosen.len());
    if main.len() < need {
        return Err(bad(format!("scale {scale} needs more cells than the urban districts hold")));
    }
    // Only the nearest `need` cells matter: select them, then sort just those.
    let by_distance = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if need < main.len() {
        main.select_nth_unstable_by(need, by_distance);
        main.truncate(need);
    }
    main.sort_by(by_distance);
    // Area classes by distance rank: the inner fifth A, the next 45 % B, the rest C.
    let mut class = vec![AreaClass::C; l.len()];
    for (i, &(_, c)) in main.iter().take(need).enumerate() {
        district_of[c as usize] = inside[c as usize];
        chosen.push(c);
        class[c as usize] = if i * 5 < need {
            AreaClass::A
        } else if i * 20 < need * 13 {
            AreaClass::B
        } else {
            AreaClass::C
        };
    }
    for (i, &(_, c)) in sat.iter().take(sat_target).enumerate() {
        class[c as usize] = if i * 10 < sat_target {
            AreaClass::A
        } else if i * 2 < sat_target {
            AreaClass::B
        } else {
            AreaClass::C
        };
    }
    fill_holes(l, &mut district_of, &mut chosen);
    chosen.sort_unstable();

    // The reference point must stay in 泉山区, whatever the zones take.
    let reference_cell = cell_at(CENTRE);
    if district_of[reference_cell as usize] != QUANSHAN as u8 {
        return Err(bad("the reference point 117.18 E, 34.26 N is not in 泉山区".into()));
    }
    let zone_target = (target as f64 * ZONE_SHARE / (scale as f64).sqrt()) as usize;
    for (z, &seed_point) in ZONE_SEEDS.iter().enumerate() {
        let zone = (5 + z) as u8;
        let start = chosen
            .iter()
            .copied()
            .filter(|&c| district_of[c as usize] < 5)
            .min_by(|&a, &b| dist_m(a, seed_point).total_cmp(&dist_m(b, seed_point)).then(a.cmp(&b)));
        let Some(start) = start else { continue };
        grow(l, &mut district_of, start, zone, zone_target, reference_cell);
    }

    // Streets, communities and grids, district by district in code order.
    let streets_real = real_streets()?;
    let mut names = Names::new();
    for list in &streets_real {
        for (_, n) in list {
            names.reserve(n);
        }
    }
    let mut per_district: Vec<Vec<u32>> = vec![Vec::new(); DISTRICTS.len()];
    for &c in &chosen {
        per_district[district_of[c as usize] as usize].push(c);
    }
    let sizes: Vec<usize> = per_district.iter().map(Vec::len).collect();
    let street_counts = apportion(&sizes, STREETS * scale, 2);
    let mut local = vec![NONE; l.len()];
    let mut districts = Vec::new();
    let mut streets: Vec<Region> = Vec::new();
    let mut communities: Vec<Region> = Vec::new();
    let mut grids: Vec<Grid> = Vec::with_capacity(chosen.len());
    let per_community = chosen.len() as f64 / (COMMUNITIES * scale) as f64;
    let mode = |cells: &[u32]| -> AreaClass {
        let mut n = [0usize; 3];
        for &c in cells {
            n[class[c as usize] as usize] += 1;
        }
        let best = (0..3).max_by_key(|&i| (n[i], 3 - i)).unwrap_or(2);
        AreaClass::ALL[best]
    };
    for (d, cells) in per_district.iter().enumerate() {
        if cells.is_empty() {
            continue;
        }
        let di = districts.len();
        districts.push(Region {
            code: DISTRICTS[d].code.to_owned(),
            name: DISTRICTS[d].name.to_owned(),
            parent: 0,
            class: mode(cells),
        });
        let k = street_counts[d].clamp(1, 999);
        let parts = lattice::partition(l, cells, k, rng.gen_range(0..cells.len()), &mut local);
        let mut street_cells: Vec<Vec<u32>> = vec![Vec::new(); k];
        for (i, &p) in parts.iter().enumerate() {
            street_cells[p as usize].push(cells[i]);
        }
        street_cells.retain(|s| !s.is_empty());
        // Real streets in reading order, then free codes with made-up names.
        let real = &streets_real[d];
        let used: Vec<&str> = real.iter().map(|(c, _)| c.as_str()).collect();
        let mut free = (1..=999u32).map(|n| format!("{n:03}")).filter(|c| !used.contains(&c.as_str()));
        let mut these: Vec<(String, String, Vec<u32>)> = Vec::new();
        for (i, sc) in street_cells.into_iter().enumerate() {
            let (code, name) = match real.get(i) {
                Some((c, n)) => (c.clone(), n.clone()),
                None => {
                    let code = free
                        .next()
                        .ok_or_else(|| bad(format!("district {} has no street codes left", DISTRICTS[d].code)))?;
                    (code, names.unique(&mut rng, |w| format!("{w}街道")))
                }
            };
            these.push((code, name, sc));
        }
        these.sort_by(|a, b| a.0.cmp(&b.0));
        for (scode, sname, sc) in these {
            let si = streets.len();
            let street_code = format!("{}{scode}", DISTRICTS[d].code);
            streets.push(Region { code: street_code.clone(), name: sname, parent: di, class: mode(&sc) });
            let k = ((sc.len() as f64 / per_community).round() as usize).max(sc.len().div_ceil(999)).clamp(1, 999);
            let parts = lattice::partition(l, &sc, k, rng.gen_range(0..sc.len()), &mut local);
            let mut comm_cells: Vec<Vec<u32>> = vec![Vec::new(); k];
            for (i, &p) in parts.iter().enumerate() {
                comm_cells[p as usize].push(sc[i]);
            }
            comm_cells.retain(|s| !s.is_empty());
            for (ci, mut cc) in comm_cells.into_iter().enumerate() {
                let community = communities.len();
                let suffix = ["社区", "社区", "社区", "社区", "新村社区", "东社区", "西社区", "南社区", "北社区"];
                let suffix = names::pick(&mut rng, &suffix);
                let name = names.unique(&mut rng, |w| format!("{w}{suffix}"));
                communities.push(Region {
                    code: format!("{street_code}{:03}", ci + 1),
                    name,
                    parent: si,
                    class: mode(&cc),
                });
                // Cells are row-major, so sorting by index numbers west→east, north→south.
                cc.sort_unstable();
                for (seq, &cell) in cc.iter().enumerate() {
                    grids.push(Grid { cell, community, seq: seq as u32 + 1, class: class[cell as usize] });
                }
            }
        }
    }
    let mut grid_at = vec![NONE; l.len()];
    for (i, g) in grids.iter().enumerate() {
        grid_at[g.cell as usize] = i as u32;
    }
    Ok(Layout { lattice, grid_at, grids, districts, streets, communities, reference_cell })
}

/// Cells enclosed by the city but not chosen (gaps between district boundaries in the
/// source data) join the city, taking a neighbour's district, so the grids have no holes.
fn fill_holes(l: &Lattice, district_of: &mut [u8], chosen: &mut Vec<u32>) {
    let mut outside = vec![false; l.len()];
    let mut stack: Vec<u32> = Vec::new();
    for c in 0..l.cols {
        stack.push(l.cell(c, 0));
        stack.push(l.cell(c, l.rows - 1));
    }
    for r in 0..l.rows {
        stack.push(l.cell(0, r));
        stack.push(l.cell(l.cols - 1, r));
    }
    while let Some(c) = stack.pop() {
        if outside[c as usize] || district_of[c as usize] != u8::MAX {
            continue;
        }
        outside[c as usize] = true;
        stack.extend(l.neighbours(c));
    }
    let mut queue: std::collections::VecDeque<u32> = chosen.iter().copied().collect();
    while let Some(c) = queue.pop_front() {
        for nb in l.neighbours(c) {
            if !outside[nb as usize] && district_of[nb as usize] == u8::MAX {
                district_of[nb as usize] = district_of[c as usize];
                chosen.push(nb);
                queue.push_back(nb);
            }
        }
    }
}

/// Grows a functional zone from `start` over chosen cells of the real districts, nearest
/// first, up to `target` cells, never taking `keep`.
fn grow(l: &Lattice, district_of: &mut [u8], start: u32, zone: u8, target: usize, keep: u32) {
    use std::cmp::Reverse;
    let (sc, sr) = l.cr(start);
    let d2 = |c: u32| {
        let (cc, rr) = l.cr(c);
        let (dc, dr) = (u64::from(cc.abs_diff(sc)), u64::from(rr.abs_diff(sr)));
        dc * dc + dr * dr
    };
    let mut heap = std::collections::BinaryHeap::new();
    heap.push(Reverse((0u64, start)));
    let mut taken = 0;
    while let Some(Reverse((_, c))) = heap.pop() {
        if taken >= target {
            break;
        }
        if district_of[c as usize] >= 5 || c == keep {
            continue;
        }
        district_of[c as usize] = zone;
        taken += 1;
        for nb in l.neighbours(c) {
            if district_of[nb as usize] < 5 && nb != keep {
                heap.push(Reverse((d2(nb), nb)));
            }
        }
    }
}

fn grid_feature(layout: &Layout, g: &Grid) -> Result<RegionFeature, GeoError> {
    let code = layout.grid_code(g);
    let community = &layout.communities[g.community];
    Ok(RegionFeature {
        code: RegionCode::parse(&code).map_err(|e| bad(e.to_string()))?,
        name: format!("{}{:03}网格", community.name, g.seq),
        area_class: g.class,
        polygon: MultiPolygon(vec![layout.lattice.polygon(g.cell)]),
    })
}

/// Only the unit grids (level Grid RegionFeatures), the same polygons and codes [`generate`]
/// makes, but cheap: for `citygrid bench geo` at scale 10.
pub fn generate_grids(params: &CityParams) -> Result<Vec<RegionFeature>, GeoError> {
    let layout = layout(params)?;
    layout.grids.iter().map(|g| grid_feature(&layout, g)).collect()
}

/// Builds the whole city. See the module documentation for what it contains.
pub fn generate(params: &CityParams) -> Result<GeneratedCity, GeoError> {
    let layout = layout(params)?;
    let l = &layout.lattice;
    let scale = params.scale as usize;
    let seed = params.seed;
    let mut map = CityMap::default();

    // Region outlines, traced from the grids.
    let cells: Vec<u32> = layout.grids.iter().map(|g| g.cell).collect();
    let mut labels = vec![NONE; l.len()];
    let mut level = |label: &dyn Fn(&Grid) -> usize, n: usize| -> Vec<MultiPolygon<f64>> {
        for g in &layout.grids {
            labels[g.cell as usize] = label(g) as u32;
        }
        lattice::trace(l, &labels, &cells, n)
    };
    let district_polys = level(&|g| layout.district_of(g), layout.districts.len());
    let street_polys = level(&|g| layout.street_of(g), layout.streets.len());
    let community_polys = level(&|g| g.community, layout.communities.len());
    for (regions, polys) in [
        (&layout.districts, district_polys),
        (&layout.streets, street_polys.clone()),
        (&layout.communities, community_polys),
    ] {
        for (r, polygon) in regions.iter().zip(polys) {
            map.regions.push(RegionFeature {
                code: RegionCode::parse(&r.code).map_err(|e| bad(e.to_string()))?,
                name: r.name.clone(),
                area_class: r.class,
                polygon,
            });
        }
    }
    for g in &layout.grids {
        map.regions.push(grid_feature(&layout, g)?);
    }

    // Organisation.
    let depts = org::departments(lattice::mix(seed ^ stream::ORG))?;
    let dept_index: HashMap<&str, usize> = depts.iter().enumerate().map(|(i, d)| (d.code.as_str(), i)).collect();
    map.departments = depts
        .iter()
        .map(|d| DepartmentRow {
            code: d.code.clone(),
            name: d.name.clone(),
            parent: d.parent.clone(),
            credit_code: Some(d.credit.clone()),
        })
        .collect();

    let mut rng = rng_for(seed, stream::AREAS);
    let district_abbr = |di: usize| -> &'static str {
        DISTRICTS.iter().find(|d| d.code == layout.districts[di].code).map_or("", |d| d.abbr)
    };

    // Patrol districts (巡查片区) per district, and the kiosks (岗亭) in them.
    let mut per_district: Vec<Vec<u32>> = vec![Vec::new(); layout.districts.len()];
    for g in &layout.grids {
        per_district[layout.district_of(g)].push(g.cell);
    }
    let sizes: Vec<usize> = per_district.iter().map(Vec::len).collect();
    let pd_counts = apportion(&sizes, PATROL_DISTRICTS * scale, 1);
    let mut local = vec![NONE; l.len()];
    let mut pd_cells: Vec<(usize, Vec<u32>)> = Vec::new();
    for (di, cells) in per_district.iter().enumerate() {
        let k = pd_counts[di].max(1);
        let parts = lattice::partition(l, cells, k, rng.gen_range(0..cells.len().max(1)), &mut local);
        let mut groups = vec![Vec::new(); k];
        for (i, &p) in parts.iter().enumerate() {
            groups[p as usize].push(cells[i]);
        }
        pd_cells.extend(groups.into_iter().filter(|g| !g.is_empty()).map(|g| (di, g)));
    }
    let width = (pd_cells.len()).to_string().len().max(2);
    let pd_polys = area_polys(l, &mut labels, &pd_cells.iter().map(|(_, c)| c.as_slice()).collect::<Vec<_>>());
    let mut pd_number = vec![0usize; layout.districts.len()];
    let mut pd_codes = Vec::new();
    for (i, ((di, _), polygon)) in pd_cells.iter().zip(pd_polys).enumerate() {
        pd_number[*di] += 1;
        let code = format!("PD{:0width$}", i + 1);
        pd_codes.push(code.clone());
        map.areas.push(Area {
            layer: AreaLayer::PatrolDistrict,
            code,
            name: format!("{}第{}巡查片区", layout.districts[*di].name, names::numeral(pd_number[*di])),
            owner: format!("CG-{}", district_abbr(*di)),
            polygon,
        });
    }
    let kiosk_count = (KIOSKS * scale).min(pd_cells.len());
    let mut with_kiosk: Vec<usize> = (0..pd_cells.len()).collect();
    for i in 0..with_kiosk.len() {
        let j = rng.gen_range(i..with_kiosk.len());
        with_kiosk.swap(i, j);
    }
    with_kiosk.truncate(kiosk_count);
    with_kiosk.sort_unstable();
    let kwidth = kiosk_count.to_string().len().max(2);
    let mut kiosk_names = Names::new();
    for (k, &p) in with_kiosk.iter().enumerate() {
        let cells = &pd_cells[p].1;
        let (sc, sr, n) = cells.iter().fold((0u64, 0u64, 0u64), |(a, b, n), &c| {
            let (cc, rr) = l.cr(c);
            (a + u64::from(cc), b + u64::from(rr), n + 1)
        });
        let (mc, mr) = (sc / n.max(1), sr / n.max(1));
        let cell = cells.iter().copied().min_by_key(|&c| {
            let (cc, rr) = l.cr(c);
            let (dc, dr) = (u64::from(cc).abs_diff(mc), u64::from(rr).abs_diff(mr));
            (dc * dc + dr * dr, c)
        });
        let Some(cell) = cell else { continue };
        let p0 = l.centre(cell);
        let street = &layout.streets[layout.street_of(&layout.grids[layout.grid_at[cell as usize] as usize])];
        let stem = street.name.trim_end_matches("街道").trim_end_matches('镇').to_owned();
        let name = kiosk_names.unique_first(&mut rng, Some(&stem), |w| format!("{w}岗亭"));
        map.kiosks.push(Kiosk {
            code: format!("K{:0kwidth$}", k + 1),
            name,
            patrol_district: pd_codes[p].clone(),
            lon: p0.x,
            lat: p0.y,
        });
    }

    // Collectors (监督员): a few per street, each over whole grids of it.
    let mut people = rng_for(seed, stream::PEOPLE);
    let mut per_street: Vec<Vec<u32>> = vec![Vec::new(); layout.streets.len()];
    for g in &layout.grids {
        per_street[layout.street_of(g)].push(g.cell);
    }
    let ssizes: Vec<usize> = per_street.iter().map(Vec::len).collect();
    let col_counts = apportion(&ssizes, COLLECTORS * scale, 1);
    let mut col_cells: Vec<(usize, Vec<u32>)> = Vec::new();
    for (si, cells) in per_street.iter().enumerate() {
        let k = col_counts[si].max(1);
        let parts = lattice::partition(l, cells, k, people.gen_range(0..cells.len().max(1)), &mut local);
        let mut groups = vec![Vec::new(); k];
        for (i, &p) in parts.iter().enumerate() {
            groups[p as usize].push(cells[i]);
        }
        col_cells.extend(groups.into_iter().filter(|g| !g.is_empty()).map(|g| (si, g)));
    }
    let cwidth = col_cells.len().to_string().len().max(3);
    let col_polys = area_polys(l, &mut labels, &col_cells.iter().map(|(_, c)| c.as_slice()).collect::<Vec<_>>());
    for (i, ((si, _), polygon)) in col_cells.iter().zip(col_polys).enumerate() {
        let username = format!("collector{:0cwidth$}", i + 1);
        let display = names::person(&mut people);
        let street = &layout.streets[*si];
        map.areas.push(Area {
            layer: AreaLayer::CollectorArea,
            code: format!("CA{:0cwidth$}", i + 1),
            name: format!("{}监督员责任区（{display}）", street.name),
            owner: username.clone(),
            polygon,
        });
        map.users.push(UserRow {
            username,
            display_name: display,
            role: "collector".to_owned(),
            scope: format!("region:{}", street.code),
        });
    }

    // Cleaning contractors (保洁公司): runs of neighbouring streets each.
    let n_contractors = (CONTRACTORS * scale).min(layout.streets.len()).max(1);
    let mut company_names = Names::new();
    let forms =
        ["徐州市{w}环境服务有限公司", "江苏{w}环境科技有限公司", "徐州{w}物业管理有限公司", "徐州{w}保洁服务有限公司"];
    let contractors: Vec<String> = (0..n_contractors)
        .map(|i| {
            let form = forms[i % forms.len()];
            company_names.unique(&mut people, |w| form.replace("{w}", w))
        })
        .collect();
    let contractor_of_street: Vec<usize> =
        (0..layout.streets.len()).map(|s| s * n_contractors / layout.streets.len().max(1)).collect();
    let swidth = layout.streets.len().to_string().len().max(3);
    for (si, (street, polygon)) in layout.streets.iter().zip(&street_polys).enumerate() {
        map.areas.push(Area {
            layer: AreaLayer::ContractorArea,
            code: format!("BJ{:0swidth$}", si + 1),
            name: format!("{}保洁责任区", street.name),
            owner: contractors[contractor_of_street[si]].clone(),
            polygon: polygon.clone(),
        });
    }

    // Jurisdictions (管辖区): each district's city-management, sanitation, municipal and
    // landscaping sub-units over their district.
    for (di, region) in map.regions.clone().iter().take(layout.districts.len()).enumerate() {
        for service in ["CG", "HW", "SZ", "YL"] {
            let owner = format!("{service}-{}", district_abbr(di));
            let name = dept_index.get(owner.as_str()).map_or_else(|| owner.clone(), |&i| depts[i].name.clone());
            map.areas.push(Area {
                layer: AreaLayer::Jurisdiction,
                code: format!("JD-{owner}"),
                name: format!("{name}管辖区"),
                owner,
                polygon: region.polygon.clone(),
            });
        }
    }

    // Roads and the address database.
    places::roads_and_addresses(
        &layout,
        &mut map,
        &mut rng_for(seed, stream::ROADS),
        &mut rng_for(seed, stream::PLACES),
    )?;

    // Components: counts per grid now, the components themselves on demand.
    let mut classes = Vec::new();
    let mut cumulative = Vec::new();
    let mut acc = 0.0;
    let mut rdr = csv::Reader::from_reader(CLASSES_CSV.as_bytes());
    for rec in rdr.records() {
        let rec = rec.map_err(|e| bad(format!("classification table: {e}")))?;
        if rec.get(0) != Some("component") {
            continue;
        }
        let code = rec.get(3).unwrap_or_default();
        let class = ClassCode::parse(code).map_err(|e| bad(e.to_string()))?;
        acc += org::class_weight(code);
        cumulative.push(acc);
        classes.push((class, rec.get(4).unwrap_or_default().to_owned()));
    }
    let mut dept_of = Vec::new();
    for d in &DISTRICTS {
        let mut row = Vec::new();
        for (class, _) in &classes {
            let code = org::class_department(class.as_str());
            let sub = format!("{code}-{}", d.abbr);
            let key = if org::per_district(code) { sub.as_str() } else { code };
            row.push(dept_index.get(key).copied().ok_or_else(|| bad(format!("no department {key}")))?);
        }
        dept_of.push(row);
    }
    let mut grids = Vec::with_capacity(layout.grids.len());
    let mut total = 0usize;
    for (i, g) in layout.grids.iter().enumerate() {
        let base = match g.class {
            AreaClass::A => 1.4,
            AreaClass::B => 1.0,
            AreaClass::C => 0.7,
        };
        // A hash, not a stream: each grid's count is independent of the others.
        let h = lattice::mix(seed ^ stream::COMPONENTS.rotate_left(32) ^ i as u64);
        let jitter = 0.6 + 0.8 * ((h >> 11) as f64 / (1u64 << 53) as f64);
        let count = (COMPONENTS_PER_GRID * base * jitter / 1.02).round() as u32;
        total += count as usize;
        let di = layout.district_of(g);
        let district = DISTRICTS.iter().position(|d| d.code == layout.districts[di].code).unwrap_or(0);
        grids.push(GridComponents {
            code: RegionCode::parse(&layout.grid_code(g)).map_err(|e| bad(e.to_string()))?,
            cell: g.cell,
            district,
            contractor: contractor_of_street[layout.street_of(g)],
            count,
        });
    }
    let city =
        GeneratedCity { map, lattice: layout.lattice, grids, classes, cumulative, dept_of, contractors, seed, total };
    // Serials are 6 digits per (district, class). Only a district with over a million
    // components can overflow one; count those with the iterator's own draws.
    let mut per_district = vec![0usize; DISTRICTS.len()];
    for g in &city.grids {
        per_district[g.district] += g.count as usize;
    }
    if per_district.iter().all(|&n| n <= 999_999) {
        return Ok(city);
    }
    let mut tally = vec![0u32; DISTRICTS.len() * city.classes.len()];
    for g in 0..city.grids.len() {
        let mut rng = rng_for(seed ^ lattice::mix(g as u64), stream::COMPONENTS);
        for class in city.grid_classes(g, &mut rng) {
            let t = &mut tally[city.grids[g].district * city.classes.len() + class];
            *t += 1;
            if *t > 999_999 {
                return Err(bad(format!("scale {scale} overflows the 6-digit component serial")));
            }
        }
    }
    Ok(city)
}

/// Outlines of groups of cells (each group one area).
fn area_polys(l: &Lattice, labels: &mut [u32], groups: &[&[u32]]) -> Vec<MultiPolygon<f64>> {
    labels.fill(NONE);
    let mut cells = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        for &c in *g {
            labels[c as usize] = i as u32;
            cells.push(c);
        }
    }
    lattice::trace(l, labels, &cells, groups.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{GridIndex, GridPolygon};
    use citygrid_core::codes::RegionLevel;
    use geo::{Area as _, BooleanOps, BoundingRect, ChamberlainDuquetteArea, Intersects, Validation};
    use std::collections::HashSet;
    use std::sync::OnceLock;

    const SEED: u64 = 20_260_101;

    fn city() -> &'static GeneratedCity {
        static CITY: OnceLock<GeneratedCity> = OnceLock::new();
        CITY.get_or_init(|| {
            let t = std::time::Instant::now();
            let c = generate(&CityParams { scale: 1, seed: SEED }).unwrap();
            eprintln!("generate(scale 1) took {:?}", t.elapsed());
            c
        })
    }

    fn level(c: &GeneratedCity, level: RegionLevel) -> Vec<&RegionFeature> {
        c.map.regions.iter().filter(|r| r.level() == level).collect()
    }

    fn report(c: &GeneratedCity) -> String {
        let m = &c.map;
        let by_layer = |layer| m.areas.iter().filter(|a| a.layer == layer).count();
        let by_kind = |kind| m.addresses.iter().filter(|a| a.kind == kind).count();
        format!(
            "districts {} streets {} communities {} grids {} patrol {} kiosks {} departments {} users {} \
             collector areas {} contractor areas {} jurisdictions {} roads {} addresses {} (road {} door {} poi {}) \
             components {}",
            level(c, RegionLevel::District).len(),
            level(c, RegionLevel::Street).len(),
            level(c, RegionLevel::Community).len(),
            level(c, RegionLevel::Grid).len(),
            by_layer(AreaLayer::PatrolDistrict),
            m.kiosks.len(),
            m.departments.len(),
            m.users.len(),
            by_layer(AreaLayer::CollectorArea),
            by_layer(AreaLayer::ContractorArea),
            by_layer(AreaLayer::Jurisdiction),
            m.roads.len(),
            m.addresses.len(),
            by_kind(crate::layers::AddressKind::Road),
            by_kind(crate::layers::AddressKind::Door),
            by_kind(crate::layers::AddressKind::Poi),
            c.component_count(),
        )
    }

    #[test]
    fn generate_counts_at_scale_1() {
        let c = city();
        eprintln!("{}", report(c));
        for d in level(c, RegionLevel::District) {
            let grids = level(c, RegionLevel::Grid).iter().filter(|g| d.code.contains(&g.code)).count();
            let streets = level(c, RegionLevel::Street).iter().filter(|g| d.code.contains(&g.code)).count();
            eprintln!("{} {}: {streets} streets, {grids} grids", d.code, d.name);
            assert!(streets >= 2 && grids >= 500, "{} is too small", d.name);
        }
        assert_eq!(level(c, RegionLevel::District).len(), 7);
        assert_eq!(level(c, RegionLevel::Street).len(), 51);
        let communities = level(c, RegionLevel::Community).len();
        assert!((450..=550).contains(&communities), "{communities} communities");
        let grids = level(c, RegionLevel::Grid);
        assert!((17_000..=23_000).contains(&grids.len()), "{} grids", grids.len());
        let km2: f64 = grids.iter().map(|g| g.polygon.chamberlain_duquette_unsigned_area()).sum::<f64>() / 1e6;
        assert!((240.0..=266.0).contains(&km2), "{km2} km²");
        let m = &c.map;
        assert_eq!(m.areas.iter().filter(|a| a.layer == AreaLayer::PatrolDistrict).count(), 64);
        assert_eq!(m.kiosks.len(), 48);
        assert_eq!(m.departments.iter().filter(|d| d.parent.is_none()).count(), 35);
        assert_eq!(m.departments.iter().filter(|d| d.parent.is_some()).count(), 122);
        assert_eq!(m.users.iter().filter(|u| u.role == "collector").count(), 156);
        assert_eq!(m.areas.iter().filter(|a| a.layer == AreaLayer::CollectorArea).count(), 156);
        let contractors: HashSet<&str> =
            m.areas.iter().filter(|a| a.layer == AreaLayer::ContractorArea).map(|a| a.owner.as_str()).collect();
        assert!((12..=20).contains(&contractors.len()));
        assert!((150_000..=250_000).contains(&m.addresses.len()), "{} addresses", m.addresses.len());
        assert!((800_000..=1_200_000).contains(&c.component_count()));
        assert!(m.components.is_empty());
    }

    #[test]
    fn generate_is_deterministic() {
        let a = generate_grids(&CityParams { scale: 1, seed: SEED }).unwrap();
        let b: Vec<RegionFeature> = level(city(), RegionLevel::Grid).into_iter().cloned().collect();
        assert_eq!(a, b, "generate_grids makes generate's grids");
        let again = generate(&CityParams { scale: 1, seed: SEED }).unwrap();
        assert!(again.map == city().map);
        let first: Vec<Component> = city().components().take(2000).collect();
        let second: Vec<Component> = again.components().take(2000).collect();
        assert_eq!(first, second);
    }

    #[test]
    fn generate_codes_are_well_formed_and_unique() {
        let c = city();
        let mut seen = HashSet::new();
        for r in &c.map.regions {
            assert!(seen.insert(r.code.clone()), "duplicate {}", r.code);
            if let Some(parent) = r.code.parent() {
                if r.level() != RegionLevel::District {
                    assert!(seen.contains(&parent), "{} has no parent region", r.code);
                }
            }
            assert!(!r.name.is_empty());
        }
        for d in level(c, RegionLevel::District) {
            assert!(DISTRICTS.iter().any(|s| s.code == d.code.as_str()));
        }
        let streets: HashSet<&str> = level(c, RegionLevel::Street).iter().map(|s| s.name.as_str()).collect();
        assert!(streets.contains("王陵街道") && streets.contains("彭城街道"), "real street names");
        let dept_codes: HashSet<&str> = c.map.departments.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(dept_codes.len(), c.map.departments.len());
        for code in ["HW", "SZ", "JT", "YL", "CG", "ZJ", "SW"] {
            assert!(dept_codes.contains(code), "{code}");
        }
        for d in &c.map.departments {
            assert!(d.credit_code.is_some());
            if let Some(p) = &d.parent {
                assert!(dept_codes.contains(p.as_str()));
            }
        }
        let mut area_codes = HashSet::new();
        for a in &c.map.areas {
            assert!(area_codes.insert((a.layer, a.code.clone())), "duplicate area {}", a.code);
            assert!(a.polygon.is_valid(), "{} {} invalid", a.layer.as_str(), a.code);
        }
        for a in c.map.areas.iter().filter(|a| a.layer == AreaLayer::Jurisdiction) {
            assert!(dept_codes.contains(a.owner.as_str()));
        }
        let users: HashSet<&str> = c.map.users.iter().map(|u| u.username.as_str()).collect();
        assert!(users.contains("collector001"));
        for a in c.map.areas.iter().filter(|a| a.layer == AreaLayer::CollectorArea) {
            assert!(users.contains(a.owner.as_str()));
        }
        for u in &c.map.users {
            let code = u.scope.strip_prefix("region:").unwrap();
            assert!(seen.contains(&RegionCode::parse(code).unwrap()));
        }
        let addresses: HashSet<&str> = c.map.addresses.iter().map(|a| a.code.as_str()).collect();
        assert_eq!(addresses.len(), c.map.addresses.len());
        let roads: HashSet<&str> = c.map.roads.iter().map(|r| r.name.as_str()).collect();
        assert!(roads.contains("淮海东路") || roads.contains("淮海路"), "Xuzhou's main road");
        assert!(roads.contains("中山北路") || roads.contains("中山路"));
        assert!(c.map.roads.iter().any(|r| !r.aliases.is_empty()));
        let mut ids = HashSet::new();
        for comp in c.components().take(20_000) {
            assert!(ids.insert(comp.id.clone()), "duplicate component {}", comp.id);
            assert!(comp.grid_code.as_str().starts_with(comp.id.division()));
        }
    }

    #[test]
    fn generate_regions_are_valid_and_nest() {
        let c = city();
        for r in c.map.regions.iter().filter(|r| r.level() != RegionLevel::Grid) {
            assert!(r.polygon.is_valid(), "{} invalid: {:?}", r.code, r.polygon.validation_errors());
        }
        let index = GridIndex::new(
            level(c, RegionLevel::Grid)
                .into_iter()
                .map(|g| GridPolygon { code: g.code.clone(), polygon: g.polygon.clone() })
                .collect(),
        )
        .unwrap();
        let at = index.locate(CENTRE.0, CENTRE.1).unwrap();
        assert!(at.as_str().starts_with("320311"), "{at}");
        // Kiosks lie in their patrol districts.
        for k in &c.map.kiosks {
            let pd = c.map.areas.iter().find(|a| a.layer == AreaLayer::PatrolDistrict && a.code == k.patrol_district);
            assert!(pd.unwrap().polygon.intersects(&Point::new(k.lon, k.lat)), "{}", k.code);
        }
        // Components lie in their grids.
        for comp in c.components().step_by(3).take(6000) {
            let Geometry::Point(p) = comp.geometry else { panic!("not a point") };
            assert_eq!(index.locate(p.x(), p.y()), Some(&comp.grid_code));
        }
        // A sample of neighbouring grids: no overlaps.
        let grids = index.grids();
        for g in grids.iter().step_by(211) {
            let bbox = g.polygon.bounding_rect().unwrap();
            let (x, y) = (bbox.center().x, bbox.center().y);
            let w = bbox.width();
            for (dx, dy) in [(w, 0.0), (-w, 0.0), (0.0, w), (0.0, -w)] {
                if let Some(n) = index.locate_grid(x + dx, y + dy) {
                    if n.code != g.code {
                        let overlap = g.polygon.intersection(&n.polygon).unsigned_area();
                        assert!(overlap < 1e-12, "{} overlaps {}", g.code, n.code);
                    }
                }
            }
        }
    }

    /// Random points map to the grid whose polygon contains them (brute force over every grid,
    /// lowest code on shared edges), and points outside the city map to none.
    #[test]
    fn lookups_agree_with_brute_force() {
        let grids: Vec<GridPolygon> = level(city(), RegionLevel::Grid)
            .into_iter()
            .map(|g| GridPolygon { code: g.code.clone(), polygon: g.polygon.clone() })
            .collect();
        let index = GridIndex::new(grids.clone()).unwrap();
        let (x0, y0, x1, y1) = index.bbox().unwrap();
        let boxes: Vec<_> = grids.iter().map(|g| g.polygon.bounding_rect().unwrap()).collect();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut inside = 0;
        for _ in 0..400 {
            let (x, y) = (x0 + (x1 - x0) * next(), y0 + (y1 - y0) * next());
            let p = Point::new(x, y);
            let want = grids
                .iter()
                .zip(&boxes)
                .filter(|(_, b)| b.min().x <= x && x <= b.max().x && b.min().y <= y && y <= b.max().y)
                .filter(|(g, _)| g.polygon.intersects(&p))
                .map(|(g, _)| &g.code)
                .min();
            inside += usize::from(want.is_some());
            assert_eq!(index.locate(x, y), want, "({x}, {y})");
        }
        assert!(inside > 50, "the sample should hit the city: {inside}");
        for (x, y) in [(116.0, 34.26), (117.18, 35.5), (x0 - 0.01, y0), (x1 + 1e-3, y1 + 1e-3)] {
            assert_eq!(index.locate(x, y), None, "({x}, {y}) is outside the city");
        }
    }

    #[test]
    fn generate_scale_2_grows() {
        let grids = generate_grids(&CityParams { scale: 2, seed: SEED }).unwrap();
        let one = level(city(), RegionLevel::Grid).len();
        let ratio = grids.len() as f64 / one as f64;
        assert!((1.9..=2.1).contains(&ratio), "{ratio}");
        let streets: HashSet<&str> = grids.iter().map(|g| &g.code.as_str()[..9]).collect();
        assert!((95..=110).contains(&streets.len()), "{} streets", streets.len());
        assert!(generate_grids(&CityParams { scale: 0, seed: SEED }).is_err());
        assert!(generate_grids(&CityParams { scale: MAX_SCALE + 1, seed: SEED }).is_err());
    }

    /// `cargo test --release -p citygrid-geo generate_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn generate_timing() {
        for scale in [1, 10] {
            let t = std::time::Instant::now();
            let grids = generate_grids(&CityParams { scale, seed: SEED }).unwrap();
            eprintln!("scale {scale}: generate_grids {} grids in {:?}", grids.len(), t.elapsed());
            let t = std::time::Instant::now();
            let c = generate(&CityParams { scale, seed: SEED }).unwrap();
            eprintln!("scale {scale}: generate in {:?}: {}", t.elapsed(), report(&c));
            let t = std::time::Instant::now();
            let n = c.components().count();
            assert_eq!(n, c.component_count());
            eprintln!("scale {scale}: {n} components in {:?}", t.elapsed());
        }
    }
}
