//! Start-up steps shared by `serve`, `migrate` and `check`: becoming the
//! service user, opening the database (managed or external), and the typed
//! error that decides the exit code.

use std::path::Path;

use crate::backups::pitr::Pitr;
use crate::config::{DatabaseTarget, Settings};
use crate::db::managed::{ClusterLock, ManagedError, ManagedPostgres, Supervisor};
use crate::db::migrate::MigrateError;
use crate::db::{Connections, DbError};
use crate::exit::Exit;
use crate::privileges::{self, PrivilegeError, ServiceAccount};
use crate::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("managed database: {0}")]
    Managed(#[from] ManagedError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error(transparent)]
    WebhookCa(#[from] crate::outbound::CaFileError),
    #[error(transparent)]
    SmtpCa(#[from] crate::mail::smtp::CaFileError),
    #[error("`telemetry.ca_file` {0}")]
    TelemetryCa(crate::tls::CaFileError),
    #[error(transparent)]
    Delivery(#[from] crate::listen::DeliveryError),
    #[error("point-in-time recovery: {0}")]
    Pitr(#[from] crate::db::pgbackrest::PgbackrestError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::VaultError),
    #[error("{0}")]
    Other(String),
}

impl From<crate::db::scratch::ScratchError> for StartError {
    fn from(e: crate::db::scratch::ScratchError) -> StartError {
        use crate::db::scratch::ScratchError;
        match e {
            ScratchError::Db(e) => StartError::Db(e),
            ScratchError::Managed(e) => StartError::Managed(e),
            other => StartError::Other(other.to_string()),
        }
    }
}

impl From<crate::db::rehearse::RehearseError> for StartError {
    fn from(e: crate::db::rehearse::RehearseError) -> StartError {
        use crate::db::rehearse::RehearseError;
        match e {
            RehearseError::Db(e) => StartError::Db(e),
            RehearseError::Migrate(e) => StartError::Migrate(e),
            RehearseError::Scratch(e) => StartError::from(e),
        }
    }
}

impl StartError {
    pub fn exit(&self) -> Exit {
        match self {
            StartError::Privileges(_)
            | StartError::Tls(_)
            | StartError::WebhookCa(_)
            | StartError::SmtpCa(_)
            | StartError::TelemetryCa(_) => Exit::Config,
            StartError::Bind { .. } | StartError::Other(_) => Exit::Failure,
            StartError::Managed(e) if e.is_missing_component() => Exit::MissingComponent,
            StartError::Pitr(e) if e.is_missing_component() => Exit::MissingComponent,
            StartError::Pitr(_) => Exit::Failure,
            StartError::Managed(ManagedError::SocketPathTooLong { .. }) => Exit::Config,
            StartError::Managed(ManagedError::Start(_) | ManagedError::Bootstrap(_)) => {
                Exit::DatabaseUnreachable
            }
            StartError::Managed(_) => Exit::Failure,
            StartError::Db(DbError::Unreachable(_)) => Exit::DatabaseUnreachable,
            StartError::Db(DbError::BadUrl { .. } | DbError::CaFile { .. }) => Exit::Config,
            StartError::Db(DbError::Pool(_)) => Exit::Failure,
            StartError::Db(DbError::ServerTooOld { .. }) => Exit::MissingComponent,
            StartError::Migrate(MigrateError::Incompatible(_)) => Exit::SchemaIncompatible,
            StartError::Migrate(_) => Exit::Failure,
            StartError::Delivery(crate::listen::DeliveryError::NotDelivered) => Exit::Config,
            StartError::Secrets(e) if e.is_configuration() => Exit::Config,
            StartError::Secrets(_) => Exit::DatabaseUnreachable,
            StartError::Delivery(crate::listen::DeliveryError::Db(_)) => Exit::DatabaseUnreachable,
        }
    }
}

/// Prepares the state directory and, when running as root, drops to the
/// service account for good. Returns the account when privileges were dropped.
pub fn become_service_user(settings: &Settings) -> Result<Option<ServiceAccount>, StartError> {
    let state_dir = &settings.config.state_dir;
    privileges::set_umask();
    if !privileges::is_root() {
        privileges::prepare_dir(state_dir, None)?;
        return Ok(None);
    }
    let account = privileges::lookup(
        &settings.config.service.user,
        &settings.config.service.group,
    )?;
    // State written by an earlier run as root (or restored from a backup as
    // root) must belong to the service user; PostgreSQL refuses a data
    // directory it does not own. Only walked when the top is not yet theirs.
    if privileges::owner(state_dir) != Some(account.uid) {
        privileges::prepare_dir(state_dir, Some(&account))?;
        privileges::chown_tree(state_dir, &account)?;
    }
    privileges::drop_to(&account)?;
    Ok(Some(account))
}

/// The database, opened.
pub struct Database {
    pub connections: Connections,
    /// Present when this process started and supervises the managed cluster.
    pub supervisor: Option<Supervisor>,
    /// pgBackRest for the managed cluster (`backup.pitr`).
    pub pitr: Option<Pitr>,
    _lock: Option<ClusterLock>,
}

impl Database {
    pub async fn close(self) {
        if let Some(s) = self.supervisor {
            s.stop().await;
        }
    }
}

/// Who opens the database, which decides what may happen to a managed cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `serve`: owns the cluster. Creates it on first use, starts and
    /// supervises it, and takes over one left running by a dead earlier run.
    Serve,
    /// `migrate`: uses the running cluster, or starts one for its own run.
    Migrate,
    /// `check`: uses the running cluster; never creates or starts one.
    Check,
    /// `restore`: like `migrate`, but never while `serve` runs (it
    /// replaces the database under it).
    Restore,
}

/// Opens the configured database for `purpose`.
pub async fn open_database(settings: &Settings, purpose: Purpose) -> Result<Database, StartError> {
    let timeout = std::time::Duration::from_secs(settings.config.database.connect_timeout_secs);
    let DatabaseTarget::Managed { bin_dir } = &settings.database else {
        return Ok(Database {
            connections: Connections::external(settings)?,
            supervisor: None,
            pitr: None,
            _lock: None,
        });
    };
    // Room for the pool, a migration connection and an admin's psql.
    let max_connections = settings.config.database.pool_size + 10;
    let mut pg = ManagedPostgres::prepare(
        &settings.config.state_dir,
        bin_dir.as_deref(),
        max_connections,
    )
    .await?;
    // Every start of the cluster archives its WAL when PITR is on: a
    // start without it would leave a gap no restore can cross.
    // `check` and `diagnose` only read: nothing of pgBackRest's is
    // written for them, and a missing pgBackRest is diagnose's to report.
    let pitr = match &settings.backup.pitr {
        Some(policy) if purpose == Purpose::Check => Pitr::reading(policy).ok(),
        Some(policy) => Some(Pitr::enable(policy, &mut pg)?),
        None => None,
    };
    let connections = pg.connections(timeout)?;
    let lock = ClusterLock::try_acquire(&pg.layout)?;
    let running = running(&pg.layout.socket, &connections).await;
    let not_running = |why: &str| {
        StartError::Db(DbError::Unreachable(format!(
            "the managed PostgreSQL in {} is not running{why}; it runs while `mogothrow77 serve` runs",
            pg.layout.data_dir.display()
        )))
    };
    let (lock, use_running) = match (purpose, lock) {
        (Purpose::Serve, None) => {
            return Err(StartError::Other(format!(
                "another mogothrow77 process (`serve`, or `migrate` running the cluster) is using state_dir {}",
                settings.config.state_dir.display()
            )))
        }
        (Purpose::Serve, Some(lock)) => {
            if running {
                pg.stop_orphan().await?;
            }
            (lock, false)
        }
        // `serve` holds the lock: use its cluster.
        (Purpose::Restore, None) => {
            return Err(StartError::Other(format!(
                "the service is running on state_dir {}: stop it first (systemctl stop mogothrow77)",
                settings.config.state_dir.display()
            )))
        }
        (Purpose::Migrate | Purpose::Check, None) if running => {
            return Ok(Database {
                connections,
                supervisor: None,
                pitr,
                _lock: None,
            })
        }
        (Purpose::Migrate | Purpose::Check, None) => {
            return Err(not_running(" (another mogothrow77 process is starting it)"))
        }
        (Purpose::Migrate | Purpose::Check | Purpose::Restore, Some(lock)) if running => {
            (lock, true)
        }
        (Purpose::Check, Some(_)) => return Err(not_running("")),
        (Purpose::Migrate | Purpose::Restore, Some(lock)) => (lock, false),
    };
    if use_running {
        return Ok(Database {
            connections,
            supervisor: None,
            pitr,
            _lock: Some(lock),
        });
    }
    pg.initialise().await?;
    let supervisor = pg.start().await?;
    Ok(Database {
        connections,
        supervisor: Some(supervisor),
        pitr,
        _lock: Some(lock),
    })
}

/// Whether a managed cluster answers on its socket.
async fn running(socket: &Path, connections: &Connections) -> bool {
    socket.exists() && connections.connect_owner().await.is_ok()
}

/// The directories whose file systems matter to the server, by the name
/// `/metrics` and `diagnose` report them under: the state directory and,
/// managed, the cluster's data directory (often a mount of its own).
pub fn watched_dirs(settings: &Settings) -> Vec<(&'static str, std::path::PathBuf)> {
    let state_dir = &settings.config.state_dir;
    let mut dirs = vec![("state", state_dir.clone())];
    if matches!(settings.database, DatabaseTarget::Managed { .. }) {
        dirs.push(("postgres", crate::db::managed::data_dir(state_dir)));
    }
    dirs
}

/// `cli:<os-user>@<host>`: the invoking user (under sudo, the one who ran
/// sudo) and this host's name.
pub fn cli_actor() -> String {
    let user = crate::privileges::invoking_user();
    let host = crate::privileges::host_name();
    crate::identity::printable(&format!("cli:{user}@{host}"), 128)
}
