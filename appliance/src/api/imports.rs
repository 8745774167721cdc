//! Bulk imports of CSV and NDJSON files (`records:write`): the file is the
//! request body of `POST /api/v1/collections/{collection}/imports`
//! (`format`, `mode`), stored in PostgreSQL as it arrives (1 MiB chunks,
//! at most `jobs.import_max_mb`), and imported by a job
//! (`crate::jobs::import`). A CSV header naming no field of the collection
//! is refused at once. Imports are their requester's (admins see all); the
//! report of invalid rows is `GET /api/v1/imports/{id}/errors.csv`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use ring::digest;
use serde::Deserialize;
use serde_json::json;

use super::support::load;
use super::{invalid_field, page_limit, parse_id, Api, ApiQuery, Ctx, Method};
use crate::app::AppState;
use crate::audit::{Event, Outcome};
use crate::authz::{Access, Permission, Principal, Role};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::jobs::import::{self as stored, StoredImport};
use crate::records::import::{Format, Mode, Reader};

/// Bytes per stored chunk of the file.
const CHUNK_BYTES: usize = 1024 * 1024;
/// How long an upload may stall before it is given up.
const UPLOAD_STALL: Duration = Duration::from_secs(60);

pub fn routes(api: Api) -> Api {
    let write = Access::Permission(Permission::RecordsWrite);
    api.route(
        Method::Post,
        "/api/v1/collections/{collection}/imports",
        write,
        upload,
    )
    .route(Method::Get, "/api/v1/imports", write, list)
    .route(Method::Get, "/api/v1/imports/{id}", write, get_one)
    .route(
        Method::Get,
        "/api/v1/imports/{id}/errors.csv",
        write,
        report,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    format: Option<String>,
    mode: Option<String>,
}

fn no_import(id: i64) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no import with id {id}"))
}

/// The format named, or the one the body's media type says.
fn format_of(q: &UploadQuery, headers: &HeaderMap) -> Result<Format, ErrorBody> {
    if let Some(f) = &q.format {
        return Format::parse(f).ok_or_else(|| invalid_field("format", "csv or ndjson"));
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media.as_str() {
        "text/csv" => Ok(Format::Csv),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Ok(Format::Ndjson),
        _ => Err(invalid_field(
            "format",
            "name the file's format: ?format=csv or ?format=ndjson (or send Content-Type \
             text/csv or application/x-ndjson)",
        )),
    }
}

async fn upload(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let format = format_of(&q, &headers)?;
    // Each upload holds a connection while the file arrives: at most a
    // quarter of the pool, so slow senders cannot starve the API.
    let _permit = state.imports.clone().try_acquire_owned().map_err(|_| {
        ErrorBody::new(
            ErrorCode::ImportsBusy,
            "this server is already receiving as many import files as it allows; try again \
             when one has been received",
        )
        .retry_after(10)
    })?;
    let mode = match q.mode.as_deref() {
        None => Mode::AllOrNothing,
        Some(m) => {
            Mode::parse(m).ok_or_else(|| invalid_field("mode", "all_or_nothing or skip_invalid"))?
        }
    };
    let mut client = state.pool.get().await?;
    let collection = load(&**client, &name).await?;
    let tx = client.transaction().await?;
    let id = stored::create(&tx, &name, format, mode, principal.user_id, &ctx.request_id).await?;

    // The file, as it arrives: stored in chunks, hashed, and (CSV) its
    // header checked as soon as it is complete.
    let mut header_check = (format == Format::Csv).then(|| Reader::new(&collection, format));
    let mut stream = body.into_data_stream();
    let mut hash = digest::Context::new(&digest::SHA256);
    let mut pending: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
    let (mut seq, mut total) = (0i32, 0usize);
    loop {
        let next = tokio::time::timeout(UPLOAD_STALL, stream.next())
            .await
            .map_err(|_| {
                ErrorBody::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "the upload stalled for {} s; send the file again",
                        UPLOAD_STALL.as_secs()
                    ),
                )
            })?;
        let Some(piece) = next else { break };
        let piece = piece.map_err(|e| {
            ErrorBody::new(
                ErrorCode::InvalidRequest,
                format!("the upload was cut off ({e}); send the file again"),
            )
        })?;
        total += piece.len();
        if total > state.body_limits.import {
            return Err(ErrorBody::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the file is larger than the {} MiB an import may be \
                     (jobs.import_max_mb); split it",
                    state.body_limits.import / (1024 * 1024)
                ),
            ));
        }
        hash.update(&piece);
        if let Some(reader) = header_check.as_mut() {
            let mut rows = Vec::new();
            reader
                .feed(&piece, &mut rows)
                .map_err(|e| invalid_field("file", e.to_string()))?;
            if reader.has_header() {
                header_check = None;
            }
        }
        pending.extend_from_slice(&piece);
        while pending.len() >= CHUNK_BYTES {
            let rest = pending.split_off(CHUNK_BYTES);
            stored::add_chunk(&tx, id, seq, &pending).await?;
            seq += 1;
            pending = rest;
        }
    }
    if !pending.is_empty() {
        stored::add_chunk(&tx, id, seq, &pending).await?;
    }
    if total == 0 {
        return Err(invalid_field(
            "file",
            "the file is empty; send it as the request body",
        ));
    }
    if let Some(mut reader) = header_check {
        reader
            .finish(&mut Vec::new())
            .map_err(|e| invalid_field("file", e.to_string()))?;
    }
    let sha256: String = hash
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    stored::set_file(&tx, id, total as i64, &sha256).await?;
    let import = stored::get(&*tx, id).await?.ok_or_else(|| no_import(id))?;
    ctx.audit_event(
        &tx,
        &Event::new("import.create", format!("import:{id}"), Outcome::Success).details(json!({
            "import_id": id,
            "job_id": import.job_id,
            "collection": name,
            "format": format.as_str(),
            "mode": mode.as_str(),
            "bytes": total,
            "sha256": sha256,
        })),
    )
    .await?;
    tx.commit().await?;
    let mut response = (StatusCode::ACCEPTED, Json(json!(import))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/imports/{id}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

fn visible(principal: &Principal, import: &StoredImport) -> bool {
    principal.role == Role::Admin || import.requested_by == Some(principal.user_id)
}

fn with_links(import: &StoredImport) -> serde_json::Value {
    let mut body = json!(import);
    if import.rows_failed.unwrap_or(0) > 0 {
        body["errors_url"] = json!(format!("/api/v1/imports/{}/errors.csv", import.id));
    }
    body
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<serde_json::Value>, ErrorBody> {
    let principal = ctx.principal()?;
    let limit = page_limit(q.limit)?;
    let client = state.pool.get().await?;
    let mine = (principal.role != Role::Admin).then_some(principal.user_id);
    let items = stored::list(&**client, mine, q.before, limit).await?;
    let next_before = (items.len() as i64 == limit)
        .then(|| items.last().map(|i| i.id))
        .flatten();
    let items: Vec<_> = items.iter().map(with_links).collect();
    Ok(Json(json!({ "items": items, "next_before": next_before })))
}

async fn find_visible(
    state: &AppState,
    principal: &Principal,
    raw_id: &str,
) -> Result<StoredImport, ErrorBody> {
    let id = parse_id(raw_id, "import")?;
    let client = state.pool.get().await?;
    match stored::get(&**client, id).await? {
        Some(i) if visible(principal, &i) => Ok(i),
        _ => Err(no_import(id)),
    }
}

async fn get_one(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ErrorBody> {
    let principal = ctx.principal()?;
    let import = find_visible(&state, principal, &id).await?;
    Ok(Json(with_links(&import)))
}

/// One CSV value, quoted when it needs to be.
fn csv_value(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

async fn report(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let import = find_visible(&state, principal, &id).await?;
    let client = state.pool.get().await?;
    let problems = stored::problems(&**client, import.id).await?;
    let mut out = String::from("line,field,message\r\n");
    for p in &problems {
        out.push_str(&p.line.to_string());
        out.push(',');
        csv_value(&mut out, p.field.as_deref().unwrap_or(""));
        out.push(',');
        // A message starting like a formula is still text in a spreadsheet.
        let message = if p.message.starts_with(['=', '+', '-', '@']) {
            format!("'{}", p.message)
        } else {
            p.message.clone()
        };
        csv_value(&mut out, &message);
        out.push_str("\r\n");
    }
    let mut response = out.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"import-{}-errors.csv\"",
        import.id
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
