//! `/api/v1/regions`, `/api/v1/departments`, `/api/v1/users`: the organisation. Everyone signed
//! in reads regions and departments; administrators change them.

use crate::auth::{hash_password, Auth, UserOut};
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use citygrid_core::codes::{AreaClass, RegionCode, RegionLevel};
use citygrid_core::org::{Department, Region, Role, Scope, ScopeKind};
use citygrid_store::{NewDepartment, NewUser};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RegionQuery {
    /// Only the children of this region.
    pub parent: Option<String>,
    pub level: Option<RegionLevel>,
}

/// Regions: city, districts, streets, communities and unit grids.
#[utoipa::path(get, path = "/api/v1/regions", tag = "organisation", security(("bearer" = [])), params(RegionQuery),
    responses((status = 200, body = Vec<Region>), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_regions(
    State(app): State<AppState>,
    _auth: Auth,
    Query(q): Query<RegionQuery>,
) -> ApiResult<Json<Vec<Region>>> {
    let parent = q
        .parent
        .as_deref()
        .map(|p| RegionCode::parse(p).map_err(|e| ApiError::bad_query("parent", e.to_string())))
        .transpose()?;
    Ok(Json(app.store.list_regions(parent.as_ref(), q.level).await?))
}

/// One region.
#[utoipa::path(get, path = "/api/v1/regions/{code}", tag = "organisation", security(("bearer" = [])),
    params(("code" = String, Path)),
    responses((status = 200, body = Region), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_region(State(app): State<AppState>, _auth: Auth, Path(code): Path<String>) -> ApiResult<Json<Region>> {
    let code = RegionCode::parse(&code).map_err(|_| ApiError::NotFound("region"))?;
    Ok(Json(app.store.get_region(&code).await?.ok_or(ApiError::NotFound("region"))?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionEdit {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub area_class: AreaClass,
}

/// Rename a region or change its area class (administrators).
#[utoipa::path(put, path = "/api/v1/regions/{code}", tag = "organisation", security(("bearer" = [])),
    params(("code" = String, Path)), request_body = RegionEdit,
    responses((status = 200, body = Region), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update_region(
    State(app): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
    Json(e): Json<RegionEdit>,
) -> ApiResult<Json<Region>> {
    auth.require(&[Role::Admin])?;
    let code = RegionCode::parse(&code).map_err(|_| ApiError::NotFound("region"))?;
    let name = e.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "1 to 100 characters"));
    }
    let region = app.store.update_region(&code, name, e.area_class).await?;
    app.reload_map().await?;
    Ok(Json(region))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionNew {
    /// 6 (district), 9 (street), 12 (community) or 15 (grid) digits; the parent must exist.
    pub code: String,
    pub name: String,
    pub area_class: Option<AreaClass>,
    /// For unit grids: a GeoJSON Polygon or MultiPolygon, required.
    #[schema(value_type = Option<Object>)]
    pub geometry: Option<serde_json::Value>,
    /// Coordinate system of `geometry` (default wgs84); stored as WGS-84.
    pub coord_sys: Option<citygrid_geo::CoordSys>,
}

/// Add a region (administrators). A grid needs its polygon; the grid index is rebuilt.
#[utoipa::path(post, path = "/api/v1/regions", tag = "organisation", security(("bearer" = [])), request_body = RegionNew,
    responses((status = 201, body = Region), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_region(
    State(app): State<AppState>,
    auth: Auth,
    Json(n): Json<RegionNew>,
) -> ApiResult<(StatusCode, Json<Region>)> {
    auth.require(&[Role::Admin])?;
    let code = RegionCode::parse(&n.code).map_err(|e| ApiError::invalid("code", e.to_string()))?;
    let name = n.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "1 to 100 characters"));
    }
    if code.level() == RegionLevel::City {
        return Err(ApiError::invalid("code", "the city exists already"));
    }
    let parent = code.parent().ok_or_else(|| ApiError::invalid("code", "no parent"))?;
    if app.store.get_region(&parent).await?.is_none() {
        return Err(ApiError::invalid("code", format!("parent region {parent} does not exist")));
    }
    if app.store.get_region(&code).await?.is_some() {
        return Err(ApiError::conflict("exists", format!("region {code} exists")));
    }
    let geometry = match (code.level(), n.geometry) {
        (RegionLevel::Grid, Some(g)) => {
            let g = match n.coord_sys.unwrap_or_default() {
                citygrid_geo::CoordSys::Wgs84 => g,
                sys => {
                    use geo::MapCoords;
                    let mp = citygrid_geo::geojson::multipolygon_from_geojson(&g.to_string())
                        .map_err(|e| ApiError::invalid("geometry", e.to_string()))?;
                    citygrid_geo::geojson::multipolygon_to_json(&mp.map_coords(|c| {
                        let (x, y) = citygrid_geo::coord::to_wgs84(sys, c.x, c.y);
                        geo::Coord { x, y }
                    }))
                }
            };
            let feature = serde_json::json!({"type": "Feature", "properties": {"code": code.as_str()}, "geometry": g});
            let text = feature.to_string();
            let grids = citygrid_geo::geojson::grids_from_geojson(&text)
                .map_err(|e| ApiError::invalid("geometry", e.to_string()))?;
            // Build a trial index with the new grid to validate the polygon and its overlaps.
            let mut all: Vec<_> = app.grids().grids().to_vec();
            all.extend(grids.iter().cloned());
            citygrid_geo::GridIndex::new(all).map_err(|e| ApiError::invalid("geometry", e.to_string()))?;
            let g = grids.first().ok_or_else(|| ApiError::invalid("geometry", "empty"))?;
            Some(citygrid_geo::geojson::grid_to_feature(g).to_string())
        }
        (RegionLevel::Grid, None) => return Err(ApiError::invalid("geometry", "a unit grid needs its polygon")),
        (_, Some(_)) => return Err(ApiError::invalid("geometry", "only unit grids carry geometry here")),
        (_, None) => None,
    };
    let region =
        Region { level: code.level(), parent: Some(parent), area_class: n.area_class.unwrap_or_default(), name, code };
    app.store.upsert_regions(&[(region.clone(), geometry)]).await?;
    app.reload_map().await?;
    Ok((StatusCode::CREATED, Json(region)))
}

/// Departments (二级 city-level and their 三级 sub-units).
#[utoipa::path(get, path = "/api/v1/departments", tag = "organisation", security(("bearer" = [])),
    responses((status = 200, body = Vec<Department>), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_departments(State(app): State<AppState>, _auth: Auth) -> ApiResult<Json<Vec<Department>>> {
    Ok(Json(app.store.list_departments().await?))
}

/// One department.
#[utoipa::path(get, path = "/api/v1/departments/{id}", tag = "organisation", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = Department), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_department(
    State(app): State<AppState>,
    _auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<Department>> {
    Ok(Json(app.store.get_department(id).await?.ok_or(ApiError::NotFound("department"))?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentNew {
    #[schema(example = "HW-QS", pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub code: String,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// The city-level department a sub-unit belongs to; absent for a city-level department.
    pub parent_id: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentEdit {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub code: String,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

fn valid_department(code: &str, name: &str) -> ApiResult<()> {
    if code.is_empty() || code.len() > 32 || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::invalid("code", "1 to 32 letters, digits, '-' or '_'"));
    }
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "1 to 100 characters"));
    }
    Ok(())
}

/// Add a department (administrators).
#[utoipa::path(post, path = "/api/v1/departments", tag = "organisation", security(("bearer" = [])), request_body = DepartmentNew,
    responses((status = 201, body = Department), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_department(
    State(app): State<AppState>,
    auth: Auth,
    Json(n): Json<DepartmentNew>,
) -> ApiResult<(StatusCode, Json<Department>)> {
    auth.require(&[Role::Admin])?;
    valid_department(&n.code, &n.name)?;
    if let Some(p) = n.parent_id {
        match app.store.get_department(p).await? {
            None => return Err(ApiError::invalid("parent_id", "no such department")),
            Some(d) if d.tier != 2 => return Err(ApiError::invalid("parent_id", "a sub-unit cannot have sub-units")),
            Some(_) => {}
        }
    }
    let d = app
        .store
        .create_department(&NewDepartment { code: n.code, name: n.name.trim().to_owned(), parent_id: n.parent_id })
        .await?;
    Ok((StatusCode::CREATED, Json(d)))
}

/// Change a department's code or name (administrators).
#[utoipa::path(put, path = "/api/v1/departments/{id}", tag = "organisation", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = DepartmentEdit,
    responses((status = 200, body = Department), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update_department(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    Json(e): Json<DepartmentEdit>,
) -> ApiResult<Json<Department>> {
    auth.require(&[Role::Admin])?;
    valid_department(&e.code, &e.name)?;
    Ok(Json(app.store.update_department(id, &e.code, e.name.trim()).await?))
}

/// Remove a department that has no sub-units, users or cases (administrators).
#[utoipa::path(delete, path = "/api/v1/departments/{id}", tag = "organisation", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_department(State(app): State<AppState>, auth: Auth, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    auth.require(&[Role::Admin])?;
    app.store.delete_department(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Users (administrators).
#[utoipa::path(get, path = "/api/v1/users", tag = "organisation", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserOut>), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_users(State(app): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<UserOut>>> {
    auth.require(&[Role::Admin])?;
    Ok(Json(app.store.list_users().await?.into_iter().map(UserOut::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserNew {
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$")]
    pub username: String,
    #[schema(max_length = 100)]
    pub display_name: Option<String>,
    #[schema(min_length = 4, max_length = 1000)]
    pub password: String,
    pub role: Role,
    /// Region scope for centre roles and collectors, department scope for handlers, `own`
    /// for citizens.
    pub scope: Scope,
}

/// Check a new user's fields; shared by the API and `citygrid user add`.
pub async fn validate_user(app: &AppState, u: &UserNew) -> ApiResult<()> {
    if u.username.is_empty()
        || u.username.len() > 64
        || !u.username.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    {
        return Err(ApiError::invalid("username", "1 to 64 letters, digits or - _ . @"));
    }
    if u.password.chars().count() < 4 || u.password.len() > 1000 {
        return Err(ApiError::invalid("password", "4 to 1000 characters"));
    }
    if u.display_name.as_ref().is_some_and(|d| d.chars().count() > 100) {
        return Err(ApiError::invalid("display_name", "at most 100 characters"));
    }
    if u.role.scope_kind() != u.scope.kind() {
        let want = match u.role.scope_kind() {
            ScopeKind::Region => "a region scope",
            ScopeKind::Department => "a department scope",
            ScopeKind::Own => "the own scope",
        };
        return Err(ApiError::invalid("scope", format!("a {} needs {want}", u.role.as_str())));
    }
    match &u.scope {
        Scope::Region { code } if app.store.get_region(code).await?.is_none() => {
            Err(ApiError::invalid("scope", format!("no region {code}")))
        }
        Scope::Department { department_id } if app.store.get_department(*department_id).await?.is_none() => {
            Err(ApiError::invalid("scope", format!("no department {department_id}")))
        }
        _ => Ok(()),
    }
}

/// Create a user (administrators).
#[utoipa::path(post, path = "/api/v1/users", tag = "organisation", security(("bearer" = [])), request_body = UserNew,
    responses((status = 201, body = UserOut), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_user(
    State(app): State<AppState>,
    auth: Auth,
    Json(u): Json<UserNew>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    auth.require(&[Role::Admin])?;
    let user = add_user(&app, u).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Validate, hash and store a user.
pub async fn add_user(app: &AppState, u: UserNew) -> ApiResult<UserOut> {
    validate_user(app, &u).await?;
    let password = u.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let user = app
        .store
        .create_user(
            &NewUser {
                display_name: u.display_name.clone().unwrap_or_else(|| u.username.clone()),
                username: u.username,
                password_hash: hash,
                role: u.role,
                scope: u.scope,
            },
            app.now(),
        )
        .await?;
    Ok(user.into())
}

/// Remove a region that has no sub-regions, cases or users scoped to it (administrators).
#[utoipa::path(delete, path = "/api/v1/regions/{code}", tag = "organisation", security(("bearer" = [])),
    params(("code" = String, Path)),
    responses((status = 204), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_region(State(app): State<AppState>, auth: Auth, Path(code): Path<String>) -> ApiResult<StatusCode> {
    auth.require(&[Role::Admin])?;
    let code = RegionCode::parse(&code).map_err(|_| ApiError::NotFound("region"))?;
    if code.level() == RegionLevel::City {
        return Err(ApiError::conflict("in_use", "the city itself cannot be removed"));
    }
    app.store.delete_region(&code).await?;
    app.reload_map().await?;
    Ok(StatusCode::NO_CONTENT)
}
