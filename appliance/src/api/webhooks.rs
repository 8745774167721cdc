//! Webhooks for admins (`webhooks:manage`): subscriptions (URL, events,
//! one collection or all), secret rotation, the delivery log with every
//! attempt, and manual redelivery. Every change is audited; a secret is
//! shown once, in the response that made it, and never logged.

use crate::db::Sql;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::support::load;
use super::{invalid_field, page_limit, parse_id, Api, ApiJson, ApiQuery, Ctx, Method};
use crate::app::AppState;
use crate::audit::{Event, Outcome};
use crate::authz::{Access, Permission};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::outbound::check_url;
use crate::secrets::columns::WEBHOOKS;
use crate::webhooks::store::{self, Definition, Webhook};
use crate::webhooks::EventType;

/// How long the previous secret keeps signing after a rotation.
const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// Webhooks an installation may have.
const MAX_WEBHOOKS: i64 = 100;

pub fn routes(api: Api) -> Api {
    let manage = Access::Permission(Permission::WebhooksManage);
    api.route(Method::Get, "/api/v1/webhooks", manage, list)
        .route(Method::Post, "/api/v1/webhooks", manage, create)
        .route(Method::Get, "/api/v1/webhooks/{id}", manage, get_one)
        .route(Method::Patch, "/api/v1/webhooks/{id}", manage, update)
        .route(Method::Delete, "/api/v1/webhooks/{id}", manage, delete)
        .route(
            Method::Post,
            "/api/v1/webhooks/{id}/rotate-secret",
            manage,
            rotate,
        )
        .route(
            Method::Get,
            "/api/v1/webhooks/{id}/deliveries",
            manage,
            deliveries,
        )
        .route(
            Method::Get,
            "/api/v1/webhooks/{id}/deliveries/{delivery}",
            manage,
            delivery,
        )
        .route(
            Method::Post,
            "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
            manage,
            redeliver,
        )
}

fn no_webhook(id: i64) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no webhook with id {id}"))
}

/// A URL as the audit log keeps it: without its query string, which may
/// carry a receiver's own token.
fn audited_url(url: &str) -> &str {
    url.split_once('?').map_or(url, |(base, _)| base)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    collection: Option<String>,
    events: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    url: Option<String>,
    description: Option<String>,
    /// `null` (explicitly): every collection.
    #[serde(default, with = "super::double_option")]
    collection: Option<Option<String>>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
}

/// Checks a definition; the collection, when named, must exist.
async fn checked<C: crate::db::Sql>(client: &C, d: Definition) -> Result<Definition, ErrorBody> {
    if let Err(e) = check_url(&d.url) {
        return Err(invalid_field("url", e.to_string()));
    }
    if d.description.chars().count() > 200 {
        return Err(invalid_field("description", "at most 200 characters"));
    }
    let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
    if d.events.is_empty() {
        return Err(invalid_field(
            "events",
            format!("name at least one event: {}", known.join(", ")),
        ));
    }
    let mut events = Vec::new();
    for e in &d.events {
        if EventType::parse(e).is_none() {
            return Err(invalid_field(
                "events",
                format!("unknown event {e:?}; expected some of {}", known.join(", ")),
            ));
        }
        if !events.contains(e) {
            events.push(e.clone());
        }
    }
    if let Some(name) = &d.collection {
        load(client, name).await?;
    }
    Ok(Definition { events, ..d })
}

fn created(webhook: &Webhook, secret: &str, status: StatusCode) -> Response {
    let mut body = json!(webhook);
    body["secret"] = json!(secret);
    (status, Json(body)).into_response()
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ErrorBody> {
    let client = state.pool.get().await?;
    let items = store::list(&**client).await?;
    Ok(Json(json!({ "items": items })))
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let d = checked(
        &*tx,
        Definition {
            url: body.url,
            description: body.description,
            collection: body.collection,
            events: body.events,
        },
    )
    .await?;
    // Serialises creations, so two cannot both pass the limit.
    Sql::execute(&tx, "LOCK TABLE webhooks IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
    let count: i64 = Sql::query_one(&tx, "SELECT count(*) FROM webhooks", &[])
        .await?
        .get(0);
    if count >= MAX_WEBHOOKS {
        return Err(ErrorBody::new(
            ErrorCode::Conflict,
            format!("this installation has {count} webhooks, the most it allows; delete one first"),
        ));
    }
    let (webhook, secret) = store::create(&*tx, &d, principal.user_id).await?;
    state
        .vault
        .seal_row(&*tx, &WEBHOOKS, &webhook.id.to_string())
        .await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "webhook.create",
            format!("webhook:{}", webhook.id),
            Outcome::Success,
        )
        .details(json!({
            "webhook_id": webhook.id,
            "url": audited_url(&webhook.url),
            "collection": webhook.collection,
            "events": webhook.events,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(created(&webhook, &secret, StatusCode::CREATED))
}

async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ErrorBody> {
    let id = parse_id(&id, "webhook")?;
    let client = state.pool.get().await?;
    let webhook = store::get(&**client, id)
        .await?
        .ok_or_else(|| no_webhook(id))?;
    Ok(Json(json!(webhook)))
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ErrorBody> {
    let id = parse_id(&id, "webhook")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let current = store::get(&*tx, id).await?.ok_or_else(|| no_webhook(id))?;
    let d = checked(
        &*tx,
        Definition {
            url: body.url.unwrap_or(current.url.clone()),
            description: body.description.unwrap_or(current.description.clone()),
            collection: body.collection.unwrap_or(current.collection.clone()),
            events: body.events.unwrap_or(current.events.clone()),
        },
    )
    .await?;
    let enabled = body.enabled.unwrap_or(current.enabled);
    let webhook = store::update(&*tx, id, &d, enabled)
        .await?
        .ok_or_else(|| no_webhook(id))?;
    ctx.audit_event(
        &tx,
        &Event::new("webhook.update", format!("webhook:{id}"), Outcome::Success).details(json!({
            "webhook_id": id,
            "url": audited_url(&webhook.url),
            "collection": webhook.collection,
            "events": webhook.events,
            "enabled": webhook.enabled,
            "was_enabled": current.enabled,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!(webhook)))
}

async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ErrorBody> {
    let id = parse_id(&id, "webhook")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let current = store::get(&*tx, id).await?.ok_or_else(|| no_webhook(id))?;
    store::delete(&*tx, id).await?;
    ctx.audit_event(
        &tx,
        &Event::new("webhook.delete", format!("webhook:{id}"), Outcome::Success).details(json!({
            "webhook_id": id,
            "url": audited_url(&current.url),
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rotate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ErrorBody> {
    let id = parse_id(&id, "webhook")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (webhook, secret) = store::rotate(&*tx, id, ROTATION_OVERLAP)
        .await?
        .ok_or_else(|| no_webhook(id))?;
    state
        .vault
        .seal_row(&*tx, &WEBHOOKS, &id.to_string())
        .await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "webhook.rotate_secret",
            format!("webhook:{id}"),
            Outcome::Success,
        )
        .details(json!({
            "webhook_id": id,
            "previous_secret_until": webhook.previous_secret_until
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(created(&webhook, &secret, StatusCode::OK))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<Value>, ErrorBody> {
    let id = parse_id(&id, "webhook")?;
    let limit = page_limit(q.limit)?;
    let client = state.pool.get().await?;
    store::get(&**client, id)
        .await?
        .ok_or_else(|| no_webhook(id))?;
    let items = store::deliveries(&**client, id, q.before, limit).await?;
    let next_before = (items.len() as i64 == limit)
        .then(|| items.last().map(|d| d.id))
        .flatten();
    Ok(Json(json!({ "items": items, "next_before": next_before })))
}

fn delivery_id(webhook: i64, raw: &str) -> Result<i64, ErrorBody> {
    raw.parse::<i64>().map_err(|_| no_delivery(webhook, raw))
}

fn no_delivery(webhook: i64, id: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::NotFound,
        format!("webhook {webhook} has no delivery with id {id:?}"),
    )
}

async fn delivery(
    State(state): State<AppState>,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Json<Value>, ErrorBody> {
    let id = parse_id(&id, "webhook")?;
    let delivery_id = delivery_id(id, &delivery)?;
    let client = state.pool.get().await?;
    let (found, payload) = store::delivery_of(&**client, id, delivery_id)
        .await?
        .ok_or_else(|| no_delivery(id, &delivery))?;
    let attempts = store::attempts(&**client, delivery_id).await?;
    let mut body = json!(found);
    body["payload"] = payload;
    body["attempts_log"] = json!(attempts);
    Ok(Json(body))
}

async fn redeliver(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let id = parse_id(&id, "webhook")?;
    let delivery_id = delivery_id(id, &delivery)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let webhook = store::get(&*tx, id).await?.ok_or_else(|| no_webhook(id))?;
    if !webhook.enabled {
        return Err(ErrorBody::new(
            ErrorCode::Conflict,
            format!("webhook {id} is disabled; enable it before redelivering"),
        ));
    }
    let new_id = store::redeliver(
        &*tx,
        id,
        delivery_id,
        state.webhook_attempts,
        principal.user_id,
        &ctx.request_id,
    )
    .await?
    .ok_or_else(|| no_delivery(id, &delivery))?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "webhook.redeliver",
            format!("webhook:{id}"),
            Outcome::Success,
        )
        .details(json!({ "webhook_id": id, "delivery_id": delivery_id, "redelivery_id": new_id })),
    )
    .await?;
    tx.commit().await?;
    let (found, _) = store::delivery_of(&**client, id, new_id)
        .await?
        .ok_or_else(|| no_delivery(id, &new_id.to_string()))?;
    Ok((StatusCode::ACCEPTED, Json(json!(found))).into_response())
}
