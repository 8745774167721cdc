//! What a job's handler gets: the claimed job, the pool, and the way to
//! find out that the job is no longer its worker's (cancelled, or its lease
//! taken over) between steps and before committing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::queue::{self, Claimed, JobError};

/// What a handler gets: the job, the pool, and a way to tell it lost the job.
pub struct JobCtx {
    pub pool: deadpool_postgres::Pool,
    pub job: Claimed,
    pub worker: String,
    lost: Arc<AtomicBool>,
}

impl JobCtx {
    pub(super) fn new(
        pool: deadpool_postgres::Pool,
        job: Claimed,
        worker: String,
        lost: Arc<AtomicBool>,
    ) -> JobCtx {
        JobCtx {
            pool,
            job,
            worker,
            lost,
        }
    }
}

impl JobCtx {
    /// `Err(Lost)` once the job is no longer this worker's (cancelled, or
    /// its lease was taken over): handlers call it between steps.
    pub fn check(&self) -> Result<(), JobError> {
        if self.lost.load(Ordering::SeqCst) {
            Err(JobError::Lost)
        } else {
            Ok(())
        }
    }

    /// Locks the job's row in the caller's transaction, and `Err(Lost)`
    /// unless this attempt still holds it: what the transaction then
    /// commits cannot race a cancel or a takeover.
    pub async fn hold<C: crate::db::Sql>(&self, tx: &C) -> Result<(), JobError> {
        let held = tx
            .query_opt(
                "SELECT 1 FROM jobs WHERE id = $1 AND worker = $2 AND attempts = $3 \
                   AND state = 'running' FOR UPDATE",
                &[&self.job.id, &self.worker, &self.job.attempt],
            )
            .await?;
        match held {
            Some(_) => Ok(()),
            None => Err(JobError::Lost),
        }
    }

    /// Records progress for the API.
    pub async fn progress(&self, progress: &serde_json::Value) -> Result<(), JobError> {
        let client = self.pool.get().await?;
        if queue::progress(&**client, &self.job, &self.worker, progress).await? {
            Ok(())
        } else {
            self.lost.store(true, Ordering::SeqCst);
            Err(JobError::Lost)
        }
    }
}
