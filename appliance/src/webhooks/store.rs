//! Subscriptions, deliveries and attempts in PostgreSQL (migration V6).
//! Secrets are written here and read only by the delivery job: the API
//! shows a secret once, when it is made.

use std::time::Duration;

use crate::db::Sql;
use serde::Serialize;
use serde_json::Value as Json;
use time::OffsetDateTime;

use super::signing;

/// A webhook as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub description: String,
    /// `None`: events of every collection.
    pub collection: Option<String>,
    pub events: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    /// Until when the secret before the last rotation still signs.
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_secret_until: Option<OffsetDateTime>,
    pub created_by: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str = "id, url, description, collection, events, enabled, disabled_reason, \
                       consecutive_failures, failing_since, \
                       CASE WHEN previous_secret_until > now() THEN previous_secret_until END, \
                       created_by, created_at, updated_at";

fn webhook(r: &tokio_postgres::Row) -> Webhook {
    Webhook {
        id: r.get(0),
        url: r.get(1),
        description: r.get(2),
        collection: r.get(3),
        events: r.get(4),
        enabled: r.get(5),
        disabled_reason: r.get(6),
        consecutive_failures: r.get(7),
        failing_since: r.get(8),
        previous_secret_until: r.get(9),
        created_by: r.get(10),
        created_at: r.get(11),
        updated_at: r.get(12),
    }
}

/// What makes a webhook (checked by the API before it gets here).
pub struct Definition {
    pub url: String,
    pub description: String,
    pub collection: Option<String>,
    pub events: Vec<String>,
}

/// Creates a webhook; returns it with its secret (shown once).
pub async fn create<C: Sql>(
    client: &C,
    d: &Definition,
    created_by: i64,
) -> Result<(Webhook, String), tokio_postgres::Error> {
    let secret = signing::new_secret();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO webhooks (url, description, collection, events, secret, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
            ),
            &[
                &d.url,
                &d.description,
                &d.collection,
                &d.events,
                &secret,
                &created_by,
            ],
        )
        .await?;
    Ok((webhook(&row), secret))
}

/// Replaces a webhook's definition and whether it is enabled; enabling it
/// again clears its failure count.
pub async fn update<C: Sql>(
    client: &C,
    id: i64,
    d: &Definition,
    enabled: bool,
) -> Result<Option<Webhook>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE webhooks SET url = $2, description = $3, collection = $4, events = $5, \
                        disabled_reason = CASE WHEN $6 THEN NULL ELSE \
                            coalesce(disabled_reason, 'disabled by an admin') END, \
                        consecutive_failures = CASE WHEN $6 AND NOT enabled THEN 0 \
                                                    ELSE consecutive_failures END, \
                        failing_since = CASE WHEN $6 AND NOT enabled THEN NULL \
                                             ELSE failing_since END, \
                        enabled = $6, updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &d.url,
                &d.description,
                &d.collection,
                &d.events,
                &enabled,
            ],
        )
        .await?;
    Ok(row.as_ref().map(webhook))
}

/// A new secret; the previous one keeps signing (second signature) for
/// `overlap`, so receivers can switch without refusing deliveries.
pub async fn rotate<C: Sql>(
    client: &C,
    id: i64,
    overlap: Duration,
) -> Result<Option<(Webhook, String)>, tokio_postgres::Error> {
    let secret = signing::new_secret();
    let row = client
        .query_opt(
            &format!(
                "UPDATE webhooks SET previous_secret = secret, secret = $2, \
                        previous_secret_until = now() + $3::bigint * interval '1 second', \
                        updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &secret, &(overlap.as_secs() as i64)],
        )
        .await?;
    Ok(row.map(|r| (webhook(&r), secret)))
}

pub async fn delete<C: Sql>(client: &C, id: i64) -> Result<bool, tokio_postgres::Error> {
    // Deliveries still queued are cancelled with it.
    client
        .execute(
            "UPDATE jobs SET state = 'cancelled', finished_at = now(), lease_until = NULL \
             WHERE id IN (SELECT job_id FROM webhook_deliveries WHERE webhook_id = $1) \
               AND state = 'queued'",
            &[&id],
        )
        .await?;
    Ok(client
        .execute("DELETE FROM webhooks WHERE id = $1", &[&id])
        .await?
        == 1)
}

pub async fn get<C: Sql>(client: &C, id: i64) -> Result<Option<Webhook>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(webhook))
}

pub async fn list<C: Sql>(client: &C) -> Result<Vec<Webhook>, tokio_postgres::Error> {
    let rows = client
        .query(&format!("SELECT {COLUMNS} FROM webhooks ORDER BY id"), &[])
        .await?;
    Ok(rows.iter().map(webhook).collect())
}

/// One delivery of one event to one webhook.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event_id: String,
    pub event: String,
    /// pending, delivered, failed or cancelled.
    pub state: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub job_id: Option<i64>,
    pub redelivery_of: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// The next attempt, while pending.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.webhook_id, d.event_id::text, d.event, d.attempts, \
                                d.last_status, d.last_error, d.job_id, d.redelivery_of, \
                                d.created_at, d.delivered_at, j.state, j.run_at";

fn delivery(r: &tokio_postgres::Row) -> Delivery {
    let delivered_at: Option<OffsetDateTime> = r.get(10);
    let job_state: Option<String> = r.get(11);
    let state = match (delivered_at, job_state.as_deref()) {
        (Some(_), _) => "delivered",
        (None, Some("queued" | "running")) => "pending",
        (None, Some("cancelled")) => "cancelled",
        (None, _) => "failed",
    };
    Delivery {
        id: r.get(0),
        webhook_id: r.get(1),
        event_id: r.get(2),
        event: r.get(3),
        attempts: r.get(4),
        last_status: r.get(5),
        last_error: r.get(6),
        job_id: r.get(7),
        redelivery_of: r.get(8),
        created_at: r.get(9),
        delivered_at,
        next_attempt_at: if job_state.as_deref() == Some("queued") {
            r.get(12)
        } else {
            None
        },
        state: state.to_string(),
    }
}

/// A webhook's deliveries, newest first, before an id (paging).
pub async fn deliveries<C: Sql>(
    client: &C,
    webhook_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Delivery>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
                 LEFT JOIN jobs j ON j.id = d.job_id \
                 WHERE d.webhook_id = $1 AND ($2::bigint IS NULL OR d.id < $2) \
                 ORDER BY d.id DESC LIMIT $3"
            ),
            &[&webhook_id, &before, &limit],
        )
        .await?;
    Ok(rows.iter().map(delivery).collect())
}

pub async fn delivery_of<C: Sql>(
    client: &C,
    webhook_id: i64,
    id: i64,
) -> Result<Option<(Delivery, Json)>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {DELIVERY_COLUMNS}, d.payload FROM webhook_deliveries d \
                 LEFT JOIN jobs j ON j.id = d.job_id WHERE d.webhook_id = $1 AND d.id = $2"
            ),
            &[&webhook_id, &id],
        )
        .await?;
    Ok(row.map(|r| (delivery(&r), r.get(13))))
}

/// One attempt of a delivery, as the log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptLog {
    pub attempt: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub url: String,
    pub address: Option<String>,
    pub status: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
}

pub async fn attempts<C: Sql>(
    client: &C,
    delivery_id: i64,
) -> Result<Vec<AttemptLog>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT attempt, at, url, address, status, latency_ms, error FROM webhook_attempts \
             WHERE delivery_id = $1 ORDER BY attempt",
            &[&delivery_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AttemptLog {
            attempt: r.get(0),
            at: r.get(1),
            url: r.get(2),
            address: r.get(3),
            status: r.get(4),
            latency_ms: r.get(5),
            error: r.get(6),
        })
        .collect())
}

/// Queues the same event to the same webhook again (same event id, new
/// delivery and job). `None` when there is no such delivery.
pub async fn redeliver<C: Sql>(
    client: &C,
    webhook_id: i64,
    id: i64,
    max_attempts: i32,
    created_by: i64,
    request_id: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "WITH original AS ( \
                 SELECT id, webhook_id, event_id, event, payload FROM webhook_deliveries \
                 WHERE webhook_id = $1 AND id = $2), \
             queued AS ( \
                 INSERT INTO jobs (kind, payload, max_attempts, created_by, request_id, trace_parent) \
                 SELECT 'webhook', jsonb_build_object('webhook', webhook_id), $3, $4, $5, $6 \
                 FROM original RETURNING id) \
             INSERT INTO webhook_deliveries \
                 (webhook_id, event_id, event, payload, job_id, redelivery_of) \
             SELECT o.webhook_id, o.event_id, o.event, o.payload, q.id, o.id \
             FROM original o, queued q RETURNING id",
            &[
                &webhook_id,
                &id,
                &max_attempts,
                &created_by,
                &request_id,
                &crate::queue::enqueue_span("webhook").context().header(),
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// What the delivery job needs.
pub struct Pending {
    pub delivery_id: i64,
    pub webhook_id: i64,
    pub event_id: String,
    pub event: String,
    pub payload: Json,
    pub url: String,
    pub enabled: bool,
    /// The current secret, and the previous one while it still signs.
    pub secrets: Vec<String>,
    pub delivered: bool,
}

pub async fn pending<C: Sql>(
    client: &C,
    job_id: i64,
) -> Result<Option<Pending>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT d.id, d.webhook_id, d.event_id::text, d.event, d.payload, w.url, w.enabled, \
                    w.secret, CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END, \
                    d.delivered_at IS NOT NULL \
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.job_id = $1",
            &[&job_id],
        )
        .await?;
    Ok(row.map(|r| {
        let mut secrets = vec![r.get::<_, String>(7)];
        if let Some(previous) = r.get::<_, Option<String>>(8) {
            secrets.push(previous);
        }
        Pending {
            delivery_id: r.get(0),
            webhook_id: r.get(1),
            event_id: r.get(2),
            event: r.get(3),
            payload: r.get(4),
            url: r.get(5),
            enabled: r.get(6),
            secrets,
            delivered: r.get(9),
        }
    }))
}

/// How one attempt went, for the log.
pub struct Outcome<'a> {
    pub url: &'a str,
    pub address: Option<String>,
    pub status: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<&'a str>,
    pub delivered: bool,
}

/// What recording an attempt did to the webhook.
pub struct Health {
    /// The webhook was disabled by this failure (sustained failure).
    pub disabled: bool,
    pub consecutive_failures: i32,
}

/// Logs an attempt, updates the delivery and the webhook's health, and
/// disables the webhook once it has failed `disable_after_failures`
/// attempts in a row over at least `disable_after`.
pub async fn record_attempt(
    tx: &tokio_postgres::Transaction<'_>,
    p: &Pending,
    o: &Outcome<'_>,
    disable_after_failures: i32,
    disable_after: Duration,
) -> Result<Health, tokio_postgres::Error> {
    Sql::execute(&tx,
        "WITH d AS ( \
             UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, \
                    last_error = $3, \
                    delivered_at = CASE WHEN $4 THEN now() ELSE delivered_at END \
             WHERE id = $1 RETURNING attempts) \
         INSERT INTO webhook_attempts (delivery_id, attempt, url, address, status, latency_ms, error) \
         SELECT $1, attempts, $5, $6, $2, $7, $3 FROM d",
        &[
            &p.delivery_id,
            &o.status,
            &o.error,
            &o.delivered,
            &o.url,
            &o.address,
            &o.latency_ms,
        ],
    )
    .await?;
    let row = Sql::query_one(
        &tx,
        "UPDATE webhooks SET \
                 consecutive_failures = CASE WHEN $2 THEN 0 ELSE consecutive_failures + 1 END, \
                 failing_since = CASE WHEN $2 THEN NULL ELSE coalesce(failing_since, now()) END \
             WHERE id = $1 RETURNING consecutive_failures, \
                 enabled AND NOT $2 AND consecutive_failures >= $3 \
                 AND failing_since <= now() - $4::bigint * interval '1 second'",
        &[
            &p.webhook_id,
            &o.delivered,
            &disable_after_failures,
            &(disable_after.as_secs() as i64),
        ],
    )
    .await?;
    let consecutive_failures: i32 = row.get(0);
    let disable: bool = row.get(1);
    if disable {
        Sql::execute(
            &tx,
            "UPDATE webhooks SET enabled = false, updated_at = now(), \
                    disabled_reason = 'disabled automatically: ' || $2 || \
                        ' delivery attempts in a row failed since ' || \
                        to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"') \
             WHERE id = $1",
            &[&p.webhook_id, &consecutive_failures.to_string()],
        )
        .await?;
    }
    Ok(Health {
        disabled: disable,
        consecutive_failures,
    })
}

/// Forgets deliveries (and their attempts) older than `keep`, except
/// those still pending.
pub async fn purge_deliveries<C: Sql>(
    client: &C,
    keep: Duration,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM webhook_deliveries d \
             WHERE created_at < now() - $1::bigint * interval '1 second' \
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = d.job_id \
                               AND j.state IN ('queued', 'running'))",
            &[&(keep.as_secs() as i64)],
        )
        .await
}
