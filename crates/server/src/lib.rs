//! citygrid-server: the HTTP API (axum). Thin: it authenticates, validates input, asks the
//! domain (`citygrid-core`) to decide and the store (`citygrid-store`) to persist, and renders
//! JSON. The OpenAPI document is generated from the handlers (utoipa) and served at
//! `/api/v1/openapi.json`.

pub mod auth;
pub mod bootstrap;
pub mod error;
pub mod report;
pub mod routes;
pub mod sms;
pub mod state;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName};
use axum::response::IntoResponse;
use axum::Router;
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use state::{AppState, Clock, Settings};

#[derive(OpenApi)]
#[openapi(
    info(title = "citygrid API", description = "Digital urban management (数字化城市管理): the case loop, organisation, catalogue."),
    modifiers(&BearerAuth),
    tags((name = "cases", description = "Report, read, list and act on cases"),
        (name = "auth", description = "Sign in and out"),
        (name = "photos", description = "Photo upload and download"),
        (name = "catalogue", description = "Component and event classes"),
        (name = "organisation", description = "Regions, departments, users"),
        (name = "settings", description = "Stage limits and the working calendar"),
        (name = "map", description = "The city map: lookups, geocoding, components, layers, tiles, import"),
        (name = "citizens", description = "Citizen accounts by phone, their reports and rewards"),
        (name = "money", description = "Rewards, deductions, the ledger, settlements and the budget"),
        (name = "evaluation", description = "Comprehensive evaluation of regions, departments and posts"),
        (name = "assessment", description = "Street assessment, three-random draws, contract statements"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use routes::{cases, catalogue, map, org, photos, settings};
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::sign_in, auth::sign_out))
        .routes(routes!(auth::me))
        .routes(routes!(cases::create_case, cases::list_cases))
        .routes(routes!(cases::get_case))
        .routes(routes!(cases::act))
        .routes(routes!(photos::upload))
        .routes(routes!(photos::download))
        .routes(routes!(catalogue::list, catalogue::create))
        .routes(routes!(catalogue::get, catalogue::update, catalogue::delete))
        .routes(routes!(org::list_regions, org::create_region))
        .routes(routes!(org::list_departments, org::create_department))
        .routes(routes!(org::get_department, org::update_department, org::delete_department))
        .routes(routes!(org::list_users, org::create_user))
        .routes(routes!(org::get_region, org::update_region, org::delete_region))
        .routes(routes!(settings::get_stage_limits, settings::put_stage_limits))
        .routes(routes!(settings::get_calendar))
        .routes(routes!(settings::put_calendar_year))
        .routes(routes!(map::summary))
        .routes(routes!(map::locate))
        .routes(routes!(map::geocode))
        .routes(routes!(map::reverse))
        .routes(routes!(map::components))
        .routes(routes!(map::get_component))
        .routes(routes!(map::layer))
        .routes(routes!(map::import_layer))
        .routes(routes!(map::map_cases))
        .routes(routes!(map::cases_within))
        .merge(routes::citizen::router())
        .merge(routes::money::router())
        .merge(routes::evaluation::router())
        .merge(routes::assessment::router())
        .merge(routes::reports::router())
        .merge(routes::assessment_reports::router())
        .split_for_parts()
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().1
}

/// The whole application, ready to serve.
pub fn app(state: AppState) -> Router {
    let (api, doc) = api_router();
    let doc_json = doc.to_pretty_json().unwrap_or_default();
    let request_id = HeaderName::from_static("x-request-id");
    // Photos are the largest bodies; JSON handlers bound their own fields.
    let body_limit = state.settings.max_photo_bytes + 64 * 1024;
    api.route(
        "/api/v1/openapi.json",
        axum::routing::get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc_json.clone()) }),
    )
    // The tile path ends in `{y}.mvt`, which axum cannot split inside one segment: the
    // handler takes the segment and strips the suffix.
    .route("/tiles/{layer}/{z}/{x}/{y}", axum::routing::get(routes::map::tile))
    .route("/healthz", axum::routing::get(|| async { "ok" }))
    .merge(routes::open311::router())
    .fallback(|| async { error::ApiError::NotFound("route").into_response() })
    .method_not_allowed_fallback(|| async { error::ApiError::MethodNotAllowed.into_response() })
    .layer(DefaultBodyLimit::max(body_limit))
    .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(60)))
    .layer(PropagateRequestIdLayer::new(request_id.clone()))
    .layer(TraceLayer::new_for_http())
    .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
    .with_state(state)
}
