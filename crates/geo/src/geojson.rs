//! Unit grids as GeoJSON (RFC 7946): the format GIS tools export grid maps in and web maps draw.
//!
//! A grid map is a `FeatureCollection` whose features have a `Polygon` or `MultiPolygon`
//! geometry in WGS-84 longitude/latitude and the 15-digit grid code in the `code` property
//! (as in the districts file shipped with the Xuzhou data). Reading checks only the shape of the
//! document and the codes; geometric validity is checked by [`crate::GridIndex::new`], which every
//! imported map goes through.

use crate::grid::GridPolygon;
use crate::GeoError;
use citygrid_core::codes::RegionCode;
use geo::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::{json, Map, Value};

/// Reads unit grids from a GeoJSON `FeatureCollection` (or a single `Feature`).
pub fn grids_from_geojson(text: &str) -> Result<Vec<GridPolygon>, GeoError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| GeoError::GeoJson(e.to_string()))?;
    match doc.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => doc
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("a FeatureCollection needs a \"features\" array"))?
            .iter()
            .enumerate()
            .map(|(i, f)| feature_to_grid(f).map_err(|e| bad(&format!("feature {i}: {e}"))))
            .collect(),
        Some("Feature") => Ok(vec![feature_to_grid(&doc)?]),
        _ => Err(bad("expected a FeatureCollection or a Feature")),
    }
}

/// Writes unit grids as a GeoJSON `FeatureCollection`, one `MultiPolygon` feature per grid with
/// its code in `code` (and as the feature `id`, which map libraries use for hover state).
pub fn grids_to_geojson<'a>(grids: impl IntoIterator<Item = &'a GridPolygon>) -> Value {
    let features: Vec<Value> = grids.into_iter().map(grid_to_feature).collect();
    json!({ "type": "FeatureCollection", "features": features })
}

/// One grid as a GeoJSON `Feature`.
pub fn grid_to_feature(grid: &GridPolygon) -> Value {
    json!({
        "type": "Feature",
        "id": grid.code.as_str(),
        "properties": { "code": grid.code.as_str() },
        "geometry": multipolygon_to_json(&grid.polygon),
    })
}

/// A (multi)polygon from a GeoJSON `Feature` or bare geometry object, as the store keeps
/// region boundaries.
pub fn multipolygon_from_geojson(text: &str) -> Result<MultiPolygon<f64>, GeoError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| GeoError::GeoJson(e.to_string()))?;
    let geometry = if doc.get("type").and_then(Value::as_str) == Some("Feature") {
        doc.get("geometry").ok_or_else(|| bad("missing \"geometry\""))?
    } else {
        &doc
    };
    let coordinates = geometry.get("coordinates").ok_or_else(|| bad("missing \"coordinates\""))?;
    match geometry.get("type").and_then(Value::as_str) {
        Some("Polygon") => Ok(MultiPolygon(vec![polygon_from_json(coordinates)?])),
        Some("MultiPolygon") => Ok(MultiPolygon(
            array(coordinates, "MultiPolygon coordinates")?.iter().map(polygon_from_json).collect::<Result<_, _>>()?,
        )),
        _ => Err(bad("geometry must be a Polygon or MultiPolygon")),
    }
}

/// A multipolygon as a GeoJSON geometry object.
pub fn multipolygon_to_json(mp: &MultiPolygon<f64>) -> Value {
    let polygons: Vec<Value> =
        mp.0.iter()
            .map(|p| {
                let mut rings = vec![ring_to_json(p.exterior())];
                rings.extend(p.interiors().iter().map(ring_to_json));
                Value::Array(rings)
            })
            .collect();
    json!({ "type": "MultiPolygon", "coordinates": polygons })
}

fn ring_to_json(ring: &LineString<f64>) -> Value {
    Value::Array(ring.0.iter().map(|c| json!([c.x, c.y])).collect())
}

fn bad(msg: &str) -> GeoError {
    GeoError::GeoJson(msg.to_owned())
}

fn feature_to_grid(feature: &Value) -> Result<GridPolygon, GeoError> {
    let props = feature.get("properties").and_then(Value::as_object).ok_or_else(|| bad("missing \"properties\""))?;
    let code = code_property(props)?;
    let geometry = feature.get("geometry").ok_or_else(|| bad("missing \"geometry\""))?;
    let coordinates = geometry.get("coordinates").ok_or_else(|| bad("missing \"coordinates\""))?;
    let polygon = match geometry.get("type").and_then(Value::as_str) {
        Some("Polygon") => MultiPolygon(vec![polygon_from_json(coordinates)?]),
        Some("MultiPolygon") => MultiPolygon(
            array(coordinates, "MultiPolygon coordinates")?.iter().map(polygon_from_json).collect::<Result<_, _>>()?,
        ),
        _ => return Err(bad("geometry must be a Polygon or MultiPolygon")),
    };
    Ok(GridPolygon { code, polygon })
}

/// The grid code, from `code` (string, or number as some GIS exports write it).
fn code_property(props: &Map<String, Value>) -> Result<RegionCode, GeoError> {
    let raw = match props.get("code") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad("missing \"code\" property")),
    };
    RegionCode::parse_grid(raw.trim()).map_err(|_| GeoError::NotAGridCode { code: raw })
}

fn array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, GeoError> {
    v.as_array().ok_or_else(|| bad(&format!("{what} must be an array")))
}

fn polygon_from_json(v: &Value) -> Result<Polygon<f64>, GeoError> {
    let mut rings = array(v, "a polygon")?.iter().map(ring_from_json);
    let exterior = rings.next().ok_or_else(|| bad("a polygon needs an exterior ring"))??;
    let interiors = rings.collect::<Result<Vec<_>, _>>()?;
    Ok(Polygon::new(exterior, interiors))
}

fn ring_from_json(v: &Value) -> Result<LineString<f64>, GeoError> {
    array(v, "a ring")?
        .iter()
        .map(|p| {
            let xy = array(p, "a position")?;
            match (xy.first().and_then(Value::as_f64), xy.get(1).and_then(Value::as_f64)) {
                // A third value (altitude) is allowed by RFC 7946 and ignored.
                (Some(x), Some(y)) => Ok(Coord { x, y }),
                _ => Err(bad("a position needs numeric longitude and latitude")),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(LineString::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::demo_city;
    use crate::GridIndex;

    #[test]
    fn demo_grids_round_trip() {
        let city = demo_city();
        let text = grids_to_geojson(&city.grids).to_string();
        let back = grids_from_geojson(&text).unwrap();
        assert_eq!(back, city.grids);
        let idx = GridIndex::new(back).unwrap();
        assert_eq!(idx.locate(117.18, 34.26).unwrap().as_str(), "320311002002001");
    }

    #[test]
    fn reads_polygons_numbers_and_single_features() {
        let text = r#"{"type":"Feature","properties":{"code":320311001001001,"name":"x"},
            "geometry":{"type":"Polygon","coordinates":[[[0,0,5],[1,0,5],[1,1,5],[0,1,5],[0,0,5]]]}}"#;
        let grids = grids_from_geojson(text).unwrap();
        assert_eq!(grids.len(), 1);
        assert_eq!(grids[0].code.as_str(), "320311001001001");
        assert_eq!(grids[0].polygon.0[0].exterior().0.len(), 5);
    }

    #[test]
    fn refusals() {
        let cases = [
            ("not json", "invalid GeoJSON"),
            (r#"{"type":"Point","coordinates":[0,0]}"#, "FeatureCollection or a Feature"),
            (r#"{"type":"FeatureCollection"}"#, "features"),
            (r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":null}]}"#, "feature 0"),
            (
                r#"{"type":"Feature","properties":{"code":"320311001001"},"geometry":{"type":"Polygon","coordinates":[]}}"#,
                "15-digit",
            ),
            (
                r#"{"type":"Feature","properties":{"code":"320311001001001"},"geometry":{"type":"LineString","coordinates":[]}}"#,
                "Polygon or MultiPolygon",
            ),
            (
                r#"{"type":"Feature","properties":{"code":"320311001001001"},"geometry":{"type":"Polygon","coordinates":[]}}"#,
                "exterior ring",
            ),
            (
                r#"{"type":"Feature","properties":{"code":"320311001001001"},"geometry":{"type":"Polygon","coordinates":[[["a",1]]]}}"#,
                "numeric",
            ),
        ];
        for (text, want) in cases {
            let err = grids_from_geojson(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
