//! Roads (街巷) and the address database (地址库) of the synthetic city: named roads along the
//! lattice lines, door numbers (门楼牌) along them, and points of interest (兴趣点): schools,
//! hospitals, residential compounds (小区), malls, parks and community service centres.
//!
//! Roads run along every third lattice line (every ninth is a main road), so they follow grid
//! edges as real grids are cut along roads. Main roads keep one name across a few pieces with
//! the direction in it (淮海西路, 淮海东路), the way Chinese cities name long roads; the real
//! names of Xuzhou's main roads go to the lines nearest the centre. Door numbers are odd on one
//! side and even on the other, counting from the road's start.

use super::lattice::{Lattice, NONE};
use super::names::{self, Names, REAL_ROADS_EW, REAL_ROADS_NS};
use super::{bad, Layout};
use crate::layers::{Address, AddressKind, CityMap, Road};
use crate::GeoError;
use citygrid_core::codes::{AreaClass, RegionCode};
use geo::{Coord, LineString, MultiLineString};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Roads every `ROAD_EVERY` lattice lines, main roads every `ROAD_EVERY * MAIN_EVERY`.
const ROAD_EVERY: u32 = 3;
const MAIN_EVERY: u32 = 3;

/// One straight run of road edges along a lattice line.
struct Piece {
    horizontal: bool,
    /// The line's index (row of vertices for a horizontal road, column for a vertical one).
    line: u32,
    /// First and one-past-last position along the line (column or row of the edge's start).
    from: u32,
    to: u32,
}

/// Hands out address codes `{district}-{kind}-{serial}`, serials per district and kind: six
/// digits, seven once a district passes a million doors (at scale 5 and above), which keeps
/// codes unique without renumbering smaller cities.
struct Codes {
    next: Vec<[u32; 3]>,
    /// The districts' codes, parsed once.
    districts: Vec<RegionCode>,
}

impl Codes {
    fn next(&mut self, layout: &Layout, district: usize, kind: AddressKind) -> Result<String, GeoError> {
        let (k, letter) = match kind {
            AddressKind::Road => (0, 'R'),
            AddressKind::Door => (1, 'D'),
            AddressKind::Poi => (2, 'P'),
        };
        let n = &mut self.next[district][k];
        *n += 1;
        Ok(format!("{}-{letter}-{:06}", layout.districts[district].code, n))
    }
}

fn chosen(layout: &Layout, c: i64, r: i64) -> Option<usize> {
    let l = &layout.lattice;
    if c < 0 || r < 0 || c >= i64::from(l.cols) || r >= i64::from(l.rows) {
        return None;
    }
    let g = layout.grid_at[l.cell(c as u32, r as u32) as usize];
    (g != NONE).then_some(g as usize)
}

/// Grids on the two sides of edge `i` of a piece: (left, right) looking along the road (east
/// for horizontal roads, south for vertical ones); left gets the odd numbers.
fn sides(layout: &Layout, p: &Piece, i: u32) -> (Option<usize>, Option<usize>) {
    let (line, i) = (i64::from(p.line), i64::from(i));
    if p.horizontal {
        (chosen(layout, i, line - 1), chosen(layout, i, line))
    } else {
        (chosen(layout, line, i), chosen(layout, line - 1, i))
    }
}

fn edge_ends(l: &Lattice, p: &Piece, i: u32) -> (Coord<f64>, Coord<f64>) {
    if p.horizontal {
        (l.vertex(i, p.line), l.vertex(i + 1, p.line))
    } else {
        (l.vertex(p.line, i), l.vertex(p.line, i + 1))
    }
}

/// Runs of road edges along every road line, split into pieces of a few kilometres.
fn pieces(layout: &Layout, rng: &mut ChaCha8Rng) -> Vec<Vec<Piece>> {
    let l = &layout.lattice;
    let (rc, rr) = l.cr(layout.reference_cell);
    let mut lines: Vec<(bool, u32)> = Vec::new();
    for r in (ROAD_EVERY..l.rows).step_by(ROAD_EVERY as usize) {
        lines.push((true, r));
    }
    for c in (ROAD_EVERY..l.cols).step_by(ROAD_EVERY as usize) {
        lines.push((false, c));
    }
    // Main roads nearest the centre first, so they get the real names.
    lines.sort_by_key(|&(h, line)| {
        let main = line % (ROAD_EVERY * MAIN_EVERY) == 0;
        let off = if h { line.abs_diff(rr) } else { line.abs_diff(rc) };
        (!main, off, h, line)
    });
    let mut runs = Vec::new();
    for (horizontal, line) in lines {
        let main = line % (ROAD_EVERY * MAIN_EVERY) == 0;
        let len = if horizontal { l.cols } else { l.rows };
        let mut i = 0;
        while i < len {
            let on = |i: u32| {
                let p = Piece { horizontal, line, from: i, to: i + 1 };
                let (a, b) = sides(layout, &p, i);
                a.is_some() || b.is_some()
            };
            if !on(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i < len && on(i) {
                i += 1;
            }
            // Split the run into pieces; a short tail joins the piece before it.
            let (lo, hi) = if main { (18, 32) } else { (10, 24) };
            let mut group = Vec::new();
            let mut s = start;
            while s < i {
                let mut e = (s + rng.gen_range(lo..=hi)).min(i);
                if i - e < 6 {
                    e = i;
                }
                if e - s >= 2 {
                    group.push(Piece { horizontal, line, from: s, to: e });
                }
                s = e;
            }
            if main {
                // Up to three pieces share a main road's name.
                let mut rest = group.into_iter().peekable();
                while rest.peek().is_some() {
                    let take = rng.gen_range(1..=3);
                    runs.push(rest.by_ref().take(take).collect());
                }
            } else {
                runs.extend(group.into_iter().map(|p| vec![p]));
            }
        }
    }
    runs
}

pub(super) fn roads_and_addresses(
    layout: &Layout,
    map: &mut CityMap,
    rng: &mut ChaCha8Rng,
    prng: &mut ChaCha8Rng,
) -> Result<(), GeoError> {
    let l = &layout.lattice;
    let mut names = Names::new();
    let districts = layout
        .districts
        .iter()
        .map(|d| RegionCode::parse(&d.code).map_err(|e| bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut codes = Codes { next: vec![[0; 3]; layout.districts.len()], districts };
    let (mut real_ew, mut real_ns) = (REAL_ROADS_EW.iter(), REAL_ROADS_NS.iter());
    let district_of_grid = |g: usize| layout.district_of(&layout.grids[g]);
    for run in pieces(layout, rng) {
        let Some(first) = run.first() else { continue };
        let main = first.line % (ROAD_EVERY * MAIN_EVERY) == 0;
        let road_names: Vec<String> = if main {
            let real_name = if first.horizontal { real_ew.next() } else { real_ns.next() }.copied();
            // Real names keep their 路; made-up single-piece main roads are sometimes avenues.
            let avenue = real_name.is_none() && run.len() == 1 && rng.gen_bool(0.2);
            let suffix = if avenue { "大道" } else { "路" };
            let stem = names.unique_first(rng, real_name, |w| format!("{w}{suffix}"));
            let stem = stem.trim_end_matches(suffix).to_owned();
            let dirs: &[&str] = match (run.len(), first.horizontal) {
                (1, _) => &[""],
                (2, true) => &["西", "东"],
                (2, false) => &["北", "南"],
                (_, true) => &["西", "中", "东"],
                (_, false) => &["北", "中", "南"],
            };
            dirs.iter()
                .map(|d| {
                    let n = format!("{stem}{d}{suffix}");
                    names.reserve(&n);
                    n
                })
                .collect()
        } else {
            let lane = first.to - first.from <= 14 && rng.gen_bool(0.35);
            let suffix = if lane { "巷" } else { "街" };
            vec![names.unique(rng, |w| format!("{w}{suffix}"))]
        };
        for (piece, name) in run.iter().zip(road_names) {
            let aliases = if rng.gen_bool(0.15) {
                let old = if rng.gen_bool(0.5) { "街" } else { "路" };
                vec![names.unique(rng, |w| format!("{w}{old}"))]
            } else {
                Vec::new()
            };
            let mid = (piece.from + piece.to) / 2;
            let (a, b) = sides(layout, piece, mid);
            let Some(g) = a.or(b) else { continue };
            let district = district_of_grid(g);
            let mut pts = Vec::with_capacity((piece.to - piece.from + 1) as usize);
            for i in piece.from..piece.to {
                pts.push(edge_ends(l, piece, i).0);
            }
            pts.push(edge_ends(l, piece, piece.to - 1).1);
            let at = pts[pts.len() / 2];
            let code = codes.next(layout, district, AddressKind::Road)?;
            let district_code = RegionCode::parse(&layout.districts[district].code).map_err(|e| bad(e.to_string()))?;
            map.roads.push(Road {
                code: code.clone(),
                name: name.clone(),
                aliases: aliases.clone(),
                district: district_code.clone(),
                line: MultiLineString(vec![LineString::new(pts)]),
            });
            map.addresses.push(Address {
                code,
                kind: AddressKind::Road,
                name: name.clone(),
                aliases,
                district: district_code,
                road: None,
                number: None,
                lon: at.x,
                lat: at.y,
            });
            doors(layout, piece, &name, &mut codes, map, prng)?;
        }
    }
    pois(layout, map, &mut codes, &mut names, prng)
}

/// Door numbers along one road piece, odd on the left, even on the right.
fn doors(
    layout: &Layout,
    piece: &Piece,
    road: &str,
    codes: &mut Codes,
    map: &mut CityMap,
    rng: &mut ChaCha8Rng,
) -> Result<(), GeoError> {
    let l = &layout.lattice;
    let mut number = [1u32, 2u32];
    for i in piece.from..piece.to {
        let (a, b) = sides(layout, piece, i);
        let (e0, e1) = edge_ends(l, piece, i);
        for (side, grid) in [a, b].into_iter().enumerate() {
            let Some(g) = grid else { continue };
            let grid = &layout.grids[g];
            let base: i32 = match grid.class {
                AreaClass::A => 10,
                AreaClass::B => 7,
                AreaClass::C => 4,
            };
            let n = (base + rng.gen_range(-1..=1)).max(1);
            let m = l.centre(grid.cell);
            let district = layout.district_of(grid);
            for k in 0..n {
                let t = (f64::from(k) + 0.5) / f64::from(n);
                let e = Coord { x: e0.x + (e1.x - e0.x) * t, y: e0.y + (e1.y - e0.y) * t };
                let f = rng.gen_range(0.15..0.3);
                let p = Coord { x: e.x + (m.x - e.x) * f, y: e.y + (m.y - e.y) * f };
                let mut numbers = vec![format!("{}号", number[side])];
                if rng.gen_bool(0.03) {
                    let subs = rng.gen_range(1..=3);
                    numbers.extend((1..=subs).map(|s| format!("{}-{s}号", number[side])));
                }
                number[side] += 2;
                for num in numbers {
                    let code = codes.next(layout, district, AddressKind::Door)?;
                    map.addresses.push(Address {
                        code,
                        kind: AddressKind::Door,
                        name: format!("{road}{num}"),
                        aliases: Vec::new(),
                        district: codes.districts[district].clone(),
                        road: Some(road.to_owned()),
                        number: Some(num),
                        lon: super::lattice::round7(p.x),
                        lat: super::lattice::round7(p.y),
                    });
                }
            }
        }
    }
    Ok(())
}

const REAL_HOSPITALS: &[(&str, &str)] = &[
    ("徐州医科大学附属医院", "附院"),
    ("徐州市中心医院", "市中心医院"),
    ("徐州市第一人民医院", "市一院"),
    ("徐州市中医院", "市中医院"),
    ("徐州市儿童医院", "儿童医院"),
    ("徐州市妇幼保健院", "妇幼保健院"),
    ("徐州市第三人民医院", "市三院"),
    ("徐州市肿瘤医院", "肿瘤医院"),
    ("徐州矿务集团总医院", "矿务局医院"),
];
const REAL_MALLS: &[(&str, &str)] = &[
    ("苏宁广场", "苏宁"),
    ("金鹰国际购物中心", "金鹰"),
    ("徐州万达广场", "万达"),
    ("彭城广场", "彭城"),
    ("中央百货大楼", "中央百货"),
    ("金地商都", "金地"),
];
const REAL_PARKS: &[(&str, &str)] = &[
    ("云龙公园", ""),
    ("彭园", ""),
    ("快哉亭公园", "快哉亭"),
    ("百步洪公园", ""),
    ("黄河故道风光带", "故黄河"),
    ("奎山公园", ""),
    ("泉山森林公园", "泉山公园"),
    ("金龙湖公园", ""),
    ("大龙湖公园", ""),
    ("九里山公园", ""),
];

/// Points of interest: per community its service centre, kindergarten and primary school (not
/// every one), per street a middle school, a health centre and maybe a mall and a park, per grid
/// the residential compounds; the real landmarks go to the grids nearest the centre.
fn pois(
    layout: &Layout,
    map: &mut CityMap,
    codes: &mut Codes,
    names: &mut Names,
    rng: &mut ChaCha8Rng,
) -> Result<(), GeoError> {
    let l = &layout.lattice;
    let mut push = |map: &mut CityMap, g: usize, name: String, aliases: Vec<String>, rng: &mut ChaCha8Rng| {
        let grid = &layout.grids[g];
        let district = layout.district_of(grid);
        let p = l.point_in(grid.cell, rng.gen_range(0.2..0.8), rng.gen_range(0.2..0.8));
        let code = codes.next(layout, district, AddressKind::Poi)?;
        map.addresses.push(Address {
            code,
            kind: AddressKind::Poi,
            name,
            aliases: aliases.into_iter().filter(|a| !a.is_empty()).collect(),
            district: RegionCode::parse(&layout.districts[district].code).map_err(|e| bad(e.to_string()))?,
            road: None,
            number: None,
            lon: super::lattice::round7(p.x),
            lat: super::lattice::round7(p.y),
        });
        Ok::<(), GeoError>(())
    };
    // Class-A grids, nearest the reference cell first, take the landmarks.
    let (rc, rr) = l.cr(layout.reference_cell);
    let mut central: Vec<(u64, usize)> = (0..layout.grids.len())
        .filter(|&g| layout.grids[g].class == AreaClass::A)
        .map(|g| {
            let (c, r) = l.cr(layout.grids[g].cell);
            let (dc, dr) = (u64::from(c.abs_diff(rc)), u64::from(r.abs_diff(rr)));
            (dc * dc + dr * dr, g)
        })
        .collect();
    central.sort_unstable();
    let mut central = central.into_iter().map(|(_, g)| g).step_by(7);
    for list in [REAL_HOSPITALS, REAL_MALLS, REAL_PARKS] {
        for (name, alias) in list {
            let Some(g) = central.next() else { break };
            names.reserve(name);
            push(map, g, (*name).to_owned(), vec![(*alias).to_owned()], rng)?;
        }
    }

    // Grid ranges of each community and street (grids are in code order, so contiguous).
    let mut middle_school = 0usize;
    let mut g = 0;
    while g < layout.grids.len() {
        let street = layout.street_of(&layout.grids[g]);
        let start = g;
        while g < layout.grids.len() && layout.street_of(&layout.grids[g]) == street {
            g += 1;
        }
        let street_name = &layout.streets[street].name;
        let stem = street_name.trim_end_matches("街道").trim_end_matches('镇');
        let any = |rng: &mut ChaCha8Rng| rng.gen_range(start..g);
        middle_school += 1;
        let n = names::numeral(middle_school);
        let school = format!("徐州市第{n}中学");
        if names.reserve(&school) {
            push(map, any(rng), school, vec![format!("徐州{n}中")], rng)?;
        }
        let centre = format!("{stem}街道社区卫生服务中心");
        if names.reserve(&centre) {
            push(map, any(rng), centre, vec![format!("{stem}卫生院")], rng)?;
        }
        if rng.gen_bool(0.5) {
            let form = if rng.gen_bool(0.5) { "广场" } else { "购物中心" };
            let mall = names.unique(rng, |w| format!("{w}{form}"));
            let short = mall.trim_end_matches(form).to_owned();
            push(map, any(rng), mall, vec![short], rng)?;
        }
        if rng.gen_bool(0.35) {
            let form = if rng.gen_bool(0.7) { "公园" } else { "游园" };
            let park = names.unique(rng, |w| format!("{w}{form}"));
            push(map, any(rng), park, Vec::new(), rng)?;
        }
        if rng.gen_bool(0.3) {
            let hospital = names.unique(rng, |w| format!("徐州{w}医院"));
            push(map, any(rng), hospital, Vec::new(), rng)?;
        }
    }
    let mut g = 0;
    while g < layout.grids.len() {
        let community = layout.grids[g].community;
        let start = g;
        while g < layout.grids.len() && layout.grids[g].community == community {
            g += 1;
        }
        let cname = &layout.communities[community].name;
        let any = |rng: &mut ChaCha8Rng| rng.gen_range(start..g);
        let centre = format!("{cname}党群服务中心");
        if names.reserve(&centre) {
            let office = format!("{}居委会", cname.trim_end_matches("社区"));
            push(map, any(rng), centre, vec![office], rng)?;
        }
        if rng.gen_bool(0.5) {
            let school = names.unique(rng, |w| format!("徐州市{w}小学"));
            let short = school.trim_start_matches("徐州市").to_owned();
            push(map, any(rng), school, vec![short], rng)?;
        }
        if rng.gen_bool(0.5) {
            let kg = names.unique(rng, |w| format!("{w}幼儿园"));
            push(map, any(rng), kg, Vec::new(), rng)?;
        }
    }
    for g in 0..layout.grids.len() {
        let p = match layout.grids[g].class {
            AreaClass::A => 0.7,
            AreaClass::B => 0.6,
            AreaClass::C => 0.25,
        };
        if rng.gen_bool(p) {
            let name = names.compound(rng);
            // Some compounds are still known by the works that built them.
            let aliases =
                if rng.gen_bool(0.1) { vec![names.unique(rng, |w| format!("{w}宿舍"))] } else { Vec::new() };
            push(map, g, name, aliases, rng)?;
        }
    }
    Ok(())
}
