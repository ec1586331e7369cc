//! Open311 GeoReport v2 at `/open311/v2/` (XML and JSON; not in the OpenAPI document), with
//! FixMyStreet's `servicerequestupdates` extension, so that existing 311 apps, client
//! libraries and a FixMyStreet installation can use citygrid unchanged.
//!
//! Reports go through the same `file_report` as the staff API and the citizen app, so every
//! channel validates and locates alike. What a request carries beyond the case (contact data,
//! attribute answers, the media URL, the batch token) is kept in `open311_requests` and never
//! shown on public reads.
//!
//! Real clients are sloppy (see `OPEN311.md`): an empty parameter counts as absent, `api_key`
//! may come in the query string or the form body, the old python client asks for
//! `service/{code}` (singular), and a `+` of a time-zone offset may arrive as a space.
//! One catch-all route takes every path below `/open311/v2/`, so that even an unknown path or
//! method is answered in the Open311 error format of the suffix it asked for.

mod format;

use crate::auth::{token_hash, Auth};
use crate::error::{ApiError, ApiResult, Json};
use crate::routes::cases::{file_report, LocationIn, ReportBody};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use citygrid_core::case::{project, Case, Change, EndReason, Event, Source};
use citygrid_core::citizen::{Datatype, PublicStatus, Service, ServiceType};
use citygrid_core::codes::Kind;
use citygrid_core::org::{Actor, Role};
use citygrid_geo::geocode::MatchLevel;
use citygrid_store::Idempotency;
use format::{Doc, Format, Obj, Open311Error, Open311Result, Params, Value};
use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// Settings keys: the city's jurisdiction id (its web domain) and the discovery contact.
pub const JURISDICTION_KEY: &str = "open311.jurisdiction_id";
pub const CONTACT_KEY: &str = "open311.contact";
/// The demo city's jurisdiction id and Open311 API key.
pub const DEMO_JURISDICTION: &str = "xuzhou.gov.cn";
pub const DEMO_KEY: &str = "demo-open311-key";
const DEMO_CLIENT: &str = "demo";

const SPECIFICATION: &str = "http://wiki.open311.org/GeoReport_v2";
/// When this endpoint's behaviour last changed (discovery `changeset`, sortable).
const CHANGESET: &str = "2026-09-28T00:00:00+08:00";
const DEFAULT_CONTACT: &str = "数字化城市管理监督指挥中心，城管热线 12319";
const KEY_SERVICE: &str = "API keys are issued by the city's administrator (POST /api/v1/open311/clients).";
const SERVICE_NOTICE: &str = "已收到。监督员将到现场核实，核实属实后立案处置。";

/// The spec's limit of a description.
const MAX_DESCRIPTION: usize = 4000;
/// What a case holds (`file_report`); a longer Open311 description is kept whole in the
/// request's own row and shown from there.
const CASE_DESCRIPTION: usize = 2000;
const MAX_BODY: usize = 256 * 1024;
const MAX_PAGE_SIZE: u32 = 1000;
const MAX_IDS: usize = 1000;
/// Longest span of a list or an updates poll (the spec's 90 days).
const MAX_SPAN: SignedDuration = SignedDuration::from_hours(90 * 24);
/// Default window of an updates poll without dates.
const DEFAULT_UPDATES_SPAN: SignedDuration = SignedDuration::from_hours(24);

/// The Open311 routes, and the administrators' way to issue a key.
pub fn router() -> Router<AppState> {
    Router::new().route("/open311/v2/{*path}", any(dispatch)).route("/api/v1/open311/clients", post(create_client))
}

/// Demo data of the Open311 channel: the jurisdiction id `xuzhou.gov.cn` and the `demo` client
/// with key `demo-open311-key` and its own citizen-role user `open311-demo`. Idempotent.
pub async fn seed_demo(app: &AppState) -> ApiResult<()> {
    if app.store.get_setting(JURISDICTION_KEY).await?.is_none() {
        app.store.put_setting(JURISDICTION_KEY, DEMO_JURISDICTION).await?;
    }
    if app.store.open311_client_by_name(DEMO_CLIENT).await?.is_none() {
        app.store.create_open311_client(DEMO_CLIENT, &token_hash(DEMO_KEY), "open311-demo", app.now()).await?;
    }
    Ok(())
}

// ---- dispatch --------------------------------------------------------------------------------

async fn dispatch(State(app): State<AppState>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().strip_prefix("/open311/v2/").unwrap_or_default();
    let mut segments: Vec<&str> = path.split('/').collect();
    let last = segments.pop().unwrap_or_default();
    let (name, fmt) = Format::split(last);
    let fmt = match fmt {
        Ok(f) => f,
        Err(e) => return Open311Error::bad(e).respond(Format::Xml),
    };
    segments.push(name);
    let req = Req { app, fmt, method, headers, params: Params::default() };
    match route(req, &segments, uri.query().unwrap_or_default(), body).await {
        Ok(res) => res,
        Err(e) => e.respond(fmt),
    }
}

/// One Open311 request: the state, the format asked, and its parameters.
struct Req {
    app: AppState,
    fmt: Format,
    method: Method,
    headers: HeaderMap,
    params: Params,
}

async fn route(mut req: Req, segments: &[&str], query: &str, body: Bytes) -> Open311Result<Response> {
    req.params = Params::parse(query.as_bytes())?;
    let post = match req.method {
        Method::GET | Method::HEAD => false,
        Method::POST => true,
        _ => return Err(Open311Error::bad(format!("{} is not served: use GET, or POST to create", req.method))),
    };
    if post {
        req.params.extend(form_body(&req.headers, &body)?);
    }
    match (segments, post) {
        (["discovery"], false) => discovery(&req).await,
        (["services"], false) => services(&req).await,
        (["services" | "service", code], false) => service_definition(&req, code).await,
        (["requests"], false) => list_requests(&req).await,
        (["requests"], true) => post_request(&req).await,
        (["requests", id], false) => one_request(&req, id).await,
        (["tokens", t], false) => token_lookup(&req, t).await,
        (["servicerequestupdates"], false) => list_updates(&req).await,
        (["servicerequestupdates"], true) => post_update(&req).await,
        (["discovery" | "services"] | ["services" | "service" | "requests" | "tokens", _], true) => {
            Err(Open311Error::bad("POST is not served on this resource: use GET"))
        }
        _ => Err(Open311Error::not_found(format!("no resource /open311/v2/{}", segments.join("/")))),
    }
}

/// The form body of a POST (`application/x-www-form-urlencoded`; the spec defines no upload).
fn form_body(headers: &HeaderMap, body: &Bytes) -> Open311Result<Params> {
    if body.is_empty() {
        return Ok(Params::default());
    }
    if body.len() > MAX_BODY {
        return Err(Open311Error::bad(format!("the body is larger than {MAX_BODY} bytes")));
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    if ct.is_empty() || ct.starts_with("application/x-www-form-urlencoded") {
        Params::parse(body)
    } else if ct.starts_with("multipart/") {
        Err(Open311Error::bad("media upload is not supported: send media_url, a link to the photo"))
    } else {
        Err(Open311Error::bad("send the body as application/x-www-form-urlencoded; charset=utf-8"))
    }
}

impl Req {
    fn respond(&self, status: StatusCode, doc: Doc) -> Response {
        doc.respond(status, self.fmt, false)
    }

    fn offset(&self) -> Offset {
        format::offset(self.app.calendar().utc_offset_minutes())
    }

    /// `http(s)://host` of this server as the client reached it, for absolute URLs.
    fn base_url(&self) -> String {
        let host = self.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let host_ok = !host.is_empty()
            && host.len() <= 255
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
        if !host_ok {
            return String::new();
        }
        let https = self
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        format!("{}://{host}", if https { "https" } else { "http" })
    }

    /// A given `jurisdiction_id` must be this city's (when one is configured); absent or empty
    /// is fine: this endpoint serves one jurisdiction.
    async fn check_jurisdiction(&self) -> Open311Result<()> {
        let Some(asked) = self.params.get("jurisdiction_id") else {
            return Ok(());
        };
        match self.app.store.get_setting(JURISDICTION_KEY).await? {
            Some(ours) if !ours.trim().eq_ignore_ascii_case(asked) => Err(Open311Error::not_found(format!(
                "jurisdiction_id {asked:?} not found: this endpoint serves {ours}"
            ))),
            _ => Ok(()),
        }
    }

    /// The API client of this POST, by its `api_key` (query string or form body).
    async fn client(&self, action: &str) -> Open311Result<Client> {
        let Some(key) = self.params.get("api_key") else {
            return Err(Open311Error::forbidden(format!("api_key missing -- can't proceed with {action}")));
        };
        match self.app.store.open311_client_by_key(&token_hash(key)).await? {
            Some(c) => Ok(Client { id: c.id, user: c.user }),
            None => Err(Open311Error::forbidden(format!("Invalid api_key received -- can't proceed with {action}"))),
        }
    }

    /// The citizen signed in with `Authorization: Bearer`, if the request carries a token.
    async fn bearer_citizen(&self) -> Open311Result<Option<citygrid_store::User>> {
        let Some(v) = self.headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let token = v
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or_else(|| Open311Error::forbidden("Authorization must be Bearer <token> of a signed-in citizen"))?;
        let user = self
            .app
            .store
            .user_by_token(&token_hash(token), self.app.now())
            .await?
            .ok_or_else(|| Open311Error::forbidden("the bearer token is not valid (expired or signed out)"))?;
        if user.role != Role::Citizen {
            return Err(Open311Error::forbidden(
                "only a citizen account may report through Open311 with a bearer token; staff use /api/v1/cases",
            ));
        }
        Ok(Some(user))
    }
}

/// An API client, as a POST needs it: its id and the user its anonymous reports are filed as.
struct Client {
    id: i64,
    user: citygrid_store::User,
}

// ---- discovery and services ------------------------------------------------------------------

async fn discovery(req: &Req) -> Open311Result<Response> {
    let contact = req.app.store.get_setting(CONTACT_KEY).await?.unwrap_or_else(|| DEFAULT_CONTACT.to_owned());
    let formats = Value::List { item: "format", items: vec![Value::str("text/xml"), Value::str("application/json")] };
    let endpoint = Obj::new()
        .with("specification", Value::str(SPECIFICATION))
        .with("url", Value::str(format!("{}/open311/v2", req.base_url())))
        .with("changeset", Value::str(CHANGESET))
        .with("type", Value::str("production"))
        .with("formats", formats);
    let obj = Obj::new()
        .with("changeset", Value::str(CHANGESET))
        .with("contact", Value::str(contact))
        .with("key_service", Value::str(KEY_SERVICE))
        .with("endpoints", Value::List { item: "endpoint", items: vec![Value::Obj(endpoint)] });
    // Bare content types: the SeeClickFix validator compares them as strings.
    Ok(Doc::Obj { root: "discovery", obj }.respond(StatusCode::OK, req.fmt, true))
}

fn service_obj(s: &Service) -> Obj {
    Obj::new()
        .with("service_code", Value::str(&s.code))
        .with("service_name", Value::str(&s.name))
        .with("description", Value::opt(Some(&s.description)))
        .with("metadata", Value::Bool(s.metadata()))
        .with("type", Value::str(s.service_type.as_str()))
        .with("keywords", Value::opt(Some(s.keywords.join(","))))
        .with("group", Value::opt(Some(&s.group)))
}

async fn services(req: &Req) -> Open311Result<Response> {
    req.check_jurisdiction().await?;
    let items = req.app.store.list_services().await?.iter().filter(|s| s.active).map(service_obj).collect();
    Ok(req.respond(StatusCode::OK, Doc::List { root: "services", item: "service", items }))
}

/// An active service by code: 400 when none was given, 404 when there is no such service.
async fn find_service(app: &AppState, code: Option<&str>) -> Open311Result<Service> {
    let code = code.ok_or_else(|| Open311Error::bad("service_code not provided"))?;
    let found = if code.len() <= 20 { app.store.get_service(code).await? } else { None };
    found.filter(|s| s.active).ok_or_else(|| Open311Error::not_found(format!("service_code {code:?} not found")))
}

async fn service_definition(req: &Req, code: &str) -> Open311Result<Response> {
    req.check_jurisdiction().await?;
    let s = find_service(&req.app, Some(code).filter(|c| !c.is_empty())).await?;
    let attributes = s
        .attributes
        .iter()
        .map(|a| {
            let mut o = Obj::new()
                .with("variable", Value::Bool(a.variable))
                .with("code", Value::str(&a.code))
                .with("datatype", Value::str(a.datatype.as_str()))
                .with("required", Value::Bool(a.required))
                .with("datatype_description", Value::opt(a.datatype_description.clone()))
                .with("order", Value::Int(i64::from(a.order)))
                .with("description", Value::str(&a.description));
            if matches!(a.datatype, Datatype::Singlevaluelist | Datatype::Multivaluelist) {
                let values = a
                    .values
                    .iter()
                    .map(|v| Value::Obj(Obj::new().with("key", Value::str(&v.key)).with("name", Value::str(&v.name))))
                    .collect();
                o = o.with("values", Value::List { item: "value", items: values });
            }
            Value::Obj(o)
        })
        .collect();
    let obj = Obj::new()
        .with("service_code", Value::str(&s.code))
        .with("attributes", Value::List { item: "attribute", items: attributes });
    Ok(req.respond(StatusCode::OK, Doc::Obj { root: "service_definition", obj }))
}

// ---- public reads of requests ----------------------------------------------------------------

/// What rendering a request needs besides the case: names and the city's clock.
struct ReadCtx {
    offset: Offset,
    base: String,
    services: HashMap<String, String>,
    departments: HashMap<i64, String>,
    /// The note of the event that ended a case without a fix.
    end_notes: HashMap<i64, Option<String>>,
}

impl ReadCtx {
    async fn load(req: &Req, cases: &[&Case]) -> Open311Result<ReadCtx> {
        let store = &req.app.store;
        let services = store.list_services().await?.into_iter().map(|s| (s.code, s.name)).collect();
        let departments = store.list_departments().await?.into_iter().map(|d| (d.id, d.name)).collect();
        let ended: Vec<i64> = cases
            .iter()
            .filter(|c| matches!(PublicStatus::of(c), PublicStatus::NotFixed | PublicStatus::NotCityResponsibility))
            .map(|c| c.id)
            .collect();
        let mut end_notes = HashMap::new();
        for chunk in ended.chunks(500) {
            // Oldest first: the last one is the event that ended the case.
            for (id, e) in store.open311_end_events(chunk).await? {
                end_notes.insert(id, e.note.filter(|n| !n.trim().is_empty()));
            }
        }
        Ok(ReadCtx { offset: req.offset(), base: req.base_url(), services, departments, end_notes })
    }

    fn photo_url(&self, id: &str) -> String {
        format!("{}/api/v1/photos/{id}", self.base)
    }
}

/// The citizen-facing reason a report ended as it did (`status_notes`); none while it runs
/// and when it was fixed.
fn status_notes(case: &Case, status: PublicStatus, note: Option<&str>) -> Option<String> {
    let with_note = |label: &str| match note {
        Some(n) => format!("{label}：{n}"),
        None => label.to_owned(),
    };
    match status {
        PublicStatus::Duplicate => Some(format!(
            "重复举报：与请求 {} 为同一问题",
            case.duplicate_of.map(|d| d.to_string()).unwrap_or_default()
        )),
        PublicStatus::NotCityResponsibility => Some(with_note("非城管职责")),
        PublicStatus::NotFixed => Some(with_note(match case.end_reason {
            Some(EndReason::NotFound) => "现场核实不属实",
            Some(EndReason::Invalid) => "无效举报",
            _ => "不予处理",
        })),
        _ => None,
    }
}

/// One `request` as the public sees it: never the reporter's name, phone, email, device or
/// account, never internal notes beyond the status notes.
fn request_obj(case: &Case, extra: Option<&serde_json::Value>, ctx: &ReadCtx) -> Obj {
    let status = PublicStatus::of(case);
    let code = case.class_code.as_str().to_owned();
    let text = |key: &str| extra.and_then(|x| x.get(key)).and_then(|v| v.as_str()).map(str::to_owned);
    let description = text("description").unwrap_or_else(|| case.description.clone());
    let media_url = text("media_url").or_else(|| case.photo_ids.first().map(|p| ctx.photo_url(p)));
    let note = ctx.end_notes.get(&case.id).and_then(|n| n.as_deref());
    Obj::new()
        .with("service_request_id", Value::str(case.id.to_string()))
        .with("status", Value::str(status.open311()))
        .with("status_notes", Value::opt(status_notes(case, status, note)))
        .with("service_name", Value::opt(ctx.services.get(&code).cloned()))
        .with("service_code", Value::str(code))
        .with("description", Value::str(description))
        .with("agency_responsible", Value::opt(case.department_id.and_then(|d| ctx.departments.get(&d).cloned())))
        .with("service_notice", Value::Null)
        .with("requested_datetime", Value::str(format::w3c(case.created_at, ctx.offset)))
        .with("updated_datetime", Value::str(format::w3c(case.updated_at, ctx.offset)))
        .with("expected_datetime", Value::opt(case.case_deadline.map(|t| format::w3c(t, ctx.offset))))
        .with("address", Value::opt(case.address.clone()))
        .with("address_id", Value::opt(text("address_id")))
        .with("zipcode", Value::Null)
        .with("lat", Value::Num(case.location.lat))
        .with("long", Value::Num(case.location.lon))
        .with("media_url", Value::opt(media_url))
}

async fn render_requests(req: &Req, rows: &[(Case, Option<String>)]) -> Open311Result<Vec<Obj>> {
    let cases: Vec<&Case> = rows.iter().map(|(c, _)| c).collect();
    let ctx = ReadCtx::load(req, &cases).await?;
    rows.iter()
        .map(|(case, extra)| {
            let extra: Option<serde_json::Value> =
                extra.as_deref().map(serde_json::from_str).transpose().map_err(|e| {
                    Open311Error::from(ApiError::Internal(format!("open311_requests.data of {}: {e}", case.id)))
                })?;
            Ok(request_obj(case, extra.as_ref(), &ctx))
        })
        .collect()
}

fn comma_list(raw: Option<&str>) -> Vec<&str> {
    raw.map(|r| r.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
}

/// `start_date`/`end_date` of a list or a poll: both optional, at most 90 days apart.
fn window(req: &Req, default_span: SignedDuration) -> Open311Result<(Timestamp, Timestamp)> {
    let off = req.offset();
    let now = req.app.now();
    let start = req.params.get("start_date").map(|s| format::parse_w3c("start_date", s, off)).transpose()?;
    let end = req.params.get("end_date").map(|s| format::parse_w3c("end_date", s, off)).transpose()?;
    let (start, end) = match (start, end) {
        (Some(s), Some(e)) => (s, e),
        (Some(s), None) => (s, s.saturating_add(default_span).unwrap_or(s).min(now).max(s)),
        (None, Some(e)) => (e.saturating_sub(default_span).unwrap_or(e), e),
        (None, None) => (now.saturating_sub(default_span).unwrap_or(now), now),
    };
    if start > end {
        return Err(Open311Error::bad("start_date is after end_date"));
    }
    if end.duration_since(start) > MAX_SPAN {
        return Err(Open311Error::bad("start_date and end_date may be at most 90 days apart"));
    }
    Ok((start, end))
}

/// A positive integer parameter in `1..=max`, or its default.
fn count_param(req: &Req, key: &str, default: u32, max: u32) -> Open311Result<u32> {
    match req.params.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| Open311Error::bad(format!("{key} must be a whole number from 1 to {max}"))),
    }
}

/// `GET requests`: citizen-category cases of any source (a public 311 feed), newest first.
async fn list_requests(req: &Req) -> Open311Result<Response> {
    req.check_jurisdiction().await?;
    let page_size = count_param(req, "page_size", MAX_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let page = count_param(req, "page", 1, 1_000_000)?;
    let offset = (page - 1).saturating_mul(page_size);
    let rows = if let Some(raw) = req.params.get("service_request_id") {
        // The id list overrides every other filter; an id that cannot exist matches nothing.
        let listed = comma_list(Some(raw));
        if listed.len() > MAX_IDS {
            return Err(Open311Error::bad(format!("at most {MAX_IDS} service_request_id values")));
        }
        let ids: Vec<i64> = listed.iter().filter_map(|s| s.parse().ok()).collect();
        if ids.is_empty() {
            Vec::new()
        } else {
            req.app.store.open311_cases(&ids, &[], (None, None), &[], (page_size, offset)).await?
        }
    } else {
        let codes: Vec<String> = comma_list(req.params.get("service_code")).into_iter().map(str::to_owned).collect();
        if codes.len() > 100 {
            return Err(Open311Error::bad("at most 100 service_code values"));
        }
        let mut states: Vec<&str> = Vec::new();
        let statuses = comma_list(req.params.get("status"));
        for s in &statuses {
            match s.to_ascii_lowercase().as_str() {
                "open" => states.extend(OPEN_STATES),
                "closed" => states.extend(CLOSED_STATES),
                _ => return Err(Open311Error::bad(format!("status {s:?} is not open or closed"))),
            }
        }
        let (start, end) = window(req, MAX_SPAN)?;
        req.app.store.open311_cases(&[], &codes, (Some(start), Some(end)), &states, (page_size, offset)).await?
    };
    let items = render_requests(req, &rows).await?;
    Ok(req.respond(StatusCode::OK, Doc::List { root: "service_requests", item: "request", items }))
}

/// States of an open request and of a closed one (Open311 has only the two).
const OPEN_STATES: [&str; 8] =
    ["reported", "verifying", "accepted", "filed", "dispatched", "disposed", "checked", "suspended"];
const CLOSED_STATES: [&str; 4] = ["closed", "rejected", "refused", "voided"];

async fn one_request(req: &Req, id: &str) -> Open311Result<Response> {
    req.check_jurisdiction().await?;
    let not_found = || Open311Error::not_found(format!("service_request_id {id:?} not found"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let rows = req.app.store.open311_cases(&[id], &[], (None, None), &[], (1, 0)).await?;
    if rows.is_empty() {
        return Err(not_found());
    }
    let items = render_requests(req, &rows).await?;
    Ok(req.respond(StatusCode::OK, Doc::List { root: "service_requests", item: "request", items }))
}

async fn token_lookup(req: &Req, token: &str) -> Open311Result<Response> {
    req.check_jurisdiction().await?;
    let found = if token.is_empty() || token.len() > 100 {
        None
    } else {
        req.app.store.open311_request_by_token(token).await?
    };
    let row = found.ok_or_else(|| Open311Error::not_found(format!("token {token:?} not found")))?;
    let item =
        Obj::new().with("service_request_id", Value::str(row.case_id.to_string())).with("token", Value::str(row.token));
    Ok(req.respond(StatusCode::OK, Doc::List { root: "service_requests", item: "request", items: vec![item] }))
}

// ---- POST requests ---------------------------------------------------------------------------

/// Free text from a client: at most `max` characters, line breaks and tabs but no other
/// control characters (they cannot be carried in XML).
fn text_param(req: &Req, key: &str, max: usize) -> Open311Result<Option<String>> {
    let Some(v) = req.params.get(key) else {
        return Ok(None);
    };
    if v.chars().count() > max {
        return Err(Open311Error::bad(format!("{key} is longer than {max} characters")));
    }
    if v.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(Open311Error::bad(format!("{key} contains control characters")));
    }
    Ok(Some(v.to_owned()))
}

/// `media_url`: a link to a photo, http(s) only (the spec defines no upload).
fn media_urls(req: &Req) -> Open311Result<Vec<String>> {
    let urls = req.params.all("media_url");
    if urls.len() > 9 {
        return Err(Open311Error::bad("at most 9 media_url values"));
    }
    urls.into_iter()
        .map(|u| {
            let lower = u.to_ascii_lowercase();
            let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
            let host_ok = rest.is_some_and(|r| {
                let host = r.split(['/', '?', '#']).next().unwrap_or_default();
                !host.is_empty() && !host.starts_with(':')
            });
            if u.len() > 2048 || !host_ok || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(Open311Error::bad(format!("media_url {u:?} is not an http(s) URL")))
            } else {
                Ok(u.to_owned())
            }
        })
        .collect()
}

fn coordinate(req: &Req, key: &str, range: f64) -> Open311Result<Option<f64>> {
    match req.params.get(key) {
        None => Ok(None),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && x.abs() <= range)
            .map(Some)
            .ok_or_else(|| Open311Error::bad(format!("{key} {v:?} is not a WGS-84 coordinate"))),
    }
}

/// Where the problem is: `lat`+`long`, or `address_string` (geocoded), or `address_id`; with
/// the address text the case keeps.
fn locate(req: &Req) -> Open311Result<(f64, f64, Option<String>)> {
    let lat = coordinate(req, "lat", 90.0)?;
    let lon = coordinate(req, "long", 180.0)?;
    let address_string = text_param(req, "address_string", 256)?;
    let map = req.app.map();
    match (lat, lon) {
        (Some(lat), Some(lon)) => return Ok((lon, lat, address_string)),
        (Some(_), None) | (None, Some(_)) => return Err(Open311Error::bad("send lat and long together")),
        (None, None) => {}
    }
    if let Some(text) = address_string {
        let hit = map.addresses.geocode(&text).ok_or_else(|| {
            Open311Error::bad(format!("address_string {text:?} was not found in the city's address book"))
        })?;
        if hit.level == MatchLevel::District {
            return Err(Open311Error::bad(format!(
                "address_string {text:?} names only a district: give a road, door number or place, or lat and long"
            )));
        }
        return Ok((hit.lon, hit.lat, Some(text)));
    }
    if let Some(id) = req.params.get("address_id") {
        let book = map.addresses.addresses();
        let a = book
            .binary_search_by(|a| a.code.as_str().cmp(id))
            .ok()
            .and_then(|i| book.get(i))
            .ok_or_else(|| Open311Error::bad(format!("address_id {id:?} is not in the city's address book")))?;
        return Ok((a.lon, a.lat, Some(a.name.clone())));
    }
    Err(Open311Error::bad("a location is required: lat and long, address_string or address_id"))
}

/// The reporter's contact data: kept privately with the request, never shown publicly.
#[derive(Debug, Serialize, Deserialize, Default)]
struct Contact {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    device_id: Option<String>,
    account_id: Option<String>,
}

fn contact(req: &Req) -> Open311Result<Contact> {
    let c = Contact {
        first_name: text_param(req, "first_name", 100)?,
        last_name: text_param(req, "last_name", 100)?,
        email: text_param(req, "email", 254)?,
        phone: text_param(req, "phone", 40)?,
        device_id: text_param(req, "device_id", 200)?,
        account_id: text_param(req, "account_id", 200)?,
    };
    if let Some(e) = &c.email {
        if !e.contains('@') || e.contains(char::is_whitespace) {
            return Err(Open311Error::bad(format!("email {e:?} is not an email address")));
        }
    }
    Ok(c)
}

/// What a POST request carried, validated: stored with the case and hashed for
/// `Idempotency-Key` (a retry must send the same request).
#[derive(Debug, Serialize)]
struct Carried<'a> {
    service_code: &'a str,
    lon: f64,
    lat: f64,
    address: Option<&'a str>,
    address_id: Option<&'a str>,
    description: &'a str,
    media_urls: &'a [String],
    attributes: &'a BTreeMap<String, Vec<String>>,
    contact: &'a Contact,
}

async fn post_request(req: &Req) -> Open311Result<Response> {
    req.check_jurisdiction().await?;
    let client = req.client("create_request").await?;
    let citizen = req.bearer_citizen().await?;
    let service = find_service(&req.app, req.params.get("service_code")).await?;
    let (lon, lat, address) = locate(req)?;
    if req.app.grids().locate(lon, lat).is_none() {
        return Err(Open311Error::bad(format!(
            "lat {lat}, long {lon} is outside the city's unit grids: nothing was filed"
        )));
    }
    let answers = req.params.attributes()?;
    let answers = service
        .check_answers(&answers)
        .map_err(|(code, why)| Open311Error::bad(format!("attribute[{code}]: {why}")))?;
    let description = text_param(req, "description", MAX_DESCRIPTION)?.unwrap_or_default();
    let media = media_urls(req)?;
    let contact = contact(req)?;
    let address_id = req.params.get("address_id");
    let carried = Carried {
        service_code: &service.code,
        lon,
        lat,
        address: address.as_deref(),
        address_id,
        description: &description,
        media_urls: &media,
        attributes: &answers,
        contact: &contact,
    };
    let filer = citizen.unwrap_or_else(|| client.user.clone());
    let idem = idempotency(&req.headers, filer.id, &carried)?;
    // The case keeps what it can hold; the request's own row keeps the whole text.
    let case_description = if description.trim().is_empty() {
        service.name.clone()
    } else if description.chars().count() > CASE_DESCRIPTION {
        let mut d: String = description.chars().take(CASE_DESCRIPTION - 1).collect();
        d.push('…');
        d
    } else {
        description.clone()
    };
    let body = ReportBody {
        kind: Kind::Event,
        class_code: service.code.clone(),
        urgency: None,
        description: case_description,
        location: LocationIn { lon, lat, coord_sys: None },
        address: address.as_ref().map(|a| a.chars().take(256).collect()),
        photo_ids: None,
        source: Some(Source::Citizen),
        component_id: None,
    };
    let actor =
        Actor { user_id: filer.id, username: filer.username.clone(), role: filer.role, scope: filer.scope.clone() };
    let created = file_report(&req.app, actor, body, idem).await?;
    let case_id = created.case.id;
    let mut raw = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let data = serde_json::json!({
        "description": description.trim(),
        "media_url": media.first(),
        "media_urls": media,
        "address_string": address,
        "address_id": address_id,
        "attributes": answers,
        "contact": contact,
        "filed_by": filer.id,
        "anonymous": filer.id == client.user.id,
    });
    let row = req
        .app
        .store
        .put_open311_request(
            case_id,
            Some(client.id),
            &hex::encode(raw),
            &service.code,
            &data.to_string(),
            req.app.now(),
        )
        .await?;
    let mut item = Obj::new();
    match service.service_type {
        ServiceType::Realtime => item = item.with("service_request_id", Value::str(case_id.to_string())),
        ServiceType::Batch => item = item.with("token", Value::str(row.token)),
        ServiceType::Blackbox => {}
    }
    item = item.with("service_notice", Value::str(SERVICE_NOTICE)).with("account_id", Value::opt(contact.account_id));
    let mut res =
        req.respond(StatusCode::CREATED, Doc::List { root: "service_requests", item: "request", items: vec![item] });
    if created.replayed {
        res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(res)
}

fn idempotency(headers: &HeaderMap, user_id: i64, carried: &Carried<'_>) -> Open311Result<Option<Idempotency>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(|| Open311Error::bad("Idempotency-Key must be 1 to 200 visible ASCII characters"))?;
    let canonical = serde_json::to_vec(carried).map_err(|e| Open311Error::from(ApiError::Internal(e.to_string())))?;
    // Its own namespace: a key reused on /api/v1/cases is a different request.
    Ok(Some(Idempotency {
        user_id,
        key: format!("open311:{key}"),
        request_hash: hex::encode(Sha256::digest(&canonical)),
    }))
}

// ---- FixMyStreet: service request updates ----------------------------------------------------

/// `GET servicerequestupdates`: one update each time what the public sees of a request changed
/// (its FixMyStreet status), in `[start_date, end_date)`, so that consecutive polls whose
/// windows meet deliver each update exactly once. Ids are `{request id}-{event seq}`: stable.
async fn list_updates(req: &Req) -> Open311Result<Response> {
    req.check_jurisdiction().await?;
    let (start, end) = window(req, DEFAULT_UPDATES_SPAN)?;
    let logs = req.app.store.open311_case_logs(start).await?;
    let ctx = ReadCtx::load(req, &[]).await?;
    let mut updates: Vec<(Timestamp, i64, u32, Obj)> = Vec::new();
    for (id, events) in &logs {
        let mut case: Option<Case> = None;
        let mut shown: Option<PublicStatus> = None;
        let mut after_photo: Option<&str> = None;
        for e in events {
            let Some(next) = project(case.take(), *id, e) else { break };
            if matches!(e.change, Change::Dispose) {
                after_photo = e.photo_ids.first().map(String::as_str).or(after_photo);
            }
            let status = PublicStatus::of(&next);
            if shown.is_some_and(|s| s != status) && start <= e.at && e.at < end {
                updates.push((e.at, *id, e.seq, update_obj(&next, e, status, after_photo, &ctx)));
            }
            shown = Some(status);
            case = Some(next);
        }
    }
    updates.sort_by_key(|u| (u.0, u.1, u.2));
    let items = updates.into_iter().map(|u| u.3).collect();
    Ok(req.respond(StatusCode::OK, Doc::List { root: "service_requests_updates", item: "request_update", items }))
}

fn update_obj(case: &Case, e: &Event, status: PublicStatus, after_photo: Option<&str>, ctx: &ReadCtx) -> Obj {
    let note = e.note.as_deref().filter(|n| !n.trim().is_empty());
    let description = status_notes(case, status, note).unwrap_or_else(|| status.label_zh().to_owned());
    let media = match status {
        PublicStatus::Fixed => after_photo.map(|p| ctx.photo_url(p)),
        _ => None,
    };
    Obj::new()
        .with("update_id", Value::str(format!("{}-{}", case.id, e.seq)))
        .with("service_request_id", Value::str(case.id.to_string()))
        .with("status", Value::str(status.fixmystreet()))
        .with("updated_datetime", Value::str(format::w3c(e.at, ctx.offset)))
        .with("description", Value::str(description))
        .with("media_url", Value::opt(media))
}

/// `POST servicerequestupdates`: a client's comment on a request, kept for the staff (it does
/// not change the case). With the client's own `update_id`, a retry gets the first answer.
async fn post_update(req: &Req) -> Open311Result<Response> {
    req.check_jurisdiction().await?;
    let client = req.client("post_service_request_update").await?;
    let raw_id =
        req.params.get("service_request_id").ok_or_else(|| Open311Error::bad("service_request_id not provided"))?;
    let not_found = || Open311Error::not_found(format!("service_request_id {raw_id:?} not found"));
    let case_id: i64 = raw_id.parse().map_err(|_| not_found())?;
    if req.app.store.open311_cases(&[case_id], &[], (None, None), &[], (1, 0)).await?.is_empty() {
        return Err(not_found());
    }
    let description = text_param(req, "description", MAX_DESCRIPTION)?;
    let media = media_urls(req)?;
    let status = text_param(req, "status", 50)?;
    let updated = req
        .params
        .get("updated_datetime")
        .map(|s| format::parse_w3c("updated_datetime", s, req.offset()))
        .transpose()?;
    let client_ref = text_param(req, "update_id", 100)?;
    let contact = contact(req)?;
    if description.is_none() && media.is_empty() && status.is_none() {
        return Err(Open311Error::bad("an update needs a description, a media_url or a status"));
    }
    let data = serde_json::json!({
        "description": description,
        "status": status,
        "media_url": media.first(),
        "media_urls": media,
        "updated_datetime": updated.map(|t| t.to_string()),
        "client_update_id": client_ref,
        "contact": contact,
    });
    let (update, replayed) = req
        .app
        .store
        .add_open311_update(case_id, Some(client.id), client_ref.as_deref(), &data.to_string(), req.app.now())
        .await?;
    let item = Obj::new().with("update_id", Value::str(format!("u{}", update.id)));
    let status = if replayed { StatusCode::OK } else { StatusCode::CREATED };
    Ok(req.respond(status, Doc::List { root: "service_requests_updates", item: "request_update", items: vec![item] }))
}

// ---- API clients (administrators) ------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientNew {
    /// 1 to 50 characters of `[A-Za-z0-9._-]`; the client's user is `open311-<name>`.
    name: String,
}

#[derive(Debug, Serialize)]
struct ClientCreated {
    id: i64,
    name: String,
    user_id: i64,
    username: String,
    /// Shown once: only its SHA-256 is stored.
    api_key: String,
}

/// Issue an Open311 API key (administrators). The key is in this answer only.
async fn create_client(
    State(app): State<AppState>,
    auth: Auth,
    Json(body): Json<ClientNew>,
) -> ApiResult<(StatusCode, Json<ClientCreated>)> {
    auth.require(&[Role::Admin])?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 50 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(ApiError::invalid("name", "1 to 50 characters of A-Z, a-z, 0-9, '.', '_' and '-'"));
    }
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    use base64::Engine;
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let username = format!("open311-{name}");
    let c = app.store.create_open311_client(name, &token_hash(&key), &username, app.now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(ClientCreated { id: c.id, name: c.name, user_id: c.user.id, username: c.user.username, api_key: key }),
    ))
}

impl IntoResponse for Open311Error {
    fn into_response(self) -> Response {
        self.respond(Format::Xml)
    }
}
