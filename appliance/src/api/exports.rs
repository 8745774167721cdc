//! Records exported as CSV: streamed in the response for interactive use
//! (`GET /api/v1/collections/{collection}/export.csv` with the listing's
//! `filter`, `sort` and `fields`), or as a background job whose file is
//! stored in PostgreSQL and downloaded through an expiring link
//! (`POST …/exports`, `GET /api/v1/exports/{id}`, `…/download`;
//! `crate::jobs::export` writes the file).
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
use axum::Json;
use http_body::Frame;
use serde_json::json;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::support::load;
use super::{invalid_field, page_limit, parse_id, Api, ApiJson, ApiQuery, Ctx, Method};
use crate::app::AppState;
use crate::audit::{Event, Outcome};
use crate::authz::{Access, Permission, Principal, Role};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::jobs::export::{self as stored, StoredExport};
use crate::records::export::{self, Export, Plan, PlanError};

/// Bytes encoded before they are handed to the response.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting for the client at most.
const CHUNKS_IN_FLIGHT: usize = 4;
/// How long a client may stop reading before the export gives up.
const CLIENT_STALL: Duration = Duration::from_secs(60);

/// How long a download link stays valid.
const LINK_VALIDITY: Duration = Duration::from_secs(15 * 60);

pub fn routes(api: Api) -> Api {
    let export = Access::Permission(Permission::RecordsExport);
    api.route(
        Method::Get,
        "/api/v1/collections/{collection}/export.csv",
        export,
        stream_csv,
    )
    .route(
        Method::Post,
        "/api/v1/collections/{collection}/exports",
        export,
        create_stored,
    )
    .route(Method::Get, "/api/v1/exports", export, list_stored)
    .route(Method::Get, "/api/v1/exports/{id}", export, get_stored)
    .route(
        Method::Delete,
        "/api/v1/exports/{id}",
        export,
        delete_stored,
    )
    .route(
        Method::Get,
        "/api/v1/exports/{id}/download",
        export,
        download,
    )
}

async fn stream_csv(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<export::Request>,
) -> Result<Response, ErrorBody> {
    let query = super::support::query_permit(&state, &ctx)?;
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
    let plan = Plan::new(collection, &q)?;
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
            "formulas": plan.formulas.as_str(),
        })),
    )
    .await?;
    tx.commit().await?;

    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::spawn(produce(client, plan, sender, ctx, (permit, query)));
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

impl From<PlanError> for ErrorBody {
    fn from(e: PlanError) -> ErrorBody {
        match e {
            PlanError::Query(q) => q.into(),
            PlanError::Formulas => invalid_field("formulas", "expected neutralise or keep"),
        }
    }
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
    _permits: (OwnedSemaphorePermit, crate::http::query_limit::Permit),
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
    export
        .write(&tx, CHUNK_BYTES, rows, &mut ToClient(sender))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The response's side of the channel.
struct ToClient<'a>(&'a Sender);

impl export::Sink for ToClient<'_> {
    type Error = Stopped;

    async fn flush(&mut self, chunk: &mut Vec<u8>, _rows: u64) -> Result<(), Stopped> {
        if chunk.is_empty() {
            return Ok(());
        }
        let bytes = Bytes::from(std::mem::replace(
            chunk,
            Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 8),
        ));
        match tokio::time::timeout(CLIENT_STALL, self.0.send(Ok(bytes))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stopped::ClientGone),
            Err(_) => Err(Stopped::ClientStalled),
        }
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

// Stored exports: jobs whose file any replica serves.

/// An export is its requester's; admins see every export.
fn visible(principal: &Principal, export: &StoredExport) -> bool {
    principal.role == Role::Admin || export.requested_by == Some(principal.user_id)
}

fn no_export(id: i64) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::NotFound,
        format!("no export with id {id}; GET /api/v1/exports lists yours"),
    )
}

/// The export's JSON, with a fresh download link when it is ready.
fn with_link(state: &AppState, principal: &Principal, export: &StoredExport) -> serde_json::Value {
    let mut body = json!(export);
    if export.state == "ready" {
        let until =
            time::OffsetDateTime::now_utc().unix_timestamp() + LINK_VALIDITY.as_secs() as i64;
        let link = state.keys.seal_cursor(
            &link_purpose(export.id, principal.user_id),
            &until.to_string(),
        );
        body["download_url"] = json!(format!(
            "/api/v1/exports/{}/download?link={}",
            export.id,
            crate::http::percent_encode(&link)
        ));
        body["download_url_expires_at"] = json!(until);
    }
    body
}

/// A link is for one export and one person.
fn link_purpose(export: i64, user: i64) -> String {
    format!("export-download:{export}:{user}")
}

async fn create_stored(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<export::Request>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?.clone();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let collection = load(&*tx, &name).await?;
    // Refused now if it cannot run: the job plans it again when it starts.
    let plan = Plan::new(collection, &request)?;
    // Each export is a copy of its records in the database: a bound per
    // person keeps one account from filling it.
    if stored::kept_by(&tx, principal.user_id).await? >= stored::PER_PERSON {
        return Err(ErrorBody::new(
            ErrorCode::TooManyExports,
            format!(
                "you already keep {} exports, the most one person may; delete some you no longer \
                 need (Exports page, or DELETE /api/v1/exports/{{id}}) or wait until they expire",
                stored::PER_PERSON
            ),
        ));
    }
    let fields: Vec<String> = plan
        .export()
        .fields
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let created = stored::create(
        &tx,
        &name,
        &request,
        principal.user_id,
        &ctx.request_id,
        state.export_retention,
    )
    .await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "export.create",
            format!("export:{}", created.id),
            Outcome::Success,
        )
        .details(json!({
            "export_id": created.id,
            "job_id": created.job_id,
            "collection": name,
            "format": "csv",
            "filter": request.filter.clone().unwrap_or_default(),
            "sort": request.sort.clone().unwrap_or_default(),
            "fields": fields,
            "formulas": plan.formulas.as_str(),
        })),
    )
    .await?;
    tx.commit().await?;
    let mut response = (
        axum::http::StatusCode::ACCEPTED,
        Json(with_link(&state, &principal, &created)),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/exports/{}", created.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListExports {
    limit: Option<i64>,
}

async fn list_stored(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListExports>,
) -> Result<Json<serde_json::Value>, ErrorBody> {
    let principal = ctx.principal()?;
    let limit = page_limit(q.limit)?;
    let client = state.pool.get().await?;
    let mine = (principal.role != Role::Admin).then_some(principal.user_id);
    let items: Vec<serde_json::Value> = stored::list(&**client, mine, limit)
        .await?
        .iter()
        .map(|e| with_link(&state, principal, e))
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn find_visible(
    state: &AppState,
    principal: &Principal,
    raw_id: &str,
) -> Result<StoredExport, ErrorBody> {
    let id = parse_id(raw_id, "export")?;
    let client = state.pool.get().await?;
    match stored::get(&**client, id).await? {
        Some(e) if visible(principal, &e) => Ok(e),
        _ => Err(no_export(id)),
    }
}

async fn get_stored(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ErrorBody> {
    let principal = ctx.principal()?;
    let export = find_visible(&state, principal, &id).await?;
    Ok(Json(with_link(&state, principal, &export)))
}

async fn delete_stored(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let export = find_visible(&state, principal, &id).await?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    stored::delete(&tx, &export).await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "export.delete",
            format!("export:{}", export.id),
            Outcome::Success,
        )
        .details(json!({ "export_id": export.id, "collection": export.collection, "state": export.state })),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadQuery {
    link: Option<String>,
}

async fn download(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DownloadQuery>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?.clone();
    let export = find_visible(&state, &principal, &id).await?;
    // A download holds a database connection while it runs, as a streamed
    // export does: they share the same limit.
    let permit = state.exports.clone().try_acquire_owned().map_err(|_| {
        ErrorBody::new(
            ErrorCode::ExportsBusy,
            "this server is already sending as many exports as it allows; try again when one \
             has finished",
        )
        .retry_after(10)
    })?;
    let valid_until = q
        .link
        .as_deref()
        .and_then(|link| {
            state
                .keys
                .open_cursor(&link_purpose(export.id, principal.user_id), link)
        })
        .and_then(|until| until.parse::<i64>().ok());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if valid_until.is_none_or(|until| until <= now) {
        return Err(ErrorBody::new(
            ErrorCode::InvalidLink,
            "this download link is not valid for you or has expired (links last 15 minutes); \
             open the export again (GET /api/v1/exports/{id}) for a new link",
        ));
    }
    if export.state != "ready" {
        return Err(ErrorBody::new(
            ErrorCode::Conflict,
            format!(
                "export {} is {}, not ready; its file can be downloaded once it is",
                export.id, export.state
            ),
        ));
    }
    let mut client = state.pool.get().await?;
    let chunks = stored::chunk_count(&**client, &export).await?;
    let tx = client.transaction().await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "export.download",
            format!("export:{}", export.id),
            Outcome::Success,
        )
        .details(json!({
            "export_id": export.id,
            "collection": export.collection,
            "rows": export.rows,
            "bytes": export.bytes,
        })),
    )
    .await?;
    tx.commit().await?;

    let (sender, receiver) = mpsc::channel(2);
    let file = export.clone();
    tokio::spawn(async move {
        let _permit = permit;
        for seq in 0..chunks {
            let data = match stored::chunk(&**client, &file, seq as i32).await {
                Ok(Some(data)) => Ok(Bytes::from(data)),
                Ok(None) => Err(io::Error::other("a chunk of the export is missing")),
                Err(e) => Err(io::Error::other(crate::db::describe_pg_error(&e))),
            };
            let failed = data.is_err();
            if failed {
                tracing::error!(export = file.id, seq, "cannot read an export's chunk");
            }
            // A client gone, or not reading for a minute, frees the connection.
            let sent = tokio::time::timeout(CLIENT_STALL, sender.send(data)).await;
            if !matches!(sent, Ok(Ok(()))) || failed {
                return;
            }
        }
    });
    let mut response = Body::new(Chunks(receiver)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    if let Some(bytes) = export.bytes {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes as u64));
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-export-{}.csv\"",
        export.collection, export.id
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(hex) = &export.sha256 {
        let raw: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        if let Ok(v) = HeaderValue::from_str(&format!("sha-256=:{b64}:")) {
            headers.insert("repr-digest", v);
        }
    }
    Ok(response)
}
