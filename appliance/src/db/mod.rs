//! PostgreSQL: connection settings for the application and migration roles,
//! the connection pool, and TLS to external servers.

pub mod backup;
pub mod binaries;
pub mod managed;
pub mod migrate;
pub mod pgbackrest;
pub mod probe;
pub mod recovery;
pub mod rehearse;
pub mod restore;
pub mod scratch;
pub mod sql;

pub use sql::{Cached, Prepared, Sql};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{DatabaseTarget, Settings};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database connection string for {role}: {reason}")]
    BadUrl { role: &'static str, reason: String },
    #[error("cannot load the database CA certificates from {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("cannot create the connection pool: {0}")]
    Pool(String),
    #[error("database unreachable: {0}")]
    Unreachable(String),
    #[error(
        "PostgreSQL {found} is too old: Mogothrow77 needs PostgreSQL {MIN_SERVER_MAJOR} or newer; \
         upgrade the database server"
    )]
    ServerTooOld { found: String },
}

/// The oldest PostgreSQL major version supported.
pub const MIN_SERVER_MAJOR: u32 = 13;

/// Refuses a server older than [`MIN_SERVER_MAJOR`].
pub async fn check_server_version(client: &tokio_postgres::Client) -> Result<(), DbError> {
    let row = Sql::query_one(
        &client,
        "SELECT current_setting('server_version_num')::int, current_setting('server_version')",
        &[],
    )
    .await
    .map_err(|e| DbError::Unreachable(describe_pg_error(&e)))?;
    let number: i32 = row.get(0);
    if (number / 10000) < MIN_SERVER_MAJOR as i32 {
        return Err(DbError::ServerTooOld { found: row.get(1) });
    }
    Ok(())
}

/// Connection settings for both roles the appliance uses.
#[derive(Clone)]
pub struct Connections {
    /// The application role: everything but migrations.
    pub app: tokio_postgres::Config,
    /// The schema owner: migrations.
    pub owner: tokio_postgres::Config,
    /// True when migrations use the application role's own connection
    /// (external mode without `database.migration_url`).
    pub shared_role: bool,
    pub tls: MakeRustlsConnect,
    pub connect_timeout: Duration,
}

impl Connections {
    /// Settings for an external database from the configuration.
    pub fn external(settings: &Settings) -> Result<Connections, DbError> {
        let DatabaseTarget::External { url, migration_url } = &settings.database else {
            return Err(DbError::BadUrl {
                role: "application",
                reason: "no database.url configured".to_string(),
            });
        };
        let parse = |role: &'static str, url: &str| {
            crate::config::normalize_sslmode(url)
                .parse::<tokio_postgres::Config>()
                .map_err(|e| DbError::BadUrl {
                    role,
                    reason: e.to_string(),
                })
        };
        let timeout = Duration::from_secs(settings.config.database.connect_timeout_secs);
        let mut app = parse("application", url.expose())?;
        let mut owner = match migration_url {
            Some(m) => parse("migrations", m.expose())?,
            None => app.clone(),
        };
        for c in [&mut app, &mut owner] {
            c.connect_timeout(timeout);
            c.application_name("mogothrow77");
        }
        Ok(Connections {
            app,
            owner,
            shared_role: migration_url.is_none(),
            tls: tls_connector(settings.config.database.ca_file.as_deref())?,
            connect_timeout: timeout,
        })
    }

    /// A pool of application-role connections. Connections are made lazily:
    /// creating the pool never touches the network. Every statement on them
    /// runs under `statement_timeout_ms` (a request never holds the database
    /// longer); long schema work sets its own limit (`records::schema`).
    /// The limit is set by a `SET` on each new connection rather than the
    /// startup packet's `options`, which PgBouncer refuses.
    pub fn pool(&self, size: usize, statement_timeout_ms: u64) -> Result<Pool, DbError> {
        EPOCH.get_or_init(Instant::now);
        let manager = Manager::from_config(
            self.app.clone(),
            self.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let set_timeout = format!("SET statement_timeout = {statement_timeout_ms}");
        Pool::builder(manager)
            .post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
                let set_timeout = set_timeout.clone();
                Box::pin(async move {
                    Sql::batch_execute(&**client, &set_timeout)
                        .await
                        .map_err(deadpool_postgres::HookError::Backend)
                })
            }))
            .pre_recycle(deadpool_postgres::Hook::sync_fn(|_, metrics| {
                if opened_before_failover(metrics.created) {
                    return Err(deadpool_postgres::HookError::message(
                        "opened before the database turned read-only",
                    ));
                }
                Ok(())
            }))
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.connect_timeout))
            .create_timeout(Some(self.connect_timeout))
            .recycle_timeout(Some(self.connect_timeout))
            .build()
            .map_err(|e| DbError::Pool(e.to_string()))
    }

    /// One connection as the schema owner, for migrations.
    pub async fn connect_owner(&self) -> Result<tokio_postgres::Client, DbError> {
        connect(&self.owner, &self.tls).await
    }

    /// One connection as the application role.
    pub async fn connect_app(&self) -> Result<tokio_postgres::Client, DbError> {
        connect(&self.app, &self.tls).await
    }
}

/// Connects and drives the connection on a background task.
pub async fn connect(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
) -> Result<tokio_postgres::Client, DbError> {
    let (client, connection) = config
        .connect(tls.clone())
        .await
        .map_err(|e| DbError::Unreachable(describe_pg_error(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

/// A PostgreSQL error as one line, with the server's message when there is one.
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// What kind of failure a database error is, for the `db_errors` metric:
/// `statement_timeout`, `read_only` (a demoted primary or a standby),
/// `unavailable` (no connection, or it broke; SQLSTATE classes 08 and 57),
/// or `other`.
pub fn error_kind(e: &tokio_postgres::Error) -> &'static str {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::QUERY_CANCELED => "statement_timeout",
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => "read_only",
        Some(c) if matches!(c.code().get(..2), Some("08" | "57")) => "unavailable",
        Some(_) => "other",
        None if lost_connection(e) => "unavailable",
        None => "other",
    }
}

/// An error without SQLSTATE that means the connection is gone or could
/// not be made (closed, I/O, connect, TLS or connect timeout) — not one of
/// the driver's own (a row count or a type conversion: a bug).
fn lost_connection(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) {
        return true;
    }
    // tokio-postgres does not expose its error kinds; these are their texts.
    let text = e.to_string();
    [
        "error connecting",
        "timeout waiting",
        "error performing TLS",
    ]
    .iter()
    .any(|kind| text.starts_with(kind))
}

/// [`error_kind`] of a pool failure; waiting too long for a connection is
/// `pool_timeout`.
pub fn pool_error_kind(e: &deadpool_postgres::PoolError) -> &'static str {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => error_kind(pg),
        deadpool_postgres::PoolError::Timeout(_) => "pool_timeout",
        _ => "unavailable",
    }
}

/// Whether a failure means the database went away (or cannot take writes
/// here) rather than that the request was wrong: the connection closed or
/// could not be made, the server is shutting down or starting (SQLSTATE
/// classes 08 and 57, but not a statement timeout), it has no connection
/// slot left (53300), or it is read-only (25006: a standby, or a primary
/// that a failover demoted). Requests answer 503 `database_unavailable`.
pub fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::QUERY_CANCELED => false,
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
            // The pool must not hand out connections to that server again.
            failover_seen();
            true
        }
        Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS => true,
        Some(c) => matches!(c.code().get(..2), Some("08" | "57")),
        None => lost_connection(e),
    }
}

/// When this process last met a read-only database where it expected the
/// primary, in nanoseconds after [`EPOCH`] (0: never). Pooled connections
/// opened before then are not reused: after a failover they lead to the
/// demoted server, which may still accept them. An atomic, because every
/// pool checkout reads it.
static FAILOVER_SEEN: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn since_epoch(at: Instant) -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(epoch).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Records that the database turned read-only (see [`FAILOVER_SEEN`]).
pub fn failover_seen() {
    FAILOVER_SEEN.store(since_epoch(Instant::now()), Ordering::Relaxed);
}

fn opened_before_failover(created: Instant) -> bool {
    let seen = FAILOVER_SEEN.load(Ordering::Relaxed);
    seen != 0 && since_epoch(created) <= seen
}

/// A pool error as one line, with the server's message when there is one.
pub fn describe_pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => describe_pg_error(pg),
        other => other.to_string(),
    }
}

/// TLS to the database: `database.ca_file` when set, else the system store.
/// Whether TLS is used follows the URL's `sslmode` (disable, prefer, require);
/// when used, the server certificate is always verified.
fn tls_connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, DbError> {
    // A CA file replaces the system's CAs: the database's own CA is the
    // only one that may vouch for it.
    let config =
        crate::tls::client_config(ca_file, ca_file.is_none()).map_err(|e| DbError::CaFile {
            path: e.path,
            reason: e.reason,
        })?;
    Ok(MakeRustlsConnect::new(config))
}
