//! Scheduled backups (`[backup]`, ADR 0021): the [`scheduler`] of each
//! replica queues one job per [`Schedule`] slot (the first replica to get
//! there wins: `backup_slots`), a worker runs it through [`take`], which
//! holds an advisory lock for the whole run — a run whose job lease ran out
//! while it dumps keeps going, and the job's next attempt waits for it and
//! then finds the slot done rather than dumping again — writes the archive
//! under a temporary name, counts every collection's records in the dump's
//! own snapshot, makes the [`copy`]s, records the backup and audits it, and
//! applies retention ([`prune`]).

pub mod archive;
pub mod copy;
pub mod drill;
pub mod pitr;
pub mod prune;
pub mod scheduler;

use crate::db::Sql;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

pub use crate::config::Schedule;

use crate::audit;
use crate::config::BackupPolicy;
use crate::db::backup::{self as dump, BackupError};
use crate::db::managed::PgBinaries;

/// One scheduled backup runs at a time across all replicas.
const BACKUP_LOCK: i64 = 0x6d6f_676f_6262;

/// Archive names: `mogothrow77-<slot, UTC>.dump`.
const PREFIX: &str = "mogothrow77-";
const SUFFIX: &str = ".dump";
const PARTIAL: &str = ".partial";

/// What a replica needs to take scheduled backups.
pub struct Backups {
    pub policy: BackupPolicy,
    /// The application role's connection settings (pg_dump connects as it).
    pub role: tokio_postgres::Config,
    pub ca_file: Option<PathBuf>,
    pub binaries: PgBinaries,
    pub host: String,
    /// Point-in-time recovery: a base backup at every slot too.
    pub pitr: Option<pitr::Pitr>,
}

impl Backups {
    /// The settings' scheduled backups; `Ok(None)` without a schedule.
    pub fn for_settings(
        settings: &crate::config::Settings,
        connections: &crate::db::Connections,
        pitr: Option<&pitr::Pitr>,
    ) -> Result<Option<Backups>, BackupError> {
        if settings.backup.schedule.is_none() {
            return Ok(None);
        }
        Ok(Some(Backups {
            policy: settings.backup.clone(),
            role: connections.app.clone(),
            ca_file: settings.config.database.ca_file.clone(),
            binaries: dump::binaries_for(settings)?,
            host: crate::privileges::host_name(),
            pitr: pitr.cloned(),
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error(
        "another backup is being taken right now (a run whose job lease ran out is still \
         dumping); this attempt waits its turn"
    )]
    Busy,
    #[error("{0}")]
    Db(String),
    #[error("cannot prepare {dir}: {reason}; check that the service user may write there")]
    Dir { dir: String, reason: String },
    #[error(transparent)]
    Dump(#[from] BackupError),
    #[error("cannot encrypt the archive: {0}")]
    Encrypt(String),
    #[error("cannot finish {path}: {reason}")]
    Finish { path: String, reason: String },
    #[error("the backup task stopped: {0}")]
    Task(String),
}

impl From<tokio_postgres::Error> for TakeError {
    fn from(e: tokio_postgres::Error) -> TakeError {
        TakeError::Db(crate::db::describe_pg_error(&e))
    }
}

impl From<deadpool_postgres::PoolError> for TakeError {
    fn from(e: deadpool_postgres::PoolError) -> TakeError {
        TakeError::Db(crate::db::describe_pool_error(&e))
    }
}

/// How a run ended when it did not fail.
#[derive(Debug)]
pub enum Taken {
    Written,
    /// The slot's backup exists already (an earlier attempt made it).
    AlreadyTaken,
}

/// `2026-12-07T02:30:00Z` as `20261207T023000Z`.
fn stamp(slot: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(slot) {
        Ok(t) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => slot.to_string(),
    }
}

fn is_partial(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(PARTIAL)
}

/// Takes the backup of `slot` (Unix seconds) unless it was taken already.
/// Runs to its end even when the job that asked for it is lost: callers
/// spawn it.
pub async fn take(
    backups: Arc<Backups>,
    pool: deadpool_postgres::Pool,
    slot: i64,
) -> Result<Taken, TakeError> {
    let mut lock_client = pool.get().await?;
    let lock_tx = lock_client.transaction().await?;
    let locked: bool = Sql::query_one(
        &lock_tx,
        "SELECT pg_try_advisory_xact_lock($1)",
        &[&BACKUP_LOCK],
    )
    .await?
    .get(0);
    if !locked {
        return Err(TakeError::Busy);
    }
    let slot_time = UNIX_EPOCH + Duration::from_secs(u64::try_from(slot).unwrap_or(0));
    if Sql::query_opt(
        &lock_tx,
        "SELECT 1 FROM backups WHERE scheduled_for = $1",
        &[&slot_time],
    )
    .await?
    .is_some()
    {
        return Ok(Taken::AlreadyTaken);
    }
    let started_at = SystemTime::now();
    let ctx = audit::Context {
        actor: "system".to_string(),
        ..Default::default()
    };
    match write(&backups, &pool, slot).await {
        Ok(written) => {
            let copies = serde_json::to_value(&written.copies).unwrap_or(Value::Null);
            let archive = written.archive.display().to_string();
            let bytes = i64::try_from(written.bytes).unwrap_or(i64::MAX);
            Sql::execute(
                &lock_tx,
                "INSERT INTO backups (started_at, archive, bytes, test_restored, host, \
                       scheduled_for, record_counts, sha256, copies, seconds) \
                     VALUES ($1, $2, $3, false, $4, $5, $6, $7, $8, $9)",
                &[
                    &started_at,
                    &archive,
                    &bytes,
                    &backups.host,
                    &slot_time,
                    &written.counts,
                    &written.sha256,
                    &copies,
                    &written.seconds,
                ],
            )
            .await?;
            let event = audit::Event::new("backup.create", &archive, audit::Outcome::Success)
                .details(json!({
                    "scheduled_for": stamp(slot),
                    "host": backups.host,
                    "encrypted": !backups.policy.recipients.is_empty(),
                    "bytes": written.bytes,
                    "sha256": written.sha256,
                    "records": written.counts,
                    "seconds": written.seconds,
                }));
            audit_append(&lock_tx, &ctx, &event).await?;
            let mut copies_failed = 0;
            for c in written.copies.iter().filter(|c| !c.ok) {
                copies_failed += 1;
                crate::metrics::Metrics::shared().backup_copy_failures.inc();
                tracing::warn!(archive = %archive, kind = c.kind, to = %c.to, detail = %c.detail, "backup copy failed");
                let event = audit::Event::new("backup.copy", &archive, audit::Outcome::Failure)
                    .details(json!({ "kind": c.kind, "to": c.to, "error": c.detail }));
                audit_append(&lock_tx, &ctx, &event).await?;
            }
            let pruned = prune::prune(&*lock_tx, &backups.policy).await?;
            if !pruned.archives.is_empty() {
                let event = audit::Event::new("backup.prune", &archive, audit::Outcome::Success)
                    .details(json!({ "removed": pruned.archives }));
                audit_append(&lock_tx, &ctx, &event).await?;
            }
            if let Some(pitr) = &backups.pitr {
                base_backup(pitr, &lock_tx, &ctx, slot).await?;
            }
            lock_tx.commit().await?;
            tracing::info!(
                archive = %archive,
                bytes = written.bytes,
                seconds = written.seconds,
                pruned = pruned.archives.len(),
                copies_failed,
                "scheduled backup written"
            );
            Ok(Taken::Written)
        }
        Err(e) => {
            let event = audit::Event::new(
                "backup.create",
                backups.policy.dir.display().to_string(),
                audit::Outcome::Failure,
            )
            .details(json!({
                "scheduled_for": stamp(slot),
                "host": backups.host,
                "error": e.to_string(),
            }));
            if audit_append(&lock_tx, &ctx, &event).await.is_ok() {
                let _ = lock_tx.commit().await;
            }
            Err(e)
        }
    }
}

/// The slot's PITR base backup, audited (`backup.pitr`) in the slot's
/// transaction. A failure does not undo the logical backup: it is audited,
/// counted and logged, and `diagnose` shows the repository's state.
async fn base_backup(
    pitr: &pitr::Pitr,
    tx: &tokio_postgres::Transaction<'_>,
    ctx: &audit::Context,
    slot: i64,
) -> Result<(), TakeError> {
    let event = match pitr.base_backup().await {
        Ok(based) => {
            tracing::info!(label = %based.label, kind = based.kind.name(), seconds = based.seconds, "PITR base backup taken");
            audit::Event::new("backup.pitr", &based.label, audit::Outcome::Success).details(json!({
                "scheduled_for": stamp(slot),
                "type": based.kind.name(),
                "repository": pitr.repository(),
                "repository_bytes": based.repository_bytes,
                "seconds": based.seconds,
            }))
        }
        Err(e) => {
            crate::metrics::Metrics::shared().pitr_backup_failures.inc();
            tracing::error!(error = %e, "PITR base backup failed");
            audit::Event::new("backup.pitr", pitr.repository(), audit::Outcome::Failure)
                .details(json!({ "scheduled_for": stamp(slot), "error": e.to_string() }))
        }
    };
    audit_append(tx, ctx, &event).await.map(drop)
}

async fn audit_append(
    tx: &tokio_postgres::Transaction<'_>,
    ctx: &audit::Context,
    event: &audit::Event,
) -> Result<i64, TakeError> {
    audit::append(tx, ctx, event).await.map_err(|e| match e {
        audit::AuditError::Db(e) => TakeError::from(e),
    })
}

/// An archive written, read back, digested and copied.
struct Written {
    archive: PathBuf,
    bytes: u64,
    sha256: String,
    counts: Value,
    seconds: f64,
    copies: Vec<copy::CopyOutcome>,
}

async fn write(
    backups: &Arc<Backups>,
    pool: &deadpool_postgres::Pool,
    slot: i64,
) -> Result<Written, TakeError> {
    let dir = backups.policy.dir.clone();
    let encrypted = !backups.policy.recipients.is_empty();
    prepare_dir(&dir)?;
    let dumped = format!("{PREFIX}{}{SUFFIX}", stamp(slot));
    let name = if encrypted {
        format!("{dumped}.age")
    } else {
        dumped.clone()
    };
    let archive = dir.join(&name);
    let partial = dir.join(format!("{name}{PARTIAL}"));
    // Encrypted: the plaintext stays beside the database until it is
    // sealed; it never reaches the backup storage.
    let plain = if encrypted {
        prepare_dir(&backups.policy.work_dir)?;
        backups.policy.work_dir.join(format!("{dumped}{PARTIAL}"))
    } else {
        partial.clone()
    };
    let started = Instant::now();

    let mut client = pool.get().await?;
    let (summary, counts) = dump_counted(
        &mut client,
        &backups.role,
        backups.ca_file.as_deref(),
        &backups.binaries,
        &plain,
    )
    .await?;
    drop(client);
    if encrypted {
        let b = backups.clone();
        let (from, to) = (plain.clone(), partial.clone());
        let sealed = tokio::task::spawn_blocking(move || {
            crate::age::encrypt_file(&from, &to, &b.policy.recipients)
        })
        .await;
        let _ = std::fs::remove_file(&plain);
        sealed
            .map_err(|e| TakeError::Task(e.to_string()))?
            .map_err(|e| TakeError::Encrypt(e.to_string()))?;
    }
    let finish_err = |reason: String| TakeError::Finish {
        path: archive.display().to_string(),
        reason,
    };
    let digest = {
        let partial = partial.clone();
        tokio::task::spawn_blocking(move || copy::sha256_of(&partial))
            .await
            .map_err(|e| TakeError::Task(e.to_string()))?
    };
    let sha256 = digest.map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        finish_err(e.to_string())
    })?;
    std::fs::rename(&partial, &archive).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        finish_err(e.to_string())
    })?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    let copies = {
        let b = backups.clone();
        let (archive, sha256) = (archive.clone(), sha256.clone());
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            if let Some(to) = &b.policy.copy_to {
                out.push(copy::copy_to(&archive, &sha256, to));
            }
            if let Some(hook) = &b.policy.hook {
                out.push(copy::run_hook(
                    hook,
                    &archive,
                    &sha256,
                    b.policy.hook_timeout,
                ));
            }
            out
        })
        .await
        .map_err(|e| TakeError::Task(e.to_string()))?
    };
    // What is stored: the sealed file when encrypted.
    let bytes = std::fs::metadata(&archive)
        .map(|m| m.len())
        .unwrap_or(summary.bytes);
    Ok(Written {
        archive,
        bytes,
        sha256,
        counts,
        seconds: started.elapsed().as_secs_f64(),
        copies,
    })
}

/// Dumps the database into `out` (as [`dump::dump_as`]) in one snapshot
/// with every collection's record count in that snapshot: a repeatable-read
/// transaction exports it and stays open until pg_dump is done.
pub async fn dump_counted(
    client: &mut tokio_postgres::Client,
    role: &tokio_postgres::Config,
    ca_file: Option<&Path>,
    binaries: &PgBinaries,
    out: &Path,
) -> Result<(dump::Summary, Value), TakeError> {
    let snapshot_tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let snapshot: String = Sql::query_one(&snapshot_tx, "SELECT pg_export_snapshot()", &[])
        .await?
        .get(0);
    let counts = record_counts(&snapshot_tx).await?;
    let summary = {
        let (role, ca_file, binaries, out) = (
            role.clone(),
            ca_file.map(Path::to_path_buf),
            binaries.clone(),
            out.to_path_buf(),
        );
        tokio::task::spawn_blocking(move || {
            dump::dump_as(&role, ca_file.as_deref(), &binaries, &out, Some(&snapshot))
        })
        .await
        .map_err(|e| TakeError::Task(e.to_string()))??
    };
    snapshot_tx.commit().await?;
    Ok((summary, counts))
}

/// Creates `dir` (0700) when missing, and removes what a run that died
/// mid-dump left there (the lock says no run is writing now).
fn prepare_dir(dir: &Path) -> Result<(), TakeError> {
    let err = |e: std::io::Error| TakeError::Dir {
        dir: dir.display().to_string(),
        reason: e.to_string(),
    };
    archive::create_private_dir(dir).map_err(err)?;
    for entry in std::fs::read_dir(dir).map_err(err)?.flatten() {
        if is_partial(&entry.file_name().to_string_lossy()) {
            tracing::info!(file = %entry.path().display(), "removing what an interrupted backup left");
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Every collection's record count, by name.
pub async fn record_counts<C: crate::db::Sql>(tx: &C) -> Result<Value, tokio_postgres::Error> {
    let mut counts = Map::new();
    for row in tx
        .query("SELECT id, name FROM collections ORDER BY name", &[])
        .await?
    {
        let (id, name): (i64, String) = (row.get(0), row.get(1));
        // The table name is generated from the id, never from input.
        let n: i64 = tx
            .query_one(
                &format!("SELECT count(*) FROM {}", crate::records::table(id)),
                &[],
            )
            .await?
            .get(0);
        counts.insert(name, json!(n));
    }
    Ok(Value::Object(counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_sort_by_slot_and_partials_are_recognised() {
        assert_eq!(stamp(1_796_610_600), "20261207T023000Z");
        assert!(is_partial("mogothrow77-20261207T023000Z.dump.partial"));
        assert!(!is_partial("mogothrow77-20261207T023000Z.dump"));
        assert!(!is_partial("pre-upgrade.dump.partial"));
    }
}
