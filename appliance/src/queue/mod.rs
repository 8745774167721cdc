//! The queue's statements. A job's row changes only through these; every
//! change a worker makes to a running job is conditional on still holding it
//! (same worker, same attempt, still running), so a worker that lost its
//! lease can never overwrite what the next one did.

use std::time::Duration;

use crate::db::Sql;
use serde::Serialize;
use serde_json::Value as Json;
use time::OffsetDateTime;

mod error;
mod kind;

pub use error::JobError;
pub use kind::{jittered, Kind};

/// A job a worker now holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub kind: Kind,
    pub payload: Json,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub max_attempts: i32,
    pub created_by: Option<i64>,
    pub request_id: Option<String>,
    /// The `traceparent` of the work that queued it.
    pub trace_parent: Option<String>,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub run_at: OffsetDateTime,
    pub last_error: Option<String>,
    pub progress: Option<Json>,
    pub created_by: Option<i64>,
    pub request_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

const JOB_COLUMNS: &str = "id, kind, state, attempts, max_attempts, run_at, last_error, progress, \
                           created_by, request_id, created_at, started_at, finished_at";

fn job(row: &tokio_postgres::Row) -> Job {
    Job {
        id: row.get(0),
        kind: row.get(1),
        state: row.get(2),
        attempts: row.get(3),
        max_attempts: row.get(4),
        run_at: row.get(5),
        last_error: row.get(6),
        progress: row.get(7),
        created_by: row.get(8),
        request_id: row.get(9),
        created_at: row.get(10),
        started_at: row.get(11),
        finished_at: row.get(12),
    }
}

/// One attempt of a job.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub attempt: i32,
    pub worker: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub outcome: Option<String>,
    pub error: Option<String>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The span of queueing a job of `kind` under the current context; the
/// job stores its context and its run continues from there.
pub fn enqueue_span(kind: &str) -> crate::telemetry::Span {
    let mut span = crate::telemetry::Span::start(
        format!("enqueue {kind}"),
        crate::telemetry::Kind::Producer,
        None,
    );
    span.set("mogothrow77.job.kind", kind.to_string());
    span
}

/// Queues a job (in the caller's transaction, with what it belongs to).
pub async fn enqueue<C: Sql>(
    client: &C,
    kind: Kind,
    payload: &Json,
    created_by: Option<i64>,
    request_id: Option<&str>,
) -> Result<i64, tokio_postgres::Error> {
    let span = enqueue_span(kind.as_str());
    let header = span.context().header();
    // The statement is the enqueue span's child.
    let row = crate::telemetry::scope(
        span.context(),
        client.query_one(
            "INSERT INTO jobs (kind, payload, max_attempts, created_by, request_id, trace_parent) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &kind.as_str(),
                payload,
                &kind.max_attempts(),
                &created_by,
                &request_id,
                &header,
            ],
        ),
    )
    .await?;
    Ok(row.get(0))
}

/// Takes the oldest due job of a kind this binary runs, if any.
pub async fn claim<C: Sql>(
    client: &C,
    worker: &str,
    lease: Duration,
) -> Result<Option<Claimed>, tokio_postgres::Error> {
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let row = client
        .query_opt(
            "WITH next AS ( \
                 SELECT id FROM jobs \
                 WHERE state = 'queued' AND run_at <= now() AND kind = ANY($1) \
                 ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED), \
             claimed AS ( \
                 UPDATE jobs j SET state = 'running', attempts = j.attempts + 1, worker = $2, \
                        lease_until = now() + $3::bigint * interval '1 millisecond', \
                        started_at = coalesce(j.started_at, now()) \
                 FROM next WHERE j.id = next.id \
                 RETURNING j.id, j.kind, j.payload, j.attempts, j.max_attempts, j.created_by, \
                           j.request_id, j.trace_parent), \
             attempt AS ( \
                 INSERT INTO job_attempts (job_id, attempt, worker) \
                 SELECT id, attempts, $2 FROM claimed) \
             SELECT * FROM claimed",
            &[&kinds, &worker, &millis(lease)],
        )
        .await?;
    Ok(row.and_then(|r| {
        Some(Claimed {
            id: r.get(0),
            kind: Kind::parse(r.get(1))?,
            payload: r.get(2),
            attempt: r.get(3),
            max_attempts: r.get(4),
            created_by: r.get(5),
            request_id: r.get(6),
            trace_parent: r.get(7),
        })
    }))
}

/// How long until the next queued job of a kind this binary runs is due
/// (none: `None`; already due: zero).
pub async fn next_due<C: Sql>(client: &C) -> Result<Option<Duration>, tokio_postgres::Error> {
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let row = client
        .query_one(
            "SELECT (extract(epoch FROM min(run_at) - now()) * 1000)::bigint FROM jobs \
             WHERE state = 'queued' AND kind = ANY($1)",
            &[&kinds],
        )
        .await?;
    Ok(row
        .get::<_, Option<i64>>(0)
        .map(|ms| Duration::from_millis(ms.max(0) as u64)))
}

/// Extends the lease; false when the job is no longer this worker's to run
/// (cancelled, or taken over after the lease ran out).
pub async fn renew<C: Sql>(
    client: &C,
    job: &Claimed,
    worker: &str,
    lease: Duration,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE jobs SET lease_until = now() + $4::bigint * interval '1 millisecond' \
             WHERE id = $1 AND worker = $2 AND attempts = $3 AND state = 'running'",
            &[&job.id, &worker, &job.attempt, &millis(lease)],
        )
        .await?;
    Ok(n == 1)
}

/// Records progress for the API (rows written, estimate, ...).
pub async fn progress<C: Sql>(
    client: &C,
    job: &Claimed,
    worker: &str,
    progress: &Json,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE jobs SET progress = $4 \
             WHERE id = $1 AND worker = $2 AND attempts = $3 AND state = 'running'",
            &[&job.id, &worker, &job.attempt, progress],
        )
        .await?;
    Ok(n == 1)
}

/// How an attempt ended, as the worker reports it.
pub enum Ending<'a> {
    Succeeded,
    /// Failed: retried after the delay, or dead when out of attempts (or
    /// when `retry_in` is `None`: a permanent failure).
    Failed {
        error: &'a str,
        retry_in: Option<Duration>,
    },
    /// Given back unfinished (the server is stopping): it does not use up
    /// an attempt (the limit grows by one), but keeps its number, so what a
    /// released attempt may still write is never mistaken for the next's.
    Released,
}

/// Records how the attempt ended; false when the job was no longer this
/// worker's (nothing is changed then). Returns the job's new state.
pub async fn finish(
    client: &mut deadpool_postgres::Client,
    job: &Claimed,
    worker: &str,
    ending: Ending<'_>,
) -> Result<Option<String>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let (state, outcome, error, run_in, extra_attempts) = match ending {
        Ending::Succeeded => ("succeeded", "succeeded", None, None, 0),
        Ending::Failed { error, retry_in } => {
            let out_of_attempts = job.attempt >= job.max_attempts;
            match retry_in.filter(|_| !out_of_attempts) {
                Some(delay) => ("queued", "failed", Some(error), Some(delay), 0),
                None => ("dead", "failed", Some(error), None, 0),
            }
        }
        Ending::Released => ("queued", "released", None, Some(Duration::ZERO), 1),
    };
    let row = tx
        .query_opt(
            "UPDATE jobs SET state = $4, lease_until = NULL, \
                    worker = CASE WHEN $4 = 'queued' THEN NULL ELSE worker END, \
                    max_attempts = max_attempts + $7, \
                    last_error = coalesce($5, last_error), \
                    run_at = CASE WHEN $6::bigint IS NULL THEN run_at \
                                  ELSE now() + $6::bigint * interval '1 millisecond' END, \
                    finished_at = CASE WHEN $4 IN ('succeeded', 'dead') THEN now() END \
             WHERE id = $1 AND worker = $2 AND attempts = $3 AND state = 'running' \
             RETURNING state",
            &[
                &job.id,
                &worker,
                &job.attempt,
                &state,
                &error,
                &run_in.map(millis),
                &extra_attempts,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE job_attempts SET finished_at = now(), outcome = $3, error = $4 \
         WHERE job_id = $1 AND attempt = $2",
        &[&job.id, &job.attempt, &outcome, &error],
    )
    .await?;
    tx.commit().await?;
    Ok(Some(row.get(0)))
}

/// Jobs whose worker stopped renewing its lease (it died, or lost the
/// database): queued again at once, or dead when out of attempts. Returns
/// the ids taken back.
pub async fn reap<C: Sql>(client: &C) -> Result<Vec<i64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "WITH expired AS ( \
                 SELECT id FROM jobs WHERE state = 'running' AND lease_until < now() \
                 FOR UPDATE SKIP LOCKED), \
             taken AS ( \
                 UPDATE jobs j SET \
                        state = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END, \
                        run_at = now(), lease_until = NULL, worker = NULL, \
                        last_error = 'the worker stopped renewing its lease (it stopped, or lost \
                                      the database)', \
                        finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END \
                 FROM expired WHERE j.id = expired.id \
                 RETURNING j.id, j.attempts), \
             attempts AS ( \
                 UPDATE job_attempts a SET finished_at = now(), outcome = 'lease_expired', \
                        error = 'lease expired' \
                 FROM taken WHERE a.job_id = taken.id AND a.attempt = taken.attempts) \
             SELECT id FROM taken",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Forgets finished jobs after `keep`: succeeded and cancelled ones, and
/// dead ones nobody retried; never a job an export still points at.
pub async fn purge_finished<C: Sql>(
    client: &C,
    keep: Duration,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM jobs j WHERE state IN ('succeeded', 'cancelled', 'dead') \
               AND finished_at < now() - $1::bigint * interval '1 second' \
               AND NOT EXISTS (SELECT 1 FROM exports e WHERE e.job_id = j.id)",
            &[&(keep.as_secs() as i64)],
        )
        .await
}

/// Why the API could not change a job.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no job with id {0}")]
    NotFound(i64),
    #[error("job {id} is {state}; {hint}")]
    WrongState {
        id: i64,
        state: String,
        hint: &'static str,
    },
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// Cancels a queued or running job (a running one stops at its worker's
/// next heartbeat or check).
pub async fn cancel<C: Sql>(client: &C, id: i64) -> Result<Job, ChangeError> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE jobs SET state = 'cancelled', finished_at = now(), lease_until = NULL \
                 WHERE id = $1 AND state IN ('queued', 'running') RETURNING {JOB_COLUMNS}"
            ),
            &[&id],
        )
        .await?;
    match row {
        Some(r) => {
            client
                .execute(
                    "UPDATE job_attempts SET finished_at = now(), outcome = 'cancelled' \
                     WHERE job_id = $1 AND finished_at IS NULL",
                    &[&id],
                )
                .await?;
            Ok(job(&r))
        }
        None => Err(not_changed(client, id, "only queued or running jobs can be cancelled").await),
    }
}

/// Runs a dead or cancelled job again (replay), with its kind's number of
/// attempts on top of those spent.
pub async fn retry<C: Sql>(client: &C, id: i64) -> Result<Job, ChangeError> {
    let Some(current) = get(client, id).await? else {
        return Err(ChangeError::NotFound(id));
    };
    let more = Kind::parse(&current.kind).map_or(1, Kind::max_attempts);
    let row = client
        .query_opt(
            &format!(
                "UPDATE jobs SET state = 'queued', run_at = now(), finished_at = NULL, \
                        max_attempts = attempts + $2 \
                 WHERE id = $1 AND state IN ('dead', 'cancelled') RETURNING {JOB_COLUMNS}"
            ),
            &[&id, &more],
        )
        .await?;
    match row {
        Some(r) => Ok(job(&r)),
        None => Err(not_changed(client, id, "only dead or cancelled jobs can be retried").await),
    }
}

async fn not_changed<C: Sql>(client: &C, id: i64, hint: &'static str) -> ChangeError {
    match client
        .query_opt("SELECT state FROM jobs WHERE id = $1", &[&id])
        .await
    {
        Ok(Some(r)) => ChangeError::WrongState {
            id,
            state: r.get(0),
            hint,
        },
        Ok(None) => ChangeError::NotFound(id),
        Err(e) => ChangeError::Db(e),
    }
}

pub async fn get<C: Sql>(client: &C, id: i64) -> Result<Option<Job>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(job))
}

/// Jobs, newest first, optionally in one state, before an id (paging).
pub async fn list<C: Sql>(
    client: &C,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Job>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs \
                 WHERE ($1::text IS NULL OR state = $1) AND ($2::bigint IS NULL OR id < $2) \
                 ORDER BY id DESC LIMIT $3"
            ),
            &[&state, &before, &limit],
        )
        .await?;
    Ok(rows.iter().map(job).collect())
}

pub async fn attempts<C: Sql>(client: &C, id: i64) -> Result<Vec<Attempt>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT attempt, worker, started_at, finished_at, outcome, error FROM job_attempts \
             WHERE job_id = $1 ORDER BY attempt",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Attempt {
            attempt: r.get(0),
            worker: r.get(1),
            started_at: r.get(2),
            finished_at: r.get(3),
            outcome: r.get(4),
            error: r.get(5),
        })
        .collect())
}

/// For `/metrics`: jobs due and waiting, the age of the oldest of them,
/// running, and dead.
pub struct Depth {
    pub due: i64,
    pub oldest_due_secs: f64,
    pub running: i64,
    pub dead: i64,
}

pub async fn depth<C: Sql>(client: &C) -> Result<Depth, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE state = 'queued' AND run_at <= now()), \
                    coalesce(extract(epoch FROM now() - min(run_at) \
                             FILTER (WHERE state = 'queued' AND run_at <= now()))::float8, 0), \
                    count(*) FILTER (WHERE state = 'running'), \
                    count(*) FILTER (WHERE state = 'dead') \
             FROM jobs WHERE state IN ('queued', 'running', 'dead')",
            &[],
        )
        .await?;
    Ok(Depth {
        due: row.get(0),
        oldest_due_secs: row.get(1),
        running: row.get(2),
        dead: row.get(3),
    })
}
