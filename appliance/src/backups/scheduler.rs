//! Each replica's schedulers: at every slot of `backup.schedule` (and of
//! `backup.drill_schedule`) one queues the slot's job, unless another
//! replica already did (the slot's row in `backup_slots` and the job commit
//! together). A slot missed while every replica was down is taken when one
//! comes back; older ones are not.

use crate::db::Sql;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Schedule;
use crate::queue::{self, Kind};
use serde_json::json;

/// Looks again at least this often (clock changes, a failed attempt).
const RECHECK: Duration = Duration::from_secs(60);

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What a schedule queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    Backup,
    Drill,
}

impl Planned {
    fn slot_kind(self) -> &'static str {
        match self {
            Planned::Backup => "backup",
            Planned::Drill => "drill",
        }
    }

    fn job_kind(self) -> Kind {
        match self {
            Planned::Backup => Kind::Backup,
            Planned::Drill => Kind::BackupDrill,
        }
    }
}

/// Runs for as long as the server does.
pub async fn run(pool: deadpool_postgres::Pool, schedule: Schedule, planned: Planned) {
    let what = planned.slot_kind();
    tracing::info!(%schedule, what, "scheduled");
    loop {
        let now = unix_now();
        let slot = schedule.slot_at_or_before(now);
        match queue_slot(&pool, planned, slot).await {
            Ok(Some(job)) => tracing::info!(job, slot, what, "scheduled job queued"),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, what, "cannot queue the scheduled job; trying again")
            }
        }
        let until_next =
            Duration::from_secs(u64::try_from(schedule.next_after(now) - now).unwrap_or(1));
        tokio::time::sleep(until_next.clamp(Duration::from_secs(1), RECHECK)).await;
    }
}

/// Queues the job of `slot` (Unix seconds) unless it was queued before;
/// the job's id when this call queued it.
pub async fn queue_slot(
    pool: &deadpool_postgres::Pool,
    planned: Planned,
    slot: i64,
) -> Result<Option<i64>, String> {
    let pg = |e: tokio_postgres::Error| crate::db::describe_pg_error(&e);
    let mut client = pool
        .get()
        .await
        .map_err(|e| crate::db::describe_pool_error(&e))?;
    let tx = client.transaction().await.map_err(pg)?;
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(slot).unwrap_or(0));
    let kind = planned.slot_kind();
    // A second replica's insert waits for the first's commit, then does nothing.
    let claimed = tx
        .execute(
            "INSERT INTO backup_slots (kind, slot, job_id) VALUES ($1, $2, 0) \
             ON CONFLICT DO NOTHING",
            &[&kind, &at],
        )
        .await
        .map_err(pg)?;
    if claimed == 0 {
        return Ok(None);
    }
    let job = queue::enqueue(
        &*tx,
        planned.job_kind(),
        &json!({ "slot": slot }),
        None,
        None,
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "UPDATE backup_slots SET job_id = $3 WHERE kind = $1 AND slot = $2",
        &[&kind, &at, &job],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(Some(job))
}
