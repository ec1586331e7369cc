//! Money: the reward rules and citizen categories, duplicate candidates and merging, the ledger
//! and its approvals, monthly settlements with payout files, deduction statements and the
//! budget view.
//!
//! The rules live in `citygrid_core::reward` / `settlement`; the store appends entries under
//! one lock. Here: who may see and do what, and keeping the ledger in step with the cases —
//! after every case action ([`after_change`]) and again, over every citizen case changed since
//! the last run, before a settlement (a crash between the two can delay an entry, never lose it).

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::routes::cases::can_see;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use citygrid_core::case::{self, Action, ActionInput, Case, Command, State as CaseState};
use citygrid_core::citizen::Service;
use citygrid_core::org::{Role, Scope};
use citygrid_core::reward::{self, BudgetView, Candidate, DedupFacts, EntryKind, PartyKind, Rules};
use citygrid_core::settlement::{self, PartyTotal};
use citygrid_geo::layers::AreaLayer;
use citygrid_store::{CaseFilter, LedgerCtx, LedgerFilter, LedgerRow, Reconciled, Visibility};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_rules, put_rules))
        .routes(routes!(list_services))
        .routes(routes!(put_service))
        .routes(routes!(duplicates))
        .routes(routes!(merge))
        .routes(routes!(list_ledger))
        .routes(routes!(get_entry))
        .routes(routes!(decide_approval))
        .routes(routes!(reconcile_ledger))
        .routes(routes!(budget))
        .routes(routes!(list_settlements, run_settlement))
        .routes(routes!(get_settlement))
        .routes(routes!(settlement_file))
        .routes(routes!(deduction_statements))
}

/// Roles that read money: the finance side of the centre, and district command centres for
/// their district.
const READERS: &[Role] = &[Role::Admin, Role::Evaluator, Role::Leader, Role::Commander];
/// Roles that approve large rewards (审批).
const APPROVERS: &[Role] = &[Role::Admin, Role::Leader];

/// The region prefix a reader is bound to (`None` = the whole city).
fn region_prefix(auth: &Auth) -> ApiResult<Option<String>> {
    auth.region_prefix("money figures")
}

/// City-wide operations (settlement, rules) need a city-wide scope.
fn require_city(auth: &Auth) -> ApiResult<()> {
    auth.require_city("settlements and rules")
}

/// What every reconciliation reads besides the set: the rules and the citizen categories,
/// read once per batch rather than once per problem.
pub struct LedgerInputs {
    rules: Rules,
    services: HashMap<String, Service>,
}

impl LedgerInputs {
    pub async fn load(app: &AppState) -> ApiResult<LedgerInputs> {
        Ok(LedgerInputs {
            rules: app.store.reward_rules().await?,
            services: app.store.list_services().await?.into_iter().map(|s| (s.code.clone(), s)).collect(),
        })
    }
}

/// Reconcile the merged set of `case_id` with the current rules and map.
pub async fn reconcile(app: &AppState, case_id: i64, why: &str) -> ApiResult<Reconciled> {
    reconcile_with(app, &LedgerInputs::load(app).await?, case_id, why).await
}

async fn reconcile_with(app: &AppState, inputs: &LedgerInputs, case_id: i64, why: &str) -> ApiResult<Reconciled> {
    let map = app.map();
    let areas = move |lon: f64, lat: f64| {
        (
            map.areas.locate(AreaLayer::ContractorArea, lon, lat).map(|a| a.owner.clone()),
            map.areas.locate(AreaLayer::CollectorArea, lon, lat).map(|a| a.owner.clone()),
        )
    };
    let ctx = LedgerCtx {
        rules: &inputs.rules,
        services: &inputs.services,
        offset_minutes: app.calendar().utc_offset_minutes(),
        areas: &areas,
        now: app.now(),
        why,
    };
    Ok(app.store.reconcile_set(case_id, &ctx).await?)
}

/// Bring the ledger in line with a case that just changed (`why`: the action). Runs after the
/// case's commit; a failure is logged and caught up by the next settlement's reconciliation.
pub async fn after_change(app: &AppState, case: &Case, why: &str) {
    // Only these steps can change who is owed what: verification and acceptance confirm a
    // problem, rejection, refusal and voiding (merging) end or join one. Later steps of the
    // loop (dispatch to close) leave the assessment as it was.
    if !matches!(why, "verify" | "accept" | "reject" | "refuse" | "void") {
        return;
    }
    if let Err(e) = reconcile(app, case.id, why).await {
        tracing::error!(case = case.id, error = %e, "ledger reconciliation failed; the settlement run will retry");
    }
}

// ---- rules and categories ------------------------------------------------------------------

/// The reward rules: approval threshold, caps, same-spot rule, deduction table, budget,
/// settlement day. Amounts are integer fen.
#[utoipa::path(get, path = "/api/v1/rewards/rules", tag = "money", security(("bearer" = [])),
    responses((status = 200, body = Rules), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn get_rules(State(app): State<AppState>, auth: Auth) -> ApiResult<Json<Rules>> {
    auth.require(READERS)?;
    Ok(Json(app.store.reward_rules().await?))
}

/// Replace the reward rules (administrators, city scope). Applies to entries written from now
/// on; standing entries change only when their case changes or a reconcile is asked for.
#[utoipa::path(put, path = "/api/v1/rewards/rules", tag = "money", security(("bearer" = [])), request_body = Rules,
    responses((status = 200, body = Rules), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_rules(State(app): State<AppState>, auth: Auth, Json(rules): Json<Rules>) -> ApiResult<Json<Rules>> {
    auth.require(&[Role::Admin])?;
    require_city(&auth)?;
    rules.validate().map_err(|(f, m)| ApiError::invalid(f, m))?;
    app.store.put_reward_rules(&rules).await?;
    Ok(Json(rules))
}

/// The citizen categories (市民举报类别) with their reward amounts, duplicate rules and the
/// cleaning flag; the same list Open311 serves as `services`.
#[utoipa::path(get, path = "/api/v1/citizen-services", tag = "money", security(("bearer" = [])),
    responses((status = 200, body = Vec<Service>), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_services(State(app): State<AppState>, _auth: Auth) -> ApiResult<Json<Vec<Service>>> {
    Ok(Json(app.store.list_services().await?))
}

/// Create or replace one citizen category (administrators). Its code is the event class it
/// files as; the class must exist in the catalogue.
#[utoipa::path(put, path = "/api/v1/citizen-services/{code}", tag = "money", security(("bearer" = [])),
    params(("code" = String, Path, description = "Event class code, e.g. 06010")), request_body = Service,
    responses((status = 200, body = Service), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_service(
    State(app): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
    Json(service): Json<Service>,
) -> ApiResult<Json<Service>> {
    auth.require(&[Role::Admin])?;
    require_city(&auth)?;
    if service.code != code {
        return Err(ApiError::invalid("code", "must equal the code in the path"));
    }
    service.validate().map_err(|(f, m)| ApiError::invalid(f, m))?;
    if app.class(citygrid_core::codes::Kind::Event, &service.code).is_none() {
        return Err(ApiError::invalid("code", format!("no event class {}", service.code)));
    }
    app.store.put_services(std::slice::from_ref(&service)).await?;
    Ok(Json(service))
}

// ---- duplicates ----------------------------------------------------------------------------

/// A possible duplicate, with enough of the case to decide.
#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicateOut {
    #[serde(flatten)]
    pub candidate: Candidate,
    pub number: String,
    pub state: CaseState,
    pub source: case::Source,
    pub class_code: String,
    pub description: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
}

/// Reports that may be the same problem as this one (疑似重复), most likely first: same or
/// related class, within the category's radius and time window, not voided or rejected. The
/// acceptor merges with `POST /api/v1/cases/{id}/merge` or keeps them apart (does nothing).
#[utoipa::path(get, path = "/api/v1/cases/{id}/duplicates", tag = "cases", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Case id")),
    responses((status = 200, body = Vec<DuplicateOut>), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn duplicates(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<DuplicateOut>>> {
    auth.require(&[Role::Acceptor, Role::Leader, Role::Collector, Role::Dispatcher, Role::Commander, Role::Admin])?;
    let tree = app.departments().await?;
    let case = app.store.get_case(id).await?.filter(|c| can_see(&auth, c, &tree)).ok_or(ApiError::NotFound("case"))?;
    let rule = match app.store.get_service(case.class_code.as_str()).await? {
        Some(s) => s.dedup,
        // Staff classes without a citizen category: a point problem of a day.
        None => citygrid_core::citizen::DedupRule { radius_m: 50.0, window_hours: 24, related: vec![] },
    };
    let p = case.location;
    let dlat = rule.radius_m / 111_000.0;
    let dlon = dlat / p.lat.to_radians().cos().max(0.01);
    let window = jiff::SignedDuration::from_hours(i64::from(rule.window_hours));
    let vis = match &auth.user.scope {
        Scope::Region { code } => Visibility::Region(code.clone()),
        _ => Visibility::All,
    };
    let filter = CaseFilter {
        bbox: Some((p.lon - dlon, p.lat - dlat, p.lon + dlon, p.lat + dlat)),
        created_from: case.created_at.checked_sub(window).ok(),
        created_to: case.created_at.checked_add(window).ok(),
        ..CaseFilter::default()
    };
    let page = app.store.list_cases(&vis, &filter, None, 500).await?;
    let others: Vec<&Case> = page
        .items
        .iter()
        .filter(|c| !matches!(c.state, CaseState::Voided | CaseState::Rejected | CaseState::Refused))
        .filter(|c| can_see(&auth, c, &tree))
        .collect();
    let facts = |c: &Case| DedupFacts {
        case_id: c.id,
        class_code: c.class_code.as_str().to_owned(),
        location: c.location,
        received_at: c.created_at,
    };
    let ranked = reward::rank_candidates(&facts(&case), &others.iter().map(|c| facts(c)).collect::<Vec<_>>(), &rule);
    let by_id: HashMap<i64, &Case> = others.iter().map(|c| (c.id, *c)).collect();
    Ok(Json(
        ranked
            .into_iter()
            .filter_map(|cand| {
                let c = by_id.get(&cand.case_id)?;
                Some(DuplicateOut {
                    number: c.number.clone(),
                    state: c.state,
                    source: c.source,
                    class_code: c.class_code.as_str().to_owned(),
                    description: c.description.clone(),
                    created_at: c.created_at,
                    candidate: cand,
                })
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The case this one duplicates: the merged set's root is found from it.
    pub into: i64,
    /// Why (kept in the log); defaults to "duplicate of <number>".
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// Merge this report into another of the same problem: the `void` action with `duplicate_of`
/// (作废, 重复). The merged report keeps its own events; the reward of the problem is decided
/// again over the whole set (the earliest verified citizen report wins).
#[utoipa::path(post, path = "/api/v1/cases/{id}/merge", tag = "cases", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The duplicate")), request_body = MergeBody,
    responses((status = 200, body = crate::routes::cases::CaseOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn merge(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    Json(body): Json<MergeBody>,
) -> ApiResult<Json<Case>> {
    auth.require(Action::Void.roles())?;
    let tree = app.departments().await?;
    let case = app.store.get_case(id).await?.filter(|c| can_see(&auth, c, &tree)).ok_or(ApiError::NotFound("case"))?;
    let into = duplicate_target(&app, &auth, &tree, &case, body.into, "into").await?;
    let note = body.note.unwrap_or_else(|| format!("与 {} 为同一问题，合并", into.number));
    let step = Command::parse(
        Action::Void,
        ActionInput { note: Some(note), duplicate_of: Some(into.id), ..ActionInput::default() },
    )?;
    Ok(Json(crate::routes::cases::take_step(&app, &auth, id, step).await?))
}

/// The case `case` may be merged into (`void` with `duplicate_of`, or `merge`): one the actor
/// can see, not this case, and still standing (not voided, rejected or refused) — so merged
/// sets stay trees with a standing root.
pub async fn duplicate_target(
    app: &AppState,
    auth: &Auth,
    tree: &citygrid_core::org::DepartmentTree,
    case: &Case,
    into: i64,
    field: &str,
) -> ApiResult<Case> {
    let target = app
        .store
        .get_case(into)
        .await?
        .filter(|c| can_see(auth, c, tree))
        .ok_or_else(|| ApiError::invalid(field, "no such case"))?;
    if target.id == case.id {
        return Err(ApiError::invalid(field, "a case cannot duplicate itself"));
    }
    if matches!(target.state, CaseState::Voided | CaseState::Rejected | CaseState::Refused) {
        return Err(ApiError::invalid(
            field,
            format!("case {} is {}: name the report that stands", target.number, target.state.as_str()),
        ));
    }
    // Only a voided case carries `duplicate_of`, so a standing target cannot lead back here.
    Ok(target)
}

// ---- the ledger ----------------------------------------------------------------------------

/// A ledger entry (台账分录): immutable; a correction is a later entry reversing it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryOut {
    pub id: i64,
    pub kind: EntryKind,
    pub party_kind: PartyKind,
    /// Citizen user id, contractor name, or `collection`.
    pub party: String,
    pub case_id: i64,
    pub case_number: String,
    pub class_code: String,
    pub grid_code: String,
    /// Root case of the merged set (the problem).
    pub set_root: i64,
    /// Integer fen; negative on a reversal.
    pub amount_fen: i64,
    /// Yuan with two decimals, for reading.
    pub amount_yuan: String,
    /// The rule that made it: `first_reporter`, `cleaning_missed`, `collection_missed`,
    /// `reversal:<why>`.
    pub rule: String,
    pub reverses: Option<i64>,
    pub reversed_by: Option<i64>,
    pub needs_approval: bool,
    pub approved: Option<bool>,
    pub status: reward::EntryStatus,
    /// Accrual month, `YYYY-MM` (local).
    pub month: String,
    pub settled_in: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// Cases of the problem when the entry was written.
    pub set_cases: Vec<i64>,
    /// The collector whose area holds the point (missed-report deductions).
    pub collector: Option<String>,
    pub why: String,
}

fn entry_out(e: LedgerRow) -> EntryOut {
    let status = e.status();
    EntryOut {
        id: e.id,
        kind: e.kind,
        party_kind: e.party_kind,
        party: e.party,
        case_id: e.case_id,
        case_number: e.case_number,
        class_code: e.class_code,
        grid_code: e.grid_code,
        set_root: e.set_root,
        amount_yuan: reward::yuan(e.amount_fen),
        amount_fen: e.amount_fen,
        rule: e.rule,
        reverses: e.reverses,
        reversed_by: e.reversed_by,
        needs_approval: e.needs_approval,
        approved: e.approved,
        status,
        month: e.month,
        settled_in: e.settled_in,
        created_at: e.created_at,
        set_cases: e.detail.set_cases,
        collector: e.detail.collector,
        why: e.detail.why,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    pub kind: Option<EntryKind>,
    pub party_kind: Option<PartyKind>,
    pub party: Option<String>,
    /// Accrual month `YYYY-MM`.
    pub month: Option<String>,
    pub case_id: Option<i64>,
    /// Only rewards waiting for an approver.
    pub awaiting_approval: Option<bool>,
    pub cursor: Option<String>,
    /// 1–500 (default 100).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerPage {
    pub items: Vec<EntryOut>,
    /// Sum of `amount_fen` over this page.
    pub page_total_fen: i64,
    pub next_cursor: Option<String>,
}

fn month_param(m: Option<&str>, field: &str) -> ApiResult<Option<String>> {
    match m {
        Some(m) if settlement::valid_month(m) => Ok(Some(m.to_owned())),
        Some(_) => Err(ApiError::bad_query(field, "a month as YYYY-MM")),
        None => Ok(None),
    }
}

/// The ledger, newest first, within the reader's region.
#[utoipa::path(get, path = "/api/v1/ledger", tag = "money", security(("bearer" = [])), params(LedgerQuery),
    responses((status = 200, body = LedgerPage), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_ledger(
    State(app): State<AppState>,
    auth: Auth,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<Json<LedgerPage>> {
    auth.require(READERS)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_query("limit", "1 to 500"));
    }
    let before = q
        .cursor
        .as_deref()
        .map(|c| c.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| ApiError::bad_query("cursor", "not a cursor")))
        .transpose()?;
    let filter = LedgerFilter {
        kind: q.kind,
        party_kind: q.party_kind,
        party: q.party.clone(),
        month: month_param(q.month.as_deref(), "month")?,
        case_id: q.case_id,
        region_prefix: region_prefix(&auth)?,
        awaiting_approval: q.awaiting_approval.unwrap_or(false),
    };
    let page = app.store.list_ledger(&filter, before, limit).await?;
    let items: Vec<EntryOut> = page.items.into_iter().map(entry_out).collect();
    Ok(Json(LedgerPage {
        page_total_fen: items.iter().map(|e| e.amount_fen).sum(),
        items,
        next_cursor: page.next.map(|n| n.to_string()),
    }))
}

async fn entry_in_scope(app: &AppState, auth: &Auth, id: i64) -> ApiResult<LedgerRow> {
    let e = app.store.get_ledger_entry(id).await?.ok_or(ApiError::NotFound("ledger entry"))?;
    match region_prefix(auth)? {
        Some(p) if !e.grid_code.starts_with(&p) => Err(ApiError::NotFound("ledger entry")),
        _ => Ok(e),
    }
}

/// One ledger entry.
#[utoipa::path(get, path = "/api/v1/ledger/{id}", tag = "money", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Entry id")),
    responses((status = 200, body = EntryOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_entry(State(app): State<AppState>, auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<EntryOut>> {
    auth.require(READERS)?;
    Ok(Json(entry_out(entry_in_scope(&app, &auth, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalBody {
    pub approved: bool,
    /// Required when declining.
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// Approve or decline a reward above the approval threshold (审批). Declining reverses the
/// reward and its deductions; approving makes it payable at the next settlement.
#[utoipa::path(post, path = "/api/v1/ledger/{id}/approval", tag = "money", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Entry id")), request_body = ApprovalBody,
    responses((status = 200, body = EntryOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn decide_approval(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    Json(body): Json<ApprovalBody>,
) -> ApiResult<Json<EntryOut>> {
    auth.require(APPROVERS)?;
    let e = entry_in_scope(&app, &auth, id).await?;
    let note = body.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::invalid("note", "at most 2000 characters"));
    }
    if !body.approved && note.is_none() {
        return Err(ApiError::invalid("note", "a reason is required to decline"));
    }
    app.store.decide_approval(id, body.approved, auth.user.id, app.now(), note).await?;
    if !body.approved {
        reconcile(&app, e.case_id, "approval_declined").await?;
    }
    Ok(Json(entry_out(entry_in_scope(&app, &auth, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileBody {
    /// One case's problem; without it, every citizen case changed since `since` (RFC 3339),
    /// or all of them.
    pub case_id: Option<i64>,
    pub since: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReconcileOut {
    /// Sets looked at.
    pub sets: usize,
    /// Entries written.
    pub written: usize,
}

/// Re-check the ledger against the cases (administrators): after a change of the rules, a
/// re-imported responsibility map, or to verify nothing is missing. Idempotent.
#[utoipa::path(post, path = "/api/v1/ledger/reconcile", tag = "money", security(("bearer" = [])), request_body = ReconcileBody,
    responses((status = 200, body = ReconcileOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn reconcile_ledger(
    State(app): State<AppState>,
    auth: Auth,
    Json(body): Json<ReconcileBody>,
) -> ApiResult<Json<ReconcileOut>> {
    auth.require(&[Role::Admin])?;
    require_city(&auth)?;
    let ids = match (body.case_id, body.since.as_deref()) {
        (Some(id), _) => {
            app.store.get_case(id).await?.ok_or(ApiError::NotFound("case"))?;
            vec![id]
        }
        (None, since) => {
            let since = since
                .map(|s| s.parse::<jiff::Timestamp>().map_err(|e| ApiError::invalid("since", e.to_string())))
                .transpose()?;
            app.store.cases_to_reconcile(since).await?
        }
    };
    let (sets, written) = reconcile_all(&app, &ids, "reconcile").await?;
    Ok(Json(ReconcileOut { sets, written }))
}

/// Reconcile the sets of `ids`, each set once.
async fn reconcile_all(app: &AppState, ids: &[i64], why: &str) -> ApiResult<(usize, usize)> {
    let inputs = LedgerInputs::load(app).await?;
    let mut done = std::collections::HashSet::new();
    let (mut sets, mut written) = (0, 0);
    for id in ids {
        if done.contains(id) {
            continue;
        }
        let r = reconcile_with(app, &inputs, *id, why).await?;
        done.extend(r.cases.iter().copied());
        sets += 1;
        written += r.written.len();
    }
    Ok((sets, written))
}

// ---- budget --------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MonthQuery {
    /// `YYYY-MM`; default the current month.
    pub month: Option<String>,
}

/// The local month of now and the bounds of a month, in UTC milliseconds.
fn month_bounds(month: &str, offset_minutes: i32) -> ApiResult<(i64, i64)> {
    let (y, m) = month.split_once('-').ok_or_else(|| ApiError::bad_query("month", "YYYY-MM"))?;
    let y: i16 = y.parse().map_err(|_| ApiError::bad_query("month", "YYYY-MM"))?;
    let m: i8 = m.parse().map_err(|_| ApiError::bad_query("month", "YYYY-MM"))?;
    let off = jiff::tz::Offset::from_seconds(offset_minutes * 60).unwrap_or(jiff::tz::Offset::UTC);
    let start = jiff::civil::date(y, m, 1).to_datetime(jiff::civil::Time::midnight());
    let out_of_range = |_| ApiError::bad_query("month", "a month between 0001-01 and 9999-11");
    let end = start.checked_add(jiff::Span::new().months(1)).map_err(out_of_range)?;
    let start = off.to_timestamp(start).map_err(out_of_range)?;
    let end = off.to_timestamp(end).map_err(out_of_range)?;
    Ok((start.as_millisecond(), end.as_millisecond()))
}

/// Month-to-date rewards against the monthly budget (预算), with the pace projected to the
/// month's end; `alert` is true when the pace exceeds the budget. Net of reversals.
#[utoipa::path(get, path = "/api/v1/rewards/budget", tag = "money", security(("bearer" = [])), params(MonthQuery),
    responses((status = 200, body = BudgetView), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn budget(
    State(app): State<AppState>,
    auth: Auth,
    Query(q): Query<MonthQuery>,
) -> ApiResult<Json<BudgetView>> {
    auth.require(READERS)?;
    require_city(&auth)?;
    let offset = app.calendar().utc_offset_minutes();
    let now = app.now();
    let month = month_param(q.month.as_deref(), "month")?.unwrap_or_else(|| reward::month_of(now, offset));
    let (start, end) = month_bounds(&month, offset)?;
    let rules = app.store.reward_rules().await?;
    let mtd = app.store.month_rewards_fen(&month, None).await?;
    let elapsed = (now.as_millisecond() - start).clamp(0, end - start);
    Ok(Json(reward::budget_view(&month, rules.monthly_budget_fen, mtd, elapsed, end - start)))
}

// ---- settlements ---------------------------------------------------------------------------

/// A settlement run as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementOut {
    pub month: String,
    #[schema(value_type = String, format = DateTime)]
    pub run_at: jiff::Timestamp,
    pub run_by: Option<i64>,
    /// False when the month had been settled before this request (nothing was written).
    pub created: bool,
    pub entries: usize,
    pub rewards_fen: i64,
    pub rewards_yuan: String,
    pub deductions_fen: i64,
    pub deductions_yuan: String,
    /// Paid per channel (`cash`, `phone_credit`, `wechat`), fen.
    pub per_channel_fen: std::collections::BTreeMap<String, i64>,
    pub citizens: Vec<PartyTotal>,
    pub contractors: Vec<PartyTotal>,
    /// Parties whose net was not positive, carried to the next month.
    pub carried: Vec<PartyTotal>,
    pub awaiting_approval: usize,
    /// File name → SHA-256; download at `/api/v1/settlements/{month}/files/{name}`.
    pub files: std::collections::BTreeMap<String, String>,
}

fn settlement_out(s: citygrid_store::Settlement) -> SettlementOut {
    let o = s.outcome;
    SettlementOut {
        month: s.month,
        run_at: s.run_at,
        run_by: s.run_by,
        created: s.created,
        entries: o.lines.len(),
        rewards_yuan: reward::yuan(o.rewards_fen),
        rewards_fen: o.rewards_fen,
        deductions_yuan: reward::yuan(o.deductions_fen),
        deductions_fen: o.deductions_fen,
        per_channel_fen: o.per_channel_fen,
        citizens: o.citizens,
        contractors: o.contractors,
        carried: o.carried,
        awaiting_approval: o.awaiting_approval,
        files: s.files,
    }
}

/// Settlement runs, newest month first.
#[utoipa::path(get, path = "/api/v1/settlements", tag = "money", security(("bearer" = [])),
    responses((status = 200, body = Vec<SettlementOut>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_settlements(State(app): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<SettlementOut>>> {
    auth.require(READERS)?;
    require_city(&auth)?;
    Ok(Json(app.store.list_settlements().await?.into_iter().map(settlement_out).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleBody {
    /// The month to close, `YYYY-MM`; it must have ended. Default: the previous month.
    pub month: Option<String>,
}

/// Run the settlement of a month (月度结算): reconcile every citizen case changed since the
/// last run, then pay every payable entry up to the month's end. Idempotent: a month settled
/// already answers 200 with the stored run and writes nothing; a new run answers 201.
#[utoipa::path(post, path = "/api/v1/settlements", tag = "money", security(("bearer" = [])), request_body = SettleBody,
    responses((status = 201, body = SettlementOut), (status = 200, body = SettlementOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn run_settlement(
    State(app): State<AppState>,
    auth: Auth,
    Json(body): Json<SettleBody>,
) -> ApiResult<Response> {
    auth.require(&[Role::Admin])?;
    require_city(&auth)?;
    let s = settle(&app, body.month.as_deref(), Some(auth.user.id)).await?;
    let status = if s.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(settlement_out(s))).into_response())
}

/// Settle `month` (default: the previous month), reconciling first. Shared by the API, the
/// scheduler and `citygrid settle`.
pub async fn settle(app: &AppState, month: Option<&str>, by: Option<i64>) -> ApiResult<citygrid_store::Settlement> {
    let offset = app.calendar().utc_offset_minutes();
    let now = app.now();
    let current = reward::month_of(now, offset);
    let month = match month {
        Some(m) if settlement::valid_month(m) => m.to_owned(),
        Some(_) => return Err(ApiError::invalid("month", "a month as YYYY-MM")),
        None => settlement::previous_month(&current).ok_or_else(|| ApiError::Internal("month arithmetic".into()))?,
    };
    if month >= current {
        return Err(ApiError::invalid(
            "month",
            format!(
                "{month} has not ended yet; it can be settled from {}",
                settlement::next_month(&month).unwrap_or_default()
            ),
        ));
    }
    if let Some(done) = app.store.get_settlement(&month).await? {
        return Ok(done);
    }
    let since = app.store.list_settlements().await?.first().map(|s| s.run_at);
    let ids = app.store.cases_to_reconcile(since).await?;
    reconcile_all(app, &ids, "settlement").await?;
    Ok(app.store.settle_month(&month, now, by).await?)
}

/// One settlement run.
#[utoipa::path(get, path = "/api/v1/settlements/{month}", tag = "money", security(("bearer" = [])),
    params(("month" = String, Path, description = "YYYY-MM")),
    responses((status = 200, body = SettlementOut), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_settlement(
    State(app): State<AppState>,
    auth: Auth,
    Path(month): Path<String>,
) -> ApiResult<Json<SettlementOut>> {
    auth.require(READERS)?;
    require_city(&auth)?;
    let s = app.store.get_settlement(&month).await?.ok_or(ApiError::NotFound("settlement"))?;
    Ok(Json(settlement_out(s)))
}

/// A file of a settlement run, byte for byte as the run wrote it: `payout-<month>-<channel>.csv`
/// (one per channel: cash, phone_credit, wechat), `deductions-<month>.csv`, `report-<month>.csv`.
#[utoipa::path(get, path = "/api/v1/settlements/{month}/files/{name}", tag = "money", security(("bearer" = [])),
    params(("month" = String, Path, description = "YYYY-MM"), ("name" = String, Path, description = "File name")),
    responses((status = 200, description = "CSV, UTF-8", content_type = "text/csv"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn settlement_file(
    State(app): State<AppState>,
    auth: Auth,
    Path((month, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    auth.require(READERS)?;
    require_city(&auth)?;
    let text = app.store.settlement_file(&month, &name).await?.ok_or(ApiError::NotFound("file"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        text,
    )
        .into_response())
}

// ---- deduction statements ------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// `YYYY-MM` (accrual month of the entries).
    pub month: String,
    /// `contractor` or `collection`; both when absent.
    pub party_kind: Option<PartyKind>,
    pub party: Option<String>,
}

/// One line of a deduction statement: the entry and the case behind it, with its photos.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementLine {
    pub entry_id: i64,
    pub case_id: i64,
    pub case_number: String,
    pub class_code: String,
    pub grid_code: String,
    pub address: Option<String>,
    pub description: String,
    /// The report's photos (`/api/v1/photos/{id}`).
    pub photo_ids: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub reported_at: jiff::Timestamp,
    pub rule: String,
    pub amount_fen: i64,
    pub collector: Option<String>,
    pub status: reward::EntryStatus,
}

/// A contractor's (or the collection company's) statement for a month (扣款明细).
#[derive(Debug, Serialize, ToSchema)]
pub struct Statement {
    pub party_kind: PartyKind,
    pub party: String,
    pub month: String,
    pub total_fen: i64,
    pub total_yuan: String,
    pub lines: Vec<StatementLine>,
}

/// Monthly deduction statements, one per contractor, every line traceable to a case and its
/// photos. Net of reversals (a reversal appears as a negative line).
#[utoipa::path(get, path = "/api/v1/deductions/statements", tag = "money", security(("bearer" = [])), params(StatementQuery),
    responses((status = 200, body = Vec<Statement>), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn deduction_statements(
    State(app): State<AppState>,
    auth: Auth,
    Query(q): Query<StatementQuery>,
) -> ApiResult<Json<Vec<Statement>>> {
    auth.require(READERS)?;
    let month = month_param(Some(&q.month), "month")?.unwrap_or_default();
    if q.party_kind == Some(PartyKind::Citizen) {
        return Err(ApiError::bad_query("party_kind", "statements are for contractor or collection"));
    }
    let filter = LedgerFilter {
        kind: Some(EntryKind::Deduction),
        party_kind: q.party_kind,
        party: q.party.clone(),
        month: Some(month.clone()),
        region_prefix: region_prefix(&auth)?,
        ..LedgerFilter::default()
    };
    let mut rows = Vec::new();
    let mut cursor = None;
    loop {
        let page = app.store.list_ledger(&filter, cursor, 1000).await?;
        rows.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    rows.sort_by_key(|r| r.id);
    let mut cases: HashMap<i64, Case> = HashMap::new();
    let mut statements: std::collections::BTreeMap<(PartyKind, String), Statement> = Default::default();
    for r in rows {
        if let std::collections::hash_map::Entry::Vacant(v) = cases.entry(r.case_id) {
            if let Some(c) = app.store.get_case(r.case_id).await? {
                v.insert(c);
            }
        }
        let c = cases.get(&r.case_id);
        let st = statements.entry((r.party_kind, r.party.clone())).or_insert_with(|| Statement {
            party_kind: r.party_kind,
            party: r.party.clone(),
            month: month.clone(),
            total_fen: 0,
            total_yuan: String::new(),
            lines: vec![],
        });
        st.total_fen += r.amount_fen;
        let out = entry_out(r);
        st.lines.push(StatementLine {
            entry_id: out.id,
            case_id: out.case_id,
            case_number: out.case_number,
            class_code: out.class_code,
            grid_code: out.grid_code,
            address: c.and_then(|c| c.address.clone()),
            description: c.map(|c| c.description.clone()).unwrap_or_default(),
            photo_ids: c.map(|c| c.photo_ids.clone()).unwrap_or_default(),
            reported_at: c.map(|c| c.created_at).unwrap_or(out.created_at),
            rule: out.rule,
            amount_fen: out.amount_fen,
            collector: out.collector,
            status: out.status,
        });
    }
    Ok(Json(
        statements
            .into_values()
            .map(|mut s| {
                s.total_yuan = reward::yuan(s.total_fen);
                s
            })
            .collect(),
    ))
}

// ---- the scheduler -------------------------------------------------------------------------

/// Run the monthly settlement by itself: every ten minutes, from the rules' settlement day
/// (the 5th) on, settle the previous month if it is not settled yet.
pub fn spawn_scheduler(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            if let Err(e) = scheduled_run(&app).await {
                tracing::error!(error = %e, "scheduled settlement failed; retrying in ten minutes");
            }
        }
    })
}

async fn scheduled_run(app: &AppState) -> ApiResult<()> {
    let rules = app.store.reward_rules().await?;
    let offset = app.calendar().utc_offset_minutes();
    let (_, _, day) = reward::local_day(app.now(), offset);
    if day < rules.settlement_day as i8 {
        return Ok(());
    }
    let current = reward::month_of(app.now(), offset);
    let Some(previous) = settlement::previous_month(&current) else { return Ok(()) };
    if app.store.get_settlement(&previous).await?.is_none() {
        let s = settle(app, Some(&previous), None).await?;
        tracing::info!(month = %s.month, rewards_fen = s.outcome.rewards_fen, "monthly settlement written");
    }
    Ok(())
}
