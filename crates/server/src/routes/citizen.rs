//! Citizen accounts and follow-up (to be written).

use crate::error::ApiResult;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

/// Demo data of the citizen channel.
pub async fn seed_demo(_app: &AppState) -> ApiResult<()> {
    Ok(())
}
