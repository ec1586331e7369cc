//! `/api/v1/map/...` and `/tiles/...`: the city map. "Where is this, whose is this" lookups,
//! geocoding, components near a point, every layer as GeoJSON (bbox-filtered) and as Mapbox
//! Vector Tiles, cases on the map, and layer import for administrators.
//!
//! Every position in and out honours `coord_sys` (wgs84 | gcj02 | bd09 | cgcs2000): the
//! handlers convert at the edge and everything inside is WGS-84. Lookups are answered from the
//! in-memory indexes in [`crate::state::MapIndexes`]; only cases, full component records,
//! addresses and roads are read from the database.
//!
//! Scope: the map itself (regions, components, addresses, roads, kiosks) is reference data that
//! every signed-in user may read; responsibility areas (who covers what) are for staff only;
//! cases on the map obey the same data scope as the case list. Imports are for administrators.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::state::{AppState, MapIndexes};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use citygrid_core::case::State as CaseState;
use citygrid_core::codes::{ClassCode, Kind, RegionCode, RegionLevel};
use citygrid_core::component::ComponentId;
use citygrid_core::org::{Role, Scope};
use citygrid_geo::coord::{distance_m, from_wgs84, to_wgs84};
use citygrid_geo::layers::{AreaLayer, CityMap};
use citygrid_geo::CoordSys;
use citygrid_store::{CaseFilter, CaseMarker, Visibility};
use geo::{BoundingRect, Contains, MapCoords};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

/// The most case markers one request reads (the store's own bound).
const MAX_MARKERS: usize = 10_000;

/// Vertices of a drawn polygon: a lasso on a screen has hundreds, not millions.
const MAX_POLYGON_VERTICES: usize = 10_000;

/// The largest number of features one GeoJSON response carries; past it the collection says
/// `"truncated": true` and the client should zoom in or narrow the filters.
pub const MAX_FEATURES: usize = 20_000;

fn sys(s: Option<CoordSys>) -> CoordSys {
    s.unwrap_or_default()
}

/// A position checked for range and converted to WGS-84.
fn wgs84_point(lon: f64, lat: f64, coord_sys: Option<CoordSys>) -> ApiResult<(f64, f64)> {
    if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
        return Err(ApiError::bad_query("lon", "lon must be a number in -180..180"));
    }
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        return Err(ApiError::bad_query("lat", "lat must be a number in -90..90"));
    }
    Ok(to_wgs84(sys(coord_sys), lon, lat))
}

/// A position as the API returns it: in the caller's coordinate system.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct PointOut {
    pub lon: f64,
    pub lat: f64,
}

fn point_out(s: CoordSys, lon: f64, lat: f64) -> PointOut {
    let (lon, lat) = from_wgs84(s, lon, lat);
    PointOut { lon, lat }
}

/// `min_lon,min_lat,max_lon,max_lat` in the caller's system → a WGS-84 box. The Chinese
/// offsets vary by metres per kilometre, so converting the corners and widening by ~50 m
/// keeps every feature near the edge of the view.
pub fn parse_bbox(raw: &str, s: CoordSys) -> ApiResult<(f64, f64, f64, f64)> {
    let nums: Vec<f64> = raw
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::bad_query("bbox", "bbox is min_lon,min_lat,max_lon,max_lat (four numbers)"))?;
    let [x0, y0, x1, y1] = nums[..] else {
        return Err(ApiError::bad_query("bbox", "bbox is min_lon,min_lat,max_lon,max_lat (four numbers)"));
    };
    let in_range =
        |x: f64, y: f64| x.is_finite() && y.is_finite() && (-180.0..=180.0).contains(&x) && (-90.0..=90.0).contains(&y);
    if !(in_range(x0, y0) && in_range(x1, y1)) || x0 > x1 || y0 > y1 {
        return Err(ApiError::bad_query("bbox", "bbox corners must be in range and min ≤ max"));
    }
    if s == CoordSys::Wgs84 || s == CoordSys::Cgcs2000 {
        return Ok((x0, y0, x1, y1));
    }
    let (a, b) = to_wgs84(s, x0, y0);
    let (c, d) = to_wgs84(s, x1, y1);
    const PAD: f64 = 0.0005;
    Ok((a.min(c) - PAD, b.min(d) - PAD, a.max(c) + PAD, b.max(d) + PAD))
}

fn bbox_meets(a: (f64, f64, f64, f64), rect: Option<geo::Rect<f64>>) -> bool {
    rect.is_some_and(|r| r.min().x <= a.2 && r.max().x >= a.0 && r.min().y <= a.3 && r.max().y >= a.1)
}

fn staff_only(auth: &Auth) -> ApiResult<()> {
    if auth.role() == Role::Citizen {
        return Err(ApiError::forbidden("responsibility areas are for staff"));
    }
    Ok(())
}

/// A region on the chain grid → community → street → district.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegionRef {
    pub code: String,
    pub name: String,
}

/// A responsibility area a point lies in.
#[derive(Debug, Serialize, ToSchema)]
pub struct AreaRef {
    pub code: String,
    pub name: String,
    /// Who answers for it: a squad, a collector's username, a contractor, a department code.
    pub owner: String,
}

/// Everything the city knows about one point.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocateOut {
    /// The point, in the requested system.
    pub location: PointOut,
    /// The same point in WGS-84, as it is stored.
    pub wgs84: PointOut,
    pub grid: RegionRef,
    /// Area class of the grid (A core, B/C general).
    pub area_class: String,
    pub community: RegionRef,
    pub street: RegionRef,
    pub district: RegionRef,
    /// Responsibility areas by layer (`patrol_districts`, `collector_areas`,
    /// `contractor_areas`, `jurisdictions`); staff only, absent for citizens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub areas: Option<std::collections::BTreeMap<String, AreaRef>>,
    /// The nearest kiosk (岗亭) and its distance in metres; staff only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest_kiosk: Option<KioskRef>,
    /// The nearest address (door number or place) within 500 m.
    pub nearest_address: Option<AddressOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KioskRef {
    pub code: String,
    pub name: String,
    pub patrol_district: String,
    pub location: PointOut,
    pub distance_m: f64,
}

/// An entry of the address database.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddressOut {
    pub code: String,
    /// `road`, `door` or `poi`.
    pub kind: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub district: String,
    pub road: Option<String>,
    pub number: Option<String>,
    pub location: PointOut,
    /// Distance from the asked point, metres (reverse geocoding only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

fn address_out(a: &citygrid_geo::layers::Address, s: CoordSys, distance_m: Option<f64>) -> AddressOut {
    AddressOut {
        code: a.code.clone(),
        kind: a.kind.as_str().to_owned(),
        name: a.name.clone(),
        aliases: a.aliases.clone(),
        district: a.district.as_str().to_owned(),
        road: a.road.clone(),
        number: a.number.clone(),
        location: point_out(s, a.lon, a.lat),
        distance_m,
    }
}

/// A point in any supported coordinate system.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PointQuery {
    #[param(example = 117.18)]
    pub lon: f64,
    #[param(example = 34.26)]
    pub lat: f64,
    /// wgs84 (default), gcj02, bd09 or cgcs2000; the answer uses the same system.
    pub coord_sys: Option<CoordSys>,
}

fn region_ref(map: &MapIndexes, code: Option<RegionCode>) -> RegionRef {
    match code {
        Some(c) => RegionRef { name: map.region_name(c.as_str()), code: c.as_str().to_owned() },
        None => RegionRef { code: String::new(), name: String::new() },
    }
}

/// Where is this point: its unit grid and the community, street and district above it, the
/// responsibility areas it lies in, the nearest kiosk and the nearest address. A point outside
/// every unit grid is refused (422, field `lon`).
#[utoipa::path(get, path = "/api/v1/map/locate", tag = "map", security(("bearer" = [])), params(PointQuery),
    responses((status = 200, body = LocateOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn locate(
    State(app): State<AppState>,
    auth: Auth,
    Query(q): Query<PointQuery>,
) -> ApiResult<Json<LocateOut>> {
    let s = sys(q.coord_sys);
    let (lon, lat) = wgs84_point(q.lon, q.lat, q.coord_sys)?;
    let grids = app.grids();
    let grid = grids.locate(lon, lat).cloned().ok_or_else(|| ApiError::Invalid {
        code: "outside_city",
        field: "lon".into(),
        detail: "the point is outside the city's unit grids".into(),
    })?;
    let map = app.map();
    let staff = auth.role() != Role::Citizen;
    let areas = staff.then(|| {
        AreaLayer::ALL
            .into_iter()
            .filter_map(|layer| {
                map.areas.locate(layer, lon, lat).map(|a| {
                    (
                        layer.as_str().to_owned(),
                        AreaRef { code: a.code.clone(), name: a.name.clone(), owner: a.owner.clone() },
                    )
                })
            })
            .collect()
    });
    let nearest_kiosk = if staff {
        map.kiosks.nearest(lon, lat).map(|(k, d)| KioskRef {
            code: k.code.clone(),
            name: k.name.clone(),
            patrol_district: k.patrol_district.clone(),
            location: point_out(s, k.lon, k.lat),
            distance_m: d,
        })
    } else {
        None
    };
    let nearest_address = map.addresses.reverse(lon, lat, 500.0).map(|(a, d)| address_out(a, s, Some(d)));
    Ok(Json(LocateOut {
        location: point_out(s, lon, lat),
        wgs84: PointOut { lon, lat },
        area_class: app.area_class(grid.as_str()).as_str().to_owned(),
        community: region_ref(&map, grid.at_level(RegionLevel::Community)),
        street: region_ref(&map, grid.at_level(RegionLevel::Street)),
        district: region_ref(&map, grid.at_level(RegionLevel::District)),
        grid: region_ref(&map, Some(grid)),
        areas,
        nearest_kiosk,
        nearest_address,
    }))
}

/// Forward geocoding query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GeocodeQuery {
    /// A Chinese address, complete or not: `泉山区淮海西路18号`, `徐州市 淮海西路 １８号`, a place name.
    pub q: String,
    /// How many candidates, 1–20 (default 5).
    pub limit: Option<u32>,
    pub coord_sys: Option<CoordSys>,
}

/// One geocoding candidate.
#[derive(Debug, Serialize, ToSchema)]
pub struct GeocodeOut {
    pub address: AddressOut,
    pub location: PointOut,
    /// 0–1: 1 for an exact door number, about 0.6 when only the road matched.
    pub confidence: f64,
    /// What matched: `door`, `poi`, `road` or `district`.
    pub level: String,
    /// The unit grid at the point, if it is inside the city.
    pub grid: Option<String>,
}

fn match_level(level: citygrid_geo::geocode::MatchLevel) -> &'static str {
    use citygrid_geo::geocode::MatchLevel as M;
    match level {
        M::Door => "door",
        M::Poi => "poi",
        M::Road => "road",
        M::District => "district",
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GeocodeList {
    pub items: Vec<GeocodeOut>,
}

/// Forward geocoding (地理编码): an address string → points, best first. Tolerant of missing
/// province/city/district, alias names and full-width characters. An empty list means nothing
/// matched.
#[utoipa::path(get, path = "/api/v1/map/geocode", tag = "map", security(("bearer" = [])), params(GeocodeQuery),
    responses((status = 200, body = GeocodeList), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn geocode(
    State(app): State<AppState>,
    _auth: Auth,
    Query(q): Query<GeocodeQuery>,
) -> ApiResult<Json<GeocodeList>> {
    let text = q.q.trim();
    if text.is_empty() || text.chars().count() > 256 {
        return Err(ApiError::bad_query("q", "1 to 256 characters"));
    }
    let limit = q.limit.unwrap_or(5);
    if !(1..=20).contains(&limit) {
        return Err(ApiError::bad_query("limit", "1 to 20"));
    }
    let s = sys(q.coord_sys);
    let map = app.map();
    let grids = app.grids();
    let items = map
        .addresses
        .search(text, limit as usize)
        .into_iter()
        .map(|hit| GeocodeOut {
            location: point_out(s, hit.lon, hit.lat),
            confidence: hit.confidence,
            level: match_level(hit.level).to_owned(),
            grid: grids.locate(hit.lon, hit.lat).map(|g| g.as_str().to_owned()),
            address: address_out(&hit.address, s, None),
        })
        .collect();
    Ok(Json(GeocodeList { items }))
}

/// Reverse geocoding query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReverseQuery {
    pub lon: f64,
    pub lat: f64,
    pub coord_sys: Option<CoordSys>,
    /// Search radius in metres, 1–5000 (default 500).
    pub max_distance: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReverseOut {
    /// The nearest door number or place, if one is within `max_distance`.
    pub address: Option<AddressOut>,
    /// The nearest road and the distance to its centre line.
    pub road: Option<RoadRef>,
    pub grid: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoadRef {
    pub code: String,
    pub name: String,
    pub distance_m: f64,
}

/// Reverse geocoding (逆地理编码): a point → the nearest address and road.
#[utoipa::path(get, path = "/api/v1/map/reverse", tag = "map", security(("bearer" = [])), params(ReverseQuery),
    responses((status = 200, body = ReverseOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn reverse(
    State(app): State<AppState>,
    _auth: Auth,
    Query(q): Query<ReverseQuery>,
) -> ApiResult<Json<ReverseOut>> {
    let s = sys(q.coord_sys);
    let (lon, lat) = wgs84_point(q.lon, q.lat, q.coord_sys)?;
    let max = q.max_distance.unwrap_or(500.0);
    if !(max.is_finite() && (1.0..=5000.0).contains(&max)) {
        return Err(ApiError::bad_query("max_distance", "1 to 5000 metres"));
    }
    let map = app.map();
    Ok(Json(ReverseOut {
        address: map.addresses.reverse(lon, lat, max).map(|(a, d)| address_out(a, s, Some(d))),
        road: map.addresses.nearest_road(lon, lat).filter(|(_, d)| *d <= max).map(|(r, d)| RoadRef {
            code: r.code.clone(),
            name: r.name.clone(),
            distance_m: d,
        }),
        grid: app.grids().locate(lon, lat).map(|g| g.as_str().to_owned()),
    }))
}

/// Components near a point or in a box.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ComponentQuery {
    /// Centre of a radius search (with `lat` and `radius`).
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    /// Metres, 1–2000 (default 50).
    pub radius: Option<f64>,
    /// Instead of a radius: `min_lon,min_lat,max_lon,max_lat`.
    pub bbox: Option<String>,
    /// Only this component class (5 digits, e.g. `01001` for a water-supply manhole cover).
    pub class_code: Option<String>,
    /// 1–1000 (default 50 for a radius, 1000 for a box).
    pub limit: Option<u32>,
    pub coord_sys: Option<CoordSys>,
}

/// A component as the map lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentHit {
    /// The 17-digit identifier.
    pub id: String,
    pub class_code: String,
    pub class_name: String,
    /// intact, damaged, lost, abandoned, removed
    pub state: String,
    pub location: PointOut,
    /// From the search centre (radius searches only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentList {
    pub items: Vec<ComponentHit>,
}

fn component_class(raw: &Option<String>, field: &str) -> ApiResult<Option<ClassCode>> {
    raw.as_deref()
        .map(|c| match ClassCode::parse(c.trim()) {
            Ok(code) if ("01".."06").contains(&code.major()) => Ok(code),
            _ => Err(ApiError::bad_query(field, "a 5-digit component class code (major 01–05)")),
        })
        .transpose()
}

/// Components of a class within a radius of a point, nearest first (so a report of a broken
/// manhole cover can name the cover), or in a bounding box.
#[utoipa::path(get, path = "/api/v1/map/components", tag = "map", security(("bearer" = [])), params(ComponentQuery),
    responses((status = 200, body = ComponentList), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn components(
    State(app): State<AppState>,
    _auth: Auth,
    Query(q): Query<ComponentQuery>,
) -> ApiResult<Json<ComponentList>> {
    let s = sys(q.coord_sys);
    let class = component_class(&q.class_code, "class_code")?;
    let map = app.map();
    let name_of = |code: &str| app.class(Kind::Component, code).map(|c| c.name_zh).unwrap_or_default();
    let hit = |p: &citygrid_geo::points::ComponentPoint, d: Option<f64>| {
        let class_code = p.class_string();
        ComponentHit {
            id: p.id_string(),
            class_name: name_of(&class_code),
            class_code,
            state: p.state.as_str().to_owned(),
            location: point_out(s, p.lon, p.lat),
            distance_m: d,
        }
    };
    let items = match (&q.bbox, q.lon, q.lat) {
        (Some(b), None, None) => {
            let limit = q.limit.unwrap_or(1000);
            if !(1..=1000).contains(&limit) {
                return Err(ApiError::bad_query("limit", "1 to 1000"));
            }
            let bbox = parse_bbox(b, s)?;
            map.components.in_bbox(bbox, class.as_ref(), limit as usize).into_iter().map(|p| hit(p, None)).collect()
        }
        (None, Some(lon), Some(lat)) => {
            let limit = q.limit.unwrap_or(50);
            if !(1..=1000).contains(&limit) {
                return Err(ApiError::bad_query("limit", "1 to 1000"));
            }
            let radius = q.radius.unwrap_or(50.0);
            if !(radius.is_finite() && (1.0..=2000.0).contains(&radius)) {
                return Err(ApiError::bad_query("radius", "1 to 2000 metres"));
            }
            let (lon, lat) = wgs84_point(lon, lat, q.coord_sys)?;
            map.components
                .within_radius(lon, lat, radius, class.as_ref(), limit as usize)
                .into_iter()
                .map(|(p, d)| hit(p, Some(d)))
                .collect()
        }
        (Some(_), _, _) => return Err(ApiError::bad_query("bbox", "give either bbox or lon+lat, not both")),
        _ => return Err(ApiError::bad_query("lon", "give lon and lat (and radius), or bbox")),
    };
    Ok(Json(ComponentList { items }))
}

/// A component's whole census record (GB/T 47678.5 attributes).
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentOut {
    pub id: String,
    /// The 16-digit GB/T 30428.2 id it was imported with, if any.
    pub legacy_id: Option<String>,
    pub name: String,
    pub class_code: String,
    pub class_name: String,
    /// Competent department (主管部门): unified social credit code and name.
    pub dept_credit_code: String,
    pub dept_name: String,
    pub grid_code: String,
    pub community_code: String,
    pub street_code: String,
    pub state: String,
    pub start_date: String,
    pub owner: Option<String>,
    pub maintainer: Option<String>,
    pub change_date: Option<String>,
    pub data_source: Option<String>,
    pub note: Option<String>,
    /// Representative point (the point itself for point components).
    pub location: PointOut,
    /// Line or area components: the full geometry as GeoJSON, in the requested system.
    pub geometry: Option<Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SysQuery {
    pub coord_sys: Option<CoordSys>,
}

fn geometry_json(g: &geo::Geometry<f64>, s: CoordSys) -> Value {
    let converted = g.map_coords(|c| {
        let (x, y) = from_wgs84(s, c.x, c.y);
        geo::Coord { x, y }
    });
    citygrid_geo::citydir::geometry_to_json(&converted)
}

/// One component by its 17-digit id (a legacy 16-digit id is accepted and mapped).
#[utoipa::path(get, path = "/api/v1/map/components/{id}", tag = "map", security(("bearer" = [])),
    params(("id" = String, Path, description = "17-digit component id"), SysQuery),
    responses((status = 200, body = ComponentOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_component(
    State(app): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<SysQuery>,
) -> ApiResult<Json<ComponentOut>> {
    let id = ComponentId::parse_or_legacy(id.trim()).map_err(|e| ApiError::bad_query("id", e.to_string()))?;
    let c = app.store.get_component(&id).await?.ok_or(ApiError::NotFound("component"))?;
    let s = sys(q.coord_sys);
    let class_code = c.class_code();
    let point = citygrid_geo::points::ComponentPoint::from_component(&c)
        .ok_or_else(|| ApiError::Internal(format!("component {id} has no position")))?;
    let geometry = match &c.geometry {
        geo::Geometry::Point(_) => None,
        g => Some(geometry_json(g, s)),
    };
    Ok(Json(ComponentOut {
        id: c.id.as_str().to_owned(),
        legacy_id: c.legacy_id,
        name: c.name,
        class_name: app.class(Kind::Component, class_code.as_str()).map(|k| k.name_zh).unwrap_or_default(),
        class_code: class_code.as_str().to_owned(),
        dept_credit_code: c.dept_credit_code.as_str().to_owned(),
        dept_name: c.dept_name,
        community_code: c.grid_code.at_level(RegionLevel::Community).map(|r| r.as_str().to_owned()).unwrap_or_default(),
        street_code: c.grid_code.at_level(RegionLevel::Street).map(|r| r.as_str().to_owned()).unwrap_or_default(),
        grid_code: c.grid_code.as_str().to_owned(),
        state: c.state.as_str().to_owned(),
        start_date: c.start_date.to_string(),
        owner: c.owner,
        maintainer: c.maintainer,
        change_date: c.change_date.map(|d| d.to_string()),
        data_source: c.data_source,
        note: c.note,
        location: point_out(s, point.lon, point.lat),
        geometry,
    }))
}

/// Layers of the map, as GeoJSON and as vector tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Region(RegionLevel),
    Area(AreaLayer),
    Kiosks,
    Roads,
    Addresses,
    Components,
    Cases,
}

impl Layer {
    pub const NAMES: [&'static str; 13] = [
        "districts",
        "streets",
        "communities",
        "grids",
        "patrol_districts",
        "collector_areas",
        "contractor_areas",
        "jurisdictions",
        "kiosks",
        "roads",
        "addresses",
        "components",
        "cases",
    ];

    pub fn parse(s: &str) -> Option<Layer> {
        Some(match s {
            "districts" => Layer::Region(RegionLevel::District),
            "streets" => Layer::Region(RegionLevel::Street),
            "communities" => Layer::Region(RegionLevel::Community),
            "grids" => Layer::Region(RegionLevel::Grid),
            "kiosks" => Layer::Kiosks,
            "roads" => Layer::Roads,
            "addresses" => Layer::Addresses,
            "components" => Layer::Components,
            "cases" => Layer::Cases,
            other => Layer::Area(AreaLayer::parse(other)?),
        })
    }
}

fn parse_layer(name: &str) -> ApiResult<Layer> {
    Layer::parse(name).ok_or(ApiError::NotFound("layer"))
}

/// Filters of a layer request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LayerQuery {
    /// `min_lon,min_lat,max_lon,max_lat`; the whole layer when absent.
    pub bbox: Option<String>,
    pub coord_sys: Option<CoordSys>,
    /// At most this many features, 1–20000 (default 5000).
    pub limit: Option<u32>,
    /// Components and cases: only this class.
    pub class_code: Option<String>,
    /// Cases: comma-separated states (default: all open states).
    pub state: Option<String>,
    /// Cases: event or component.
    pub kind: Option<Kind>,
}

/// A layer's features, built for GeoJSON and tiles alike.
struct Feature {
    id: u64,
    geometry: geo::Geometry<f64>,
    properties: Vec<(&'static str, Value)>,
}

/// The open states: what a map of "cases now" shows by default.
const OPEN_STATES: [CaseState; 7] = [
    CaseState::Verifying,
    CaseState::Reported,
    CaseState::Accepted,
    CaseState::Filed,
    CaseState::Dispatched,
    CaseState::Disposed,
    CaseState::Checked,
];

fn case_states(raw: &Option<String>) -> ApiResult<Vec<String>> {
    match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(OPEN_STATES.iter().map(|s| s.as_str().to_owned()).collect()),
        Some("all") => Ok(Vec::new()),
        Some(list) => list
            .split(',')
            .map(|s| {
                CaseState::parse(s.trim())
                    .map(|st| st.as_str().to_owned())
                    .ok_or_else(|| ApiError::bad_query("state", format!("unknown state {s:?}")))
            })
            .collect(),
    }
}

async fn visibility(app: &AppState, auth: &Auth) -> ApiResult<Visibility> {
    Ok(match &auth.user.scope {
        Scope::Region { code } => Visibility::Region(code.clone()),
        Scope::Department { department_id } => {
            Visibility::Departments(app.departments().await?.subtree(*department_id))
        }
        Scope::Own => Visibility::Reporter(auth.user.id),
    })
}

fn marker_feature(m: &CaseMarker) -> Feature {
    Feature {
        id: u64::try_from(m.id).unwrap_or_default(),
        geometry: geo::Geometry::Point(geo::Point::new(m.lon, m.lat)),
        properties: vec![
            ("id", json!(m.id)),
            ("number", json!(m.number)),
            ("state", json!(m.state.as_str())),
            ("kind", json!(m.kind.as_str())),
            ("class_code", json!(m.class_code)),
            ("urgency", json!(m.urgency.as_str())),
            ("grid_code", json!(m.grid_code)),
        ],
    }
}

/// The features of `layer` meeting `bbox`, at most `limit` (+1 to tell truncation).
async fn features(
    app: &AppState,
    auth: &Auth,
    layer: Layer,
    bbox: (f64, f64, f64, f64),
    q: &LayerQuery,
    limit: usize,
) -> ApiResult<Vec<Feature>> {
    let map = app.map();
    let take = limit + 1;
    let polygon = |mp: &geo::MultiPolygon<f64>| geo::Geometry::MultiPolygon(mp.clone());
    Ok(match layer {
        Layer::Region(RegionLevel::Grid) => app
            .grids()
            .in_bbox(bbox)
            .into_iter()
            .take(take)
            .map(|g| Feature {
                id: g.code.as_str().parse().unwrap_or_default(),
                geometry: polygon(&g.polygon),
                properties: vec![
                    ("code", json!(g.code.as_str())),
                    ("name", json!(map.region_name(g.code.as_str()))),
                    ("level", json!("grid")),
                    ("area_class", json!(app.area_class(g.code.as_str()).as_str())),
                ],
            })
            .collect(),
        Layer::Region(level) => map
            .regions
            .iter()
            .filter(|r| r.code.level() == level && bbox_meets(bbox, r.polygon.bounding_rect()))
            .take(take)
            .map(|r| Feature {
                id: r.code.as_str().parse().unwrap_or_default(),
                geometry: polygon(&r.polygon),
                properties: vec![
                    ("code", json!(r.code.as_str())),
                    ("name", json!(r.name)),
                    ("level", json!(level.as_str())),
                    ("area_class", json!(r.area_class.as_str())),
                ],
            })
            .collect(),
        Layer::Area(area_layer) => {
            staff_only(auth)?;
            map.areas
                .in_bbox(area_layer, bbox)
                .into_iter()
                .take(take)
                .enumerate()
                .map(|(i, a)| Feature {
                    id: i as u64 + 1,
                    geometry: polygon(&a.polygon),
                    properties: vec![
                        ("code", json!(a.code)),
                        ("name", json!(a.name)),
                        ("owner", json!(a.owner)),
                        ("layer", json!(area_layer.as_str())),
                    ],
                })
                .collect()
        }
        // Which kiosk serves which patrol district is "who covers what": staff only.
        Layer::Kiosks => {
            staff_only(auth)?;
            map.kiosks
                .in_bbox(bbox)
                .into_iter()
                .take(take)
                .enumerate()
                .map(|(i, k)| Feature {
                    id: i as u64 + 1,
                    geometry: geo::Geometry::Point(geo::Point::new(k.lon, k.lat)),
                    properties: vec![
                        ("code", json!(k.code)),
                        ("name", json!(k.name)),
                        ("patrol_district", json!(k.patrol_district)),
                    ],
                })
                .collect()
        }
        Layer::Roads => app
            .store
            .roads_in_bbox(bbox, u32::try_from(take).unwrap_or(u32::MAX))
            .await?
            .into_iter()
            .enumerate()
            .map(|(i, r)| Feature {
                id: i as u64 + 1,
                geometry: geo::Geometry::MultiLineString(r.line.clone()),
                properties: vec![
                    ("code", json!(r.code)),
                    ("name", json!(r.name)),
                    ("aliases", json!(r.aliases.join("|"))),
                    ("district", json!(r.district.as_str())),
                ],
            })
            .collect(),
        Layer::Addresses => app
            .store
            .list_addresses(Some(bbox), None, None, u32::try_from(take).unwrap_or(u32::MAX))
            .await?
            .items
            .into_iter()
            .enumerate()
            .map(|(i, a)| Feature {
                id: i as u64 + 1,
                geometry: geo::Geometry::Point(geo::Point::new(a.lon, a.lat)),
                properties: vec![
                    ("code", json!(a.code)),
                    ("kind", json!(a.kind.as_str())),
                    ("name", json!(a.name)),
                    ("road", json!(a.road)),
                    ("number", json!(a.number)),
                ],
            })
            .collect(),
        Layer::Components => {
            let class = component_class(&q.class_code, "class_code")?;
            map.components
                .in_bbox(bbox, class.as_ref(), take)
                .into_iter()
                .map(|p| Feature {
                    id: p.id,
                    geometry: geo::Geometry::Point(geo::Point::new(p.lon, p.lat)),
                    properties: vec![
                        ("id", json!(p.id_string())),
                        ("class_code", json!(p.class_string())),
                        ("state", json!(p.state.as_str())),
                    ],
                })
                .collect()
        }
        Layer::Cases => {
            let class_code = q
                .class_code
                .as_deref()
                .map(|c| ClassCode::parse(c.trim()).map(|c| c.as_str().to_owned()))
                .transpose()
                .map_err(|e| ApiError::bad_query("class_code", e.to_string()))?;
            let filter = CaseFilter {
                states: case_states(&q.state)?,
                kind: q.kind,
                class_code,
                bbox: Some(bbox),
                now: Some(app.now()),
                ..CaseFilter::default()
            };
            let vis = visibility(app, auth).await?;
            app.store.case_markers(&vis, &filter, take).await?.iter().map(marker_feature).collect()
        }
    })
}

fn to_geojson(features: Vec<Feature>, s: CoordSys, limit: usize) -> Value {
    let truncated = features.len() > limit;
    let features: Vec<Value> = features
        .into_iter()
        .take(limit)
        .map(|f| {
            let props: serde_json::Map<String, Value> =
                f.properties.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            json!({ "type": "Feature", "id": f.id, "geometry": geometry_json(&f.geometry, s), "properties": props })
        })
        .collect();
    json!({ "type": "FeatureCollection", "features": features, "truncated": truncated })
}

fn geojson_response(body: &Value) -> Response {
    let mut res = body.to_string().into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/geo+json"));
    res
}

/// One layer as a GeoJSON FeatureCollection, filtered by `bbox`: `districts`, `streets`,
/// `communities`, `grids`, `patrol_districts`, `collector_areas`, `contractor_areas`,
/// `jurisdictions`, `kiosks`, `roads`, `addresses`, `components`, `cases`. Past `limit` the
/// collection carries `"truncated": true`. Cases obey the caller's data scope; responsibility
/// areas are refused to citizens.
#[utoipa::path(get, path = "/api/v1/map/layers/{layer}", tag = "map", security(("bearer" = [])),
    params(("layer" = String, Path, description = "Layer name"), LayerQuery),
    responses((status = 200, description = "GeoJSON FeatureCollection", content_type = "application/geo+json"),
        (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn layer(
    State(app): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    Query(q): Query<LayerQuery>,
) -> ApiResult<Response> {
    let layer = parse_layer(&name)?;
    let s = sys(q.coord_sys);
    let bbox = match &q.bbox {
        Some(b) => parse_bbox(b, s)?,
        None => crate::state::WORLD,
    };
    let limit = q.limit.unwrap_or(5000);
    if !(1..=MAX_FEATURES as u32).contains(&limit) {
        return Err(ApiError::bad_query("limit", format!("1 to {MAX_FEATURES}")));
    }
    let limit = limit as usize;
    if layer == Layer::Cases && limit >= MAX_MARKERS {
        return Err(ApiError::bad_query("limit", format!("1 to {} for cases", MAX_MARKERS - 1)));
    }
    let found = features(&app, &auth, layer, bbox, &q, limit).await?;
    Ok(geojson_response(&to_geojson(found, s, limit)))
}

/// Tile request filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TileQuery {
    /// The base map's system: tiles are cut in Web Mercator of that system (AMap: gcj02).
    pub coord_sys: Option<CoordSys>,
    pub class_code: Option<String>,
    pub state: Option<String>,
    pub kind: Option<Kind>,
}

/// Features per tile before thinning: a tile is a picture, not a data export.
const TILE_FEATURES: usize = 50_000;

/// A layer as a Mapbox Vector Tile (`/tiles/{layer}/{z}/{x}/{y}.mvt`), the layer inside named
/// like the URL's. At low zoom, points are thinned to one per tile cell so a big screen can
/// show a million components.
pub async fn tile(
    State(app): State<AppState>,
    auth: Auth,
    Path((name, z, x, y)): Path<(String, u8, u32, String)>,
    Query(q): Query<TileQuery>,
) -> ApiResult<Response> {
    let layer = parse_layer(&name)?;
    let y: u32 = y
        .strip_suffix(".mvt")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::bad_query("y", "the tile row followed by .mvt"))?;
    let (x0, y0, x1, y1) = citygrid_geo::mvt::tile_bbox(z, x, y).ok_or(ApiError::NotFound("tile"))?;
    let s = sys(q.coord_sys);
    // Baidu's base map is not Web Mercator tiles of BD-09 degrees (it has its own projection
    // and tile origin): tiles cut here would not line up with it.
    if s == CoordSys::Bd09 {
        return Err(ApiError::bad_query("coord_sys", "tiles are cut for wgs84, cgcs2000 or gcj02 base maps"));
    }
    // The tile is in the base map's system; find the features in WGS-84, then move them to it.
    let (a, b) = to_wgs84(s, x0, y0);
    let (c, d) = to_wgs84(s, x1, y1);
    let pad = if s == CoordSys::Wgs84 || s == CoordSys::Cgcs2000 { 0.0 } else { 0.0005 };
    let bbox = (a.min(c) - pad, b.min(d) - pad, a.max(c) + pad, b.max(d) + pad);
    let lq = LayerQuery { class_code: q.class_code, state: q.state, kind: q.kind, ..LayerQuery::default() };
    let found = features(&app, &auth, layer, bbox, &lq, TILE_FEATURES).await?;
    let mut mvt_features: Vec<citygrid_geo::mvt::MvtFeature> = found
        .into_iter()
        .map(|f| citygrid_geo::mvt::MvtFeature {
            id: f.id,
            geometry: f.geometry.map_coords(|c| {
                let (x, y) = from_wgs84(s, c.x, c.y);
                geo::Coord { x, y }
            }),
            properties: f
                .properties
                .into_iter()
                .filter_map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => citygrid_geo::mvt::MvtValue::Str(s),
                        Value::Number(n) => match n.as_i64() {
                            Some(i) => citygrid_geo::mvt::MvtValue::Int(i),
                            None => citygrid_geo::mvt::MvtValue::Float(n.as_f64()?),
                        },
                        Value::Bool(b) => citygrid_geo::mvt::MvtValue::Bool(b),
                        _ => return None,
                    };
                    Some((k.to_owned(), value))
                })
                .collect(),
        })
        .collect();
    if matches!(layer, Layer::Components | Layer::Cases | Layer::Addresses) {
        mvt_features = citygrid_geo::mvt::thin_points(mvt_features, z, |f| match &f.geometry {
            geo::Geometry::Point(p) => (p.x(), p.y()),
            _ => (f64::NAN, f64::NAN),
        });
    }
    let bytes =
        citygrid_geo::mvt::encode_tile(z, x, y, &[citygrid_geo::mvt::MvtLayer { name, features: mvt_features }]);
    let mut res = bytes.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.mapbox-vector-tile"));
    Ok(res)
}

/// Cases on the map: in a box, within a radius, inside a stored area or region.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MapCaseQuery {
    /// `min_lon,min_lat,max_lon,max_lat`.
    pub bbox: Option<String>,
    /// Centre of a radius search (with `lat` and `radius`, metres, ≤ 20000).
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub radius: Option<f64>,
    /// Inside a responsibility area: `patrol_districts:PD01`.
    pub area: Option<String>,
    /// Inside a district, street, community or grid (by code).
    pub region: Option<String>,
    /// Comma-separated states; `all` for every state; default the open ones.
    pub state: Option<String>,
    pub kind: Option<Kind>,
    pub class_code: Option<String>,
    /// 1–10000 (default 2000).
    pub limit: Option<u32>,
    pub coord_sys: Option<CoordSys>,
}

/// A case as the map draws it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseMarkerOut {
    pub id: i64,
    pub number: String,
    pub state: String,
    pub kind: String,
    pub class_code: String,
    pub urgency: String,
    pub grid_code: String,
    pub location: PointOut,
    /// Current stage deadline (RFC 3339), if the stage has one.
    pub deadline: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseMarkerList {
    pub items: Vec<CaseMarkerOut>,
    /// More cases matched than `limit`.
    pub truncated: bool,
}

fn marker_out(m: CaseMarker, s: CoordSys) -> CaseMarkerOut {
    CaseMarkerOut {
        location: point_out(s, m.lon, m.lat),
        deadline: m.deadline.and_then(|d| jiff::Timestamp::from_millisecond(d).ok()).map(|t| t.to_string()),
        id: m.id,
        number: m.number,
        state: m.state.as_str().to_owned(),
        kind: m.kind.as_str().to_owned(),
        class_code: m.class_code,
        urgency: m.urgency.as_str().to_owned(),
        grid_code: m.grid_code,
    }
}

/// Cases inside `shape` (WGS-84): a bbox prefilter in the database, the exact test here.
async fn cases_in_shape(
    app: &AppState,
    auth: &Auth,
    shape: &Shape,
    states: Vec<String>,
    kind: Option<Kind>,
    class_code: Option<String>,
    limit: usize,
) -> ApiResult<(Vec<CaseMarker>, bool)> {
    let bbox = shape.bbox().ok_or_else(|| ApiError::invalid("polygon", "the shape is empty"))?;
    let filter =
        CaseFilter { states, kind, class_code, bbox: Some(bbox), now: Some(app.now()), ..CaseFilter::default() };
    let vis = visibility(app, auth).await?;
    // The box holds more than the shape: read generously, then keep what is inside.
    let mut inside = Vec::new();
    // The store answers at most MAX_MARKERS rows; reading that many means there may be more.
    let read = ((limit + 1) * 4).min(MAX_MARKERS);
    let candidates = app.store.case_markers(&vis, &filter, read).await?;
    let more_in_db = candidates.len() >= read;
    for m in candidates {
        if shape.contains(m.lon, m.lat) {
            inside.push(m);
        }
    }
    let truncated = inside.len() > limit || more_in_db;
    inside.truncate(limit);
    Ok((inside, truncated))
}

enum Shape {
    Box((f64, f64, f64, f64)),
    Circle { lon: f64, lat: f64, radius: f64 },
    Polygon(geo::MultiPolygon<f64>),
}

impl Shape {
    fn bbox(&self) -> Option<(f64, f64, f64, f64)> {
        match self {
            Shape::Box(b) => Some(*b),
            Shape::Circle { lon, lat, radius } => {
                let dlat = radius / 111_320.0;
                let dlon = radius / (111_320.0 * lat.to_radians().cos().max(0.01));
                Some((lon - dlon, lat - dlat, lon + dlon, lat + dlat))
            }
            Shape::Polygon(p) => p.bounding_rect().map(|r| (r.min().x, r.min().y, r.max().x, r.max().y)),
        }
    }

    fn contains(&self, lon: f64, lat: f64) -> bool {
        match self {
            Shape::Box((x0, y0, x1, y1)) => (*x0..=*x1).contains(&lon) && (*y0..=*y1).contains(&lat),
            Shape::Circle { lon: cx, lat: cy, radius } => distance_m(*cx, *cy, lon, lat) <= *radius,
            Shape::Polygon(p) => p.contains(&geo::Point::new(lon, lat)),
        }
    }
}

fn marker_filters(
    state: &Option<String>,
    class_code: &Option<String>,
    limit: Option<u32>,
) -> ApiResult<(Vec<String>, Option<String>, usize)> {
    let states = case_states(state)?;
    let class_code = class_code
        .as_deref()
        .map(|c| ClassCode::parse(c.trim()).map(|c| c.as_str().to_owned()))
        .transpose()
        .map_err(|e| ApiError::bad_query("class_code", e.to_string()))?;
    let limit = limit.unwrap_or(2000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_query("limit", "1 to 10000"));
    }
    Ok((states, class_code, limit as usize))
}

/// Cases on the map, in the caller's data scope: give exactly one of `bbox`, `lon`+`lat`+
/// `radius`, `area` or `region`. Open cases by default.
#[utoipa::path(get, path = "/api/v1/map/cases", tag = "map", security(("bearer" = [])), params(MapCaseQuery),
    responses((status = 200, body = CaseMarkerList), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn map_cases(
    State(app): State<AppState>,
    auth: Auth,
    Query(q): Query<MapCaseQuery>,
) -> ApiResult<Json<CaseMarkerList>> {
    let s = sys(q.coord_sys);
    let (states, class_code, limit) = marker_filters(&q.state, &q.class_code, q.limit)?;
    let given = [q.bbox.is_some(), q.lon.is_some() || q.lat.is_some(), q.area.is_some(), q.region.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError::bad_query("bbox", "give exactly one of bbox, lon+lat+radius, area or region"));
    }
    let shape = if let Some(b) = &q.bbox {
        Shape::Box(parse_bbox(b, s)?)
    } else if let Some(area) = &q.area {
        staff_only(&auth)?;
        let (layer, code) = area
            .split_once(':')
            .ok_or_else(|| ApiError::bad_query("area", "layer:code, e.g. patrol_districts:PD01"))?;
        let layer =
            AreaLayer::parse(layer).ok_or_else(|| ApiError::bad_query("area", format!("unknown layer {layer:?}")))?;
        let map = app.map();
        let a = map.areas.get(layer, code).ok_or(ApiError::NotFound("area"))?;
        Shape::Polygon(a.polygon.clone())
    } else if let Some(region) = &q.region {
        let code = RegionCode::parse(region.trim()).map_err(|e| ApiError::bad_query("region", e.to_string()))?;
        let polygon = if code.level() == RegionLevel::Grid {
            app.grids().get(&code).map(|g| g.polygon.clone())
        } else {
            app.map().regions.iter().find(|r| r.code == code).map(|r| r.polygon.clone())
        };
        Shape::Polygon(polygon.ok_or(ApiError::NotFound("region"))?)
    } else {
        let (Some(lon), Some(lat)) = (q.lon, q.lat) else {
            return Err(ApiError::bad_query("lat", "give both lon and lat"));
        };
        let radius = q.radius.ok_or_else(|| ApiError::bad_query("radius", "a radius in metres"))?;
        if !(radius.is_finite() && (1.0..=20_000.0).contains(&radius)) {
            return Err(ApiError::bad_query("radius", "1 to 20000 metres"));
        }
        let (lon, lat) = wgs84_point(lon, lat, q.coord_sys)?;
        Shape::Circle { lon, lat, radius }
    };
    let (found, truncated) = cases_in_shape(&app, &auth, &shape, states, q.kind, class_code, limit).await?;
    Ok(Json(CaseMarkerList { items: found.into_iter().map(|m| marker_out(m, s)).collect(), truncated }))
}

/// A polygon to search in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithinBody {
    /// A GeoJSON Polygon or MultiPolygon geometry.
    #[schema(value_type = Object)]
    pub polygon: Value,
    pub coord_sys: Option<CoordSys>,
    /// Comma-separated states; `all`; default the open ones.
    pub state: Option<String>,
    pub kind: Option<Kind>,
    pub class_code: Option<String>,
    pub limit: Option<u32>,
}

/// Cases inside a drawn polygon (the big screen's lasso), in the caller's data scope.
#[utoipa::path(post, path = "/api/v1/map/cases/within", tag = "map", security(("bearer" = [])), request_body = WithinBody,
    responses((status = 200, body = CaseMarkerList), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn cases_within(
    State(app): State<AppState>,
    auth: Auth,
    Json(body): Json<WithinBody>,
) -> ApiResult<Json<CaseMarkerList>> {
    let s = sys(body.coord_sys);
    let (states, class_code, limit) = marker_filters(&body.state, &body.class_code, body.limit)?;
    let polygon = citygrid_geo::geojson::multipolygon_from_geojson(&body.polygon.to_string())
        .map_err(|e| ApiError::invalid("polygon", e.to_string()))?;
    if geo::CoordsIter::coords_count(&polygon) > MAX_POLYGON_VERTICES {
        return Err(ApiError::invalid("polygon", format!("at most {MAX_POLYGON_VERTICES} vertices")));
    }
    let bad = geo::CoordsIter::coords_iter(&polygon).any(|c| {
        !(c.x.is_finite() && c.y.is_finite() && (-180.0..=180.0).contains(&c.x) && (-90.0..=90.0).contains(&c.y))
    });
    let polygon = polygon.map_coords(|c| {
        let (x, y) = to_wgs84(s, c.x, c.y);
        geo::Coord { x, y }
    });
    if bad {
        return Err(ApiError::invalid("polygon", "coordinates must be longitude/latitude degrees"));
    }
    let (found, truncated) =
        cases_in_shape(&app, &auth, &Shape::Polygon(polygon), states, body.kind, class_code, limit).await?;
    Ok(Json(CaseMarkerList { items: found.into_iter().map(|m| marker_out(m, s)).collect(), truncated }))
}

/// Import options.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// The file's coordinate system (default wgs84).
    pub coord_sys: Option<CoordSys>,
}

/// What an import wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    pub layer: String,
    /// Rows written per table.
    pub rows: std::collections::BTreeMap<String, u64>,
}

fn import_error(e: citygrid_geo::citydir::ImportError) -> ApiError {
    let at = if e.index == citygrid_geo::citydir::ImportError::WHOLE_FILE {
        "body".to_owned()
    } else if e.file.ends_with(".csv") {
        format!("line[{}]", e.index)
    } else {
        format!("features[{}]", e.index)
    };
    let field = match &e.field {
        Some(f) if at != "body" => format!("{at}.{f}"),
        _ => at,
    };
    ApiError::Invalid { code: "invalid_feature", field, detail: e.to_string() }
}

/// The `.shp` and `.dbf` parts of a multipart upload.
async fn shapefile_parts(mut form: axum::extract::Multipart) -> ApiResult<(Vec<u8>, Vec<u8>)> {
    let (mut shp, mut dbf) = (None, None);
    while let Some(field) =
        form.next_field().await.map_err(|e| ApiError::invalid("body", format!("unreadable multipart body: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes =
            field.bytes().await.map_err(|e| ApiError::invalid("body", format!("unreadable part {name}: {e}")))?;
        match name.as_str() {
            "shp" => shp = Some(bytes.to_vec()),
            "dbf" => dbf = Some(bytes.to_vec()),
            _ => {}
        }
    }
    match (shp, dbf) {
        (Some(s), Some(d)) => Ok((s, d)),
        (None, _) => Err(ApiError::invalid("shp", "a Shapefile upload needs a part named shp")),
        (_, None) => Err(ApiError::invalid("dbf", "a Shapefile upload needs a part named dbf")),
    }
}

/// Replace one layer of the map, atomically: a file with one bad feature is refused whole (422
/// naming the feature's index, field and reason) and nothing is written. GeoJSON
/// (`application/geo+json` or `application/json`) for polygon, point and line layers; CSV
/// (`text/csv`) for `components` and `addresses`; an ESRI Shapefile as `multipart/form-data`
/// with parts `shp` and `dbf` for polygon, point and line layers. Unit grids and the regions
/// above them are validated as a layer (codes, no overlaps). Administrators only; the
/// server's map is rebuilt afterwards.
#[utoipa::path(post, path = "/api/v1/map/layers/{layer}/import", tag = "map", security(("bearer" = [])),
    params(("layer" = String, Path, description = "Layer name"), ImportQuery),
    request_body(content = String, description = "GeoJSON, CSV or a Shapefile (multipart parts shp and dbf)"),
    responses((status = 200, body = ImportOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn import_layer(
    State(app): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    Query(q): Query<ImportQuery>,
    request: axum::extract::Request,
) -> ApiResult<Json<ImportOut>> {
    use axum::extract::FromRequest;
    use citygrid_geo::citydir as dir;
    auth.require(&[Role::Admin])?;
    let layer = parse_layer(&name)?;
    let s = sys(q.coord_sys);
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let is_csv = content_type.starts_with("text/csv");
    let is_json = content_type.starts_with("application/geo+json") || content_type.starts_with("application/json");
    let is_shapefile = content_type.starts_with("multipart/form-data");
    let media_error = || ApiError::UnsupportedMedia {
        detail: "send GeoJSON (application/geo+json) or a Shapefile (multipart/form-data, parts shp and dbf) for map \
                 layers, and CSV (text/csv) for components and addresses"
            .into(),
    };
    let (file, raw_features, body) = if is_shapefile {
        if matches!(layer, Layer::Components | Layer::Addresses | Layer::Cases) {
            return Err(media_error());
        }
        let form = axum::extract::Multipart::from_request(request, &app)
            .await
            .map_err(|e| ApiError::invalid("body", format!("not a multipart body: {e}")))?;
        let (shp, dbf) = shapefile_parts(form).await?;
        let file = format!("{name}.shp");
        (file.clone(), Some(dir::read_shapefile(&file, &shp, &dbf).map_err(import_error)?), Bytes::new())
    } else {
        let body = Bytes::from_request(request, &app)
            .await
            .map_err(|e| ApiError::invalid("body", format!("unreadable body: {e}")))?;
        let file = if is_csv { format!("{name}.csv") } else { format!("{name}.geojson") };
        (file, None, body)
    };
    let features = |file: &str| -> ApiResult<Vec<dir::RawFeature>> {
        match &raw_features {
            Some(f) => Ok(f.clone()),
            None => {
                let text =
                    std::str::from_utf8(&body).map_err(|_| ApiError::invalid("body", "the file must be UTF-8"))?;
                dir::features_from_geojson(file, text).map_err(import_error)
            }
        }
    };
    let geo_ok = is_json || is_shapefile;
    let mut map = CityMap::default();
    let mut components: Vec<Result<citygrid_geo::layers::Component, String>> = Vec::new();
    match layer {
        Layer::Components if is_csv => {
            for row in dir::read_components_csv(&file, &body[..], s) {
                components.push(Ok(row.map_err(import_error)?));
            }
            if components.is_empty() {
                return Err(ApiError::invalid("body", "the file has no components"));
            }
        }
        Layer::Addresses if is_csv => {
            map.addresses = dir::read_addresses_csv(&file, &body[..], s).map_err(import_error)?;
        }
        Layer::Region(level) if geo_ok => {
            map.regions = dir::regions_from_features(&file, features(&file)?, level, s).map_err(import_error)?;
            // One level at a time: the parents are the stored regions one level up.
            let known: std::collections::HashSet<RegionCode> =
                app.store.list_regions(None, None).await?.into_iter().map(|r| r.code).collect();
            let issues = citygrid_geo::validate::validate_regions_with(&map.regions, &known, 1.0);
            if let Some(first) = issues.first() {
                return Err(ApiError::Invalid {
                    code: "invalid_map",
                    field: "features".into(),
                    detail: format!(
                        "{} problem(s); first: {} {:?}: {}",
                        issues.len(),
                        first.code,
                        first.kind,
                        first.detail
                    ),
                });
            }
        }
        Layer::Area(area_layer) if geo_ok => {
            map.areas = dir::areas_from_features(&file, features(&file)?, area_layer, s).map_err(import_error)?;
        }
        Layer::Kiosks if geo_ok => {
            map.kiosks = dir::kiosks_from_features(&file, features(&file)?, s).map_err(import_error)?
        }
        Layer::Roads if geo_ok => {
            map.roads = dir::roads_from_features(&file, features(&file)?, s).map_err(import_error)?
        }
        Layer::Cases => return Err(ApiError::NotFound("layer")),
        _ => return Err(media_error()),
    }
    if map == CityMap::default() && components.is_empty() {
        return Err(ApiError::invalid("features", "the file has no features"));
    }
    let mut iter = components.into_iter();
    let summary = app.store.import_map(&map, &mut iter, &|_, _| {}).await?;
    app.reload_map().await?;
    let rows = [
        ("regions", summary.regions),
        ("areas", summary.areas),
        ("kiosks", summary.kiosks),
        ("roads", summary.roads),
        ("addresses", summary.addresses),
        ("components", summary.components),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    Ok(Json(ImportOut { layer: name, rows }))
}

/// Row counts of every layer and the extent of the grid map.
#[derive(Debug, Serialize, ToSchema)]
pub struct MapSummary {
    /// Layer → number of features.
    pub layers: std::collections::BTreeMap<String, i64>,
    /// `[min_lon, min_lat, max_lon, max_lat]` of the unit grids, in the requested system.
    pub bbox: Option<[f64; 4]>,
    /// Every layer name the layer and tile endpoints accept.
    pub layer_names: Vec<String>,
}

/// What the map holds: counts per layer and the extent, for a map client's first view.
#[utoipa::path(get, path = "/api/v1/map", tag = "map", security(("bearer" = [])), params(SysQuery),
    responses((status = 200, body = MapSummary), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn summary(
    State(app): State<AppState>,
    _auth: Auth,
    Query(q): Query<SysQuery>,
) -> ApiResult<Json<MapSummary>> {
    let s = sys(q.coord_sys);
    let layers = app.store.map_counts().await?.into_iter().collect();
    let bbox = app.grids().bbox().map(|(a, b, c, d)| {
        let (x0, y0) = from_wgs84(s, a, b);
        let (x1, y1) = from_wgs84(s, c, d);
        [x0, y0, x1, y1]
    });
    Ok(Json(MapSummary { layers, bbox, layer_names: Layer::NAMES.iter().map(|s| (*s).to_owned()).collect() }))
}
