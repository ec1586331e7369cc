//! `/api/v1/cases`: report, read, list, and every action of the state machine.
//!
//! The handlers validate input, resolve the point to a unit grid, and hand the decision to
//! `citygrid_core::case` inside one store transaction; they hold no rules of their own.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use citygrid_core::calendar::Light;
use citygrid_core::case::{
    self, sources_for, Action, ActionInput, Case, Command, Ctx, Event, NewReport, Point, Source, State as CaseState,
    MAX_PHOTOS,
};
use citygrid_core::codes::{ClassCode, Kind, RegionCode, Urgency};
use citygrid_core::org::{DepartmentTree, Role, Scope};
use citygrid_geo::CoordSys;
use citygrid_store::{CaseFilter, Idempotency, Visibility};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

/// A position as clients send it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationIn {
    #[schema(example = 117.18, minimum = -180, maximum = 180)]
    pub lon: f64,
    #[schema(example = 34.26, minimum = -90, maximum = 90)]
    pub lat: f64,
    /// Coordinate system of `lon`/`lat`; stored as WGS-84.
    pub coord_sys: Option<CoordSys>,
}

/// The body of a report (上报).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    pub kind: Kind,
    #[schema(example = "06010", pattern = "^[0-9]{5}$")]
    pub class_code: String,
    pub urgency: Option<Urgency>,
    #[schema(example = "路边有一堆暴露垃圾", min_length = 1, max_length = 2000)]
    pub description: String,
    pub location: LocationIn,
    /// Location description (≤ 256 characters).
    #[schema(max_length = 256)]
    pub address: Option<String>,
    /// Ids from `POST /api/v1/photos` (SHA-256, lowercase hex).
    #[schema(max_items = 9)]
    pub photo_ids: Option<Vec<String>>,
    /// Where the report came from; defaults from the reporter's role (an acceptor entering a
    /// hotline call sends `hotline`).
    pub source: Option<Source>,
    /// The component (部件) concerned, by its 17-digit id (or legacy 16-digit id); it must lie
    /// within 200 m of `location`. Without it, a report of a component class is linked to the
    /// nearest component of that class within 30 m, if there is one.
    #[schema(example = "32031101001000042")]
    pub component_id: Option<String>,
}

/// How far a named component may be from the reported point, and how far the automatic link
/// looks: a collector stands next to the cover; a phone's GPS may be off by tens of metres.
const NAMED_COMPONENT_RADIUS_M: f64 = 200.0;
const NEAREST_COMPONENT_RADIUS_M: f64 = 30.0;

/// A case as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseOut {
    #[serde(flatten)]
    pub case: Case,
    /// Past the current stage's deadline and still open.
    pub overdue: bool,
    /// Traffic light of the current stage (green < 80 % of the limit, yellow < 100 %, red).
    pub light: Option<Light>,
    /// The case's log, oldest first (single-case reads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
}

/// One page of cases, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CasePage {
    pub items: Vec<CaseOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn out(app: &AppState, case: Case, events: Option<Vec<Event>>) -> CaseOut {
    let now = app.now();
    let stages = app.stages();
    // The light is measured in the stage's own kind of time (working or natural).
    let stage_limit = match case.state {
        CaseState::Verifying => Some(stages.verify),
        CaseState::Reported => Some(stages.accept),
        CaseState::Accepted => Some(stages.file),
        CaseState::Filed => Some(stages.dispatch),
        CaseState::Dispatched => case.disposal_limit,
        CaseState::Disposed => Some(stages.check),
        CaseState::Checked => Some(stages.close),
        _ => None,
    };
    let light = match (case.deadline, stage_limit) {
        (Some(d), Some(limit)) => Some(app.calendar().light(case.stage_started_at, d, now, limit.is_natural())),
        _ => None,
    };
    CaseOut { overdue: case.is_overdue(now), light, events, case }
}

/// The case with its location in `sys` (the store keeps WGS-84).
fn in_sys(mut case: Case, sys: Option<CoordSys>) -> Case {
    if let Some(sys) = sys {
        let (lon, lat) = citygrid_geo::coord::from_wgs84(sys, case.location.lon, case.location.lat);
        case.location = Point { lon, lat };
    }
    case
}

/// The log with the report's location in `sys`, like the case beside it.
fn events_in_sys(mut events: Vec<Event>, sys: Option<CoordSys>) -> Vec<Event> {
    if let Some(sys) = sys {
        for e in &mut events {
            if let case::Change::Report { location, .. } = &mut e.change {
                let (lon, lat) = citygrid_geo::coord::from_wgs84(sys, location.lon, location.lat);
                *location = Point { lon, lat };
            }
        }
    }
    events
}

/// Can this user read this case?
pub fn can_see(auth: &Auth, case: &Case, tree: &DepartmentTree) -> bool {
    match &auth.user.scope {
        Scope::Region { code } => code.contains(&case.grid_code),
        Scope::Department { department_id } => case.department_id.is_some_and(|d| tree.is_within(d, *department_id)),
        Scope::Own => case.reporter_id == Some(auth.user.id),
    }
}

fn validate_photo_ids(ids: &[String]) -> ApiResult<()> {
    if ids.len() > MAX_PHOTOS {
        return Err(ApiError::invalid("photo_ids", format!("at most {MAX_PHOTOS} photos")));
    }
    if let Some(bad) = ids.iter().find(|p| !case::is_photo_id(p)) {
        return Err(ApiError::invalid("photo_ids", format!("{bad:?} is not a photo id")));
    }
    Ok(())
}

async fn require_photos(app: &AppState, ids: &[String]) -> ApiResult<()> {
    let missing = app.store.missing_photos(ids).await?;
    match missing.first() {
        Some(m) => Err(ApiError::invalid("photo_ids", format!("photo {m} was not uploaded"))),
        None => Ok(()),
    }
}

/// The local date of `now` as `YYYYMMDD`, for case numbers.
fn local_day(app: &AppState, now: jiff::Timestamp) -> String {
    let offset =
        jiff::tz::Offset::from_seconds(app.calendar().utc_offset_minutes() * 60).unwrap_or(jiff::tz::Offset::UTC);
    let dt = offset.to_datetime(now);
    format!("{:04}{:02}{:02}", dt.year(), dt.month(), dt.day())
}

pub fn idempotency_key(headers: &HeaderMap, user_id: i64, body: &ReportBody) -> ApiResult<Option<Idempotency>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 200).ok_or_else(|| {
        ApiError::BadRequest {
            code: "invalid_header",
            field: Some("Idempotency-Key".into()),
            detail: "Idempotency-Key must be 1 to 200 visible ASCII characters".into(),
        }
    })?;
    let canonical = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Some(Idempotency { user_id, key: key.to_owned(), request_hash: hex::encode(Sha256::digest(&canonical)) }))
}

/// Report a problem: creates a case (`verifying` for citizen and hotline reports, `reported`
/// otherwise). Honours `Idempotency-Key`: a retry with the same key and body returns the same
/// case (header `Idempotent-Replayed: true`) and creates nothing.
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases", security(("bearer" = [])), request_body = ReportBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = CaseOut), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many reports from one citizen account", body = Problem, content_type = "application/problem+json")))]
pub async fn create_case(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Json(body): Json<ReportBody>,
) -> ApiResult<Response> {
    auth.require(Action::Report.roles())?;
    let idem = idempotency_key(&headers, auth.user.id, &body)?;
    let coord_sys = body.location.coord_sys;
    let created = file_report(&app, auth.actor(), body, idem).await?;
    // Answer in the system the client spoke.
    let mut res = (StatusCode::CREATED, Json(out(&app, in_sys(created.case, coord_sys), None))).into_response();
    if created.replayed {
        res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(res)
}

/// Validate a report and create its case: the one path every channel (this API, Open311, the
/// citizen app) files through, so that they validate and locate identically.
pub async fn file_report(
    app: &AppState,
    actor: citygrid_core::org::Actor,
    body: ReportBody,
    idem: Option<Idempotency>,
) -> ApiResult<citygrid_store::Created> {
    let class_code = ClassCode::parse(&body.class_code).map_err(|e| ApiError::invalid("class_code", e.to_string()))?;
    let description = body.description.trim().to_owned();
    if description.is_empty() || description.chars().count() > 2000 {
        return Err(ApiError::invalid("description", "1 to 2000 characters"));
    }
    let address = body.address.as_ref().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
    if address.as_ref().is_some_and(|a| a.chars().count() > 256) {
        return Err(ApiError::invalid("address", "at most 256 characters"));
    }
    let LocationIn { lon, lat, coord_sys } = body.location;
    if !(lon.is_finite() && lat.is_finite() && (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)) {
        return Err(ApiError::invalid("location", "lon must be -180..180 and lat -90..90"));
    }
    let (lon, lat) = citygrid_geo::coord::to_wgs84(coord_sys.unwrap_or_default(), lon, lat);
    let photo_ids = body.photo_ids.clone().unwrap_or_default();
    validate_photo_ids(&photo_ids)?;
    let source = match body.source {
        Some(s) if sources_for(actor.role).contains(&s) => s,
        Some(s) => {
            return Err(ApiError::invalid(
                "source",
                format!("a {} cannot report as {}", actor.role.as_str(), s.as_str()),
            ))
        }
        None => *sources_for(actor.role).first().ok_or_else(|| ApiError::forbidden("this role cannot report"))?,
    };
    let class = app
        .class(body.kind, class_code.as_str())
        .ok_or_else(|| ApiError::invalid("class_code", format!("no {} class {}", body.kind.as_str(), class_code)))?;
    let grid_code: RegionCode = app
        .grids()
        .locate(lon, lat)
        .cloned()
        .ok_or_else(|| ApiError::invalid("location", "the point is outside the city's unit grids"))?;
    let component_id = match body.component_id.as_deref().map(str::trim) {
        Some(raw) => {
            let id = citygrid_core::component::ComponentId::parse_or_legacy(raw)
                .map_err(|e| ApiError::invalid("component_id", e.to_string()))?;
            let c = app
                .store
                .get_component(&id)
                .await?
                .ok_or_else(|| ApiError::invalid("component_id", format!("no component {id}")))?;
            let p = citygrid_geo::points::ComponentPoint::from_component(&c)
                .ok_or_else(|| ApiError::invalid("component_id", "the component has no position"))?;
            // "<component> abnormal" (majors 01-05) must name a component of that very class.
            if ("01".."06").contains(&class_code.major()) && c.class_code() != class_code {
                return Err(ApiError::invalid(
                    "component_id",
                    format!("component {id} is of class {}, not {class_code}", c.class_code()),
                ));
            }
            if c.state == citygrid_core::component::ComponentState::Removed {
                return Err(ApiError::invalid("component_id", format!("component {id} was removed")));
            }
            if citygrid_geo::coord::distance_m(p.lon, p.lat, lon, lat) > NAMED_COMPONENT_RADIUS_M {
                return Err(ApiError::invalid(
                    "component_id",
                    format!("component {id} is more than {NAMED_COMPONENT_RADIUS_M} m from the reported location"),
                ));
            }
            Some(id)
        }
        // An event of majors 01-05 is "<component class> abnormal": same code as the component.
        None if ("01".."06").contains(&class_code.major()) => app
            .map()
            .components
            .within_radius(lon, lat, NEAREST_COMPONENT_RADIUS_M, Some(&class_code), 1)
            .first()
            .and_then(|(p, _)| p.component_id()),
        None => None,
    };
    require_photos(app, &photo_ids).await?;
    limit_citizen(app, &actor, idem.as_ref()).await?;
    let area_class = app.area_class(grid_code.as_str());
    let calendar = app.calendar();
    let stages = app.stages();
    let departments = DepartmentTree::default();
    let now = app.now();
    let urgency = body.urgency.unwrap_or_default();
    let kind = body.kind;
    let created = app
        .store
        .create_case(&local_day(app, now), idem.as_ref(), now, |number| {
            let ctx = Ctx { now, calendar: &calendar, stages: &stages, departments: &departments, class: &class };
            let report = NewReport {
                number,
                source,
                kind,
                class_code,
                urgency,
                description,
                address,
                location: Point { lon, lat },
                grid_code,
                area_class,
                photo_ids,
                component_id,
            };
            case::report(report, &actor, &ctx)
        })
        .await?;
    Ok(created)
}

/// Refuse bulk reporting from one citizen account (rules `max_reports_per_hour` / `_per_day`).
/// Retries of an accepted request (same Idempotency-Key) and Open311 clients' filing accounts,
/// which carry a whole app's volume, are not counted against.
async fn limit_citizen(app: &AppState, actor: &citygrid_core::org::Actor, idem: Option<&Idempotency>) -> ApiResult<()> {
    if actor.role != Role::Citizen {
        return Ok(());
    }
    if let Some(k) = idem {
        if app.store.idempotency_used(k.user_id, &k.key).await? {
            return Ok(());
        }
    }
    if app.store.is_open311_client_user(actor.user_id).await? {
        return Ok(());
    }
    let rules = app.store.reward_rules().await?;
    let now = app.now();
    for (window, max, what) in [
        (jiff::SignedDuration::from_hours(1), rules.max_reports_per_hour, "an hour"),
        (jiff::SignedDuration::from_hours(24), rules.max_reports_per_day, "a day"),
    ] {
        let since = now.checked_sub(window).map_err(|e| ApiError::Internal(e.to_string()))?;
        if app.store.reports_since(actor.user_id, since).await? >= i64::from(max) {
            return Err(ApiError::TooMany {
                code: "rate_limited",
                field: None,
                detail: format!("at most {max} reports {what} from one account; try again later"),
                retry_after: None,
            });
        }
    }
    Ok(())
}

/// One case with its whole log.
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Case id"), crate::routes::map::SysQuery),
    responses((status = 200, body = CaseOut), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_case(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    Query(q): Query<crate::routes::map::SysQuery>,
) -> ApiResult<Json<CaseOut>> {
    let case = app.store.get_case(id).await?.ok_or(ApiError::NotFound("case"))?;
    // Out of scope reads as not found: a case's existence is itself information.
    if !can_see(&auth, &case, &app.departments().await?) {
        return Err(ApiError::NotFound("case"));
    }
    let events = app.store.case_events(id).await?;
    Ok(Json(out(&app, in_sys(case, q.coord_sys), Some(events_in_sys(events, q.coord_sys)))))
}

/// Take one validated step on a case: scope, class, photos and a merge target checked, the
/// store's one transaction, then the ledger brought in line. Shared by every action and by
/// `merge`.
pub async fn take_step(app: &AppState, auth: &Auth, id: i64, step: case::Step) -> ApiResult<Case> {
    let case = app.store.get_case(id).await?.ok_or(ApiError::NotFound("case"))?;
    let tree = app.departments().await?;
    if !can_see(auth, &case, &tree) && auth.role() == Role::Citizen {
        return Err(ApiError::NotFound("case"));
    }
    let class = app
        .class(case.kind, case.class_code.as_str())
        .ok_or_else(|| ApiError::Internal(format!("case {id} has an unknown class")))?;
    if !step.photo_ids.is_empty() {
        require_photos(app, &step.photo_ids).await?;
    }
    if let Command::Void { duplicate_of: Some(other) } = step.command {
        // Only a standing case the actor can see may be named (ids cannot be probed this way),
        // and never one merged into this case.
        crate::routes::money::duplicate_target(app, auth, &tree, &case, other, "duplicate_of").await?;
    }
    let calendar = app.calendar();
    let stages = app.stages();
    let actor = auth.actor();
    let now = app.now();
    let updated = app
        .store
        .act(id, |case| {
            let ctx = Ctx { now, calendar: &calendar, stages: &stages, departments: &tree, class: &class };
            case::decide(case, &step, &actor, &ctx)
        })
        .await?;
    // The ledger follows the case: a verification, a merge or a rejection can make or undo a
    // reward. It runs after the commit and is idempotent; the settlement run re-checks.
    crate::routes::money::after_change(app, &updated, step.action.as_str()).await;
    Ok(updated)
}

/// Filters of the case list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    /// Comma-separated states, e.g. `dispatched,disposed`.
    pub state: Option<String>,
    pub kind: Option<Kind>,
    /// 5-digit class code.
    pub class_code: Option<String>,
    /// District code (6 digits).
    pub district: Option<String>,
    /// Street code (9 digits).
    pub street: Option<String>,
    /// Community code (12 digits).
    pub community: Option<String>,
    /// Unit grid code (15 digits).
    pub grid: Option<String>,
    pub department_id: Option<i64>,
    pub source: Option<Source>,
    /// Only open cases past their current deadline (`true`) or only the others (`false`).
    pub overdue: Option<bool>,
    pub urged: Option<bool>,
    /// Reported at or after (RFC 3339).
    pub from: Option<String>,
    /// Reported before (RFC 3339).
    pub to: Option<String>,
    /// Only cases located in `min_lon,min_lat,max_lon,max_lat` (in `coord_sys`).
    pub bbox: Option<String>,
    /// System of `bbox` and of the locations in the answer (default wgs84).
    pub coord_sys: Option<CoordSys>,
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
}

fn region_param(v: &Option<String>, field: &str, len: usize) -> ApiResult<Option<RegionCode>> {
    v.as_deref()
        .map(|s| match RegionCode::parse(s) {
            Ok(c) if s.len() == len => Ok(c),
            _ => Err(ApiError::bad_query(field, format!("{field} must be a {len}-digit code"))),
        })
        .transpose()
}

fn time_param(v: &Option<String>, field: &str) -> ApiResult<Option<jiff::Timestamp>> {
    v.as_deref()
        .map(|s| s.parse::<jiff::Timestamp>().map_err(|_| ApiError::bad_query(field, "an RFC 3339 time with offset")))
        .transpose()
}

/// Cases in the caller's data scope, newest first, with filters and cursor paging.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases", security(("bearer" = [])), params(CaseQuery),
    responses((status = 200, body = CasePage), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_cases(
    State(app): State<AppState>,
    auth: Auth,
    Query(q): Query<CaseQuery>,
) -> ApiResult<Json<CasePage>> {
    let mut states = Vec::new();
    for s in q.state.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let st = CaseState::parse(s).ok_or_else(|| ApiError::bad_query("state", format!("unknown state {s:?}")))?;
        states.push(st.as_str().to_owned());
    }
    let class_code = q
        .class_code
        .as_deref()
        .map(|c| {
            ClassCode::parse(c)
                .map(|c| c.as_str().to_owned())
                .map_err(|e| ApiError::bad_query("class_code", e.to_string()))
        })
        .transpose()?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| ApiError::bad_query("cursor", "not a cursor from next_cursor"))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_query("limit", "1 to 500"));
    }
    let filter = CaseFilter {
        states,
        kind: q.kind,
        class_code,
        district: region_param(&q.district, "district", 6)?,
        street: region_param(&q.street, "street", 9)?,
        community: region_param(&q.community, "community", 12)?,
        grid: region_param(&q.grid, "grid", 15)?,
        department_id: q.department_id,
        source: q.source.map(|s| s.as_str().to_owned()),
        overdue: q.overdue,
        now: Some(app.now()),
        created_from: time_param(&q.from, "from")?,
        created_to: time_param(&q.to, "to")?,
        urged: q.urged,
        bbox: q
            .bbox
            .as_deref()
            .map(|b| crate::routes::map::parse_bbox(b, q.coord_sys.unwrap_or_default()))
            .transpose()?,
    };
    let vis = match &auth.user.scope {
        Scope::Region { code } => Visibility::Region(code.clone()),
        Scope::Department { department_id } => {
            Visibility::Departments(app.departments().await?.subtree(*department_id))
        }
        Scope::Own => Visibility::Reporter(auth.user.id),
    };
    let page = app.store.list_cases(&vis, &filter, before, limit).await?;
    Ok(Json(CasePage {
        items: page.items.into_iter().map(|c| out(&app, in_sys(c, q.coord_sys), None)).collect(),
        next_cursor: page.next.map(|n| n.to_string()),
    }))
}

/// Take an action on a case: `verify`, `accept`, `reject`, `file`, `refuse`, `void`,
/// `dispatch`, `hand_down`, `return`, `request_extension`, `approve_extension`,
/// `reject_extension`, `request_suspension`, `approve_suspension`, `reject_suspension`,
/// `resume`, `dispose`, `check`, `close`, `urge`. An action that does not apply in the case's
/// state is refused with 409 and changes nothing.
#[utoipa::path(post, path = "/api/v1/cases/{id}/actions/{action}", tag = "cases", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Case id"), ("action" = String, Path, description = "Action name")),
    request_body(content = Option<ActionInput>, description = "Fields the action needs; may be empty"),
    responses((status = 200, body = CaseOut), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn act(
    State(app): State<AppState>,
    auth: Auth,
    Path((id, action)): Path<(i64, String)>,
    body: Bytes,
) -> ApiResult<Json<CaseOut>> {
    let action = Action::parse(&action).filter(|a| *a != Action::Report).ok_or(ApiError::NotFound("action"))?;
    let input: ActionInput = if body.iter().all(u8::is_ascii_whitespace) {
        ActionInput::default()
    } else {
        let mut de = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.to_string();
            if inner.is_data() {
                let field = if path == "." { crate::error::field_of(&msg) } else { path };
                ApiError::invalid(field, msg)
            } else {
                ApiError::BadRequest { code: "malformed_json", field: Some("body".into()), detail: msg }
            }
        })?
    };
    let step = Command::parse(action, input)?;
    let updated = take_step(&app, &auth, id, step).await?;
    Ok(Json(out(&app, updated, None)))
}
