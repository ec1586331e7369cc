//! Responsibility areas (责任区) and kiosks (岗亭): "whose area is this point in?".
//!
//! A report's position decides more than its unit grid: the patrol district (巡查片区) whose
//! squad enforces there, the collector (监督员) who should verify it, the cleaning contractor
//! (保洁单位) who must sweep it and the department whose jurisdiction (管辖区) it falls in. Each of
//! these is a layer of polygons ([`AreaLayer`]); [`AreaIndex`] holds all four layers in one
//! structure with one R-tree per layer, and answers the point lookup the way
//! [`crate::grid::GridIndex`] does: bounding boxes first, the exact point-in-polygon test only
//! on the few candidates, the lowest code winning where polygons share an edge or overlap.
//!
//! [`KioskIndex`] finds the nearest kiosk, the fixed post an urgent case is sent to first.

use crate::coord::distance_m;
use crate::layers::{Area, AreaLayer, Kiosk};
use geo::{Area as _, BoundingRect, Coord, CoordsIter, Intersects, Rect, Validation};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

/// Why a set of responsibility areas was refused. [`crate::GeoError`] names unit grids by
/// their [`citygrid_core::codes::RegionCode`]; areas have free-form codes per layer, hence this
/// error of their own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AreaError {
    /// An area is keyed by (layer, code): the same code twice in one layer is ambiguous.
    #[error("{} area {code} appears more than once", layer.as_str())]
    Duplicate { layer: AreaLayer, code: String },
    #[error("{} area {code:?} has no code", layer.as_str())]
    EmptyCode { layer: AreaLayer, code: String },
    #[error("{} area {code} has no polygon", layer.as_str())]
    EmptyPolygon { layer: AreaLayer, code: String },
    /// Self-intersections, unclosed or degenerate rings, holes outside the shell, zero area.
    #[error("{} area {code} has an invalid polygon: {reason}", layer.as_str())]
    InvalidPolygon { layer: AreaLayer, code: String, reason: String },
    /// Usually projected coordinates (metres) or swapped axes instead of WGS-84 degrees.
    #[error("{} area {code} has coordinates outside -180..180 / -90..90 (expected WGS-84 degrees)", layer.as_str())]
    OutOfRange { layer: AreaLayer, code: String },
    /// A kiosk position must be WGS-84 degrees too.
    #[error("kiosk {code} has coordinates outside -180..180 / -90..90 (expected WGS-84 degrees)")]
    KioskOutOfRange { code: String },
    #[error("kiosk {code} appears more than once")]
    DuplicateKiosk { code: String },
}

/// One R-tree entry: the bounding box of one polygon part of one area, with (index of the area
/// in [`AreaIndex::areas`], index of the part). As in `GridIndex`, parts are indexed separately
/// so the boxes of multi-part areas stay tight.
type Entry = GeomWithData<Rectangle<[f64; 2]>, (usize, usize)>;

fn layer_slot(layer: AreaLayer) -> usize {
    match layer {
        AreaLayer::PatrolDistrict => 0,
        AreaLayer::CollectorArea => 1,
        AreaLayer::ContractorArea => 2,
        AreaLayer::Jurisdiction => 3,
    }
}

/// All responsibility areas of a city, every layer, indexed for point and box lookup.
/// Immutable once built: an edited layer builds a new index.
#[derive(Debug, Clone)]
pub struct AreaIndex {
    /// Sorted by (layer, code): each layer is a contiguous run (see `ranges`), a position orders
    /// areas the way the tie-break does, and [`AreaIndex::get`] is a binary search.
    areas: Vec<Area>,
    /// The run of `areas` holding each layer, in [`layer_slot`] order.
    ranges: [std::ops::Range<usize>; 4],
    /// One tree per layer, so a lookup in one layer never visits another's boxes.
    trees: [RTree<Entry>; 4],
}

impl AreaIndex {
    /// Builds the index, refusing data that would give wrong answers later: duplicate
    /// (layer, code), empty codes, empty or invalid polygons (OGC validity, zero area) and
    /// coordinates that cannot be WGS-84 degrees. Overlaps between areas of one layer are not
    /// refused (contractor areas do overlap in practice); the lowest code wins there.
    pub fn new(mut areas: Vec<Area>) -> Result<AreaIndex, AreaError> {
        areas.sort_by(|a, b| (a.layer, &a.code).cmp(&(b.layer, &b.code)));
        for pair in areas.windows(2) {
            if pair[0].layer == pair[1].layer && pair[0].code == pair[1].code {
                return Err(AreaError::Duplicate { layer: pair[0].layer, code: pair[0].code.clone() });
            }
        }
        let mut entries: [Vec<Entry>; 4] = Default::default();
        for (ai, area) in areas.iter().enumerate() {
            check_area(area)?;
            for (pi, part) in area.polygon.0.iter().enumerate() {
                let Some(rect) = part.bounding_rect() else {
                    return Err(AreaError::EmptyPolygon { layer: area.layer, code: area.code.clone() });
                };
                let (min, max) = (rect.min(), rect.max());
                let entry = GeomWithData::new(Rectangle::from_corners([min.x, min.y], [max.x, max.y]), (ai, pi));
                entries[layer_slot(area.layer)].push(entry);
            }
        }
        let ranges = AreaLayer::ALL.map(|layer| {
            let start = areas.partition_point(|a| a.layer < layer);
            let end = areas.partition_point(|a| a.layer <= layer);
            start..end
        });
        let trees = entries.map(RTree::bulk_load);
        Ok(AreaIndex { areas, ranges, trees })
    }

    /// The area of `layer` containing WGS-84 `(lon, lat)`, or `None` outside every area of the
    /// layer or for a non-finite coordinate. On a shared edge or an overlap the lowest code wins.
    pub fn locate(&self, layer: AreaLayer, lon: f64, lat: f64) -> Option<&Area> {
        if !lon.is_finite() || !lat.is_finite() {
            return None;
        }
        let point = Coord { x: lon, y: lat };
        let mut best: Option<usize> = None;
        for entry in self.trees[layer_slot(layer)].locate_all_at_point(&[lon, lat]) {
            let (ai, pi) = entry.data;
            // A lower code already holds the point: this candidate cannot win the tie-break.
            if best.is_some_and(|b| b <= ai) {
                continue;
            }
            // `intersects` treats the polygon as closed, so boundary points count.
            if self.areas[ai].polygon.0[pi].intersects(&point) {
                best = Some(ai);
            }
        }
        best.map(|i| &self.areas[i])
    }

    /// The area of every layer containing the point, at most one per layer, in
    /// [`AreaLayer::ALL`] order.
    pub fn locate_all(&self, lon: f64, lat: f64) -> Vec<&Area> {
        AreaLayer::ALL.into_iter().filter_map(|layer| self.locate(layer, lon, lat)).collect()
    }

    /// The area of `layer` with this code.
    pub fn get(&self, layer: AreaLayer, code: &str) -> Option<&Area> {
        let run = &self.areas[self.ranges[layer_slot(layer)].clone()];
        run.binary_search_by(|a| a.code.as_str().cmp(code)).ok().map(|i| &run[i])
    }

    /// All areas of `layer`, sorted by code.
    pub fn layer(&self, layer: AreaLayer) -> impl Iterator<Item = &Area> + '_ {
        self.areas[self.ranges[layer_slot(layer)].clone()].iter()
    }

    /// The areas of `layer` whose polygon meets the box `(min_lon, min_lat, max_lon, max_lat)`
    /// (touching counts), sorted by code: what a map view or a tile of the layer shows.
    pub fn in_bbox(&self, layer: AreaLayer, bbox: (f64, f64, f64, f64)) -> Vec<&Area> {
        let Some((envelope, rect)) = bbox_shapes(bbox) else {
            return Vec::new();
        };
        let mut hits: Vec<usize> = Vec::new();
        for entry in self.trees[layer_slot(layer)].locate_in_envelope_intersecting(&envelope) {
            let (ai, pi) = entry.data;
            // An area with several parts in the box is tested (and listed) once.
            if hits.contains(&ai) {
                continue;
            }
            if self.areas[ai].polygon.0[pi].intersects(&rect) {
                hits.push(ai);
            }
        }
        hits.sort_unstable();
        hits.into_iter().map(|i| &self.areas[i]).collect()
    }

    /// Number of areas, all layers together.
    pub fn len(&self) -> usize {
        self.areas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }

    /// All areas, sorted by (layer, code).
    pub fn iter(&self) -> std::slice::Iter<'_, Area> {
        self.areas.iter()
    }
}

/// The R-tree envelope and the geometric rectangle of a `(min_lon, min_lat, max_lon, max_lat)`
/// box, or `None` for a box with a non-finite or inverted side (which contains nothing).
fn bbox_shapes(bbox: (f64, f64, f64, f64)) -> Option<(AABB<[f64; 2]>, Rect<f64>)> {
    let (x0, y0, x1, y1) = bbox;
    // Finite and not inverted (an inverted or NaN box contains nothing).
    if !(x0 <= x1 && y0 <= y1 && [x0, y0, x1, y1].iter().all(|v| v.is_finite())) {
        return None;
    }
    Some((AABB::from_corners([x0, y0], [x1, y1]), Rect::new(Coord { x: x0, y: y0 }, Coord { x: x1, y: y1 })))
}

fn check_area(area: &Area) -> Result<(), AreaError> {
    let (layer, code) = (area.layer, &area.code);
    if code.trim().is_empty() {
        return Err(AreaError::EmptyCode { layer, code: code.clone() });
    }
    if area.polygon.0.is_empty() || area.polygon.0.iter().any(|p| p.exterior().0.is_empty()) {
        return Err(AreaError::EmptyPolygon { layer, code: code.clone() });
    }
    // Range before validity: projected metres or NaN would otherwise surface as a confusing
    // geometric error. The negated range test also catches NaN.
    let in_range = area.polygon.coords_iter().all(|c| (-180.0..=180.0).contains(&c.x) && (-90.0..=90.0).contains(&c.y));
    if !in_range {
        return Err(AreaError::OutOfRange { layer, code: code.clone() });
    }
    if let Err(e) = area.polygon.check_validation() {
        return Err(AreaError::InvalidPolygon { layer, code: code.clone(), reason: e.to_string() });
    }
    if area.polygon.0.iter().any(|p| p.unsigned_area() <= 0.0) {
        return Err(AreaError::InvalidPolygon { layer, code: code.clone(), reason: "zero area".to_owned() });
    }
    Ok(())
}

/// One kiosk in the tree: its position with its index in [`KioskIndex::kiosks`].
type KioskEntry = GeomWithData<[f64; 2], usize>;

/// The kiosks (岗亭) of a city, indexed for "nearest kiosk" and box queries.
#[derive(Debug, Clone)]
pub struct KioskIndex {
    /// Sorted by code, so ties in distance go to the lowest code.
    kiosks: Vec<Kiosk>,
    /// Positions in a locally scaled plane (see [`KioskIndex::scale`]).
    tree: RTree<KioskEntry>,
    /// cos(mean latitude): longitude degrees are multiplied by it so that Euclidean distance in
    /// the tree is close to ground distance around the city, which makes the tree's nearest
    /// neighbour a good first guess. Exactness does not depend on it (see `nearest`).
    scale: f64,
}

impl KioskIndex {
    /// Builds the index; refuses duplicate codes and positions that are not WGS-84 degrees.
    pub fn new(mut kiosks: Vec<Kiosk>) -> Result<KioskIndex, AreaError> {
        kiosks.sort_by(|a, b| a.code.cmp(&b.code));
        for pair in kiosks.windows(2) {
            if pair[0].code == pair[1].code {
                return Err(AreaError::DuplicateKiosk { code: pair[0].code.clone() });
            }
        }
        if let Some(k) = kiosks.iter().find(|k| !((-180.0..=180.0).contains(&k.lon) && (-90.0..=90.0).contains(&k.lat)))
        {
            return Err(AreaError::KioskOutOfRange { code: k.code.clone() });
        }
        let mean_lat =
            if kiosks.is_empty() { 0.0 } else { kiosks.iter().map(|k| k.lat).sum::<f64>() / kiosks.len() as f64 };
        // Never zero, so the scaled plane stays a plane even for a (theoretical) polar city.
        let scale = mean_lat.to_radians().cos().max(0.01);
        let entries = kiosks.iter().enumerate().map(|(i, k)| GeomWithData::new([k.lon * scale, k.lat], i)).collect();
        Ok(KioskIndex { kiosks, tree: RTree::bulk_load(entries), scale })
    }

    /// The kiosk nearest to WGS-84 `(lon, lat)` with its great-circle distance in metres; ties go
    /// to the lowest code. `None` without kiosks or for a non-finite coordinate.
    pub fn nearest(&self, lon: f64, lat: f64) -> Option<(&Kiosk, f64)> {
        if !lon.is_finite() || !lat.is_finite() {
            return None;
        }
        // The nearest in the scaled plane is at most `guess` metres away, so the true nearest is
        // within that radius: an exact pass over the (few) kiosks in that circle's bounding box
        // settles it, whatever the distortion of the plane.
        let first = self.tree.nearest_neighbor(&[lon * self.scale, lat])?;
        let guess = distance_m(lon, lat, self.kiosks[first.data].lon, self.kiosks[first.data].lat);
        let (x0, y0, x1, y1) = radius_bbox(lon, lat, guess);
        let envelope = AABB::from_corners([x0 * self.scale, y0], [x1 * self.scale, y1]);
        let mut best: Option<(usize, f64)> = None;
        for entry in self.tree.locate_in_envelope(&envelope) {
            let k = &self.kiosks[entry.data];
            let d = distance_m(lon, lat, k.lon, k.lat);
            if best.is_none_or(|(bi, bd)| d < bd || (d == bd && entry.data < bi)) {
                best = Some((entry.data, d));
            }
        }
        // The box always contains `first` itself; the fallback only guards against rounding.
        let (i, d) = best.unwrap_or((first.data, guess));
        Some((&self.kiosks[i], d))
    }

    /// The kiosks inside the box `(min_lon, min_lat, max_lon, max_lat)` (edges included),
    /// sorted by code.
    pub fn in_bbox(&self, bbox: (f64, f64, f64, f64)) -> Vec<&Kiosk> {
        let Some((_, rect)) = bbox_shapes(bbox) else {
            return Vec::new();
        };
        let (min, max) = (rect.min(), rect.max());
        let envelope = AABB::from_corners([min.x * self.scale, min.y], [max.x * self.scale, max.y]);
        let mut hits: Vec<usize> = self
            .tree
            .locate_in_envelope(&envelope)
            .map(|e| e.data)
            // Scaling may round a point on the edge to just outside or inside: decide on the
            // original degrees.
            .filter(|&i| rect.intersects(&Coord { x: self.kiosks[i].lon, y: self.kiosks[i].lat }))
            .collect();
        hits.sort_unstable();
        hits.into_iter().map(|i| &self.kiosks[i]).collect()
    }

    /// All kiosks, sorted by code.
    pub fn all(&self) -> &[Kiosk] {
        &self.kiosks
    }

    pub fn len(&self) -> usize {
        self.kiosks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kiosks.is_empty()
    }
}

/// A `(min_lon, min_lat, max_lon, max_lat)` box containing every point within `radius_m` metres
/// (great-circle) of `(lon, lat)`, with a little slack for rounding. Near a pole, or for a radius
/// wrapping the globe, it spans all longitudes.
pub(crate) fn radius_bbox(lon: f64, lat: f64, radius_m: f64) -> (f64, f64, f64, f64) {
    const EARTH_RADIUS_M: f64 = 6_371_008.8;
    // Slack: 0.1 % plus a millimetre, far above the rounding of the haversine formula.
    let delta = (radius_m.max(0.0) * 1.001 + 0.001) / EARTH_RADIUS_M;
    let dlat = delta.to_degrees();
    let far_lat = lat.abs().to_radians() + delta;
    let dlon = if far_lat >= std::f64::consts::FRAC_PI_2 * 0.99 {
        360.0
    } else {
        // The widest longitude span of a circle of angular radius δ is asin(sin δ / cos φ) at
        // its own latitude; δ / cos(|φ| + δ) bounds it from above for the small δ of a city.
        (delta / far_lat.cos()).to_degrees() * 1.001
    };
    (lon - dlon, lat - dlat, lon + dlon, lat + dlat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, LineString, MultiPolygon, Polygon};
    use rand::{Rng, SeedableRng};

    fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon<f64> {
        polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)]
    }

    fn area(layer: AreaLayer, code: &str, polys: Vec<Polygon<f64>>) -> Area {
        Area {
            layer,
            code: code.to_owned(),
            name: format!("{code} name"),
            owner: format!("{code} owner"),
            polygon: MultiPolygon(polys),
        }
    }

    fn sample() -> AreaIndex {
        use AreaLayer::*;
        AreaIndex::new(vec![
            area(PatrolDistrict, "PD02", vec![square(117.1, 34.2, 117.2, 34.3)]),
            area(PatrolDistrict, "PD01", vec![square(117.0, 34.2, 117.1, 34.3)]),
            area(CollectorArea, "CA01", vec![square(117.0, 34.2, 117.2, 34.25)]),
            area(ContractorArea, "CT09", vec![square(117.05, 34.2, 117.15, 34.3)]),
            // overlaps CT09: the lower code wins where both hold the point
            area(ContractorArea, "CT10", vec![square(117.0, 34.2, 117.1, 34.3)]),
            area(Jurisdiction, "J1", vec![square(117.0, 34.2, 117.02, 34.22), square(117.18, 34.28, 117.2, 34.3)]),
        ])
        .unwrap()
    }

    #[test]
    fn locate_per_layer_and_all_layers() {
        let idx = sample();
        assert_eq!(idx.len(), 6);
        assert_eq!(idx.locate(AreaLayer::PatrolDistrict, 117.05, 34.25).unwrap().code, "PD01");
        assert_eq!(idx.locate(AreaLayer::PatrolDistrict, 117.15, 34.25).unwrap().code, "PD02");
        // the shared edge goes to the lowest code
        assert_eq!(idx.locate(AreaLayer::PatrolDistrict, 117.1, 34.25).unwrap().code, "PD01");
        assert_eq!(idx.locate(AreaLayer::CollectorArea, 117.15, 34.28), None);
        assert_eq!(idx.locate(AreaLayer::ContractorArea, 117.07, 34.25).unwrap().code, "CT09");
        assert_eq!(idx.locate(AreaLayer::ContractorArea, 117.03, 34.25).unwrap().code, "CT10");
        // the two parts of a multi-part jurisdiction, and the gap between them
        assert_eq!(idx.locate(AreaLayer::Jurisdiction, 117.01, 34.21).unwrap().code, "J1");
        assert_eq!(idx.locate(AreaLayer::Jurisdiction, 117.19, 34.29).unwrap().code, "J1");
        assert_eq!(idx.locate(AreaLayer::Jurisdiction, 117.1, 34.25), None);

        let all: Vec<(AreaLayer, &str)> =
            idx.locate_all(117.01, 34.21).into_iter().map(|a| (a.layer, a.code.as_str())).collect();
        assert_eq!(
            all,
            [
                (AreaLayer::PatrolDistrict, "PD01"),
                (AreaLayer::CollectorArea, "CA01"),
                (AreaLayer::ContractorArea, "CT10"),
                (AreaLayer::Jurisdiction, "J1")
            ]
        );
        assert!(idx.locate_all(118.0, 34.0).is_empty());
        assert!(idx.locate_all(f64::NAN, 34.25).is_empty());
        assert_eq!(idx.locate(AreaLayer::PatrolDistrict, 117.05, f64::INFINITY), None);
    }

    #[test]
    fn get_layer_and_bbox() {
        let idx = sample();
        assert_eq!(idx.get(AreaLayer::PatrolDistrict, "PD02").unwrap().owner, "PD02 owner");
        assert!(idx.get(AreaLayer::CollectorArea, "PD02").is_none(), "codes are per layer");
        assert!(idx.get(AreaLayer::Jurisdiction, "J2").is_none());
        let codes: Vec<&str> = idx.layer(AreaLayer::ContractorArea).map(|a| a.code.as_str()).collect();
        assert_eq!(codes, ["CT09", "CT10"]);
        assert_eq!(idx.layer(AreaLayer::PatrolDistrict).count(), 2);

        let in_box = |layer, b| idx.in_bbox(layer, b).into_iter().map(|a| a.code.as_str()).collect::<Vec<_>>();
        assert_eq!(in_box(AreaLayer::PatrolDistrict, (117.12, 34.22, 117.13, 34.23)), ["PD02"]);
        assert_eq!(in_box(AreaLayer::PatrolDistrict, (117.09, 34.22, 117.13, 34.23)), ["PD01", "PD02"]);
        // the box lies between J1's two parts, inside its bounding box: not listed
        assert!(in_box(AreaLayer::Jurisdiction, (117.05, 34.23, 117.15, 34.27)).is_empty());
        // a box meeting both parts lists J1 once
        assert_eq!(in_box(AreaLayer::Jurisdiction, (116.0, 34.0, 118.0, 35.0)), ["J1"]);
        assert!(in_box(AreaLayer::PatrolDistrict, (117.2, 34.3, 117.1, 34.2)).is_empty(), "inverted box");
        assert!(in_box(AreaLayer::PatrolDistrict, (f64::NAN, 34.0, 118.0, 35.0)).is_empty());
    }

    #[test]
    fn refusals() {
        use AreaLayer::*;
        let ok = square(0.0, 0.0, 1.0, 1.0);
        let refuse = |areas: Vec<Area>| AreaIndex::new(areas).unwrap_err();
        assert_eq!(
            refuse(vec![area(PatrolDistrict, "A", vec![ok.clone()]), area(PatrolDistrict, "A", vec![ok.clone()])]),
            AreaError::Duplicate { layer: PatrolDistrict, code: "A".to_owned() }
        );
        // the same code in two layers is fine
        assert!(AreaIndex::new(vec![
            area(PatrolDistrict, "A", vec![ok.clone()]),
            area(Jurisdiction, "A", vec![ok.clone()])
        ])
        .is_ok());
        assert!(matches!(refuse(vec![area(PatrolDistrict, " ", vec![ok.clone()])]), AreaError::EmptyCode { .. }));
        assert_eq!(
            refuse(vec![area(CollectorArea, "C", vec![])]),
            AreaError::EmptyPolygon { layer: CollectorArea, code: "C".to_owned() }
        );
        assert!(matches!(
            refuse(vec![area(CollectorArea, "C", vec![Polygon::new(LineString::new(vec![]), vec![])])]),
            AreaError::EmptyPolygon { .. }
        ));
        let bow_tie =
            polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 1.0), (x: 1.0, y: 0.0), (x: 0.0, y: 1.0), (x: 0.0, y: 0.0)];
        assert!(matches!(refuse(vec![area(ContractorArea, "T", vec![bow_tie])]), AreaError::InvalidPolygon { .. }));
        let flat = polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 2.0, y: 0.0), (x: 0.0, y: 0.0)];
        assert!(matches!(refuse(vec![area(ContractorArea, "T", vec![flat])]), AreaError::InvalidPolygon { .. }));
        assert_eq!(
            refuse(vec![area(Jurisdiction, "J", vec![square(500_000.0, 3_790_000.0, 500_100.0, 3_790_100.0)])]),
            AreaError::OutOfRange { layer: Jurisdiction, code: "J".to_owned() }
        );
        assert!(matches!(
            refuse(vec![area(Jurisdiction, "J", vec![square(0.0, 0.0, f64::NAN, 1.0)])]),
            AreaError::OutOfRange { .. }
        ));
        let msg = refuse(vec![area(Jurisdiction, "J77", vec![square(0.0, 0.0, 1.0, 1e7)])]).to_string();
        assert!(msg.contains("J77") && msg.contains("jurisdictions"), "{msg}");
    }

    #[test]
    fn empty_index() {
        let idx = AreaIndex::new(Vec::new()).unwrap();
        assert!(idx.is_empty());
        assert_eq!(idx.locate(AreaLayer::Jurisdiction, 117.0, 34.0), None);
        assert!(idx.get(AreaLayer::Jurisdiction, "x").is_none());
        assert_eq!(idx.layer(AreaLayer::CollectorArea).count(), 0);
        let kiosks = KioskIndex::new(Vec::new()).unwrap();
        assert!(kiosks.is_empty());
        assert!(kiosks.nearest(117.0, 34.0).is_none());
    }

    fn kiosk(code: &str, lon: f64, lat: f64) -> Kiosk {
        Kiosk { code: code.to_owned(), name: code.to_owned(), patrol_district: "PD01".to_owned(), lon, lat }
    }

    #[test]
    fn kiosks() {
        let idx = KioskIndex::new(vec![kiosk("K2", 117.20, 34.26), kiosk("K1", 117.18, 34.26)]).unwrap();
        let (k, d) = idx.nearest(117.181, 34.26).unwrap();
        assert_eq!(k.code, "K1");
        assert!((d - distance_m(117.181, 34.26, 117.18, 34.26)).abs() < 1e-9);
        // equidistant: the lowest code
        assert_eq!(idx.nearest(117.19, 34.26).unwrap().0.code, "K1");
        assert!(idx.nearest(f64::NAN, 34.26).is_none());
        let codes: Vec<&str> = idx.in_bbox((117.19, 34.0, 117.3, 35.0)).into_iter().map(|k| k.code.as_str()).collect();
        assert_eq!(codes, ["K2"]);
        assert_eq!(idx.in_bbox((117.0, 34.0, 118.0, 35.0)).len(), 2);
        assert_eq!(idx.in_bbox((117.18, 34.26, 117.18, 34.26)).len(), 1, "a degenerate box holds its point");
        assert_eq!(idx.all().len(), 2);
        assert_eq!(idx.len(), 2);
        assert!(matches!(
            KioskIndex::new(vec![kiosk("K", 3_790_000.0, 34.0)]).unwrap_err(),
            AreaError::KioskOutOfRange { .. }
        ));
        assert!(matches!(
            KioskIndex::new(vec![kiosk("K", 117.0, 34.0), kiosk("K", 117.1, 34.0)]).unwrap_err(),
            AreaError::DuplicateKiosk { .. }
        ));
    }

    #[test]
    fn nearest_kiosk_agrees_with_brute_force() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // A wide spread of latitudes, where a plain degree metric would pick the wrong kiosk.
        let kiosks: Vec<Kiosk> = (0..300)
            .map(|i| kiosk(&format!("K{i:03}"), rng.gen_range(116.0..118.5), rng.gen_range(20.0..50.0)))
            .collect();
        let idx = KioskIndex::new(kiosks.clone()).unwrap();
        for _ in 0..2000 {
            let (lon, lat) = (rng.gen_range(115.5..119.0), rng.gen_range(19.0..51.0));
            let (k, d) = idx.nearest(lon, lat).unwrap();
            let want = kiosks.iter().map(|k| distance_m(lon, lat, k.lon, k.lat)).fold(f64::INFINITY, f64::min);
            assert!((d - want).abs() < 1e-6, "({lon}, {lat}): got {} at {d}, want {want}", k.code);
        }
    }
}
