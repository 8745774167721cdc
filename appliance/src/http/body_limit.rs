//! Requests announcing a body over `http.body_limit_bytes` are refused with
//! 413 before any of it is read; bodies without a length are bounded by
//! axum's `DefaultBodyLimit` when extracted.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ErrorBody, ErrorCode};

#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

pub async fn middleware(State(limit): State<BodyLimit>, request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit.0 as u64) {
        return ErrorBody::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body is larger than the {} byte limit; send less data \
                 (the limit is http.body_limit_bytes)",
                limit.0
            ),
        )
        .into_response();
    }
    next.run(request).await
}
