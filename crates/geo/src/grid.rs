//! Unit grids (单元网格) as polygons, and the index that finds the grid a point lies in.
//!
//! Every report (上报) carries a position, and the case must be filed against the unit grid that
//! contains it: that grid decides the community, street and district responsible, and is what
//! evaluation counts by. This lookup happens for every report and every map click, so
//! [`GridIndex`] keeps an R-tree over the bounding boxes of all grid polygons and runs the exact
//! point-in-polygon test only on the few candidates whose box contains the point, without
//! allocating.
//!
//! Unit grids tile the city without gaps or overlaps, but they share edges. A point exactly on a
//! shared edge or vertex lies in two or more grids (polygons are closed sets here); it is given to
//! the grid with the lowest code, so the answer never depends on the order of the input or of
//! the tree.

use crate::GeoError;
use citygrid_core::codes::{RegionCode, RegionLevel};
use geo::{
    Area, BooleanOps, BoundingRect, Centroid, Contains, Coord, CoordsIter, Intersects, MultiPolygon, Validation,
};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, RTreeObject};

/// A unit grid: its 15-digit code and its area, in WGS-84 degrees.
#[derive(Debug, Clone, PartialEq)]
pub struct GridPolygon {
    pub code: RegionCode,
    pub polygon: MultiPolygon<f64>,
}

/// One R-tree entry: the bounding box of one polygon of one grid, with (index of the grid in
/// [`GridIndex::grids`], index of the polygon in its multipolygon). Indexing parts separately
/// keeps the boxes tight for grids made of several pieces.
type Entry = GeomWithData<Rectangle<[f64; 2]>, (usize, usize)>;

/// All unit grids of a city, indexed for point lookup. Immutable once built: a new version of
/// the grid map builds a new index.
#[derive(Debug, Clone)]
pub struct GridIndex {
    /// Sorted by code, so a position in this vector orders grids the way the tie-break does and
    /// [`GridIndex::get`] is a binary search.
    grids: Vec<GridPolygon>,
    /// Centroid of each grid, same order as `grids`, computed once at build.
    centroids: Vec<(f64, f64)>,
    tree: RTree<Entry>,
    bbox: Option<(f64, f64, f64, f64)>,
    /// Per grid: no other grid's interior overlaps its interior. A point strictly inside such a
    /// grid can be in no other grid at all (another grid's boundary through that point would
    /// put part of its interior there too), so the lookup may stop at the first hit instead of
    /// scanning every candidate for a lower code. In a proper tiling every grid is exclusive.
    exclusive: Vec<bool>,
}

/// Overlaps smaller than this (in square degrees, about 1 cm² here) are floating-point noise
/// along shared edges, not real overlaps.
const OVERLAP_NOISE: f64 = 1e-14;

impl GridIndex {
    /// Builds the index, refusing data that would give wrong answers later: codes that are not
    /// 15-digit grid codes, duplicate codes, empty or invalid polygons (OGC validity: closed
    /// rings, no self-intersection, holes inside their shell, parts not overlapping), polygons
    /// with zero area, and coordinates that cannot be WGS-84 degrees.
    ///
    /// Overlaps *between* different grids are not checked here (that is a quadratic job for the
    /// grid editor); where they exist the lowest code wins, as on shared edges.
    pub fn new(mut grids: Vec<GridPolygon>) -> Result<GridIndex, GeoError> {
        grids.sort_by(|a, b| a.code.cmp(&b.code));
        for pair in grids.windows(2) {
            if pair[0].code == pair[1].code {
                return Err(GeoError::DuplicateGrid { code: pair[0].code.clone() });
            }
        }

        let mut centroids = Vec::with_capacity(grids.len());
        let mut entries = Vec::with_capacity(grids.len());
        let mut bbox: Option<(f64, f64, f64, f64)> = None;
        for (gi, grid) in grids.iter().enumerate() {
            let centroid = check_grid(grid)?;
            centroids.push(centroid);
            for (pi, part) in grid.polygon.0.iter().enumerate() {
                // check_grid has rejected empty parts, so every part has a bounding box.
                let Some(rect) = part.bounding_rect() else {
                    return Err(GeoError::EmptyPolygon { code: grid.code.clone() });
                };
                let (min, max) = (rect.min(), rect.max());
                entries.push(GeomWithData::new(Rectangle::from_corners([min.x, min.y], [max.x, max.y]), (gi, pi)));
                bbox = Some(match bbox {
                    None => (min.x, min.y, max.x, max.y),
                    Some((x0, y0, x1, y1)) => (x0.min(min.x), y0.min(min.y), x1.max(max.x), y1.max(max.y)),
                });
            }
        }

        let tree = RTree::bulk_load(entries);
        let exclusive = exclusive_grids(&grids, &tree);
        Ok(GridIndex { grids, centroids, tree, bbox, exclusive })
    }

    /// The code of the unit grid containing WGS-84 `(lon, lat)`, or `None` outside every grid
    /// or for a non-finite coordinate. On a shared edge or vertex the lowest code wins.
    pub fn locate(&self, lon: f64, lat: f64) -> Option<&RegionCode> {
        self.locate_index(lon, lat).map(|i| &self.grids[i].code)
    }

    /// Like [`GridIndex::locate`], returning the whole grid.
    pub fn locate_grid(&self, lon: f64, lat: f64) -> Option<&GridPolygon> {
        self.locate_index(lon, lat).map(|i| &self.grids[i])
    }

    fn locate_index(&self, lon: f64, lat: f64) -> Option<usize> {
        if !lon.is_finite() || !lat.is_finite() {
            return None;
        }
        let point = Coord { x: lon, y: lat };
        let mut best: Option<usize> = None;
        for entry in self.tree.locate_all_at_point(&[lon, lat]) {
            let (gi, pi) = entry.data;
            // A lower code already contains the point: this candidate cannot win the tie-break,
            // so skip its (more expensive) polygon test.
            if best.is_some_and(|b| b <= gi) {
                continue;
            }
            let part = &self.grids[gi].polygon.0[pi];
            if self.exclusive[gi] && part.contains(&point) {
                return Some(gi);
            }
            // `intersects` treats the polygon as closed, so points on the boundary count.
            if part.intersects(&point) {
                best = Some(gi);
            }
        }
        best
    }

    /// The grids whose bounding box meets `(min_lon, min_lat, max_lon, max_lat)`, by code, each
    /// once: what a map view or a tile needs to draw.
    pub fn in_bbox(&self, bbox: (f64, f64, f64, f64)) -> Vec<&GridPolygon> {
        let envelope = rstar::AABB::from_corners([bbox.0, bbox.1], [bbox.2, bbox.3]);
        let mut hits: Vec<usize> = self.tree.locate_in_envelope_intersecting(&envelope).map(|e| e.data.0).collect();
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter().map(|i| &self.grids[i]).collect()
    }

    /// Number of unit grids.
    pub fn len(&self) -> usize {
        self.grids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grids.is_empty()
    }

    /// `(min_lon, min_lat, max_lon, max_lat)` of all grids, `None` for an empty index.
    pub fn bbox(&self) -> Option<(f64, f64, f64, f64)> {
        self.bbox
    }

    /// The grid with this code.
    pub fn get(&self, code: &RegionCode) -> Option<&GridPolygon> {
        self.position(code).map(|i| &self.grids[i])
    }

    /// The centroid `(lon, lat)` of the grid with this code. For a concave grid the centroid may
    /// lie outside it; it is meant for labels and "zoom to", not for containment.
    pub fn centroid(&self, code: &RegionCode) -> Option<(f64, f64)> {
        self.position(code).map(|i| self.centroids[i])
    }

    /// All grids, sorted by code.
    pub fn grids(&self) -> &[GridPolygon] {
        &self.grids
    }

    /// All grids, sorted by code.
    pub fn iter(&self) -> std::slice::Iter<'_, GridPolygon> {
        self.grids.iter()
    }

    fn position(&self, code: &RegionCode) -> Option<usize> {
        self.grids.binary_search_by(|g| g.code.cmp(code)).ok()
    }
}

impl<'a> IntoIterator for &'a GridIndex {
    type Item = &'a GridPolygon;
    type IntoIter = std::slice::Iter<'a, GridPolygon>;
    fn into_iter(self) -> Self::IntoIter {
        self.grids.iter()
    }
}

/// Which grids no other grid's interior overlaps: pairs of parts whose boxes meet are
/// intersected exactly (neighbours in a tiling share edges, and their intersection has no area).
fn exclusive_grids(grids: &[GridPolygon], tree: &RTree<Entry>) -> Vec<bool> {
    let mut exclusive = vec![true; grids.len()];
    for entry in tree.iter() {
        let (gi, pi) = entry.data;
        for other in tree.locate_in_envelope_intersecting(&entry.geom().envelope()) {
            let (gj, pj) = other.data;
            // Each unordered pair once; parts of one grid were checked by its validation.
            if gj <= gi {
                continue;
            }
            let (a, b) = (&grids[gi].polygon.0[pi], &grids[gj].polygon.0[pj]);
            if a.intersection(b).unsigned_area() > OVERLAP_NOISE {
                exclusive[gi] = false;
                exclusive[gj] = false;
            }
        }
    }
    exclusive
}

/// Checks one grid and returns its centroid.
fn check_grid(grid: &GridPolygon) -> Result<(f64, f64), GeoError> {
    let code = &grid.code;
    if code.level() != RegionLevel::Grid {
        return Err(GeoError::NotAGridCode { code: code.as_str().to_owned() });
    }
    if grid.polygon.0.is_empty() || grid.polygon.0.iter().any(|p| p.exterior().0.is_empty()) {
        return Err(GeoError::EmptyPolygon { code: code.clone() });
    }
    // Range before validity: projected metres or NaN would otherwise surface as a confusing
    // geometric error. The negated range test also catches NaN.
    let in_range = grid.polygon.coords_iter().all(|c| (-180.0..=180.0).contains(&c.x) && (-90.0..=90.0).contains(&c.y));
    if !in_range {
        return Err(GeoError::OutOfRange { code: code.clone() });
    }
    if let Err(e) = grid.polygon.check_validation() {
        return Err(GeoError::InvalidPolygon { code: code.clone(), reason: e.to_string() });
    }
    if grid.polygon.0.iter().any(|p| p.unsigned_area() <= 0.0) {
        return Err(GeoError::InvalidPolygon { code: code.clone(), reason: "zero area".to_owned() });
    }
    match grid.polygon.centroid() {
        Some(c) => Ok((c.x(), c.y())),
        None => Err(GeoError::InvalidPolygon { code: code.clone(), reason: "no centroid".to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, Contains, LineString, Point, Polygon};

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon<f64> {
        polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)]
    }

    fn grid(c: &str, polys: Vec<Polygon<f64>>) -> GridPolygon {
        GridPolygon { code: code(c), polygon: MultiPolygon(polys) }
    }

    /// 2 × 2 unit squares; codes deliberately not in spatial order, and given out of order.
    fn two_by_two() -> GridIndex {
        GridIndex::new(vec![
            grid("320311001001004", vec![square(1.0, 1.0, 2.0, 2.0)]),
            grid("320311001001002", vec![square(1.0, 0.0, 2.0, 1.0)]),
            grid("320311001001003", vec![square(0.0, 1.0, 1.0, 2.0)]),
            grid("320311001001001", vec![square(0.0, 0.0, 1.0, 1.0)]),
        ])
        .unwrap()
    }

    #[test]
    fn interior_points() {
        let idx = two_by_two();
        assert_eq!(idx.locate(0.5, 0.5).unwrap().as_str(), "320311001001001");
        assert_eq!(idx.locate(1.5, 0.5).unwrap().as_str(), "320311001001002");
        assert_eq!(idx.locate(0.5, 1.5).unwrap().as_str(), "320311001001003");
        assert_eq!(idx.locate(1.5, 1.5).unwrap().as_str(), "320311001001004");
        assert_eq!(idx.locate_grid(1.5, 1.5).unwrap().code.as_str(), "320311001001004");
    }

    #[test]
    fn shared_edges_and_vertices_go_to_the_lowest_code() {
        let idx = two_by_two();
        // vertical edge between 003 and 004
        assert_eq!(idx.locate(1.0, 1.5).unwrap().as_str(), "320311001001003");
        // horizontal edge between 002 and 004
        assert_eq!(idx.locate(1.5, 1.0).unwrap().as_str(), "320311001001002");
        // the vertex all four share
        assert_eq!(idx.locate(1.0, 1.0).unwrap().as_str(), "320311001001001");
        // the outer boundary belongs to the grid
        assert_eq!(idx.locate(2.0, 2.0).unwrap().as_str(), "320311001001004");
        assert_eq!(idx.locate(0.0, 0.3).unwrap().as_str(), "320311001001001");
    }

    #[test]
    fn outside_and_non_finite_are_none() {
        let idx = two_by_two();
        for (x, y) in [(-0.1, 0.5), (2.0001, 1.0), (1.0, -1e-9), (50.0, 50.0)] {
            assert_eq!(idx.locate(x, y), None, "({x}, {y})");
        }
        for (x, y) in [(f64::NAN, 0.5), (0.5, f64::NAN), (f64::INFINITY, 0.5), (0.5, f64::NEG_INFINITY)] {
            assert_eq!(idx.locate(x, y), None);
            assert!(idx.locate_grid(x, y).is_none());
        }
    }

    #[test]
    fn a_tiling_is_exclusive_everywhere() {
        assert!(two_by_two().exclusive.iter().all(|e| *e));
        // Touching at a corner only, and a grid inside another's hole, are not overlaps.
        let ring = Polygon::new(
            LineString::from(vec![(0.0, 0.0), (3.0, 0.0), (3.0, 3.0), (0.0, 3.0), (0.0, 0.0)]),
            vec![LineString::from(vec![(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0), (1.0, 1.0)])],
        );
        let idx = GridIndex::new(vec![
            grid("320303001002005", vec![ring]),
            grid("320303001002006", vec![square(1.0, 1.0, 2.0, 2.0)]),
            grid("320303001002007", vec![square(3.0, 3.0, 4.0, 4.0)]),
        ])
        .unwrap();
        assert_eq!(idx.exclusive, [true, true, true]);
    }

    #[test]
    fn accessors() {
        let idx = two_by_two();
        assert_eq!(idx.len(), 4);
        assert!(!idx.is_empty());
        assert_eq!(idx.bbox(), Some((0.0, 0.0, 2.0, 2.0)));
        let c = code("320311001001004");
        assert_eq!(idx.get(&c).unwrap().code, c);
        assert_eq!(idx.centroid(&c), Some((1.5, 1.5)));
        assert!(idx.get(&code("320311001001009")).is_none());
        assert!(idx.centroid(&code("320311001001009")).is_none());
        let codes: Vec<&str> = idx.iter().map(|g| g.code.as_str()).collect();
        assert_eq!(codes, ["320311001001001", "320311001001002", "320311001001003", "320311001001004"]);
        assert_eq!((&idx).into_iter().count(), idx.grids().len());
        let codes: Vec<&str> = idx.in_bbox((0.2, 0.2, 0.8, 1.5)).iter().map(|g| g.code.as_str()).collect();
        assert_eq!(codes, ["320311001001001", "320311001001003"]);
        assert!(idx.in_bbox((5.0, 5.0, 6.0, 6.0)).is_empty());
    }

    #[test]
    fn empty_index() {
        let idx = GridIndex::new(Vec::new()).unwrap();
        assert!(idx.is_empty());
        assert_eq!(idx.len(), 0);
        assert_eq!(idx.bbox(), None);
        assert_eq!(idx.locate(117.18, 34.26), None);
    }

    #[test]
    fn holes_and_multipart_grids() {
        // A ring-shaped grid around a courtyard that is its own grid, and a two-part grid.
        let ring = Polygon::new(
            LineString::from(vec![(0.0, 0.0), (3.0, 0.0), (3.0, 3.0), (0.0, 3.0), (0.0, 0.0)]),
            vec![LineString::from(vec![(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0), (1.0, 1.0)])],
        );
        let idx = GridIndex::new(vec![
            grid("320303001002005", vec![ring]),
            grid("320303001002006", vec![square(1.0, 1.0, 2.0, 2.0)]),
            grid("320303001002007", vec![square(5.0, 0.0, 6.0, 1.0), square(8.0, 0.0, 9.0, 1.0)]),
        ])
        .unwrap();
        assert_eq!(idx.locate(0.5, 0.5).unwrap().as_str(), "320303001002005");
        assert_eq!(idx.locate(1.5, 1.5).unwrap().as_str(), "320303001002006");
        // the courtyard's edge is shared: the lower code (the ring) wins
        assert_eq!(idx.locate(1.0, 1.5).unwrap().as_str(), "320303001002005");
        assert_eq!(idx.locate(5.5, 0.5).unwrap().as_str(), "320303001002007");
        assert_eq!(idx.locate(8.5, 0.5).unwrap().as_str(), "320303001002007");
        // between the two parts: inside the multipolygon's bounding box but in no grid
        assert_eq!(idx.locate(7.0, 0.5), None);
        assert_eq!(idx.bbox(), Some((0.0, 0.0, 9.0, 3.0)));
    }

    #[test]
    fn overlapping_grids_resolve_to_the_lowest_code() {
        let idx = GridIndex::new(vec![
            grid("320311001001002", vec![square(0.0, 0.0, 2.0, 2.0)]),
            grid("320311001001001", vec![square(1.0, 1.0, 3.0, 3.0)]),
        ])
        .unwrap();
        assert_eq!(idx.locate(1.5, 1.5).unwrap().as_str(), "320311001001001");
        assert_eq!(idx.locate(0.5, 0.5).unwrap().as_str(), "320311001001002");
        // Neither may stop at its first hit.
        assert_eq!(idx.exclusive, [false, false]);
    }

    #[test]
    fn refusals() {
        let ok = square(0.0, 0.0, 1.0, 1.0);
        let refuse = |grids: Vec<GridPolygon>| GridIndex::new(grids).unwrap_err();

        // a community code is a valid region code but not a grid code
        assert_eq!(
            refuse(vec![grid("320311001001", vec![ok.clone()])]),
            GeoError::NotAGridCode { code: "320311001001".to_owned() }
        );
        assert_eq!(
            refuse(vec![
                grid("320311001001001", vec![ok.clone()]),
                grid("320311001001001", vec![square(2.0, 2.0, 3.0, 3.0)])
            ]),
            GeoError::DuplicateGrid { code: code("320311001001001") }
        );
        assert_eq!(
            refuse(vec![grid("320311001001001", vec![])]),
            GeoError::EmptyPolygon { code: code("320311001001001") }
        );
        assert_eq!(
            refuse(vec![grid("320311001001001", vec![Polygon::new(LineString::new(vec![]), vec![])])]),
            GeoError::EmptyPolygon { code: code("320311001001001") }
        );
        // a bow tie crosses itself
        let bow_tie =
            polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 1.0), (x: 1.0, y: 0.0), (x: 0.0, y: 1.0), (x: 0.0, y: 0.0)];
        assert!(matches!(refuse(vec![grid("320311001001001", vec![bow_tie])]), GeoError::InvalidPolygon { .. }));
        // two overlapping parts of one grid
        assert!(matches!(
            refuse(vec![grid("320311001001001", vec![ok.clone(), square(0.5, 0.5, 1.5, 1.5)])]),
            GeoError::InvalidPolygon { .. }
        ));
        // a hole outside its shell
        let bad_hole = Polygon::new(
            ok.exterior().clone(),
            vec![LineString::from(vec![(5.0, 5.0), (6.0, 5.0), (6.0, 6.0), (5.0, 5.0)])],
        );
        assert!(matches!(refuse(vec![grid("320311001001001", vec![bad_hole])]), GeoError::InvalidPolygon { .. }));
        // a flat ring
        let flat = polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 2.0, y: 0.0), (x: 0.0, y: 0.0)];
        assert!(matches!(refuse(vec![grid("320311001001001", vec![flat])]), GeoError::InvalidPolygon { .. }));
        // Gauss-Krüger metres instead of degrees, and a NaN vertex
        assert_eq!(
            refuse(vec![grid("320311001001001", vec![square(500_000.0, 3_790_000.0, 500_100.0, 3_790_100.0)])]),
            GeoError::OutOfRange { code: code("320311001001001") }
        );
        assert_eq!(
            refuse(vec![grid("320311001001001", vec![square(0.0, 0.0, f64::NAN, 1.0)])]),
            GeoError::OutOfRange { code: code("320311001001001") }
        );
        // the error names the culprit
        let msg = refuse(vec![grid("320311001001", vec![ok])]).to_string();
        assert!(msg.contains("320311001001"), "{msg}");
    }

    #[test]
    fn locate_agrees_with_contains_off_the_edges() {
        let idx = two_by_two();
        for i in 0..40 {
            for j in 0..40 {
                let (x, y) = (0.025 + 0.05 * f64::from(i), 0.025 + 0.05 * f64::from(j));
                let p = Point::new(x, y);
                let holders: Vec<&GridPolygon> = idx.iter().filter(|g| g.polygon.contains(&p)).collect();
                assert_eq!(holders.len(), 1);
                assert_eq!(idx.locate(x, y), Some(&holders[0].code));
            }
        }
    }

    /// A jittered lattice (shared vertices), optionally with one extra grid laid over others.
    fn jittered(n: usize, seed: u64, extra: bool) -> Vec<GridPolygon> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut rnd = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f64) / f64::from(u32::MAX) - 0.5
        };
        let v: Vec<Vec<(f64, f64)>> =
            (0..=n).map(|i| (0..=n).map(|j| (i as f64 + 0.3 * rnd(), j as f64 + 0.3 * rnd())).collect()).collect();
        let mut grids = Vec::new();
        for i in 0..n {
            for j in 0..n {
                let ring = vec![v[i][j], v[i + 1][j], v[i + 1][j + 1], v[i][j + 1], v[i][j]];
                let code = format!("320311001001{:03}", i * n + j + 2);
                grids.push(grid(&code, vec![Polygon::new(LineString::from(ring), vec![])]));
            }
        }
        if extra {
            grids.push(grid("320311001001001", vec![square(0.5, 0.5, 2.5, 1.7)]));
        }
        grids
    }

    proptest::proptest! {
        #[test]
        fn early_exit_never_changes_the_answer(seed in 0u64..1000, extra in proptest::bool::ANY,
                                               pts in proptest::collection::vec((0.0f64..6.0, 0.0f64..6.0), 50)) {
            let grids = jittered(6, seed, extra);
            let idx = GridIndex::new(grids.clone()).unwrap();
            // Random points, plus every vertex and edge midpoint (the boundary cases).
            let mut probes = pts;
            for g in &grids {
                let ring = &g.polygon.0[0].exterior().0;
                for w in ring.windows(2) {
                    probes.push((w[0].x, w[0].y));
                    probes.push(((w[0].x + w[1].x) / 2.0, (w[0].y + w[1].y) / 2.0));
                }
            }
            for (x, y) in probes {
                let p = Coord { x, y };
                let want = grids.iter().filter(|g| g.polygon.intersects(&p)).map(|g| &g.code).min();
                proptest::prop_assert_eq!(idx.locate(x, y), want, "({}, {})", x, y);
            }
        }
    }
}
