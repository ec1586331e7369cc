//! The city map in the store: importing a whole city (`citygrid import city`) in one
//! transaction, the reads the server builds its in-memory indexes from, the map API's "what is
//! in this view" queries, and the cases on the map (markers for the big screen).
//!
//! Geometry is stored as GeoJSON text in WGS-84 degrees, with the bounding box of every shape in
//! plain columns: a view query is an index range on numbers and parses only the rows it returns.
//! Regions keep the geometry form the rest of the store uses (a GeoJSON `Feature` with the code
//! in its properties, which `GridIndex` is built from); areas, roads and components store bare
//! geometry objects.
//!
//! Bulk writes go through one function per engine: multi-row `INSERT`s of a fixed size on SQLite
//! (the statement is prepared once and reused for every full chunk) and `COPY … FROM STDIN` in
//! text format on PostgreSQL.

use crate::{both, StoreError, Visibility};
use crate::{corrupt, fk_violation, ms, push_case_filters, region_from_row, CaseFilter, Inner, Result, Store};
use citygrid_core::case::{Case, Point, Source, State};
use citygrid_core::codes::{AreaClass, ClassCode, Kind, RegionCode, RegionLevel, Urgency};
use citygrid_core::component::{ComponentId, ComponentState, CreditCode};
use citygrid_core::org::Region;
use citygrid_geo::layers::{
    Address, AddressKind, Area, AreaLayer, CityMap, Component, DepartmentRow, Kiosk, RegionFeature, Road,
};
use geo::{Coord, Geometry, LineString, MultiLineString, MultiPolygon, Polygon};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// Rows written per layer by [`Store::import_map`]; a layer not in the import counts 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub regions: u64,
    pub areas: u64,
    pub kiosks: u64,
    pub roads: u64,
    pub addresses: u64,
    pub components: u64,
    pub departments: u64,
}

/// Filters of the component list; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct ComponentFilter {
    /// (min_lon, min_lat, max_lon, max_lat) of the representative point, edges included.
    pub bbox: Option<(f64, f64, f64, f64)>,
    /// A 5-digit component class code.
    pub class: Option<String>,
    pub state: Option<ComponentState>,
    /// A region code: the component's grid is this region or inside it.
    pub grid: Option<RegionCode>,
}

/// One page of a map layer listed by its key, ascending; `next` is the key to pass as `after`.
#[derive(Debug, Clone)]
pub struct MapPage<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// A case as a marker on the map: only what a marker shows, read from columns (no JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseMarker {
    pub id: i64,
    pub number: String,
    pub state: State,
    pub kind: Kind,
    pub class_code: String,
    pub urgency: Urgency,
    pub lon: f64,
    pub lat: f64,
    /// Deadline of the current stage, UTC milliseconds.
    pub deadline: Option<i64>,
    pub grid_code: String,
}

// ---- geometry as GeoJSON ----------------------------------------------------------------------

fn write_coord(out: &mut String, c: Coord<f64>) -> Result<()> {
    if !(c.x.is_finite() && c.y.is_finite()) {
        return Err(StoreError::Invalid(format!("coordinate ({}, {}) is not a number", c.x, c.y)));
    }
    // `{}` on f64 is the shortest text that reads back to the same number, never an exponent.
    let _ = write!(out, "[{},{}]", c.x, c.y);
    Ok(())
}

fn write_line(out: &mut String, l: &LineString<f64>) -> Result<()> {
    out.push('[');
    for (i, c) in l.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_coord(out, *c)?;
    }
    out.push(']');
    Ok(())
}

fn write_polygon(out: &mut String, p: &Polygon<f64>) -> Result<()> {
    out.push('[');
    write_line(out, p.exterior())?;
    for ring in p.interiors() {
        out.push(',');
        write_line(out, ring)?;
    }
    out.push(']');
    Ok(())
}

fn write_list<T>(out: &mut String, items: &[T], mut each: impl FnMut(&mut String, &T) -> Result<()>) -> Result<()> {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, item)?;
    }
    out.push(']');
    Ok(())
}

/// A geometry as a GeoJSON geometry object (RFC 7946). Lines, rectangles and triangles are
/// written as the LineString / Polygon they are.
pub(crate) fn geometry_to_geojson(g: &Geometry<f64>) -> Result<String> {
    let mut out = String::with_capacity(64);
    write_geometry(&mut out, g)?;
    Ok(out)
}

fn write_geometry(out: &mut String, g: &Geometry<f64>) -> Result<()> {
    match g {
        Geometry::Point(p) => {
            out.push_str(r#"{"type":"Point","coordinates":"#);
            write_coord(out, p.0)?;
        }
        Geometry::Line(l) => {
            out.push_str(r#"{"type":"LineString","coordinates":"#);
            write_line(out, &LineString(vec![l.start, l.end]))?;
        }
        Geometry::LineString(l) => {
            out.push_str(r#"{"type":"LineString","coordinates":"#);
            write_line(out, l)?;
        }
        Geometry::Polygon(p) => {
            out.push_str(r#"{"type":"Polygon","coordinates":"#);
            write_polygon(out, p)?;
        }
        Geometry::MultiPoint(m) => {
            out.push_str(r#"{"type":"MultiPoint","coordinates":"#);
            write_list(out, &m.0, |o, p| write_coord(o, p.0))?;
        }
        Geometry::MultiLineString(m) => {
            out.push_str(r#"{"type":"MultiLineString","coordinates":"#);
            write_list(out, &m.0, write_line)?;
        }
        Geometry::MultiPolygon(m) => {
            out.push_str(r#"{"type":"MultiPolygon","coordinates":"#);
            write_list(out, &m.0, write_polygon)?;
        }
        Geometry::Rect(r) => return write_geometry(out, &Geometry::Polygon(r.to_polygon())),
        Geometry::Triangle(t) => return write_geometry(out, &Geometry::Polygon(t.to_polygon())),
        Geometry::GeometryCollection(c) => {
            out.push_str(r#"{"type":"GeometryCollection","geometries":"#);
            write_list(out, &c.0, write_geometry)?;
        }
    }
    out.push('}');
    Ok(())
}

fn coord_from(v: &Value) -> Result<Coord<f64>> {
    let a = v.as_array().ok_or_else(|| corrupt("a position is not an array"))?;
    match (a.first().and_then(Value::as_f64), a.get(1).and_then(Value::as_f64)) {
        (Some(x), Some(y)) => Ok(Coord { x, y }),
        _ => Err(corrupt("a position needs two numbers")),
    }
}

fn list_from<T>(v: &Value, each: impl Fn(&Value) -> Result<T>) -> Result<Vec<T>> {
    v.as_array().ok_or_else(|| corrupt("GeoJSON coordinates are not an array"))?.iter().map(each).collect()
}

fn line_from(v: &Value) -> Result<LineString<f64>> {
    Ok(LineString(list_from(v, coord_from)?))
}

fn polygon_from(v: &Value) -> Result<Polygon<f64>> {
    let mut rings = list_from(v, line_from)?.into_iter();
    let exterior = rings.next().ok_or_else(|| corrupt("a polygon without rings"))?;
    Ok(Polygon::new(exterior, rings.collect()))
}

fn geometry_from_value(v: &Value) -> Result<Geometry<f64>> {
    let c = || v.get("coordinates").ok_or_else(|| corrupt("GeoJSON geometry without coordinates"));
    Ok(match v.get("type").and_then(Value::as_str) {
        Some("Point") => Geometry::Point(geo::Point(coord_from(c()?)?)),
        Some("MultiPoint") => {
            Geometry::MultiPoint(geo::MultiPoint(list_from(c()?, |p| Ok(geo::Point(coord_from(p)?)))?))
        }
        Some("LineString") => Geometry::LineString(line_from(c()?)?),
        Some("MultiLineString") => Geometry::MultiLineString(MultiLineString(list_from(c()?, line_from)?)),
        Some("Polygon") => Geometry::Polygon(polygon_from(c()?)?),
        Some("MultiPolygon") => Geometry::MultiPolygon(MultiPolygon(list_from(c()?, polygon_from)?)),
        Some("GeometryCollection") => Geometry::GeometryCollection(geo::GeometryCollection(list_from(
            v.get("geometries").ok_or_else(|| corrupt("a collection without geometries"))?,
            geometry_from_value,
        )?)),
        Some("Feature") => {
            return geometry_from_value(v.get("geometry").ok_or_else(|| corrupt("a Feature without geometry"))?)
        }
        other => return Err(corrupt(format!("unknown GeoJSON geometry type {other:?}"))),
    })
}

pub(crate) fn geometry_from_geojson(text: &str) -> Result<Geometry<f64>> {
    geometry_from_value(&serde_json::from_str(text).map_err(corrupt)?)
}

fn multipolygon_from_geojson(text: &str) -> Result<MultiPolygon<f64>> {
    match geometry_from_geojson(text)? {
        Geometry::MultiPolygon(m) => Ok(m),
        Geometry::Polygon(p) => Ok(MultiPolygon(vec![p])),
        _ => Err(corrupt("expected a (Multi)Polygon")),
    }
}

fn multiline_from_geojson(text: &str) -> Result<MultiLineString<f64>> {
    match geometry_from_geojson(text)? {
        Geometry::MultiLineString(m) => Ok(m),
        Geometry::LineString(l) => Ok(MultiLineString(vec![l])),
        _ => Err(corrupt("expected a (Multi)LineString")),
    }
}

/// (min_lon, min_lat, max_lon, max_lat) of a geometry; none for an empty one.
fn geometry_bbox(g: &Geometry<f64>) -> Option<(f64, f64, f64, f64)> {
    use geo::BoundingRect;
    g.bounding_rect().map(|r| (r.min().x, r.min().y, r.max().x, r.max().y))
}

/// The bounding box of the positions in a GeoJSON text (a geometry, a Feature, a collection):
/// every innermost array of numbers is a position.
pub(crate) fn geojson_text_bbox(text: &str) -> Option<(f64, f64, f64, f64)> {
    fn walk(v: &Value, b: &mut Option<(f64, f64, f64, f64)>) {
        match v {
            Value::Array(a) => match (a.first().and_then(Value::as_f64), a.get(1).and_then(Value::as_f64)) {
                (Some(x), Some(y)) => {
                    let (x0, y0, x1, y1) = b.unwrap_or((x, y, x, y));
                    *b = Some((x0.min(x), y0.min(y), x1.max(x), y1.max(y)));
                }
                _ => a.iter().for_each(|v| walk(v, b)),
            },
            Value::Object(o) => {
                for key in ["coordinates", "geometry", "geometries", "features"] {
                    if let Some(v) = o.get(key) {
                        walk(v, b);
                    }
                }
            }
            _ => {}
        }
    }
    let v: Value = serde_json::from_str(text).ok()?;
    let mut b = None;
    walk(&v, &mut b);
    b
}

// ---- bulk rows ----------------------------------------------------------------------------------

/// One value of a bulk row.
#[derive(Debug, Clone)]
enum V {
    Null,
    I(i64),
    F(f64),
    T(String),
}

impl From<String> for V {
    fn from(s: String) -> V {
        V::T(s)
    }
}
impl From<&str> for V {
    fn from(s: &str) -> V {
        V::T(s.to_owned())
    }
}
impl From<f64> for V {
    fn from(x: f64) -> V {
        V::F(x)
    }
}
impl From<i64> for V {
    fn from(x: i64) -> V {
        V::I(x)
    }
}
impl<T: Into<V>> From<Option<T>> for V {
    fn from(x: Option<T>) -> V {
        x.map_or(V::Null, Into::into)
    }
}

type Row = Vec<V>;

struct Table {
    name: &'static str,
    cols: &'static [&'static str],
}

const REGIONS: Table = Table {
    name: "regions",
    cols: &["code", "name", "level", "parent", "area_class", "geometry", "min_lon", "min_lat", "max_lon", "max_lat"],
};
const AREAS: Table = Table {
    name: "areas",
    cols: &["layer", "code", "name", "owner", "geometry", "min_lon", "min_lat", "max_lon", "max_lat"],
};
const KIOSKS: Table = Table { name: "kiosks", cols: &["code", "name", "patrol_district", "lon", "lat"] };
const ROADS: Table = Table {
    name: "roads",
    cols: &["code", "name", "aliases", "district", "geometry", "min_lon", "min_lat", "max_lon", "max_lat"],
};
const ADDRESSES: Table = Table {
    name: "addresses",
    cols: &["code", "kind", "name", "aliases", "district", "road", "number", "lon", "lat", "grid_code"],
};
const COMPONENTS: Table = Table {
    name: "components",
    cols: &[
        "id",
        "legacy_id",
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
        "geometry",
    ],
};

/// The secondary indexes of `components` on SQLite, as in migration 0003: dropped and built
/// again around a bulk import.
const COMPONENT_INDEXES: [(&str, &str); 3] =
    [("components_class", "class_code, id"), ("components_grid", "grid_code, id"), ("components_lon_lat", "lon, lat")];

/// Rows per bulk write, and how often progress is reported.
const CHUNK: usize = 10_000;

/// SQLite: fixed-size multi-row INSERTs. Every full statement has the same text, so sqlx's
/// statement cache prepares it once; the binds stay under SQLite's 32766 variables.
async fn sqlite_bulk(c: &mut sqlx::SqliteConnection, t: &Table, rows: Vec<Row>) -> Result<()> {
    let per = (32_000 / t.cols.len()).min(400);
    let mut rows = rows.into_iter().peekable();
    let mut sql_full = String::new();
    while rows.peek().is_some() {
        let chunk: Vec<Row> = rows.by_ref().take(per).collect();
        let partial;
        let sql: &str = if chunk.len() == per {
            if sql_full.is_empty() {
                sql_full = insert_sql(t, per);
            }
            &sql_full
        } else {
            partial = insert_sql(t, chunk.len());
            &partial
        };
        let mut q = sqlx::query(sql);
        for row in chunk {
            for v in row {
                q = match v {
                    V::Null => q.bind(None::<String>),
                    V::I(x) => q.bind(x),
                    V::F(x) => q.bind(x),
                    V::T(s) => q.bind(s),
                };
            }
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

fn insert_sql(t: &Table, rows: usize) -> String {
    let one = format!("({})", vec!["?"; t.cols.len()].join(", "));
    format!("INSERT INTO {} ({}) VALUES {}", t.name, t.cols.join(", "), vec![one.as_str(); rows].join(", "))
}

/// PostgreSQL: `COPY … FROM STDIN` in text format, the fastest way in.
async fn pg_bulk(c: &mut sqlx::PgConnection, t: &Table, rows: Vec<Row>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut buf = String::with_capacity(rows.len() * 64);
    for row in rows {
        for (i, v) in row.into_iter().enumerate() {
            if i > 0 {
                buf.push('\t');
            }
            match v {
                V::Null => buf.push_str("\\N"),
                V::I(x) => {
                    let _ = write!(buf, "{x}");
                }
                V::F(x) => {
                    let _ = write!(buf, "{x}");
                }
                V::T(s) => {
                    for ch in s.chars() {
                        match ch {
                            '\\' => buf.push_str("\\\\"),
                            '\n' => buf.push_str("\\n"),
                            '\r' => buf.push_str("\\r"),
                            '\t' => buf.push_str("\\t"),
                            c => buf.push(c),
                        }
                    }
                }
            }
        }
        buf.push('\n');
    }
    let mut copy = c.copy_in_raw(&format!("COPY {} ({}) FROM STDIN", t.name, t.cols.join(", "))).await?;
    if let Err(e) = copy.send(buf.into_bytes()).await {
        let _ = copy.abort("send failed").await;
        return Err(e.into());
    }
    copy.finish().await?;
    Ok(())
}

// ---- rows of each layer -------------------------------------------------------------------------

fn bbox_values(b: Option<(f64, f64, f64, f64)>, what: &str) -> Result<[V; 4]> {
    let (x0, y0, x1, y1) = b.ok_or_else(|| StoreError::Invalid(format!("{what}: empty geometry")))?;
    Ok([V::F(x0), V::F(y0), V::F(x1), V::F(y1)])
}

fn region_row(f: &RegionFeature) -> Result<Row> {
    let grid = citygrid_geo::GridPolygon { code: f.code.clone(), polygon: f.polygon.clone() };
    // The Feature form with the code in its properties: what `grid_geometries` readers parse.
    let feature = citygrid_geo::geojson::grid_to_feature(&grid).to_string();
    let [a, b, c, d] = bbox_values(geometry_bbox(&Geometry::MultiPolygon(f.polygon.clone())), f.code.as_str())?;
    let level = f.code.level();
    let parent = if level == RegionLevel::City { None } else { f.code.parent() };
    Ok(vec![
        f.code.as_str().into(),
        f.name.as_str().into(),
        level.as_str().into(),
        parent.map(|p| p.as_str().to_owned()).into(),
        f.area_class.as_str().into(),
        V::T(feature),
        a,
        b,
        c,
        d,
    ])
}

fn area_row(a: &Area) -> Result<Row> {
    let g = Geometry::MultiPolygon(a.polygon.clone());
    let what = format!("{} {}", a.layer.as_str(), a.code);
    let [x0, y0, x1, y1] = bbox_values(geometry_bbox(&g), &what)?;
    Ok(vec![
        a.layer.as_str().into(),
        a.code.as_str().into(),
        a.name.as_str().into(),
        a.owner.as_str().into(),
        V::T(geometry_to_geojson(&g)?),
        x0,
        y0,
        x1,
        y1,
    ])
}

fn kiosk_row(k: &Kiosk) -> Row {
    vec![k.code.as_str().into(), k.name.as_str().into(), k.patrol_district.as_str().into(), k.lon.into(), k.lat.into()]
}

fn aliases_json(a: &[String]) -> Result<String> {
    serde_json::to_string(a).map_err(corrupt)
}

fn road_row(r: &Road) -> Result<Row> {
    let g = Geometry::MultiLineString(r.line.clone());
    let [x0, y0, x1, y1] = bbox_values(geometry_bbox(&g), &format!("road {}", r.code))?;
    Ok(vec![
        r.code.as_str().into(),
        r.name.as_str().into(),
        V::T(aliases_json(&r.aliases)?),
        r.district.as_str().into(),
        V::T(geometry_to_geojson(&g)?),
        x0,
        y0,
        x1,
        y1,
    ])
}

fn address_row(a: &Address, grid: Option<&RegionCode>) -> Result<Row> {
    Ok(vec![
        a.code.as_str().into(),
        a.kind.as_str().into(),
        a.name.as_str().into(),
        V::T(aliases_json(&a.aliases)?),
        a.district.as_str().into(),
        a.road.clone().into(),
        a.number.clone().into(),
        a.lon.into(),
        a.lat.into(),
        grid.map(|g| g.as_str().to_owned()).into(),
    ])
}

fn component_row(c: &Component) -> Result<Row> {
    use geo::InteriorPoint;
    let (point, geometry) = match &c.geometry {
        Geometry::Point(p) => (*p, None),
        g => {
            let p =
                g.interior_point().ok_or_else(|| StoreError::Invalid(format!("component {}: empty geometry", c.id)))?;
            (p, Some(geometry_to_geojson(g)?))
        }
    };
    if !(point.x().is_finite() && point.y().is_finite()) {
        return Err(StoreError::Invalid(format!("component {}: position is not a number", c.id)));
    }
    Ok(vec![
        c.id.as_str().into(),
        c.legacy_id.clone().into(),
        c.id.class_code().as_str().into(),
        c.name.as_str().into(),
        c.dept_credit_code.as_str().into(),
        c.dept_name.as_str().into(),
        c.grid_code.as_str().into(),
        c.state.as_str().into(),
        V::T(c.start_date.to_string()),
        c.owner.clone().into(),
        c.maintainer.clone().into(),
        c.change_date.map(|d| d.to_string()).into(),
        c.data_source.clone().into(),
        c.note.clone().into(),
        point.x().into(),
        point.y().into(),
        geometry.into(),
    ])
}

type ComponentSqlRow = (
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    f64,
    f64,
    Option<String>,
);

const COMPONENT_COLS: &str = "id, legacy_id, name, dept_credit_code, dept_name, grid_code, state, start_date, owner, \
                              maintainer, change_date, data_source, note, lon, lat, geometry";

fn component_from_row(r: ComponentSqlRow) -> Result<Component> {
    let (
        id,
        legacy_id,
        name,
        credit,
        dept_name,
        grid,
        state,
        start,
        owner,
        maintainer,
        change,
        source,
        note,
        lon,
        lat,
        g,
    ) = r;
    let date = |s: &str| s.parse::<jiff::civil::Date>().map_err(corrupt);
    Ok(Component {
        id: ComponentId::parse(&id).map_err(corrupt)?,
        legacy_id,
        name,
        dept_credit_code: CreditCode::parse(&credit).map_err(corrupt)?,
        dept_name,
        grid_code: RegionCode::parse(&grid).map_err(corrupt)?,
        state: ComponentState::parse(&state).ok_or_else(|| corrupt(&state))?,
        start_date: date(&start)?,
        owner,
        maintainer,
        change_date: change.as_deref().map(date).transpose()?,
        data_source: source,
        note,
        geometry: match g {
            Some(text) => geometry_from_geojson(&text)?,
            None => Geometry::Point(geo::Point::new(lon, lat)),
        },
    })
}

type AddressSqlRow = (String, String, String, String, String, Option<String>, Option<String>, f64, f64);
const ADDRESS_COLS: &str = "code, kind, name, aliases, district, road, number, lon, lat";

fn address_from_row(r: AddressSqlRow) -> Result<Address> {
    let (code, kind, name, aliases, district, road, number, lon, lat) = r;
    Ok(Address {
        code,
        kind: AddressKind::parse(&kind).ok_or_else(|| corrupt(&kind))?,
        name,
        aliases: serde_json::from_str(&aliases).map_err(corrupt)?,
        district: RegionCode::parse(&district).map_err(corrupt)?,
        road,
        number,
        lon,
        lat,
    })
}

/// A region row with its geometry.
type RegionSqlRow = (String, String, String, Option<String>, String, Option<String>);

type AreaSqlRow = (String, String, String, String, String);

fn area_from_row((layer, code, name, owner, g): AreaSqlRow) -> Result<Area> {
    Ok(Area {
        layer: AreaLayer::parse(&layer).ok_or_else(|| corrupt(&layer))?,
        code,
        name,
        owner,
        polygon: multipolygon_from_geojson(&g)?,
    })
}

type RoadSqlRow = (String, String, String, String, String);

fn road_from_row((code, name, aliases, district, g): RoadSqlRow) -> Result<Road> {
    Ok(Road {
        code,
        name,
        aliases: serde_json::from_str(&aliases).map_err(corrupt)?,
        district: RegionCode::parse(&district).map_err(corrupt)?,
        line: multiline_from_geojson(&g)?,
    })
}

type MarkerSqlRow = (i64, String, String, String, String, String, f64, f64, Option<i64>, String);

fn marker_from_row(r: MarkerSqlRow) -> Result<CaseMarker> {
    let (id, number, state, kind, class_code, urgency, lon, lat, deadline, grid_code) = r;
    Ok(CaseMarker {
        id,
        number,
        state: State::parse(&state).ok_or_else(|| corrupt(&state))?,
        kind: Kind::parse(&kind).ok_or_else(|| corrupt(&kind))?,
        class_code,
        urgency: Urgency::parse(&urgency).ok_or_else(|| corrupt(&urgency))?,
        lon,
        lat,
        deadline,
        grid_code,
    })
}

/// Departments after the import: every row's parent exists and is a city-level department
/// (two tiers only). `existing` is (code, parent code) of the stored departments.
fn check_departments(rows: &[DepartmentRow], existing: &[(String, Option<String>)]) -> Result<()> {
    let mut parent: HashMap<&str, Option<&str>> = existing.iter().map(|(c, p)| (c.as_str(), p.as_deref())).collect();
    for r in rows {
        parent.insert(r.code.as_str(), r.parent.as_deref());
    }
    for (code, p) in &parent {
        let Some(p) = p else { continue };
        match parent.get(p) {
            None => return Err(StoreError::Invalid(format!("department {code}: parent {p} does not exist"))),
            Some(Some(_)) => {
                return Err(StoreError::Invalid(format!("department {code}: parent {p} is itself a sub-unit")))
            }
            Some(None) => {}
        }
    }
    Ok(())
}

/// The grid of each address, when the grids (of this import, or else stored) make an index.
fn address_grids(map: &CityMap, stored: Vec<(String, String)>) -> Option<citygrid_geo::GridIndex> {
    let grids: Vec<citygrid_geo::GridPolygon> = if map.regions.iter().any(|r| r.level() == RegionLevel::Grid) {
        map.regions
            .iter()
            .filter(|r| r.level() == RegionLevel::Grid)
            .map(|r| citygrid_geo::GridPolygon { code: r.code.clone(), polygon: r.polygon.clone() })
            .collect()
    } else {
        stored.iter().filter_map(|(_, f)| citygrid_geo::geojson::grids_from_geojson(f).ok()).flatten().collect()
    };
    // A grid map the index refuses leaves the addresses without grid; the grid import itself
    // is validated by the importer, not here.
    citygrid_geo::GridIndex::new(grids).ok()
}

/// The body of an import on the transaction `$tx`, with `$bulk` the engine's bulk writer.
macro_rules! import_in {
    ($tx:ident, $bulk:ident, $sqlite:expr, $map:expr, $components:expr, $progress:expr) => {{
        let map: &CityMap = $map;
        let progress: &(dyn Fn(&str, u64) + Sync) = $progress;
        let components: &mut (dyn Iterator<Item = std::result::Result<Component, String>> + Send) = $components;
        let mut sum = ImportSummary::default();

        // Departments first: upsert by code, then parents by code once all exist.
        if !map.departments.is_empty() {
            let existing: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT d.code, p.code FROM departments d LEFT JOIN departments p ON p.id = d.parent_id",
            )
            .fetch_all(&mut *$tx)
            .await?;
            check_departments(&map.departments, &existing)?;
            let upsert = "INSERT INTO departments (code, name, parent_id, tier, credit_code) VALUES ($1, $2, NULL, 2, $3) \
                          ON CONFLICT (code) DO UPDATE SET name = excluded.name, credit_code = excluded.credit_code";
            for d in &map.departments {
                sqlx::query(upsert)
                    .bind(&d.code)
                    .bind(&d.name)
                    .bind(d.credit_code.as_ref().map(|c| c.as_str().to_owned()))
                    .execute(&mut *$tx)
                    .await?;
            }
            let set_parent = "UPDATE departments SET parent_id = (SELECT p.id FROM departments p WHERE p.code = $1), \
                              tier = $2 WHERE code = $3";
            for d in &map.departments {
                let tier: i64 = if d.parent.is_some() { 3 } else { 2 };
                sqlx::query(set_parent).bind(d.parent.as_deref()).bind(tier).bind(&d.code).execute(&mut *$tx).await?;
            }
            sum.departments = map.departments.len() as u64;
            progress("departments", sum.departments);
        }

        // Regions: replace each level present, bottom-up out, top-down in.
        if !map.regions.is_empty() {
            let levels = [RegionLevel::District, RegionLevel::Street, RegionLevel::Community, RegionLevel::Grid];
            let present: Vec<RegionLevel> =
                levels.into_iter().filter(|l| map.regions.iter().any(|r| r.level() == *l)).collect();
            for level in present.iter().rev() {
                let del = sqlx::query("DELETE FROM regions WHERE level = $1").bind(level.as_str()).execute(&mut *$tx).await;
                match del {
                    Err(e) if fk_violation(&e) => {
                        return Err(StoreError::Invalid(format!(
                            "replacing the {} would leave regions below them without parent; import those levels too",
                            level.as_str()
                        )))
                    }
                    r => {
                        r?;
                    }
                }
            }
            let stored: Vec<String> = sqlx::query_scalar("SELECT code FROM regions").fetch_all(&mut *$tx).await?;
            let mut known: HashSet<String> = stored.into_iter().collect();
            let mut sorted: Vec<&RegionFeature> = map.regions.iter().collect();
            sorted.sort_by_key(|r| (r.level(), r.code.as_str().to_owned()));
            for r in &sorted {
                if !known.insert(r.code.as_str().to_owned()) && r.level() != RegionLevel::City {
                    return Err(StoreError::Invalid(format!("region {} appears more than once", r.code)));
                }
            }
            // The city above the districts: created (named by its code) if the database has none.
            for r in &sorted {
                if let Some(p) = r.code.parent().filter(|p| !known.contains(p.as_str())) {
                    if p.level() != RegionLevel::City {
                        return Err(StoreError::Invalid(format!("region {}: parent {p} does not exist", r.code)));
                    }
                    sqlx::query("INSERT INTO regions (code, name, level, parent, area_class) VALUES ($1, $1, 'city', NULL, 'A')")
                        .bind(p.as_str())
                        .execute(&mut *$tx)
                        .await?;
                    known.insert(p.as_str().to_owned());
                }
            }
            let city_upsert = "INSERT INTO regions (code, name, level, parent, area_class, geometry, min_lon, min_lat, \
                               max_lon, max_lat) VALUES ($1, $2, 'city', NULL, $3, $4, $5, $6, $7, $8) \
                               ON CONFLICT (code) DO UPDATE SET name = excluded.name, area_class = excluded.area_class, \
                               geometry = excluded.geometry, min_lon = excluded.min_lon, min_lat = excluded.min_lat, \
                               max_lon = excluded.max_lon, max_lat = excluded.max_lat";
            let mut rows = Vec::new();
            for r in &sorted {
                if r.level() == RegionLevel::City {
                    let b = geometry_bbox(&Geometry::MultiPolygon(r.polygon.clone()));
                    let feature = citygrid_geo::geojson::grid_to_feature(&citygrid_geo::GridPolygon {
                        code: r.code.clone(),
                        polygon: r.polygon.clone(),
                    })
                    .to_string();
                    sqlx::query(city_upsert)
                        .bind(r.code.as_str())
                        .bind(&r.name)
                        .bind(r.area_class.as_str())
                        .bind(feature)
                        .bind(b.map(|b| b.0))
                        .bind(b.map(|b| b.1))
                        .bind(b.map(|b| b.2))
                        .bind(b.map(|b| b.3))
                        .execute(&mut *$tx)
                        .await?;
                    sum.regions += 1;
                    continue;
                }
                rows.push(region_row(r)?);
                if rows.len() == CHUNK {
                    sum.regions += rows.len() as u64;
                    $bulk(&mut *$tx, &REGIONS, std::mem::take(&mut rows)).await?;
                    progress("regions", sum.regions);
                }
            }
            sum.regions += rows.len() as u64;
            $bulk(&mut *$tx, &REGIONS, rows).await?;
            progress("regions", sum.regions);
        }

        // Responsibility areas: replace each layer present.
        if !map.areas.is_empty() {
            let layers: std::collections::BTreeSet<AreaLayer> = map.areas.iter().map(|a| a.layer).collect();
            for l in &layers {
                sqlx::query("DELETE FROM areas WHERE layer = $1").bind(l.as_str()).execute(&mut *$tx).await?;
            }
            let rows = map.areas.iter().map(area_row).collect::<Result<Vec<_>>>()?;
            sum.areas = rows.len() as u64;
            $bulk(&mut *$tx, &AREAS, rows).await?;
            progress("areas", sum.areas);
        }

        if !map.kiosks.is_empty() {
            sqlx::query("DELETE FROM kiosks").execute(&mut *$tx).await?;
            sum.kiosks = map.kiosks.len() as u64;
            $bulk(&mut *$tx, &KIOSKS, map.kiosks.iter().map(kiosk_row).collect()).await?;
            progress("kiosks", sum.kiosks);
        }

        if !map.roads.is_empty() {
            sqlx::query("DELETE FROM roads").execute(&mut *$tx).await?;
            let rows = map.roads.iter().map(road_row).collect::<Result<Vec<_>>>()?;
            sum.roads = rows.len() as u64;
            $bulk(&mut *$tx, &ROADS, rows).await?;
            progress("roads", sum.roads);
        }

        if !map.addresses.is_empty() {
            sqlx::query("DELETE FROM addresses").execute(&mut *$tx).await?;
            let stored: Vec<(String, String)> = if map.regions.iter().any(|r| r.level() == RegionLevel::Grid) {
                Vec::new()
            } else {
                sqlx::query_as("SELECT code, geometry FROM regions WHERE level = 'grid' AND geometry IS NOT NULL")
                    .fetch_all(&mut *$tx)
                    .await?
            };
            let index = address_grids(map, stored);
            for chunk in map.addresses.chunks(CHUNK) {
                let rows = chunk
                    .iter()
                    .map(|a| address_row(a, index.as_ref().and_then(|i| i.locate(a.lon, a.lat))))
                    .collect::<Result<Vec<_>>>()?;
                sum.addresses += rows.len() as u64;
                $bulk(&mut *$tx, &ADDRESSES, rows).await?;
                progress("addresses", sum.addresses);
            }
        }

        // Components: the map's own vector first, then the iterator (a file too big to hold).
        let mut from_map = map.components.iter().map(|c| Ok::<_, String>(c.clone()));
        let mut all = from_map.by_ref().chain(components);
        if let Some(first) = all.next() {
            let first = first.map_err(StoreError::Invalid)?;
            if $sqlite {
                sqlx::query("DELETE FROM components").execute(&mut *$tx).await?;
                // Maintaining three secondary B-trees row by row, in random key order, is most
                // of the cost of a million rows; building them once from sorted keys is not.
                // DDL is transactional in SQLite: a rollback brings the indexes back.
                for (name, _) in COMPONENT_INDEXES {
                    sqlx::query(&format!("DROP INDEX IF EXISTS {name}")).execute(&mut *$tx).await?;
                }
            } else {
                sqlx::query("TRUNCATE components").execute(&mut *$tx).await?;
            }
            let mut rows = vec![component_row(&first)?];
            loop {
                let next = all.next();
                let done = next.is_none();
                if let Some(c) = next {
                    rows.push(component_row(&c.map_err(StoreError::Invalid)?)?);
                }
                if rows.len() == CHUNK || (done && !rows.is_empty()) {
                    sum.components += rows.len() as u64;
                    $bulk(&mut *$tx, &COMPONENTS, std::mem::take(&mut rows)).await?;
                    progress("components", sum.components);
                }
                if done {
                    break;
                }
            }
            if $sqlite {
                for (name, cols) in COMPONENT_INDEXES {
                    sqlx::query(&format!("CREATE INDEX {name} ON components({cols})")).execute(&mut *$tx).await?;
                }
            }
        }
        Ok::<ImportSummary, StoreError>(sum)
    }};
}

impl Store {
    /// Import a city's map in ONE transaction: every layer present replaces that layer as a
    /// whole; a layer absent (an empty vector) is left as it is.
    ///
    /// - regions: each level present (district, street, community, grid) is deleted and written
    ///   anew; a city-level feature is upserted; a missing city above the districts is created,
    ///   named by its code. Replacing a level whose stored children are not replaced too is
    ///   refused (`Invalid`). Geometry is stored as the grid Feature `grid_geometries` returns.
    /// - areas: each layer present; kiosks, roads, addresses: the whole table.
    /// - departments: upserted by code (name, credit code), then parents set by code (tier 3
    ///   under a parent, 2 without); other stored departments are kept. Users are not imported.
    /// - components: `map.components` followed by `components`; if together they yield nothing
    ///   the stored components are left alone, otherwise they are replaced.
    ///
    /// An `Err(msg)` from the iterator (a bad line in a file) rolls everything back and returns
    /// [`StoreError::Invalid`]. `progress(layer, rows_done)` is called every 10,000 rows and at
    /// the end of each layer. On SQLite the import holds the one write connection throughout:
    /// other writes wait for it.
    pub async fn import_map(
        &self,
        map: &CityMap,
        components: &mut (dyn Iterator<Item = std::result::Result<Component, String>> + Send),
        progress: &(dyn Fn(&str, u64) + Sync),
    ) -> Result<ImportSummary> {
        match &*self.inner {
            Inner::Sqlite(p) => {
                let mut conn = p.write.acquire().await?;
                let result = async {
                    // A big page cache for the length of the import: a transaction that outgrows
                    // the default 2 MB spills pages to the WAL again and again.
                    sqlx::query("PRAGMA cache_size = -262144").execute(&mut *conn).await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    let sum = import_in!(tx, sqlite_bulk, true, map, components, progress)?;
                    tx.commit().await?;
                    sqlx::query("PRAGMA cache_size = -2000").execute(&mut *conn).await?;
                    Ok(sum)
                }
                .await;
                if result.is_err() {
                    // Give the memory back on the failure path too; a failure here is moot.
                    let _ = sqlx::query("PRAGMA cache_size = -2000").execute(&mut *conn).await;
                }
                // As in `act`: after a database error the connection may be in a state sqlx
                // does not know (SQLite rolls back by itself on a full disk): never reuse it.
                if matches!(result, Err(StoreError::Db(_))) {
                    conn.close_on_drop();
                }
                result
            }
            Inner::Postgres(p) => {
                let mut conn = p.pool.acquire().await?;
                let result = async {
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    let sum = import_in!(tx, pg_bulk, false, map, components, progress)?;
                    tx.commit().await?;
                    Ok(sum)
                }
                .await;
                if matches!(result, Err(StoreError::Db(_))) {
                    conn.close_on_drop();
                }
                result
            }
        }
    }
}

/// Open case states: what the big screen shows by default.
pub const OPEN_STATES: [&str; 8] =
    ["reported", "verifying", "accepted", "filed", "dispatched", "disposed", "checked", "suspended"];

impl Store {
    // ---- reads for the in-memory indexes -------------------------------------------------------

    /// Every responsibility area, by layer and code.
    pub async fn all_areas(&self) -> Result<Vec<Area>> {
        let sql = "SELECT layer, code, name, owner, geometry FROM areas ORDER BY layer, code";
        let rows: Vec<AreaSqlRow> = both!(self, |_w, r, _f| { sqlx::query_as(sql).fetch_all(r).await? });
        rows.into_iter().map(area_from_row).collect()
    }

    /// Every kiosk, by code.
    pub async fn all_kiosks(&self) -> Result<Vec<Kiosk>> {
        let sql = "SELECT code, name, patrol_district, lon, lat FROM kiosks ORDER BY code";
        let rows: Vec<(String, String, String, f64, f64)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).fetch_all(r).await? });
        Ok(rows
            .into_iter()
            .map(|(code, name, patrol_district, lon, lat)| Kiosk { code, name, patrol_district, lon, lat })
            .collect())
    }

    /// Every road, by code.
    pub async fn all_roads(&self) -> Result<Vec<Road>> {
        let sql = "SELECT code, name, aliases, district, geometry FROM roads ORDER BY code";
        let rows: Vec<RoadSqlRow> = both!(self, |_w, r, _f| { sqlx::query_as(sql).fetch_all(r).await? });
        rows.into_iter().map(road_from_row).collect()
    }

    /// The whole address database, by code (for the geocoder's in-memory index).
    pub async fn all_addresses(&self) -> Result<Vec<Address>> {
        let sql = format!("SELECT {ADDRESS_COLS} FROM addresses ORDER BY code");
        let rows: Vec<AddressSqlRow> = both!(self, |_w, r, _f| { sqlx::query_as(&sql).fetch_all(r).await? });
        rows.into_iter().map(address_from_row).collect()
    }

    /// Every component as a point, by id: what the server's component R-tree is built from.
    pub async fn component_points(&self) -> Result<Vec<citygrid_geo::points::ComponentPoint>> {
        let sql = "SELECT id, class_code, state, lon, lat FROM components ORDER BY id";
        let rows: Vec<(String, String, String, f64, f64)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).fetch_all(r).await? });
        rows.into_iter()
            .map(|(id, class, state, lon, lat)| {
                Ok(citygrid_geo::points::ComponentPoint {
                    id: id.parse().map_err(|_| corrupt(&id))?,
                    class: class.parse().map_err(|_| corrupt(&class))?,
                    state: ComponentState::parse(&state).ok_or_else(|| corrupt(&state))?,
                    lon,
                    lat,
                })
            })
            .collect()
    }

    // ---- components ---------------------------------------------------------------------------

    pub async fn get_component(&self, id: &ComponentId) -> Result<Option<Component>> {
        let sql = format!("SELECT {COMPONENT_COLS} FROM components WHERE id = $1");
        let row: Option<ComponentSqlRow> =
            both!(self, |_w, r, _f| { sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(r).await? });
        row.map(component_from_row).transpose()
    }

    /// The components among `ids` that exist, by id (unknown ids are skipped).
    pub async fn components_by_ids(&self, ids: &[String]) -> Result<Vec<Component>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let rows: Vec<ComponentSqlRow> = both!(self, |_w, r, _f| {
                let mut q = sqlx::QueryBuilder::new(format!("SELECT {COMPONENT_COLS} FROM components WHERE id IN ("));
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(id.clone());
                }
                q.push(")");
                q.build_query_as().fetch_all(r).await?
            });
            for row in rows {
                out.push(component_from_row(row)?);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Components matching the filter, by id, `limit` per page (1..=1000), after the id `after`.
    pub async fn list_components(
        &self,
        f: &ComponentFilter,
        after: Option<String>,
        limit: u32,
    ) -> Result<MapPage<Component>> {
        let limit = limit.clamp(1, 1000) as i64;
        let sqlite = self.backend() == "sqlite";
        let rows: Vec<ComponentSqlRow> = both!(self, |_w, r, _f| {
            let mut q = sqlx::QueryBuilder::new(format!("SELECT {COMPONENT_COLS} FROM components WHERE 1 = 1"));
            if let Some(b) = f.bbox {
                push_point_in_box(&mut q, b, sqlite);
            }
            if let Some(c) = &f.class {
                q.push(" AND class_code = ").push_bind(c.clone());
            }
            if let Some(s) = f.state {
                q.push(" AND state = ").push_bind(s.as_str());
            }
            if let Some(g) = &f.grid {
                if g.level() == RegionLevel::Grid {
                    q.push(" AND grid_code = ").push_bind(g.as_str().to_owned());
                } else {
                    q.push(" AND grid_code LIKE ").push_bind(format!("{}%", region_prefix(g)));
                }
            }
            if let Some(a) = &after {
                q.push(" AND id > ").push_bind(a.clone());
            }
            q.push(" ORDER BY id LIMIT ").push_bind(limit + 1);
            q.build_query_as().fetch_all(r).await?
        });
        let mut items = rows.into_iter().map(component_from_row).collect::<Result<Vec<_>>>()?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|c| c.id.as_str().to_owned())
        } else {
            None
        };
        Ok(MapPage { items, next })
    }

    // ---- addresses ----------------------------------------------------------------------------

    /// Addresses in the box and of the kind (both optional), by code, after the code `after`.
    pub async fn list_addresses(
        &self,
        bbox: Option<(f64, f64, f64, f64)>,
        kind: Option<AddressKind>,
        after: Option<String>,
        limit: u32,
    ) -> Result<MapPage<Address>> {
        let limit = limit.clamp(1, 1000) as i64;
        let sqlite = self.backend() == "sqlite";
        let rows: Vec<AddressSqlRow> = both!(self, |_w, r, _f| {
            let mut q = sqlx::QueryBuilder::new(format!("SELECT {ADDRESS_COLS} FROM addresses WHERE 1 = 1"));
            if let Some(b) = bbox {
                push_point_in_box(&mut q, b, sqlite);
            }
            if let Some(k) = kind {
                q.push(" AND kind = ").push_bind(k.as_str());
            }
            if let Some(a) = &after {
                q.push(" AND code > ").push_bind(a.clone());
            }
            q.push(" ORDER BY code LIMIT ").push_bind(limit + 1);
            q.build_query_as().fetch_all(r).await?
        });
        let mut items = rows.into_iter().map(address_from_row).collect::<Result<Vec<_>>>()?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|a| a.code.clone())
        } else {
            None
        };
        Ok(MapPage { items, next })
    }

    // ---- view queries ---------------------------------------------------------------------------

    /// Regions of `level` whose box meets `bbox`, by code, at most `limit`, with their stored
    /// geometry text (a GeoJSON Feature for imported regions; none for regions without shape).
    pub async fn regions_in_bbox(
        &self,
        level: RegionLevel,
        bbox: (f64, f64, f64, f64),
        limit: u32,
    ) -> Result<Vec<(Region, Option<String>)>> {
        let sql = "SELECT code, name, level, parent, area_class, geometry FROM regions WHERE level = $1 \
                   AND min_lon <= $2 AND max_lon >= $3 AND min_lat <= $4 AND max_lat >= $5 ORDER BY code LIMIT $6";
        let (x0, y0, x1, y1) = bbox;
        let rows: Vec<RegionSqlRow> = both!(self, |_w, r, _f| {
            sqlx::query_as(sql)
                .bind(level.as_str())
                .bind(x1)
                .bind(x0)
                .bind(y1)
                .bind(y0)
                .bind(i64::from(limit))
                .fetch_all(r)
                .await?
        });
        rows.into_iter().map(|(c, n, l, p, a, g)| Ok((region_from_row(c, n, l, p, a)?, g))).collect()
    }

    /// Areas of one layer whose box meets `bbox`, by code.
    pub async fn areas_in_bbox(&self, layer: AreaLayer, bbox: (f64, f64, f64, f64)) -> Result<Vec<Area>> {
        let sql = "SELECT layer, code, name, owner, geometry FROM areas WHERE layer = $1 \
                   AND min_lon <= $2 AND max_lon >= $3 AND min_lat <= $4 AND max_lat >= $5 ORDER BY code";
        let (x0, y0, x1, y1) = bbox;
        let rows: Vec<AreaSqlRow> = both!(self, |_w, r, _f| {
            sqlx::query_as(sql).bind(layer.as_str()).bind(x1).bind(x0).bind(y1).bind(y0).fetch_all(r).await?
        });
        rows.into_iter().map(area_from_row).collect()
    }

    /// Roads whose box meets `bbox`, by code, at most `limit`.
    pub async fn roads_in_bbox(&self, bbox: (f64, f64, f64, f64), limit: u32) -> Result<Vec<Road>> {
        let sql = "SELECT code, name, aliases, district, geometry FROM roads \
                   WHERE min_lon <= $1 AND max_lon >= $2 AND min_lat <= $3 AND max_lat >= $4 ORDER BY code LIMIT $5";
        let (x0, y0, x1, y1) = bbox;
        let rows: Vec<RoadSqlRow> = both!(self, |_w, r, _f| {
            sqlx::query_as(sql).bind(x1).bind(x0).bind(y1).bind(y0).bind(i64::from(limit)).fetch_all(r).await?
        });
        rows.into_iter().map(road_from_row).collect()
    }

    /// Rows per map layer: `districts`, `streets`, `communities`, `grids`, each area layer,
    /// `kiosks`, `roads`, `addresses`, `components` (zeros included).
    pub async fn map_counts(&self) -> Result<Vec<(String, i64)>> {
        let sql = "SELECT 'level:' || level, COUNT(*) FROM regions GROUP BY level \
                   UNION ALL SELECT 'area:' || layer, COUNT(*) FROM areas GROUP BY layer \
                   UNION ALL SELECT 'kiosks', COUNT(*) FROM kiosks \
                   UNION ALL SELECT 'roads', COUNT(*) FROM roads \
                   UNION ALL SELECT 'addresses', COUNT(*) FROM addresses \
                   UNION ALL SELECT 'components', COUNT(*) FROM components";
        let rows: Vec<(String, i64)> = both!(self, |_w, r, _f| { sqlx::query_as(sql).fetch_all(r).await? });
        let got: HashMap<String, i64> = rows.into_iter().collect();
        let mut out = Vec::new();
        for (name, key) in [
            ("districts", "level:district"),
            ("streets", "level:street"),
            ("communities", "level:community"),
            ("grids", "level:grid"),
        ] {
            out.push((name.to_owned(), got.get(key).copied().unwrap_or(0)));
        }
        for l in AreaLayer::ALL {
            out.push((l.as_str().to_owned(), got.get(&format!("area:{}", l.as_str())).copied().unwrap_or(0)));
        }
        for name in ["kiosks", "roads", "addresses", "components"] {
            out.push((name.to_owned(), got.get(name).copied().unwrap_or(0)));
        }
        Ok(out)
    }

    // ---- cases on the map -----------------------------------------------------------------------

    /// The cases visible to the reader that match the filter, as markers, newest first, at most
    /// `limit` (1..=10,000). The same visibility and filters as [`Store::list_cases`]; read
    /// from columns only.
    ///
    /// Query plans, measured on 5,000,000 bench cases (`bench_fill_cases`, 15 % open), a
    /// quarter-city box, the eight open states, one class, limit 2,000:
    /// - SQLite: `SEARCH cases USING COVERING INDEX cases_map (state=? AND class_code=? AND
    ///   lon>? AND lon<?)` + a temp B-tree for `ORDER BY id DESC`: one seek per state, the
    ///   latitude and the visibility tested on the index entry, no row read (migration 0004
    ///   made the index covering). 23-45 ms for All / Region / Departments, max of 30 runs;
    ///   ~50-60 ms when it still read the rows. Without a class the seek covers every open case
    ///   of the state in the longitude band: ~200 ms (Departments: ~1 s), the known slow case.
    /// - PostgreSQL: the same B-tree (`INCLUDE` the marker columns) for state + class; without
    ///   states the box goes to the GiST index on `point(lon, lat)`.
    pub async fn case_markers(&self, vis: &Visibility, f: &CaseFilter, limit: usize) -> Result<Vec<CaseMarker>> {
        let limit = limit.clamp(1, 10_000) as i64;
        let sqlite = self.backend() == "sqlite";
        // With a state filter the box is tested on the columns, not through the R*Tree: the
        // index cases_map (state, class_code, lon, lat) then seeks each state (and class) and
        // scans the longitude range, testing the latitude on the index entry. The R*Tree would
        // first enumerate every case ever reported in the box, closed ones included.
        let mut f = f.clone();
        let column_box = if sqlite && !f.states.is_empty() { f.bbox.take() } else { None };
        // SQLite hands each result row from its worker thread to the async side one at a time:
        // for 2,000 markers that cost more than the query (4-5 ms in SQLite, 30-45 ms in all).
        // There the rows come back as one JSON text, built in SQL. SQLite's printf stops at 16
        // significant digits: a marker's position may differ from the stored double by 1e-13°
        // (a nanometre), which a map cannot show.
        let (head, tail) = if sqlite {
            (
                "SELECT '[' || group_concat('[' || id || ',' || json_quote(number) || ',' || json_quote(state) || ',' \
                 || json_quote(kind) || ',' || json_quote(class_code) || ',' || json_quote(urgency) || ',' \
                 || printf('%.17g', lon) || ',' || printf('%.17g', lat) || ',' || ifnull(deadline, 'null') || ',' \
                 || json_quote(grid_code) || ']', ',' ORDER BY id DESC) || ']' FROM (",
                ")",
            )
        } else {
            ("", "")
        };
        let text: Option<String> = if sqlite {
            both!(self, |_w, r, _f| {
                let mut q = sqlx::QueryBuilder::new(head);
                q.push(
                    "SELECT id, number, state, kind, class_code, urgency, lon, lat, deadline, grid_code FROM cases \
                     WHERE lon IS NOT NULL AND lat IS NOT NULL",
                );
                push_case_filters!(q, vis, &f, sqlite);
                push_cell_box(&mut q, column_box);
                q.push(" ORDER BY id DESC LIMIT ").push_bind(limit).push(tail);
                q.build_query_scalar().fetch_one(r).await?
            })
        } else {
            None
        };
        if let Some(text) = text {
            let rows: Vec<MarkerSqlRow> = serde_json::from_str(&text).map_err(corrupt)?;
            return rows.into_iter().map(marker_from_row).collect();
        }
        if sqlite {
            return Ok(Vec::new());
        }
        let rows: Vec<MarkerSqlRow> = both!(self, |_w, r, _f| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT id, number, state, kind, class_code, urgency, lon, lat, deadline, grid_code FROM cases \
                 WHERE lon IS NOT NULL AND lat IS NOT NULL",
            );
            push_case_filters!(q, vis, &f, sqlite);
            push_cell_box(&mut q, column_box);
            q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            q.build_query_as().fetch_all(r).await?
        });
        rows.into_iter().map(marker_from_row).collect()
    }
}

/// `AND` the point lies in the box, through the map cells it covers (see `map_cells`) and the
/// exact coordinates.
fn push_cell_box<DB>(q: &mut sqlx::QueryBuilder<'_, DB>, column_box: Option<(f64, f64, f64, f64)>)
where
    DB: sqlx::Database,
    f64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let Some((x0, y0, x1, y1)) = column_box else { return };
    if let Some(cells) = map_cells((x0, y0, x1, y1), 400) {
        q.push(" AND cell IN (");
        let mut sep = q.separated(", ");
        for c in cells {
            sep.push_bind(c);
        }
        q.push(")");
    }
    push_point_in_box(q, (x0, y0, x1, y1), true);
}

/// The region code prefix that the grid codes inside it start with (a city: its first 4 digits).
fn region_prefix(code: &RegionCode) -> &str {
    if code.level() == RegionLevel::City {
        &code.as_str()[..4]
    } else {
        code.as_str()
    }
}

/// `AND` the point (lon, lat) lies in the box, edges included: a B-tree range on SQLite (index
/// (lon, lat)), the GiST point index on PostgreSQL.
pub(crate) fn push_point_in_box<DB>(
    q: &mut sqlx::QueryBuilder<'_, DB>,
    (x0, y0, x1, y1): (f64, f64, f64, f64),
    sqlite: bool,
) where
    DB: sqlx::Database,
    f64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    if !sqlite {
        q.push(" AND point(lon, lat) <@ box(point(")
            .push_bind(x0)
            .push(", ")
            .push_bind(y0)
            .push("), point(")
            .push_bind(x1)
            .push(", ")
            .push_bind(y1)
            .push("))");
    }
    q.push(" AND lon >= ")
        .push_bind(x0)
        .push(" AND lon <= ")
        .push_bind(x1)
        .push(" AND lat >= ")
        .push_bind(y0)
        .push(" AND lat <= ")
        .push_bind(y1);
}

// ---- bench data -------------------------------------------------------------------------------

/// splitmix64: a small deterministic generator, so that a seed gives the same bench database.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const CASES: Table = Table {
    name: "cases",
    cols: &[
        "id",
        "number",
        "state",
        "source",
        "kind",
        "class_code",
        "urgency",
        "grid_code",
        "community_code",
        "street_code",
        "district_code",
        "department_id",
        "reporter_id",
        "deadline",
        "case_deadline",
        "urged",
        "created_at",
        "updated_at",
        "version",
        "lon",
        "lat",
        "cell",
        "due_at",
        "data",
    ],
};

/// The map cell of a point: 0.01° × 0.01° (about 1 km), the key between class and longitude in
/// the `cases_map` index (migration 0007 computes the same in SQL).
pub(crate) fn map_cell(lon: f64, lat: f64) -> i64 {
    ((lon + 180.0) * 100.0).floor() as i64 * 100_000 + ((lat + 90.0) * 100.0).floor() as i64
}

/// The cells a box covers, or `None` past `max` cells (a whole-city view: scanning the
/// longitude strip is then as good).
fn map_cells((x0, y0, x1, y1): (f64, f64, f64, f64), max: usize) -> Option<Vec<i64>> {
    let (cx0, cx1) = (((x0 + 180.0) * 100.0).floor() as i64, ((x1 + 180.0) * 100.0).floor() as i64);
    let (cy0, cy1) = (((y0 + 90.0) * 100.0).floor() as i64, ((y1 + 90.0) * 100.0).floor() as i64);
    let count = (cx1 - cx0 + 1).checked_mul(cy1 - cy0 + 1)?;
    if count <= 0 || count as usize > max {
        return None;
    }
    Some((cx0..=cx1).flat_map(|cx| (cy0..=cy1).map(move |cy| cx * 100_000 + cy)).collect())
}

/// States of bench cases with their weight in thousandths: mostly closed, as in a city's history.
const BENCH_STATES: [(State, u64); 12] = [
    (State::Closed, 850),
    (State::Voided, 25),
    (State::Rejected, 10),
    (State::Refused, 5),
    (State::Reported, 10),
    (State::Verifying, 5),
    (State::Accepted, 10),
    (State::Filed, 10),
    (State::Dispatched, 45),
    (State::Disposed, 15),
    (State::Checked, 5),
    (State::Suspended, 10),
];

/// Classes cases are filed under most: garbage, manhole covers, and so on.
const HOT_CLASSES: [&str; 6] = ["06010", "01001", "03012", "07001", "06001", "01004"];

impl Store {
    /// Insert `n` synthetic historical cases for `citygrid bench read`, fast: multi-row inserts
    /// (COPY on PostgreSQL) in transactions of 100,000 rows, bypassing the domain.
    ///
    /// The cases are well-formed rows whose `data` deserializes as a [`Case`] (so `list_cases`
    /// returns them): positions drawn from `points` (lon, lat, grid code), mostly closed, classes
    /// from the national catalogue (weighted to a few common ones), created over the two years
    /// before now, department 1..=10 once dispatched. They have no events: a bench database is
    /// for benchmarks only, `citygrid audit` does not apply to it. Numbers are the local day plus
    /// the 7-digit id, so they never meet the numbers of real reports (day + 5 digits).
    pub async fn bench_fill_cases(
        &self,
        n: u64,
        seed: u64,
        points: &[(f64, f64, String)],
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        if points.is_empty() {
            return Err(StoreError::Invalid("bench cases need at least one point".into()));
        }
        let grids = points
            .iter()
            .map(|(_, _, g)| RegionCode::parse_grid(g).map_err(|e| StoreError::Invalid(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let catalogue = citygrid_core::catalogue::national();
        let hot: Vec<&citygrid_core::catalogue::ClassInfo> =
            HOT_CLASSES.iter().filter_map(|c| catalogue.iter().find(|i| i.code.as_str() == *c)).collect();
        if catalogue.is_empty() {
            return Err(corrupt("the national catalogue is empty"));
        }
        let first_id: i64 = both!(self, |_w, r, _f| {
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM cases").fetch_one(r).await?
        })
        .unwrap_or(0)
            + 1;
        let now = Timestamp::now().as_millisecond();
        const DAY: i64 = 86_400_000;
        const HOUR: i64 = 3_600_000;
        let template = Case {
            id: 0,
            number: String::new(),
            source: Source::Collector,
            kind: Kind::Event,
            class_code: ClassCode::parse("06010").map_err(corrupt)?,
            urgency: Urgency::Ordinary,
            description: "bench".into(),
            address: None,
            location: Point { lon: 0.0, lat: 0.0 },
            grid_code: grids[0].clone(),
            community_code: grids[0].clone(),
            street_code: grids[0].clone(),
            district_code: grids[0].clone(),
            area_class: AreaClass::A,
            photo_ids: Vec::new(),
            reporter_id: None,
            component_id: None,
            state: State::Reported,
            department_id: None,
            disposal_limit: None,
            stage_started_at: Timestamp::UNIX_EPOCH,
            deadline: None,
            case_deadline: None,
            pending: None,
            suspended_at: None,
            verified: None,
            duplicate_of: None,
            end_reason: None,
            filed_by: None,
            dispatched_by: None,
            filed_at: None,
            dispatched_at: None,
            rework_of: None,
            due_at: None,
            due_department_id: None,
            dispatch_count: 0,
            return_count: 0,
            rework_count: 0,
            extension_count: 0,
            urged: false,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            closed_at: None,
            version: 1,
        };
        let ts = |v: i64| Timestamp::from_millisecond(v).map_err(corrupt);
        let mut rng = Rng(seed);
        let sqlite = self.backend() == "sqlite";
        // SQLite: keeping eight B-trees and the R*Tree in step row by row, in random key order,
        // is what makes millions of rows slow. A big fill takes the indexes and the R*Tree
        // trigger off, inserts, and builds them once at the end (a bench database only: if the
        // fill is interrupted, the database is left without them).
        let mut saved: Vec<String> = Vec::new();
        if sqlite && n >= 100_000 {
            saved = both!(self, |w, _r, _f| {
                sqlx::query_scalar(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = 'cases' AND sql IS NOT NULL \
                     AND (type = 'index' OR (type = 'trigger' AND name = 'cases_rtree_insert'))",
                )
                .fetch_all(w)
                .await?
            });
            both!(self, |w, _r, _f| {
                let names: Vec<(String, String)> = sqlx::query_as(
                    "SELECT type, name FROM sqlite_master WHERE tbl_name = 'cases' AND sql IS NOT NULL \
                     AND (type = 'index' OR (type = 'trigger' AND name = 'cases_rtree_insert'))",
                )
                .fetch_all(w)
                .await?;
                for (kind, name) in names {
                    sqlx::query(&format!("DROP {} {name}", kind.to_uppercase())).execute(w).await?;
                }
                sqlx::query("PRAGMA cache_size = -262144").execute(w).await?;
            });
        }
        const TX_ROWS: u64 = 100_000;
        let mut done = 0u64;
        while done < n {
            let batch = (n - done).min(TX_ROWS);
            let mut rows = Vec::with_capacity(batch as usize);
            for k in 0..batch {
                let id = first_id + (done + k) as i64;
                let p = rng.below(points.len() as u64) as usize;
                let (lon, lat, _) = &points[p];
                let grid = &grids[p];
                let class = if rng.below(2) == 0 && !hot.is_empty() {
                    hot[rng.below(hot.len() as u64) as usize]
                } else {
                    &catalogue[rng.below(catalogue.len() as u64) as usize]
                };
                let mut pick = rng.below(1000);
                let mut state = State::Closed;
                for (s, w) in BENCH_STATES {
                    if pick < w {
                        state = s;
                        break;
                    }
                    pick -= w;
                }
                let created = now - 730 * DAY + rng.below(730 * DAY as u64) as i64;
                let with_dept = matches!(
                    state,
                    State::Dispatched | State::Disposed | State::Checked | State::Suspended | State::Closed
                );
                let open = !state.is_final() && state != State::Suspended;
                let updated = created + HOUR + rng.below(10 * DAY as u64) as i64;
                let deadline = open.then(|| created + rng.below(20 * DAY as u64) as i64);
                let source = if rng.below(5) == 0 { Source::Citizen } else { Source::Collector };
                let urgency = match rng.below(20) {
                    0 => Urgency::Urgent,
                    1 | 2 => Urgency::Important,
                    _ => Urgency::Ordinary,
                };
                let day = jiff::tz::offset(8).to_datetime(ts(created)?);
                let case = Case {
                    id,
                    number: format!("{:04}{:02}{:02}{:07}", day.year(), day.month(), day.day(), id % 10_000_000),
                    source,
                    kind: class.kind,
                    class_code: class.code.clone(),
                    urgency,
                    location: Point { lon: *lon, lat: *lat },
                    grid_code: grid.clone(),
                    community_code: grid.at_level(RegionLevel::Community).unwrap_or_else(|| grid.clone()),
                    street_code: grid.at_level(RegionLevel::Street).unwrap_or_else(|| grid.clone()),
                    district_code: grid.at_level(RegionLevel::District).unwrap_or_else(|| grid.clone()),
                    reporter_id: Some(1 + rng.below(50) as i64),
                    state,
                    department_id: with_dept.then(|| 1 + rng.below(10) as i64),
                    stage_started_at: ts(updated)?,
                    deadline: deadline.map(ts).transpose()?,
                    case_deadline: Some(ts(created + 10 * DAY)?),
                    due_at: Some(ts(created + 10 * DAY)?),
                    urged: rng.below(50) == 0,
                    created_at: ts(created)?,
                    updated_at: ts(updated)?,
                    closed_at: (state == State::Closed).then(|| ts(updated)).transpose()?,
                    version: if state == State::Closed { 7 } else { 1 + rng.below(5) as u32 },
                    dispatch_count: u32::from(with_dept),
                    ..template.clone()
                };
                rows.push(vec![
                    V::I(id),
                    V::T(case.number.clone()),
                    state.as_str().into(),
                    source.as_str().into(),
                    class.kind.as_str().into(),
                    class.code.as_str().into(),
                    urgency.as_str().into(),
                    grid.as_str().into(),
                    case.community_code.as_str().into(),
                    case.street_code.as_str().into(),
                    case.district_code.as_str().into(),
                    case.department_id.into(),
                    case.reporter_id.into(),
                    deadline.into(),
                    V::I(created + 10 * DAY),
                    V::I(i64::from(case.urged)),
                    V::I(created),
                    V::I(updated),
                    V::I(i64::from(case.version)),
                    V::F(*lon),
                    V::F(*lat),
                    V::I(map_cell(*lon, *lat)),
                    V::I(created + 10 * DAY),
                    V::T(crate::json(&case)?),
                ]);
            }
            match &*self.inner {
                Inner::Sqlite(p) => {
                    let mut conn = p.write.acquire().await?;
                    let r = async {
                        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                        sqlite_bulk(&mut tx, &CASES, rows).await?;
                        tx.commit().await?;
                        Ok::<(), StoreError>(())
                    }
                    .await;
                    if r.is_err() {
                        conn.close_on_drop();
                    }
                    r?;
                }
                Inner::Postgres(p) => {
                    let mut tx = p.pool.begin().await?;
                    pg_bulk(&mut tx, &CASES, rows).await?;
                    tx.commit().await?;
                }
            }
            done += batch;
            progress(done);
        }
        if !saved.is_empty() {
            both!(self, |w, _r, _f| {
                sqlx::query(
                    "INSERT INTO cases_rtree (id, min_lon, max_lon, min_lat, max_lat) \
                     SELECT id, lon, lon, lat, lat FROM cases WHERE id >= $1 AND lon IS NOT NULL",
                )
                .bind(first_id)
                .execute(w)
                .await?;
                for sql in &saved {
                    sqlx::query(sql).execute(w).await?;
                }
                sqlx::query("PRAGMA cache_size = -2000").execute(w).await?;
            });
        }
        if !sqlite {
            // Ids were given explicitly: move the identity on past them.
            both!(self, |w, _r, _f| {
                sqlx::query("SELECT setval(pg_get_serial_sequence('cases', 'id'), (SELECT MAX(id) FROM cases))")
                    .execute(w)
                    .await?;
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cover_the_box() {
        assert_eq!(map_cell(117.18, 34.26), 29718 * 100_000 + 12426);
        let b = (117.155, 34.241, 117.187, 34.268);
        let cells = map_cells(b, 400).unwrap();
        assert_eq!(cells.len(), 4 * 3);
        // Every point of the box, corners included, falls in a listed cell.
        for i in 0..=20 {
            for j in 0..=20 {
                let (x, y) = (b.0 + (b.2 - b.0) * f64::from(i) / 20.0, b.1 + (b.3 - b.1) * f64::from(j) / 20.0);
                assert!(cells.contains(&map_cell(x, y)), "({x}, {y})");
            }
        }
        assert!(map_cells((117.0, 34.0, 117.5, 34.5), 400).is_none(), "51 × 51 cells is a whole-city view");
    }
}
