//! citygrid-geo: where things are.
//!
//! - [`coord`]: the coordinate systems in use in China (WGS-84/CGCS2000, GCJ-02, BD-09) and
//!   conversion between them, so positions from consumer maps can be stored as WGS-84;
//! - [`grid`]: unit grids (单元网格) as polygons and [`grid::GridIndex`], the R-tree that answers
//!   "which unit grid is this point in?" for every report that arrives;
//! - [`geojson`]: reading and writing unit grids as GeoJSON, the format map clients and GIS
//!   tools exchange;
//! - [`demo`]: a small deterministic demo city (part of Xuzhou, 100 unit grids) for tests,
//!   demos and first runs.
//!
//! All geometry is in WGS-84 longitude/latitude degrees: the small areas involved (a unit grid
//! is about 100 m across) make planar computations on degrees accurate enough for containment.

pub mod area;
pub mod citydir;
pub mod coord;
pub mod demo;
pub mod generate;
pub mod geocode;
pub mod geojson;
pub mod grid;
pub mod layers;
pub mod mvt;
pub mod points;
pub mod validate;

pub use coord::CoordSys;
pub use grid::{GridIndex, GridPolygon};

use citygrid_core::codes::RegionCode;

/// Why grid data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeoError {
    /// Unit grids are keyed by their 15-digit code; a street or community code is not enough.
    #[error("{code:?} is not a 15-digit unit grid code")]
    NotAGridCode { code: String },
    /// A unit grid code must identify exactly one polygon.
    #[error("unit grid {code} appears more than once")]
    DuplicateGrid { code: RegionCode },
    #[error("unit grid {code} has no polygon")]
    EmptyPolygon { code: RegionCode },
    /// Self-intersections, unclosed or degenerate rings, holes outside the shell, zero area.
    #[error("unit grid {code} has an invalid polygon: {reason}")]
    InvalidPolygon { code: RegionCode, reason: String },
    /// Usually projected coordinates (metres) or swapped axes instead of WGS-84 degrees.
    #[error("unit grid {code} has coordinates outside -180..180 / -90..90 (expected WGS-84 degrees)")]
    OutOfRange { code: RegionCode },
    /// The GeoJSON text could not be read as unit grids.
    #[error("invalid GeoJSON: {0}")]
    GeoJson(String),
}
