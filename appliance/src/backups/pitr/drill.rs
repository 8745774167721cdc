//! The PITR half of `backup drill` (managed mode with `backup.pitr`): a
//! moment is fixed on the live database — writes to the collections held
//! back for an instant, every collection counted in that instant's
//! snapshot, its WAL archived — then pgBackRest restores the cluster as of
//! that moment into a scratch data directory with its own socket,
//! PostgreSQL replays to it, the counts and the audit chain are checked,
//! and the scratch cluster is stopped and removed. The live cluster is
//! never written to but for the instant's lock.

use crate::db::Sql;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{wait_archived, Pitr, PitrError};
use crate::audit;
use crate::db::managed::{Layout, ManagedPostgres, DATABASE};
use crate::db::recovery;

/// How long the drill's replay may take.
const REPLAY_LIMIT: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum PitrDrillError {
    #[error(transparent)]
    Pitr(#[from] PitrError),
    #[error(
        "not enough free space in {dir} for the PITR drill's scratch cluster: about {needed} MB \
         needed (the newest base backup's database size), {free} MB free; free some space or \
         point backup.dir's work directory elsewhere"
    )]
    NoSpace { dir: String, needed: u64, free: u64 },
    #[error("{0}")]
    Io(String),
}

impl From<tokio_postgres::Error> for PitrDrillError {
    fn from(e: tokio_postgres::Error) -> PitrDrillError {
        PitrError::Db(crate::db::describe_pg_error(&e)).into()
    }
}

/// What the PITR drill found.
#[derive(Debug)]
pub struct PitrDrilled {
    pub target: String,
    pub counts: Vec<super::super::drill::Count>,
    pub audit_entries: i64,
    pub audit_problems: Vec<String>,
    pub seconds: f64,
}

impl PitrDrilled {
    pub fn ok(&self) -> bool {
        self.counts.iter().all(|c| c.matches()) && self.audit_problems.is_empty()
    }

    pub fn report(&self) -> Value {
        let (records, mismatches) = crate::backups::drill::counts_report(&self.counts);
        json!({
            "target": self.target,
            "ok": self.ok(),
            "seconds": self.seconds,
            "records": records,
            "mismatches": mismatches,
            "audit_entries": self.audit_entries,
            "audit_problems": self.audit_problems,
        })
    }
}

/// Runs the drill against the running live cluster `live`; the scratch
/// cluster lives in `<work_dir>/pitr-drill`.
pub async fn run(
    pitr: &Pitr,
    live: &ManagedPostgres,
    work_dir: &Path,
) -> Result<PitrDrilled, PitrDrillError> {
    let started = Instant::now();
    let info = pitr.info().await?;
    let Some(newest) = info.newest() else {
        return Err(PitrError::NoBaseBackup(pitr.repository()).into());
    };
    let scratch = work_dir.join("pitr-drill");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .map_err(|e| PitrDrillError::Io(format!("{}: {e}", scratch.display())))?;
    }
    crate::backups::archive::create_private_dir(work_dir)
        .map_err(|e| PitrDrillError::Io(format!("{}: {e}", work_dir.display())))?;
    check_space(work_dir, newest.database_bytes)?;
    let (target, recorded) = fix_moment(live).await?;
    let segment = live.switch_wal().await.map_err(PitrError::from)?;
    wait_archived(pitr, live, &segment, Duration::from_secs(300)).await?;

    let layout = Layout::at(scratch.clone(), scratch.clone()).map_err(PitrError::from)?;
    let copy = live.elsewhere(layout);
    let outcome = async {
        let (t, d) = (target.clone(), scratch.clone());
        pitr.blocking(move |tool| tool.restore(&d, &t)).await?;
        let running = recovery::recover(&copy, REPLAY_LIMIT)
            .await
            .map_err(PitrError::from)?;
        let read = async {
            let client = copy
                .connect_superuser(DATABASE)
                .await
                .map_err(PitrError::from)?;
            let restored = crate::backups::record_counts(&client).await?;
            let verified = audit::verify(&client)
                .await
                .map_err(|e| PitrError::Db(e.to_string()))?;
            Ok::<_, PitrDrillError>((restored, verified))
        }
        .await;
        running.stop().await;
        read
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    let (restored, verified) = outcome?;
    Ok(PitrDrilled {
        target,
        counts: crate::backups::drill::compare(&recorded, &restored),
        audit_entries: verified.entries,
        audit_problems: verified.problems.iter().map(ToString::to_string).collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn check_space(dir: &Path, database_bytes: u64) -> Result<(), PitrDrillError> {
    let stat = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| PitrDrillError::Io(format!("{}: {e}", dir.display())))?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    // The restored cluster, and WAL replayed into it.
    let needed = database_bytes + database_bytes / 5 + 64_000_000;
    if free < needed {
        return Err(PitrDrillError::NoSpace {
            dir: dir.display().to_string(),
            needed: needed / 1_000_000 + 1,
            free: free / 1_000_000,
        });
    }
    Ok(())
}

/// Fixes the drill's moment: with every collection's table locked against
/// writes (SHARE: readers go on), a snapshot is exported and the clock
/// read in one statement, a second session counts the records in that
/// snapshot, and the locking transaction commits with an id — a commit
/// record after the moment, which recovery needs to stop at it. Writes
/// that waited commit after the moment; every write counted committed
/// before it.
async fn fix_moment(live: &ManagedPostgres) -> Result<(String, Value), PitrDrillError> {
    let mut locker = live
        .connect_superuser(DATABASE)
        .await
        .map_err(PitrError::from)?;
    let mut counter = live
        .connect_superuser(DATABASE)
        .await
        .map_err(PitrError::from)?;
    let tx = locker.transaction().await?;
    Sql::batch_execute(&tx, "SET LOCAL lock_timeout = '30s'").await?;
    for row in Sql::query(&tx, "SELECT id FROM collections", &[]).await? {
        // The table name is generated from the id, never from input.
        let table = crate::records::table(row.get(0));
        Sql::batch_execute(&tx, &format!("LOCK TABLE {table} IN SHARE MODE")).await?;
    }
    let row = Sql::query_one(
        &tx,
        "SELECT pg_export_snapshot(), \
               to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
        &[],
    )
    .await?;
    let (snapshot, target): (String, String) = (row.get(0), row.get(1));
    let count_tx = counter
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // The snapshot id is PostgreSQL's own, not input; SET TRANSACTION
    // SNAPSHOT takes no parameters.
    Sql::batch_execute(
        &count_tx,
        &format!("SET TRANSACTION SNAPSHOT '{}'", snapshot.replace('\'', "")),
    )
    .await?;
    Sql::query_one(&tx, "SELECT txid_current()", &[]).await?;
    tx.commit().await?;
    let counts = crate::backups::record_counts(&count_tx).await?;
    count_tx.commit().await?;
    Ok((target, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_without_room_for_the_scratch_cluster_is_refused_with_the_figures() {
        let dir = std::env::temp_dir();
        assert!(check_space(&dir, 1_000).is_ok());
        let refused = check_space(&dir, u64::MAX / 4).expect_err("no disk is that large");
        let text = refused.to_string();
        assert!(
            text.contains("not enough free space") && text.contains("MB free"),
            "{text}"
        );
    }
}
