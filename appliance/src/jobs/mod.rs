//! The job queue: durable work in PostgreSQL (migration V5) that any
//! replica runs.
//!
//! The queue itself — kinds, the statements that enqueue, claim, renew,
//! finish and retry — is `crate::queue`, below the modules that queue jobs
//! (webhooks, mail); this module runs them:
//!
//! - [`worker`]: the per-replica workers: woken by `NOTIFY m77_jobs` (polling
//!   every few seconds only as a fallback), claim, a heartbeat per running
//!   job, record the end, and a graceful stop that lets running jobs finish
//!   or releases them; they look the handler up in the [`registry`] (built
//!   by [`handlers`]) and give it the [`context`].
//! - `housekeeping`: expired exports deleted, finished jobs purged.
//! - [`export`]: CSV exports stored in PostgreSQL.
//! - [`webhook`]: webhook deliveries (`crate::webhooks`).
//! - [`import`]: bulk imports of CSV and NDJSON files.
//! - [`email`]: e-mail notifications (`crate::mail`).
//! - [`backup`]: scheduled backups (`crate::backups`).
//!
//! Delivery is at least once: a worker that dies mid-job stops renewing its
//! lease and the job runs again elsewhere, so every handler is idempotent.

pub mod backup;
pub mod context;
pub mod email;
pub mod export;
mod housekeeping;
pub mod import;
pub mod registry;
pub mod webhook;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use crate::queue::Kind;
use registry::Registry;

/// What the handlers use besides the job and the pool.
pub struct Services {
    /// How long a stored export stays downloadable (`jobs.export_retention_hours`).
    pub export_retention: Duration,
    /// Delivery settings (webhook events the jobs emit, and deliveries).
    pub webhooks: Arc<crate::webhooks::Settings>,
    /// E-mail, when `[smtp]` is configured.
    pub email: Option<Arc<crate::mail::Email>>,
    /// Scheduled backups, when `backup.schedule` is set.
    pub backups: Option<Arc<crate::backups::Backups>>,
    /// Scheduled restore drills, when `backup.drill_schedule` is set.
    pub drills: Option<Arc<crate::backups::drill::Drills>>,
}

/// The handler of every kind of job this server runs.
pub fn handlers(services: Services) -> Registry {
    let services = Arc::new(services);
    Registry::default()
        .with(Kind::Export, export::ExportHandler(services.clone()))
        .with(Kind::Webhook, webhook::DeliveryHandler(services.clone()))
        .with(Kind::Import, import::ImportHandler(services.clone()))
        .with(
            Kind::Backup,
            backup::BackupHandler(services.backups.clone()),
        )
        .with(
            Kind::BackupDrill,
            backup::DrillHandler(services.drills.clone()),
        )
        .with(Kind::Email, email::EmailHandler(services))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_handler() {
        let outbound = crate::outbound::Outbound::new(
            crate::config::AddressPolicy::default(),
            Duration::from_secs(1),
            None,
            "test",
        )
        .expect("outbound client");
        let registry = handlers(Services {
            export_retention: Duration::from_secs(3600),
            webhooks: Arc::new(crate::webhooks::Settings {
                outbound,
                max_attempts: 3,
                disable_after_failures: 10,
                disable_after: Duration::from_secs(60),
            }),
            email: None,
            backups: None,
            drills: None,
        });
        for kind in Kind::ALL {
            assert!(registry.get(kind).is_some(), "{kind:?} has no handler");
        }
    }
}
