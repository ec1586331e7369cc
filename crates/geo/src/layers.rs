//! The map layers of a city, as plain data: the administrative regions down to unit grids,
//! components (部件), responsibility areas, kiosks (岗亭), roads and addresses (地址库).
//!
//! These are what the importers produce (GeoJSON, Shapefile, CSV), what the store persists, what
//! the indexes are built from and what `citygrid generate-city` writes. All positions are WGS-84
//! longitude/latitude degrees; conversion from a file's own system happens when it is read.
//!
//! # The city directory
//! A city is delivered (and generated) as one directory of files, one per layer; every file is
//! optional, and `citygrid import city DIR` reads whichever are present, all in one transaction:
//!
//! | file | geometry | properties / columns |
//! |---|---|---|
//! | `districts.geojson`, `streets.geojson`, `communities.geojson`, `grids.geojson` | (Multi)Polygon | `code`, `name`, `area_class` (A/B/C, optional) |
//! | `patrol_districts.geojson`, `collector_areas.geojson`, `contractor_areas.geojson`, `jurisdictions.geojson` | (Multi)Polygon | `code`, `name`, `owner` |
//! | `kiosks.geojson` | Point | `code`, `name`, `patrol_district` |
//! | `roads.geojson` | (Multi)LineString | `code`, `name`, `aliases` (`|`-separated), `district` |
//! | `departments.csv` | — | `code,name,parent,credit_code` |
//! | `users.csv` | — | `username,display_name,role,scope` |
//! | `components.csv` | `lon,lat` or `wkt` | `id,class_code,name,dept_credit_code,dept_name,grid_code,state,start_date,owner,maintainer,change_date,data_source,note,lon,lat,wkt` |
//! | `addresses.csv` | `lon,lat` | `code,kind,name,aliases,district,road,number,lon,lat` |
//!
//! Shapefiles (`.shp` + `.dbf`) may replace any `.geojson` of the same stem, with the same
//! attribute names.

use citygrid_core::codes::{AreaClass, ClassCode, RegionCode, RegionLevel};
use citygrid_core::component::{ComponentId, ComponentState, CreditCode};
use geo::{Geometry, MultiPolygon};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A district, street, community or unit grid with its boundary. The level follows from the
/// code's length; the parent is the code's prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionFeature {
    pub code: RegionCode,
    pub name: String,
    pub area_class: AreaClass,
    pub polygon: MultiPolygon<f64>,
}

impl RegionFeature {
    pub fn level(&self) -> RegionLevel {
        self.code.level()
    }
}

/// The kinds of responsibility area (责任区): each layer tiles (part of) the city with polygons,
/// each owned by someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AreaLayer {
    /// 巡查片区: the patrol districts of the city's law enforcement; owner = the squad's code.
    PatrolDistrict,
    /// 监督员责任区: which collector covers which grids; owner = the collector's username.
    CollectorArea,
    /// 保洁责任区: a cleaning contractor's area; owner = the contractor's name.
    ContractorArea,
    /// 部门管辖区: a department's jurisdiction; owner = the department's code.
    Jurisdiction,
}

impl AreaLayer {
    pub const ALL: [AreaLayer; 4] =
        [AreaLayer::PatrolDistrict, AreaLayer::CollectorArea, AreaLayer::ContractorArea, AreaLayer::Jurisdiction];

    /// The layer's name in URLs, the database and file stems (`patrol_districts.geojson`).
    pub fn as_str(self) -> &'static str {
        match self {
            AreaLayer::PatrolDistrict => "patrol_districts",
            AreaLayer::CollectorArea => "collector_areas",
            AreaLayer::ContractorArea => "contractor_areas",
            AreaLayer::Jurisdiction => "jurisdictions",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// One responsibility area.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    pub layer: AreaLayer,
    /// Unique within the layer, e.g. `PD01` for a patrol district.
    pub code: String,
    pub name: String,
    /// Who answers for it (see [`AreaLayer`] for what the owner names per layer).
    pub owner: String,
    pub polygon: MultiPolygon<f64>,
}

/// A kiosk (岗亭) of the law enforcement, a fixed post in a patrol district.
#[derive(Debug, Clone, PartialEq)]
pub struct Kiosk {
    pub code: String,
    pub name: String,
    pub patrol_district: String,
    pub lon: f64,
    pub lat: f64,
}

/// One city component in the census (部件普查), with the attributes GB/T 47678.5 makes mandatory
/// and the optional ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub id: ComponentId,
    /// The id it had under GB/T 30428.2 (16 digits), when imported from one.
    pub legacy_id: Option<String>,
    pub name: String,
    /// Competent department (主管部门): credit code and name.
    pub dept_credit_code: CreditCode,
    pub dept_name: String,
    pub grid_code: RegionCode,
    pub state: ComponentState,
    pub start_date: jiff::civil::Date,
    pub owner: Option<String>,
    pub maintainer: Option<String>,
    pub change_date: Option<jiff::civil::Date>,
    pub data_source: Option<String>,
    pub note: Option<String>,
    /// A point for most components; a line (a pipe, a fence) or an area (a lawn) for some.
    pub geometry: Geometry<f64>,
}

impl Component {
    pub fn class_code(&self) -> ClassCode {
        self.id.class_code()
    }
}

/// The kinds of location in the address database (GB/T 30428.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// 街巷: a road, street or lane (its geometry is in `roads.geojson`; the address row is a
    /// representative point).
    Road,
    /// 门楼牌: a door or building number on a road.
    Door,
    /// 兴趣点: a named place (a school, a hospital, a residential compound).
    Poi,
}

impl AddressKind {
    pub const ALL: [AddressKind; 3] = [AddressKind::Road, AddressKind::Door, AddressKind::Poi];
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Road => "road",
            AddressKind::Door => "door",
            AddressKind::Poi => "poi",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry of the address database.
#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    /// Unique; embeds the district code (e.g. `320311-D-000123`).
    pub code: String,
    pub kind: AddressKind,
    /// The name as written on the plate: `淮海东路`, `淮海东路18号`, `徐州市第一中学`.
    pub name: String,
    /// Other names people use (old names, short names).
    pub aliases: Vec<String>,
    pub district: RegionCode,
    /// The road a door number is on (its name), if any.
    pub road: Option<String>,
    /// The number on the road, e.g. `18号`, `18-2号`.
    pub number: Option<String>,
    pub lon: f64,
    pub lat: f64,
}

/// A road's centre line, for the map and for reverse geocoding to "near X road".
#[derive(Debug, Clone, PartialEq)]
pub struct Road {
    pub code: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub district: RegionCode,
    pub line: geo::MultiLineString<f64>,
}

/// A department of the city with its credit code, as delivered in `departments.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartmentRow {
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
    pub credit_code: Option<CreditCode>,
}

/// A user account delivered with the city (collectors, mostly), from `users.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub username: String,
    pub display_name: String,
    /// `collector`, `handler`, … as in `citygrid user add`.
    pub role: String,
    /// `region:CODE`, `department:CODE` or `own`.
    pub scope: String,
}

/// A whole city's map, every layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CityMap {
    pub regions: Vec<RegionFeature>,
    pub areas: Vec<Area>,
    pub kiosks: Vec<Kiosk>,
    pub roads: Vec<Road>,
    pub addresses: Vec<Address>,
    pub components: Vec<Component>,
    pub departments: Vec<DepartmentRow>,
    pub users: Vec<UserRow>,
}
