//! Rewards, deductions, the ledger and the monthly settlement (to be written).

use crate::state::AppState;
use citygrid_core::case::Case;
use utoipa_axum::router::OpenApiRouter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

/// Bring the ledger in line with a case that just changed.
pub async fn after_change(_app: &AppState, _case: &Case) {}
