//! Records of a collection: list (filter, sort, fields, cursor), create,
//! read, update with `If-Match`, delete. Writes are audited with the names
//! of the fields they set, never the values.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json_};

use super::record_changes::Change;
use super::support::load;
use super::{invalid_field, Api, ApiJson, ApiQuery, CollectionPath, Ctx, Method};
use crate::app::AppState;
use crate::authz::{Access, Permission};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::records::filter::{self, Limits};
use crate::records::query::{self, Listing, QueryError};
use crate::records::store::{self, Record, WriteError};
use crate::records::{self, Collection};

pub fn routes(api: Api) -> Api {
    let read = Access::Permission(Permission::RecordsRead);
    let write = Access::Permission(Permission::RecordsWrite);
    api.route(
        Method::Get,
        "/api/v1/collections/{collection}/records",
        read,
        list,
    )
    .route(
        Method::Post,
        "/api/v1/collections/{collection}/records",
        write,
        create,
    )
    .route(
        Method::Get,
        "/api/v1/collections/{collection}/records/{id}",
        read,
        get_one,
    )
    .route(
        Method::Patch,
        "/api/v1/collections/{collection}/records/{id}",
        write,
        update,
    )
    .route(
        Method::Delete,
        "/api/v1/collections/{collection}/records/{id}",
        write,
        delete,
    )
}

impl From<WriteError> for ErrorBody {
    fn from(e: WriteError) -> ErrorBody {
        match e {
            WriteError::Invalid(problems) => {
                let message = problems
                    .iter()
                    .map(|p| format!("`{}`: {}", p.field, p.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                ErrorBody::new(ErrorCode::ValidationFailed, message)
                    .with_details(json!({ "fields": problems }))
            }
            WriteError::Duplicate(field) => ErrorBody::new(
                ErrorCode::DuplicateValue,
                format!("another record already has this value in the unique field {field:?}"),
            )
            .with_details(json!({ "fields": [{ "field": field, "message": "must be unique" }] })),
            WriteError::Stale { expected, current } => ErrorBody::new(
                ErrorCode::PreconditionFailed,
                format!(
                    "the record changed since version {expected} (it is now version {}); merge your \
                     change into the current record and retry with If-Match: \"{}\"",
                    current.version, current.version
                ),
            )
            .with_details(json!({ "current": current })),
            WriteError::NotFound(id) => {
                ErrorBody::new(ErrorCode::NotFound, format!("no record with id {id}"))
            }
            WriteError::Db(e) => e.into(),
        }
    }
}

impl From<QueryError> for ErrorBody {
    fn from(e: QueryError) -> ErrorBody {
        match e {
            QueryError::Filter(f) => ErrorBody::new(ErrorCode::InvalidFilter, f.to_string())
                .with_details(json!({ "rule": f.code(), "path": f.path() })),
            QueryError::Sort(_) | QueryError::Fields(_) => {
                ErrorBody::new(ErrorCode::InvalidSort, e.to_string())
            }
            QueryError::Cursor => ErrorBody::new(ErrorCode::InvalidCursor, e.to_string()),
            QueryError::Limit => invalid_field("limit", e.to_string()),
            QueryError::Count => invalid_field("count", e.to_string()),
            QueryError::Timeout => {
                ErrorBody::new(ErrorCode::QueryTimeout, e.to_string()).retry_after(1)
            }
            QueryError::Db(e) => e.into(),
        }
    }
}

fn record_id(raw: &str) -> Result<i64, ErrorBody> {
    raw.parse::<i64>()
        .map_err(|_| ErrorBody::new(ErrorCode::NotFound, format!("no record with id {raw:?}")))
}

/// The version in `If-Match: "<version>"`; `*` or absent means any.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ErrorBody> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::InvalidRequest,
                "If-Match must be the record's ETag, e.g. \"3\"",
            )
        })
}

fn with_etag(status: StatusCode, record: &Record) -> Response {
    let mut response = (status, Json(record)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", record.version)) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    filter: Option<String>,
    sort: Option<String>,
    fields: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    count: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListQuery>,
    mut path: CollectionPath,
) -> Result<Response, ErrorBody> {
    let _running = super::support::query_permit(&state, &ctx)?;
    let page = match list_page(&state, &path.client, &path.collection, &q).await {
        Err(QueryError::Db(e)) if records::schema_moved(&e) => {
            path.reload().await?;
            list_page(&state, &path.client, &path.collection, &q).await?
        }
        page => page?,
    };
    drop(path);
    // Written once into a buffer of about the right size (a page of
    // records is tens of kilobytes; growing a small buffer copies it
    // again and again).
    let mut body = Vec::with_capacity(1024 + page.items.len() * 512);
    serde_json::to_writer(&mut body, &page).map_err(|e| {
        tracing::error!(error = %e, "a page of records could not be written as JSON");
        ErrorBody::new(ErrorCode::Internal, "internal error; see the server log")
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

async fn list_page(
    state: &AppState,
    client: &deadpool_postgres::Client,
    c: &Collection,
    q: &ListQuery,
) -> Result<query::Page, QueryError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=query::MAX_PAGE).contains(&limit) {
        return Err(QueryError::Limit);
    }
    let fields = c.filter_fields();
    let filter = match q.filter.as_deref().filter(|f| !f.is_empty()) {
        Some(text) => Some(filter::parse(text, &fields, Limits::default())?),
        None => None,
    };
    let count = match q.count.as_deref() {
        None => query::CountMode::None,
        Some("exact") => query::CountMode::Exact,
        Some("estimate") => query::CountMode::Estimate,
        Some("bounded") => query::CountMode::Bounded,
        Some(_) => return Err(QueryError::Count),
    };
    let listing = Listing {
        count,
        filter,
        filter_text: q.filter.clone().unwrap_or_default(),
        sort: query::parse_sort(c, q.sort.as_deref())?,
        fields: query::parse_fields(c, q.fields.as_deref())?,
        limit,
    };
    query::list(client, &state.keys, c, &listing, q.cursor.as_deref()).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    data: Map<String, Json_>,
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<WriteBody>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let c = load(&*tx, &name).await?;
    let record = store::insert(&*tx, &c, &body.data, principal.user_id).await?;
    let mut response = with_etag(StatusCode::CREATED, &record);
    if let Ok(v) =
        HeaderValue::from_str(&format!("/api/v1/collections/{name}/records/{}", record.id))
    {
        response.headers_mut().insert(header::LOCATION, v);
    }
    let set = body.data.keys().cloned().collect();
    Change::Created { record, set }
        .record(&tx, &state, &ctx, &c)
        .await?;
    tx.commit().await?;
    Ok(response)
}

async fn get_one(
    Path((_, id)): Path<(String, String)>,
    mut path: CollectionPath,
) -> Result<Response, ErrorBody> {
    let id = record_id(&id)?;
    let record = match store::get(&**path.client, &path.collection, id).await {
        Err(e) if records::schema_moved(&e) => {
            path.reload().await?;
            store::get(&**path.client, &path.collection, id).await?
        }
        found => found?,
    }
    .ok_or(WriteError::NotFound(id))?;
    Ok(with_etag(StatusCode::OK, &record))
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<WriteBody>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let id = record_id(&id)?;
    let expected = if_match(&headers)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let c = load(&*tx, &name).await?;
    let (before, after) =
        store::update(&*tx, &c, id, &body.data, expected, principal.user_id).await?;
    let response = with_etag(StatusCode::OK, &after);
    Change::Updated { before, after }
        .record(&tx, &state, &ctx, &c)
        .await?;
    tx.commit().await?;
    Ok(response)
}

async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ErrorBody> {
    let id = record_id(&id)?;
    let expected = if_match(&headers)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let c = load(&*tx, &name).await?;
    let before = store::delete(&*tx, &c, id, expected).await?;
    Change::Deleted { before }
        .record(&tx, &state, &ctx, &c)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
