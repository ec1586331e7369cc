//! The component index (部件索引): a city's ~1,000,000 components (部件) as points in an R-tree.
//!
//! Two questions are asked of it all day: "which components of class X are within R metres of
//! this point?" — so a report of a broken manhole cover (井盖) can be linked to that cover's
//! 17-digit id — and "which components are in this box?" for map tiles and the big screen.
//!
//! The index is held in memory by the server, so each entry is kept to 32 bytes
//! ([`ComponentPoint`]: the id and class as numbers instead of strings, the state, the position)
//! and stored directly in the tree, without a second copy. Names, departments and the other
//! attributes stay in the database; the id is the key to them.

use crate::area::radius_bbox;
use crate::coord::distance_m;
use crate::layers::Component;
use citygrid_core::codes::ClassCode;
use citygrid_core::component::{ComponentId, ComponentState};
use geo::{Centroid, Geometry, InteriorPoint};
use rstar::{PointDistance, RTree, RTreeObject, AABB};

/// One component as the index holds it: 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComponentPoint {
    /// The 17-digit component id (部件标识码) as a number (it fits: 10^17 < 2^64); see
    /// [`ComponentPoint::id_string`].
    pub id: u64,
    /// The 5-digit class code as a number (`01001` → 1001); see [`ComponentPoint::class_code`].
    pub class: u32,
    pub state: ComponentState,
    /// WGS-84 degrees. For a line or area component, a representative point on it.
    pub lon: f64,
    pub lat: f64,
}

impl ComponentPoint {
    /// The point of a census component. Lines (a pipe, a fence) and areas (a lawn) are
    /// represented by a point guaranteed to lie on them (geo's `InteriorPoint`), not their
    /// centroid, which for a bent fence or a U-shaped lawn can lie off the component. `None`
    /// for an empty geometry or a non-finite position.
    pub fn from_component(component: &Component) -> Option<ComponentPoint> {
        let point = match &component.geometry {
            Geometry::Point(p) => Some(*p),
            g => g.interior_point().or_else(|| g.centroid()),
        }?;
        let (lon, lat) = (point.x(), point.y());
        if !lon.is_finite() || !lat.is_finite() {
            return None;
        }
        let id = component.id.as_str().parse::<u64>().ok()?;
        let class = component.id.class_code().as_str().parse::<u32>().ok()?;
        Some(ComponentPoint { id, class, state: component.state, lon, lat })
    }

    /// The id as its 17 digits, zero-padded (`32031101001000042`).
    pub fn id_string(&self) -> String {
        format!("{:017}", self.id)
    }

    /// The id as a [`ComponentId`]; `None` only for a hand-built point with an impossible id.
    pub fn component_id(&self) -> Option<ComponentId> {
        ComponentId::parse(&self.id_string()).ok()
    }

    /// The class as its 5 digits (`01001`).
    pub fn class_string(&self) -> String {
        format!("{:05}", self.class)
    }

    /// The class as a [`ClassCode`]; `None` only for a hand-built point with an impossible class.
    pub fn class_code(&self) -> Option<ClassCode> {
        ClassCode::parse(&self.class_string()).ok()
    }
}

impl RTreeObject for ComponentPoint {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_point([self.lon, self.lat])
    }
}

impl PointDistance for ComponentPoint {
    /// Squared distance in degrees: only used by rstar's generic queries; the metric answers of
    /// [`ComponentIndex`] are great-circle metres.
    fn distance_2(&self, point: &[f64; 2]) -> f64 {
        let (dx, dy) = (self.lon - point[0], self.lat - point[1]);
        dx * dx + dy * dy
    }
}

/// A class filter as the number stored in [`ComponentPoint::class`]. A malformed code matches
/// nothing rather than everything.
fn class_filter(class: Option<&ClassCode>) -> Option<Option<u32>> {
    match class {
        None => Some(None),
        Some(c) => c.as_str().parse::<u32>().ok().map(Some),
    }
}

/// All components of a city, indexed by position. Immutable once built: the server rebuilds it
/// after an import (bulk loading a million points takes well under a second in release).
#[derive(Debug, Clone)]
pub struct ComponentIndex {
    tree: RTree<ComponentPoint>,
}

impl ComponentIndex {
    /// Bulk-loads the tree (packed, so queries are faster than after one-by-one inserts). Points
    /// with a non-finite position are dropped: they could never be found and would poison the
    /// tree's boxes.
    pub fn new(mut points: Vec<ComponentPoint>) -> ComponentIndex {
        points.retain(|p| p.lon.is_finite() && p.lat.is_finite());
        ComponentIndex { tree: RTree::bulk_load(points) }
    }

    /// The components within `radius_m` metres (great-circle, edge included) of WGS-84
    /// `(lon, lat)`, of `class` if given, nearest first (ties by id), at most `limit`, each with
    /// its distance in metres.
    ///
    /// The tree is queried with a box that surely contains the circle, then distances are exact
    /// ([`distance_m`]): for the radii of a case (tens of metres) the box holds a handful of
    /// points.
    pub fn within_radius(
        &self,
        lon: f64,
        lat: f64,
        radius_m: f64,
        class: Option<&ClassCode>,
        limit: usize,
    ) -> Vec<(&ComponentPoint, f64)> {
        let Some(class) = class_filter(class) else {
            return Vec::new();
        };
        if limit == 0 || !lon.is_finite() || !lat.is_finite() || radius_m.is_nan() || radius_m < 0.0 {
            return Vec::new();
        }
        let (x0, y0, x1, y1) = radius_bbox(lon, lat, radius_m);
        let envelope = AABB::from_corners([x0, y0], [x1, y1]);
        let mut hits: Vec<(&ComponentPoint, f64)> = self
            .tree
            .locate_in_envelope(&envelope)
            .filter(|p| class.is_none_or(|c| p.class == c))
            .map(|p| (p, distance_m(lon, lat, p.lon, p.lat)))
            .filter(|&(_, d)| d <= radius_m)
            .collect();
        let order =
            |a: &(&ComponentPoint, f64), b: &(&ComponentPoint, f64)| a.1.total_cmp(&b.1).then(a.0.id.cmp(&b.0.id));
        // A wide radius with a small limit: partition first, so only the kept ones are sorted.
        if hits.len() > limit {
            hits.select_nth_unstable_by(limit - 1, order);
            hits.truncate(limit);
        }
        hits.sort_unstable_by(order);
        hits
    }

    /// The components inside the box `(min_lon, min_lat, max_lon, max_lat)` (edges included),
    /// of `class` if given, at most `limit`. Which ones are kept when there are more is
    /// unspecified but deterministic for one index (tree order); for tiles, thin them with
    /// [`crate::mvt::thin_points`] instead of relying on the limit.
    pub fn in_bbox(&self, bbox: (f64, f64, f64, f64), class: Option<&ClassCode>, limit: usize) -> Vec<&ComponentPoint> {
        let (Some(class), Some(envelope)) = (class_filter(class), envelope(bbox)) else {
            return Vec::new();
        };
        self.tree.locate_in_envelope(&envelope).filter(|p| class.is_none_or(|c| p.class == c)).take(limit).collect()
    }

    /// How many components [`ComponentIndex::in_bbox`] would find without a limit.
    pub fn count_in_bbox(&self, bbox: (f64, f64, f64, f64), class: Option<&ClassCode>) -> usize {
        let (Some(class), Some(envelope)) = (class_filter(class), envelope(bbox)) else {
            return 0;
        };
        self.tree.locate_in_envelope(&envelope).filter(|p| class.is_none_or(|c| p.class == c)).count()
    }

    /// Number of components.
    pub fn len(&self) -> usize {
        self.tree.size()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.size() == 0
    }

    /// All components, in tree order.
    pub fn iter(&self) -> impl Iterator<Item = &ComponentPoint> + '_ {
        self.tree.iter()
    }
}

/// The envelope of a `(min_lon, min_lat, max_lon, max_lat)` box, `None` for an inverted or
/// non-finite one (which contains nothing).
fn envelope(bbox: (f64, f64, f64, f64)) -> Option<AABB<[f64; 2]>> {
    let (x0, y0, x1, y1) = bbox;
    (x0 <= x1 && y0 <= y1 && [x0, y0, x1, y1].iter().all(|v| v.is_finite()))
        .then(|| AABB::from_corners([x0, y0], [x1, y1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use citygrid_core::codes::RegionCode;
    use citygrid_core::component::CreditCode;
    use geo::{line_string, point, polygon};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const CLASSES: [u32; 3] = [1001, 1002, 3012];

    fn random_points(n: usize, seed: u64) -> Vec<ComponentPoint> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| ComponentPoint {
                id: 32031101001000000 + i as u64,
                class: CLASSES[rng.gen_range(0..CLASSES.len())],
                state: ComponentState::ALL[rng.gen_range(0..5)],
                // about 2 km × 2 km around central Xuzhou
                lon: rng.gen_range(117.17..117.19),
                lat: rng.gen_range(34.25..34.27),
            })
            .collect()
    }

    #[test]
    fn within_radius_agrees_with_brute_force() {
        let points = random_points(20_000, 1);
        let idx = ComponentIndex::new(points.clone());
        assert_eq!(idx.len(), 20_000);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let class = ClassCode::parse("01002").unwrap();
        for round in 0..300 {
            let (lon, lat) = (rng.gen_range(117.165..117.195), rng.gen_range(34.245..34.275));
            let radius = rng.gen_range(0.0..120.0);
            let limit = if round % 3 == 0 { usize::MAX } else { rng.gen_range(1..20) };
            let filter = (round % 2 == 0).then_some(&class);
            let got: Vec<(u64, f64)> =
                idx.within_radius(lon, lat, radius, filter, limit).into_iter().map(|(p, d)| (p.id, d)).collect();
            let mut want: Vec<(u64, f64)> = points
                .iter()
                .filter(|p| filter.is_none() || p.class == 1002)
                .map(|p| (p.id, distance_m(lon, lat, p.lon, p.lat)))
                .filter(|&(_, d)| d <= radius)
                .collect();
            want.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            want.truncate(limit);
            assert_eq!(got, want, "round {round}: ({lon}, {lat}) r={radius} limit={limit}");
        }
    }

    #[test]
    fn bbox_queries_agree_with_brute_force() {
        let points = random_points(20_000, 3);
        let idx = ComponentIndex::new(points.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let class = ClassCode::parse("03012").unwrap();
        for round in 0..200 {
            let (x0, y0) = (rng.gen_range(117.16..117.20), rng.gen_range(34.24..34.28));
            let bbox = (x0, y0, x0 + rng.gen_range(0.0..0.005), y0 + rng.gen_range(0.0..0.005));
            let filter = (round % 2 == 1).then_some(&class);
            let inside = |p: &&ComponentPoint| {
                (filter.is_none() || p.class == 3012)
                    && (bbox.0..=bbox.2).contains(&p.lon)
                    && (bbox.1..=bbox.3).contains(&p.lat)
            };
            let mut want: Vec<u64> = points.iter().filter(inside).map(|p| p.id).collect();
            want.sort_unstable();
            let mut got: Vec<u64> = idx.in_bbox(bbox, filter, usize::MAX).into_iter().map(|p| p.id).collect();
            got.sort_unstable();
            assert_eq!(got, want, "round {round}");
            assert_eq!(idx.count_in_bbox(bbox, filter), want.len());
            let limited = idx.in_bbox(bbox, filter, 3);
            assert_eq!(limited.len(), want.len().min(3));
            assert!(limited.iter().all(|p| want.contains(&p.id)));
        }
    }

    #[test]
    fn edge_cases() {
        let idx = ComponentIndex::new(vec![
            ComponentPoint { id: 1, class: 1001, state: ComponentState::Intact, lon: 117.18, lat: 34.26 },
            ComponentPoint { id: 2, class: 1001, state: ComponentState::Intact, lon: f64::NAN, lat: 34.26 },
        ]);
        assert_eq!(idx.len(), 1, "non-finite positions are dropped");
        // radius 0 finds the point itself, at distance 0
        let hits = idx.within_radius(117.18, 34.26, 0.0, None, 10);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].1, 0.0);
        assert!(idx.within_radius(117.18, 34.26, 10.0, None, 0).is_empty());
        assert!(idx.within_radius(117.18, 34.26, -1.0, None, 10).is_empty());
        assert!(idx.within_radius(117.18, 34.26, f64::NAN, None, 10).is_empty());
        assert!(idx.within_radius(f64::NAN, 34.26, 10.0, None, 10).is_empty());
        assert!(idx.in_bbox((118.0, 34.0, 117.0, 35.0), None, 10).is_empty(), "inverted box");
        assert_eq!(idx.count_in_bbox((117.18, 34.26, 117.18, 34.26), None), 1, "edges included");
        let other = ClassCode::parse("01002").unwrap();
        assert!(idx.within_radius(117.18, 34.26, 10.0, Some(&other), 10).is_empty());
        assert_eq!(idx.iter().count(), 1);
        assert!(ComponentIndex::new(Vec::new()).is_empty());
    }

    fn component(geometry: Geometry<f64>) -> Component {
        Component {
            id: ComponentId::parse("32031101001000042").unwrap(),
            legacy_id: None,
            name: "上水井盖".to_owned(),
            dept_credit_code: CreditCode::parse("91350100M000100Y43").unwrap(),
            dept_name: "自来水公司".to_owned(),
            grid_code: RegionCode::parse("320311001001001").unwrap(),
            state: ComponentState::Damaged,
            start_date: jiff::civil::date(2024, 5, 1),
            owner: None,
            maintainer: None,
            change_date: None,
            data_source: None,
            note: None,
            geometry,
        }
    }

    #[test]
    fn from_component_and_codes() {
        let p = ComponentPoint::from_component(&component(point!(x: 117.18, y: 34.26).into())).unwrap();
        assert_eq!(
            (p.id, p.class, p.state, p.lon, p.lat),
            (32031101001000042, 1001, ComponentState::Damaged, 117.18, 34.26)
        );
        assert_eq!(p.id_string(), "32031101001000042");
        assert_eq!(p.class_string(), "01001");
        assert_eq!(p.class_code().unwrap().as_str(), "01001");
        assert_eq!(p.component_id().unwrap().as_str(), "32031101001000042");
        assert_eq!(std::mem::size_of::<ComponentPoint>(), 32);

        // An L-shaped fence: its centroid is off the fence, the representative point is on it.
        let fence = line_string![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 1.0)];
        let p = ComponentPoint::from_component(&component(fence.clone().into())).unwrap();
        assert!(fence.0.iter().any(|c| (c.x, c.y) == (p.lon, p.lat)), "({}, {})", p.lon, p.lat);
        // A U-shaped lawn: the representative point is inside it.
        let lawn = polygon![(x: 0.0, y: 0.0), (x: 3.0, y: 0.0), (x: 3.0, y: 3.0), (x: 2.0, y: 3.0), (x: 2.0, y: 1.0),
            (x: 1.0, y: 1.0), (x: 1.0, y: 3.0), (x: 0.0, y: 3.0), (x: 0.0, y: 0.0)];
        let p = ComponentPoint::from_component(&component(lawn.clone().into())).unwrap();
        assert!(geo::Intersects::intersects(&lawn, &geo::Coord { x: p.lon, y: p.lat }));
        let empty = geo::MultiPoint::<f64>(vec![]);
        assert!(ComponentPoint::from_component(&component(empty.into())).is_none());
    }
}
