//! A small deterministic demo city: part of Xuzhou (徐州市) cut into 100 unit grids.
//!
//! Tests, the `demo` command and a first run need a region tree and grid polygons that are the
//! same every time and small enough to reason about by hand. The layout is a rectangle of
//! 10 × 10 cells in WGS-84, each cell 0.005° of longitude by 0.003° of latitude (about
//! 460 m × 330 m at this latitude):
//!
//! - columns 0–4 are 泉山区 (320311), columns 5–9 are 云龙区 (320303);
//! - in each district rows 0–4 (north) are its first street and rows 5–9 its second:
//!   王陵街道 320311001, 七里沟街道 320311002, 彭城街道 320303001, 子房街道 320303002
//!   (real names and codes, from the Xuzhou street list);
//! - each street's 5 × 5 cells form two communities: the west three columns are community 001
//!   (15 grids), the east two community 002 (10 grids);
//! - every cell is one unit grid, numbered 001… west→east, then north→south inside its
//!   community, as the standard numbers them.
//!
//! The district and street names are real; the community names are made up, and the geometry
//! is a schematic rectangle near the real city centre, not the real boundaries.

use crate::grid::{GridIndex, GridPolygon};
use crate::GeoError;
use citygrid_core::codes::{CodeError, RegionCode, RegionLevel};
use geo::{LineString, MultiPolygon, Polygon};
use serde::{Deserialize, Serialize};

/// Longitude of the west edge of the demo city.
pub const DEMO_WEST: f64 = 117.1625;
/// Latitude of the north edge of the demo city.
pub const DEMO_NORTH: f64 = 34.2755;
/// Width of one cell in degrees of longitude.
pub const DEMO_CELL_LON: f64 = 0.005;
/// Height of one cell in degrees of latitude.
pub const DEMO_CELL_LAT: f64 = 0.003;
/// Cells west to east.
pub const DEMO_COLUMNS: usize = 10;
/// Cells north to south.
pub const DEMO_ROWS: usize = 10;
/// `(min_lon, min_lat, max_lon, max_lat)` of the demo city.
pub const DEMO_BBOX: (f64, f64, f64, f64) = (117.1625, 34.2455, 117.2125, 34.2755);

/// One region of the demo tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoRegion {
    pub code: RegionCode,
    pub name: String,
    pub level: RegionLevel,
    pub parent: Option<RegionCode>,
}

/// The demo city: its region tree and its unit grid polygons.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoCity {
    /// City, districts, streets, communities, then grids; each level sorted by code, so every
    /// parent comes before its children and the list can be inserted in order.
    pub regions: Vec<DemoRegion>,
    /// The 100 unit grids, sorted by code.
    pub grids: Vec<GridPolygon>,
}

impl DemoCity {
    /// The grid index over the demo grids.
    pub fn index(&self) -> Result<GridIndex, GeoError> {
        GridIndex::new(self.grids.clone())
    }
}

const CITY: (&str, &str) = ("320300", "徐州市");

struct DistrictSpec {
    code: &'static str,
    name: &'static str,
    first_column: usize,
    /// (3-digit street number, street name, [community 001 name, community 002 name]);
    /// the first street takes rows 0–4, the second rows 5–9.
    streets: [(&'static str, &'static str, [&'static str; 2]); 2],
}

const DISTRICTS: [DistrictSpec; 2] = [
    DistrictSpec {
        code: "320311",
        name: "泉山区",
        first_column: 0,
        streets: [("001", "王陵街道", ["王陵社区", "泉润社区"]), ("002", "七里沟街道", ["七里沟社区", "杏林社区"])],
    },
    DistrictSpec {
        code: "320303",
        name: "云龙区",
        first_column: 5,
        streets: [("001", "彭城街道", ["彭城社区", "快哉社区"]), ("002", "子房街道", ["子房社区", "云兴社区"])],
    },
];

/// Cells per street side; a street is `STREET_CELLS` × `STREET_CELLS`.
const STREET_CELLS: usize = 5;
/// Community 001 takes local columns `0..SPLIT`, community 002 `SPLIT..STREET_CELLS`.
const SPLIT: usize = 3;

/// The demo city. Same output on every call.
pub fn demo_city() -> DemoCity {
    match build() {
        Ok(city) => city,
        // Every code is assembled from the digit constants above and the unit tests build the
        // city, so this cannot happen at run time; it is a programming error, not bad input.
        Err(e) => unreachable!("demo city codes are constants: {e}"),
    }
}

fn build() -> Result<DemoCity, CodeError> {
    let city = RegionCode::parse(CITY.0)?;
    let mut levels: [Vec<DemoRegion>; 5] = Default::default();
    let mut grids = Vec::with_capacity(DEMO_COLUMNS * DEMO_ROWS);
    levels[0].push(region(city.clone(), CITY.1.to_owned()));

    for d in &DISTRICTS {
        let district = RegionCode::parse(d.code)?;
        levels[1].push(region(district, d.name.to_owned()));
        for (s, (street_no, street_name, communities)) in d.streets.iter().enumerate() {
            let street = RegionCode::parse(&format!("{}{street_no}", d.code))?;
            levels[2].push(region(street.clone(), (*street_name).to_owned()));
            let first_row = s * STREET_CELLS;
            for (c, community_name) in communities.iter().enumerate() {
                let community = RegionCode::parse(&format!("{}{:03}", street.as_str(), c + 1))?;
                levels[3].push(region(community.clone(), (*community_name).to_owned()));
                let columns = if c == 0 { 0..SPLIT } else { SPLIT..STREET_CELLS };
                let mut seq = 0;
                for row in first_row..first_row + STREET_CELLS {
                    for local_col in columns.clone() {
                        seq += 1;
                        let code = RegionCode::parse_grid(&format!("{}{seq:03}", community.as_str()))?;
                        let name = format!("{}{street_name}{community_name}第{seq:03}网格", d.name);
                        levels[4].push(region(code.clone(), name));
                        grids.push(GridPolygon { code, polygon: cell(d.first_column + local_col, row) });
                    }
                }
            }
        }
    }

    for level in &mut levels {
        level.sort_by(|a, b| a.code.cmp(&b.code));
    }
    grids.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(DemoCity { regions: levels.into_iter().flatten().collect(), grids })
}

fn region(code: RegionCode, name: String) -> DemoRegion {
    DemoRegion { level: code.level(), parent: code.parent(), code, name }
}

/// Edge coordinates are computed from the integer column/row only, so neighbouring cells share
/// bit-identical vertices: no slivers or gaps from rounding. The arithmetic is in integer
/// micro-degrees and divided once, which gives the f64 nearest to the decimal value (117.2125,
/// not 117.21249999999999): exports then print the round numbers the layout is defined with.
fn edge_lon(col: usize) -> f64 {
    const WEST_MICRO: i64 = 117_162_500;
    const CELL_MICRO: i64 = 5_000;
    micro_to_deg(WEST_MICRO + CELL_MICRO * col as i64)
}

fn edge_lat(row: usize) -> f64 {
    const NORTH_MICRO: i64 = 34_275_500;
    const CELL_MICRO: i64 = 3_000;
    micro_to_deg(NORTH_MICRO - CELL_MICRO * row as i64)
}

fn micro_to_deg(micro: i64) -> f64 {
    // Exact: every value here is far below 2^53.
    micro as f64 / 1e6
}

/// The cell at `(col, row)` as a counter-clockwise rectangle.
fn cell(col: usize, row: usize) -> MultiPolygon<f64> {
    let (w, e) = (edge_lon(col), edge_lon(col + 1));
    let (n, s) = (edge_lat(row), edge_lat(row + 1));
    let ring = LineString::from(vec![(w, s), (e, s), (e, n), (w, n), (w, s)]);
    MultiPolygon(vec![Polygon::new(ring, vec![])])
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Area, Contains, Intersects, Point};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::OnceLock;

    fn city() -> &'static DemoCity {
        static CITY: OnceLock<DemoCity> = OnceLock::new();
        CITY.get_or_init(demo_city)
    }

    fn index() -> &'static GridIndex {
        static INDEX: OnceLock<GridIndex> = OnceLock::new();
        INDEX.get_or_init(|| city().index().unwrap())
    }

    fn rc(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    #[test]
    fn counts_per_level() {
        let mut counts = BTreeMap::new();
        for r in &city().regions {
            *counts.entry(r.level).or_insert(0) += 1;
        }
        assert_eq!(counts[&RegionLevel::City], 1);
        assert_eq!(counts[&RegionLevel::District], 2);
        assert_eq!(counts[&RegionLevel::Street], 4);
        assert_eq!(counts[&RegionLevel::Community], 8);
        assert_eq!(counts[&RegionLevel::Grid], 100);
        assert_eq!(city().grids.len(), 100);
        assert_eq!(index().len(), 100);
    }

    #[test]
    fn codes_unique_and_nested() {
        let regions = &city().regions;
        let codes: BTreeSet<&RegionCode> = regions.iter().map(|r| &r.code).collect();
        assert_eq!(codes.len(), regions.len());
        let grid_codes: BTreeSet<&RegionCode> = city().grids.iter().map(|g| &g.code).collect();
        assert_eq!(grid_codes.len(), 100);

        let mut seen = BTreeSet::new();
        for r in regions {
            assert_eq!(r.level, r.code.level());
            match &r.parent {
                None => assert_eq!(r.level, RegionLevel::City),
                Some(p) => {
                    // parent before child, and the child's code starts with the parent's
                    assert!(seen.contains(p), "{} listed before its parent {p}", r.code);
                    assert!(p.contains(&r.code));
                    if r.level != RegionLevel::District {
                        assert!(r.code.as_str().starts_with(p.as_str()));
                    }
                }
            }
            seen.insert(r.code.clone());
        }

        // every grid polygon has a grid region, whose parent is a listed community
        let by_code: BTreeMap<&RegionCode, &DemoRegion> = regions.iter().map(|r| (&r.code, r)).collect();
        for g in &city().grids {
            let r = by_code[&g.code];
            assert_eq!(r.level, RegionLevel::Grid);
            let community = r.parent.as_ref().unwrap();
            assert_eq!(by_code[community].level, RegionLevel::Community);
            assert!(g.code.as_str().starts_with(community.as_str()));
        }
    }

    #[test]
    fn communities_have_15_and_10_grids() {
        let mut per_community: BTreeMap<String, usize> = BTreeMap::new();
        for g in &city().grids {
            *per_community.entry(g.code.as_str()[..12].to_owned()).or_insert(0) += 1;
        }
        assert_eq!(per_community.len(), 8);
        for (community, n) in per_community {
            let want = if community.ends_with("001") { 15 } else { 10 };
            assert_eq!(n, want, "{community}");
        }
    }

    #[test]
    fn names() {
        let name = |c: &str| city().regions.iter().find(|r| r.code.as_str() == c).unwrap().name.clone();
        assert_eq!(name("320300"), "徐州市");
        assert_eq!(name("320311"), "泉山区");
        assert_eq!(name("320303"), "云龙区");
        assert_eq!(name("320311001"), "王陵街道");
        assert_eq!(name("320311002"), "七里沟街道");
        assert_eq!(name("320303001"), "彭城街道");
        assert_eq!(name("320303002"), "子房街道");
        assert_eq!(name("320311001001"), "王陵社区");
        assert_eq!(name("320311001001003"), "泉山区王陵街道王陵社区第003网格");
        assert_eq!(name("320303002002010"), "云龙区子房街道云兴社区第010网格");
    }

    #[test]
    fn street_names_match_the_xuzhou_street_list() {
        // The real list ships in the repository's data/ directory.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/xuzhou-streets.csv");
        let csv = std::fs::read_to_string(path).unwrap();
        for r in city().regions.iter().filter(|r| r.level == RegionLevel::Street) {
            let (d, s) = r.code.as_str().split_at(6);
            let found = csv.lines().any(|l| {
                let f: Vec<&str> = l.split(',').collect();
                f.len() >= 4 && f[0] == d && f[2] == s && f[3] == r.name
            });
            assert!(found, "{} {} not in {path}", r.code, r.name);
        }
    }

    #[test]
    fn grid_numbering_is_west_to_east_then_north_to_south() {
        let idx = index();
        let centre = |c: &str| idx.centroid(&rc(c)).unwrap();
        // community 001 of 王陵街道 is 3 columns wide: 001 002 003 / 004 …
        let (g1, g2, g3, g4) = (
            centre("320311001001001"),
            centre("320311001001002"),
            centre("320311001001003"),
            centre("320311001001004"),
        );
        assert!(g1.0 < g2.0 && g2.0 < g3.0 && (g1.1 - g3.1).abs() < 1e-12);
        assert!(g4.1 < g1.1 && (g4.0 - g1.0).abs() < 1e-12);
        // the north-west cell of the city is the first grid of 泉山区王陵街道
        let nw = idx.locate(DEMO_WEST + 0.001, DEMO_NORTH - 0.001).unwrap();
        assert_eq!(nw.as_str(), "320311001001001");
        // the south-east cell is the last grid of 云龙区子房街道's community 002
        let se = idx.locate(DEMO_BBOX.2 - 0.001, DEMO_BBOX.1 + 0.001).unwrap();
        assert_eq!(se.as_str(), "320303002002010");
    }

    #[test]
    fn the_reference_point_is_in_quanshan() {
        // 117.18 E is column 3 (west 泉山区, east community), 34.26 N row 5 (second street).
        let code = index().locate(117.18, 34.26).unwrap();
        assert_eq!(code.at_level(RegionLevel::District).unwrap().as_str(), "320311");
        assert_eq!(code.at_level(RegionLevel::Street).unwrap().as_str(), "320311002");
        assert_eq!(code.as_str(), "320311002002001");
    }

    #[test]
    fn grids_tile_the_rectangle() {
        let total: f64 = city().grids.iter().map(|g| g.polygon.unsigned_area()).sum();
        let want = (DEMO_BBOX.2 - DEMO_BBOX.0) * (DEMO_BBOX.3 - DEMO_BBOX.1);
        assert!((total - want).abs() < 1e-12, "{total} vs {want}");
        let (w, s, e, n) = index().bbox().unwrap();
        assert!((w - DEMO_BBOX.0).abs() < 1e-12 && (s - DEMO_BBOX.1).abs() < 1e-12);
        assert!((e - DEMO_BBOX.2).abs() < 1e-12 && (n - DEMO_BBOX.3).abs() < 1e-12);
    }

    #[test]
    fn edges_are_the_constants() {
        assert_eq!(edge_lon(0), DEMO_WEST);
        assert_eq!(edge_lat(0), DEMO_NORTH);
        assert_eq!(edge_lon(DEMO_COLUMNS), DEMO_BBOX.2);
        assert_eq!(edge_lat(DEMO_ROWS), DEMO_BBOX.1);
        assert_eq!(index().bbox(), Some(DEMO_BBOX));
        for i in 0..DEMO_COLUMNS {
            assert!((edge_lon(i + 1) - edge_lon(i) - DEMO_CELL_LON).abs() < 1e-12);
            assert!((edge_lat(i) - edge_lat(i + 1) - DEMO_CELL_LAT).abs() < 1e-12);
        }
    }

    #[test]
    fn deterministic() {
        assert_eq!(&demo_city(), city());
    }

    #[test]
    fn points_outside_the_city_are_none() {
        let (w, s, e, n) = DEMO_BBOX;
        for (x, y) in
            [(w - 1e-6, 34.26), (e + 1e-6, 34.26), (117.18, n + 1e-6), (117.18, s - 1e-6), (116.0, 34.0), (0.0, 0.0)]
        {
            assert_eq!(index().locate(x, y), None, "({x}, {y})");
        }
    }

    /// The lowest code among the grids that contain `(x, y)` (closed), by brute force.
    fn brute_force(x: f64, y: f64) -> Option<&'static RegionCode> {
        let p = Point::new(x, y);
        city().grids.iter().filter(|g| g.polygon.intersects(&p)).map(|g| &g.code).min()
    }

    proptest! {
        #[test]
        fn locate_matches_brute_force_inside(
            fx in 0.0f64..=1.0,
            fy in 0.0f64..=1.0,
        ) {
            let (w, s, e, n) = DEMO_BBOX;
            let (x, y) = (w + fx * (e - w), s + fy * (n - s));
            let p = Point::new(x, y);
            // Off the edges exactly one grid contains the point and it is the answer.
            let holders: Vec<&GridPolygon> = city().grids.iter().filter(|g| g.polygon.contains(&p)).collect();
            if holders.len() == 1 {
                prop_assert_eq!(index().locate(x, y), Some(&holders[0].code));
            } else {
                prop_assert!(holders.is_empty(), "{} grids contain ({x}, {y})", holders.len());
            }
            // Everywhere, including edges: the tie-break matches brute force.
            prop_assert_eq!(index().locate(x, y), brute_force(x, y));
            prop_assert!(index().locate(x, y).is_some());
        }

        #[test]
        fn locate_matches_brute_force_on_the_lattice(col in 0usize..=10, row in 0usize..=10, half in 0usize..2) {
            // Cell edges and vertices exactly, where several grids touch.
            let x = edge_lon(col) + if half == 1 && col < 10 { DEMO_CELL_LON / 2.0 } else { 0.0 };
            let y = edge_lat(row);
            prop_assert_eq!(index().locate(x, y), brute_force(x, y));
            prop_assert!(index().locate(x, y).is_some());
        }

        #[test]
        fn locate_is_none_outside(
            x in 100.0f64..130.0,
            y in 20.0f64..45.0,
        ) {
            let (w, s, e, n) = DEMO_BBOX;
            prop_assume!(x < w || x > e || y < s || y > n);
            prop_assert_eq!(index().locate(x, y), None);
        }
    }
}
