//! `/api/v1/settings/stage-limits` and `/api/v1/calendar`: the time rules a city configures —
//! stage limits (working or natural time per stage) and the holiday schedule of each year.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Path, Problem};
use crate::state::{AppState, CALENDAR_KEY_PREFIX, STAGE_LIMITS_KEY};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use citygrid_core::calendar::{Limit, WorkCalendar};
use citygrid_core::case::StageLimits;
use citygrid_core::org::Role;
use serde::Serialize;
use utoipa::ToSchema;

/// The stage limits in force.
#[utoipa::path(get, path = "/api/v1/settings/stage-limits", tag = "settings", security(("bearer" = [])),
    responses((status = 200, body = StageLimits), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn get_stage_limits(State(app): State<AppState>, _auth: Auth) -> Json<StageLimits> {
    Json(app.stages())
}

/// Set the stage limits (administrators). Applies to steps taken from now on; deadlines
/// already computed stay as they were.
#[utoipa::path(put, path = "/api/v1/settings/stage-limits", tag = "settings", security(("bearer" = [])),
    request_body = StageLimits,
    responses((status = 200, body = StageLimits), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_stage_limits(
    State(app): State<AppState>,
    auth: Auth,
    Json(limits): Json<StageLimits>,
) -> ApiResult<Json<StageLimits>> {
    auth.require(&[Role::Admin])?;
    let all: [(&str, Limit); 6] = [
        ("verify", limits.verify),
        ("accept", limits.accept),
        ("file", limits.file),
        ("dispatch", limits.dispatch),
        ("check", limits.check),
        ("close", limits.close),
    ];
    for (name, l) in all {
        if l.amount == 0 || l.amount > 100_000 {
            return Err(ApiError::invalid(name, "amount must be 1 to 100000"));
        }
    }
    let text = serde_json::to_string(&limits).map_err(|e| ApiError::Internal(e.to_string()))?;
    app.store.put_setting(STAGE_LIMITS_KEY, &text).await?;
    app.reload_time_rules().await?;
    Ok(Json(app.stages()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarYear {
    pub year: i32,
    /// From the State Council's notice (true) or statutory days only (false).
    pub official: bool,
    pub source: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarOut {
    /// Office hours as minutes after local midnight, e.g. [[510, 720], [810, 1050]].
    pub office_hours: Vec<[u16; 2]>,
    pub utc_offset_minutes: i32,
    pub daily_working_minutes: u32,
    pub years: Vec<CalendarYear>,
}

/// The working calendar: office hours and the years whose holidays are loaded.
#[utoipa::path(get, path = "/api/v1/calendar", tag = "settings", security(("bearer" = [])),
    responses((status = 200, body = CalendarOut), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn get_calendar(State(app): State<AppState>, _auth: Auth) -> Json<CalendarOut> {
    let cal = app.calendar();
    Json(CalendarOut {
        office_hours: cal.office_hours().iter().map(|(a, b)| [*a, *b]).collect(),
        utc_offset_minutes: cal.utc_offset_minutes(),
        daily_working_minutes: cal.daily_working_minutes(),
        years: cal
            .years()
            .into_iter()
            .map(|(year, official)| CalendarYear { year, official, source: cal.year_source(year).map(str::to_owned) })
            .collect(),
    })
}

/// Load one year's holiday schedule (administrators): a `text/csv` body with
/// `date,kind,name` rows (`kind` is `holiday` or `workday`), as in `data/holidays/`.
#[utoipa::path(put, path = "/api/v1/calendar/{year}", tag = "settings", security(("bearer" = [])),
    params(("year" = i32, Path)),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = CalendarOut), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_calendar_year(
    State(app): State<AppState>,
    auth: Auth,
    Path(year): Path<i32>,
    headers: HeaderMap,
    body: String,
) -> ApiResult<Json<CalendarOut>> {
    auth.require(&[Role::Admin])?;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("text/csv") && !ct.starts_with("text/plain") {
        return Err(ApiError::UnsupportedMedia { detail: "send the schedule as text/csv".into() });
    }
    let mut trial = WorkCalendar::china_default();
    let loaded = trial.load_year_csv(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    if loaded != year {
        return Err(ApiError::invalid("year", format!("the file is for {loaded}, not {year}")));
    }
    app.store.put_setting(&format!("{CALENDAR_KEY_PREFIX}{year}"), &body).await?;
    app.reload_time_rules().await?;
    Ok(get_calendar(State(app), auth).await)
}
