//! Idempotency keys on POST: a client that retries a request with the same
//! `Idempotency-Key` gets the first response again instead of a second
//! effect. The same key with a different request is refused (409); a key
//! whose first request is still running answers 409 with `Retry-After`.
//! Records are per caller, kept 24 hours, in PostgreSQL (any replica).
//! Responses that carry a one-time secret (a new API token, a TOTP secret,
//! recovery codes) or set a cookie are never stored: a retry of such a
//! request runs again.

use crate::db::Sql;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{client_addr, Caller};
use crate::app::AppState;
use crate::http::error::{ErrorBody, ErrorCode};

pub const HEADER: &str = "idempotency-key";

/// Marks a response that must not be kept for replay.
#[derive(Debug, Clone, Copy)]
pub struct OneTimeSecret;

/// `response`, marked as holding a one-time secret.
pub fn one_time(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(OneTimeSecret);
    response
}
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long a key is remembered.
pub const RETENTION_HOURS: i32 = 24;

fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(raw_key) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let key = match raw_key.to_str() {
        Ok(k) if valid_key(k) => k.to_string(),
        _ => {
            return ErrorBody::new(
                ErrorCode::InvalidIdempotencyKey,
                "Idempotency-Key must be 1-255 visible ASCII characters (a UUID is ideal)",
            )
            .into_response()
        }
    };
    match run(&state, key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run(
    state: &AppState,
    key: String,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let principal = match request
        .extensions()
        .get::<Caller>()
        .and_then(|c| c.principal.as_ref())
    {
        Some(p) => p.key(),
        None => format!("address:{}", client_addr(request.extensions())),
    };
    let path = request.uri().path().to_string();
    let (parts, body) = request.into_parts();
    let (limit, limit_key) = state.body_limits.buffered(&parts.method, &path);
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        ErrorBody::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than this server accepts ({limit_key})"),
        )
        .into_response()
    })?;
    let mut hashed = Vec::with_capacity(path.len() + bytes.len() + 1);
    hashed.extend_from_slice(path.as_bytes());
    hashed.push(0);
    hashed.extend_from_slice(&bytes);
    let digest = ring::digest::digest(&ring::digest::SHA256, &hashed)
        .as_ref()
        .to_vec();
    let db = |e: tokio_postgres::Error| ErrorBody::from(e).into_response();
    let client = state
        .pool
        .get()
        .await
        .map_err(|e| ErrorBody::from(e).into_response())?;
    let claimed = client
        .execute(
            "INSERT INTO idempotency_keys (principal, key, method, path, request_digest) \
             VALUES ($1, $2, 'POST', $3, $4) ON CONFLICT (principal, key) DO NOTHING",
            &[&principal, &key, &path, &digest],
        )
        .await
        .map_err(db)?;
    // A first attempt that never finished (its replica died) is taken over
    // after five minutes.
    let claimed = if claimed == 0 {
        client
            .execute(
                "UPDATE idempotency_keys SET created_at = now() \
                 WHERE principal = $1 AND key = $2 AND request_digest = $3 AND status IS NULL \
                   AND created_at < now() - interval '5 minutes'",
                &[&principal, &key, &digest],
            )
            .await
            .map_err(db)?
    } else {
        claimed
    };
    if claimed == 0 {
        let row = client
            .query_one(
                "SELECT request_digest, status, content_type, body FROM idempotency_keys \
                 WHERE principal = $1 AND key = $2",
                &[&principal, &key],
            )
            .await
            .map_err(db)?;
        let stored_digest: Vec<u8> = row.get(0);
        if stored_digest != digest {
            return Err(ErrorBody::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request; use a new key \
                 for a new request",
            )
            .into_response());
        }
        let Some(status) = row.get::<_, Option<i32>>(1) else {
            let mut response = ErrorBody::new(
                ErrorCode::IdempotencyInProgress,
                "the first request with this Idempotency-Key is still running; retry shortly",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(response);
        };
        let content_type: Option<String> = row.get(2);
        let body: Option<Vec<u8>> = row.get(3);
        // An error is rendered again, so it carries this request's id.
        let replayed_error = (status >= 400)
            .then(|| {
                body.as_deref()
                    .and_then(|b| serde_json::from_slice::<ErrorBody>(b).ok())
            })
            .flatten();
        if let Some(error) = replayed_error {
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            return Ok(response);
        }
        let mut response = (
            StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK),
            body.unwrap_or_default(),
        )
            .into_response();
        if let Some(v) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        return Ok(response);
    }
    drop(client);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (mut parts, body) = response.into_parts();
    let client = state
        .pool
        .get()
        .await
        .map_err(|e| ErrorBody::from(e).into_response())?;
    // Server errors and 429s are not remembered (the client may retry
    // them), nor
    // responses holding a one-time secret or a session cookie.
    let keep = !parts.status.is_server_error()
        && parts.status != StatusCode::TOO_MANY_REQUESTS
        && parts.extensions.get::<OneTimeSecret>().is_none()
        && !parts.headers.contains_key(header::SET_COOKIE);
    if !keep {
        client
            .execute(
                "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2",
                &[&principal, &key],
            )
            .await
            .map_err(db)?;
        return Ok(Response::from_parts(parts, body));
    }
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    client
        .execute(
            "UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5 \
             WHERE principal = $1 AND key = $2",
            &[
                &principal,
                &key,
                &i32::from(parts.status.as_u16()),
                &content_type,
                &bytes.to_vec(),
            ],
        )
        .await
        .map_err(db)?;
    parts
        .headers
        .insert(REPLAYED_HEADER, HeaderValue::from_static("false"));
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// Forgets keys older than the retention period.
pub async fn sweep(client: &tokio_postgres::Client) -> Result<u64, tokio_postgres::Error> {
    Sql::execute(
        &client,
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
        &[&RETENTION_HOURS],
    )
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys() {
        assert!(super::valid_key("0f7c2b1e-8d5a-4c1f-9e1b-2a3c4d5e6f70"));
        assert!(!super::valid_key(""));
        assert!(!super::valid_key("has space"));
        assert!(!super::valid_key(&"x".repeat(256)));
    }
}
