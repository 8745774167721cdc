//! `mogothrow77 migrate --rehearse`: the pending migrations run on a copy of
//! the live database, each timed, with the locks it held on tables that
//! already existed; the copy is dropped afterwards. The live database is only
//! read (by `pg_dump`, as for a backup), so an admin learns before the
//! maintenance window how long the migrations take and what they block.

use super::Sql;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

pub use contracts::rehearsal::{Blocks, MigrationRun, Report, TableLock};

use super::backup::{self, BackupError};
use super::managed::PgBinaries;
use super::migrate::{self, KnownMigration, MigrateError};
use super::scratch::{db_err, Place, Scratch, ScratchError, Use};
use super::{describe_pg_error, Connections, DbError};

#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error(transparent)]
    Scratch(#[from] ScratchError),
}

impl From<BackupError> for RehearseError {
    fn from(e: BackupError) -> RehearseError {
        RehearseError::Scratch(ScratchError::Copy(e))
    }
}

/// PostgreSQL's lock mode name → (strength, SQL name, what it blocks).
fn lock_mode(mode: &str) -> (u8, &'static str, Blocks) {
    match mode {
        "AccessShareLock" => (1, "ACCESS SHARE", Blocks::Nothing),
        "RowShareLock" => (2, "ROW SHARE", Blocks::Nothing),
        "RowExclusiveLock" => (3, "ROW EXCLUSIVE", Blocks::Nothing),
        "ShareUpdateExclusiveLock" => (4, "SHARE UPDATE EXCLUSIVE", Blocks::SchemaChanges),
        "ShareLock" => (5, "SHARE", Blocks::Writes),
        "ShareRowExclusiveLock" => (6, "SHARE ROW EXCLUSIVE", Blocks::Writes),
        "ExclusiveLock" => (7, "EXCLUSIVE", Blocks::Writes),
        // AccessExclusiveLock, and anything unknown read the safe way.
        _ => (8, "ACCESS EXCLUSIVE", Blocks::ReadsAndWrites),
    }
}

/// The strongest lock per table, from `(table, pg_locks.mode)` rows.
fn strongest(rows: impl IntoIterator<Item = (String, String)>) -> Vec<TableLock> {
    let mut by_table: BTreeMap<String, (u8, &'static str, Blocks)> = BTreeMap::new();
    for (table, mode) in rows {
        let found = lock_mode(&mode);
        let entry = by_table.entry(table).or_insert(found);
        if found.0 > entry.0 {
            *entry = found;
        }
    }
    by_table
        .into_iter()
        .map(|(table, (_, mode, blocks))| TableLock {
            table,
            mode: mode.to_string(),
            blocks,
        })
        .collect()
}

/// Rehearses the pending migrations. `work_dir` holds the dump while the
/// copy is restored.
pub async fn rehearse(
    connections: &Connections,
    place: Place<'_>,
    binaries: &PgBinaries,
    ca_file: Option<&Path>,
    work_dir: &Path,
) -> Result<Report, RehearseError> {
    let live = connections.connect_owner().await?;
    super::check_server_version(&live).await?;
    let status = migrate::status(&live).await?;
    status.check_runnable().map_err(MigrateError::from)?;
    let mut report = Report {
        schema_level: status.applied.keys().max().copied().unwrap_or(0),
        target_level: status.binary_level,
        database_bytes: 0,
        copy_seconds: 0.0,
        migrations: Vec::new(),
        warnings: Vec::new(),
    };
    if status.pending.is_empty() {
        return Ok(report);
    }
    let scratch = Scratch::begin(&live, place, connections, Use::Rehearsal).await?;
    report.database_bytes = scratch.live_bytes().await?;
    scratch.check_space(work_dir, report.database_bytes, true)?;

    let dump_path = work_dir.join(format!("rehearsal-{}.dump", std::process::id()));
    let copied = Instant::now();
    let _ = std::fs::remove_file(&dump_path);
    {
        let (connections, binaries, ca_file, dump_path) = (
            connections.clone(),
            binaries.clone(),
            ca_file.map(Path::to_path_buf),
            dump_path.clone(),
        );
        tokio::task::spawn_blocking(move || {
            backup::dump(&connections, ca_file.as_deref(), &binaries, &dump_path)
        })
        .await
        .map_err(|e| ScratchError::Io(format!("the dump task failed: {e}")))??;
    }
    let outcome = async {
        scratch.restore(binaries, ca_file, &dump_path).await?;
        report.copy_seconds = copied.elapsed().as_secs_f64();
        let mut copy = scratch.connect().await?;
        Sql::batch_execute(
            &copy,
            "SET statement_timeout = 0; SET lock_timeout = 0; ANALYZE",
        )
        .await
        .map_err(db_err("preparing the copy"))?;
        migrate::ensure_kinds_table(&copy).await?;
        for m in &status.pending {
            let run = run_one(&mut copy, m).await;
            let failed = run.error.is_some();
            report.migrations.push(run);
            if failed {
                break;
            }
        }
        Ok::<(), RehearseError>(())
    }
    .await;
    let _ = std::fs::remove_file(&dump_path);
    report.warnings.extend(scratch.finish().await);
    outcome.map(|()| report)
}

/// Tables (ordinary, partitioned, materialized views) that exist now.
const EXISTING_TABLES_SQL: &str =
    "SELECT coalesce(array_agg(oid), '{}') FROM pg_class WHERE relkind IN ('r', 'p', 'm')";

/// The relation locks this session holds on tables of `$1`.
const LOCKS_SQL: &str = "SELECT n.nspname || '.' || c.relname, c.relname, l.mode \
     FROM pg_locks l \
     JOIN pg_class c ON c.oid = l.relation \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND c.oid = ANY($1)";

/// Runs one migration in its own transaction, as `migrate` does, timing its
/// statements and commit and reading the locks it holds before it commits.
async fn run_one(client: &mut Client, m: &KnownMigration) -> MigrationRun {
    let mut run = MigrationRun {
        version: m.version,
        name: m.name.clone(),
        kind: m.kind.as_str().to_string(),
        seconds: 0.0,
        locks: Vec::new(),
        error: None,
    };
    let mut elapsed = Duration::ZERO;
    let outcome = async {
        let tx = client.transaction().await?;
        let existing: Vec<u32> = Sql::query_one(&tx, EXISTING_TABLES_SQL, &[]).await?.get(0);
        let started = Instant::now();
        Sql::batch_execute(&tx, &m.sql_recording_kind()).await?;
        elapsed += started.elapsed();
        let rows = Sql::query(&tx, LOCKS_SQL, &[&existing]).await?;
        let committed = Instant::now();
        tx.commit().await?;
        elapsed += committed.elapsed();
        Ok::<_, tokio_postgres::Error>(rows)
    }
    .await;
    run.seconds = elapsed.as_secs_f64();
    match outcome {
        Ok(rows) => {
            run.locks = strongest(
                rows.into_iter()
                    .filter(|r| !migrate::is_bookkeeping_table(r.get::<_, &str>(1)))
                    .map(|r| (r.get::<_, String>(0), r.get::<_, String>(2))),
            );
        }
        Err(e) => run.error = Some(describe_pg_error(&e)),
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strongest_lock_per_table_is_reported() {
        let locks = strongest([
            ("public.users".to_string(), "AccessShareLock".to_string()),
            ("public.users".to_string(), "ShareLock".to_string()),
            ("public.users".to_string(), "RowExclusiveLock".to_string()),
            (
                "public.audit".to_string(),
                "AccessExclusiveLock".to_string(),
            ),
        ]);
        assert_eq!(
            locks,
            vec![
                TableLock {
                    table: "public.audit".to_string(),
                    mode: "ACCESS EXCLUSIVE".to_string(),
                    blocks: Blocks::ReadsAndWrites,
                },
                TableLock {
                    table: "public.users".to_string(),
                    mode: "SHARE".to_string(),
                    blocks: Blocks::Writes,
                },
            ]
        );
        assert_eq!(lock_mode("SomethingNew").2, Blocks::ReadsAndWrites);
        assert_eq!(
            lock_mode("ShareUpdateExclusiveLock").2,
            Blocks::SchemaChanges
        );
    }
}
