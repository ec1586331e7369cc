//! HTTP handlers; one module per resource, paths mirror URLs.

pub mod assessment;
pub mod assessment_reports;
pub mod cases;
pub mod catalogue;
pub mod citizen;
pub mod evaluation;
pub mod map;
pub mod money;
pub mod open311;
pub mod org;
pub mod photos;
pub mod reports;
pub mod settings;
