//! What a record write did, and what follows from it in the same
//! transaction: the webhook event and the audit entry. Single writes and
//! batches both go through here, so a record changed either way looks the
//! same to webhook receivers and auditors.

use serde_json::json;

use super::Ctx;
use crate::app::AppState;
use crate::audit::{Event, Outcome};
use crate::http::error::ErrorBody;
use crate::records::store::{self, Record};
use crate::records::Collection;
use crate::webhooks::{self, EventType};

/// One applied write.
pub enum Change {
    /// `set`: the names of the fields the request sent.
    Created {
        record: Record,
        set: Vec<String>,
    },
    Updated {
        before: Record,
        after: Record,
    },
    Deleted {
        before: Record,
    },
}

impl Change {
    /// The record's id.
    pub fn id(&self) -> i64 {
        match self {
            Change::Created { record, .. } => record.id,
            Change::Updated { after, .. } => after.id,
            Change::Deleted { before } => before.id,
        }
    }

    /// Queues the change's webhook event (before the audit entry: the
    /// audit chain's lock is held from the entry to the commit, and other
    /// writes wait for it).
    pub async fn emit(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        state: &AppState,
        ctx: &Ctx,
        c: &Collection,
    ) -> Result<(), ErrorBody> {
        let name = &c.name;
        let (event, data) = match self {
            Change::Created { record, .. } => (
                EventType::RecordCreated,
                json!({ "collection": name, "record": webhooks::record_payload(c, record) }),
            ),
            Change::Updated { before, after } => {
                // Sensitive fields are not named to receivers.
                let changed: Vec<String> = store::changed_fields(before, after)
                    .into_iter()
                    .filter(|f| c.fields.iter().any(|d| &d.name == f && !d.sensitive))
                    .collect();
                (
                    EventType::RecordUpdated,
                    json!({
                        "collection": name,
                        "record": webhooks::record_payload(c, after),
                        "changed": changed,
                    }),
                )
            }
            Change::Deleted { before } => (
                EventType::RecordDeleted,
                json!({ "collection": name, "record": webhooks::record_payload(c, before) }),
            ),
        };
        webhooks::emit(
            tx,
            event,
            name,
            data,
            Some(&ctx.request_id),
            state.webhook_attempts,
        )
        .await?;
        Ok(())
    }

    /// The change's audit entry: the names of the fields, never values.
    pub fn audit(&self, c: &Collection) -> Event {
        let name = &c.name;
        let id = self.id();
        let target = format!("collection:{name}/record:{id}");
        match self {
            Change::Created { set, .. } => Event::new("record.create", target, Outcome::Success)
                .details(json!({ "collection": name, "record_id": id, "fields": set })),
            Change::Updated { before, after } => {
                Event::new("record.update", target, Outcome::Success).details(json!({
                    "collection": name,
                    "record_id": id,
                    "version": after.version,
                    "changed": store::changed_fields(before, after),
                }))
            }
            Change::Deleted { before } => Event::new("record.delete", target, Outcome::Success)
                .details(json!({ "collection": name, "record_id": id, "version": before.version })),
        }
    }

    /// Emits the event and appends the audit entry of one change.
    pub async fn record(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        state: &AppState,
        ctx: &Ctx,
        c: &Collection,
    ) -> Result<(), ErrorBody> {
        self.emit(tx, state, ctx, c).await?;
        ctx.audit_event(tx, &self.audit(c)).await?;
        Ok(())
    }
}
