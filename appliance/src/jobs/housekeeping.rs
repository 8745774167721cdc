//! Tidying what finished jobs leave: expired exports deleted on every
//! round of the lease keeper; finished jobs, imports and webhook deliveries
//! older than [`KEEP_FINISHED`] purged every [`PURGE_EVERY`].

use std::time::{Duration, Instant};

use crate::db::Sql;

use super::{export, import};
use crate::queue;

/// How long finished jobs (and their attempts) stay visible.
const KEEP_FINISHED: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often finished jobs are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// One round; `last_purge` remembers when the purge last ran.
pub async fn tidy<C: Sql>(client: &C, last_purge: &mut Option<Instant>) {
    if let Err(e) = export::delete_expired(client).await {
        tracing::warn!(error = %crate::db::describe_pg_error(&e), "cannot delete expired exports");
    }
    if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
        *last_purge = Some(Instant::now());
        if let Err(e) = queue::purge_finished(client, KEEP_FINISHED).await {
            tracing::warn!(error = %crate::db::describe_pg_error(&e), "cannot purge finished jobs");
        }
        if let Err(e) = import::purge(client, KEEP_FINISHED).await {
            tracing::warn!(error = %crate::db::describe_pg_error(&e), "cannot purge finished imports");
        }
        if let Err(e) = crate::webhooks::store::purge_deliveries(client, KEEP_FINISHED).await {
            tracing::warn!(error = %crate::db::describe_pg_error(&e), "cannot purge webhook deliveries");
        }
    }
}
