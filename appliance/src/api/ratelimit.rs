//! Request rate limits per API token, signed-in user or (anonymous) client
//! address: one token bucket each (`http::rate_limiter`), `429` with
//! `Retry-After` when empty.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{client_addr, Caller};
use crate::app::AppState;
use crate::http::error::{ErrorBody, ErrorCode};

pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = match request
        .extensions()
        .get::<Caller>()
        .and_then(|c| c.principal.as_ref())
    {
        Some(p) => p.key(),
        None => format!("address:{}", client_addr(request.extensions())),
    };
    match state.rate_limiter.check(&key, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            let mut response = ErrorBody::new(
                ErrorCode::RateLimited,
                format!("too many requests; slow down and retry in {retry_after} seconds"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
    }
}
