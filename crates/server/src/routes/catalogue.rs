//! `/api/v1/catalogue`: the component and event classes, readable by every signed-in user and
//! editable by administrators (conditions, department, limits; local classes added and removed).

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use citygrid_core::catalogue::{ClassInfo, DisposalLimits};
use citygrid_core::codes::{ClassCode, Kind};
use citygrid_core::org::Role;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CatalogueQuery {
    pub kind: Option<Kind>,
    /// 2-digit major class.
    pub major: Option<String>,
    /// Only the classes offered to citizens.
    pub citizen: Option<bool>,
    /// Only local (city-added) classes, or only national ones.
    pub local: Option<bool>,
    /// Text search in the Chinese and English names.
    pub q: Option<String>,
}

/// The catalogue, filtered.
#[utoipa::path(get, path = "/api/v1/catalogue", tag = "catalogue", security(("bearer" = [])), params(CatalogueQuery),
    responses((status = 200, body = Vec<ClassInfo>), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(app): State<AppState>,
    _auth: Auth,
    Query(q): Query<CatalogueQuery>,
) -> ApiResult<Json<Vec<ClassInfo>>> {
    let needle = q.q.as_deref().map(str::to_lowercase);
    let items = app
        .store
        .list_classes()
        .await?
        .into_iter()
        .filter(|c| q.kind.is_none_or(|k| c.kind == k))
        .filter(|c| q.major.as_deref().is_none_or(|m| c.major_code == m))
        .filter(|c| q.citizen.is_none_or(|v| c.citizen == v))
        .filter(|c| q.local.is_none_or(|v| c.local == v))
        .filter(|c| needle.as_deref().is_none_or(|n| c.name_zh.contains(n) || c.name_en.to_lowercase().contains(n)))
        .collect();
    Ok(Json(items))
}

/// One class.
#[utoipa::path(get, path = "/api/v1/catalogue/{kind}/{code}", tag = "catalogue", security(("bearer" = [])),
    params(("kind" = Kind, Path), ("code" = String, Path)),
    responses((status = 200, body = ClassInfo), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(app): State<AppState>,
    _auth: Auth,
    Path((kind, code)): Path<(Kind, String)>,
) -> ApiResult<Json<ClassInfo>> {
    Ok(Json(app.store.get_class(kind, &code).await?.ok_or(ApiError::NotFound("class"))?))
}

/// The editable part of a class.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassEdit {
    pub name_zh: String,
    #[serde(default)]
    pub name_en: String,
    pub filing_condition: String,
    pub closing_condition: String,
    pub department_code: Option<String>,
    pub limits: DisposalLimits,
    pub citizen: bool,
    pub active: bool,
}

/// A new local class.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassNew {
    pub kind: Kind,
    #[schema(example = "10901")]
    pub code: String,
    pub major_name_zh: String,
    pub name_zh: String,
    #[serde(default)]
    pub name_en: String,
    pub filing_condition: String,
    pub closing_condition: String,
    pub department_code: Option<String>,
    pub limits: DisposalLimits,
    pub citizen: bool,
    pub active: bool,
}

impl ClassNew {
    fn edit(self) -> ClassEdit {
        ClassEdit {
            name_zh: self.name_zh,
            name_en: self.name_en,
            filing_condition: self.filing_condition,
            closing_condition: self.closing_condition,
            department_code: self.department_code,
            limits: self.limits,
            citizen: self.citizen,
            active: self.active,
        }
    }
}

async fn validate(app: &AppState, e: &ClassEdit) -> ApiResult<()> {
    let text = |field: &'static str, v: &str, max: usize| {
        if v.trim().is_empty() || v.chars().count() > max {
            Err(ApiError::invalid(field, format!("1 to {max} characters")))
        } else {
            Ok(())
        }
    };
    text("name_zh", &e.name_zh, 100)?;
    text("filing_condition", &e.filing_condition, 1000)?;
    text("closing_condition", &e.closing_condition, 1000)?;
    if e.name_en.chars().count() > 200 {
        return Err(ApiError::invalid("name_en", "at most 200 characters"));
    }
    if let Some(code) = &e.department_code {
        if !app.store.list_departments().await?.iter().any(|d| &d.code == code) {
            return Err(ApiError::invalid("department_code", format!("no department {code}")));
        }
    }
    for l in [&e.limits.urgent, &e.limits.important, &e.limits.ordinary] {
        for lim in [l.A, l.B, l.C] {
            if lim.amount == 0 || lim.amount > 100_000 {
                return Err(ApiError::invalid("limits", "every limit amount must be 1 to 100000"));
            }
        }
    }
    Ok(())
}

fn apply(c: &mut ClassInfo, e: ClassEdit) {
    c.name_zh = e.name_zh.trim().to_owned();
    c.name_en = e.name_en.trim().to_owned();
    c.filing_condition = e.filing_condition.trim().to_owned();
    c.closing_condition = e.closing_condition.trim().to_owned();
    c.department_code = e.department_code;
    c.limits = e.limits;
    c.citizen = e.citizen;
    c.active = e.active;
    c.defaults = false;
}

/// Edit a class (administrators). The class is no longer marked as shipped defaults.
#[utoipa::path(put, path = "/api/v1/catalogue/{kind}/{code}", tag = "catalogue", security(("bearer" = [])),
    params(("kind" = Kind, Path), ("code" = String, Path)), request_body = ClassEdit,
    responses((status = 200, body = ClassInfo), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(app): State<AppState>,
    auth: Auth,
    Path((kind, code)): Path<(Kind, String)>,
    Json(edit): Json<ClassEdit>,
) -> ApiResult<Json<ClassInfo>> {
    auth.require(&[Role::Admin])?;
    let mut class = app.store.get_class(kind, &code).await?.ok_or(ApiError::NotFound("class"))?;
    validate(&app, &edit).await?;
    apply(&mut class, edit);
    app.store.upsert_classes(std::slice::from_ref(&class)).await?;
    app.reload_catalogue().await?;
    Ok(Json(class))
}

/// Add a local class (administrators).
#[utoipa::path(post, path = "/api/v1/catalogue", tag = "catalogue", security(("bearer" = [])), request_body = ClassNew,
    responses((status = 201, body = ClassInfo), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(app): State<AppState>,
    auth: Auth,
    Json(new): Json<ClassNew>,
) -> ApiResult<(StatusCode, Json<ClassInfo>)> {
    auth.require(&[Role::Admin])?;
    let code = ClassCode::parse(&new.code).map_err(|e| ApiError::invalid("code", e.to_string()))?;
    if new.major_name_zh.trim().is_empty() || new.major_name_zh.chars().count() > 100 {
        return Err(ApiError::invalid("major_name_zh", "1 to 100 characters"));
    }
    let kind = new.kind;
    let major_name_zh = new.major_name_zh.trim().to_owned();
    let edit = new.edit();
    validate(&app, &edit).await?;
    if app.store.get_class(kind, code.as_str()).await?.is_some() {
        return Err(ApiError::conflict("exists", format!("{} class {} exists", kind.as_str(), code)));
    }
    let mut class = ClassInfo {
        kind,
        major_code: code.major().to_owned(),
        major_name_zh,
        name_zh: String::new(),
        name_en: String::new(),
        standard: "local".into(),
        local: true,
        filing_condition: String::new(),
        closing_condition: String::new(),
        department_code: None,
        limits: DisposalLimits::typical(kind, code.major()),
        defaults: false,
        citizen: false,
        active: true,
        code,
    };
    apply(&mut class, edit);
    app.store.upsert_classes(std::slice::from_ref(&class)).await?;
    app.reload_catalogue().await?;
    Ok((StatusCode::CREATED, Json(class)))
}

/// Remove a local class no case uses (administrators). National classes are deactivated
/// with `PUT` instead.
#[utoipa::path(delete, path = "/api/v1/catalogue/{kind}/{code}", tag = "catalogue", security(("bearer" = [])),
    params(("kind" = Kind, Path), ("code" = String, Path)),
    responses((status = 204), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(app): State<AppState>,
    auth: Auth,
    Path((kind, code)): Path<(Kind, String)>,
) -> ApiResult<StatusCode> {
    auth.require(&[Role::Admin])?;
    let class = app.store.get_class(kind, &code).await?.ok_or(ApiError::NotFound("class"))?;
    if !class.local {
        return Err(ApiError::conflict("national_class", "national classes cannot be removed; set active to false"));
    }
    app.store.delete_class(kind, &code).await?;
    app.reload_catalogue().await?;
    Ok(StatusCode::NO_CONTENT)
}
