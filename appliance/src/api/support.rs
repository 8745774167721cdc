//! Helpers handlers share (never from one another): ids from paths, page
//! limits, field errors, blocking work, the explicit-`null` option, the
//! collection named in a path (from the catalog cache for reads), and the
//! password, display-name, lockout and cookie rules of the account routes.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::Caches;
use crate::http::error::{ErrorBody, ErrorCode};
use crate::identity::password;
use crate::records::{self, Collection};

/// A numeric id from the path; anything else is "not found".
pub fn parse_id(raw: &str, what: &str) -> Result<i64, ErrorBody> {
    raw.parse::<i64>()
        .map_err(|_| ErrorBody::new(ErrorCode::NotFound, format!("no {what} with id {raw:?}")))
}

/// A listing's `limit`: 1 to 200, 50 when absent.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ErrorBody> {
    let limit = limit.unwrap_or(50);
    if (1..=200).contains(&limit) {
        Ok(limit)
    } else {
        Err(invalid_field("limit", "between 1 and 200"))
    }
}

/// A field-level validation failure.
pub fn invalid_field(field: &str, message: impl Into<String>) -> ErrorBody {
    let message = message.into();
    ErrorBody::new(ErrorCode::ValidationFailed, format!("`{field}`: {message}"))
        .with_details(serde_json::json!({ "fields": [{ "field": field, "message": message }] }))
}

/// Runs CPU-heavy work (password hashing) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ErrorBody> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "blocking task failed");
        ErrorBody::new(ErrorCode::Internal, "internal error; see the server log")
    })
}

/// Tells a missing key (`None`) from an explicit `null` (`Some(None)`).
pub mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

pub fn no_collection(name: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::NotFound,
        format!("no collection named {name:?}; GET /api/v1/collections lists them"),
    )
}

/// The collection named in the path, for the record read paths: from the
/// replica's catalog cache when it can (see `crate::cache`). A read that
/// finds the table changed under it (`records::schema_moved`) calls
/// [`reload`] and reads again.
pub async fn load_cached(
    caches: &Caches,
    client: &deadpool_postgres::Client,
    name: &str,
) -> Result<Arc<Collection>, ErrorBody> {
    if records::check_name(name).is_some() {
        return Err(no_collection(name));
    }
    if let Some(hit) = caches.catalog.get(&name.to_string()) {
        return Ok(hit);
    }
    let generation = caches.catalog.generation();
    let c = Arc::new(
        records::collection_prepared(client, name)
            .await?
            .ok_or_else(|| no_collection(name))?,
    );
    caches
        .catalog
        .insert(generation, name.to_string(), c.clone());
    Ok(c)
}

/// After a read found the table changed under it: forgets the replica's
/// catalogs and this connection's prepared statements (which may describe
/// the old columns), and reads the collection afresh.
pub async fn reload(
    caches: &Caches,
    client: &deadpool_postgres::Client,
    name: &str,
) -> Result<Arc<Collection>, ErrorBody> {
    caches.catalog.clear();
    client.statement_cache.clear();
    load_cached(caches, client, name).await
}

pub async fn load<C: crate::db::Sql>(client: &C, name: &str) -> Result<Collection, ErrorBody> {
    if records::check_name(name).is_some() {
        return Err(no_collection(name));
    }
    records::collection(client, name)
        .await?
        .ok_or_else(|| no_collection(name))
}

/// A response that also sets (or clears) the session cookie.
pub fn with_cookie(response: impl IntoResponse, cookie: String) -> Response {
    let mut response = response.into_response();
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Checks a new password against the policy, then hashes it off the async
/// workers.
pub async fn new_password_hash(
    password: &str,
    username: &str,
    display_name: &str,
    field: &str,
) -> Result<String, ErrorBody> {
    if let Err(e) = password::check_policy(password, &[username, display_name, "mogothrow77"]) {
        return Err(ErrorBody::new(ErrorCode::PasswordPolicy, e.to_string()).with_details(
            json!({ "fields": [{ "field": field, "rule": e.code(), "message": e.to_string() }] }),
        ));
    }
    let password = password.to_string();
    blocking(move || password::hash(&password))
        .await?
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            ErrorBody::new(ErrorCode::Internal, "internal error; see the server log")
        })
}

pub fn check_display_name(name: &str) -> Result<(), ErrorBody> {
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(invalid_field(
            "display_name",
            "at most 100 characters, no control characters",
        ));
    }
    Ok(())
}

/// 429 with `Retry-After` while an account name or address is locked.
pub fn too_many_attempts(retry_after: u64) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::TooManyAttempts,
        format!(
            "too many failed attempts for this account or from this address; try again in \
             {retry_after} seconds"
        ),
    )
    .with_details(json!({ "retry_after_seconds": retry_after }))
    .retry_after(retry_after)
}

/// A place among the caller's running record queries
/// (`api.max_concurrent_queries`), or 429 with `Retry-After`.
pub fn query_permit(
    state: &crate::app::AppState,
    ctx: &super::Ctx,
) -> Result<crate::http::query_limit::Permit, ErrorBody> {
    let key = match &ctx.principal {
        Some(p) => p.key(),
        None => format!("address:{}", ctx.client_addr),
    };
    state.queries.try_acquire(&key).ok_or_else(|| {
        ErrorBody::new(
            ErrorCode::RateLimited,
            format!(
                "you have {} record queries running on this server already \
                 (api.max_concurrent_queries); retry when one has finished",
                state.queries.max()
            ),
        )
        .retry_after(1)
    })
}
