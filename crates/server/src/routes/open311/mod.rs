//! Open311 GeoReport v2 at `/open311/v2/` (to be written).

use crate::error::ApiResult;
use crate::state::AppState;
use axum::Router;

/// The Open311 routes (XML and JSON; not in the OpenAPI document).
pub fn router() -> Router<AppState> {
    Router::new()
}

/// Demo data of the Open311 channel (the `demo-open311-key` client).
pub async fn seed_demo(_app: &AppState) -> ApiResult<()> {
    Ok(())
}
