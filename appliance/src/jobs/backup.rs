//! Scheduled backups as jobs (`crate::backups`): the run is spawned apart
//! from the job, so a run whose lease ran out still finishes (and records
//! its backup); the job's next attempt waits for the run's lock and then
//! finds the slot taken.

use std::sync::Arc;
use std::time::Duration;

use super::context::JobCtx;
use super::registry::{Handler, JobRun};
use crate::backups::{self, Backups, TakeError, Taken};
use crate::queue::JobError;

/// How often an attempt looks again while another run holds the lock.
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// Scheduled restore drills (`backup.drill_schedule`); `None` on a replica
/// without one. The drill runs apart from the job (a lost lease does not
/// stop it); one that found a mismatch ends the job well — the outcome is
/// recorded and alerted on — one that could not run is retried.
pub struct DrillHandler(pub Option<Arc<crate::backups::drill::Drills>>);

impl Handler for DrillHandler {
    fn run<'a>(&'a self, _ctx: &'a JobCtx) -> JobRun<'a> {
        Box::pin(async move {
            let Some(drills) = &self.0 else {
                return Err(JobError::Permanent(
                    "this replica has no backup.drill_schedule: give every replica the same \
                     [backup] section"
                        .to_string(),
                ));
            };
            let drills = drills.clone();
            match tokio::spawn(async move { drills.run_scheduled().await }).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(JobError::Transient(e.to_string())),
                Err(e) => Err(JobError::Transient(format!("the drill stopped: {e}"))),
            }
        })
    }
}

/// `None` on a replica without `[backup]` settings.
pub struct BackupHandler(pub Option<Arc<Backups>>);

impl Handler for BackupHandler {
    fn run<'a>(&'a self, ctx: &'a JobCtx) -> JobRun<'a> {
        Box::pin(async move {
            let Some(backups) = &self.0 else {
                return Err(JobError::Permanent(
                    "this replica has no backup.schedule: give every replica the same [backup] \
                     section"
                        .to_string(),
                ));
            };
            let slot = ctx
                .job
                .payload
                .get("slot")
                .and_then(serde_json::Value::as_i64)
                .ok_or_else(|| JobError::Permanent("the job names no slot".to_string()))?;
            loop {
                let run = tokio::spawn(backups::take(backups.clone(), ctx.pool.clone(), slot));
                match run.await {
                    Ok(Ok(Taken::Written | Taken::AlreadyTaken)) => return Ok(()),
                    Ok(Err(TakeError::Busy)) => {
                        ctx.check()?;
                        tokio::time::sleep(BUSY_WAIT).await;
                    }
                    Ok(Err(e)) => return Err(JobError::Transient(e.to_string())),
                    Err(e) => {
                        return Err(JobError::Transient(format!("the backup run stopped: {e}")))
                    }
                }
            }
        })
    }
}
