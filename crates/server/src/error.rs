//! One error type for the whole API, rendered as RFC 9457 `application/problem+json` with a
//! stable snake_case `code` and, for bad input, the offending `field`. Every status the API can
//! return is made here, in one `match`; internals are logged and never leaked (a 500 says
//! "internal error" and nothing else).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use citygrid_core::case::Refusal;
use citygrid_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the `code` says what happened.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub status: u16,
    /// Stable machine-readable reason, e.g. `invalid_field`, `wrong_state`, `out_of_scope`.
    pub code: String,
    pub detail: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { code: &'static str, field: Option<String>, detail: String },
    #[error("sign in first")]
    Unauthorized,
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{detail}")]
    TooLarge { detail: String },
    #[error("{detail}")]
    UnsupportedMedia { detail: String },
    #[error("{detail}")]
    Invalid { code: &'static str, field: String, detail: String },
    /// Too many requests from one account or phone in a window (429), with `Retry-After` when
    /// the wait is known.
    #[error("{detail}")]
    TooMany { code: &'static str, field: Option<String>, detail: String, retry_after: Option<u64> },
    /// A service the request needs (the SMS gateway) is down (503).
    #[error("{detail}")]
    Unavailable { code: &'static str, detail: String },
    #[error("internal error")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::Invalid { code: "invalid_field", field: field.into(), detail: detail.into() }
    }

    pub fn bad_query(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::BadRequest { code: "invalid_query", field: Some(field.into()), detail: detail.into() }
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::Forbidden { code: "forbidden_role", detail: detail.into() }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::Conflict { code, detail: detail.into() }
    }

    fn parts(&self) -> (StatusCode, String, Option<String>) {
        match self {
            ApiError::BadRequest { code, field, .. } => (StatusCode::BAD_REQUEST, (*code).into(), field.clone()),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized".into(), None),
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, (*code).into(), None),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found".into(), None),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into(), None),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, (*code).into(), None),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large".into(), None),
            ApiError::UnsupportedMedia { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".into(), None)
            }
            ApiError::Invalid { code, field, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, (*code).into(), Some(field.clone()))
            }
            ApiError::TooMany { code, field, .. } => (StatusCode::TOO_MANY_REQUESTS, (*code).into(), field.clone()),
            ApiError::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, (*code).into(), None),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal".into(), None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(msg) = &self {
            tracing::error!(error = %msg, "internal error");
        }
        let (status, code, field) = self.parts();
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            code,
            detail: self.to_string(),
            field,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::TooMany { retry_after: Some(s), .. } = &self {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let detail = r.to_string();
        match r {
            Refusal::Role { .. } => ApiError::Forbidden { code: "forbidden_role", detail },
            Refusal::Scope => ApiError::Forbidden { code: "out_of_scope", detail },
            Refusal::State { .. } => ApiError::Conflict { code: "wrong_state", detail },
            Refusal::Conflict(_) => ApiError::Conflict { code: "conflict", detail },
            Refusal::Invalid { field, message } => ApiError::invalid(field, message),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::NotFound("resource"),
            StoreError::Refused(r) => r.into(),
            StoreError::Conflict(m) => ApiError::conflict("conflict", m),
            StoreError::IdempotencyMismatch => ApiError::Invalid {
                code: "idempotency_mismatch",
                field: "Idempotency-Key".into(),
                detail: "this Idempotency-Key was already used with a different request body".into(),
            },
            // Data the store refused as a whole (an import that broke a rule of the data).
            StoreError::Invalid(m) => ApiError::Invalid { code: "invalid_data", field: "body".into(), detail: m },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// serde's messages name the field as a path prefix (`location.lon: invalid type…`, from
/// serde_path_to_error) or, for a missing field, in backticks (`missing field `lat``); the
/// backticks of other messages hold the rejected value, not the field.
pub fn field_of(message: &str) -> String {
    let (path, rest) = match message.split_once(": ") {
        Some((p, r)) if !p.is_empty() && p != "." && !p.contains(' ') => (Some(p), r),
        _ => (None, message),
    };
    let missing = rest.strip_prefix("missing field `").and_then(|m| m.split_once('`')).map(|(f, _)| f);
    match (path, missing) {
        (Some(p), Some(f)) => format!("{p}.{f}"),
        (Some(p), None) => p.to_owned(),
        (None, Some(f)) => f.to_owned(),
        (None, None) => "body".to_owned(),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        match r {
            JsonRejection::JsonDataError(e) => {
                let text = e.body_text();
                let msg = text
                    .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                    .unwrap_or(&text)
                    .to_owned();
                ApiError::Invalid { code: "invalid_field", field: field_of(&msg), detail: msg }
            }
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::BadRequest { code: "malformed_json", field: Some("body".into()), detail: e.body_text() }
            }
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::UnsupportedMedia { detail: "send the body as application/json".into() }
            }
            other => ApiError::BadRequest { code: "bad_body", field: Some("body".into()), detail: other.body_text() },
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        let text = r.body_text();
        let msg = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text).to_owned();
        ApiError::BadRequest { code: "invalid_query", field: Some(field_of(&msg)), detail: msg }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::BadRequest { code: "invalid_path", field: Some("path".into()), detail: r.body_text() }
    }
}

/// `Json` that rejects with a problem document.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` that rejects with a problem document.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `Path` that rejects with a problem document.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_field() {
        assert_eq!(field_of("missing field `description` at line 1 column 2"), "description");
        assert_eq!(field_of("location.lon: invalid type: string \"x\", expected f64"), "location.lon");
        assert_eq!(field_of("expected value at line 1 column 1"), "body");
        assert_eq!(field_of("urgency: unknown variant `super`, expected one of `urgent`"), "urgency");
        assert_eq!(field_of("location: missing field `lat` at line 1 column 9"), "location.lat");
        assert_eq!(field_of("overdue: provided string was not `true` or `false`"), "overdue");
    }

    #[test]
    fn statuses() {
        let cases: Vec<(ApiError, u16)> = vec![
            (ApiError::bad_query("limit", "x"), 400),
            (ApiError::Unauthorized, 401),
            (ApiError::forbidden("x"), 403),
            (Refusal::Scope.into(), 403),
            (ApiError::NotFound("case"), 404),
            (ApiError::MethodNotAllowed, 405),
            (Refusal::State { action: "close", state: "filed" }.into(), 409),
            (ApiError::TooLarge { detail: "x".into() }, 413),
            (ApiError::UnsupportedMedia { detail: "x".into() }, 415),
            (ApiError::invalid("f", "x"), 422),
            (StoreError::IdempotencyMismatch.into(), 422),
            (ApiError::Internal("boom".into()), 500),
        ];
        for (e, status) in cases {
            let res = e.into_response();
            assert_eq!(res.status().as_u16(), status);
            assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");
        }
    }
}
