//! Bulk imports: a CSV or NDJSON file uploaded into `import_chunks`
//! (`crate::api::imports`), imported by a job of kind `import`.
//!
//! The job reads the file chunk by chunk (constant memory), turns each
//! record into a write (`crate::records::import`), validates it like the
//! records API does, and inserts the valid ones — all in one transaction
//! that also marks the import finished, with its report, audit entry and
//! `import.completed` webhook event. So a retried job never imports twice
//! (a finished import is left alone) and a crash leaves nothing behind. In
//! `all_or_nothing` mode any invalid row rolls the rows back (the report is
//! still written). Valid rows are inserted by batches of up to 500, one
//! statement each, under a savepoint; a batch with a row the database
//! refuses (a duplicate in a unique field) is inserted again row by row to
//! find it.

use crate::db::Sql;
use serde::Serialize;
use serde_json::{json, Map, Value as Json};
use time::OffsetDateTime;
use tokio_postgres::Transaction;

use std::sync::Arc;

use super::context::JobCtx;
use super::registry::{Handler, JobRun};
use super::Services;
use crate::audit::{self, Event, Outcome};
use crate::queue::{self, JobError, Kind};
use crate::records::import::{FileError, Format, Mode, Reader, Row, RowProblem};
use crate::records::store::{self, WriteError};
use crate::records::Collection;

/// Rows inserted by one statement, at most.
const BATCH: usize = 500;
/// Problems kept for the report (all are counted).
pub const MAX_REPORTED: usize = 10_000;

/// An import as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredImport {
    pub id: i64,
    pub collection: String,
    pub format: String,
    pub mode: String,
    /// queued, running, completed, rejected, failed or cancelled.
    pub state: String,
    pub requested_by: Option<i64>,
    pub job_id: Option<i64>,
    pub bytes: i64,
    pub sha256: String,
    pub progress: Option<Json>,
    pub rows_total: Option<i64>,
    pub rows_imported: Option<i64>,
    pub rows_failed: Option<i64>,
    /// Why the import failed as a whole (not row problems: see the report).
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "i.id, i.collection, i.format, i.mode, i.requested_by, i.job_id, i.bytes, \
                       i.sha256, j.progress, i.rows_total, i.rows_imported, i.rows_failed, \
                       j.last_error, i.created_at, i.finished_at, i.outcome, j.state";

fn stored(r: &tokio_postgres::Row) -> StoredImport {
    let outcome: Option<String> = r.get(15);
    let job_state: Option<String> = r.get(16);
    let state = match (outcome.as_deref(), job_state.as_deref()) {
        (Some(o), _) => o.to_string(),
        (None, Some(s @ ("queued" | "running" | "cancelled"))) => s.to_string(),
        (None, _) => "failed".to_string(),
    };
    StoredImport {
        id: r.get(0),
        collection: r.get(1),
        format: r.get(2),
        mode: r.get(3),
        requested_by: r.get(4),
        job_id: r.get(5),
        bytes: r.get(6),
        sha256: r.get(7),
        progress: r.get(8),
        rows_total: r.get(9),
        rows_imported: r.get(10),
        rows_failed: r.get(11),
        error: if state == "failed" { r.get(12) } else { None },
        created_at: r.get(13),
        finished_at: r.get(14),
        state,
    }
}

/// Creates an import and its job (in the caller's transaction); the caller
/// then writes the file with [`add_chunk`] and [`set_file`].
pub async fn create(
    tx: &Transaction<'_>,
    collection: &str,
    format: Format,
    mode: Mode,
    requested_by: i64,
    request_id: &str,
) -> Result<i64, tokio_postgres::Error> {
    let job_id = queue::enqueue(
        tx,
        Kind::Import,
        &json!({ "collection": collection }),
        Some(requested_by),
        Some(request_id),
    )
    .await?;
    let row = Sql::query_one(
        &tx,
        "INSERT INTO imports (job_id, collection, format, mode, requested_by, bytes, sha256) \
             VALUES ($1, $2, $3, $4, $5, 0, '') RETURNING id",
        &[
            &job_id,
            &collection,
            &format.as_str(),
            &mode.as_str(),
            &requested_by,
        ],
    )
    .await?;
    Ok(row.get(0))
}

pub async fn add_chunk(
    tx: &Transaction<'_>,
    import: i64,
    seq: i32,
    data: &[u8],
) -> Result<(), tokio_postgres::Error> {
    Sql::execute(
        &tx,
        "INSERT INTO import_chunks (import_id, seq, data) VALUES ($1, $2, $3)",
        &[&import, &seq, &data],
    )
    .await
    .map(|_| ())
}

pub async fn set_file(
    tx: &Transaction<'_>,
    import: i64,
    bytes: i64,
    sha256: &str,
) -> Result<(), tokio_postgres::Error> {
    Sql::execute(
        &tx,
        "UPDATE imports SET bytes = $2, sha256 = $3 WHERE id = $1",
        &[&import, &bytes, &sha256],
    )
    .await
    .map(|_| ())
}

pub async fn get<C: Sql>(
    client: &C,
    id: i64,
) -> Result<Option<StoredImport>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM imports i LEFT JOIN jobs j ON j.id = i.job_id \
                 WHERE i.id = $1"
            ),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(stored))
}

/// Imports, newest first: one person's, or everyone's (`None`).
pub async fn list<C: Sql>(
    client: &C,
    requested_by: Option<i64>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredImport>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM imports i LEFT JOIN jobs j ON j.id = i.job_id \
                 WHERE ($1::bigint IS NULL OR i.requested_by = $1) \
                   AND ($2::bigint IS NULL OR i.id < $2) \
                 ORDER BY i.id DESC LIMIT $3"
            ),
            &[&requested_by, &before, &limit],
        )
        .await?;
    Ok(rows.iter().map(stored).collect())
}

/// The report: every problem kept, in line order.
pub async fn problems<C: Sql>(
    client: &C,
    id: i64,
) -> Result<Vec<RowProblem>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT line, field, message FROM import_errors WHERE import_id = $1 ORDER BY n",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RowProblem {
            line: r.get::<_, i64>(0) as u64,
            field: r.get(1),
            message: r.get(2),
        })
        .collect())
}

/// Forgets finished imports (and their reports) older than `keep`.
pub async fn purge<C: Sql>(
    client: &C,
    keep: std::time::Duration,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM imports WHERE finished_at < now() - $1::bigint * interval '1 second'",
            &[&(keep.as_secs() as i64)],
        )
        .await
}

/// What the job has read so far.
#[derive(Default)]
struct Tally {
    rows: i64,
    imported: i64,
    failed: i64,
    problems: Vec<RowProblem>,
}

impl Tally {
    fn fail(&mut self, problems: Vec<RowProblem>) {
        self.failed += 1;
        for p in problems {
            if self.problems.len() < MAX_REPORTED {
                self.problems.push(p);
            }
        }
    }
}

fn file_error(e: FileError) -> JobError {
    JobError::Permanent(format!("the file cannot be imported: {e}"))
}

/// The `import` kind's handler.
pub struct ImportHandler(pub Arc<Services>);

impl Handler for ImportHandler {
    fn run<'a>(&'a self, ctx: &'a JobCtx) -> JobRun<'a> {
        Box::pin(run(ctx, &self.0))
    }
}

async fn run(ctx: &JobCtx, services: &Services) -> Result<(), JobError> {
    let mut writer = ctx.pool.get().await?;
    let Some(found) = writer
        .query_opt(
            "SELECT i.id, i.collection, i.format, i.mode, i.requested_by, u.username, \
                    i.finished_at IS NOT NULL, i.bytes \
             FROM imports i LEFT JOIN users u ON u.id = i.requested_by WHERE i.job_id = $1",
            &[&ctx.job.id],
        )
        .await?
    else {
        return Err(JobError::Permanent(
            "the import was deleted before it ran".to_string(),
        ));
    };
    let import_id: i64 = found.get(0);
    let name: String = found.get(1);
    if found.get::<_, bool>(6) {
        return Ok(());
    }
    let format = Format::parse(found.get(2))
        .ok_or_else(|| JobError::Permanent("unknown file format".to_string()))?;
    let mode = Mode::parse(found.get(3))
        .ok_or_else(|| JobError::Permanent("unknown import mode".to_string()))?;
    let user: i64 = found.get::<_, Option<i64>>(4).ok_or_else(|| {
        JobError::Permanent("the person who asked for the import no longer exists".to_string())
    })?;
    let total_bytes: i64 = found.get(7);
    let audit_ctx = audit::Context {
        actor_id: Some(user),
        actor: found
            .get::<_, Option<String>>(5)
            .unwrap_or_else(|| "system".to_string()),
        client_addr: String::new(),
        request_id: ctx.job.request_id.clone().unwrap_or_default(),
    };
    let collection = crate::records::collection(&**writer, &name)
        .await?
        .ok_or_else(|| JobError::Permanent(format!("the collection {name:?} no longer exists")))?;

    let reader = ctx.pool.get().await?;
    let mut tx = writer.transaction().await?;
    let mut file = Reader::new(&collection, format);
    let mut tally = Tally::default();
    let mut read = 0i64;
    let mut seq = 0i32;
    loop {
        ctx.check()?;
        let chunk = reader
            .query_opt(
                "SELECT data FROM import_chunks WHERE import_id = $1 AND seq = $2",
                &[&import_id, &seq],
            )
            .await?;
        let mut rows = Vec::new();
        let Some(chunk) = chunk else {
            file.finish(&mut rows).map_err(file_error)?;
            insert(&mut tx, &collection, rows, user, &mut tally).await?;
            break;
        };
        let data: Vec<u8> = chunk.get(0);
        file.feed(&data, &mut rows).map_err(file_error)?;
        read += data.len() as i64;
        seq += 1;
        insert(&mut tx, &collection, rows, user, &mut tally).await?;
        ctx.progress(&json!({
            "rows": tally.rows,
            "imported": tally.imported,
            "failed": tally.failed,
            "bytes": read,
            "of_bytes": total_bytes,
        }))
        .await?;
    }
    drop(reader);

    let rejected = mode == Mode::AllOrNothing && tally.failed > 0;
    let (tx, outcome) = if rejected {
        tx.rollback().await?;
        tally.imported = 0;
        (writer.transaction().await?, "rejected")
    } else {
        (tx, "completed")
    };
    finish(
        (ctx, services),
        tx,
        import_id,
        &name,
        format,
        mode,
        &tally,
        outcome,
        &audit_ctx,
    )
    .await
}

/// Inserts a piece's rows: problems found without writing are recorded,
/// the valid rows go in under one savepoint per batch.
async fn insert(
    tx: &mut Transaction<'_>,
    c: &Collection,
    rows: Vec<Row>,
    user: i64,
    tally: &mut Tally,
) -> Result<(), JobError> {
    let mut valid: Vec<(u64, Map<String, Json>)> = Vec::new();
    for row in rows {
        tally.rows += 1;
        match row.data {
            Err(problems) => tally.fail(problems),
            Ok(data) => match store::cells(c, &data, false) {
                Ok(_) => valid.push((row.line, data)),
                Err(WriteError::Invalid(fields)) => tally.fail(
                    fields
                        .into_iter()
                        .map(|f| RowProblem {
                            line: row.line,
                            field: Some(f.field),
                            message: f.message,
                        })
                        .collect(),
                ),
                Err(e) => return Err(JobError::Transient(e.to_string())),
            },
        }
    }
    // One statement per batch, its parameters well under PostgreSQL's limit.
    let batch_rows = (30_000 / (c.fields.len() + 1)).clamp(1, BATCH);
    for batch in valid.chunks(batch_rows) {
        let all_in = {
            let sp = tx.savepoint("import_batch").await?;
            let rows: Vec<&Map<String, Json>> = batch.iter().map(|(_, data)| data).collect();
            match store::insert_many(&sp, c, &rows, user).await {
                Ok(_) => {
                    sp.commit().await?;
                    true
                }
                Err(_) => {
                    sp.rollback().await?;
                    false
                }
            }
        };
        if all_in {
            tally.imported += batch.len() as i64;
            continue;
        }
        // One by one, to find the rows the database refuses.
        for (line, data) in batch {
            let sp = tx.savepoint("import_row").await?;
            match store::insert(&sp, c, data, user).await {
                Ok(_) => {
                    sp.commit().await?;
                    tally.imported += 1;
                }
                Err(WriteError::Duplicate(field)) => {
                    sp.rollback().await?;
                    tally.fail(vec![RowProblem {
                        line: *line,
                        field: Some(field),
                        message: "another record (or an earlier row) already has this value in \
                                  this unique field"
                            .to_string(),
                    }]);
                }
                Err(WriteError::Db(e)) if e.code().is_some_and(|c| c.code().starts_with("22")) => {
                    sp.rollback().await?;
                    tally.fail(vec![RowProblem {
                        line: *line,
                        field: None,
                        message: crate::db::describe_pg_error(&e),
                    }]);
                }
                Err(WriteError::Db(e)) => return Err(JobError::from(e)),
                Err(e) => return Err(JobError::Transient(e.to_string())),
            }
        }
    }
    Ok(())
}

/// Marks the import finished — in the transaction holding its rows — with
/// the report, the audit entry and the webhook event, if the job is still
/// this attempt's.
#[allow(clippy::too_many_arguments)]
async fn finish(
    (ctx, services): (&JobCtx, &Services),
    tx: deadpool_postgres::Transaction<'_>,
    import_id: i64,
    collection: &str,
    format: Format,
    mode: Mode,
    tally: &Tally,
    outcome: &str,
    audit_ctx: &audit::Context,
) -> Result<(), JobError> {
    ctx.check()?;
    ctx.hold(&*tx).await?;
    let ns: Vec<i32> = (1..=tally.problems.len() as i32).collect();
    let lines: Vec<i64> = tally.problems.iter().map(|p| p.line as i64).collect();
    let fields: Vec<Option<&str>> = tally.problems.iter().map(|p| p.field.as_deref()).collect();
    let messages: Vec<&str> = tally.problems.iter().map(|p| p.message.as_str()).collect();
    tx.execute(
        "INSERT INTO import_errors (import_id, n, line, field, message) \
         SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::text[], $5::text[])",
        &[&import_id, &ns, &lines, &fields, &messages],
    )
    .await?;
    let marked = tx
        .execute(
            "UPDATE imports SET outcome = $2, rows_total = $3, rows_imported = $4, \
                    rows_failed = $5, finished_at = now() \
             WHERE id = $1 AND finished_at IS NULL",
            &[
                &import_id,
                &outcome,
                &tally.rows,
                &tally.imported,
                &tally.failed,
            ],
        )
        .await?;
    if marked != 1 {
        return Ok(());
    }
    tx.execute(
        "DELETE FROM import_chunks WHERE import_id = $1",
        &[&import_id],
    )
    .await?;
    let details = json!({
        "import_id": import_id,
        "collection": collection,
        "format": format.as_str(),
        "mode": mode.as_str(),
        "outcome": outcome,
        "rows": tally.rows,
        "imported": tally.imported,
        "failed": tally.failed,
    });
    audit::append(
        &tx,
        audit_ctx,
        &Event::new(
            "import.done",
            format!("import:{import_id}"),
            if outcome == "completed" {
                Outcome::Success
            } else {
                Outcome::Failure
            },
        )
        .details(details.clone()),
    )
    .await
    .map_err(|e| match e {
        audit::AuditError::Db(e) => JobError::from(e),
    })?;
    let mut event = details;
    event["requested_by"] = json!(audit_ctx.actor_id);
    event["url"] = json!(format!("/api/v1/imports/{import_id}"));
    crate::webhooks::emit(
        &tx,
        crate::webhooks::EventType::ImportCompleted,
        collection,
        event,
        ctx.job.request_id.as_deref(),
        services.webhooks.max_attempts,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
