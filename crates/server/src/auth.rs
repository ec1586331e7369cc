//! Sign-in and sessions: argon2 password hashes, opaque random bearer tokens of which only the
//! SHA-256 is stored (a database leak does not leak sessions), revocable one by one.

use crate::error::{ApiError, ApiResult, Json};
use crate::state::AppState;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use base64::Engine;
use citygrid_core::org::{Actor, Role, Scope};
use citygrid_store::User;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Hash a password for storage.
pub fn hash_password(password: &str) -> ApiResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash to verify against when the user does not exist, so that the answer takes as long
/// either way and does not reveal which usernames exist.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password").unwrap_or_default())
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The signed-in user behind a request.
#[derive(Debug, Clone)]
pub struct Auth {
    pub user: User,
    pub token_hash: String,
}

impl Auth {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user.id,
            username: self.user.username.clone(),
            role: self.user.role,
            scope: self.user.scope.clone(),
        }
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Refuse unless the user has one of `roles`.
    /// The region prefix a reader of city-wide figures is bound to (`None` = the whole city);
    /// accounts without a region scope are refused, `what` saying what they asked for.
    pub fn region_prefix(&self, what: &str) -> ApiResult<Option<String>> {
        match &self.user.scope {
            citygrid_core::org::Scope::Region { code } if code.level() == citygrid_core::codes::RegionLevel::City => {
                Ok(None)
            }
            citygrid_core::org::Scope::Region { code } => Ok(Some(code.as_str().to_owned())),
            _ => Err(ApiError::forbidden(format!("{what} are read within a region scope"))),
        }
    }

    /// City-wide operations need a city-scope account (403 `out_of_scope` otherwise).
    pub fn require_city(&self, what: &str) -> ApiResult<()> {
        match self.region_prefix(what)? {
            None => Ok(()),
            Some(_) => Err(ApiError::Forbidden {
                code: "out_of_scope",
                detail: format!("{what} are city-wide: a city-scope account is needed"),
            }),
        }
    }

    pub fn require(&self, roles: &[Role]) -> ApiResult<()> {
        if roles.contains(&self.user.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("role {} may not do this", self.user.role.as_str())))
        }
    }
}

impl<S> FromRequestParts<S> for Auth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or(ApiError::Unauthorized)?;
        let hash = token_hash(token);
        let user = app.store.user_by_token(&hash, app.now()).await?.ok_or(ApiError::Unauthorized)?;
        Ok(Auth { user, token_hash: hash })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    #[schema(example = "acceptor")]
    pub username: String,
    #[schema(example = "demo")]
    pub password: String,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub scope: Scope,
    pub active: bool,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        UserOut {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            role: u.role,
            scope: u.scope,
            active: u.active,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
    pub user: UserOut,
}

/// Sign in with username and password; returns a bearer token.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", request_body = SignIn,
    responses((status = 200, body = TokenOut), (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"), (status = 415, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn sign_in(State(app): State<AppState>, Json(req): Json<SignIn>) -> ApiResult<(StatusCode, Json<TokenOut>)> {
    if req.username.len() > 100 || req.password.len() > 1000 {
        return Err(ApiError::Unauthorized);
    }
    let found = app.store.user_by_name(&req.username).await?;
    let password = req.password.clone();
    let (user, ok) = match found {
        Some((user, hash)) => {
            let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            (Some(user), ok)
        }
        None => {
            tokio::task::spawn_blocking(move || verify_password(&password, dummy_hash()))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            (None, false)
        }
    };
    let user = match user {
        Some(u) if ok && u.active => u,
        _ => return Err(ApiError::Unauthorized),
    };
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let now = app.now();
    let expires_at = now.checked_add(app.settings.token_ttl).map_err(|e| ApiError::Internal(e.to_string()))?;
    app.store.insert_token(&token_hash(&token), user.id, now, expires_at).await?;
    Ok((StatusCode::OK, Json(TokenOut { token, expires_at, user: user.into() })))
}

/// Sign out: revoke the token this request carries.
#[utoipa::path(delete, path = "/api/v1/auth/token", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn sign_out(State(app): State<AppState>, auth: Auth) -> ApiResult<StatusCode> {
    app.store.revoke_token(&auth.token_hash, app.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who am I.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn me(auth: Auth) -> Json<UserOut> {
    Json(auth.user.into())
}
