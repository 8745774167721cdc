//! The application's state: what every handler shares. State only — the
//! router is assembled in `router.rs`, the transport is `http`.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

use crate::cache::Cache;
use crate::http::rate_limiter::RateLimiter;
use crate::http::scrape::ScrapeAccess;
use crate::identity::keys::ServerKeys;
use crate::identity::tokens::CachedToken;
use crate::identity::AuthSettings;
use crate::listen::{Subscriber, AUTH_CHANNEL, CATALOG_CHANNEL};
use crate::metrics::Metrics;
use crate::records::Collection;

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
    /// Set when the server was asked to stop: `/readyz` answers 503 while
    /// it drains.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Whether notifications reach this replica (`/readyz` fails without).
    pub delivery: Arc<crate::listen::Delivery>,
    pub metrics: Arc<Metrics>,
    /// Who may read `/metrics`.
    pub scrape: Arc<ScrapeAccess>,
    /// Directories whose file systems `/metrics` reports, by label.
    pub watched_dirs: Vec<(&'static str, std::path::PathBuf)>,
    /// Bound for database checks made on behalf of a request.
    pub db_timeout: Duration,
    pub keys: ServerKeys,
    /// The key-encryption keys that seal secrets written by requests.
    pub vault: Arc<crate::secrets::Vault>,
    pub auth: AuthSettings,
    /// API tokens and collection catalogs, kept true by notifications.
    pub caches: Arc<Caches>,
    /// Streamed exports running at once on this replica (each holds a
    /// database connection while it runs).
    pub exports: Arc<tokio::sync::Semaphore>,
    /// How long a stored export stays downloadable (`jobs.export_retention_hours`).
    pub export_retention: Duration,
    /// Attempts per webhook delivery (`webhooks.max_attempts`).
    pub webhook_attempts: i32,
    pub rate_limiter: Arc<RateLimiter>,
    /// Largest accepted request bodies: in general, of an import file
    /// (streamed to the database) and of a batch write.
    pub body_limits: crate::http::body_limit::BodyLimit,
    /// Import uploads being received at once on this replica (each holds a
    /// database connection and a transaction while the file arrives).
    pub imports: Arc<tokio::sync::Semaphore>,
    /// The names requests may use (`http.allowed_hosts`).
    pub allowed_hosts: crate::http::host::AllowedHosts,
    /// Record queries running per caller (`api.max_concurrent_queries`).
    pub queries: Arc<crate::http::query_limit::QueryLimiter>,
    /// `backup.schedule` and `backup.drill_schedule` as the system page
    /// shows them; `None`: unscheduled.
    pub backup_schedule: Option<String>,
    pub drill_schedule: Option<String>,
}

/// The replica's caches, kept true by the notifications `crate::listen`
/// hands them.
pub struct Caches {
    /// API tokens by the SHA-256 digest of their secret.
    pub tokens: Cache<Vec<u8>, CachedToken>,
    /// Collections (visible fields) by name.
    pub catalog: Cache<String, Arc<Collection>>,
}

impl Caches {
    pub fn new() -> Arc<Caches> {
        Arc::new(Caches {
            tokens: Cache::new(),
            catalog: Cache::new(),
        })
    }

    /// Forgets everything: after a change made through this replica, which
    /// must be visible to its next request before the notification arrives.
    pub fn clear(&self) {
        self.tokens.clear();
        self.catalog.clear();
    }

    /// Whether the invalidation listener is connected (the caches are used).
    pub fn is_live(&self) -> bool {
        self.tokens.is_live()
    }
}

impl Subscriber for Caches {
    fn notified(&self, channel: &str) {
        match channel {
            AUTH_CHANNEL => self.tokens.clear(),
            CATALOG_CHANNEL => self.catalog.clear(),
            _ => {}
        }
    }

    fn connected(&self, up: bool) {
        self.tokens.set_live(up);
        self.catalog.set_live(up);
    }
}
