//! `POST /api/v1/collections/{collection}/records/batch`: up to 1,000
//! creates, updates and deletes of one collection's records in one
//! transaction — all of them or none. Each changed record is audited and
//! announced to webhooks exactly as a single write would be. Its body has
//! its own limit (`api.batch_body_limit_bytes`).

use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json_};

use super::record_changes::Change;
use super::support::load;
use super::{Api, Ctx, Method};
use crate::app::AppState;
use crate::authz::{Access, Permission};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::records::store::{self, WriteError};

/// Operations one batch may carry.
pub const MAX_OPERATIONS: usize = 1000;

pub fn routes(api: Api) -> Api {
    api.route(
        Method::Post,
        "/api/v1/collections/{collection}/records/batch",
        Access::Permission(Permission::RecordsWrite),
        batch,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    operations: Vec<Operation>,
}

/// One operation; `version` is what `If-Match` is to a single write.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Operation {
    Create {
        data: Map<String, Json_>,
    },
    Update {
        id: i64,
        version: Option<i64>,
        data: Map<String, Json_>,
    },
    Delete {
        id: i64,
        version: Option<i64>,
    },
}

impl Operation {
    fn name(&self) -> &'static str {
        match self {
            Operation::Create { .. } => "create",
            Operation::Update { .. } => "update",
            Operation::Delete { .. } => "delete",
        }
    }

    fn id(&self) -> Option<i64> {
        match self {
            Operation::Create { .. } => None,
            Operation::Update { id, .. } | Operation::Delete { id, .. } => Some(*id),
        }
    }
}

/// The body, read up to the batch limit and parsed with the API's errors.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<BatchBody, ErrorBody> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ErrorBody::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let bytes = to_bytes(body, state.body_limits.batch).await.map_err(|_| {
        ErrorBody::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the batch is larger than the {} byte limit (api.batch_body_limit_bytes); split it",
                state.body_limits.batch
            ),
        )
    })?;
    let body: BatchBody = serde_json::from_slice(&bytes).map_err(|e| {
        ErrorBody::new(
            ErrorCode::InvalidRequest,
            format!("the request body is not what this endpoint expects: {e}"),
        )
    })?;
    if body.operations.is_empty() || body.operations.len() > MAX_OPERATIONS {
        return Err(ErrorBody::new(
            ErrorCode::ValidationFailed,
            format!(
                "a batch holds 1 to {MAX_OPERATIONS} operations, this one {}; split it",
                body.operations.len()
            ),
        )
        .with_details(json!({ "fields": [{
            "field": "operations",
            "message": format!("must hold 1 to {MAX_OPERATIONS} operations"),
        }] })));
    }
    Ok(body)
}

/// Why one operation failed: its index, kind, record id and the error a
/// single write would have answered.
fn failure(index: usize, op: &Operation, error: ErrorBody) -> Json_ {
    json!({
        "index": index,
        "op": op.name(),
        "id": op.id(),
        "code": error.code,
        "message": error.message,
        "details": error.details,
    })
}

async fn batch(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let operations = read_body(&state, &headers, body).await?.operations;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let c = load(&*tx, &name).await?;
    let user = principal.user_id;
    let mut changes = Vec::with_capacity(operations.len());
    let mut failures = Vec::new();
    let mut unchecked = 0;
    for (index, op) in operations.iter().enumerate() {
        let applied = match op {
            Operation::Create { data } => {
                store::insert(&*tx, &c, data, user)
                    .await
                    .map(|record| Change::Created {
                        record,
                        set: data.keys().cloned().collect(),
                    })
            }
            Operation::Update { id, version, data } => {
                store::update(&*tx, &c, *id, data, *version, user)
                    .await
                    .map(|(before, after)| Change::Updated { before, after })
            }
            Operation::Delete { id, version } => store::delete(&*tx, &c, *id, *version)
                .await
                .map(|before| Change::Deleted { before }),
        };
        match applied {
            Ok(change) => changes.push(change),
            // The database refused a statement: the transaction is over,
            // the operations after this one cannot be checked.
            Err(e @ WriteError::Duplicate(_)) => {
                failures.push(failure(index, op, e.into()));
                unchecked = operations.len() - index - 1;
                break;
            }
            Err(WriteError::Db(e)) => return Err(e.into()),
            // Refused before any statement ran: go on and report them all.
            Err(e) => failures.push(failure(index, op, e.into())),
        }
    }
    if !failures.is_empty() {
        drop(tx);
        let unchecked_note = match unchecked {
            0 => String::new(),
            n => format!(" ({n} operation(s) after the last one listed were not checked)"),
        };
        return Err(ErrorBody::new(
            ErrorCode::BatchFailed,
            format!(
                "{} of {} operations failed and nothing was changed{unchecked_note}; fix those in \
                 details.operations and send the whole batch again",
                failures.len(),
                operations.len()
            ),
        )
        .with_details(json!({ "operations": failures, "unchecked": unchecked })));
    }
    // Events first, then the audit entries: the audit chain's lock is held
    // from the first entry to the commit.
    for change in &changes {
        change.emit(&tx, &state, &ctx, &c).await?;
    }
    let entries: Vec<_> = changes.iter().map(|change| change.audit(&c)).collect();
    ctx.audit_events(&tx, &entries).await?;
    tx.commit().await?;
    let results: Vec<Json_> = changes
        .iter()
        .map(|change| match change {
            Change::Created { record, .. } => json!({ "op": "create", "record": record }),
            Change::Updated { after, .. } => json!({ "op": "update", "record": after }),
            Change::Deleted { before } => json!({ "op": "delete", "id": before.id }),
        })
        .collect();
    Ok((StatusCode::OK, Json(json!({ "results": results }))).into_response())
}
