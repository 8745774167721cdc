//! Requests announcing a body over `http.body_limit_bytes` are refused with
//! 413 before any of it is read; bodies without a length are bounded by
//! axum's `DefaultBodyLimit` when extracted. Import uploads (`POST
//! /api/v1/collections/{c}/imports`) are streamed to the database by their
//! handler and have their own limit, `jobs.import_max_mb`; batch writes
//! (`POST /api/v1/collections/{c}/records/batch`) theirs,
//! `api.batch_body_limit_bytes`.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ErrorBody, ErrorCode};

/// The largest request bodies, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    /// Every request but the two below (`http.body_limit_bytes`).
    pub general: usize,
    /// An import upload, streamed to the database (`jobs.import_max_mb`).
    pub import: usize,
    /// A batch write (`api.batch_body_limit_bytes`).
    pub batch: usize,
}

/// Whether `path` is `/api/v1/collections/<name><suffix>`.
fn is_collection_route(path: &str, suffix: &str) -> bool {
    path.strip_prefix("/api/v1/collections/")
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

impl BodyLimit {
    /// The limit of a request and the key that sets it.
    pub fn of(&self, method: &axum::http::Method, path: &str) -> (usize, &'static str) {
        if method != axum::http::Method::POST {
            (self.general, "http.body_limit_bytes")
        } else if is_collection_route(path, "/imports") {
            (self.import, "jobs.import_max_mb")
        } else if is_collection_route(path, "/records/batch") {
            (self.batch, "api.batch_body_limit_bytes")
        } else {
            (self.general, "http.body_limit_bytes")
        }
    }
}

pub async fn middleware(State(limit): State<BodyLimit>, request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (limit, key) = limit.of(request.method(), request.uri().path());
    if announced.is_some_and(|len| len > limit as u64) {
        return ErrorBody::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body is larger than the {limit} byte limit; send less data \
                 (the limit is {key})"
            ),
        )
        .into_response();
    }
    next.run(request).await
}
