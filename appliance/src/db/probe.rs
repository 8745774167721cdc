//! A replica's view of its database, every few seconds: `SELECT 1` through
//! the pool within `database.connect_timeout_secs`, published as
//! `mogothrow77_database_up` (1/0) and the probe's duration, and logged when
//! it changes; also the newest backup's time and (every minute) the
//! database's size. Alerts need this as a series: `/readyz` answers a balancer,
//! not Prometheus.

use super::Sql;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// How often the probe runs.
pub const EVERY: Duration = Duration::from_secs(5);
/// How often the database's size is read (it walks the data directory).
const SIZE_EVERY: Duration = Duration::from_secs(60);

/// Probes until the process ends.
pub async fn watch(pool: deadpool_postgres::Pool, metrics: Arc<Metrics>, timeout: Duration) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = true;
    let mut last_size: Option<Instant> = None;
    loop {
        tick.tick().await;
        if last_size.is_none_or(|at| at.elapsed() >= SIZE_EVERY) {
            last_size = Some(Instant::now());
            let size = tokio::time::timeout(timeout, async {
                let client = pool.get().await.ok()?;
                let row = client
                    .query_one("SELECT pg_database_size(current_database())", &[])
                    .await
                    .ok()?;
                row.try_get::<_, i64>(0).ok()
            })
            .await
            .ok()
            .flatten();
            if let Some(bytes) = size {
                metrics.database_size_bytes.set(bytes);
            }
        }
        // The newest backup recorded (scheduled, `backup`, the upgrade
        // tool's), the newest restore drill and the WAL archiver's state,
        // for the backup alerts, in one round trip; zeros when there is none.
        let backups = tokio::time::timeout(timeout, async {
            let client = pool.get().await.ok()?;
            client
                .query_one(
                    "SELECT coalesce(extract(epoch FROM b.finished_at)::float8, 0), \
                            coalesce(b.bytes, 0), \
                            coalesce(extract(epoch FROM b.finished_at - b.started_at)::float8, 0), \
                            coalesce(extract(epoch FROM d.drilled_at)::float8, 0), \
                            coalesce(d.drill_ok, false), \
                            coalesce(extract(epoch FROM a.last_archived_time)::float8, 0), \
                            coalesce(a.last_failed_time \
                                     > coalesce(a.last_archived_time, '-infinity'), false) \
                     FROM pg_stat_archiver a \
                     LEFT JOIN (SELECT * FROM backups ORDER BY finished_at DESC LIMIT 1) b ON true \
                     LEFT JOIN (SELECT * FROM backups WHERE drilled_at IS NOT NULL \
                                ORDER BY drilled_at DESC LIMIT 1) d ON true",
                    &[],
                )
                .await
                .ok()
        })
        .await
        .ok()
        .flatten();
        if let Some(row) = backups {
            metrics.backup_last_success.set(row.get(0));
            metrics.backup_last_size.set(row.get(1));
            metrics.backup_last_duration.set(row.get(2));
            metrics.backup_last_drill.set(row.get(3));
            metrics
                .backup_last_drill_success
                .set(i64::from(row.get::<_, bool>(4)));
            metrics.wal_last_archived.set(row.get(5));
            metrics
                .wal_archive_failing
                .set(i64::from(row.get::<_, bool>(6)));
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, async {
            let client = pool
                .get()
                .await
                .map_err(|e| crate::db::describe_pool_error(&e))?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| crate::db::describe_pg_error(&e))?;
            Ok::<(), String>(())
        })
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer within {} s (database.connect_timeout_secs)",
                timeout.as_secs()
            ))
        });
        metrics
            .database_probe_seconds
            .set(started.elapsed().as_secs_f64());
        let up = outcome.is_ok();
        metrics.database_up.set(i64::from(up));
        match outcome {
            Err(reason) if was_up => {
                tracing::error!(%reason, "the database is unreachable from this replica")
            }
            Ok(()) if !was_up => tracing::info!("the database is reachable again"),
            _ => {}
        }
        was_up = up;
    }
}
