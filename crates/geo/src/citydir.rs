//! Reading and writing a city directory: every map layer in the formats city GIS departments
//! deliver (GeoJSON, ESRI Shapefile, CSV), as laid out in the table of [`crate::layers`].
//!
//! Imports are all-or-nothing: a reader either returns the whole layer or the first
//! [`ImportError`], which names the file, the feature (or CSV line), the attribute and the reason,
//! so a GIS operator can fix the one bad feature and try again. GeoJSON and Shapefile input both
//! go through the same step ([`RawFeature`]s → layer: [`regions_from_features`] and friends), so
//! both formats get identical validation. Coordinates are converted from the file's system to
//! WGS-84 as they are read.
//!
//! Components are streamed ([`read_components_csv`], [`write_components_csv`]): a city census
//! holds about a million of them and none of this code ever holds them all.
//!
//! Limitations:
//! - Text must be UTF-8. Chinese GIS departments often deliver GBK (code page 936) DBF and CSV
//!   files; the `dbase` crate as built here has no GBK decoder and this crate has no encoding
//!   dependency, so such files are refused with a message asking for UTF-8 (never silently
//!   garbled). A `.cpg` file naming another code page is refused up front by [`read_city_dir`].
//! - `.prj` files are not read: the coordinate system is the caller's `sys` argument, and
//!   projected coordinates (metres) are refused by the range check rather than reprojected.
//! - References between layers (a kiosk's patrol district, a department's parent, a component's
//!   grid) are not resolved here; that needs the stored data and is the importer's business.
//!   The regions as a whole are checked by [`crate::validate`].

use crate::coord::{to_wgs84, CoordSys};
use crate::layers::{
    Address, AddressKind, Area, AreaLayer, CityMap, Component, DepartmentRow, Kiosk, RegionFeature, Road, UserRow,
};
use citygrid_core::codes::{AreaClass, ClassCode, RegionCode, RegionLevel};
use citygrid_core::component::{ComponentId, ComponentState, CreditCode};
use geo::{
    Area as _, Coord, CoordsIter, Geometry, LineString, MapCoords, MultiLineString, MultiPolygon, Point, Validation,
};
use serde_json::{json, Map, Value};
use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why an import was refused, pointing at the culprit.
///
/// `index` is the 0-based feature index for GeoJSON and Shapefile input (the position in the
/// `features` array or the shapefile record number counted from 0), and the 1-based line
/// number for CSV input (the header is line 1, so the first row is line 2). Which one is meant
/// follows from the file name: names ending in `.csv` count lines. [`ImportError::WHOLE_FILE`]
/// marks an error about the whole file (not JSON, unreadable, a missing column…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub file: String,
    pub index: usize,
    /// The property or column at fault, when it is one.
    pub field: Option<String>,
    pub reason: String,
}

impl ImportError {
    /// The `index` of an error about the file as a whole.
    pub const WHOLE_FILE: usize = usize::MAX;

    fn at(file: &str, index: usize, field: Option<&str>, reason: impl Into<String>) -> Self {
        ImportError { file: file.to_owned(), index, field: field.map(str::to_owned), reason: reason.into() }
    }

    fn whole(file: &str, reason: impl Into<String>) -> Self {
        Self::at(file, Self::WHOLE_FILE, None, reason)
    }

    fn is_csv(&self) -> bool {
        self.file.to_ascii_lowercase().ends_with(".csv")
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if self.index != Self::WHOLE_FILE {
            let what = if self.is_csv() { "line" } else { "feature" };
            write!(f, "{what} {}: ", self.index)?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ImportError {}

/// A per-feature error before the file and index are known.
struct FieldError {
    field: Option<&'static str>,
    reason: String,
}

fn field_err(field: &'static str, reason: impl Into<String>) -> FieldError {
    FieldError { field: Some(field), reason: reason.into() }
}

impl FieldError {
    fn locate(self, file: &str, index: usize) -> ImportError {
        ImportError::at(file, index, self.field, self.reason)
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers shared by every format
// ---------------------------------------------------------------------------------------------

/// Folds full-width ASCII (`０-９`, `Ａ-Ｚ`, `ａ-ｚ`, `－`, the ideographic space…) to ASCII and
/// trims. Spreadsheets typed with a Chinese input method produce full-width digits in ids and
/// codes that look right on screen and fail every parser.
pub fn normalize_ascii(s: &str) -> Cow<'_, str> {
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{3000}');
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
                '\u{3000}' => ' ',
                _ => c,
            })
            .collect(),
    )
}

fn level_name(level: RegionLevel) -> &'static str {
    match level {
        RegionLevel::City => "6-digit city",
        RegionLevel::District => "6-digit district",
        RegionLevel::Street => "9-digit street",
        RegionLevel::Community => "12-digit community",
        RegionLevel::Grid => "15-digit unit grid",
    }
}

/// A region code of exactly `level`.
fn region_code_at(raw: &str, level: RegionLevel) -> Result<RegionCode, String> {
    let norm = normalize_ascii(raw);
    match RegionCode::parse(&norm) {
        Ok(code) if code.level() == level => Ok(code),
        Ok(code) => Err(format!("{raw:?} is a {} code, not a {} code", code.level().as_str(), level_name(level))),
        Err(_) => Err(format!("{raw:?} is not a {} code", level_name(level))),
    }
}

fn in_degree_range(c: &Coord<f64>) -> bool {
    (-180.0..=180.0).contains(&c.x) && (-90.0..=90.0).contains(&c.y)
}

const RANGE_REASON: &str =
    "coordinates outside -180..180 / -90..90 (projected metres or swapped axes? expected longitude/latitude degrees)";

/// Checks the range in the file's own system, then converts to WGS-84. Range first: projected
/// metres would otherwise surface as a confusing geometric error (and NaN fails the range test).
fn to_wgs84_geometry(g: Geometry<f64>, sys: CoordSys) -> Result<Geometry<f64>, FieldError> {
    if g.coords_count() == 0 {
        return Err(field_err("geometry", "empty geometry"));
    }
    if !g.coords_iter().all(|c| in_degree_range(&c)) {
        return Err(field_err("geometry", RANGE_REASON));
    }
    Ok(match sys {
        CoordSys::Wgs84 | CoordSys::Cgcs2000 => g,
        _ => g.map_coords(|c| {
            let (x, y) = to_wgs84(sys, c.x, c.y);
            Coord { x, y }
        }),
    })
}

/// The checks of [`crate::GridIndex::new`] (grid.rs `check_grid`), for any polygon layer:
/// non-empty, OGC-valid, positive area.
fn check_polygon(mp: &MultiPolygon<f64>) -> Result<(), FieldError> {
    if mp.0.is_empty() || mp.0.iter().any(|p| p.exterior().0.is_empty()) {
        return Err(field_err("geometry", "empty polygon"));
    }
    if let Err(e) = mp.check_validation() {
        return Err(field_err("geometry", format!("invalid polygon: {e}")));
    }
    if mp.0.iter().any(|p| p.unsigned_area() <= 0.0) {
        return Err(field_err("geometry", "invalid polygon: zero area"));
    }
    Ok(())
}

fn polygon_geometry(g: Geometry<f64>, sys: CoordSys) -> Result<MultiPolygon<f64>, FieldError> {
    let mp = match g {
        Geometry::Polygon(p) => MultiPolygon(vec![p]),
        Geometry::MultiPolygon(mp) => mp,
        _ => return Err(field_err("geometry", "must be a Polygon or MultiPolygon")),
    };
    let Geometry::MultiPolygon(mp) = to_wgs84_geometry(Geometry::MultiPolygon(mp), sys)? else {
        return Err(field_err("geometry", "must be a Polygon or MultiPolygon"));
    };
    check_polygon(&mp)?;
    Ok(mp)
}

fn point_geometry(g: Geometry<f64>, sys: CoordSys) -> Result<(f64, f64), FieldError> {
    let p = match g {
        Geometry::Point(p) => p,
        Geometry::MultiPoint(mp) if mp.0.len() == 1 => mp.0[0],
        _ => return Err(field_err("geometry", "must be a Point")),
    };
    match to_wgs84_geometry(Geometry::Point(p), sys)? {
        Geometry::Point(p) => Ok((p.x(), p.y())),
        _ => Err(field_err("geometry", "must be a Point")),
    }
}

fn line_geometry(g: Geometry<f64>, sys: CoordSys) -> Result<MultiLineString<f64>, FieldError> {
    let ml = match g {
        Geometry::LineString(l) => MultiLineString(vec![l]),
        Geometry::MultiLineString(ml) => ml,
        _ => return Err(field_err("geometry", "must be a LineString or MultiLineString")),
    };
    let Geometry::MultiLineString(ml) = to_wgs84_geometry(Geometry::MultiLineString(ml), sys)? else {
        return Err(field_err("geometry", "must be a LineString or MultiLineString"));
    };
    if ml.0.is_empty() || ml.0.iter().any(|l| l.0.len() < 2) {
        return Err(field_err("geometry", "every line needs at least two positions"));
    }
    Ok(ml)
}

fn split_aliases(s: Option<&str>) -> Vec<String> {
    s.map(|s| s.split('|').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Features: the common form of GeoJSON and Shapefile input
// ---------------------------------------------------------------------------------------------

/// One feature as read from GeoJSON or a Shapefile, before it is checked: its geometry in the
/// file's coordinates and its attributes as text (numbers formatted, nulls left out).
pub type RawFeature = (Geometry<f64>, BTreeMap<String, String>);

/// Looks a property up by name: exactly, then ignoring case (DBF field names are often
/// upper-case), then by the first 10 characters (DBF truncates field names to 10, so
/// `patrol_district` arrives as `PATROL_DIS`). Blank values count as absent.
fn prop<'a>(props: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    let found = props.get(name).or_else(|| {
        let short = name.get(..10).unwrap_or(name);
        props
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .or_else(|| props.iter().find(|(k, _)| k.eq_ignore_ascii_case(short)))
            .map(|(_, v)| v)
    })?;
    let v = found.trim();
    (!v.is_empty()).then_some(v)
}

fn required<'a>(props: &'a BTreeMap<String, String>, name: &'static str) -> Result<&'a str, FieldError> {
    prop(props, name).ok_or_else(|| field_err(name, "missing or empty"))
}

/// Refuses a code seen before in the same layer, naming the first occurrence.
fn check_unique(seen: &mut HashMap<String, usize>, code: &str, index: usize, unit: &str) -> Result<(), FieldError> {
    match seen.insert(code.to_owned(), index) {
        Some(first) => {
            seen.insert(code.to_owned(), first);
            Err(field_err("code", format!("{code:?} appears twice (first at {unit} {first})")))
        }
        None => Ok(()),
    }
}

/// Checks and converts features into regions of one level: `code` of exactly that level, a
/// `name` (optional for unit grids, which often have none), an optional `area_class` (A/B/C or
/// 一类/二类/三类; A when absent), a valid (Multi)Polygon; codes unique in the layer.
pub fn regions_from_features(
    file: &str,
    features: Vec<RawFeature>,
    level: RegionLevel,
    sys: CoordSys,
) -> Result<Vec<RegionFeature>, ImportError> {
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(features.len());
    for (i, (geometry, props)) in features.into_iter().enumerate() {
        let one = || -> Result<RegionFeature, FieldError> {
            let raw = required(&props, "code")?;
            let code = region_code_at(raw, level).map_err(|r| field_err("code", r))?;
            check_unique(&mut seen, code.as_str(), i, "feature")?;
            let name = match (prop(&props, "name"), level) {
                (Some(n), _) => n.to_owned(),
                (None, RegionLevel::Grid) => String::new(),
                (None, _) => return Err(field_err("name", "missing or empty")),
            };
            let area_class = match prop(&props, "area_class") {
                None => AreaClass::default(),
                Some(s) => {
                    parse_area_class(s).ok_or_else(|| field_err("area_class", format!("{s:?} is not A, B or C")))?
                }
            };
            let polygon = polygon_geometry(geometry, sys)?;
            Ok(RegionFeature { code, name, area_class, polygon })
        };
        out.push(one().map_err(|e| e.locate(file, i))?);
    }
    Ok(out)
}

fn parse_area_class(s: &str) -> Option<AreaClass> {
    let s = normalize_ascii(s);
    AreaClass::parse(&s.to_ascii_uppercase()).or(match s.as_ref() {
        "一类" => Some(AreaClass::A),
        "二类" => Some(AreaClass::B),
        "三类" => Some(AreaClass::C),
        _ => None,
    })
}

/// Checks and converts features into responsibility areas of `layer`: `code` (unique), `name`,
/// `owner`, a valid (Multi)Polygon.
pub fn areas_from_features(
    file: &str,
    features: Vec<RawFeature>,
    layer: AreaLayer,
    sys: CoordSys,
) -> Result<Vec<Area>, ImportError> {
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(features.len());
    for (i, (geometry, props)) in features.into_iter().enumerate() {
        let one = || -> Result<Area, FieldError> {
            let code = normalize_ascii(required(&props, "code")?).into_owned();
            check_unique(&mut seen, &code, i, "feature")?;
            let name = required(&props, "name")?.to_owned();
            let owner = required(&props, "owner")?.to_owned();
            let polygon = polygon_geometry(geometry, sys)?;
            Ok(Area { layer, code, name, owner, polygon })
        };
        out.push(one().map_err(|e| e.locate(file, i))?);
    }
    Ok(out)
}

/// Checks and converts features into kiosks: `code` (unique), `name`, `patrol_district`, a Point.
pub fn kiosks_from_features(file: &str, features: Vec<RawFeature>, sys: CoordSys) -> Result<Vec<Kiosk>, ImportError> {
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(features.len());
    for (i, (geometry, props)) in features.into_iter().enumerate() {
        let one = || -> Result<Kiosk, FieldError> {
            let code = normalize_ascii(required(&props, "code")?).into_owned();
            check_unique(&mut seen, &code, i, "feature")?;
            let name = required(&props, "name")?.to_owned();
            let patrol_district = normalize_ascii(required(&props, "patrol_district")?).into_owned();
            let (lon, lat) = point_geometry(geometry, sys)?;
            Ok(Kiosk { code, name, patrol_district, lon, lat })
        };
        out.push(one().map_err(|e| e.locate(file, i))?);
    }
    Ok(out)
}

/// Checks and converts features into roads: `code` (unique), `name`, `aliases` (`|`-separated,
/// optional), `district` (a 6-digit district code), a (Multi)LineString.
pub fn roads_from_features(file: &str, features: Vec<RawFeature>, sys: CoordSys) -> Result<Vec<Road>, ImportError> {
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(features.len());
    for (i, (geometry, props)) in features.into_iter().enumerate() {
        let one = || -> Result<Road, FieldError> {
            let code = normalize_ascii(required(&props, "code")?).into_owned();
            check_unique(&mut seen, &code, i, "feature")?;
            let name = required(&props, "name")?.to_owned();
            let aliases = split_aliases(prop(&props, "aliases"));
            let district = region_code_at(required(&props, "district")?, RegionLevel::District)
                .map_err(|r| field_err("district", r))?;
            let line = line_geometry(geometry, sys)?;
            Ok(Road { code, name, aliases, district, line })
        };
        out.push(one().map_err(|e| e.locate(file, i))?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// GeoJSON
// ---------------------------------------------------------------------------------------------

/// Reads the features of a GeoJSON `FeatureCollection` (or a single `Feature`). Properties
/// become text: strings as they are, numbers formatted (GIS tools write codes as numbers),
/// booleans as `true`/`false`, arrays of strings joined with `|`; nulls are left out.
pub fn features_from_geojson(file: &str, text: &str) -> Result<Vec<RawFeature>, ImportError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| ImportError::whole(file, format!("not valid JSON: {e}")))?;
    let features: Vec<&Value> = match doc.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => doc
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| ImportError::whole(file, "a FeatureCollection needs a \"features\" array"))?
            .iter()
            .collect(),
        Some("Feature") => vec![&doc],
        _ => return Err(ImportError::whole(file, "expected a GeoJSON FeatureCollection or Feature")),
    };
    features.into_iter().enumerate().map(|(i, f)| feature_from_json(f).map_err(|e| e.locate(file, i))).collect()
}

fn feature_from_json(f: &Value) -> Result<RawFeature, FieldError> {
    let mut props = BTreeMap::new();
    match f.get("properties") {
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Array(items) => items
                        .iter()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join("|"),
                    Value::Null | Value::Object(_) => continue,
                };
                props.insert(k.clone(), text);
            }
        }
        Some(Value::Null) | None => {}
        Some(_) => return Err(field_err("properties", "must be an object")),
    }
    let geometry = match f.get("geometry") {
        Some(g @ Value::Object(_)) => geometry_from_json(g).map_err(|r| field_err("geometry", r))?,
        _ => return Err(field_err("geometry", "missing geometry")),
    };
    Ok((geometry, props))
}

fn geometry_from_json(g: &Value) -> Result<Geometry<f64>, String> {
    let kind = g.get("type").and_then(Value::as_str).ok_or("missing \"type\"")?;
    let c = g.get("coordinates").ok_or("missing \"coordinates\"")?;
    let arr = |v: &Value| v.as_array().cloned().ok_or_else(|| "coordinates must be nested arrays".to_owned());
    let pos = |v: &Value| -> Result<Coord<f64>, String> {
        let xy = v.as_array().ok_or("a position must be an array")?;
        match (xy.first().and_then(Value::as_f64), xy.get(1).and_then(Value::as_f64)) {
            // A third value (altitude) is allowed by RFC 7946 and ignored.
            (Some(x), Some(y)) => Ok(Coord { x, y }),
            _ => Err("a position needs numeric longitude and latitude".to_owned()),
        }
    };
    let line = |v: &Value| -> Result<LineString<f64>, String> { arr(v)?.iter().map(pos).collect() };
    let polygon = |v: &Value| -> Result<geo::Polygon<f64>, String> {
        let mut rings = arr(v)?.iter().map(line).collect::<Result<Vec<_>, _>>()?.into_iter();
        let exterior = rings.next().ok_or("a polygon needs an exterior ring")?;
        Ok(geo::Polygon::new(exterior, rings.collect()))
    };
    Ok(match kind {
        "Point" => Geometry::Point(Point(pos(c)?)),
        "MultiPoint" => Geometry::MultiPoint(arr(c)?.iter().map(|p| pos(p).map(Point)).collect::<Result<_, _>>()?),
        "LineString" => Geometry::LineString(line(c)?),
        "MultiLineString" => {
            Geometry::MultiLineString(MultiLineString(arr(c)?.iter().map(line).collect::<Result<_, _>>()?))
        }
        "Polygon" => Geometry::Polygon(polygon(c)?),
        "MultiPolygon" => Geometry::MultiPolygon(MultiPolygon(arr(c)?.iter().map(polygon).collect::<Result<_, _>>()?)),
        other => return Err(format!("unsupported geometry type {other:?}")),
    })
}

/// Reads one level of the administrative regions from GeoJSON (`districts.geojson`…).
pub fn read_regions_geojson(
    file: &str,
    text: &str,
    level: RegionLevel,
    sys: CoordSys,
) -> Result<Vec<RegionFeature>, ImportError> {
    regions_from_features(file, features_from_geojson(file, text)?, level, sys)
}

/// Reads one layer of responsibility areas from GeoJSON (`patrol_districts.geojson`…).
pub fn read_areas_geojson(file: &str, text: &str, layer: AreaLayer, sys: CoordSys) -> Result<Vec<Area>, ImportError> {
    areas_from_features(file, features_from_geojson(file, text)?, layer, sys)
}

/// Reads `kiosks.geojson`.
pub fn read_kiosks_geojson(file: &str, text: &str, sys: CoordSys) -> Result<Vec<Kiosk>, ImportError> {
    kiosks_from_features(file, features_from_geojson(file, text)?, sys)
}

/// Reads `roads.geojson`.
pub fn read_roads_geojson(file: &str, text: &str, sys: CoordSys) -> Result<Vec<Road>, ImportError> {
    roads_from_features(file, features_from_geojson(file, text)?, sys)
}

fn ring_json(ring: &LineString<f64>) -> Value {
    Value::Array(ring.0.iter().map(|c| json!([c.x, c.y])).collect())
}

fn polygon_json(p: &geo::Polygon<f64>) -> Value {
    let mut rings = vec![ring_json(p.exterior())];
    rings.extend(p.interiors().iter().map(ring_json));
    Value::Array(rings)
}

/// Any geometry as a GeoJSON geometry object (lines and triangles become polygons, rectangles
/// polygons, collections `GeometryCollection`s).
pub fn geometry_to_json(g: &Geometry<f64>) -> Value {
    match g {
        Geometry::Point(p) => json!({ "type": "Point", "coordinates": [p.x(), p.y()] }),
        Geometry::MultiPoint(mp) => {
            json!({ "type": "MultiPoint", "coordinates": mp.0.iter().map(|p| json!([p.x(), p.y()])).collect::<Vec<_>>() })
        }
        Geometry::Line(l) => {
            json!({ "type": "LineString", "coordinates": [[l.start.x, l.start.y], [l.end.x, l.end.y]] })
        }
        Geometry::LineString(l) => json!({ "type": "LineString", "coordinates": ring_json(l) }),
        Geometry::MultiLineString(ml) => {
            json!({ "type": "MultiLineString", "coordinates": ml.0.iter().map(ring_json).collect::<Vec<_>>() })
        }
        Geometry::Polygon(p) => json!({ "type": "Polygon", "coordinates": polygon_json(p) }),
        Geometry::MultiPolygon(mp) => multipolygon_json(mp),
        Geometry::Rect(r) => json!({ "type": "Polygon", "coordinates": polygon_json(&r.to_polygon()) }),
        Geometry::Triangle(t) => json!({ "type": "Polygon", "coordinates": polygon_json(&t.to_polygon()) }),
        Geometry::GeometryCollection(gc) => {
            json!({ "type": "GeometryCollection", "geometries": gc.0.iter().map(geometry_to_json).collect::<Vec<_>>() })
        }
    }
}

fn multipolygon_json(mp: &MultiPolygon<f64>) -> Value {
    json!({ "type": "MultiPolygon", "coordinates": mp.0.iter().map(polygon_json).collect::<Vec<_>>() })
}

fn feature(id: &str, properties: Map<String, Value>, geometry: Value) -> Value {
    json!({ "type": "Feature", "id": id, "properties": properties, "geometry": geometry })
}

fn collection(features: Vec<Value>) -> Value {
    json!({ "type": "FeatureCollection", "features": features })
}

fn props<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Regions as a `FeatureCollection`: `MultiPolygon`s with `code`, `name`, `area_class` (and the
/// code as feature `id`, which map libraries use for hover state).
pub fn regions_to_geojson(regions: &[RegionFeature]) -> Value {
    collection(
        regions
            .iter()
            .map(|r| {
                let p = props([
                    ("code", json!(r.code.as_str())),
                    ("name", json!(r.name)),
                    ("area_class", json!(r.area_class.as_str())),
                ]);
                feature(r.code.as_str(), p, multipolygon_json(&r.polygon))
            })
            .collect(),
    )
}

/// Responsibility areas as a `FeatureCollection` with `code`, `name`, `owner`.
pub fn areas_to_geojson(areas: &[Area]) -> Value {
    collection(
        areas
            .iter()
            .map(|a| {
                let p = props([("code", json!(a.code)), ("name", json!(a.name)), ("owner", json!(a.owner))]);
                feature(&a.code, p, multipolygon_json(&a.polygon))
            })
            .collect(),
    )
}

/// Kiosks as a `FeatureCollection` of `Point`s with `code`, `name`, `patrol_district`.
pub fn kiosks_to_geojson(kiosks: &[Kiosk]) -> Value {
    collection(
        kiosks
            .iter()
            .map(|k| {
                let p = props([
                    ("code", json!(k.code)),
                    ("name", json!(k.name)),
                    ("patrol_district", json!(k.patrol_district)),
                ]);
                feature(&k.code, p, json!({ "type": "Point", "coordinates": [k.lon, k.lat] }))
            })
            .collect(),
    )
}

/// Roads as a `FeatureCollection` of `MultiLineString`s with `code`, `name`, `aliases`
/// (`|`-separated), `district`.
pub fn roads_to_geojson(roads: &[Road]) -> Value {
    collection(
        roads
            .iter()
            .map(|r| {
                let p = props([
                    ("code", json!(r.code)),
                    ("name", json!(r.name)),
                    ("aliases", json!(r.aliases.join("|"))),
                    ("district", json!(r.district.as_str())),
                ]);
                feature(&r.code, p, geometry_to_json(&Geometry::MultiLineString(r.line.clone())))
            })
            .collect(),
    )
}

/// Addresses as a `FeatureCollection` of `Point`s with the columns of `addresses.csv`.
pub fn addresses_to_geojson(addresses: &[Address]) -> Value {
    collection(
        addresses
            .iter()
            .map(|a| {
                let p = props([
                    ("code", json!(a.code)),
                    ("kind", json!(a.kind.as_str())),
                    ("name", json!(a.name)),
                    ("aliases", json!(a.aliases.join("|"))),
                    ("district", json!(a.district.as_str())),
                    ("road", json!(a.road)),
                    ("number", json!(a.number)),
                ]);
                feature(&a.code, p, json!({ "type": "Point", "coordinates": [a.lon, a.lat] }))
            })
            .collect(),
    )
}

/// Components as a `FeatureCollection` with the columns of `components.csv` (and `legacy_id`).
/// Builds the whole document: for a whole city's census export prefer
/// [`write_components_csv`], which streams.
pub fn components_to_geojson(components: impl IntoIterator<Item = impl Borrow<Component>>) -> Value {
    collection(
        components
            .into_iter()
            .map(|c| {
                let c = c.borrow();
                let p = props([
                    ("id", json!(c.id.as_str())),
                    ("class_code", json!(c.class_code().as_str())),
                    ("name", json!(c.name)),
                    ("dept_credit_code", json!(c.dept_credit_code.as_str())),
                    ("dept_name", json!(c.dept_name)),
                    ("grid_code", json!(c.grid_code.as_str())),
                    ("state", json!(c.state.as_str())),
                    ("start_date", json!(c.start_date.to_string())),
                    ("owner", json!(c.owner)),
                    ("maintainer", json!(c.maintainer)),
                    ("change_date", json!(c.change_date.map(|d| d.to_string()))),
                    ("data_source", json!(c.data_source)),
                    ("note", json!(c.note)),
                    ("legacy_id", json!(c.legacy_id)),
                ]);
                feature(c.id.as_str(), p, geometry_to_json(&c.geometry))
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Shapefile
// ---------------------------------------------------------------------------------------------

/// Reads an ESRI Shapefile from the bytes of its `.shp` and `.dbf` (the `.shx` index is not
/// needed for reading every record in order). Attributes become text as in
/// [`features_from_geojson`]; DBF text must be UTF-8 (see the module's limitations). The
/// index in errors is the 0-based record number; `file` is the name used in messages.
pub fn read_shapefile(file: &str, shp: &[u8], dbf: &[u8]) -> Result<Vec<RawFeature>, ImportError> {
    use shapefile::dbase::FieldValue;
    let shapes = shapefile::ShapeReader::new(io::Cursor::new(shp))
        .map_err(|e| ImportError::whole(file, format!("not a shapefile: {e}")))?;
    let mut table = shapefile::dbase::Reader::new(io::Cursor::new(dbf))
        .map_err(|e| ImportError::whole(file, format!("unreadable .dbf: {e}")))?;
    // Strict UTF-8, so a GBK file fails with a clear message instead of turning every Chinese name
    // into replacement characters (the crate's default is lossy).
    table.set_encoding(shapefile::dbase::Unicode);
    let mut reader = shapefile::Reader::new(shapes, table);
    let mut out = Vec::new();
    for (i, item) in reader.iter_shapes_and_records().enumerate() {
        let (shape, record) = item.map_err(|e| {
            let mut reason = format!("unreadable record: {e}");
            if reason.contains("decode") {
                reason.push_str(" (DBF text must be UTF-8; GBK/code page 936 is not supported)");
            }
            ImportError::at(file, i, None, reason)
        })?;
        let geometry = Geometry::<f64>::try_from(shape)
            .map_err(|e| ImportError::at(file, i, Some("geometry"), format!("unusable shape: {e}")))?;
        let mut props = BTreeMap::new();
        for (name, value) in record {
            let text = match value {
                FieldValue::Character(Some(s)) | FieldValue::Memo(s) => s,
                // Integral numbers (codes stored as N(15,0)) print without a fraction.
                FieldValue::Numeric(Some(n)) | FieldValue::Double(n) | FieldValue::Currency(n) => n.to_string(),
                FieldValue::Float(Some(n)) => n.to_string(),
                FieldValue::Integer(n) => n.to_string(),
                FieldValue::Logical(Some(b)) => b.to_string(),
                FieldValue::Date(Some(d)) => format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
                _ => continue,
            };
            props.insert(name, text);
        }
        out.push((geometry, props));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

/// A CSV header: column name → position. Names are matched trimmed and lower-cased, with the
/// UTF-8 byte-order mark Excel puts before the first one removed.
struct Columns {
    index: HashMap<String, usize>,
}

impl Columns {
    fn new(file: &str, headers: &csv::StringRecord, required: &[&str]) -> Result<Self, ImportError> {
        let index: HashMap<String, usize> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim_start_matches('\u{FEFF}').trim().to_lowercase(), i))
            .collect();
        for &col in required {
            if !index.contains_key(col) {
                return Err(ImportError::at(file, 1, Some(col), "missing column"));
            }
        }
        Ok(Columns { index })
    }

    fn has(&self, col: &str) -> bool {
        self.index.contains_key(col)
    }

    /// The trimmed value, `None` when blank or the column is absent.
    fn get<'r>(&self, rec: &'r csv::StringRecord, col: &str) -> Option<&'r str> {
        let v = rec.get(*self.index.get(col)?)?.trim();
        (!v.is_empty()).then_some(v)
    }

    fn req<'r>(&self, rec: &'r csv::StringRecord, col: &'static str) -> Result<&'r str, FieldError> {
        self.get(rec, col).ok_or_else(|| field_err(col, "missing or empty"))
    }
}

fn csv_reader<R: Read>(r: R) -> csv::Reader<R> {
    // Not flexible: a row with a stray comma (an unquoted note) would shift lon/lat into the
    // wrong columns, so a wrong field count is an error.
    csv::ReaderBuilder::new().has_headers(true).from_reader(r)
}

fn csv_error(file: &str, e: &csv::Error) -> ImportError {
    let line = e.position().map_or(ImportError::WHOLE_FILE, |p| usize::try_from(p.line()).unwrap_or(usize::MAX));
    let reason = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text (GBK is not supported: save the CSV as UTF-8)".to_owned(),
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len} (an unquoted comma?)")
        }
        _ => e.to_string(),
    };
    ImportError::at(file, line, None, reason)
}

fn record_line(rec: &csv::StringRecord) -> usize {
    rec.position().map_or(0, |p| usize::try_from(p.line()).unwrap_or(usize::MAX))
}

fn parse_date(col: &'static str, s: &str) -> Result<jiff::civil::Date, FieldError> {
    let bad = || field_err(col, format!("{s:?} is not a date YYYY-MM-DD"));
    let norm = normalize_ascii(s).replace('/', "-");
    let b = norm.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| norm.get(r).filter(|t| t.bytes().all(|c| c.is_ascii_digit()))?.parse().ok();
    let (Some(y), Some(m), Some(d)) = (
        num(0..4),
        num(5..7).and_then(|m: i16| i8::try_from(m).ok()),
        num(8..10).and_then(|d: i16| i8::try_from(d).ok()),
    ) else {
        return Err(bad());
    };
    jiff::civil::Date::new(y, m, d).map_err(|_| bad())
}

fn parse_coord(col: &'static str, s: &str, max: f64) -> Result<f64, FieldError> {
    let v: f64 = normalize_ascii(s).parse().map_err(|_| field_err(col, format!("{s:?} is not a number")))?;
    if !(-max..=max).contains(&v) {
        return Err(field_err(
            col,
            format!("{s} is outside -{max}..{max} (projected metres? expected WGS-84-style degrees)"),
        ));
    }
    Ok(v)
}

fn lon_lat(cols: &Columns, rec: &csv::StringRecord, sys: CoordSys) -> Result<(f64, f64), FieldError> {
    let lon = parse_coord("lon", cols.req(rec, "lon")?, 180.0)?;
    let lat = parse_coord("lat", cols.req(rec, "lat")?, 90.0)?;
    Ok(to_wgs84(sys, lon, lat))
}

fn opt(cols: &Columns, rec: &csv::StringRecord, col: &str) -> Option<String> {
    cols.get(rec, col).map(str::to_owned)
}

/// Component majors 01–05; event majors (06–10) share the 5-digit code space.
fn check_component_class(col: &'static str, class: &ClassCode) -> Result<(), FieldError> {
    if matches!(class.major(), "01" | "02" | "03" | "04" | "05") {
        Ok(())
    } else {
        Err(field_err(
            col,
            format!(
                "{:?} is an event class (major {}), not a component class (majors 01-05)",
                class.as_str(),
                class.major()
            ),
        ))
    }
}

const COMPONENT_REQUIRED: [&str; 7] =
    ["id", "name", "dept_credit_code", "dept_name", "grid_code", "state", "start_date"];

/// The columns of `components.csv`, in the order written. `legacy_id` is an extension of the
/// table in [`crate::layers`]: it carries a GB/T 30428.2 id through export and re-import.
pub const COMPONENT_COLUMNS: [&str; 17] = [
    "id",
    "class_code",
    "name",
    "dept_credit_code",
    "dept_name",
    "grid_code",
    "state",
    "start_date",
    "owner",
    "maintainer",
    "change_date",
    "data_source",
    "note",
    "lon",
    "lat",
    "wkt",
    "legacy_id",
];

fn component_from_row(cols: &Columns, rec: &csv::StringRecord, sys: CoordSys) -> Result<(Component, u64), FieldError> {
    let raw_id = normalize_ascii(cols.req(rec, "id")?);
    let id = ComponentId::parse_or_legacy(&raw_id).map_err(|_| {
        field_err("id", format!("{raw_id:?} is not a 17-digit component id (or a 16-digit GB/T 30428.2 id)"))
    })?;
    let mut legacy_id = (raw_id.len() == 16).then(|| raw_id.clone().into_owned());
    if let Some(l) = cols.get(rec, "legacy_id") {
        let l = normalize_ascii(l);
        match ComponentId::parse_or_legacy(&l) {
            Ok(mapped) if l.len() == 16 && mapped == id => legacy_id = Some(l.into_owned()),
            _ => return Err(field_err("legacy_id", format!("{l:?} is not the 16-digit legacy form of {id}"))),
        }
    }
    if let Some(c) = cols.get(rec, "class_code") {
        let c = normalize_ascii(c);
        // A legacy 4-digit class (MM NN) maps like the id: MM 0NN.
        let mapped = if c.len() == 4 { format!("{}0{}", &c[..2], &c[2..]) } else { c.clone().into_owned() };
        let class = ClassCode::parse(&mapped)
            .map_err(|_| field_err("class_code", format!("{c:?} is not a 5-digit class code")))?;
        check_component_class("class_code", &class)?;
        if class != id.class_code() {
            return Err(field_err(
                "class_code",
                format!("{c:?} does not match the class {} in the id", id.class_code()),
            ));
        }
    }
    check_component_class("id", &id.class_code())?;
    let name = cols.req(rec, "name")?.to_owned();
    let credit = normalize_ascii(cols.req(rec, "dept_credit_code")?);
    let dept_credit_code = CreditCode::parse(&credit).map_err(|_| {
        field_err("dept_credit_code", format!("{credit:?} is not an 18-character unified social credit code"))
    })?;
    let dept_name = cols.req(rec, "dept_name")?.to_owned();
    let grid = normalize_ascii(cols.req(rec, "grid_code")?);
    let grid_code = RegionCode::parse_grid(&grid)
        .map_err(|_| field_err("grid_code", format!("{grid:?} is not a 15-digit unit grid code")))?;
    let state_raw = cols.req(rec, "state")?;
    let state = ComponentState::parse(state_raw).ok_or_else(|| {
        field_err(
            "state",
            format!("unknown state {state_raw:?} (expected intact, damaged, lost, abandoned, removed or 完好, 破损, 丢失, 废弃, 移除)"),
        )
    })?;
    let start_date = parse_date("start_date", cols.req(rec, "start_date")?)?;
    let change_date = cols.get(rec, "change_date").map(|s| parse_date("change_date", s)).transpose()?;
    let geometry = match cols.get(rec, "wkt") {
        Some(text) => {
            use wkt::TryFromWkt;
            let g =
                Geometry::<f64>::try_from_wkt_str(text).map_err(|e| field_err("wkt", format!("not valid WKT: {e}")))?;
            to_wgs84_geometry(g, sys).map_err(|e| FieldError { field: Some("wkt"), reason: e.reason })?
        }
        None => {
            let (lon, lat) = lon_lat(cols, rec, sys)?;
            Geometry::Point(Point::new(lon, lat))
        }
    };
    // 17 digits always fit in a u64 (< 10^17 < 2^64); the number is the duplicate-check key.
    let key: u64 = id.as_str().parse().map_err(|_| field_err("id", "not a number"))?;
    let component = Component {
        id,
        legacy_id,
        name,
        dept_credit_code,
        dept_name,
        grid_code,
        state,
        start_date,
        owner: opt(cols, rec, "owner"),
        maintainer: opt(cols, rec, "maintainer"),
        change_date,
        data_source: opt(cols, rec, "data_source"),
        note: opt(cols, rec, "note"),
        geometry,
    };
    Ok((component, key))
}

/// The rows of a `components.csv`, read one at a time.
struct ComponentRows<R: Read> {
    file: String,
    reader: csv::Reader<R>,
    sys: CoordSys,
    /// `None` once the header has been read and refused (the refusal was yielded).
    columns: Option<Columns>,
    header_error: Option<ImportError>,
    record: csv::StringRecord,
    /// id → line, to refuse duplicates. About 32 MB for a million components, which is the price
    /// of catching a census that lists a component twice.
    seen: HashMap<u64, usize>,
    done: bool,
}

impl<R: Read> Iterator for ComponentRows<R> {
    type Item = Result<Component, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.header_error.take() {
            self.done = true;
            return Some(Err(e));
        }
        let cols = self.columns.as_ref()?;
        match self.reader.read_record(&mut self.record) {
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                // A malformed row can be skipped by the caller, but I/O and encoding errors would
                // repeat forever: stop at those.
                if !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    self.done = true;
                }
                Some(Err(csv_error(&self.file, &e)))
            }
            Ok(true) => {
                let line = record_line(&self.record);
                let result = component_from_row(cols, &self.record, self.sys).and_then(|(c, key)| {
                    match self.seen.insert(key, line) {
                        Some(first) => {
                            self.seen.insert(key, first);
                            Err(field_err("id", format!("{} appears twice (first at line {first})", c.id)))
                        }
                        None => Ok(c),
                    }
                });
                Some(result.map_err(|e| e.locate(&self.file, line)))
            }
        }
    }
}

/// Streams the components of a `components.csv` (columns as in [`COMPONENT_COLUMNS`], in any
/// order; `class_code`, the optional attributes and `legacy_id` may be absent; geometry from
/// `wkt` when given, else from `lon`/`lat`). Each row is checked on its own: a 17-digit id or a
/// 16-digit legacy one (mapped, the old id kept in `legacy_id`), a component class (majors
/// 01–05, matching `class_code` when given), a valid credit code, a 15-digit grid code, a state
/// in English or Chinese, dates `YYYY-MM-DD` (or `YYYY/MM/DD`), coordinates in `sys` converted
/// to WGS-84; full-width digits and letters are folded to ASCII in codes, dates and numbers.
/// Ids must be unique in the file.
///
/// Errors carry the 1-based line number. Rows after a bad row are still read (so a caller may
/// collect several errors), except after an I/O or encoding error, which ends the iteration.
pub fn read_components_csv<R: Read>(
    file: &str,
    r: R,
    sys: CoordSys,
) -> impl Iterator<Item = Result<Component, ImportError>> {
    let mut reader = csv_reader(r);
    let (columns, header_error) = match reader.headers() {
        Ok(h) => match Columns::new(file, h, &COMPONENT_REQUIRED) {
            Ok(cols) if cols.has("wkt") || (cols.has("lon") && cols.has("lat")) => (Some(cols), None),
            Ok(_) => (None, Some(ImportError::at(file, 1, Some("lon"), "missing column (need lon and lat, or wkt)"))),
            Err(e) => (None, Some(e)),
        },
        Err(e) => (None, Some(csv_error(file, &e))),
    };
    ComponentRows {
        file: file.to_owned(),
        reader,
        sys,
        columns,
        header_error,
        record: csv::StringRecord::new(),
        seen: HashMap::new(),
        done: false,
    }
}

/// Reads a whole small CSV table, row by row through `row`, refusing duplicate values of `key`.
fn read_table<R: Read, T>(
    file: &str,
    r: R,
    required: &[&str],
    key: &'static str,
    mut row: impl FnMut(&Columns, &csv::StringRecord) -> Result<T, FieldError>,
) -> Result<Vec<T>, ImportError> {
    let mut reader = csv_reader(r);
    let cols = Columns::new(file, reader.headers().map_err(|e| csv_error(file, &e))?, required)?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| csv_error(file, &e))?;
        let line = record_line(&rec);
        let mut one = || -> Result<T, FieldError> {
            let k = normalize_ascii(cols.req(&rec, key)?).into_owned();
            if let Some(first) = seen.insert(k.clone(), line) {
                return Err(field_err(key, format!("{k:?} appears twice (first at line {first})")));
            }
            row(&cols, &rec)
        };
        out.push(one().map_err(|e| e.locate(file, line))?);
    }
    Ok(out)
}

fn parse_address_kind(s: &str) -> Option<AddressKind> {
    AddressKind::parse(&s.to_ascii_lowercase()).or(match s {
        "街巷" => Some(AddressKind::Road),
        "门楼牌" | "门牌" | "楼牌" => Some(AddressKind::Door),
        "兴趣点" | "POI" => Some(AddressKind::Poi),
        _ => None,
    })
}

/// Reads `addresses.csv`: `code` (unique), `kind` (road/door/poi or 街巷/门楼牌/兴趣点), `name`,
/// `aliases` (`|`-separated), `district` (6-digit), optional `road` and `number`, `lon`/`lat`
/// in `sys`.
pub fn read_addresses_csv<R: Read>(file: &str, r: R, sys: CoordSys) -> Result<Vec<Address>, ImportError> {
    let required = ["code", "kind", "name", "district", "lon", "lat"];
    read_table(file, r, &required, "code", |cols, rec| {
        let code = normalize_ascii(cols.req(rec, "code")?).into_owned();
        let kind_raw = cols.req(rec, "kind")?;
        let kind = parse_address_kind(kind_raw)
            .ok_or_else(|| field_err("kind", format!("unknown kind {kind_raw:?} (expected road, door or poi)")))?;
        let name = cols.req(rec, "name")?.to_owned();
        let aliases = split_aliases(cols.get(rec, "aliases"));
        let district =
            region_code_at(cols.req(rec, "district")?, RegionLevel::District).map_err(|r| field_err("district", r))?;
        let (lon, lat) = lon_lat(cols, rec, sys)?;
        Ok(Address {
            code,
            kind,
            name,
            aliases,
            district,
            road: opt(cols, rec, "road"),
            number: opt(cols, rec, "number"),
            lon,
            lat,
        })
    })
}

/// Reads `departments.csv`: `code` (unique), `name`, optional `parent` (a code, not resolved
/// here) and `credit_code` (checked).
pub fn read_departments_csv<R: Read>(file: &str, r: R) -> Result<Vec<DepartmentRow>, ImportError> {
    read_table(file, r, &["code", "name"], "code", |cols, rec| {
        let code = normalize_ascii(cols.req(rec, "code")?).into_owned();
        let name = cols.req(rec, "name")?.to_owned();
        let parent = cols.get(rec, "parent").map(|p| normalize_ascii(p).into_owned());
        if parent.as_deref() == Some(code.as_str()) {
            return Err(field_err("parent", "a department cannot be its own parent"));
        }
        let credit_code = cols
            .get(rec, "credit_code")
            .map(|c| {
                let c = normalize_ascii(c);
                CreditCode::parse(&c).map_err(|_| {
                    field_err("credit_code", format!("{c:?} is not an 18-character unified social credit code"))
                })
            })
            .transpose()?;
        Ok(DepartmentRow { code, name, parent, credit_code })
    })
}

/// Reads `users.csv`: `username` (unique), `display_name`, `role`, `scope` (`region:CODE` with a
/// valid region code, `department:CODE` or `own`). Roles are not checked here: the role names
/// belong to the server.
pub fn read_users_csv<R: Read>(file: &str, r: R) -> Result<Vec<UserRow>, ImportError> {
    read_table(file, r, &["username", "display_name", "role", "scope"], "username", |cols, rec| {
        let username = normalize_ascii(cols.req(rec, "username")?).into_owned();
        let display_name = cols.req(rec, "display_name")?.to_owned();
        let role = cols.req(rec, "role")?.to_ascii_lowercase();
        let scope = normalize_ascii(cols.req(rec, "scope")?).into_owned();
        let ok = match scope.split_once(':') {
            Some(("region", code)) => RegionCode::parse(code).is_ok(),
            Some(("department", code)) => !code.is_empty(),
            None => scope == "own",
            _ => false,
        };
        if !ok {
            return Err(field_err("scope", format!("{scope:?} is not region:CODE, department:CODE or own")));
        }
        Ok(UserRow { username, display_name, role, scope })
    })
}

fn csv_writer<W: Write>(w: W) -> csv::Writer<W> {
    csv::WriterBuilder::new().from_writer(w)
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

fn opt_str(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// Streams components as `components.csv` (header [`COMPONENT_COLUMNS`]): points in `lon`/`lat`,
/// other geometries in `wkt`. Returns the number of rows written.
pub fn write_components_csv<W: Write>(
    w: W,
    components: impl IntoIterator<Item = impl Borrow<Component>>,
) -> io::Result<usize> {
    use wkt::ToWkt;
    let mut out = csv_writer(w);
    out.write_record(COMPONENT_COLUMNS).map_err(csv_io)?;
    let mut n = 0;
    for c in components {
        let c = c.borrow();
        let (lon, lat, wkt) = match &c.geometry {
            Geometry::Point(p) => (p.x().to_string(), p.y().to_string(), String::new()),
            g => (String::new(), String::new(), g.wkt_string()),
        };
        let change = c.change_date.map(|d| d.to_string()).unwrap_or_default();
        out.write_record([
            c.id.as_str(),
            c.class_code().as_str(),
            &c.name,
            c.dept_credit_code.as_str(),
            &c.dept_name,
            c.grid_code.as_str(),
            c.state.as_str(),
            &c.start_date.to_string(),
            opt_str(&c.owner),
            opt_str(&c.maintainer),
            &change,
            opt_str(&c.data_source),
            opt_str(&c.note),
            &lon,
            &lat,
            &wkt,
            opt_str(&c.legacy_id),
        ])
        .map_err(csv_io)?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// Writes `addresses.csv`. Returns the number of rows written.
pub fn write_addresses_csv<W: Write>(w: W, addresses: &[Address]) -> io::Result<usize> {
    let mut out = csv_writer(w);
    out.write_record(["code", "kind", "name", "aliases", "district", "road", "number", "lon", "lat"])
        .map_err(csv_io)?;
    for a in addresses {
        out.write_record([
            a.code.as_str(),
            a.kind.as_str(),
            &a.name,
            &a.aliases.join("|"),
            a.district.as_str(),
            opt_str(&a.road),
            opt_str(&a.number),
            &a.lon.to_string(),
            &a.lat.to_string(),
        ])
        .map_err(csv_io)?;
    }
    out.flush()?;
    Ok(addresses.len())
}

/// Writes `departments.csv`. Returns the number of rows written.
pub fn write_departments_csv<W: Write>(w: W, departments: &[DepartmentRow]) -> io::Result<usize> {
    let mut out = csv_writer(w);
    out.write_record(["code", "name", "parent", "credit_code"]).map_err(csv_io)?;
    for d in departments {
        let credit = d.credit_code.as_ref().map(CreditCode::as_str).unwrap_or("");
        out.write_record([d.code.as_str(), &d.name, opt_str(&d.parent), credit]).map_err(csv_io)?;
    }
    out.flush()?;
    Ok(departments.len())
}

/// Writes `users.csv`. Returns the number of rows written.
pub fn write_users_csv<W: Write>(w: W, users: &[UserRow]) -> io::Result<usize> {
    let mut out = csv_writer(w);
    out.write_record(["username", "display_name", "role", "scope"]).map_err(csv_io)?;
    for u in users {
        out.write_record([u.username.as_str(), &u.display_name, &u.role, &u.scope]).map_err(csv_io)?;
    }
    out.flush()?;
    Ok(users.len())
}

// ---------------------------------------------------------------------------------------------
// The directory
// ---------------------------------------------------------------------------------------------

/// The file stem of each region level's layer.
pub const REGION_FILES: [(RegionLevel, &str); 4] = [
    (RegionLevel::District, "districts"),
    (RegionLevel::Street, "streets"),
    (RegionLevel::Community, "communities"),
    (RegionLevel::Grid, "grids"),
];

/// What [`write_city_dir`] wrote: each file with its number of features or rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    pub files: Vec<(String, usize)>,
}

impl WriteSummary {
    /// The number of records written to `file` (e.g. `"grids.geojson"`).
    pub fn count(&self, file: &str) -> Option<usize> {
        self.files.iter().find(|(f, _)| f == file).map(|&(_, n)| n)
    }
}

fn write_json(path: &Path, value: &Value) -> io::Result<()> {
    let mut w = BufWriter::new(fs::File::create(path)?);
    serde_json::to_writer(&mut w, value).map_err(io::Error::other)?;
    w.flush()
}

/// Writes every layer file of the table in [`crate::layers`] into `dir` (created if needed),
/// including empty layers, so the directory is self-describing. `map.components` is ignored:
/// components come from `components`, streamed into `components.csv`. City-level regions have
/// no file and are refused (`InvalidInput`) rather than silently dropped.
pub fn write_city_dir(
    dir: &Path,
    map: &CityMap,
    components: impl Iterator<Item = Component>,
) -> io::Result<WriteSummary> {
    if let Some(city) = map.regions.iter().find(|r| r.level() == RegionLevel::City) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("region {} is a city: the city directory has no file for city boundaries", city.code),
        ));
    }
    fs::create_dir_all(dir)?;
    let mut summary = WriteSummary::default();
    for (level, stem) in REGION_FILES {
        let regions: Vec<RegionFeature> = map.regions.iter().filter(|r| r.level() == level).cloned().collect();
        let name = format!("{stem}.geojson");
        write_json(&dir.join(&name), &regions_to_geojson(&regions))?;
        summary.files.push((name, regions.len()));
    }
    for layer in AreaLayer::ALL {
        let areas: Vec<Area> = map.areas.iter().filter(|a| a.layer == layer).cloned().collect();
        let name = format!("{}.geojson", layer.as_str());
        write_json(&dir.join(&name), &areas_to_geojson(&areas))?;
        summary.files.push((name, areas.len()));
    }
    write_json(&dir.join("kiosks.geojson"), &kiosks_to_geojson(&map.kiosks))?;
    summary.files.push(("kiosks.geojson".to_owned(), map.kiosks.len()));
    write_json(&dir.join("roads.geojson"), &roads_to_geojson(&map.roads))?;
    summary.files.push(("roads.geojson".to_owned(), map.roads.len()));

    let create = |name: &str| fs::File::create(dir.join(name)).map(BufWriter::new);
    let n = write_departments_csv(create("departments.csv")?, &map.departments)?;
    summary.files.push(("departments.csv".to_owned(), n));
    let n = write_users_csv(create("users.csv")?, &map.users)?;
    summary.files.push(("users.csv".to_owned(), n));
    let n = write_components_csv(create("components.csv")?, components)?;
    summary.files.push(("components.csv".to_owned(), n));
    let n = write_addresses_csv(create("addresses.csv")?, &map.addresses)?;
    summary.files.push(("addresses.csv".to_owned(), n));
    Ok(summary)
}

/// The components file of a city directory, if there is one. Components are not read by
/// [`read_city_dir`]: a census is too large to hold, so the importer streams this file through
/// [`read_components_csv`].
pub fn components_file(dir: &Path) -> Option<PathBuf> {
    let path = dir.join("components.csv");
    path.is_file().then_some(path)
}

fn read_text(dir: &Path, name: &str) -> Result<Option<String>, ImportError> {
    let path = dir.join(name);
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = fs::read(&path).map_err(|e| ImportError::whole(name, e.to_string()))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| ImportError::whole(name, "not UTF-8 text (GBK is not supported: save the file as UTF-8)"))
}

/// The features of layer `stem`, from `stem.geojson` or `stem.shp` + `stem.dbf`, with the name
/// to report errors under; `None` when the layer is absent. Both formats at once is refused:
/// which one is current cannot be guessed.
fn read_layer(dir: &Path, stem: &str) -> Result<Option<(String, Vec<RawFeature>)>, ImportError> {
    let json_name = format!("{stem}.geojson");
    let shp_name = format!("{stem}.shp");
    let dbf_name = format!("{stem}.dbf");
    let has_shp = dir.join(&shp_name).is_file();
    if let Some(text) = read_text(dir, &json_name)? {
        if has_shp {
            return Err(ImportError::whole(&json_name, format!("both {json_name} and {shp_name} exist: keep one")));
        }
        return features_from_geojson(&json_name, &text).map(|f| Some((json_name, f)));
    }
    if !has_shp {
        return Ok(None);
    }
    if !dir.join(&dbf_name).is_file() {
        return Err(ImportError::whole(&shp_name, format!("{dbf_name} is missing (the attributes are in the .dbf)")));
    }
    // A .cpg names the DBF's code page; only UTF-8 can be decoded (see the module doc).
    if let Ok(cpg) = fs::read_to_string(dir.join(format!("{stem}.cpg"))) {
        let cp = cpg.trim().to_ascii_lowercase().replace(['-', '_'], "");
        if !cp.is_empty() && cp != "utf8" && cp != "65001" {
            return Err(ImportError::whole(
                &dbf_name,
                format!("code page {:?} is not supported: re-save the attributes as UTF-8", cpg.trim()),
            ));
        }
    }
    let shp = fs::read(dir.join(&shp_name)).map_err(|e| ImportError::whole(&shp_name, e.to_string()))?;
    let dbf = fs::read(dir.join(&dbf_name)).map_err(|e| ImportError::whole(&dbf_name, e.to_string()))?;
    read_shapefile(&shp_name, &shp, &dbf).map(|f| Some((shp_name, f)))
}

fn read_csv_file<T>(
    dir: &Path,
    name: &str,
    read: impl FnOnce(&str, fs::File) -> Result<Vec<T>, ImportError>,
) -> Result<Vec<T>, ImportError> {
    let path = dir.join(name);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let f = fs::File::open(&path).map_err(|e| ImportError::whole(name, e.to_string()))?;
    read(name, f)
}

/// Reads every layer present in a city directory (see the table in [`crate::layers`]): regions
/// of all levels, responsibility areas, kiosks, roads (each from `.geojson`, or `.shp` + `.dbf`
/// of the same stem), addresses, departments and users. `components` is left empty (see
/// [`components_file`]). The first error anywhere refuses the whole directory.
///
/// Each layer is checked on its own; the regions as a whole (parents, overlaps, gaps) are for
/// [`crate::validate::validate_regions`].
pub fn read_city_dir(dir: &Path, sys: CoordSys) -> Result<CityMap, ImportError> {
    if !dir.is_dir() {
        return Err(ImportError::whole(&dir.display().to_string(), "not a directory"));
    }
    let mut map = CityMap::default();
    for (level, stem) in REGION_FILES {
        if let Some((name, features)) = read_layer(dir, stem)? {
            map.regions.extend(regions_from_features(&name, features, level, sys)?);
        }
    }
    for layer in AreaLayer::ALL {
        if let Some((name, features)) = read_layer(dir, layer.as_str())? {
            map.areas.extend(areas_from_features(&name, features, layer, sys)?);
        }
    }
    if let Some((name, features)) = read_layer(dir, "kiosks")? {
        map.kiosks = kiosks_from_features(&name, features, sys)?;
    }
    if let Some((name, features)) = read_layer(dir, "roads")? {
        map.roads = roads_from_features(&name, features, sys)?;
    }
    map.departments = read_csv_file(dir, "departments.csv", read_departments_csv)?;
    map.users = read_csv_file(dir, "users.csv", read_users_csv)?;
    map.addresses = read_csv_file(dir, "addresses.csv", |name, f| read_addresses_csv(name, f, sys))?;
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, Polygon};

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon<f64> {
        polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)]
    }

    fn mp(p: Polygon<f64>) -> MultiPolygon<f64> {
        MultiPolygon(vec![p])
    }

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    // Awkward decimals, so a lossy float format would show.
    const X: f64 = 117.183_123_456_789;
    const Y: f64 = 34.261_987_654_321;
    const C: f64 = 0.001_234_567_890_123;

    fn credit() -> CreditCode {
        CreditCode::parse("91350100M000100Y43").unwrap()
    }

    fn region(c: &str, name: &str, class: AreaClass, p: Polygon<f64>) -> RegionFeature {
        RegionFeature { code: code(c), name: name.to_owned(), area_class: class, polygon: mp(p) }
    }

    fn sample_map() -> CityMap {
        let outer = rect(X, Y, X + 2.0 * C, Y + 2.0 * C);
        let ring = Polygon::new(
            rect(X + C, Y + C, X + 2.0 * C, Y + 2.0 * C).exterior().clone(),
            vec![rect(X + 1.2 * C, Y + 1.2 * C, X + 1.8 * C, Y + 1.8 * C).exterior().clone()],
        );
        let regions = vec![
            region("320311", "泉山区", AreaClass::A, outer.clone()),
            region("320311001", "王陵街道", AreaClass::B, outer.clone()),
            region("320311001001", "王陵社区", AreaClass::C, outer.clone()),
            region("320311001001001", "", AreaClass::A, rect(X, Y + C, X + C, Y + 2.0 * C)),
            region("320311001001002", "网格二", AreaClass::A, ring),
            RegionFeature {
                code: code("320311001001003"),
                name: "两块".to_owned(),
                area_class: AreaClass::B,
                polygon: MultiPolygon(vec![
                    rect(X, Y, X + C, Y + C),
                    rect(X + 1.2 * C, Y + 1.2 * C, X + 1.8 * C, Y + 1.8 * C),
                ]),
            },
        ];
        let areas = AreaLayer::ALL
            .iter()
            .enumerate()
            .map(|(i, &layer)| Area {
                layer,
                code: format!("A{i}"),
                name: format!("责任区{i}"),
                owner: format!("owner,{i}"),
                polygon: mp(outer.clone()),
            })
            .collect();
        CityMap {
            regions,
            areas,
            kiosks: vec![Kiosk {
                code: "K01".into(),
                name: "岗亭一".into(),
                patrol_district: "A0".into(),
                lon: X + 0.1 * C,
                lat: Y + 0.3 * C,
            }],
            roads: vec![Road {
                code: "R1".into(),
                name: "淮海东路".into(),
                aliases: vec!["淮海路".into(), "Huaihai E Rd".into()],
                district: code("320311"),
                line: MultiLineString(vec![LineString::from(vec![(X, Y), (X + C, Y + 0.5 * C), (X + 2.0 * C, Y)])]),
            }],
            addresses: vec![
                Address {
                    code: "320311-D-000001".into(),
                    kind: AddressKind::Door,
                    name: "淮海东路18号".into(),
                    aliases: vec![],
                    district: code("320311"),
                    road: Some("淮海东路".into()),
                    number: Some("18号".into()),
                    lon: X + 0.5 * C,
                    lat: Y + 0.25 * C,
                },
                Address {
                    code: "320311-P-000002".into(),
                    kind: AddressKind::Poi,
                    name: "徐州市第一中学, \"一中\"".into(),
                    aliases: vec!["一中".into(), "徐州一中".into()],
                    district: code("320311"),
                    road: None,
                    number: None,
                    lon: X,
                    lat: Y,
                },
            ],
            components: vec![],
            departments: vec![
                DepartmentRow {
                    code: "CG".into(), name: "城管局".into(), parent: None, credit_code: Some(credit())
                },
                DepartmentRow {
                    code: "CG-1".into(),
                    name: "一大队".into(),
                    parent: Some("CG".into()),
                    credit_code: None,
                },
            ],
            users: vec![
                UserRow {
                    username: "zhang".into(),
                    display_name: "张三".into(),
                    role: "collector".into(),
                    scope: "region:320311001".into(),
                },
                UserRow {
                    username: "li".into(),
                    display_name: "李四".into(),
                    role: "handler".into(),
                    scope: "department:CG".into(),
                },
            ],
        }
    }

    fn date(s: &str) -> jiff::civil::Date {
        s.parse().unwrap()
    }

    fn components() -> Vec<Component> {
        let base = Component {
            id: ComponentId::parse("32031101001000042").unwrap(),
            legacy_id: None,
            name: "上水井盖".into(),
            dept_credit_code: credit(),
            dept_name: "徐州市水务局".into(),
            grid_code: code("320311001001001"),
            state: ComponentState::Intact,
            start_date: date("2024-03-01"),
            owner: None,
            maintainer: None,
            change_date: None,
            data_source: None,
            note: None,
            geometry: Geometry::Point(Point::new(X + 0.3 * C, Y + 1.5 * C)),
        };
        vec![
            base.clone(),
            Component {
                id: ComponentId::parse("32031102003000007").unwrap(),
                legacy_id: Some("3203110203000007".into()),
                name: "护栏".into(),
                state: ComponentState::Damaged,
                owner: Some("市政处".into()),
                maintainer: Some("养护公司, 一队".into()),
                change_date: Some(date("2025-12-31")),
                data_source: Some("普查2024".into()),
                note: Some("多行\n备注 \"引号\"".into()),
                geometry: Geometry::LineString(LineString::from(vec![(X, Y), (X + C, Y + C)])),
                ..base.clone()
            },
            Component {
                id: ComponentId::parse("32031104001000001").unwrap(),
                name: "绿地".into(),
                state: ComponentState::Removed,
                geometry: Geometry::Polygon(rect(X, Y, X + C, Y + C)),
                ..base
            },
        ]
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("citygrid-citydir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn city_dir_round_trips_every_layer() {
        let dir = temp_dir("roundtrip");
        let map = sample_map();
        let summary = write_city_dir(&dir, &map, components().into_iter()).unwrap();
        assert_eq!(summary.count("grids.geojson"), Some(3));
        assert_eq!(summary.count("districts.geojson"), Some(1));
        assert_eq!(summary.count("components.csv"), Some(3));
        assert_eq!(summary.count("jurisdictions.geojson"), Some(1));
        assert_eq!(summary.files.len(), 4 + 4 + 2 + 4);

        let back = read_city_dir(&dir, CoordSys::Wgs84).unwrap();
        assert_eq!(back, map);

        let path = components_file(&dir).unwrap();
        let comps: Vec<Component> =
            read_components_csv("components.csv", fs::File::open(path).unwrap(), CoordSys::Wgs84)
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(comps, components());
        fs::remove_dir_all(&dir).unwrap();
        assert!(components_file(&dir).is_none());
    }

    #[test]
    fn per_layer_geojson_round_trips() {
        let map = sample_map();
        for (level, _) in REGION_FILES {
            let layer: Vec<RegionFeature> = map.regions.iter().filter(|r| r.level() == level).cloned().collect();
            let text = regions_to_geojson(&layer).to_string();
            assert_eq!(read_regions_geojson("x.geojson", &text, level, CoordSys::Wgs84).unwrap(), layer);
        }
        let text = areas_to_geojson(&map.areas[..1]).to_string();
        assert_eq!(
            read_areas_geojson("a.geojson", &text, AreaLayer::PatrolDistrict, CoordSys::Wgs84).unwrap(),
            map.areas[..1]
        );
        let text = kiosks_to_geojson(&map.kiosks).to_string();
        assert_eq!(read_kiosks_geojson("k.geojson", &text, CoordSys::Wgs84).unwrap(), map.kiosks);
        let text = roads_to_geojson(&map.roads).to_string();
        assert_eq!(read_roads_geojson("r.geojson", &text, CoordSys::Wgs84).unwrap(), map.roads);

        let doc = components_to_geojson(components().iter());
        assert_eq!(doc["features"].as_array().unwrap().len(), 3);
        assert_eq!(doc["features"][1]["properties"]["legacy_id"], "3203110203000007");
        assert_eq!(doc["features"][1]["geometry"]["type"], "LineString");
        let doc = addresses_to_geojson(&map.addresses);
        assert_eq!(doc["features"][0]["geometry"]["coordinates"][0].as_f64(), Some(X + 0.5 * C));
        assert_eq!(doc["features"][1]["properties"]["aliases"], "一中|徐州一中");
    }

    #[test]
    fn coordinates_are_converted_to_wgs84() {
        let (glon, glat) = crate::coord::from_wgs84(CoordSys::Gcj02, X, Y);
        let text = format!(
            r#"{{"type":"Feature","properties":{{"code":"K1","name":"k","patrol_district":"P"}},"geometry":{{"type":"Point","coordinates":[{glon},{glat}]}}}}"#
        );
        let k = read_kiosks_geojson("kiosks.geojson", &text, CoordSys::Gcj02).unwrap();
        assert!(crate::coord::distance_m(k[0].lon, k[0].lat, X, Y) < 0.01);
        let csv = format!("code,kind,name,district,lon,lat\nD1,door,x,320311,{glon},{glat}\n");
        let a = read_addresses_csv("addresses.csv", csv.as_bytes(), CoordSys::Gcj02).unwrap();
        assert!(crate::coord::distance_m(a[0].lon, a[0].lat, X, Y) < 0.01);
    }

    fn grid_feature(code: &str, coords: &str) -> String {
        format!(
            r#"{{"type":"Feature","properties":{{"code":"{code}"}},"geometry":{{"type":"Polygon","coordinates":[{coords}]}}}}"#
        )
    }

    fn square_json(i: usize) -> String {
        let x = 117.0 + 0.001 * i as f64;
        format!("[[{x},34.0],[{},34.0],[{},34.001],[{x},34.001],[{x},34.0]]", x + 0.001, x + 0.001)
    }

    /// Three good grids with `bad` (code, ring) as feature 2, read as grids.
    fn one_bad(bad_code: &str, bad_ring: &str) -> ImportError {
        let mut features: Vec<String> =
            (0..3).map(|i| grid_feature(&format!("32031100100100{}", i + 1), &square_json(i))).collect();
        features.insert(2, grid_feature(bad_code, bad_ring));
        let text = format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(","));
        read_regions_geojson("grids.geojson", &text, RegionLevel::Grid, CoordSys::Wgs84).unwrap_err()
    }

    #[test]
    fn one_bad_feature_is_named() {
        let ok = square_json(7);
        let e = one_bad("3203", &ok);
        assert_eq!(e.to_string(), r#"grids.geojson: feature 2: code: "3203" is not a 15-digit unit grid code"#);
        assert_eq!((e.index, e.field.as_deref()), (2, Some("code")));

        let e = one_bad("320311001001", &ok);
        assert_eq!(e.reason, r#""320311001001" is a community code, not a 15-digit unit grid code"#);

        let bow_tie = "[[117.0,34.0],[117.001,34.001],[117.001,34.0],[117.0,34.001],[117.0,34.0]]";
        let e = one_bad("320311001001009", bow_tie);
        assert_eq!((e.index, e.field.as_deref()), (2, Some("geometry")));
        assert!(e.reason.starts_with("invalid polygon"), "{e}");

        let metres = "[[521000.0,3790000.0],[521100.0,3790000.0],[521100.0,3790100.0],[521000.0,3790000.0]]";
        let e = one_bad("320311001001009", metres);
        assert_eq!((e.index, e.field.as_deref()), (2, Some("geometry")));
        assert!(e.reason.contains("projected metres"), "{e}");

        let e = one_bad("320311001001001", &ok);
        assert_eq!((e.index, e.field.as_deref()), (2, Some("code")));
        assert!(e.reason.contains("appears twice (first at feature 0)"), "{e}");

        // the level is checked for every layer, not only grids
        let text = format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, grid_feature("320311001001001", &ok));
        let e = read_regions_geojson("streets.geojson", &text, RegionLevel::Street, CoordSys::Wgs84).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"streets.geojson: feature 0: code: "320311001001001" is a grid code, not a 9-digit street code"#
        );
        // and above grids a name is required
        let text = format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, grid_feature("320311001", &ok));
        let e = read_regions_geojson("streets.geojson", &text, RegionLevel::Street, CoordSys::Wgs84).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));

        let e = read_regions_geojson("grids.geojson", "nope", RegionLevel::Grid, CoordSys::Wgs84).unwrap_err();
        assert_eq!(e.index, ImportError::WHOLE_FILE);
        assert!(e.to_string().starts_with("grids.geojson: not valid JSON"), "{e}");
    }

    #[test]
    fn other_layers_refuse_bad_features() {
        let e = read_kiosks_geojson(
            "kiosks.geojson",
            r#"{"type":"Feature","properties":{"code":"K","name":"k","patrol_district":"P"},"geometry":{"type":"LineString","coordinates":[[117,34],[117.1,34]]}}"#,
            CoordSys::Wgs84,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("geometry"));
        let e = read_roads_geojson(
            "roads.geojson",
            r#"{"type":"Feature","properties":{"code":"R","name":"r","district":"320300"},"geometry":{"type":"LineString","coordinates":[[117,34],[117.1,34]]}}"#,
            CoordSys::Wgs84,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"roads.geojson: feature 0: district: "320300" is a city code, not a 6-digit district code"#
        );
        let e = read_areas_geojson(
            "collector_areas.geojson",
            r#"{"type":"Feature","properties":{"code":"C1","name":"c"},"geometry":{"type":"Polygon","coordinates":[[[117,34],[117.1,34],[117.1,34.1],[117,34]]]}}"#,
            AreaLayer::CollectorArea,
            CoordSys::Wgs84,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "collector_areas.geojson: feature 0: owner: missing or empty");
    }

    const HEADER: &str = "id,class_code,name,dept_credit_code,dept_name,grid_code,state,start_date,lon,lat,wkt";

    fn row(id: &str, class: &str, grid: &str, state: &str, date: &str, wkt: &str) -> String {
        let (lon, lat) = if wkt.is_empty() { ("117.18", "34.26") } else { ("", "") };
        format!("{id},{class},井盖,91350100M000100Y43,水务局,{grid},{state},{date},{lon},{lat},\"{wkt}\"")
    }

    fn good(i: u32) -> String {
        row(&format!("320311010010000{i:02}"), "01001", "320311001001001", "intact", "2024-01-02", "")
    }

    /// Two good rows, then `bad` on line 4, then another good row: the error and the count of
    /// components read before it.
    fn bad_row(bad: &str) -> (ImportError, usize) {
        let text = format!("{HEADER}\n{}\n{}\n{bad}\n{}\n", good(1), good(2), good(3));
        let mut ok = 0;
        for r in read_components_csv("components.csv", text.as_bytes(), CoordSys::Wgs84) {
            match r {
                Ok(_) => ok += 1,
                Err(e) => return (e, ok),
            }
        }
        panic!("no error for {bad}");
    }

    #[test]
    fn one_bad_component_row_is_named() {
        let g = "320311001001001";
        let cases = [
            (
                row("32031101001000099", "01001", g, "intact", "2024-01-02", "LINESTRING(117 34,"),
                "wkt",
                "not valid WKT",
            ),
            (row("32031101001000099", "01001", g, "intact", "2024-13-02", ""), "start_date", "not a date"),
            (row("32031101001000099", "01001", g, "intact", "02.01.2024", ""), "start_date", "not a date"),
            (row("32031101001000099", "01001", g, "good", "2024-01-02", ""), "state", "unknown state \"good\""),
            (row("32031106010000099", "06010", g, "intact", "2024-01-02", ""), "class_code", "is an event class"),
            (row("32031106010000099", "", g, "intact", "2024-01-02", ""), "id", "is an event class"),
            (row("32031101001000099", "01002", g, "intact", "2024-01-02", ""), "class_code", "does not match"),
            (row("32031101001000099", "01001", "320311001001", "intact", "2024-01-02", ""), "grid_code", "15-digit"),
            (row("320311010010000", "01001", g, "intact", "2024-01-02", ""), "id", "not a 17-digit"),
            (good(1), "id", "appears twice (first at line 2)"),
            (
                row("32031101001000099", "01001", g, "intact", "2024-01-02", "POINT(521000 3790000)"),
                "wkt",
                "projected metres",
            ),
        ];
        for (bad, field, reason) in cases {
            let (e, ok) = bad_row(&bad);
            assert_eq!(ok, 2, "{bad}");
            assert_eq!((e.index, e.field.as_deref()), (4, Some(field)), "{bad}: {e}");
            assert!(e.reason.contains(reason), "{bad}: {e}");
            assert!(e.to_string().starts_with(&format!("components.csv: line 4: {field}: ")), "{e}");
        }
        // lon in metres
        let bad =
            format!("32031101001000099,01001,井盖,91350100M000100Y43,水务局,{g},intact,2024-01-02,521000,3790000,");
        let (e, _) = bad_row(&bad);
        assert_eq!(e.field.as_deref(), Some("lon"));
        // a stray comma
        let (e, _) = bad_row(&format!("{},extra", good(9)));
        assert_eq!(e.index, 4);
        assert!(e.reason.contains("fields where the header has"), "{e}");
        // a missing column
        let e =
            read_components_csv("components.csv", "id,name\n".as_bytes(), CoordSys::Wgs84).next().unwrap().unwrap_err();
        assert_eq!((e.index, e.field.as_deref(), e.reason.as_str()), (1, Some("dept_credit_code"), "missing column"));
    }

    #[test]
    fn legacy_ids_full_width_chinese_states_and_bom() {
        let text = format!(
            "\u{FEFF}{HEADER}\n{}\n{}\n",
            row("3203110101000042", "0101", "320311001001001", "破损", "2024/01/02", ""),
            row(
                "３２０３１１０１００１００００４３",
                "０１００１",
                "３２０３１１００１００１００１",
                "完好",
                "２０２４-０１-０２",
                ""
            ),
        );
        let comps: Vec<Component> =
            read_components_csv("components.csv", text.as_bytes(), CoordSys::Wgs84).collect::<Result<_, _>>().unwrap();
        assert_eq!(comps[0].id.as_str(), "32031101001000042");
        assert_eq!(comps[0].legacy_id.as_deref(), Some("3203110101000042"));
        assert_eq!(comps[0].state, ComponentState::Damaged);
        assert_eq!(comps[0].start_date, date("2024-01-02"));
        assert_eq!(comps[1].id.as_str(), "32031101001000043");
        assert_eq!(comps[1].legacy_id, None);
        assert_eq!(comps[1].grid_code.as_str(), "320311001001001");
        assert_eq!(comps[1].state, ComponentState::Intact);
        assert_eq!(comps[0].geometry, Geometry::Point(Point::new(117.18, 34.26)));
        assert_eq!(normalize_ascii("　ＡＢ１２－ｘ "), "AB12-x");
    }

    #[test]
    fn small_tables_refuse_bad_rows() {
        let e = read_addresses_csv(
            "addresses.csv",
            "code,kind,name,district,lon,lat\nA1,door,x,320311,117,34\nA2,house,y,320311,117,34\n".as_bytes(),
            CoordSys::Wgs84,
        )
        .unwrap_err();
        assert_eq!((e.index, e.field.as_deref()), (3, Some("kind")));
        let a = read_addresses_csv(
            "addresses.csv",
            "code,kind,name,district,lon,lat\nA1,门楼牌,x,320311,117,34\n".as_bytes(),
            CoordSys::Wgs84,
        )
        .unwrap();
        assert_eq!(a[0].kind, AddressKind::Door);
        let e =
            read_departments_csv("departments.csv", "code,name,parent,credit_code\nD,d,,123\n".as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "departments.csv: line 2: credit_code: \"123\" is not an 18-character unified social credit code"
        );
        let e = read_departments_csv("departments.csv", "code,name\nD,d\nD,e\n".as_bytes()).unwrap_err();
        assert_eq!((e.index, e.field.as_deref()), (3, Some("code")));
        let e = read_users_csv("users.csv", "username,display_name,role,scope\nu,U,collector,region:12\n".as_bytes())
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("scope"));
        let u =
            read_users_csv("users.csv", "username,display_name,role,scope\nu,U,Collector,own\n".as_bytes()).unwrap();
        assert_eq!(u[0].role, "collector");
    }

    fn shapefile_bytes(features: &[(&str, &str, MultiPolygon<f64>)]) -> (Vec<u8>, Vec<u8>) {
        use shapefile::dbase::{FieldName, FieldValue, Record, TableWriterBuilder};
        let mut shp = io::Cursor::new(Vec::new());
        let mut dbf = io::Cursor::new(Vec::new());
        {
            let table = TableWriterBuilder::new()
                .add_character_field(FieldName::try_from("CODE").unwrap(), 20)
                .add_character_field(FieldName::try_from("NAME").unwrap(), 50)
                .add_character_field(FieldName::try_from("area_class").unwrap(), 1)
                .build_with_dest(&mut dbf);
            let mut w = shapefile::Writer::new(shapefile::ShapeWriter::new(&mut shp), table);
            for (code, name, polygon) in features {
                let mut rec = Record::default();
                rec.insert("CODE".into(), FieldValue::Character(Some((*code).to_owned())));
                rec.insert("NAME".into(), FieldValue::Character(Some((*name).to_owned())));
                rec.insert("area_class".into(), FieldValue::Character(Some("B".to_owned())));
                w.write_shape_and_record(&shapefile::Polygon::from(polygon.clone()), &rec).unwrap();
            }
        }
        (shp.into_inner(), dbf.into_inner())
    }

    #[test]
    fn shapefiles_read_with_the_same_validation() {
        let a = mp(rect(X, Y, X + C, Y + C));
        let b = mp(rect(X + C, Y, X + 2.0 * C, Y + C));
        let (shp, dbf) =
            shapefile_bytes(&[("320311001001001", "一号", a.clone()), ("320311001001002", "二号", b.clone())]);
        let features = read_shapefile("grids.shp", &shp, &dbf).unwrap();
        assert_eq!(features.len(), 2);
        assert_eq!(features[0].1.get("CODE").map(String::as_str), Some("320311001001001"));
        let grids = regions_from_features("grids.shp", features, RegionLevel::Grid, CoordSys::Wgs84).unwrap();
        assert_eq!(grids[0].code.as_str(), "320311001001001");
        assert_eq!(grids[1].name, "二号");
        assert_eq!(grids[1].area_class, AreaClass::B);
        // Shapefiles turn outer rings clockwise: same shape, maybe another orientation.
        for (got, want) in grids.iter().zip([&a, &b]) {
            assert!((got.polygon.unsigned_area() - want.unsigned_area()).abs() < 1e-18);
            let mut g: Vec<(f64, f64)> = got.polygon.coords_iter().map(|c| (c.x, c.y)).collect();
            let mut w: Vec<(f64, f64)> = want.coords_iter().map(|c| (c.x, c.y)).collect();
            g.sort_by(|p, q| p.partial_cmp(q).unwrap());
            w.sort_by(|p, q| p.partial_cmp(q).unwrap());
            assert_eq!(g, w);
        }

        // the same refusal as from GeoJSON
        let (shp, dbf) = shapefile_bytes(&[("320311001001001", "一号", a.clone()), ("3203", "坏", b.clone())]);
        let features = read_shapefile("grids.shp", &shp, &dbf).unwrap();
        let e = regions_from_features("grids.shp", features, RegionLevel::Grid, CoordSys::Wgs84).unwrap_err();
        assert_eq!(e.to_string(), r#"grids.shp: feature 1: code: "3203" is not a 15-digit unit grid code"#);

        // in a directory, in place of grids.geojson
        let dir = temp_dir("shp");
        fs::create_dir_all(&dir).unwrap();
        let (shp, dbf) = shapefile_bytes(&[("320311001001001", "一号", a)]);
        fs::write(dir.join("grids.shp"), &shp).unwrap();
        fs::write(dir.join("grids.dbf"), &dbf).unwrap();
        let map = read_city_dir(&dir, CoordSys::Wgs84).unwrap();
        assert_eq!(map.regions.len(), 1);
        fs::write(dir.join("grids.cpg"), "GBK").unwrap();
        let e = read_city_dir(&dir, CoordSys::Wgs84).unwrap_err();
        assert!(e.to_string().contains("GBK"), "{e}");
        fs::remove_file(dir.join("grids.cpg")).unwrap();
        fs::write(dir.join("grids.geojson"), "{}").unwrap();
        let e = read_city_dir(&dir, CoordSys::Wgs84).unwrap_err();
        assert!(e.reason.contains("keep one"), "{e}");
        fs::remove_dir_all(&dir).unwrap();

        assert!(read_shapefile("x.shp", b"not a shapefile", &dbf).is_err());
    }

    #[test]
    fn dbf_field_names_are_matched_loosely() {
        let props: BTreeMap<String, String> = [
            ("CODE".to_owned(), "K1".to_owned()),
            ("PATROL_DIS".to_owned(), "PD1".to_owned()),
            ("name".to_owned(), " ".to_owned()),
        ]
        .into();
        assert_eq!(prop(&props, "code"), Some("K1"));
        assert_eq!(prop(&props, "patrol_district"), Some("PD1"));
        assert_eq!(prop(&props, "name"), None);
    }

    #[test]
    fn city_regions_are_not_silently_dropped() {
        let mut map = CityMap::default();
        map.regions.push(region("320300", "徐州市", AreaClass::A, rect(X, Y, X + C, Y + C)));
        let e = write_city_dir(&temp_dir("city"), &map, std::iter::empty()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
