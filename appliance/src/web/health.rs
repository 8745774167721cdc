//! `/healthz` (alive), `/readyz` (not stopping, database reachable and schema
//! compatible)
//! and `/metrics` (for the clients [`super::scrape`] lets in).

use crate::db::{Cached, Sql};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;
use crate::db::migrate;
use crate::db::{describe_pg_error, describe_pool_error};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::http::scrape::Refusal;

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        // Draining: a balancer takes this replica out while it still serves.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "stopping",
                "reasons": ["the server is shutting down (SIGTERM): it serves on for \
                             http.drain_delay_secs so that balancers take it out, then exits"],
            })),
        )
            .into_response();
    }
    if state.delivery.is_broken() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "reasons": [crate::listen::NOT_DELIVERED],
            })),
        )
            .into_response();
    }
    let check = async {
        let client = state
            .pool
            .get()
            .await
            .map_err(|e| format!("database unreachable: {}", describe_pool_error(&e)))?;
        let status = migrate::status_for_readiness(&client)
            .await
            .map_err(|e| format!("cannot read the schema state: {e}"))?;
        let read_only = client
            .prepared("SELECT current_setting('transaction_read_only')")
            .await;
        let read_only = match read_only {
            Ok(statement) => client.query_one(&statement, &[]).await,
            Err(e) => Err(e),
        }
        .map_err(|e| format!("database unreachable: {}", describe_pg_error(&e)))?;
        if read_only.get::<_, String>(0) == "on" {
            // A standby, or the old primary after a failover: stop reusing
            // connections to it.
            crate::db::failover_seen();
            return Err(
                "the database is read-only (a standby, or a primary that a failover \
                        demoted); database.url must lead to the primary: see \
                        high-availability.md"
                    .to_string(),
            );
        }
        status
            .check_serveable()
            .map_err(|e| format!("schema incompatible: {e}"))
    };
    let outcome = match tokio::time::timeout(state.db_timeout, check).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "database did not answer within {} s",
            state.db_timeout.as_secs()
        )),
    };
    match outcome {
        // The version and schema level let the upgrade tool confirm which
        // release answers (the same facts /metrics publishes).
        Ok(()) => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "version": env!("APPLIANCE_VERSION"),
                "schema_level": migrate::binary_level(),
            })),
        )
            .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reasons": [reason] })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Err(refusal) = state.scrape.check(peer, request.headers()) {
        let code = match refusal {
            Refusal::Address => ErrorCode::Forbidden,
            Refusal::TokenMissing | Refusal::TokenWrong => ErrorCode::Unauthenticated,
        };
        let mut response = ErrorBody::new(code, refusal.message()).into_response();
        if code == ErrorCode::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
        }
        return response;
    }
    for (dir, path) in &state.watched_dirs {
        state.metrics.sample_dir(dir, path);
    }
    state.metrics.sample_process();
    state
        .metrics
        .cache_listener_connected
        .set(i64::from(state.caches.is_live()));
    let pool = state.pool.status();
    state.metrics.pool_size.set(pool.size as i64);
    state.metrics.pool_available.set(pool.available as i64);
    state.metrics.pool_waiting.set(pool.waiting as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}
