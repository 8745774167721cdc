//! HTTP: the router, its middleware and the TLS-terminating server.

mod body_limit;
pub mod console;
mod docs;
pub mod error;
mod headers;
mod health;
mod observe;
pub mod request_id;
pub mod scrape;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use deadpool_postgres::Pool;

use crate::api::ratelimit::RateLimiter;
use crate::identity::keys::ServerKeys;
use crate::identity::AuthSettings;
use crate::metrics::Metrics;
use body_limit::BodyLimit;

/// What handlers share: cloned for every extractor of every request, so
/// one pointer ([`Shared`] behind an `Arc`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state itself.
pub struct Shared {
    pub pool: Pool,
    pub metrics: Arc<Metrics>,
    /// Who may read `/metrics`.
    pub scrape: Arc<scrape::ScrapeAccess>,
    /// Directories whose file systems `/metrics` reports, by label.
    pub watched_dirs: Vec<(&'static str, std::path::PathBuf)>,
    /// Bound for database checks made on behalf of a request.
    pub db_timeout: Duration,
    pub keys: ServerKeys,
    pub auth: AuthSettings,
    /// API tokens and collection catalogs, kept true by notifications.
    pub caches: Arc<crate::cache::Caches>,
    /// Streamed exports running at once on this replica (each holds a
    /// database connection while it runs).
    pub exports: Arc<tokio::sync::Semaphore>,
    /// How long a stored export stays downloadable (`jobs.export_retention_hours`).
    pub export_retention: Duration,
    /// Attempts per webhook delivery (`webhooks.max_attempts`).
    pub webhook_attempts: i32,
    pub rate_limiter: Arc<RateLimiter>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Largest import file, in bytes (`jobs.import_max_mb`): the one route
    /// whose body may exceed `body_limit`, streamed to the database.
    pub import_limit: usize,
    /// Import uploads being received at once on this replica (each holds a
    /// database connection and a transaction while the file arrives).
    pub imports: Arc<tokio::sync::Semaphore>,
}

/// The whole application: every route, then the middleware every request
/// passes through (outermost last): body limit, metrics and access log,
/// security headers, request id.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let body_limit = state.body_limit;
    let import_limit = state.import_limit;
    let routes = Router::new()
        .merge(health::router())
        .merge(crate::api::router(state.clone()))
        .merge(console::router())
        .merge(docs::router())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            BodyLimit {
                general: body_limit,
                import: import_limit,
            },
            body_limit::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            observe::middleware,
        ));
    headers::apply(routes).layer(axum::middleware::from_fn(request_id::middleware))
}
