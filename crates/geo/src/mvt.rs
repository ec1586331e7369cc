//! Mapbox Vector Tiles (矢量瓦片) for `/tiles/{layer}/{z}/{x}/{y}.mvt`: the map and the big screen
//! (监督指挥大屏) draw grids, areas, roads and components from these.
//!
//! - [`tile_bbox`] and [`tile_of`]: Web Mercator XYZ tile maths (the scheme of OSM, AMap and
//!   Mapbox: tile (0, 0) is the north-west corner);
//! - [`encode_tile`]: geometries in WGS-84 lon/lat → one MVT 2.1 tile, extent 4096 with a 64-unit
//!   buffer, lines and polygons clipped to the buffered tile, coordinates quantised, repeated
//!   points and parts that collapse after quantisation dropped, rings wound as the spec demands
//!   (exterior clockwise in tile coordinates, i.e. positive area with y pointing down; holes the
//!   other way). The protobuf is written with `geozero`'s generated `Tile` types;
//! - [`thin_points`]: at low zoom a tile of the ~1,000,000-component layer would carry every
//!   point of the city; keeping one point per cell of a 256 × 256 grid per tile bounds a tile to
//!   65,536 points and loses nothing visible (a cell is one screen pixel of a 256-pixel tile).
//!
//! Positions are projected from WGS-84 as they are: tiles are meant for a WGS-84 web map. A client
//! on an AMap (GCJ-02) base map must be served converted geometries (see [`crate::coord`]).

use geo::{Geometry, LineString, Polygon};
use geozero::mvt::tile::{self, GeomType};
use geozero::mvt::{Message, Tile};
use std::collections::{HashMap, HashSet};
use std::f64::consts::PI;

/// Tile coordinate space: 4096 units per tile side, the MVT default.
pub const EXTENT: u32 = 4096;
/// Units of geometry kept beyond each tile edge, so strokes and labels crossing an edge render
/// without seams.
pub const BUFFER: u32 = 64;
/// Deepest zoom served (street furniture is about 1 m; z22 is 4 cm per unit).
pub const MAX_ZOOM: u8 = 22;
/// Points kept per tile side by [`thin_points`]: at most one per cell of this grid.
pub const THIN_CELLS_PER_TILE: u32 = 256;
/// Web Mercator stops at the latitude where the world becomes a square.
const MAX_LAT: f64 = 85.051_128_779_806_59;

/// `(west, south, east, north)` in WGS-84 degrees of tile `(z, x, y)`; `None` for a zoom above
/// [`MAX_ZOOM`] or a tile outside the 2^z × 2^z grid.
pub fn tile_bbox(z: u8, x: u32, y: u32) -> Option<(f64, f64, f64, f64)> {
    if z > MAX_ZOOM {
        return None;
    }
    let n = 1u32 << z;
    if x >= n || y >= n {
        return None;
    }
    let n = f64::from(n);
    let lon = |x: f64| x / n * 360.0 - 180.0;
    let lat = |y: f64| (PI * (1.0 - 2.0 * y / n)).sinh().atan().to_degrees();
    let (x, y) = (f64::from(x), f64::from(y));
    Some((lon(x), lat(y + 1.0), lon(x + 1.0), lat(y)))
}

/// The tile at zoom `z` containing WGS-84 `(lon, lat)`; `None` for a zoom above [`MAX_ZOOM`], a
/// non-finite position or one beyond Web Mercator's ±85.05° latitude.
pub fn tile_of(z: u8, lon: f64, lat: f64) -> Option<(u32, u32)> {
    if z > MAX_ZOOM || !lon.is_finite() || !(-MAX_LAT..=MAX_LAT).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return None;
    }
    let (mx, my) = mercator(lon, lat);
    let n = 1u32 << z;
    let cell = |v: f64| {
        // Truncation is the floor for these non-negative values; the east and south edges
        // belong to the last tile.
        let i = (v * f64::from(n)).floor().max(0.0) as u32;
        i.min(n - 1)
    };
    Some((cell(mx), cell(my)))
}

/// WGS-84 → Web Mercator normalised to the unit square, y pointing south.
fn mercator(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-MAX_LAT, MAX_LAT).to_radians();
    let x = (lon + 180.0) / 360.0;
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / PI) / 2.0;
    (x, y)
}

/// Keeps the first item of each cell of a [`THIN_CELLS_PER_TILE`]² grid per tile at zoom `z`
/// (the cells are world-aligned, so neighbouring tiles thin consistently). Order the input by
/// priority (damaged components before intact ones, say) to choose which point a cell shows.
/// Items with a non-finite position are dropped.
pub fn thin_points<T>(items: impl IntoIterator<Item = T>, z: u8, position: impl Fn(&T) -> (f64, f64)) -> Vec<T> {
    // Cells at zoom z + 8 (256 = 2^8 per tile); capped so the cell index fits in u32.
    let n = f64::from(1u32 << (u32::from(z.min(MAX_ZOOM)) + THIN_CELLS_PER_TILE.trailing_zeros()).min(31));
    let mut seen: HashSet<u64> = HashSet::new();
    items
        .into_iter()
        .filter(|item| {
            let (lon, lat) = position(item);
            if !lon.is_finite() || !lat.is_finite() {
                return false;
            }
            let (mx, my) = mercator(lon, lat);
            let cx = (mx * n).floor().clamp(0.0, n - 1.0) as u64;
            let cy = (my * n).floor().clamp(0.0, n - 1.0) as u64;
            seen.insert(cx << 32 | cy)
        })
        .collect()
}

/// A property value of a feature.
#[derive(Debug, Clone, PartialEq)]
pub enum MvtValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// One feature to encode: geometry in WGS-84 lon/lat.
#[derive(Debug, Clone, PartialEq)]
pub struct MvtFeature {
    pub id: u64,
    /// Any geometry. MVT features have one type each, so a `GeometryCollection` mixing points,
    /// lines and polygons becomes one feature per type, all with this id and these properties.
    pub geometry: Geometry<f64>,
    pub properties: Vec<(String, MvtValue)>,
}

/// One layer of a tile: what the client styles by name (`grids`, `components`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct MvtLayer {
    pub name: String,
    pub features: Vec<MvtFeature>,
}

/// Encodes the layers as tile `(z, x, y)`. Features wholly outside the buffered tile, or
/// collapsing to nothing after quantisation, are left out, and so are layers left without
/// features: a tile with nothing in it encodes to zero bytes (the server may answer 204).
/// An out-of-range tile (see [`tile_bbox`]) is empty too.
pub fn encode_tile(z: u8, x: u32, y: u32, layers: &[MvtLayer]) -> Vec<u8> {
    if tile_bbox(z, x, y).is_none() {
        return Vec::new();
    }
    let proj = Projector { n: f64::from(1u32 << z), x: f64::from(x), y: f64::from(y) };
    let mut tile = Tile { layers: Vec::new() };
    for layer in layers {
        let mut out = LayerBuilder::default();
        for feature in &layer.features {
            let mut parts = Parts::default();
            parts.collect(&feature.geometry, &proj);
            for (kind, geometry) in parts.encode() {
                let tags = out.tags(&feature.properties);
                out.features.push(tile::Feature { id: Some(feature.id), tags, r#type: Some(kind as i32), geometry });
            }
        }
        if out.features.is_empty() {
            continue;
        }
        tile.layers.push(tile::Layer {
            version: 2,
            name: layer.name.clone(),
            features: out.features,
            keys: out.keys,
            values: out.values,
            extent: Some(EXTENT),
        });
    }
    if tile.layers.is_empty() {
        return Vec::new();
    }
    tile.encode_to_vec()
}

/// WGS-84 → this tile's coordinate space (unquantised).
struct Projector {
    n: f64,
    x: f64,
    y: f64,
}

impl Projector {
    fn project(&self, lon: f64, lat: f64) -> (f64, f64) {
        let (mx, my) = mercator(lon, lat);
        let e = f64::from(EXTENT);
        ((mx * self.n - self.x) * e, (my * self.n - self.y) * e)
    }
}

type Pt = (f64, f64);
type IPt = (i32, i32);

/// Lower and upper bound of the buffered tile, in tile units.
const LO: f64 = -(BUFFER as f64);
const HI: f64 = (EXTENT + BUFFER) as f64;

fn inside(p: Pt) -> bool {
    (LO..=HI).contains(&p.0) && (LO..=HI).contains(&p.1)
}

/// Rounds a clipped coordinate to the integer grid; the clip keeps it far inside i32.
fn quantise(p: Pt) -> IPt {
    (p.0.round() as i32, p.1.round() as i32)
}

/// The pieces of a feature's geometry, already clipped and quantised, by MVT type.
#[derive(Default)]
struct Parts {
    points: Vec<IPt>,
    lines: Vec<Vec<IPt>>,
    /// Each polygon: exterior first (clockwise in tile space), then its holes.
    polygons: Vec<Vec<Vec<IPt>>>,
}

impl Parts {
    fn collect(&mut self, geometry: &Geometry<f64>, proj: &Projector) {
        match geometry {
            Geometry::Point(p) => self.point(proj.project(p.x(), p.y())),
            Geometry::MultiPoint(mp) => mp.0.iter().for_each(|p| self.point(proj.project(p.x(), p.y()))),
            Geometry::Line(l) => self.line(&LineString::from(vec![l.start, l.end]), proj),
            Geometry::LineString(ls) => self.line(ls, proj),
            Geometry::MultiLineString(mls) => mls.0.iter().for_each(|ls| self.line(ls, proj)),
            Geometry::Polygon(p) => self.polygon(p, proj),
            Geometry::MultiPolygon(mp) => mp.0.iter().for_each(|p| self.polygon(p, proj)),
            Geometry::Rect(r) => self.polygon(&r.to_polygon(), proj),
            Geometry::Triangle(t) => self.polygon(&t.to_polygon(), proj),
            Geometry::GeometryCollection(gc) => gc.0.iter().for_each(|g| self.collect(g, proj)),
        }
    }

    fn point(&mut self, p: Pt) {
        if inside(p) {
            self.points.push(quantise(p));
        }
    }

    fn line(&mut self, ls: &LineString<f64>, proj: &Projector) {
        let pts: Vec<Pt> = ls.0.iter().map(|c| proj.project(c.x, c.y)).collect();
        for piece in clip_line(&pts) {
            let q = dedupe(piece.into_iter().map(quantise));
            if q.len() >= 2 {
                self.lines.push(q);
            }
        }
    }

    fn polygon(&mut self, polygon: &Polygon<f64>, proj: &Projector) {
        let ring = |ls: &LineString<f64>, exterior: bool| -> Option<Vec<IPt>> {
            let pts: Vec<Pt> = ls.0.iter().map(|c| proj.project(c.x, c.y)).collect();
            let mut q = dedupe(clip_ring(&pts).into_iter().map(quantise));
            // Rings are written without their closing point (ClosePath closes them).
            while q.len() > 1 && q.first() == q.last() {
                q.pop();
            }
            let area = signed_area2(&q);
            if q.len() < 3 || area == 0 {
                return None;
            }
            // MVT 2.1: exterior rings have positive area in tile space (clockwise on screen),
            // interior rings negative.
            if (area > 0) != exterior {
                q.reverse();
            }
            Some(q)
        };
        // A hole without its exterior would be read as an exterior: drop both together.
        let Some(exterior) = ring(polygon.exterior(), true) else {
            return;
        };
        let mut rings = vec![exterior];
        rings.extend(polygon.interiors().iter().filter_map(|h| ring(h, false)));
        self.polygons.push(rings);
    }

    /// The command streams, one per MVT type present.
    fn encode(self) -> Vec<(GeomType, Vec<u32>)> {
        let mut out = Vec::new();
        if !self.points.is_empty() {
            let mut e = Encoder::default();
            e.command(MOVE_TO, self.points.len());
            self.points.iter().for_each(|&p| e.point(p));
            out.push((GeomType::Point, e.out));
        }
        if !self.lines.is_empty() {
            let mut e = Encoder::default();
            for line in &self.lines {
                e.command(MOVE_TO, 1);
                e.point(line[0]);
                e.command(LINE_TO, line.len() - 1);
                line[1..].iter().for_each(|&p| e.point(p));
            }
            out.push((GeomType::Linestring, e.out));
        }
        if !self.polygons.is_empty() {
            let mut e = Encoder::default();
            for ring in self.polygons.iter().flatten() {
                e.command(MOVE_TO, 1);
                e.point(ring[0]);
                e.command(LINE_TO, ring.len() - 1);
                ring[1..].iter().for_each(|&p| e.point(p));
                e.command(CLOSE_PATH, 1);
            }
            out.push((GeomType::Polygon, e.out));
        }
        out
    }
}

/// Twice the signed area by the shoelace formula, in tile space (y down): positive means
/// clockwise on screen. Exact in i64 for tile coordinates.
fn signed_area2(ring: &[IPt]) -> i64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            i64::from(a.0) * i64::from(b.1) - i64::from(b.0) * i64::from(a.1)
        })
        .sum()
}

/// Drops consecutive repeated points.
fn dedupe(points: impl Iterator<Item = IPt>) -> Vec<IPt> {
    let mut out: Vec<IPt> = Vec::new();
    for p in points {
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    out
}

/// Clips a polyline to the buffered tile (Liang–Barsky per segment); a line leaving and
/// re-entering becomes several pieces.
fn clip_line(pts: &[Pt]) -> Vec<Vec<Pt>> {
    let mut pieces = Vec::new();
    let mut current: Vec<Pt> = Vec::new();
    for w in pts.windows(2) {
        match clip_segment(w[0], w[1]) {
            None => {
                if current.len() >= 2 {
                    pieces.push(std::mem::take(&mut current));
                }
                current.clear();
            }
            Some((a, b, entered, left)) => {
                if current.is_empty() || entered {
                    if current.len() >= 2 {
                        pieces.push(std::mem::take(&mut current));
                    }
                    current.clear();
                    current.push(a);
                }
                current.push(b);
                if left {
                    pieces.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if current.len() >= 2 {
        pieces.push(current);
    }
    pieces
}

/// The part of segment `a`–`b` inside the buffered tile, with whether its start was cut
/// (the segment enters from outside) and whether its end was cut (it leaves).
fn clip_segment(a: Pt, b: Pt) -> Option<(Pt, Pt, bool, bool)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, a.0 - LO), (dx, HI - a.0), (-dy, a.1 - LO), (dy, HI - a.1)] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| (a.0 + t * dx, a.1 + t * dy);
    Some((if t0 > 0.0 { at(t0) } else { a }, if t1 < 1.0 { at(t1) } else { b }, t0 > 0.0, t1 < 1.0))
}

/// Clips a ring to the buffered tile (Sutherland–Hodgman against its four edges). A ring
/// wrapping around the tile becomes the tile's outline, as it should; a ring outside vanishes.
fn clip_ring(ring: &[Pt]) -> Vec<Pt> {
    // Each edge: is a point inside it, and where does a segment cross it.
    type Edge = (fn(Pt) -> bool, fn(Pt, Pt) -> Pt);
    let edges: [Edge; 4] = [
        (|p| p.0 >= LO, |a, b| (LO, a.1 + (b.1 - a.1) * (LO - a.0) / (b.0 - a.0))),
        (|p| p.0 <= HI, |a, b| (HI, a.1 + (b.1 - a.1) * (HI - a.0) / (b.0 - a.0))),
        (|p| p.1 >= LO, |a, b| (a.0 + (b.0 - a.0) * (LO - a.1) / (b.1 - a.1), LO)),
        (|p| p.1 <= HI, |a, b| (a.0 + (b.0 - a.0) * (HI - a.1) / (b.1 - a.1), HI)),
    ];
    // Fast path: most rings of a tile lie wholly inside it.
    if ring.iter().all(|&p| inside(p)) {
        return ring.to_vec();
    }
    let mut current: Vec<Pt> = ring.to_vec();
    // The closing point would make a zero-length edge; Sutherland–Hodgman closes implicitly.
    if current.len() > 1 && current.first() == current.last() {
        current.pop();
    }
    for (is_in, cross) in edges {
        if current.is_empty() {
            break;
        }
        let input = std::mem::take(&mut current);
        let mut prev = input[input.len() - 1];
        for &p in &input {
            match (is_in(p), is_in(prev)) {
                (true, true) => current.push(p),
                (true, false) => {
                    current.push(cross(prev, p));
                    current.push(p);
                }
                (false, true) => current.push(cross(prev, p)),
                (false, false) => {}
            }
            prev = p;
        }
    }
    current
}

const MOVE_TO: u32 = 1;
const LINE_TO: u32 = 2;
const CLOSE_PATH: u32 = 7;

/// Writes MVT command integers; coordinates are deltas from the previous point of the feature.
#[derive(Default)]
struct Encoder {
    out: Vec<u32>,
    cursor: IPt,
}

impl Encoder {
    fn command(&mut self, id: u32, count: usize) {
        // A count is at most the points of one ring after clipping: far below 2^29.
        self.out.push((id & 0x7) | (u32::try_from(count).unwrap_or(0) << 3));
    }

    fn point(&mut self, p: IPt) {
        let zigzag = |v: i32| ((v << 1) ^ (v >> 31)) as u32;
        self.out.push(zigzag(p.0 - self.cursor.0));
        self.out.push(zigzag(p.1 - self.cursor.1));
        self.cursor = p;
    }
}

/// Equality key of a property value: floats by their bits, so every value has one slot.
#[derive(PartialEq, Eq, Hash)]
enum ValueKey {
    Str(String),
    Int(i64),
    Float(u64),
    Bool(bool),
}

/// A layer's features with its shared key and value tables.
#[derive(Default)]
struct LayerBuilder {
    features: Vec<tile::Feature>,
    keys: Vec<String>,
    values: Vec<tile::Value>,
    key_index: HashMap<String, u32>,
    value_index: HashMap<ValueKey, u32>,
}

impl LayerBuilder {
    fn tags(&mut self, properties: &[(String, MvtValue)]) -> Vec<u32> {
        let mut tags = Vec::with_capacity(properties.len() * 2);
        for (key, value) in properties {
            let next = index_u32(self.keys.len());
            let k = *self.key_index.entry(key.clone()).or_insert(next);
            if k == next {
                self.keys.push(key.clone());
            }
            let (vkey, tv) = match value {
                MvtValue::Str(s) => {
                    (ValueKey::Str(s.clone()), tile::Value { string_value: Some(s.clone()), ..Default::default() })
                }
                MvtValue::Int(i) => (ValueKey::Int(*i), tile::Value { int_value: Some(*i), ..Default::default() }),
                MvtValue::Float(f) => {
                    (ValueKey::Float(f.to_bits()), tile::Value { double_value: Some(*f), ..Default::default() })
                }
                MvtValue::Bool(b) => (ValueKey::Bool(*b), tile::Value { bool_value: Some(*b), ..Default::default() }),
            };
            let next = index_u32(self.values.len());
            let v = *self.value_index.entry(vkey).or_insert(next);
            if v == next {
                self.values.push(tv);
            }
            tags.push(k);
            tags.push(v);
        }
        tags
    }
}

/// Table indexes are u32 in the format; a layer with 4 billion distinct values cannot be a tile.
fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{point, polygon, GeometryCollection, MultiPoint};

    /// One decoded feature: type, id, properties as text, and its parts in tile coordinates
    /// (a point list for points; one list per line or ring otherwise).
    #[derive(Debug)]
    struct Decoded {
        kind: i32,
        id: u64,
        props: Vec<(String, String)>,
        parts: Vec<Vec<(i32, i32)>>,
    }

    fn decode(bytes: &[u8]) -> Vec<(String, u32, Vec<Decoded>)> {
        let tile = Tile::decode(bytes).unwrap();
        tile.layers
            .into_iter()
            .map(|layer| {
                assert_eq!(layer.version, 2);
                let features = layer
                    .features
                    .iter()
                    .map(|f| {
                        let props = f
                            .tags
                            .chunks(2)
                            .map(|kv| {
                                let v = &layer.values[kv[1] as usize];
                                let text = v
                                    .string_value
                                    .clone()
                                    .or(v.int_value.map(|i| i.to_string()))
                                    .or(v.double_value.map(|d| d.to_string()))
                                    .or(v.bool_value.map(|b| b.to_string()))
                                    .unwrap();
                                (layer.keys[kv[0] as usize].clone(), text)
                            })
                            .collect();
                        Decoded {
                            kind: f.r#type.unwrap(),
                            id: f.id.unwrap(),
                            props,
                            parts: decode_geometry(&f.geometry),
                        }
                    })
                    .collect();
                (layer.name, layer.extent.unwrap(), features)
            })
            .collect()
    }

    fn decode_geometry(cmds: &[u32]) -> Vec<Vec<(i32, i32)>> {
        let (mut parts, mut cursor, mut i) = (Vec::new(), (0, 0), 0);
        let unzig = |v: u32| ((v >> 1) as i32) ^ -((v & 1) as i32);
        while i < cmds.len() {
            let (id, count) = (cmds[i] & 7, cmds[i] >> 3);
            i += 1;
            match id {
                1 | 2 => {
                    if id == 1 {
                        parts.push(Vec::new());
                    }
                    for _ in 0..count {
                        cursor = (cursor.0 + unzig(cmds[i]), cursor.1 + unzig(cmds[i + 1]));
                        i += 2;
                        parts.last_mut().unwrap().push(cursor);
                    }
                }
                7 => assert_eq!(count, 1),
                _ => panic!("bad command {id}"),
            }
        }
        parts
    }

    #[test]
    fn tile_bbox_known_values() {
        let (w, s, e, n) = tile_bbox(0, 0, 0).unwrap();
        assert_eq!((w, e), (-180.0, 180.0));
        assert!((n - MAX_LAT).abs() < 1e-9 && (s + MAX_LAT).abs() < 1e-9, "{s} {n}");
        let (w, s, e, n) = tile_bbox(1, 1, 0).unwrap();
        assert_eq!((w, e), (0.0, 180.0));
        assert!(s.abs() < 1e-9 && (n - MAX_LAT).abs() < 1e-9);
        assert!(tile_bbox(0, 1, 0).is_none());
        assert!(tile_bbox(3, 0, 8).is_none());
        assert!(tile_bbox(23, 0, 0).is_none());
        assert!(tile_bbox(22, (1 << 22) - 1, (1 << 22) - 1).is_some());

        // Central Xuzhou at z14, by hand: x = ⌊(117.18 + 180) / 360 · 2^14⌋ = ⌊13524.99⌋;
        // y = ⌊(1 − ln(tan φ + sec φ) / π) / 2 · 2^14⌋ with φ = 34.26° → ⌊6530.6⌋.
        assert_eq!(tile_of(14, 117.18, 34.26), Some((13524, 6530)));
        let (w, s, e, n) = tile_bbox(14, 13524, 6530).unwrap();
        assert!((w..e).contains(&117.18) && (s..n).contains(&34.26), "{w} {s} {e} {n}");
        assert!((e - w - 360.0 / 16384.0).abs() < 1e-12);
        assert!((w - (13524.0 / 16384.0 * 360.0 - 180.0)).abs() < 1e-12);
        assert_eq!(tile_of(0, 117.18, 34.26), Some((0, 0)));
        assert_eq!(tile_of(14, 117.18, 89.0), None);
        assert_eq!(tile_of(23, 117.18, 34.26), None);
        assert_eq!(tile_of(2, 180.0, -MAX_LAT), Some((3, 3)));
    }

    /// Lon/lat of a point at tile-space `(px, py)` of tile (z, x, y), for building test input.
    fn at(z: u8, x: u32, y: u32, px: f64, py: f64) -> (f64, f64) {
        let n = f64::from(1u32 << z);
        let mx = (f64::from(x) + px / 4096.0) / n;
        let my = (f64::from(y) + py / 4096.0) / n;
        (mx * 360.0 - 180.0, (PI * (1.0 - 2.0 * my)).sinh().atan().to_degrees())
    }

    const Z: u8 = 14;
    const X: u32 = 13524;
    const Y: u32 = 6530;

    fn pt(px: f64, py: f64) -> geo::Coord<f64> {
        let (x, y) = at(Z, X, Y, px, py);
        geo::Coord { x, y }
    }

    #[test]
    fn points_lines_polygons_and_properties() {
        let square = |x0: f64, y0: f64, x1: f64, y1: f64| {
            // counter-clockwise in lon/lat (y up): a geo-conventional exterior
            Polygon::new(LineString::from(vec![pt(x0, y1), pt(x1, y1), pt(x1, y0), pt(x0, y0), pt(x0, y1)]), vec![])
        };
        let mut with_hole = square(100.0, 100.0, 1000.0, 1000.0);
        with_hole.interiors_push(LineString::from(vec![
            pt(200.0, 200.0),
            pt(300.0, 200.0),
            pt(300.0, 300.0),
            pt(200.0, 300.0),
            pt(200.0, 200.0),
        ]));
        let layers = [
            MvtLayer {
                name: "components".to_owned(),
                features: vec![
                    MvtFeature {
                        id: 32031101001000042,
                        geometry: geo::Point(pt(10.0, 20.0)).into(),
                        properties: vec![
                            ("class".to_owned(), MvtValue::Str("01001".to_owned())),
                            ("damaged".to_owned(), MvtValue::Bool(true)),
                        ],
                    },
                    MvtFeature { id: 2, geometry: geo::Point(pt(-500.0, 20.0)).into(), properties: vec![] },
                    MvtFeature {
                        id: 3,
                        geometry: geo::Point(pt(4100.0, 4100.0)).into(),
                        properties: vec![
                            ("class".to_owned(), MvtValue::Str("01001".to_owned())),
                            ("n".to_owned(), MvtValue::Int(-7)),
                        ],
                    },
                ],
            },
            MvtLayer { name: "empty".to_owned(), features: vec![] },
            MvtLayer {
                name: "grids".to_owned(),
                features: vec![MvtFeature {
                    id: 7,
                    geometry: with_hole.into(),
                    properties: vec![("area".to_owned(), MvtValue::Float(1.5))],
                }],
            },
        ];
        let decoded = decode(&encode_tile(Z, X, Y, &layers));
        assert_eq!(decoded.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["components", "grids"]);
        let (_, extent, comps) = &decoded[0];
        assert_eq!(*extent, 4096);
        // the point 500 units west is beyond the buffer; the one 4 units past the corner is kept
        assert_eq!(comps.len(), 2);
        assert_eq!((comps[0].kind, comps[0].id), (GeomType::Point as i32, 32031101001000042));
        assert_eq!(comps[0].parts, [vec![(10, 20)]]);
        assert_eq!(
            comps[0].props,
            [("class".to_owned(), "01001".to_owned()), ("damaged".to_owned(), "true".to_owned())]
        );
        assert_eq!(comps[1].parts, [vec![(4100, 4100)]]);
        assert_eq!(comps[1].props, [("class".to_owned(), "01001".to_owned()), ("n".to_owned(), "-7".to_owned())]);

        let grid = &decoded[1].2[0];
        assert_eq!(grid.kind, GeomType::Polygon as i32);
        assert_eq!(grid.props, [("area".to_owned(), "1.5".to_owned())]);
        assert_eq!(grid.parts.len(), 2);
        let ext = &grid.parts[0];
        assert_eq!(ext.len(), 4, "written without the closing point: {ext:?}");
        assert!(ext.iter().all(|&(x, y)| [100, 1000].contains(&x) && [100, 1000].contains(&y)), "{ext:?}");
        assert!(signed_area2(ext) > 0, "exterior clockwise on screen");
        assert!(signed_area2(&grid.parts[1]) < 0, "hole the other way");
    }

    #[test]
    fn clipping_to_the_buffered_tile() {
        // A line crossing the tile west to east, leaving north in the middle and coming back.
        let line = LineString::from(vec![
            pt(-1000.0, 100.0),
            pt(2000.0, 100.0),
            pt(2000.0, -1000.0),
            pt(3000.0, -1000.0),
            pt(3000.0, 100.0),
            pt(5000.0, 100.0),
        ]);
        // A polygon much bigger than the tile: it becomes the buffered tile's outline.
        let big = polygon![(x: 116.0, y: 33.0), (x: 118.0, y: 33.0), (x: 118.0, y: 35.0), (x: 116.0, y: 35.0)];
        // A polygon wholly outside, and one that collapses to a point when quantised.
        let outside = Polygon::new(LineString::from(vec![pt(5000.0, 0.0), pt(6000.0, 0.0), pt(6000.0, 900.0)]), vec![]);
        let tiny = Polygon::new(LineString::from(vec![pt(10.0, 10.0), pt(10.2, 10.0), pt(10.2, 10.2)]), vec![]);
        let feature = |id, g: Geometry<f64>| MvtFeature { id, geometry: g, properties: vec![] };
        let layers = [MvtLayer {
            name: "l".to_owned(),
            features: vec![
                feature(1, line.into()),
                feature(2, big.into()),
                feature(3, outside.into()),
                feature(4, tiny.into()),
            ],
        }];
        let decoded = decode(&encode_tile(Z, X, Y, &layers));
        let feats = &decoded[0].2;
        assert_eq!(feats.iter().map(|f| f.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(feats[0].kind, GeomType::Linestring as i32);
        assert_eq!(
            feats[0].parts,
            [vec![(-64, 100), (2000, 100), (2000, -64)], vec![(3000, -64), (3000, 100), (4160, 100)]]
        );
        assert_eq!(feats[1].parts.len(), 1);
        let mut outline = feats[1].parts[0].clone();
        outline.sort_unstable();
        assert_eq!(outline, [(-64, -64), (-64, 4160), (4160, -64), (4160, 4160)]);
        assert!(signed_area2(&feats[1].parts[0]) > 0);

        // Nothing in the tile: no bytes. Out-of-range tile: no bytes.
        let far = [MvtLayer { name: "l".to_owned(), features: vec![feature(1, point!(x: 0.0, y: 0.0).into())] }];
        assert!(encode_tile(Z, X, Y, &far).is_empty());
        assert!(encode_tile(3, 8, 0, &layers).is_empty());
    }

    #[test]
    fn repeated_points_and_mixed_collections() {
        let line =
            LineString::from(vec![pt(10.0, 10.0), pt(10.1, 10.1), pt(10.2, 9.9), pt(50.0, 10.0), pt(50.0, 10.0)]);
        let collection = GeometryCollection(vec![
            line.into(),
            MultiPoint::from(vec![geo::Point(pt(1.0, 2.0)), geo::Point(pt(3.0, 4.0))]).into(),
            geo::Geometry::Line(geo::Line::new(pt(0.0, 0.0), pt(0.3, 0.3))),
        ]);
        let layers = [MvtLayer {
            name: "l".to_owned(),
            features: vec![MvtFeature {
                id: 9,
                geometry: Geometry::GeometryCollection(collection),
                properties: vec![("k".to_owned(), MvtValue::Int(1))],
            }],
        }];
        let decoded = decode(&encode_tile(Z, X, Y, &layers));
        let feats = &decoded[0].2;
        assert_eq!(feats.len(), 2, "one feature per MVT type");
        assert_eq!((feats[0].kind, feats[0].id), (GeomType::Point as i32, 9));
        assert_eq!(feats[0].parts, [vec![(1, 2), (3, 4)]]);
        // the repeated points collapse; the line that quantises to one point is dropped
        assert_eq!((feats[1].kind, feats[1].id), (GeomType::Linestring as i32, 9));
        assert_eq!(feats[1].parts, [vec![(10, 10), (50, 10)]]);
        assert_eq!(feats[1].props, [("k".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn thinning_keeps_one_point_per_cell() {
        // 10,000 points in a 100 m square: at z10 they fall in one or two cells, at z22 in many.
        let points: Vec<(f64, f64)> =
            (0..10_000).map(|i| (117.18 + f64::from(i % 100) * 1e-5, 34.26 + f64::from(i / 100) * 1e-5)).collect();
        let low = thin_points(points.clone(), 10, |p| *p);
        assert!((1..=4).contains(&low.len()), "{}", low.len());
        assert_eq!(low[0], points[0], "the first point of a cell is kept");
        let high = thin_points(points.clone(), 22, |p| *p);
        assert_eq!(high.len(), points.len());
        // never more than 256 × 256 points in one tile
        let grid: Vec<(f64, f64)> = (0..400 * 400)
            .map(|i| {
                let (w, s, e, n) = tile_bbox(Z, X, Y).unwrap();
                (w + (e - w) * (f64::from(i % 400) + 0.5) / 400.0, s + (n - s) * (f64::from(i / 400) + 0.5) / 400.0)
            })
            .collect();
        assert!(thin_points(grid, Z, |p| *p).len() <= 256 * 256);
        assert!(thin_points(vec![(f64::NAN, 0.0)], 3, |p| *p).is_empty());
    }
}
