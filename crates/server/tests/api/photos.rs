//! `/api/v1/photos`: type sniffed from the bytes, size limit, content addressing, metadata
//! stripped on the way out, citizens see only their own uploads.

use crate::helpers::{spawn_app, spawn_app_with, tiny_jpeg, tiny_png, tiny_webp, Backend};
use axum::http::Method;
use sha2::{Digest, Sha256};

async fn sniffs_jpeg_png_webp(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    for (bytes, ct) in [(tiny_jpeg(None), "image/jpeg"), (tiny_png(3), "image/png"), (tiny_webp(), "image/webp")] {
        let v = app.upload_photo(&collector, &bytes).await.ok(201);
        let id = hex::encode(Sha256::digest(&bytes));
        assert_eq!(v["id"], id.as_str(), "content address of {ct}");
        assert_eq!(v["content_type"], ct);
        assert_eq!(v["size"], bytes.len());
        let r = app.get(&collector, &format!("/api/v1/photos/{id}")).await;
        assert_eq!(r.status.as_u16(), 200);
        assert_eq!(r.header("content-type"), Some(ct));
        assert_eq!(r.body, bytes, "{ct} without metadata comes back unchanged");
    }
    assert_eq!(app.count("photos").await, 3);
}

async fn refuses_what_is_not_a_photo(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    let before = app.counts().await;
    app.upload_photo(&collector, b"just some text, not a picture\n").await.problem(415, "unsupported_media_type", None);
    // GIF is an image, but not one of ours.
    app.upload_photo(&collector, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").await.problem(
        415,
        "unsupported_media_type",
        None,
    );
    // JPEG magic number, then nothing a JPEG parser accepts.
    app.upload_photo(&collector, &[0xFF, 0xD8, 0xFF, 0x00, 0x01, 0x02]).await.problem(
        422,
        "invalid_field",
        Some("file"),
    );
    app.upload_photo(&collector, b"").await.problem(422, "invalid_field", Some("file"));
    // A multipart body without any part.
    let boundary = "xyz";
    let r = app
        .request(
            Method::POST,
            "/api/v1/photos",
            Some(&collector),
            &[("content-type", "multipart/form-data; boundary=xyz")],
            format!("--{boundary}--\r\n").into_bytes(),
        )
        .await;
    r.problem(422, "invalid_field", Some("file"));
    // No token.
    let r = app.request(Method::POST, "/api/v1/photos", None, &[], tiny_png(1)).await;
    r.problem(401, "unauthorized", None);
    assert_eq!(app.counts().await, before);
}

/// Not `multipart/form-data` at all: like every other refusal, a problem document (400 or 415)
/// with a code, not axum's plain-text rejection.
async fn non_multipart_upload_is_a_problem(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    let before = app.counts().await;
    for headers in [&[("content-type", "image/png")][..], &[][..]] {
        let r = app.request(Method::POST, "/api/v1/photos", Some(&collector), headers, tiny_png(1)).await;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert!(matches!(r.status.as_u16(), 400 | 415), "{headers:?}: status {}; body: {text}", r.status);
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{headers:?}: body: {text}");
        assert!(r.json()["code"].is_string(), "{headers:?}: body: {text}");
    }
    assert_eq!(app.counts().await, before);
}

async fn too_large(backend: Backend) {
    let settings = citygrid_server::Settings { max_photo_bytes: 1000, ..citygrid_server::Settings::default() };
    let app = spawn_app_with(backend, settings).await;
    let collector = app.sign_in("collector").await;
    let before = app.counts().await;
    // A valid JPEG just over the limit (a big comment-like APP1 segment).
    let big = tiny_jpeg(Some(&vec![b'x'; 1000]));
    assert!(big.len() > 1000);
    app.upload_photo(&collector, &big).await.problem(413, "too_large", None);
    // Far over the limit: the body limit stops the stream itself.
    let huge = tiny_jpeg(Some(&vec![b'x'; 60_000])).repeat(2);
    assert!(huge.len() > 1000 + 64 * 1024);
    app.upload_photo(&collector, &huge).await.problem(413, "too_large", None);
    assert_eq!(app.counts().await, before);
    // At the limit is fine.
    let small = tiny_jpeg(Some(&vec![b'x'; 1000 - tiny_jpeg(None).len() - 4]));
    assert_eq!(small.len(), 1000);
    app.upload_photo(&collector, &small).await.ok(201);
}

async fn same_bytes_same_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    let citizen = app.sign_in("citizen").await;
    let a = app.photo_id(&collector, &tiny_png(5)).await;
    let after_one = app.count("photos").await;
    let b = app.photo_id(&collector, &tiny_png(5)).await;
    let c = app.photo_id(&citizen, &tiny_png(5)).await;
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(app.count("photos").await, after_one, "stored once");
    assert_ne!(a, app.photo_id(&collector, &tiny_png(6)).await);
}

async fn exif_is_stripped(backend: Backend) {
    let app = spawn_app(backend).await;
    let collector = app.sign_in("collector").await;
    // APP1 "Exif\0\0" + a big-endian TIFF header + a position in clear text.
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08".to_vec();
    exif.extend_from_slice(b"GPSLatitude=34.2600N;GPSLongitude=117.1800E");
    let with_exif = tiny_jpeg(Some(&exif));
    let v = app.upload_photo(&collector, &with_exif).await.ok(201);
    assert_eq!(v["content_type"], "image/jpeg");
    assert_eq!(v["id"], hex::encode(Sha256::digest(&with_exif)).as_str(), "the id is of the uploaded bytes");
    let r = app.get(&collector, &format!("/api/v1/photos/{}", v["id"].as_str().unwrap())).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let served = r.body;
    assert!(!served.windows(2).any(|w| w == [0xFF, 0xE1]), "no APP1 marker left");
    assert!(!served.windows(4).any(|w| w == b"Exif"), "no Exif header left");
    assert!(!served.windows(11).any(|w| w == b"GPSLatitude"), "no position left");
    assert_eq!(served, tiny_jpeg(None), "everything else is kept as it was");
}

async fn citizens_see_only_their_own_photos(backend: Backend) {
    let app = spawn_app(backend).await;
    let citizen = app.sign_in("citizen").await;
    let collector = app.sign_in("collector").await;
    let admin = app.sign_in("admin").await;
    let created = app
        .post_json(
            &admin,
            "/api/v1/users",
            &serde_json::json!({"username": "citizen2", "password": "pw-2", "role": "citizen", "scope": {"kind": "own"}}),
        )
        .await;
    created.ok(201);
    let other = app.sign_in_with("citizen2", "pw-2").await;
    let mine = app.photo_id(&citizen, &tiny_png(11)).await;
    let theirs = app.photo_id(&collector, &tiny_png(12)).await;
    let uri = |id: &str| format!("/api/v1/photos/{id}");
    assert_eq!(app.get(&citizen, &uri(&mine)).await.status.as_u16(), 200);
    app.get(&other, &uri(&mine)).await.problem(404, "not_found", None);
    app.get(&citizen, &uri(&theirs)).await.problem(404, "not_found", None);
    // Staff see every photo; unknown and malformed ids are not found.
    assert_eq!(app.get(&collector, &uri(&mine)).await.status.as_u16(), 200);
    app.get(&collector, &uri(&format!("{:064x}", 1))).await.problem(404, "not_found", None);
    app.get(&collector, &uri("not-a-photo-id")).await.problem(404, "not_found", None);
}

backend_tests!(
    sniffs_jpeg_png_webp,
    refuses_what_is_not_a_photo,
    non_multipart_upload_is_a_problem,
    too_large,
    same_bytes_same_id,
    exif_is_stripped,
    citizens_see_only_their_own_photos,
);
