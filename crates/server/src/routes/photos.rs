//! `/api/v1/photos`: upload (multipart) and download. The type is sniffed from the bytes (JPEG,
//! PNG, WebP), the size is limited, the bytes are stored under their SHA-256 (uploading the same
//! photo twice stores it once), and what is served back has its metadata segments (EXIF with
//! GPS, XMP) removed, so a reporter's position and device never leak through a photo.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Path, Problem};
use crate::state::AppState;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use citygrid_core::org::Role;
use citygrid_store::Photo;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// What kind of image the bytes are, from their magic numbers.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// The image without its metadata segments; `None` if the container does not parse.
pub fn strip_metadata(content_type: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    use img_parts::{ImageEXIF, ImageICC};
    let input = Bytes::copy_from_slice(bytes);
    let out = match content_type {
        "image/jpeg" => {
            let mut img = img_parts::jpeg::Jpeg::from_bytes(input).ok()?;
            // APP1 carries EXIF and XMP, APP13 Photoshop IPTC: all can hold a position.
            img.segments_mut()
                .retain(|s| !matches!(s.marker(), img_parts::jpeg::markers::APP1 | img_parts::jpeg::markers::APP13));
            img.encoder().bytes()
        }
        "image/png" => {
            let mut img = img_parts::png::Png::from_bytes(input).ok()?;
            img.set_exif(None);
            img.chunks_mut().retain(|c| !matches!(&c.kind(), b"eXIf" | b"iTXt" | b"tEXt" | b"zTXt"));
            img.encoder().bytes()
        }
        "image/webp" => {
            let mut img = img_parts::webp::WebP::from_bytes(input).ok()?;
            img.set_exif(None);
            img.set_icc_profile(img.icc_profile());
            img.remove_chunks_by_id(*b"XMP ");
            img.encoder().bytes()
        }
        _ => return None,
    };
    Some(out.to_vec())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoOut {
    /// SHA-256 of the uploaded bytes; use it in `photo_ids`.
    pub id: String,
    pub content_type: String,
    pub size: usize,
}

/// The bytes of an image.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct PhotoBytes(Vec<u8>);

/// Multipart form with one file part (any field name; `file` by convention).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PhotoUpload {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Upload a photo (JPEG, PNG or WebP, up to the configured size).
#[utoipa::path(post, path = "/api/v1/photos", tag = "photos", security(("bearer" = [])),
    request_body(content = PhotoUpload, content_type = "multipart/form-data"),
    responses((status = 201, body = PhotoOut), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"), (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn upload(
    State(app): State<AppState>,
    auth: Auth,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<PhotoOut>)> {
    let mut form = form.map_err(|e| ApiError::UnsupportedMedia {
        detail: format!("send the photo as multipart/form-data: {}", e.body_text()),
    })?;
    let limit = app.settings.max_photo_bytes;
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge { detail: format!("a photo may be at most {limit} bytes") }
        } else {
            ApiError::BadRequest { code: "bad_multipart", field: Some("file".into()), detail: e.body_text() }
        }
    };
    let field = form.next_field().await.map_err(bad)?.ok_or_else(|| ApiError::invalid("file", "no file part"))?;
    let bytes = field.bytes().await.map_err(bad)?;
    if bytes.len() > limit {
        return Err(ApiError::TooLarge { detail: format!("a photo may be at most {limit} bytes") });
    }
    if bytes.is_empty() {
        return Err(ApiError::invalid("file", "empty file"));
    }
    let content_type = sniff(&bytes)
        .ok_or_else(|| ApiError::UnsupportedMedia { detail: "only JPEG, PNG and WebP photos are accepted".into() })?;
    let check = bytes.clone();
    let parses = tokio::task::spawn_blocking(move || strip_metadata(content_type, &check).is_some())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !parses {
        return Err(ApiError::invalid("file", format!("not a readable {content_type} file")));
    }
    let id = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len();
    app.store
        .insert_photo(&Photo {
            id: id.clone(),
            content_type: content_type.to_owned(),
            bytes: bytes.to_vec(),
            uploaded_by: auth.user.id,
            created_at: app.now(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(PhotoOut { id, content_type: content_type.to_owned(), size })))
}

/// Download a photo, without metadata. Citizens see only their own uploads.
#[utoipa::path(get, path = "/api/v1/photos/{id}", tag = "photos", security(("bearer" = [])),
    params(("id" = String, Path, description = "Photo id (SHA-256)")),
    responses((status = 200, description = "The photo, metadata removed",
            content((PhotoBytes = "image/jpeg"), (PhotoBytes = "image/png"), (PhotoBytes = "image/webp"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn download(State(app): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Response> {
    if !citygrid_core::case::is_photo_id(&id) {
        return Err(ApiError::NotFound("photo"));
    }
    let photo = app.store.get_photo(&id).await?.ok_or(ApiError::NotFound("photo"))?;
    if auth.role() == Role::Citizen && photo.uploaded_by != auth.user.id {
        return Err(ApiError::NotFound("photo"));
    }
    let ct = photo.content_type.clone();
    let bytes = tokio::task::spawn_blocking(move || strip_metadata(&ct, &photo.bytes))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::Internal(format!("stored photo {id} does not parse")))?;
    let mut res = bytes.into_response();
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&photo.content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    Ok(res)
}
