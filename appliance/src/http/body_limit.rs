//! Requests announcing a body over `http.body_limit_bytes` are refused with
//! 413 before any of it is read; bodies without a length are bounded by
//! axum's `DefaultBodyLimit` when extracted. Import uploads (`POST
//! /api/v1/collections/{c}/imports`) are streamed to the database by their
//! handler and have their own limit, `jobs.import_max_mb`.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ErrorBody, ErrorCode};

#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub general: usize,
    pub import: usize,
}

/// Whether a request is an import upload.
fn is_import_upload(request: &Request) -> bool {
    request.method() == axum::http::Method::POST
        && request
            .uri()
            .path()
            .strip_prefix("/api/v1/collections/")
            .and_then(|rest| rest.strip_suffix("/imports"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

pub async fn middleware(State(limit): State<BodyLimit>, request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (limit, key) = if is_import_upload(&request) {
        (limit.import, "jobs.import_max_mb")
    } else {
        (limit.general, "http.body_limit_bytes")
    };
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
