//! Stored CSV exports: created with a job, written by the job into
//! `export_chunks` (1 MiB each, under the attempt that wrote them), and
//! offered for download only once an attempt has written the whole file.
//!
//! An attempt starts from scratch: it deletes whatever an earlier attempt
//! left, writes its own chunks, and in one transaction at the end marks the
//! export ready with its attempt number, row count, size and SHA-256. A
//! crash before that leaves chunks nobody serves; the next attempt deletes
//! them. A job that finds its export already ready does nothing (delivery is
//! at least once).

use crate::db::Sql;
use ring::digest;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use std::sync::Arc;

use super::context::JobCtx;
use super::registry::{Handler, JobRun};
use super::Services;
use crate::audit::{self, Event, Outcome};
use crate::queue::{self, JobError, Kind};
use crate::records::export::{self, Plan, Request};
use crate::telemetry::{self, Span};

/// Bytes per stored chunk.
const CHUNK_BYTES: usize = 1024 * 1024;

/// An export as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredExport {
    pub id: i64,
    pub collection: String,
    /// queued, running, ready, failed or cancelled.
    pub state: String,
    pub request: serde_json::Value,
    pub requested_by: Option<i64>,
    pub job_id: i64,
    pub progress: Option<serde_json::Value>,
    pub error: Option<String>,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ready_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The attempt whose chunks are the file (internal).
    #[serde(skip)]
    pub attempt: Option<i32>,
}

const COLUMNS: &str = "e.id, e.collection, e.query, e.requested_by, e.job_id, j.progress, \
                       j.last_error, e.rows_written, e.bytes, e.sha256, e.created_at, e.ready_at, \
                       e.expires_at, e.attempt, j.state";

fn stored(row: &tokio_postgres::Row) -> StoredExport {
    let attempt: Option<i32> = row.get(13);
    let job_state: String = row.get(14);
    let state = match (attempt, job_state.as_str()) {
        (Some(_), _) => "ready",
        (None, "queued") => "queued",
        (None, "running") => "running",
        (None, "cancelled") => "cancelled",
        (None, _) => "failed",
    };
    StoredExport {
        id: row.get(0),
        collection: row.get(1),
        request: row.get(2),
        requested_by: row.get(3),
        job_id: row.get(4),
        progress: row.get(5),
        error: if state == "failed" { row.get(6) } else { None },
        rows: row.get(7),
        bytes: row.get(8),
        sha256: row.get(9),
        created_at: row.get(10),
        ready_at: row.get(11),
        expires_at: row.get(12),
        attempt,
        state: state.to_string(),
    }
}

/// Exports a person may keep at once (queued, running or ready).
pub const PER_PERSON: i64 = 20;

/// How many exports `user` keeps now (queued, running or ready, not
/// expired); locks the person's row so two requests cannot both pass the
/// limit.
pub async fn kept_by(
    tx: &tokio_postgres::Transaction<'_>,
    user: i64,
) -> Result<i64, tokio_postgres::Error> {
    Sql::execute(
        &tx,
        "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
        &[&user],
    )
    .await?;
    let row = Sql::query_one(
        &tx,
        "SELECT count(*) FROM exports e JOIN jobs j ON j.id = e.job_id \
             WHERE e.requested_by = $1 AND e.expires_at > now() \
               AND (e.attempt IS NOT NULL OR j.state IN ('queued', 'running'))",
        &[&user],
    )
    .await?;
    Ok(row.get(0))
}

/// Creates an export and its job (in the caller's transaction).
pub async fn create(
    tx: &tokio_postgres::Transaction<'_>,
    collection: &str,
    request: &Request,
    requested_by: i64,
    request_id: &str,
    retention: std::time::Duration,
) -> Result<StoredExport, tokio_postgres::Error> {
    let job_id = queue::enqueue(
        tx,
        Kind::Export,
        &json!({ "collection": collection }),
        Some(requested_by),
        Some(request_id),
    )
    .await?;
    let query = serde_json::to_value(request).unwrap_or_default();
    let row = Sql::query_one(
        &tx,
        "INSERT INTO exports (job_id, collection, requested_by, query, expires_at) \
             VALUES ($1, $2, $3, $4, now() + $5::bigint * interval '1 second') RETURNING id",
        &[
            &job_id,
            &collection,
            &requested_by,
            &query,
            &(retention.as_secs() as i64),
        ],
    )
    .await?;
    let id: i64 = row.get(0);
    Ok(get(tx, id).await?.expect("the export just created"))
}

pub async fn get<C: Sql>(
    client: &C,
    id: i64,
) -> Result<Option<StoredExport>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM exports e JOIN jobs j ON j.id = e.job_id WHERE e.id = $1"
            ),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(stored))
}

/// Exports newest first: one person's, or everyone's.
pub async fn list<C: Sql>(
    client: &C,
    requested_by: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredExport>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM exports e JOIN jobs j ON j.id = e.job_id \
                 WHERE $1::bigint IS NULL OR e.requested_by = $1 ORDER BY e.id DESC LIMIT $2"
            ),
            &[&requested_by, &limit],
        )
        .await?;
    Ok(rows.iter().map(stored).collect())
}

/// Deletes an export (its chunks go with it) and cancels its job if it
/// has not finished.
pub async fn delete(
    tx: &tokio_postgres::Transaction<'_>,
    export: &StoredExport,
) -> Result<(), tokio_postgres::Error> {
    Sql::execute(
        &tx,
        "UPDATE jobs SET state = 'cancelled', finished_at = now(), lease_until = NULL \
         WHERE id = $1 AND state IN ('queued', 'running')",
        &[&export.job_id],
    )
    .await?;
    Sql::execute(&tx, "DELETE FROM exports WHERE id = $1", &[&export.id]).await?;
    Ok(())
}

/// Deletes exports past their retention (and cancels their jobs).
pub async fn delete_expired<C: Sql>(client: &C) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "WITH gone AS (DELETE FROM exports WHERE expires_at < now() RETURNING job_id) \
             UPDATE jobs SET state = 'cancelled', finished_at = now(), lease_until = NULL \
             WHERE id IN (SELECT job_id FROM gone) AND state IN ('queued', 'running')",
            &[],
        )
        .await
}

/// The number of chunks of a ready export's file, in order: `seq` 0..n.
pub async fn chunk_count<C: Sql>(
    client: &C,
    export: &StoredExport,
) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*) FROM export_chunks WHERE export_id = $1 AND attempt = $2",
            &[&export.id, &export.attempt],
        )
        .await?;
    Ok(row.get(0))
}

/// One chunk of a ready export's file.
pub async fn chunk<C: Sql>(
    client: &C,
    export: &StoredExport,
    seq: i32,
) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT data FROM export_chunks WHERE export_id = $1 AND attempt = $2 AND seq = $3",
            &[&export.id, &export.attempt, &seq],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The file an attempt writes: its chunks, size and digest so far.
struct File {
    export_id: i64,
    attempt: i32,
    hash: digest::Context,
    bytes: i64,
    chunks: i32,
}

impl File {
    /// Stores what `chunk` holds (if anything) as the next chunk.
    async fn store(
        &mut self,
        writer: &deadpool_postgres::Client,
        chunk: &mut Vec<u8>,
    ) -> Result<(), JobError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(chunk, Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 8));
        self.hash.update(&data);
        writer
            .execute(
                "INSERT INTO export_chunks (export_id, attempt, seq, data) VALUES ($1, $2, $3, $4)",
                &[&self.export_id, &self.attempt, &self.chunks, &data],
            )
            .await?;
        self.bytes += data.len() as i64;
        self.chunks += 1;
        Ok(())
    }
}

/// The job's side of [`Export::write`]: each chunk stored, progress
/// reported, and a job no longer this worker's noticed.
struct ToTable<'a> {
    file: &'a mut File,
    writer: &'a deadpool_postgres::Client,
    ctx: &'a JobCtx,
    estimate: u64,
}

impl export::Sink for ToTable<'_> {
    type Error = JobError;

    async fn flush(&mut self, chunk: &mut Vec<u8>, rows: u64) -> Result<(), JobError> {
        self.ctx.check()?;
        let mut span = Span::start("export chunk", telemetry::Kind::Internal, None);
        span.set("mogothrow77.export.chunk", i64::from(self.file.chunks));
        span.set("mogothrow77.export.chunk_bytes", chunk.len() as i64);
        span.set("mogothrow77.export.rows_so_far", rows as i64);
        self.file.store(self.writer, chunk).await?;
        self.ctx
            .progress(&json!({ "rows": rows, "estimate": self.estimate.max(rows) }))
            .await
    }
}

/// The `export` kind's handler.
pub struct ExportHandler(pub Arc<Services>);

impl Handler for ExportHandler {
    fn run<'a>(&'a self, ctx: &'a JobCtx) -> JobRun<'a> {
        Box::pin(run(ctx, &self.0))
    }
}

/// The job: writes the export's file.
async fn run(ctx: &JobCtx, services: &Services) -> Result<(), JobError> {
    let mut writer = ctx.pool.get().await?;
    let found = writer
        .query_opt(
            "SELECT e.id, e.collection, e.query, e.attempt, e.requested_by, u.username \
             FROM exports e LEFT JOIN users u ON u.id = e.requested_by WHERE e.job_id = $1",
            &[&ctx.job.id],
        )
        .await?;
    let Some(found) = found else {
        return Err(JobError::Permanent(
            "the export was deleted (or expired) before it was written".to_string(),
        ));
    };
    let export_id: i64 = found.get(0);
    let name: String = found.get(1);
    if found.get::<_, Option<i32>>(3).is_some() {
        return Ok(());
    }
    let request: Request = serde_json::from_value(found.get(2))
        .map_err(|e| JobError::Permanent(format!("the stored request is unreadable: {e}")))?;
    let audit_ctx = audit::Context {
        actor_id: found.get(4),
        actor: found
            .get::<_, Option<String>>(5)
            .unwrap_or_else(|| "system".to_string()),
        client_addr: String::new(),
        request_id: ctx.job.request_id.clone().unwrap_or_default(),
    };

    let mut reader = ctx.pool.get().await?;
    let collection = crate::records::collection(&**reader, &name)
        .await?
        .ok_or_else(|| JobError::Permanent(format!("the collection {name:?} no longer exists")))?;
    let plan = Plan::new(collection, &request).map_err(|e| {
        JobError::Permanent(format!(
            "the collection's fields changed since the export was asked for: {e}"
        ))
    })?;
    let export = plan.export();

    // From scratch: what earlier attempts wrote goes — only earlier ones, and
    // only while this attempt still holds the job (a stale attempt must never
    // touch a later one's file).
    writer
        .execute(
            "DELETE FROM export_chunks WHERE export_id = $1 AND attempt < $2 \
               AND EXISTS (SELECT 1 FROM jobs WHERE id = $3 AND worker = $4 AND attempts = $2 \
                           AND state = 'running')",
            &[&export_id, &ctx.job.attempt, &ctx.job.id, &ctx.worker],
        )
        .await?;
    let tx = reader.build_transaction().read_only(true).start().await?;
    let (sql, values) = export.statement();
    let plan_rows = tx
        .query_one(
            &format!("EXPLAIN (FORMAT JSON) {sql}"),
            &export::params(&values),
        )
        .await?;
    let plan_json: serde_json::Value = plan_rows.get(0);
    let estimate = plan_json[0]["Plan"]["Plan Rows"]
        .as_f64()
        .unwrap_or(0.0)
        .round() as u64;
    ctx.progress(&json!({ "rows": 0, "estimate": estimate }))
        .await?;

    let attempt = ctx.job.attempt;
    let mut file = File {
        export_id,
        attempt,
        hash: digest::Context::new(&digest::SHA256),
        bytes: 0,
        chunks: 0,
    };
    let mut rows = 0u64;
    let mut sink = ToTable {
        file: &mut file,
        writer: &writer,
        ctx,
        estimate,
    };
    export.write(&tx, CHUNK_BYTES, &mut rows, &mut sink).await?;
    let rows = rows as i64;
    tx.commit().await?;
    let (seq, bytes) = (file.chunks, file.bytes);
    let sha256: String = file
        .hash
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    // Ready, in one transaction with its audit entry, only if the job is
    // still this attempt's (the row lock holds off a cancel meanwhile) and
    // every chunk it wrote is there.
    ctx.check()?;
    let mut stored_span = Span::start("export file stored", telemetry::Kind::Internal, None);
    stored_span.set("mogothrow77.export.rows", rows);
    stored_span.set("mogothrow77.export.bytes", bytes);
    let done = writer.transaction().await?;
    ctx.hold(&*done).await?;
    let stored = done
        .query_one(
            "SELECT count(*), coalesce(sum(length(data)), 0)::bigint FROM export_chunks \
             WHERE export_id = $1 AND attempt = $2",
            &[&export_id, &attempt],
        )
        .await?;
    let (stored_chunks, stored_bytes): (i64, i64) = (stored.get(0), stored.get(1));
    if stored_chunks != i64::from(seq) || stored_bytes != bytes {
        return Err(JobError::Transient(format!(
            "the stored file is incomplete ({stored_chunks} of {seq} chunks, {stored_bytes} of \
             {bytes} bytes); writing it again"
        )));
    }
    let marked = done
        .query_opt(
            "UPDATE exports SET attempt = $2, rows_written = $3, bytes = $4, sha256 = $5, \
                    ready_at = now(), expires_at = now() + $6::bigint * interval '1 second' \
             WHERE id = $1 AND attempt IS NULL RETURNING expires_at",
            &[
                &export_id,
                &attempt,
                &rows,
                &bytes,
                &sha256,
                &(services.export_retention.as_secs() as i64),
            ],
        )
        .await?;
    if let Some(marked) = marked {
        let expires_at: OffsetDateTime = marked.get(0);
        // What earlier attempts may have left (a killed worker's last write).
        done.execute(
            "DELETE FROM export_chunks WHERE export_id = $1 AND attempt <> $2",
            &[&export_id, &attempt],
        )
        .await?;
        audit::append(
            &done,
            &audit_ctx,
            &Event::new(
                "export.ready",
                format!("export:{export_id}"),
                Outcome::Success,
            )
            .details(json!({
                "export_id": export_id,
                "collection": name,
                "rows": rows,
                "bytes": bytes,
                "sha256": sha256,
            })),
        )
        .await
        .map_err(|e| match e {
            audit::AuditError::Db(e) => JobError::from(e),
        })?;
        crate::webhooks::emit(
            &done,
            crate::webhooks::EventType::ExportCompleted,
            &name,
            json!({
                "export_id": export_id,
                "collection": name,
                "requested_by": audit_ctx.actor_id,
                "rows": rows,
                "bytes": bytes,
                "sha256": sha256,
                "url": format!("/api/v1/exports/{export_id}"),
            }),
            ctx.job.request_id.as_deref(),
            services.webhooks.max_attempts,
        )
        .await?;
        // And an e-mail to the requester, when there is a relay and an
        // address.
        if let Some(email) = &services.email {
            let to: Option<String> = done
                .query_opt(
                    "SELECT email FROM users WHERE id = $1",
                    &[&audit_ctx.actor_id],
                )
                .await?
                .and_then(|r| r.get(0));
            if let Some(to) = to {
                let (subject, body) = crate::mail::export_ready(
                    &email.console_url,
                    export_id,
                    &name,
                    rows,
                    bytes,
                    expires_at,
                );
                crate::mail::queue(&*done, &to, &subject, &body, ctx.job.request_id.as_deref())
                    .await?;
            }
        }
    }
    done.commit().await?;
    Ok(())
}
