//! Webhooks: admins subscribe a URL to record and export events (of one
//! collection or all); each event is delivered as a job on the queue
//! (`crate::jobs::webhook`), signed ([`signing`]), to an address the
//! guard allows (`crate::outbound::guard`), through `crate::outbound`;
//! [`store`] keeps the
//! subscriptions, the deliveries and every attempt.
//!
//! Events are written by [`emit`] in the transaction of the change they
//! report, so a change that rolls back never notifies and one that commits
//! always does (a transactional outbox). Delivery is at least once:
//! receivers drop duplicates by the `webhook-id` header.

pub mod signing;
pub mod store;

use crate::db::{Cached, Sql};
use std::time::Duration;

use serde_json::{json, Value as Json};
use time::OffsetDateTime;

use crate::records::store::Record;
use crate::records::Collection;

/// The events a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    RecordCreated,
    RecordUpdated,
    RecordDeleted,
    ExportCompleted,
    ImportCompleted,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::RecordCreated,
        EventType::RecordUpdated,
        EventType::RecordDeleted,
        EventType::ExportCompleted,
        EventType::ImportCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RecordCreated => "record.created",
            EventType::RecordUpdated => "record.updated",
            EventType::RecordDeleted => "record.deleted",
            EventType::ExportCompleted => "export.completed",
            EventType::ImportCompleted => "import.completed",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// How deliveries are made (from `[webhooks]`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub outbound: crate::outbound::Outbound,
    /// Attempts per delivery before it is dead.
    pub max_attempts: i32,
    /// A webhook is disabled once it has failed this many attempts in a row…
    pub disable_after_failures: i32,
    /// …over at least this long.
    pub disable_after: Duration,
}

/// A record as a webhook carries it: fields marked sensitive are left out
/// (receivers that need them read the record through the API).
pub fn record_payload(c: &Collection, record: &Record) -> Json {
    let mut data = record.data.clone();
    for f in c.fields.iter().filter(|f| f.sensitive) {
        data.remove(&f.name);
    }
    json!({
        "id": record.id,
        "version": record.version,
        "created_at": rfc3339(record.created_at),
        "updated_at": rfc3339(record.updated_at),
        "created_by": record.created_by,
        "updated_by": record.updated_by,
        "data": data,
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Queues a delivery of `event` (about `collection`) to every enabled
/// webhook subscribed to it, in the caller's transaction. Returns how many.
pub async fn emit(
    tx: &deadpool_postgres::Transaction<'_>,
    event: EventType,
    collection: &str,
    data: Json,
    request_id: Option<&str>,
    max_attempts: i32,
) -> Result<u64, tokio_postgres::Error> {
    // The smoke check's scratch records are nobody's business.
    if crate::records::reserved::is_reserved(collection) {
        return Ok(0);
    }
    let event_id = uuid::Uuid::new_v4().to_string();
    let mut span = crate::queue::enqueue_span("webhook");
    span.set("mogothrow77.webhook.event", event.as_str());
    let payload = json!({
        "type": event.as_str(),
        "timestamp": rfc3339(OffsetDateTime::now_utc()),
        "data": data,
    });
    // Jobs first (their payload names webhook and event), then the
    // deliveries that point at them: one statement, no round trip per
    // webhook, nothing at all when nobody subscribed.
    let statement = tx
        .prepared(
            "WITH targets AS ( \
                 SELECT id FROM webhooks \
                 WHERE enabled AND $1 = ANY (events) AND (collection IS NULL OR collection = $2)), \
             queued AS ( \
                 INSERT INTO jobs (kind, payload, max_attempts, request_id, trace_parent) \
                 SELECT 'webhook', jsonb_build_object('webhook', id), $4, $5, $7 FROM targets \
                 RETURNING id, (payload->>'webhook')::bigint AS webhook_id) \
             INSERT INTO webhook_deliveries (webhook_id, event_id, event, payload, job_id) \
             SELECT webhook_id, $6::text::uuid, $1, $3, id FROM queued",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &event.as_str(),
            &collection,
            &payload,
            &max_attempts,
            &request_id,
            &event_id,
            &span.context().header(),
        ],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_round_trip() {
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
        }
        assert_eq!(EventType::parse("record.*"), None);
    }
}
