//! Validating the administrative layers as a whole: district → street → community → unit grid.
//!
//! Each region is checked on its own when it is read ([`crate::citydir`]); what only the whole
//! map shows is checked here, for the grid editor and for imports: that every region's parent
//! exists, that children stay inside their parent, that siblings do not overlap and that the
//! children of a parent cover it without gaps (a unit grid map must tile the city, DOMAIN.md).
//!
//! Areas are computed on WGS-84 degrees (planar, accurate enough over a district) and turned
//! into m² with the local scale `cos(lat) × 111,320²`. Every figure compared against a parent is
//! scaled at the parent's latitude, so the children of an exact tiling add up to their parent to
//! rounding error, instead of differing by the curvature of the scale factor.
//!
//! Performance: overlap candidates come from an R-tree of bounding boxes per level, and a pair
//! whose boxes meet in less than the tolerance (neighbours sharing an edge) is dismissed without
//! a polygon intersection; a child's outside part is one polygon difference against its parent.
//! 20,000 rectangular unit grids with 500 communities, 50 streets and 5 districts validate in
//! about 0.2 s in release mode (the ignored test `timing_20000_grids`); real boundaries with more
//! vertices cost more per polygon difference, but the work stays linear in the number of grids.

use crate::layers::RegionFeature;
use citygrid_core::codes::{RegionCode, RegionLevel};
use geo::{Area, BooleanOps, BoundingRect, MultiPolygon, Rect};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use utoipa::ToSchema;

/// Metres per degree (of latitude, and of longitude at the equator) used to turn degree² into
/// m²; the brief's and the usual value, within 0.7 % of the true meridian degree.
const M_PER_DEG: f64 = 111_320.0;

/// What is wrong with the regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// A street, community or grid whose parent region is neither in the input nor known.
    MissingParent,
    /// A child polygon extends beyond its parent's by more than the tolerance.
    OutsideParent,
    /// Two regions of the same level overlap by more than the tolerance (both codes named).
    Overlap,
    /// The children of a parent leave more than the tolerance of its area uncovered.
    Gap,
    /// The same code twice.
    DuplicateCode,
    /// A region that does not fit the level sequence: a city-level code among the layers, or a
    /// district, street or community without a name.
    BadLevelSequence,
}

/// One finding, about the region `code` (for an overlap, the lower of the two codes; for a gap,
/// the parent).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ValidationIssue {
    pub code: String,
    pub kind: IssueKind,
    /// For people: what, by how much, and the other region involved.
    pub detail: String,
}

fn issue(code: &RegionCode, kind: IssueKind, detail: String) -> ValidationIssue {
    ValidationIssue { code: code.as_str().to_owned(), kind, detail }
}

/// m² per degree² at latitude `lat`.
fn m2_per_deg2(lat: f64) -> f64 {
    lat.to_radians().cos() * M_PER_DEG * M_PER_DEG
}

fn mid_lat(r: &Rect<f64>) -> f64 {
    (r.min().y + r.max().y) / 2.0
}

/// Validates regions with no parents known beyond the input. See [`validate_regions_with`].
pub fn validate_regions(regions: &[RegionFeature], tolerance_m2: f64) -> Vec<ValidationIssue> {
    validate_regions_with(regions, &HashSet::new(), tolerance_m2)
}

/// Validates regions as a whole; returns every issue found, sorted by code and kind (empty
/// when all is well).
///
/// `known_parents` are codes present elsewhere (already stored, when a single layer is
/// imported): a region whose parent is among them is not reported as [`IssueKind::MissingParent`].
/// Containment and gaps can only be checked against a parent whose polygon is in `regions`;
/// a gap is only looked for under a parent that has at least one child in `regions` (a layer
/// not yet imported is not a gap). A district's parent is the city, which has no polygon and is
/// never required.
///
/// The gap of a parent is its area minus the part of each child inside it, plus the overlaps
/// found between those children (so an overlap does not hide a gap). Overlaps below the
/// tolerance are not measured, so they may hide at most that much gap each.
pub fn validate_regions_with(
    regions: &[RegionFeature],
    known_parents: &HashSet<RegionCode>,
    tolerance_m2: f64,
) -> Vec<ValidationIssue> {
    let mut issues = Vec::new();

    // Duplicates first: every later check looks regions up by code and uses the first.
    let mut by_code: HashMap<&RegionCode, usize> = HashMap::with_capacity(regions.len());
    let mut unique = Vec::with_capacity(regions.len());
    for (i, r) in regions.iter().enumerate() {
        if by_code.contains_key(&r.code) {
            issues.push(issue(&r.code, IssueKind::DuplicateCode, format!("{} appears more than once", r.code)));
        } else {
            by_code.insert(&r.code, i);
            unique.push(i);
        }
    }

    for &i in &unique {
        let r = &regions[i];
        let level = r.level();
        if level == RegionLevel::City {
            issues.push(issue(
                &r.code,
                IssueKind::BadLevelSequence,
                format!("{} is a city code (ends in 00); the layers start at districts", r.code),
            ));
            continue;
        }
        if level != RegionLevel::Grid && r.name.trim().is_empty() {
            issues.push(issue(
                &r.code,
                IssueKind::BadLevelSequence,
                format!("{} {} has no name", level.as_str(), r.code),
            ));
        }
        if level > RegionLevel::District {
            if let Some(parent) = r.code.parent() {
                if !by_code.contains_key(&parent) && !known_parents.contains(&parent) {
                    let plevel = parent.level().as_str();
                    issues.push(issue(&r.code, IssueKind::MissingParent, format!("its {plevel} {parent} is absent")));
                }
            }
        }
    }

    let bboxes: Vec<Option<Rect<f64>>> = regions.iter().map(|r| r.polygon.bounding_rect()).collect();
    let areas: Vec<f64> = regions.iter().map(|r| r.polygon.unsigned_area()).collect();

    // Overlaps, per level. Overlap area in degree² between children of the same parent is kept
    // for that parent's gap.
    let mut overlap_in_parent: HashMap<usize, f64> = HashMap::new();
    for level in [RegionLevel::District, RegionLevel::Street, RegionLevel::Community, RegionLevel::Grid] {
        let entries: Vec<GeomWithData<Rectangle<[f64; 2]>, usize>> = unique
            .iter()
            .filter(|&&i| regions[i].level() == level)
            .filter_map(|&i| {
                let b = bboxes[i]?;
                Some(GeomWithData::new(Rectangle::from_corners([b.min().x, b.min().y], [b.max().x, b.max().y]), i))
            })
            .collect();
        let tree = RTree::bulk_load(entries);
        let mut pairs: Vec<(usize, usize)> = tree
            .intersection_candidates_with_other_tree(&tree)
            .filter(|(a, b)| a.data < b.data)
            .map(|(a, b)| (a.data, b.data))
            .collect();
        pairs.sort_unstable();
        for (a, b) in pairs {
            let (Some(ba), Some(bb)) = (bboxes[a], bboxes[b]) else { continue };
            let (x0, y0) = (ba.min().x.max(bb.min().x), ba.min().y.max(bb.min().y));
            let (x1, y1) = (ba.max().x.min(bb.max().x), ba.max().y.min(bb.max().y));
            let scale = m2_per_deg2((y0 + y1) / 2.0);
            // The overlap cannot exceed the boxes' overlap: neighbours that only share an edge
            // (the normal case in a tiling) are dismissed here without any polygon work.
            if (x1 - x0).max(0.0) * (y1 - y0).max(0.0) * scale <= tolerance_m2 {
                continue;
            }
            let overlap = regions[a].polygon.intersection(&regions[b].polygon).unsigned_area();
            let m2 = overlap * scale;
            if m2 > tolerance_m2 {
                let (first, second) = if regions[a].code <= regions[b].code { (a, b) } else { (b, a) };
                issues.push(issue(
                    &regions[first].code,
                    IssueKind::Overlap,
                    format!("{} and {} overlap by {m2:.1} m²", regions[first].code, regions[second].code),
                ));
                let (pa, pb) = (regions[a].code.parent(), regions[b].code.parent());
                if let (Some(pa), Some(pb)) = (pa, pb) {
                    if pa == pb {
                        if let Some(&p) = by_code.get(&pa) {
                            *overlap_in_parent.entry(p).or_default() += overlap;
                        }
                    }
                }
            }
        }
    }

    // Containment, and each parent's covered area.
    let mut covered: HashMap<usize, f64> = HashMap::new();
    for &i in &unique {
        let child = &regions[i];
        if matches!(child.level(), RegionLevel::City | RegionLevel::District) || child.polygon.0.is_empty() {
            continue;
        }
        let Some(parent_code) = child.code.parent() else { continue };
        let Some(&p) = by_code.get(&parent_code) else { continue };
        let parent = &regions[p];
        let Some(pbox) = bboxes[p] else { continue };
        let scale = m2_per_deg2(mid_lat(&pbox));
        let outside = outside_area(&child.polygon, bboxes[i], &parent.polygon, pbox);
        let outside_m2 = outside * scale;
        if outside_m2 > tolerance_m2 {
            issues.push(issue(
                &child.code,
                IssueKind::OutsideParent,
                format!("extends {outside_m2:.1} m² beyond its {} {}", parent.level().as_str(), parent.code),
            ));
        }
        *covered.entry(p).or_default() += (areas[i] - outside).max(0.0);
    }
    let mut parents: Vec<usize> = covered.keys().copied().collect();
    parents.sort_unstable();
    for p in parents {
        let Some(pbox) = bboxes[p] else { continue };
        let inside = covered.get(&p).copied().unwrap_or(0.0);
        let overlaps = overlap_in_parent.get(&p).copied().unwrap_or(0.0);
        let gap_m2 = (areas[p] - inside + overlaps) * m2_per_deg2(mid_lat(&pbox));
        if gap_m2 > tolerance_m2 {
            let parent_m2 = areas[p] * m2_per_deg2(mid_lat(&pbox));
            let pct = if parent_m2 > 0.0 { 100.0 * gap_m2 / parent_m2 } else { 0.0 };
            let child_level = match regions[p].level() {
                RegionLevel::District => "streets",
                RegionLevel::Street => "communities",
                _ => "unit grids",
            };
            issues.push(issue(
                &regions[p].code,
                IssueKind::Gap,
                format!("its {child_level} leave {gap_m2:.1} m² ({pct:.2} %) uncovered"),
            ));
        }
    }

    issues.sort_by(|a, b| (&a.code, a.kind, &a.detail).cmp(&(&b.code, b.kind, &b.detail)));
    issues
}

/// The area (degree²) of `child` outside `parent`.
fn outside_area(
    child: &MultiPolygon<f64>,
    cbox: Option<Rect<f64>>,
    parent: &MultiPolygon<f64>,
    pbox: Rect<f64>,
) -> f64 {
    match cbox {
        // Entirely outside the parent's box: no need for the polygon difference.
        Some(c)
            if c.max().x <= pbox.min().x
                || c.min().x >= pbox.max().x
                || c.max().y <= pbox.min().y
                || c.min().y >= pbox.max().y =>
        {
            child.unsigned_area()
        }
        _ => child.difference(parent).unsigned_area(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use citygrid_core::codes::AreaClass;
    use geo::{polygon, Polygon};
    use proptest::prelude::*;

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon<f64> {
        polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)]
    }

    fn region(code: &str, poly: Polygon<f64>) -> RegionFeature {
        RegionFeature {
            code: RegionCode::parse(code).unwrap(),
            name: format!("r{code}"),
            area_class: AreaClass::A,
            polygon: MultiPolygon(vec![poly]),
        }
    }

    const X0: f64 = 117.0;
    const Y0: f64 = 34.0;
    const CELL: f64 = 0.001;

    /// District 320311 ⊃ street 320311001 ⊃ community 320311001001, one square, tiled by 3 × 3
    /// unit grids of 0.001° (about 92 × 111 m), numbered west→east, north→south.
    fn tiled() -> Vec<RegionFeature> {
        let outer = rect(X0, Y0, X0 + 3.0 * CELL, Y0 + 3.0 * CELL);
        let mut v =
            vec![region("320311", outer.clone()), region("320311001", outer.clone()), region("320311001001", outer)];
        for row in 0..3 {
            for col in 0..3 {
                let (x, y) = (X0 + f64::from(col) * CELL, Y0 + f64::from(2 - row) * CELL);
                let seq = row * 3 + col + 1;
                v.push(region(&format!("320311001001{seq:03}"), rect(x, y, x + CELL, y + CELL)));
            }
        }
        v
    }

    fn set(v: &mut [RegionFeature], code: &str, poly: Polygon<f64>) {
        let r = v.iter_mut().find(|r| r.code.as_str() == code).unwrap();
        r.polygon = MultiPolygon(vec![poly]);
    }

    fn kinds(issues: &[ValidationIssue]) -> Vec<(String, IssueKind)> {
        issues.iter().map(|i| (i.code.clone(), i.kind)).collect()
    }

    #[test]
    fn a_tiled_community_passes() {
        assert_eq!(validate_regions(&tiled(), 0.1), vec![]);
        assert_eq!(validate_regions(&tiled(), 0.0), vec![]);
    }

    #[test]
    fn a_hole_is_a_gap_of_the_community() {
        let mut v = tiled();
        v.retain(|r| r.code.as_str() != "320311001001005");
        let issues = validate_regions(&v, 1.0);
        assert_eq!(kinds(&issues), [("320311001001".to_owned(), IssueKind::Gap)]);
        // one cell: 0.001° × 0.001° at 34° is about 10,270 m² on this scale
        let want = CELL * CELL * m2_per_deg2(Y0 + 1.5 * CELL);
        assert!(issues[0].detail.contains(&format!("{want:.1} m²")), "{}", issues[0].detail);
        assert!(issues[0].detail.contains("unit grids"));

        // a hole inside a grid's polygon is a gap too
        let mut v = tiled();
        let c = X0 + 1.5 * CELL;
        let with_hole = Polygon::new(
            rect(X0 + CELL, Y0 + CELL, X0 + 2.0 * CELL, Y0 + 2.0 * CELL).exterior().clone(),
            vec![rect(c - 0.0001, Y0 + 1.4 * CELL, c + 0.0001, Y0 + 1.6 * CELL).exterior().clone()],
        );
        set(&mut v, "320311001001005", with_hole);
        assert_eq!(kinds(&validate_regions(&v, 1.0)), [("320311001001".to_owned(), IssueKind::Gap)]);
    }

    #[test]
    fn an_overlap_names_both_grids() {
        let mut v = tiled();
        // 002 (top middle) reaches 10 % into 005 below it
        set(&mut v, "320311001001002", rect(X0 + CELL, Y0 + 1.9 * CELL, X0 + 2.0 * CELL, Y0 + 3.0 * CELL));
        let issues = validate_regions(&v, 1.0);
        assert_eq!(kinds(&issues), [("320311001001002".to_owned(), IssueKind::Overlap)]);
        assert!(issues[0].detail.contains("320311001001002") && issues[0].detail.contains("320311001001005"));
    }

    #[test]
    fn a_grid_sticking_out_is_outside_its_community() {
        let mut v = tiled();
        // 003 (top right) extends 0.0002° east of the community
        set(&mut v, "320311001001003", rect(X0 + 2.0 * CELL, Y0 + 2.0 * CELL, X0 + 3.2 * CELL, Y0 + 3.0 * CELL));
        let issues = validate_regions(&v, 1.0);
        assert_eq!(kinds(&issues), [("320311001001003".to_owned(), IssueKind::OutsideParent)]);
        assert!(issues[0].detail.contains("community 320311001001"));
    }

    #[test]
    fn a_missing_parent_is_named_unless_known() {
        let mut v = tiled();
        v.retain(|r| r.code.as_str() != "320311001001");
        let issues = validate_regions(&v, 1.0);
        assert_eq!(issues.len(), 9);
        assert!(issues
            .iter()
            .all(|i| i.kind == IssueKind::MissingParent && i.detail.contains("community 320311001001")));
        let known: HashSet<RegionCode> = [RegionCode::parse("320311001001").unwrap()].into();
        assert_eq!(validate_regions_with(&v, &known, 1.0), vec![]);

        // a street without its district
        let v: Vec<RegionFeature> = tiled().into_iter().filter(|r| r.code.as_str() != "320311").collect();
        assert_eq!(kinds(&validate_regions(&v, 1.0)), [("320311001".to_owned(), IssueKind::MissingParent)]);
    }

    #[test]
    fn duplicates_and_level_sequence() {
        let mut v = tiled();
        v.push(v[5].clone());
        v[1].name = " ".to_owned();
        v.push(region("320300", rect(X0, Y0, X0 + 1.0, Y0 + 1.0)));
        let issues = validate_regions(&v, 1.0);
        assert_eq!(
            kinds(&issues),
            [
                ("320300".to_owned(), IssueKind::BadLevelSequence),
                ("320311001".to_owned(), IssueKind::BadLevelSequence),
                (v[5].code.as_str().to_owned(), IssueKind::DuplicateCode),
            ]
        );
        // a grid without a name is normal
        let mut v = tiled();
        v[4].name.clear();
        assert_eq!(validate_regions(&v, 1.0), vec![]);
    }

    #[test]
    fn tolerance_is_respected() {
        // a sliver of 1 m² east of the community, on grid 003
        let height = CELL;
        let lat = Y0 + 1.5 * CELL;
        let width = 1.0 / (height * m2_per_deg2(lat));
        let mut v = tiled();
        set(
            &mut v,
            "320311001001003",
            rect(X0 + 2.0 * CELL, Y0 + 2.0 * CELL, X0 + 3.0 * CELL + width, Y0 + 3.0 * CELL),
        );
        assert_eq!(validate_regions(&v, 10.0), vec![]);
        assert_eq!(kinds(&validate_regions(&v, 0.1)), [("320311001001003".to_owned(), IssueKind::OutsideParent)]);

        // a 1 m² gap: grid 003 one sliver short of the community's east edge
        let mut v = tiled();
        set(
            &mut v,
            "320311001001003",
            rect(X0 + 2.0 * CELL, Y0 + 2.0 * CELL, X0 + 3.0 * CELL - width, Y0 + 3.0 * CELL),
        );
        assert_eq!(validate_regions(&v, 10.0), vec![]);
        assert_eq!(kinds(&validate_regions(&v, 0.1)), [("320311001001".to_owned(), IssueKind::Gap)]);

        // a 1 m² overlap: 003 reaching a sliver into 002
        let mut v = tiled();
        set(
            &mut v,
            "320311001001003",
            rect(X0 + 2.0 * CELL - width, Y0 + 2.0 * CELL, X0 + 3.0 * CELL, Y0 + 3.0 * CELL),
        );
        assert_eq!(validate_regions(&v, 10.0), vec![]);
        assert_eq!(kinds(&validate_regions(&v, 0.1)), [("320311001001002".to_owned(), IssueKind::Overlap)]);
    }

    /// A community cut into `xs.len() - 1` × `ys.len() - 1` grids along the given lines.
    fn cut(xs: &[f64], ys: &[f64]) -> Vec<RegionFeature> {
        let (x1, y1) = (xs[xs.len() - 1], ys[ys.len() - 1]);
        let outer = rect(xs[0], ys[0], x1, y1);
        let mut v =
            vec![region("320311", outer.clone()), region("320311001", outer.clone()), region("320311001001", outer)];
        let mut seq = 0;
        for row in ys.windows(2) {
            for col in xs.windows(2) {
                seq += 1;
                v.push(region(&format!("320311001001{seq:03}"), rect(col[0], row[0], col[1], row[1])));
            }
        }
        v
    }

    fn lines(start: f64, cuts: Vec<f64>) -> Vec<f64> {
        let mut xs: Vec<f64> = cuts.into_iter().map(|c| start + c).collect();
        xs.push(start);
        xs.push(start + 0.005);
        xs.sort_by(f64::total_cmp);
        xs.dedup_by(|a, b| (*a - *b).abs() < 1e-5);
        xs
    }

    proptest! {
        #[test]
        fn random_tilings_pass_and_a_removed_grid_is_the_gap(
            xcuts in prop::collection::vec(0.0001f64..0.0049, 1..5),
            ycuts in prop::collection::vec(0.0001f64..0.0049, 1..5),
            pick in 0usize..100,
        ) {
            let (xs, ys) = (lines(X0, xcuts), lines(Y0, ycuts));
            let v = cut(&xs, &ys);
            prop_assert_eq!(validate_regions(&v, 0.01), vec![]);

            let grids: Vec<usize> = (3..v.len()).collect();
            let gone = grids[pick % grids.len()];
            let mut w = v.clone();
            let removed = w.remove(gone);
            let issues = validate_regions(&w, 0.01);
            prop_assert_eq!(kinds(&issues), vec![("320311001001".to_owned(), IssueKind::Gap)]);
            let want = removed.polygon.unsigned_area() * m2_per_deg2(Y0 + 0.0025);
            prop_assert!(issues[0].detail.contains(&format!("{want:.1} m²")), "{} vs {want}", issues[0].detail);
        }
    }

    /// A city of 5 districts × 10 streets × 10 communities × 40 unit grids (20,000 grids).
    pub(crate) fn big_city() -> Vec<RegionFeature> {
        let mut v = Vec::new();
        let (cw, ch) = (8.0 * CELL, 5.0 * CELL);
        for d in 0..5u32 {
            let dx = X0 + f64::from(d) * 10.0 * cw;
            v.push(region(&format!("32030{}", d + 1), rect(dx, Y0, dx + 10.0 * cw, Y0 + 10.0 * ch)));
            for s in 0..10u32 {
                let sy = Y0 + f64::from(s) * ch;
                let scode = format!("32030{}{:03}", d + 1, s + 1);
                v.push(region(&scode, rect(dx, sy, dx + 10.0 * cw, sy + ch)));
                for c in 0..10u32 {
                    let cx = dx + f64::from(c) * cw;
                    let ccode = format!("{scode}{:03}", c + 1);
                    v.push(region(&ccode, rect(cx, sy, cx + cw, sy + ch)));
                    for g in 0..40u32 {
                        let (gx, gy) = (cx + f64::from(g % 8) * CELL, sy + f64::from(4 - g / 8) * CELL);
                        v.push(region(&format!("{ccode}{:03}", g + 1), rect(gx, gy, gx + CELL, gy + CELL)));
                    }
                }
            }
        }
        v
    }

    #[test]
    #[ignore = "timing: run with --release -- --ignored --nocapture"]
    fn timing_20000_grids() {
        let v = big_city();
        let start = std::time::Instant::now();
        let issues = validate_regions(&v, 0.1);
        let took = start.elapsed();
        println!("validate_regions on {} regions: {took:?}", v.len());
        assert_eq!(issues, vec![]);

        // The same with 400-vertex community, street and district boundaries (collinear points
        // added along each edge), as surveyed boundaries have.
        let v: Vec<RegionFeature> = v
            .into_iter()
            .map(|mut r| {
                if r.level() != RegionLevel::Grid {
                    r.polygon = MultiPolygon(r.polygon.0.iter().map(|p| densify(p, 100)).collect());
                }
                r
            })
            .collect();
        let start = std::time::Instant::now();
        let issues = validate_regions(&v, 0.1);
        println!("with 400-vertex parents: {:?}", start.elapsed());
        assert_eq!(issues, vec![]);
    }

    fn densify(p: &Polygon<f64>, n: u32) -> Polygon<f64> {
        let mut coords = Vec::new();
        for w in p.exterior().0.windows(2) {
            for k in 0..n {
                let t = f64::from(k) / f64::from(n);
                coords.push(geo::Coord { x: w[0].x + t * (w[1].x - w[0].x), y: w[0].y + t * (w[1].y - w[0].y) });
            }
        }
        Polygon::new(geo::LineString::new(coords), vec![])
    }

    #[test]
    fn a_big_city_passes_and_finds_one_fault() {
        let mut v = big_city();
        assert_eq!(v.len(), 5 + 50 + 500 + 20_000);
        // one grid missing somewhere in the middle
        v.retain(|r| r.code.as_str() != "320303005007021");
        assert_eq!(kinds(&validate_regions(&v, 0.1)), [("320303005007".to_owned(), IssueKind::Gap)]);
    }
}
