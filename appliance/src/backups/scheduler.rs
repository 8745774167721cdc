//! Each replica's scheduler: at every slot of `backup.schedule` it queues
//! the slot's backup job, unless another replica already did (the slot's
//! row in `backup_slots` and the job commit together). A slot missed while
//! every replica was down is taken when one comes back; older ones are not.

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

/// Runs for as long as the server does.
pub async fn run(pool: deadpool_postgres::Pool, schedule: Schedule) {
    tracing::info!(%schedule, "scheduled backups on");
    loop {
        let now = unix_now();
        let slot = schedule.slot_at_or_before(now);
        match queue_slot(&pool, slot).await {
            Ok(Some(job)) => tracing::info!(job, slot, "scheduled backup queued"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot queue the scheduled backup; trying again"),
        }
        let until_next =
            Duration::from_secs(u64::try_from(schedule.next_after(now) - now).unwrap_or(1));
        tokio::time::sleep(until_next.clamp(Duration::from_secs(1), RECHECK)).await;
    }
}

/// Queues the backup of `slot` (Unix seconds) unless it was queued before;
/// the job's id when this call queued it.
pub async fn queue_slot(pool: &deadpool_postgres::Pool, slot: i64) -> Result<Option<i64>, String> {
    let pg = |e: tokio_postgres::Error| crate::db::describe_pg_error(&e);
    let mut client = pool
        .get()
        .await
        .map_err(|e| crate::db::describe_pool_error(&e))?;
    let tx = client.transaction().await.map_err(pg)?;
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(slot).unwrap_or(0));
    // A second replica's insert waits for the first's commit, then does nothing.
    let claimed = tx
        .execute(
            "INSERT INTO backup_slots (slot, job_id) VALUES ($1, 0) ON CONFLICT DO NOTHING",
            &[&at],
        )
        .await
        .map_err(pg)?;
    if claimed == 0 {
        return Ok(None);
    }
    let job = queue::enqueue(&*tx, Kind::Backup, &json!({ "slot": slot }), None, None)
        .await
        .map_err(pg)?;
    tx.execute(
        "UPDATE backup_slots SET job_id = $2 WHERE slot = $1",
        &[&at, &job],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(Some(job))
}
