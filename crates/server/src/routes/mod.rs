//! HTTP handlers; one module per resource, paths mirror URLs.

pub mod cases;
pub mod catalogue;
pub mod map;
pub mod org;
pub mod photos;
pub mod settings;
