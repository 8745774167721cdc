//! The job queue for admins (`jobs:manage`): list jobs by state (queued,
//! running, succeeded, dead, cancelled), one job with its attempts, cancel,
//! and retry (replay) a dead or cancelled one. Cancelling and retrying are
//! audited.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{invalid_field, page_limit, parse_id, Api, ApiQuery, Ctx, Method};
use crate::app::AppState;
use crate::audit::{Event, Outcome};
use crate::authz::{Access, Permission};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::queue::{self, ChangeError};

const STATES: [&str; 5] = ["queued", "running", "succeeded", "dead", "cancelled"];

pub fn routes(api: Api) -> Api {
    let manage = Access::Permission(Permission::JobsManage);
    api.route(Method::Get, "/api/v1/jobs", manage, list)
        .route(Method::Get, "/api/v1/jobs/{id}", manage, get_one)
        .route(Method::Post, "/api/v1/jobs/{id}/cancel", manage, cancel)
        .route(Method::Post, "/api/v1/jobs/{id}/retry", manage, retry)
}

impl From<ChangeError> for ErrorBody {
    fn from(e: ChangeError) -> ErrorBody {
        match e {
            ChangeError::NotFound(_) => ErrorBody::new(ErrorCode::NotFound, e.to_string()),
            ChangeError::WrongState { .. } => ErrorBody::new(ErrorCode::Conflict, e.to_string()),
            ChangeError::Db(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ErrorBody> {
    if let Some(s) = q.state.as_deref() {
        if !STATES.contains(&s) {
            return Err(invalid_field(
                "state",
                format!("one of {}", STATES.join(", ")),
            ));
        }
    }
    let limit = page_limit(q.limit)?;
    let client = state.pool.get().await?;
    let items = queue::list(&**client, q.state.as_deref(), q.before, limit).await?;
    let next_before = (items.len() as i64 == limit)
        .then(|| items.last().map(|j| j.id))
        .flatten();
    Ok(Json(json!({ "items": items, "next_before": next_before })))
}

async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ErrorBody> {
    let id = parse_id(&id, "job")?;
    let client = state.pool.get().await?;
    let job = queue::get(&**client, id)
        .await?
        .ok_or(ChangeError::NotFound(id))?;
    let attempts = queue::attempts(&**client, id).await?;
    let mut body = json!(job);
    body["attempts_log"] = json!(attempts);
    Ok(Json(body))
}

async fn change(
    state: &AppState,
    ctx: &Ctx,
    raw_id: &str,
    action: &'static str,
) -> Result<Json<Value>, ErrorBody> {
    let id = parse_id(raw_id, "job")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let job = if action == "job.cancel" {
        queue::cancel(&*tx, id).await?
    } else {
        queue::retry(&*tx, id).await?
    };
    ctx.audit_event(
        &tx,
        &Event::new(action, format!("job:{id}"), Outcome::Success)
            .details(json!({ "job_id": id, "kind": job.kind, "state": job.state })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!(job)))
}

async fn cancel(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<Value>, ErrorBody> {
    change(&state, &ctx, &id, "job.cancel").await
}

async fn retry(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<Value>, ErrorBody> {
    change(&state, &ctx, &id, "job.retry").await
}
