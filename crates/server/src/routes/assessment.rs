//! The street assessment (长效管理考核), the three-random on-site assessment (三随机) and the
//! contract statements (合同考核): `/api/v1/assessments/…` and `/api/v1/contracts/…`.
//!
//! The rules live in `citygrid_core::assessment` (parts, weights, ranking; the draw; the
//! statements); the store keeps entries, draws and findings, and freezes a published month.
//! Here: who may see and do what, gathering each month's facts, the draw's seed (from the
//! operating system's random source: core never makes randomness) and its commit–reveal.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::routes::assessment_reports as sheets;
use crate::routes::cases::{LocationIn, ReportBody};
use crate::routes::evaluation::{evaluate, EvalQuery};
use crate::routes::reports::download_format;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use citygrid_core::assessment::contract::{self, CollectionFacts, FindingLine, LedgerLine, Statement};
use citygrid_core::assessment::draw::{self, Assessor, GridWeight, Inputs, Place, StreetPool};
use citygrid_core::assessment::{self, Config, PartWeights, RankRow, SpecialItem, StreetParts};
use citygrid_core::case::{self, Source};
use citygrid_core::codes::{Kind, RegionCode, RegionLevel};
use citygrid_core::evaluation::SubjectKind;
use citygrid_core::org::{Actor, Role, Scope};
use citygrid_core::reward::{self, EntryKind, PartyKind};
use citygrid_core::settlement;
use citygrid_geo::layers::AreaLayer;
use citygrid_store::assessment::{DrawRow, FindingRow, NewDraw, NewFinding, NewSpecial, SpecialRow};
use citygrid_store::LedgerFilter;
use jiff::civil::Date;
use jiff::Timestamp;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_config, put_config))
        .routes(routes!(street_ranking))
        .routes(routes!(publish_month))
        .routes(routes!(list_special, add_special))
        .routes(routes!(list_draws, create_draw))
        .routes(routes!(get_draw))
        .routes(routes!(draw_inputs))
        .routes(routes!(reveal_draw))
        .routes(routes!(verify_draw))
        .routes(routes!(add_finding))
        .routes(routes!(list_findings))
        .routes(routes!(collection_statement))
        .routes(routes!(cleaning_statements))
}

/// Roles that read assessments: the centre's leadership and evaluators, and district command
/// centres for their district's streets.
pub(crate) const READERS: &[Role] = &[Role::Admin, Role::Evaluator, Role::Leader, Role::Commander];
/// Roles that assess (考评): enter special-work assessments, draw, reveal, record findings.
const ASSESSORS: &[Role] = &[Role::Admin, Role::Evaluator];
/// Roles that read contract statements (city-wide figures).
const CONTRACT_READERS: &[Role] = &[Role::Admin, Role::Evaluator, Role::Leader];

/// The region prefix a reader is bound to (`None` = the whole city); other scopes are refused.
pub(crate) fn region_prefix(auth: &Auth) -> ApiResult<Option<String>> {
    auth.region_prefix("assessments")
}

fn require_city(auth: &Auth) -> ApiResult<()> {
    auth.require_city("this view and its changes")
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

pub(crate) fn offset(app: &AppState) -> jiff::tz::Offset {
    jiff::tz::Offset::from_seconds(app.calendar().utc_offset_minutes() * 60).unwrap_or(jiff::tz::Offset::UTC)
}

fn current_month(app: &AppState) -> String {
    reward::month_of(app.now(), app.calendar().utc_offset_minutes())
}

/// First and last day of a `YYYY-MM` month.
fn month_days(month: &str) -> Option<(Date, Date)> {
    if !settlement::valid_month(month) {
        return None;
    }
    let y: i16 = month.get(0..4)?.parse().ok()?;
    let m: i8 = month.get(5..7)?.parse().ok()?;
    let first = jiff::civil::Date::new(y, m, 1).ok()?;
    Some((first, first.last_of_month()))
}

/// `[start, end)` of a local month, as instants.
fn month_bounds(app: &AppState, month: &str) -> Option<(Timestamp, Timestamp)> {
    let (first, last) = month_days(month)?;
    let off = offset(app);
    let start = off.to_timestamp(first.to_datetime(jiff::civil::Time::midnight())).ok()?;
    let end = off.to_timestamp(last.tomorrow().ok()?.to_datetime(jiff::civil::Time::midnight())).ok()?;
    Some((start, end))
}

pub(crate) fn query_month(m: &str) -> ApiResult<String> {
    if settlement::valid_month(m) {
        Ok(m.to_owned())
    } else {
        Err(ApiError::bad_query("month", "a month as YYYY-MM"))
    }
}

fn body_month(m: &str) -> ApiResult<String> {
    if settlement::valid_month(m) {
        Ok(m.to_owned())
    } else {
        Err(ApiError::invalid("month", "a month as YYYY-MM"))
    }
}

// ---- configuration -------------------------------------------------------------------------

/// The assessment configuration: part weights, street classes, on-site points, draw settings,
/// assessors' own streets, and the contracts' terms (fees in integer fen).
#[utoipa::path(get, path = "/api/v1/assessments/config", tag = "assessment", security(("bearer" = [])),
    responses((status = 200, body = Config), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn get_config(State(app): State<AppState>, auth: Auth) -> ApiResult<Json<Config>> {
    auth.require(READERS)?;
    region_prefix(&auth)?;
    Ok(Json(app.store.assessment_config().await?))
}

/// Replace the configuration (administrators, city scope); validated as a whole (the part
/// weights must sum to 100 %). Applies to what is computed or entered from now on; a published
/// month keeps its figures.
#[utoipa::path(put, path = "/api/v1/assessments/config", tag = "assessment", security(("bearer" = [])), request_body = Config,
    responses((status = 200, body = Config), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_config(State(app): State<AppState>, auth: Auth, Json(cfg): Json<Config>) -> ApiResult<Json<Config>> {
    auth.require(&[Role::Admin])?;
    require_city(&auth)?;
    cfg.validate().map_err(|(f, m)| ApiError::invalid(f, m))?;
    app.store.put_assessment_config(&cfg).await?;
    Ok(Json(cfg))
}

// ---- street ranking ------------------------------------------------------------------------

/// Part (a) of every street for a month: the digital-urban-management score (数字城管考核) of
/// the comprehensive evaluation (综合评价), the street as a region subject, 0–100, by street
/// code — the one place part (a) comes from. A street the evaluation has no row for counts as
/// 100, as the evaluation itself counts "nothing to do" as fully done.
async fn digital_scores(app: &AppState, from: Date, to: Date) -> ApiResult<HashMap<String, f64>> {
    let q = EvalQuery { subject: SubjectKind::Region, level: Some(RegionLevel::Street), from, to, parent: None };
    Ok(evaluate(app, &q).await?.into_iter().map(|r| (r.subject_id, r.score)).collect())
}

/// Every street's three parts in `month`.
async fn street_parts(app: &AppState, cfg: &Config, month: &str) -> ApiResult<Vec<StreetParts>> {
    let (from, to) = month_days(month).ok_or_else(|| ApiError::bad_query("month", "a month as YYYY-MM"))?;
    let digital = digital_scores(app, from, to).await?;
    let mut special: HashMap<String, (Vec<SpecialItem>, u32)> = HashMap::new();
    for s in app.store.list_special_assessments(month, None).await? {
        let e = special.entry(s.street_code).or_default();
        e.0.extend(s.items);
        e.1 += 1;
    }
    let mut findings: HashMap<String, Vec<f64>> = HashMap::new();
    for f in app.store.list_findings(Some(month), None).await? {
        findings.entry(f.street_code).or_default().push(f.points);
    }
    let streets = app.store.list_regions(None, Some(RegionLevel::Street)).await?;
    Ok(streets
        .into_iter()
        .map(|r| {
            let code = r.code.as_str().to_owned();
            let (items, special_count) = special.remove(&code).unwrap_or_default();
            let points = findings.remove(&code).unwrap_or_default();
            StreetParts {
                district_code: code.get(..6).unwrap_or_default().to_owned(),
                class: cfg.street_class(&r.code),
                digital: assessment::round2(digital.get(&code).copied().unwrap_or(100.0)),
                special: assessment::special_part(&items),
                findings: points.len() as u32,
                on_site: assessment::on_site_part(points),
                special_count,
                name: r.name,
                street_code: code,
            }
        })
        .collect())
}

/// A month's rows as published, or else ranked now without changes against the month before
/// (the scores and ranks are the same either way): one point of a trend.
pub(crate) async fn month_rows(app: &AppState, cfg: &Config, month: &str) -> ApiResult<Vec<RankRow>> {
    match app.store.assessment_published(month).await? {
        Some(p) => serde_json::from_str(&p.data).map_err(internal),
        None => Ok(assessment::rank(cfg.weights, street_parts(app, cfg, month).await?, &[])),
    }
}

/// A month's ranking: the published one if the month is published, else computed now against
/// the previous month (its published ranking, or computed the same way).
pub(crate) async fn ranking(app: &AppState, cfg: &Config, month: &str) -> ApiResult<(Vec<RankRow>, Option<Timestamp>)> {
    if let Some(p) = app.store.assessment_published(month).await? {
        let rows: Vec<RankRow> = serde_json::from_str(&p.data).map_err(internal)?;
        return Ok((rows, Some(p.published_at)));
    }
    let previous = match settlement::previous_month(month) {
        Some(prev) => match app.store.assessment_published(&prev).await? {
            Some(p) => serde_json::from_str(&p.data).map_err(internal)?,
            None => assessment::rank(cfg.weights, street_parts(app, cfg, &prev).await?, &[]),
        },
        None => Vec::new(),
    };
    Ok((assessment::rank(cfg.weights, street_parts(app, cfg, month).await?, &previous), None))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MonthQuery {
    /// `YYYY-MM`.
    pub month: String,
    /// `json` (default), `csv` or `xlsx`: the same figures as a download (or ask by `Accept`).
    pub format: Option<String>,
}

/// A month's street ranking.
#[derive(Debug, Serialize, ToSchema)]
pub struct RankingOut {
    pub month: String,
    /// True once published: the rows are frozen as published.
    pub published: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub published_at: Option<Timestamp>,
    /// The weights the live figures use (a published month's rows keep the scores they had).
    pub weights: PartWeights,
    /// Best first; a district commander gets its district's streets (with their city ranks).
    pub rows: Vec<RankRow>,
}

/// The monthly ranking of the street offices (街道考核排名): each street's score, its three
/// parts (digital-urban-management, special work, on-site), its rank overall and in its class
/// (urban / fringe), and the change against the previous month.
#[utoipa::path(get, path = "/api/v1/assessments/streets", tag = "assessment", security(("bearer" = [])), params(MonthQuery),
    responses((status = 200, description = "JSON, or with `format`/`Accept` a CSV or XLSX download", content(
            (RankingOut = "application/json"), (String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn street_ranking(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Query(q): Query<MonthQuery>,
) -> ApiResult<Response> {
    auth.require(READERS)?;
    let prefix = region_prefix(&auth)?;
    let month = query_month(&q.month)?;
    let download = download_format(q.format.as_deref(), &headers)?;
    let cfg = app.store.assessment_config().await?;
    let (mut rows, published_at) = ranking(&app, &cfg, &month).await?;
    if let Some(p) = prefix {
        rows.retain(|r| r.parts.street_code.starts_with(&p));
    }
    let out = RankingOut { month, published: published_at.is_some(), published_at, weights: cfg.weights, rows };
    let stem = format!("street-assessment-{}", out.month);
    sheets::respond(&app, download, out, sheets::ranking_table, &stem).await
}

/// Publish a month's ranking (发布): administrators, city scope, once the month has ended. The
/// rows are frozen as published; special-work assessments and findings of the month are
/// refused from then on (409 `published`). A second publication is refused with 409.
#[utoipa::path(post, path = "/api/v1/assessments/streets/{month}/publish", tag = "assessment", security(("bearer" = [])),
    params(("month" = String, Path, description = "YYYY-MM")),
    responses((status = 201, body = RankingOut), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn publish_month(
    State(app): State<AppState>,
    auth: Auth,
    Path(month): Path<String>,
) -> ApiResult<(StatusCode, Json<RankingOut>)> {
    auth.require(&[Role::Admin])?;
    require_city(&auth)?;
    let month = body_month(&month)?;
    if month >= current_month(&app) {
        return Err(ApiError::invalid("month", format!("{month} has not ended yet")));
    }
    if app.store.assessment_published(&month).await?.is_some() {
        return Err(ApiError::conflict("already_published", format!("{month} is published already")));
    }
    let cfg = app.store.assessment_config().await?;
    let (rows, _) = ranking(&app, &cfg, &month).await?;
    let data = serde_json::to_string(&rows).map_err(internal)?;
    let p = app.store.publish_assessment(&month, &data, auth.user.id, app.now()).await.map_err(|e| match e {
        citygrid_store::StoreError::Conflict(m) => ApiError::conflict("already_published", m),
        other => other.into(),
    })?;
    Ok((
        StatusCode::CREATED,
        Json(RankingOut { month, published: true, published_at: Some(p.published_at), weights: cfg.weights, rows }),
    ))
}

// ---- special-work assessments --------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecialBody {
    /// The assessment month, `YYYY-MM` (not in the future, not published).
    pub month: String,
    /// The street office, 9 digits.
    #[schema(example = "320311001")]
    pub street_code: String,
    /// What was assessed, e.g. "背街小巷专项整治".
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    pub items: Vec<SpecialItem>,
    /// Evidence: ids from `POST /api/v1/photos`, 1 to 9.
    pub photo_ids: Vec<String>,
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// A special-work assessment as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpecialOut {
    pub id: i64,
    pub month: String,
    pub street_code: String,
    pub title: String,
    pub items: Vec<SpecialItem>,
    pub photo_ids: Vec<String>,
    pub note: Option<String>,
    pub points: f64,
    pub entered_by: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

pub(crate) fn special_out(s: SpecialRow) -> SpecialOut {
    SpecialOut {
        id: s.id,
        month: s.month,
        street_code: s.street_code,
        title: s.title,
        items: s.items,
        photo_ids: s.photo_ids,
        note: s.note,
        points: s.points,
        entered_by: s.entered_by,
        created_at: s.created_at,
    }
}

/// Photo ids: 1 to 9 well-formed ids of uploaded photos.
async fn evidence(app: &AppState, ids: &[String]) -> ApiResult<()> {
    if ids.is_empty() || ids.len() > case::MAX_PHOTOS {
        return Err(ApiError::invalid("photo_ids", format!("1 to {} photos as evidence", case::MAX_PHOTOS)));
    }
    if let Some(bad) = ids.iter().find(|p| !case::is_photo_id(p)) {
        return Err(ApiError::invalid("photo_ids", format!("{bad:?} is not a photo id")));
    }
    if let Some(m) = app.store.missing_photos(ids).await?.first() {
        return Err(ApiError::invalid("photo_ids", format!("photo {m} was not uploaded")));
    }
    Ok(())
}

/// Enter a special-work assessment (专项工作考核) of a street: assessors (evaluators within
/// their scope, administrators), items with points (bonus +, deduction −), photos as evidence.
/// Part (b) of the street's month is 100 plus the month's items, kept in 0–100.
#[utoipa::path(post, path = "/api/v1/assessments/special", tag = "assessment", security(("bearer" = [])), request_body = SpecialBody,
    responses((status = 201, body = SpecialOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn add_special(
    State(app): State<AppState>,
    auth: Auth,
    Json(body): Json<SpecialBody>,
) -> ApiResult<(StatusCode, Json<SpecialOut>)> {
    auth.require(ASSESSORS)?;
    let prefix = region_prefix(&auth)?;
    let month = body_month(&body.month)?;
    if month > current_month(&app) {
        return Err(ApiError::invalid("month", format!("{month} has not begun")));
    }
    let street = RegionCode::parse(&body.street_code)
        .ok()
        .filter(|c| c.level() == RegionLevel::Street)
        .ok_or_else(|| ApiError::invalid("street_code", "a 9-digit street code"))?;
    if app.store.get_region(&street).await?.is_none() {
        return Err(ApiError::invalid("street_code", format!("no street {street}")));
    }
    if prefix.as_deref().is_some_and(|p| !street.as_str().starts_with(p)) {
        return Err(ApiError::Forbidden {
            code: "out_of_scope",
            detail: format!("street {street} is not in your scope"),
        });
    }
    let title = body.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::invalid("title", "1 to 200 characters"));
    }
    assessment::validate_items(&body.items).map_err(|(f, m)| ApiError::invalid(f, m))?;
    let note = body.note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::invalid("note", "at most 2000 characters"));
    }
    evidence(&app, &body.photo_ids).await?;
    let items =
        body.items.into_iter().map(|i| SpecialItem { item: i.item.trim().to_owned(), points: i.points }).collect();
    let row = app
        .store
        .add_special_assessment(&NewSpecial {
            month,
            street_code: street.as_str().to_owned(),
            title,
            items,
            photo_ids: body.photo_ids,
            note,
            entered_by: auth.user.id,
            now: app.now(),
        })
        .await
        .map_err(published)?;
    Ok((StatusCode::CREATED, Json(special_out(row))))
}

fn published(e: citygrid_store::StoreError) -> ApiError {
    match e {
        citygrid_store::StoreError::Conflict(m) => ApiError::conflict("published", m),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SpecialQuery {
    /// `YYYY-MM`.
    pub month: String,
    /// Only this street (9 digits).
    pub street: Option<String>,
    /// `json` (default), `csv` or `xlsx` (or ask by `Accept`).
    pub format: Option<String>,
}

/// Special-work assessments of a month, in the reader's scope.
#[utoipa::path(get, path = "/api/v1/assessments/special", tag = "assessment", security(("bearer" = [])), params(SpecialQuery),
    responses((status = 200, description = "JSON, or with `format`/`Accept` a CSV or XLSX download", content(
            (Vec<SpecialOut> = "application/json"), (String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_special(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Query(q): Query<SpecialQuery>,
) -> ApiResult<Response> {
    auth.require(READERS)?;
    let prefix = region_prefix(&auth)?;
    let month = query_month(&q.month)?;
    if q.street.as_deref().is_some_and(|s| s.len() != 9 || !s.bytes().all(|b| b.is_ascii_digit())) {
        return Err(ApiError::bad_query("street", "a 9-digit street code"));
    }
    let download = download_format(q.format.as_deref(), &headers)?;
    let rows = app.store.list_special_assessments(&month, prefix.as_deref()).await?;
    let out: Vec<SpecialOut> =
        rows.into_iter().filter(|r| q.street.as_ref().is_none_or(|s| &r.street_code == s)).map(special_out).collect();
    let (map, off) = (app.map(), offset(&app));
    let stem = format!("special-assessments-{month}");
    sheets::respond(&app, download, out, |rows| sheets::special_table(&month, rows, &map.region_names, off), &stem)
        .await
}

// ---- three-random draws ----------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrawBody {
    /// The assessment month the findings count for, `YYYY-MM`.
    pub month: String,
    /// First day of the period (default: the month's first day, or tomorrow if later); after
    /// today, inside the month.
    #[schema(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// Last day of the period (default: the month's last day).
    #[schema(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
    /// Places per street (default from the configuration), 1–20.
    pub places_per_street: Option<u32>,
}

/// A draw as the API shows it: the seed only once revealed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DrawOut {
    pub id: i64,
    pub month: String,
    #[schema(value_type = String, format = Date)]
    pub from: Date,
    #[schema(value_type = String, format = Date)]
    pub to: Date,
    /// SHA-256 of the 32 seed bytes, hex: published when the draw is made.
    pub seed_hash: String,
    /// The seed, 64 hex digits: shown once revealed.
    pub seed: Option<String>,
    pub revealed: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revealed_at: Option<Timestamp>,
    /// SHA-256 of the inputs snapshot exactly as `GET …/inputs` serves it.
    pub inputs_sha256: String,
    pub places: Vec<Place>,
    pub created_by: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

pub(crate) fn draw_out(d: DrawRow) -> DrawOut {
    DrawOut {
        id: d.id,
        month: d.month,
        from: d.inputs.from,
        to: d.inputs.to,
        seed_hash: d.seed_hash,
        seed: d.revealed_at.map(|_| d.seed),
        revealed: d.revealed_at.is_some(),
        revealed_at: d.revealed_at,
        inputs_sha256: d.inputs_sha256,
        places: d.places,
        created_by: d.created_by,
        created_at: d.created_at,
    }
}

fn date_field(v: &str, field: &str) -> ApiResult<Date> {
    v.parse::<Date>().map_err(|_| ApiError::invalid(field, "a date as YYYY-MM-DD"))
}

/// The draw's inputs as of now: streets and their grids weighted by the cases filed there in
/// the configured window before now, the evaluators with their own streets, the previous
/// draw's pairs, and the working time of the period.
async fn draw_inputs_now(
    app: &AppState,
    cfg: &Config,
    month: String,
    from: Date,
    to: Date,
    places: u32,
) -> ApiResult<Inputs> {
    let now = app.now();
    let window = jiff::SignedDuration::from_hours(24 * i64::from(cfg.grid_weight_days));
    let since = now.checked_sub(window).map_err(internal)?;
    let filed: HashMap<String, i64> = app.store.filed_by_grid(since, now).await?.into_iter().collect();
    let mut by_street: BTreeMap<String, Vec<GridWeight>> = BTreeMap::new();
    for street in app.store.list_regions(None, Some(RegionLevel::Street)).await? {
        by_street.insert(street.code.as_str().to_owned(), Vec::new());
    }
    for g in app.grids().grids() {
        let Some(street) = g.code.at_level(RegionLevel::Street) else { continue };
        if let Some(list) = by_street.get_mut(street.as_str()) {
            let problems = u64::try_from(filed.get(g.code.as_str()).copied().unwrap_or(0)).unwrap_or(0);
            list.push(GridWeight { grid_code: g.code.as_str().to_owned(), weight: cfg.grid_weight_floor + problems });
        }
    }
    let streets: Vec<StreetPool> = by_street
        .into_iter()
        .filter(|(_, grids)| !grids.is_empty())
        .map(|(street_code, mut grids)| {
            grids.sort_by(|a, b| a.grid_code.cmp(&b.grid_code));
            StreetPool { street_code, grids }
        })
        .collect();
    let street_codes: Vec<&str> = streets.iter().map(|s| s.street_code.as_str()).collect();
    let mut assessors = Vec::new();
    for u in app.store.list_users().await? {
        if u.role != Role::Evaluator || !u.active {
            continue;
        }
        // An assessor belongs to the streets their scope narrows them to, and to those the
        // configuration names.
        let mut own: BTreeSet<String> = match &u.scope {
            Scope::Region { code } if code.level() != RegionLevel::City => {
                street_codes.iter().filter(|s| s.starts_with(code.as_str())).map(|s| (*s).to_owned()).collect()
            }
            _ => BTreeSet::new(),
        };
        own.extend(cfg.assessor_streets.get(&u.username).into_iter().flatten().cloned());
        assessors.push(Assessor { user_id: u.id, username: u.username, streets: own.into_iter().collect() });
    }
    assessors.sort_by_key(|a| a.user_id);
    let previous = app.store.latest_draw().await?.map(|d| draw::pairs(&d.places)).unwrap_or_default();
    Ok(Inputs {
        month,
        from,
        to,
        places_per_street: places,
        streets,
        assessors,
        previous,
        slots: draw::working_slots(&app.calendar(), from, to),
    })
}

/// Make a three-random draw (三随机抽取) for a month: for every street, an assessor (never one of
/// its own, never last draw's pair), a grid (weighted by its recent problems, every grid
/// drawable) and a time (working hours within the period). The seed comes from the operating
/// system's random source; the answer publishes `seed_hash` = SHA-256 of the seed, never the
/// seed, until `POST …/reveal`. Administrators and evaluators, city scope.
#[utoipa::path(post, path = "/api/v1/assessments/draws", tag = "assessment", security(("bearer" = [])), request_body = DrawBody,
    responses((status = 201, body = DrawOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The pool cannot satisfy the constraints", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_draw(
    State(app): State<AppState>,
    auth: Auth,
    Json(body): Json<DrawBody>,
) -> ApiResult<(StatusCode, Json<DrawOut>)> {
    auth.require(ASSESSORS)?;
    require_city(&auth)?;
    let month = body_month(&body.month)?;
    let (first, last) = month_days(&month).ok_or_else(|| ApiError::invalid("month", "a month as YYYY-MM"))?;
    let today = offset(&app).to_datetime(app.now()).date();
    let tomorrow = today.tomorrow().map_err(internal)?;
    let from = match &body.from {
        Some(v) => date_field(v, "from")?,
        None => first.max(tomorrow),
    };
    let to = match &body.to {
        Some(v) => date_field(v, "to")?,
        None => last,
    };
    if from <= today {
        return Err(ApiError::invalid("from", "the period starts after today (an on-site visit is unannounced)"));
    }
    if from < first || from > last {
        return Err(ApiError::invalid("from", format!("a day of {month}")));
    }
    if to < from || to > last {
        return Err(ApiError::invalid("to", format!("a day of {month}, not before from")));
    }
    if app.store.assessment_published(&month).await?.is_some() {
        return Err(ApiError::conflict("published", format!("{month} is published and frozen")));
    }
    let cfg = app.store.assessment_config().await?;
    let places = body.places_per_street.unwrap_or(cfg.places_per_street);
    if !(1..=20).contains(&places) {
        return Err(ApiError::invalid("places_per_street", "1 to 20"));
    }
    let inputs = draw_inputs_now(&app, &cfg, month, from, to, places).await?;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let drawn = draw::draw(seed, &inputs).map_err(|e| ApiError::conflict("draw_impossible", e.to_string()))?;
    let inputs_json = serde_json::to_string(&inputs).map_err(internal)?;
    let row = app
        .store
        .create_draw(&NewDraw {
            seed_hex: hex::encode(seed),
            seed_hash: hex::encode(Sha256::digest(seed)),
            inputs_sha256: hex::encode(Sha256::digest(inputs_json.as_bytes())),
            inputs_json,
            inputs,
            places: drawn,
            created_by: auth.user.id,
            now: app.now(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(draw_out(row))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DrawQuery {
    /// Only draws of this month, `YYYY-MM`.
    pub month: Option<String>,
    /// `json` (default), `csv` or `xlsx`: one row per drawn place (or ask by `Accept`).
    pub format: Option<String>,
}

/// Draws, newest first. Readers in a district see only their district's places.
#[utoipa::path(get, path = "/api/v1/assessments/draws", tag = "assessment", security(("bearer" = [])), params(DrawQuery),
    responses((status = 200, description = "JSON, or with `format`/`Accept` a CSV or XLSX download (a row per place)", content(
            (Vec<DrawOut> = "application/json"), (String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_draws(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Query(q): Query<DrawQuery>,
) -> ApiResult<Response> {
    auth.require(READERS)?;
    let prefix = region_prefix(&auth)?;
    let month = q.month.as_deref().map(query_month).transpose()?;
    let download = download_format(q.format.as_deref(), &headers)?;
    let draws = app.store.list_draws(month.as_deref()).await?;
    let out: Vec<DrawOut> = draws.into_iter().map(|d| scoped(draw_out(d), prefix.as_deref())).collect();
    let (map, off) = (app.map(), offset(&app));
    let stem = format!("draws{}", month.as_deref().map(|m| format!("-{m}")).unwrap_or_default());
    sheets::respond(&app, download, out, |d| sheets::draws_table(month.as_deref(), d, &map.region_names, off), &stem)
        .await
}

pub(crate) fn scoped(mut d: DrawOut, prefix: Option<&str>) -> DrawOut {
    if let Some(p) = prefix {
        d.places.retain(|pl| pl.street_code.starts_with(p));
    }
    d
}

async fn load_draw(app: &AppState, id: i64) -> ApiResult<DrawRow> {
    app.store.get_draw(id).await?.ok_or(ApiError::NotFound("draw"))
}

/// One draw: hash (and seed once revealed), period, places.
#[utoipa::path(get, path = "/api/v1/assessments/draws/{id}", tag = "assessment", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Draw id")),
    responses((status = 200, body = DrawOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_draw(State(app): State<AppState>, auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<DrawOut>> {
    auth.require(READERS)?;
    let prefix = region_prefix(&auth)?;
    Ok(Json(scoped(draw_out(load_draw(&app, id).await?), prefix.as_deref())))
}

/// The inputs snapshot of a draw, byte for byte as stored: its SHA-256 is the draw's
/// `inputs_sha256`. With the revealed seed, anyone can run the draw again from it.
#[utoipa::path(get, path = "/api/v1/assessments/draws/{id}/inputs", tag = "assessment", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Draw id")),
    responses((status = 200, body = Inputs), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn draw_inputs(State(app): State<AppState>, auth: Auth, Path(id): Path<i64>) -> ApiResult<Response> {
    auth.require(READERS)?;
    require_city(&auth)?;
    let d = load_draw(&app, id).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], d.inputs_json).into_response())
}

/// Reveal a draw's seed (公开种子): from now on the draw shows its seed and can be verified.
/// Idempotent. Administrators and evaluators, city scope.
#[utoipa::path(post, path = "/api/v1/assessments/draws/{id}/reveal", tag = "assessment", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Draw id")),
    responses((status = 200, body = DrawOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn reveal_draw(State(app): State<AppState>, auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<DrawOut>> {
    auth.require(ASSESSORS)?;
    require_city(&auth)?;
    let d = app.store.reveal_draw(id, auth.user.id, app.now()).await.map_err(|e| match e {
        citygrid_store::StoreError::NotFound => ApiError::NotFound("draw"),
        other => other.into(),
    })?;
    Ok(Json(draw_out(d)))
}

/// What a verification found.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyOut {
    pub id: i64,
    pub seed: String,
    pub seed_hash: String,
    /// SHA-256 of the revealed seed equals the hash published at the draw.
    pub seed_matches_hash: bool,
    /// SHA-256 of the stored inputs equals `inputs_sha256`.
    pub inputs_match_hash: bool,
    /// Running the draw again from the seed and the inputs gives the stored places.
    pub places_match: bool,
    /// All three.
    pub valid: bool,
}

/// Verify a revealed draw (验证): the seed hashes to the published hash, the inputs to theirs,
/// and the draw run again from them gives the same places. 409 `not_revealed` before the seed
/// is revealed.
#[utoipa::path(get, path = "/api/v1/assessments/draws/{id}/verify", tag = "assessment", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Draw id")),
    responses((status = 200, body = VerifyOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn verify_draw(State(app): State<AppState>, auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<VerifyOut>> {
    auth.require(READERS)?;
    region_prefix(&auth)?;
    let d = load_draw(&app, id).await?;
    if d.revealed_at.is_none() {
        return Err(ApiError::conflict("not_revealed", "the seed is not revealed yet"));
    }
    let seed: Option<[u8; 32]> = hex::decode(&d.seed).ok().and_then(|b| b.try_into().ok());
    let seed_matches_hash = seed.is_some_and(|s| hex::encode(Sha256::digest(s)) == d.seed_hash);
    let inputs_match_hash = hex::encode(Sha256::digest(d.inputs_json.as_bytes())) == d.inputs_sha256;
    let inputs: Option<Inputs> = serde_json::from_str(&d.inputs_json).ok();
    let places_match = match (seed, inputs) {
        (Some(s), Some(i)) => draw::draw(s, &i).is_ok_and(|p| p == d.places),
        _ => false,
    };
    Ok(Json(VerifyOut {
        id: d.id,
        seed: d.seed,
        seed_hash: d.seed_hash,
        seed_matches_hash,
        inputs_match_hash,
        places_match,
        valid: seed_matches_hash && inputs_match_hash && places_match,
    }))
}

// ---- findings --------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingBody {
    pub kind: Kind,
    #[schema(example = "06010", pattern = "^[0-9]{5}$")]
    pub class_code: String,
    #[schema(min_length = 1, max_length = 2000)]
    pub description: String,
    /// Where it was found; it must lie in the drawn grid.
    pub location: LocationIn,
    #[schema(max_length = 256)]
    pub address: Option<String>,
    /// 1 to 9 photos (evidence).
    pub photo_ids: Vec<String>,
}

/// A finding as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingOut {
    pub id: i64,
    pub draw_id: i64,
    pub place_n: u32,
    pub month: String,
    pub street_code: String,
    pub grid_code: String,
    /// The case the finding became (`/api/v1/cases/{id}`).
    pub case_id: i64,
    pub case_number: String,
    pub class_code: String,
    /// Points it takes off the street's on-site part.
    pub points: f64,
    pub lon: f64,
    pub lat: f64,
    pub found_by: i64,
    #[schema(value_type = String, format = DateTime)]
    pub found_at: Timestamp,
    pub description: String,
    pub photo_ids: Vec<String>,
}

pub(crate) fn finding_out(f: FindingRow) -> FindingOut {
    FindingOut {
        id: f.id,
        draw_id: f.draw_id,
        place_n: f.place_n,
        month: f.month,
        street_code: f.street_code,
        grid_code: f.grid_code,
        case_id: f.case_id,
        case_number: f.case_number,
        class_code: f.class_code,
        points: f.points,
        lon: f.lon,
        lat: f.lat,
        found_by: f.found_by,
        found_at: f.found_at,
        description: f.description,
        photo_ids: f.photo_ids,
    }
}

/// Who files a finding's case. The domain lets collectors, citizens, acceptors and leaders
/// report, not evaluators; an on-site assessment is the city's assessment office acting for
/// the leadership, so its findings are filed with the source that says so — `leader`
/// (领导交办): a problem the supervising authority found and hands down, already established on
/// site (no verification step), which counts neither as a collector's report (it is what the
/// collectors missed) nor as a citizen's (no reward). The case records the assessor's own user
/// id as reporter; the role it acts in is the leader's, and its scope the drawn street: the draw
/// is what sends an assessor there, usually outside their own district.
fn finding_actor(auth: &Auth, street: &str) -> ApiResult<Actor> {
    let code = RegionCode::parse(street).map_err(internal)?;
    Ok(Actor { role: Role::Leader, scope: Scope::Region { code }, ..auth.actor() })
}

/// Record a finding at a drawn place (实地考核): by the place's assessor (or an administrator),
/// with class, description, photos and the position, which must lie in the drawn grid. The
/// finding becomes a case through the same path as `POST /api/v1/cases` (source `leader`) and
/// takes the configured points off the street's on-site part of the draw's month.
#[utoipa::path(post, path = "/api/v1/assessments/draws/{id}/places/{n}/findings", tag = "assessment", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Draw id"), ("n" = u32, Path, description = "Place number")), request_body = FindingBody,
    responses((status = 201, body = FindingOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn add_finding(
    State(app): State<AppState>,
    auth: Auth,
    Path((id, n)): Path<(i64, u32)>,
    Json(body): Json<FindingBody>,
) -> ApiResult<(StatusCode, Json<FindingOut>)> {
    auth.require(ASSESSORS)?;
    region_prefix(&auth)?;
    let d = load_draw(&app, id).await?;
    let place = d.places.iter().find(|p| p.n == n).cloned().ok_or(ApiError::NotFound("place"))?;
    if auth.user.role != Role::Admin && auth.user.id != place.assessor_id {
        return Err(ApiError::Forbidden {
            code: "not_your_place",
            detail: format!("place {n} was drawn for {}", place.assessor),
        });
    }
    if app.store.assessment_published(&d.month).await?.is_some() {
        return Err(ApiError::conflict("published", format!("{} is published and frozen", d.month)));
    }
    evidence(&app, &body.photo_ids).await?;
    let LocationIn { lon, lat, coord_sys } = body.location.clone();
    if !(lon.is_finite() && lat.is_finite() && (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)) {
        return Err(ApiError::invalid("location", "lon must be -180..180 and lat -90..90"));
    }
    let (wlon, wlat) = citygrid_geo::coord::to_wgs84(coord_sys.unwrap_or_default(), lon, lat);
    match app.grids().locate(wlon, wlat) {
        Some(g) if g.as_str() == place.grid_code => {}
        _ => {
            return Err(ApiError::invalid(
                "location",
                format!("the point is not in the drawn grid {}", place.grid_code),
            ))
        }
    }
    let class_code = body.class_code.clone();
    let report = ReportBody {
        kind: body.kind,
        class_code: body.class_code,
        urgency: None,
        description: body.description,
        location: body.location,
        address: body.address,
        photo_ids: Some(body.photo_ids.clone()),
        source: Some(Source::Leader),
        component_id: None,
    };
    let created =
        crate::routes::cases::file_report(&app, finding_actor(&auth, &place.street_code)?, report, None).await?;
    let cfg = app.store.assessment_config().await?;
    let row = app
        .store
        .add_finding(&NewFinding {
            draw_id: d.id,
            place_n: n,
            month: d.month.clone(),
            street_code: place.street_code.clone(),
            grid_code: place.grid_code.clone(),
            case_id: created.case.id,
            points: cfg.finding_points(&class_code),
            class_code,
            lon: created.case.location.lon,
            lat: created.case.location.lat,
            found_by: auth.user.id,
            now: app.now(),
            description: created.case.description.clone(),
            photo_ids: body.photo_ids,
        })
        .await
        .map_err(published)?;
    Ok((StatusCode::CREATED, Json(finding_out(row))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    /// `json` (default), `csv` or `xlsx` (or ask by `Accept`).
    pub format: Option<String>,
}

/// The findings of a draw, in the reader's scope.
#[utoipa::path(get, path = "/api/v1/assessments/draws/{id}/findings", tag = "assessment", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Draw id"), FormatQuery),
    responses((status = 200, description = "JSON, or with `format`/`Accept` a CSV or XLSX download", content(
            (Vec<FindingOut> = "application/json"), (String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_findings(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    auth.require(READERS)?;
    let prefix = region_prefix(&auth)?;
    let download = download_format(q.format.as_deref(), &headers)?;
    load_draw(&app, id).await?;
    let rows = app.store.list_findings(None, Some(id)).await?;
    let out: Vec<FindingOut> = rows
        .into_iter()
        .filter(|f| prefix.as_deref().is_none_or(|p| f.street_code.starts_with(p)))
        .map(finding_out)
        .collect();
    let (map, off) = (app.map(), offset(&app));
    let title = format!("三随机抽取 {id} 实地考核发现问题");
    let stem = format!("findings-draw-{id}");
    sheets::respond(&app, download, out, |f| sheets::findings_table(&app, &title, f, &map.region_names, off), &stem)
        .await
}

// ---- contracts -------------------------------------------------------------------------------

/// Every deduction of `party_kind` (and `party`) accrued in `month`, oldest first, with the party.
async fn ledger_lines(
    app: &AppState,
    kind: PartyKind,
    party: Option<&str>,
    month: &str,
) -> ApiResult<Vec<(String, LedgerLine)>> {
    let filter = LedgerFilter {
        kind: Some(EntryKind::Deduction),
        party_kind: Some(kind),
        party: party.map(str::to_owned),
        month: Some(month.to_owned()),
        ..LedgerFilter::default()
    };
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = app.store.list_ledger(&filter, cursor, 1000).await?;
        out.extend(page.items.into_iter().map(|r| {
            (
                r.party,
                LedgerLine {
                    entry_id: r.id,
                    case_id: r.case_id,
                    case_number: r.case_number,
                    rule: r.rule,
                    amount_fen: r.amount_fen,
                    collector: r.detail.collector,
                },
            )
        }));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    out.sort_by_key(|(_, l)| l.entry_id);
    Ok(out)
}

/// The collection statement with the people behind it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionOut {
    #[serde(flatten)]
    pub statement: Statement,
    /// Collectors the contract asks for.
    pub collectors_contracted: u32,
    /// Collectors who reported, verified or checked in the month.
    pub collectors_active: usize,
}

/// The collection contract's monthly statement (信息采集合同月度结算): the month's share of the
/// yearly fee, the service levels met (coverage of every grid, valid reports, missed reports,
/// on-time verification and check), the deductions itemised with their cases (the ledger's
/// `collection` deductions, on-site findings in collectors' areas, levels not met) and the net
/// payable, all in integer fen. City scope.
#[utoipa::path(get, path = "/api/v1/contracts/collection/statements", tag = "assessment", security(("bearer" = [])), params(MonthQuery),
    responses((status = 200, description = "JSON, or with `format`/`Accept` a CSV or XLSX download (a row per line of the statement)", content(
            (CollectionOut = "application/json"), (String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn collection_statement(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Query(q): Query<MonthQuery>,
) -> ApiResult<Response> {
    auth.require(CONTRACT_READERS)?;
    require_city(&auth)?;
    let month = query_month(&q.month)?;
    let download = download_format(q.format.as_deref(), &headers)?;
    let (from, to) = month_bounds(&app, &month).ok_or_else(|| ApiError::bad_query("month", "a month as YYYY-MM"))?;
    let cfg = app.store.assessment_config().await?;
    let grids = app.grids();
    let steps = app.store.collector_steps(from, to).await?;
    let mut covered = BTreeSet::new();
    let mut people = BTreeSet::new();
    let mut f = CollectionFacts { grids: grids.len() as i64, ..CollectionFacts::default() };
    for s in &steps {
        covered.insert(s.grid_code.as_str());
        people.insert(s.username.as_str());
        match s.action.as_str() {
            "report" => {
                // Decided reports only: one still waiting for intake is neither valid nor not.
                let valid = matches!(
                    s.case_state.as_str(),
                    "filed" | "dispatched" | "disposed" | "checked" | "closed" | "suspended"
                ) || (s.case_state == "voided" && s.merged);
                let decided = valid || matches!(s.case_state.as_str(), "voided" | "rejected" | "refused");
                f.reported += i64::from(decided);
                f.valid += i64::from(valid);
            }
            "verify" => {
                f.verified += 1;
                f.verified_on_time += i64::from(!s.late);
            }
            "check" => {
                f.checked += 1;
                f.checked_on_time += i64::from(!s.late);
            }
            _ => {}
        }
    }
    f.grids_covered =
        covered.iter().filter(|g| RegionCode::parse(g).is_ok_and(|c| grids.get(&c).is_some())).count() as i64;
    f.filed = app.store.filed_count(from, to).await?;
    f.ledger = ledger_lines(&app, PartyKind::Collection, None, &month).await?.into_iter().map(|(_, l)| l).collect();
    let map = app.map();
    for x in app.store.list_findings(Some(&month), None).await? {
        if let Some(area) = map.areas.locate(AreaLayer::CollectorArea, x.lon, x.lat) {
            f.findings.push(FindingLine {
                finding_id: x.id,
                case_id: x.case_id,
                case_number: x.case_number,
                class_code: x.class_code,
                grid_code: x.grid_code,
                owner: Some(area.owner.clone()),
            });
        }
    }
    let statement = contract::collection_statement(&cfg.collection, &month, &f)
        .ok_or_else(|| ApiError::bad_query("month", "a month as YYYY-MM"))?;
    let out =
        CollectionOut { statement, collectors_contracted: cfg.collection.collectors, collectors_active: people.len() };
    let stem = format!("collection-statement-{month}");
    sheets::respond(&app, download, out, sheets::collection_table, &stem).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CleaningQuery {
    /// `YYYY-MM`.
    pub month: String,
    /// One contractor (its name as its contractor areas' owner); all when absent.
    pub contractor: Option<String>,
    /// `json` (default), `csv` or `xlsx` (or ask by `Accept`).
    pub format: Option<String>,
}

/// Cleaning contractors' monthly statements (保洁合同月度结算), the same shape as the collection
/// statement: fee (configured per contractor), levels (problems citizens found first, on-site
/// findings of cleaning classes in their areas), deductions with their cases, net payable.
/// City scope.
#[utoipa::path(get, path = "/api/v1/contracts/cleaning/statements", tag = "assessment", security(("bearer" = [])), params(CleaningQuery),
    responses((status = 200, description = "JSON, or with `format`/`Accept` a CSV or XLSX download (a row per line of the statements)", content(
            (Vec<Statement> = "application/json"), (String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn cleaning_statements(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Query(q): Query<CleaningQuery>,
) -> ApiResult<Response> {
    auth.require(CONTRACT_READERS)?;
    require_city(&auth)?;
    let month = query_month(&q.month)?;
    let download = download_format(q.format.as_deref(), &headers)?;
    let cfg = app.store.assessment_config().await?;
    let map = app.map();
    let ledger = ledger_lines(&app, PartyKind::Contractor, q.contractor.as_deref(), &month).await?;
    // The contractors: owners of contractor areas, those with fees, and those docked this month.
    let mut parties: BTreeSet<String> = map.areas.layer(AreaLayer::ContractorArea).map(|a| a.owner.clone()).collect();
    parties.extend(cfg.cleaning.yearly_fee_fen.keys().cloned());
    let mut by_party: BTreeMap<String, Vec<LedgerLine>> = BTreeMap::new();
    for (party, l) in ledger {
        parties.insert(party.clone());
        by_party.entry(party).or_default().push(l);
    }
    if let Some(c) = &q.contractor {
        if !parties.contains(c) {
            return Err(ApiError::NotFound("contractor"));
        }
        parties.retain(|p| p == c);
    }
    let cleaning: BTreeSet<String> =
        app.store.list_services().await?.into_iter().filter(|s| s.cleaning).map(|s| s.code).collect();
    let mut findings: BTreeMap<String, Vec<FindingLine>> = BTreeMap::new();
    for x in app.store.list_findings(Some(&month), None).await? {
        if !cleaning.contains(&x.class_code) {
            continue;
        }
        if let Some(area) = map.areas.locate(AreaLayer::ContractorArea, x.lon, x.lat) {
            findings.entry(area.owner.clone()).or_default().push(FindingLine {
                finding_id: x.id,
                case_id: x.case_id,
                case_number: x.case_number,
                class_code: x.class_code,
                grid_code: x.grid_code,
                owner: Some(area.owner.clone()),
            });
        }
    }
    let mut out = Vec::new();
    for p in parties.into_iter().filter(|p| !p.is_empty()) {
        let lines = by_party.remove(&p).unwrap_or_default();
        let found = findings.remove(&p).unwrap_or_default();
        out.push(
            contract::cleaning_statement(&cfg.cleaning, &p, &month, &lines, &found)
                .ok_or_else(|| ApiError::bad_query("month", "a month as YYYY-MM"))?,
        );
    }
    let title = format!("保洁合同月度结算 {month}");
    let stem = format!("cleaning-statements-{month}");
    sheets::respond(&app, download, out, |s| sheets::statements_table(&title, s, None), &stem).await
}
