//! Webhook deliveries: one job per delivery (queued by
//! `crate::webhooks::emit` or a redelivery). An attempt signs the payload,
//! POSTs it, logs the attempt with its status code and latency, and
//! updates the webhook's health (disabling it after sustained failure, with
//! an audit entry). A 2xx response is success; anything else, or no
//! response, is retried with the kind's backoff until the delivery is dead.
//! A URL the guard refuses is not retried: the webhook must change first.

use std::time::Instant;

use axum::body::Bytes;
use serde_json::json;

use std::sync::Arc;

use super::context::JobCtx;
use super::registry::{Handler, JobRun};
use super::Services;
use crate::audit::{self, Event, Outcome};
use crate::outbound::Trace;
use crate::queue::JobError;
use crate::telemetry::{Kind, Span};
use crate::webhooks::{signing, store};

/// The `webhook` kind's handler.
pub struct DeliveryHandler(pub Arc<Services>);

impl Handler for DeliveryHandler {
    fn run<'a>(&'a self, ctx: &'a JobCtx) -> JobRun<'a> {
        Box::pin(run(ctx, &self.0))
    }
}

async fn run(ctx: &JobCtx, services: &Services) -> Result<(), JobError> {
    let client = ctx.pool.get().await?;
    let Some(p) = store::pending(&**client, ctx.job.id).await? else {
        return Err(JobError::Permanent(
            "the webhook was deleted before the delivery was made".to_string(),
        ));
    };
    drop(client);
    if p.delivered {
        return Ok(());
    }
    if !p.enabled {
        return Err(JobError::Permanent(
            "the webhook is disabled; enable it and redeliver".to_string(),
        ));
    }
    let settings = &services.webhooks;
    let body =
        Bytes::from(serde_json::to_vec(&p.payload).map_err(|e| {
            JobError::Permanent(format!("the stored payload cannot be encoded: {e}"))
        })?);
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let secrets: Vec<&str> = p.secrets.iter().map(String::as_str).collect();
    let signature = signing::header(&secrets, &p.event_id, timestamp, &body).ok_or_else(|| {
        JobError::Permanent("the webhook's stored secret is unreadable; rotate it".to_string())
    })?;
    ctx.check()?;
    // The delivery is a call to the receiver: its span's context goes in
    // `traceparent`, so a traced receiver continues the same trace.
    let mut span = Span::start("webhook delivery", Kind::Client, None);
    span.set("http.request.method", "POST");
    span.set("mogothrow77.webhook.id", p.webhook_id);
    span.set("mogothrow77.webhook.event", p.event.as_str());
    let headers = [
        ("webhook-id", p.event_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
        ("x-mogothrow77-event", p.event.clone()),
        ("traceparent", span.context().header()),
    ];
    let started = Instant::now();
    let mut trace = Trace::default();
    let result = settings
        .outbound
        .post(&p.url, &headers, body, &mut trace)
        .await;
    if let Some(address) = trace.address {
        span.set("server.address", address.ip().to_string());
        span.set("server.port", i64::from(address.port()));
    }
    match &result {
        Ok(status) => {
            span.set("http.response.status_code", i64::from(status.as_u16()));
            if !status.is_success() {
                span.fail(format!("the receiver answered {status}"));
            }
        }
        Err(e) => span.fail(e.to_string()),
    }
    span.end();
    let elapsed = started.elapsed();
    let latency_ms = i32::try_from(elapsed.as_millis()).unwrap_or(i32::MAX);
    let metrics = crate::metrics::Metrics::shared();
    metrics
        .webhook_deliveries
        .get_or_create(&crate::metrics::OutcomeLabels {
            outcome: match &result {
                Ok(s) => crate::metrics::status_class(s.as_u16()),
                Err(e) => e.outcome_label(),
            },
        })
        .inc();
    metrics
        .webhook_delivery_duration
        .observe(elapsed.as_secs_f64());
    let (status, error) = match &result {
        Ok(s) if s.is_success() => (Some(i32::from(s.as_u16())), None),
        Ok(s) => (
            Some(i32::from(s.as_u16())),
            Some(format!("the receiver answered {s}")),
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let delivered = error.is_none();

    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let health = store::record_attempt(
        &tx,
        &p,
        &store::Outcome {
            url: &trace.url,
            address: trace.address.map(|a| a.to_string()),
            status,
            latency_ms,
            error: error.as_deref(),
            delivered,
        },
        settings.disable_after_failures,
        settings.disable_after,
    )
    .await?;
    if health.disabled {
        audit::append(
            &tx,
            &audit::Context {
                actor_id: None,
                actor: "system".to_string(),
                client_addr: String::new(),
                request_id: ctx.job.request_id.clone().unwrap_or_default(),
            },
            &Event::new(
                "webhook.disable",
                format!("webhook:{}", p.webhook_id),
                Outcome::Success,
            )
            .details(json!({
                "webhook_id": p.webhook_id,
                "reason": "sustained failure",
                "consecutive_failures": health.consecutive_failures,
                "last_error": error,
            })),
        )
        .await
        .map_err(|e| match e {
            audit::AuditError::Db(e) => JobError::from(e),
        })?;
    }
    tx.commit().await?;
    if health.disabled {
        tracing::warn!(
            webhook_id = p.webhook_id,
            failures = health.consecutive_failures,
            "webhook disabled after sustained failure"
        );
    }
    match (result, error) {
        (_, None) => Ok(()),
        (Err(e), Some(message)) if e.is_permanent() => Err(JobError::Permanent(message)),
        (_, Some(message)) => Err(JobError::Transient(message)),
    }
}
