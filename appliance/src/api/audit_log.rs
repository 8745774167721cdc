//! Reading the audit log: filters and authenticated cursor pagination,
//! newest first.

use crate::db::Sql;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{invalid_field, Api, ApiQuery, Method};
use crate::app::AppState;
use crate::authz::{Access, Permission};
use crate::http::error::{ErrorBody, ErrorCode};

pub fn routes(api: Api) -> Api {
    api.route(
        Method::Get,
        "/api/v1/audit",
        Access::Permission(Permission::AuditRead),
        list,
    )
}

pub const MAX_PAGE: i64 = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct Entry {
    seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
    actor_id: Option<i64>,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    client_addr: String,
    request_id: String,
    details: serde_json::Value,
}

fn timestamp(field: &str, raw: &Option<String>) -> Result<Option<OffsetDateTime>, ErrorBody> {
    raw.as_deref()
        .map(|s| {
            OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
                invalid_field(
                    field,
                    "expected an RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z",
                )
            })
        })
        .transpose()
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<Filter>,
) -> Result<Json<serde_json::Value>, ErrorBody> {
    let limit = filter.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(invalid_field("limit", format!("between 1 and {MAX_PAGE}")));
    }
    if let Some(o) = &filter.outcome {
        if !matches!(o.as_str(), "success" | "failure" | "denied") {
            return Err(invalid_field(
                "outcome",
                "expected success, failure or denied",
            ));
        }
    }
    for (field, value) in [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("target", &filter.target),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.len() > 200 || v.chars().any(char::is_control))
        {
            return Err(invalid_field(
                field,
                "at most 200 characters, no control characters",
            ));
        }
    }
    let since = timestamp("since", &filter.since)?;
    let until = timestamp("until", &filter.until)?;
    // A cursor only continues the listing it came from.
    let purpose = format!(
        "audit\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        filter.actor, filter.action, filter.outcome, filter.since, filter.until, filter.target
    );
    let before: Option<i64> = match &filter.cursor {
        None => None,
        Some(c) => Some(
            state
                .keys
                .open_cursor(&purpose, c)
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| {
                    ErrorBody::new(
                        ErrorCode::InvalidCursor,
                        "the cursor is not valid for this listing (tampered with, or from other \
                         filters); start again without a cursor",
                    )
                })?,
        ),
    };
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT seq, occurred_at, actor_id, actor, action, target, outcome, client_addr, \
                    request_id, details \
             FROM audit_log \
             WHERE ($1::text IS NULL OR actor = $1) \
               AND ($2::text IS NULL OR action = $2) \
               AND ($3::text IS NULL OR outcome = $3) \
               AND ($4::timestamptz IS NULL OR occurred_at >= $4) \
               AND ($5::timestamptz IS NULL OR occurred_at < $5) \
               AND ($6::bigint IS NULL OR seq < $6) \
               AND ($8::text IS NULL OR target = $8) \
             ORDER BY seq DESC LIMIT $7",
            &[
                &filter.actor,
                &filter.action,
                &filter.outcome,
                &since,
                &until,
                &before,
                &(limit + 1),
                &filter.target,
            ],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<Entry> = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            let details: String = r.get(9);
            Entry {
                seq: r.get(0),
                occurred_at: r.get(1),
                actor_id: r.get(2),
                actor: r.get(3),
                action: r.get(4),
                target: r.get(5),
                outcome: r.get(6),
                client_addr: r.get(7),
                request_id: r.get(8),
                details: serde_json::from_str(&details).unwrap_or(json!({})),
            }
        })
        .collect();
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(state.keys.seal_cursor(&purpose, &last.seq.to_string())),
        _ => None,
    };
    Ok(Json(json!({ "items": items, "next_cursor": next_cursor })))
}
