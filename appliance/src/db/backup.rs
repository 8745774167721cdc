//! `mogothrow77 backup`: the database as a `pg_dump` custom-format archive,
//! read back with `pg_restore --list` before it is called good. The upgrade
//! tool takes one before it migrates.

use super::Sql;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tokio_postgres::config::{Host, SslMode};

use super::managed::{self, PgBinaries};
use super::Connections;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no pg_dump found {searched}; install the PostgreSQL client (apt-get install postgresql-client)")]
    NoPgDump { searched: String },
    #[error("{path} already exists; choose a new file (backups are never overwritten)")]
    Exists { path: String },
    #[error("cannot create {path}: {reason}")]
    Create { path: String, reason: String },
    #[error("cannot run {program}: {reason}")]
    Spawn { program: String, reason: String },
    #[error("pg_dump failed ({status}): {stderr}")]
    Dump { status: String, stderr: String },
    #[error("{path} is not a readable pg_dump archive ({stderr}); nothing was changed")]
    NotAnArchive { path: String, stderr: String },
    #[error("pg_restore failed ({status}): {stderr}; the database is empty: fix the cause and restore again")]
    Restore { status: String, stderr: String },
    #[error("the archive {path} does not read back ({stderr}); it was removed")]
    Unreadable { path: String, stderr: String },
}

/// What a finished backup holds.
#[derive(Debug)]
pub struct Summary {
    pub path: PathBuf,
    pub bytes: u64,
    /// Entries `pg_restore --list` reads from the archive.
    pub entries: usize,
}

/// The client binaries to dump with: the managed cluster's own
/// (`data_dir` given), or for an external server the newest client
/// programs installed (pg_dump reads older servers), a server installation
/// not needed.
pub fn client_binaries(
    configured: Option<&Path>,
    data_dir: Option<&Path>,
) -> Result<PgBinaries, BackupError> {
    match data_dir {
        Some(dir) => {
            let (found, searched) = managed::discover(configured);
            managed::choose(&found, &searched, dir)
                .ok()
                .filter(|b| b.bin_dir.join("pg_dump").is_file())
                .ok_or(BackupError::NoPgDump { searched })
        }
        None => {
            let (found, searched) = managed::discover_clients(configured);
            found
                .into_iter()
                .max_by_key(|b| b.major.parse::<u32>().unwrap_or(0))
                .ok_or(BackupError::NoPgDump { searched })
        }
    }
}

/// `pg_dump`/`pg_restore` to use: the managed cluster's own, or for an
/// external database the newest client programs installed (only those in
/// `database.postgres_bin_dir` when it is set).
pub fn binaries_for(settings: &crate::config::Settings) -> Result<PgBinaries, BackupError> {
    match &settings.database {
        crate::config::DatabaseTarget::Managed { bin_dir } => client_binaries(
            bin_dir.as_deref(),
            Some(&crate::db::managed::data_dir(&settings.config.state_dir)),
        ),
        crate::config::DatabaseTarget::External { .. } => {
            client_binaries(settings.config.database.postgres_bin_dir.as_deref(), None)
        }
    }
}

/// libpq's environment for one role's connection settings (dumps use the
/// application role: the role that can read every table — the records
/// tables are its own, the rest it is granted). The password travels in
/// the environment of the child only, never on a command line.
pub fn libpq_env_for(
    c: &tokio_postgres::Config,
    ca_file: Option<&Path>,
) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if let Some(host) = c.get_hosts().first() {
        env.push((
            "PGHOST",
            match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            },
        ));
    }
    if let Some(port) = c.get_ports().first() {
        env.push(("PGPORT", port.to_string()));
    }
    if let Some(user) = c.get_user() {
        env.push(("PGUSER", user.to_string()));
    }
    if let Some(db) = c.get_dbname() {
        env.push(("PGDATABASE", db.to_string()));
    }
    if let Some(password) = c.get_password() {
        env.push(("PGPASSWORD", String::from_utf8_lossy(password).into_owned()));
    }
    let tcp = matches!(c.get_hosts().first(), Some(Host::Tcp(_)));
    if tcp {
        let mode = match (c.get_ssl_mode(), ca_file) {
            (SslMode::Disable, _) => "disable",
            (_, Some(ca)) => {
                env.push(("PGSSLROOTCERT", ca.display().to_string()));
                "verify-full"
            }
            (SslMode::Prefer, None) => "prefer",
            _ => "require",
        };
        env.push(("PGSSLMODE", mode.to_string()));
    }
    env
}

/// Dumps the database into `out` (created 0600; never overwritten) and
/// reads it back.
pub fn dump(
    connections: &Connections,
    ca_file: Option<&Path>,
    binaries: &PgBinaries,
    out: &Path,
) -> Result<Summary, BackupError> {
    dump_as(&connections.app, ca_file, binaries, out, None)
}

/// [`dump`] as the role of `role`, optionally in a snapshot another
/// transaction exported (`pg_export_snapshot()`; it must stay open until
/// pg_dump has started).
pub fn dump_as(
    role: &tokio_postgres::Config,
    ca_file: Option<&Path>,
    binaries: &PgBinaries,
    out: &Path,
    snapshot: Option<&str>,
) -> Result<Summary, BackupError> {
    // Claimed first, private and exclusive: pg_dump then writes into it.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => BackupError::Exists {
                path: out.display().to_string(),
            },
            _ => BackupError::Create {
                path: out.display().to_string(),
                reason: e.to_string(),
            },
        })?;
    let spawn_err = |program: &Path| {
        let program = program.display().to_string();
        move |e: std::io::Error| BackupError::Spawn {
            program: program.clone(),
            reason: e.to_string(),
        }
    };
    let pg_dump = binaries.bin_dir.join("pg_dump");
    let output = Command::new(&pg_dump)
        .args(["--format=custom", "--no-password", "--file"])
        .arg(out)
        .args(snapshot.map(|id| format!("--snapshot={id}")))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(libpq_env_for(role, ca_file))
        .output()
        .map_err(spawn_err(&pg_dump))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(out);
        return Err(BackupError::Dump {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let entries = entries(binaries, out).map_err(|e| {
        let _ = std::fs::remove_file(out);
        match e {
            BackupError::NotAnArchive { path, stderr } => BackupError::Unreadable { path, stderr },
            other => other,
        }
    })?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(Summary {
        path: out.to_path_buf(),
        bytes,
        entries,
    })
}

/// Reads an archive's table of contents (`pg_restore --list`): the check
/// that comes before anything is dropped for a restore.
pub fn entries(binaries: &PgBinaries, archive: &Path) -> Result<usize, BackupError> {
    Ok(list(binaries, archive)?
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .count())
}

/// An archive's table of contents as `pg_restore --list` prints it.
pub fn list(binaries: &PgBinaries, archive: &Path) -> Result<String, BackupError> {
    let pg_restore = binaries.bin_dir.join("pg_restore");
    let listed = Command::new(&pg_restore)
        .arg("--list")
        .arg(archive)
        .output()
        .map_err(|e| BackupError::Spawn {
            program: pg_restore.display().to_string(),
            reason: e.to_string(),
        })?;
    if !listed.status.success() {
        return Err(BackupError::NotAnArchive {
            path: archive.display().to_string(),
            stderr: String::from_utf8_lossy(&listed.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&listed.stdout).into_owned())
}

/// Who owns the restored objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// As in the archive, with its grants (the restoring role must be able
    /// to assign them: the managed cluster's superuser).
    AsArchived,
    /// The restoring role, without the archive's grants (a role that may
    /// create databases but not act for others).
    Restorer,
}

/// Restores an archive into an empty database, in one transaction,
/// stopping at the first error.
pub fn restore(
    binaries: &PgBinaries,
    env: Vec<(&'static str, String)>,
    archive: &Path,
    owners: Owners,
) -> Result<(), BackupError> {
    let pg_restore = binaries.bin_dir.join("pg_restore");
    let out = Command::new(&pg_restore)
        .args(["--exit-on-error", "--single-transaction", "--no-password"])
        .args(match owners {
            Owners::AsArchived => &[][..],
            Owners::Restorer => &["--no-owner", "--no-privileges"][..],
        })
        .arg("--dbname")
        .arg(
            env.iter()
                .find(|(k, _)| *k == "PGDATABASE")
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        )
        .arg(archive)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env)
        .output()
        .map_err(|e| BackupError::Spawn {
            program: pg_restore.display().to_string(),
            reason: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BackupError::Restore {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// A backup as `backups` keeps it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub finished_at: std::time::SystemTime,
    pub archive: String,
    pub bytes: i64,
    pub test_restored: bool,
    pub host: String,
}

/// Whether the database could keep the record.
#[derive(Debug, PartialEq, Eq)]
pub enum Recording {
    Recorded,
    /// The schema predates `backups` (the upgrade tool's backup, taken by
    /// the new binary before it migrates).
    NoTable,
}

/// Records a backup that was written and read back, for `diagnose`.
pub async fn record(
    client: &tokio_postgres::Client,
    summary: &Summary,
    started_at: std::time::SystemTime,
    test_restored: bool,
    host: &str,
    record_counts: &serde_json::Value,
) -> Result<Recording, tokio_postgres::Error> {
    let archive = summary.path.display().to_string();
    let bytes = i64::try_from(summary.bytes).unwrap_or(i64::MAX);
    let inserted = Sql::execute(
        &client,
        "INSERT INTO backups (started_at, archive, bytes, test_restored, host, record_counts) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &started_at,
            &archive,
            &bytes,
            &test_restored,
            &host,
            record_counts,
        ],
    )
    .await;
    use tokio_postgres::error::SqlState;
    match inserted {
        Ok(_) => Ok(Recording::Recorded),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(Recording::NoTable),
        // A schema from before the counts (V13): the upgrade tool's backup,
        // taken by the new binary before it migrates.
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_COLUMN) => {
            match Sql::execute(
                &client,
                "INSERT INTO backups (started_at, archive, bytes, test_restored, host) \
                     VALUES ($1, $2, $3, $4, $5)",
                &[&started_at, &archive, &bytes, &test_restored, &host],
            )
            .await
            {
                Ok(_) => Ok(Recording::Recorded),
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(Recording::NoTable),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// The newest recorded backup; `Ok(None)` when there is none (or the schema
/// predates the record).
pub async fn last(
    client: &tokio_postgres::Client,
) -> Result<Option<Recorded>, tokio_postgres::Error> {
    let row = Sql::query_opt(
        &client,
        "SELECT finished_at, archive, bytes, test_restored, host FROM backups \
             ORDER BY finished_at DESC LIMIT 1",
        &[],
    )
    .await;
    match row {
        Ok(row) => Ok(row.map(|r| Recorded {
            finished_at: r.get(0),
            archive: r.get(1),
            bytes: r.get(2),
            test_restored: r.get(3),
            host: r.get(4),
        })),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(None),
        Err(e) => Err(e),
    }
}
