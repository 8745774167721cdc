//! Records exported as CSV and streamed in the response, for interactive
//! use: `GET /api/v1/collections/{collection}/export.csv` with the listing's
//! `filter`, `sort` and `fields`.
//!
//! The rows come from one read-only transaction through a portal, 1,000 at a
//! time (each fetch under the statement timeout), are encoded into 64 KiB
//! chunks and handed to the response through a channel of four: memory stays
//! constant however many rows there are. A client that stops reading for a
//! minute, or goes away, ends the export and frees its database connection;
//! a failure after the first bytes aborts the response, so a cut-off file is
//! never a complete-looking one. Each export is audited when it starts
//! (`record.export`: who, collection, filter, sort, fields) and when it ends
//! (`record.export.done`: rows written, complete or why not).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::collections::load;
use super::{invalid_field, Api, ApiQuery, Ctx, Method};
use crate::audit::{Event, Outcome};
use crate::authz::{Access, Permission};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::http::AppState;
use crate::records::export::{self, Export, Formulas};
use crate::records::filter::{self, Filter, Limits};
use crate::records::query::{self, QueryError, SortKey};
use crate::records::{Collection, Field};

/// Rows fetched from the portal at a time.
const BATCH_ROWS: i32 = 1000;
/// Bytes encoded before they are handed to the response.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting for the client at most.
const CHUNKS_IN_FLIGHT: usize = 4;
/// How long a client may stop reading before the export gives up.
const CLIENT_STALL: Duration = Duration::from_secs(60);

pub fn routes(api: Api) -> Api {
    api.route(
        Method::Get,
        "/api/v1/collections/{collection}/export.csv",
        Access::Permission(Permission::RecordsExport),
        stream_csv,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    filter: Option<String>,
    sort: Option<String>,
    fields: Option<String>,
    formulas: Option<String>,
}

/// What one export reads, owned by the task that streams it.
struct Plan {
    collection: Collection,
    fields: Option<Vec<String>>,
    filter: Option<Filter>,
    sort: Vec<SortKey>,
    formulas: Formulas,
}

impl Plan {
    fn export(&self) -> Export<'_> {
        let fields: Vec<&Field> = match &self.fields {
            Some(names) => names
                .iter()
                .filter_map(|n| self.collection.field(n))
                .collect(),
            None => self.collection.fields.iter().collect(),
        };
        Export {
            collection: &self.collection,
            fields,
            filter: self.filter.as_ref(),
            sort: &self.sort,
            formulas: self.formulas,
        }
    }
}

async fn stream_csv(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ErrorBody> {
    let permit = state.exports.clone().try_acquire_owned().map_err(|_| {
        ErrorBody::new(
            ErrorCode::ExportsBusy,
            "this server is already streaming as many exports as it allows; try again when one \
             has finished",
        )
        .retry_after(10)
    })?;
    let mut client = state.pool.get().await?;
    let collection = load(&**client, &name).await?;
    let filter = match q.filter.as_deref().filter(|f| !f.is_empty()) {
        Some(text) => Some(
            filter::parse(text, &collection.filter_fields(), Limits::default())
                .map_err(QueryError::from)?,
        ),
        None => None,
    };
    let formulas = match q.formulas.as_deref() {
        None | Some("neutralise") => Formulas::Neutralise,
        Some("keep") => Formulas::Keep,
        Some(_) => return Err(invalid_field("formulas", "expected neutralise or keep")),
    };
    let plan = Plan {
        sort: query::parse_sort(&collection, q.sort.as_deref())?,
        fields: query::parse_fields(&collection, q.fields.as_deref())?,
        collection,
        filter,
        formulas,
    };
    let tx = client.transaction().await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "record.export",
            format!("collection:{name}"),
            Outcome::Success,
        )
        .details(json!({
            "collection": name,
            "format": "csv",
            "filter": q.filter.unwrap_or_default(),
            "sort": q.sort.unwrap_or_default(),
            "fields": plan.export().fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            "formulas": if formulas == Formulas::Keep { "keep" } else { "neutralise" },
        })),
    )
    .await?;
    tx.commit().await?;

    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::spawn(produce(client, plan, sender, ctx, permit));
    let mut response = Body::new(Chunks(receiver)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    let stamp = time::OffsetDateTime::now_utc();
    // The name is a checked collection name: letters, digits, underscores.
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{name}-{:04}{:02}{:02}-{:02}{:02}{:02}.csv\"",
        stamp.year(),
        u8::from(stamp.month()),
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Why an export stopped before its last row.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error("the client went away")]
    ClientGone,
    #[error("the client stopped reading for {} s", CLIENT_STALL.as_secs())]
    ClientStalled,
    #[error("database: {}", crate::db::describe_pg_error(.0))]
    Db(#[from] tokio_postgres::Error),
}

type Sender = mpsc::Sender<Result<Bytes, io::Error>>;

async fn produce(
    mut client: deadpool_postgres::Client,
    plan: Plan,
    sender: Sender,
    ctx: Ctx,
    _permit: OwnedSemaphorePermit,
) {
    let mut rows = 0u64;
    let result = write_all(&mut client, &plan.export(), &sender, &mut rows).await;
    let (outcome, reason) = match &result {
        Ok(()) => (Outcome::Success, None),
        Err(stopped) => {
            if matches!(stopped, Stopped::Db(_)) {
                tracing::warn!(error = %stopped, rows, "a streamed export failed");
            }
            // Ends the response without its last chunk: the client sees an
            // incomplete transfer, never a shorter file that looks whole.
            let _ = sender
                .send(Err(io::Error::other("the export failed")))
                .await;
            (Outcome::Failure, Some(stopped.to_string()))
        }
    };
    drop(sender);
    let name = &plan.collection.name;
    let event =
        Event::new("record.export.done", format!("collection:{name}"), outcome).details(json!({
            "collection": name,
            "format": "csv",
            "rows": rows,
            "complete": result.is_ok(),
            "reason": reason,
        }));
    let audited = async {
        let tx = client.transaction().await?;
        ctx.audit_event(&tx, &event).await?;
        tx.commit().await?;
        Ok::<_, ErrorBody>(())
    };
    if audited.await.is_err() {
        tracing::error!(collection = %name, rows, "could not audit the end of an export");
    }
}

async fn write_all(
    client: &mut deadpool_postgres::Client,
    export: &Export<'_>,
    sender: &Sender,
    rows: &mut u64,
) -> Result<(), Stopped> {
    let tx = client.build_transaction().read_only(true).start().await?;
    // Values as COPY writes them, whatever the server's defaults.
    tx.batch_execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'")
        .await?;
    let (sql, values) = export.statement();
    let statement = tx.prepare(&sql).await?;
    let portal = tx.bind(&statement, &export::params(&values)).await?;
    let neutralise = export.neutralised_columns();
    let mut chunk = Vec::with_capacity(CHUNK_BYTES + 8 * 1024);
    export.header(&mut chunk);
    loop {
        let batch = tx.query_portal(&portal, BATCH_ROWS).await?;
        let mut cells: Vec<Option<&str>> = Vec::new();
        for row in &batch {
            cells.clear();
            for i in 0..row.len() {
                cells.push(row.try_get(i)?);
            }
            export::write_record(&mut chunk, &cells, &neutralise);
            *rows += 1;
            if chunk.len() >= CHUNK_BYTES {
                send(sender, &mut chunk).await?;
            }
        }
        if batch.len() < BATCH_ROWS as usize {
            break;
        }
    }
    send(sender, &mut chunk).await?;
    tx.commit().await?;
    Ok(())
}

async fn send(sender: &Sender, chunk: &mut Vec<u8>) -> Result<(), Stopped> {
    if chunk.is_empty() {
        return Ok(());
    }
    let bytes = Bytes::from(std::mem::replace(
        chunk,
        Vec::with_capacity(CHUNK_BYTES + 8 * 1024),
    ));
    match tokio::time::timeout(CLIENT_STALL, sender.send(Ok(bytes))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Stopped::ClientGone),
        Err(_) => Err(Stopped::ClientStalled),
    }
}

/// The response body: the chunks as the export task sends them.
struct Chunks(mpsc::Receiver<Result<Bytes, io::Error>>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }
}
