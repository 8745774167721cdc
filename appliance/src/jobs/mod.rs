//! The job queue: durable work in PostgreSQL (migration V5) that any
//! replica runs.
//!
//! The queue itself — kinds, the statements that enqueue, claim, renew,
//! finish and retry — is `crate::queue`, below the modules that queue jobs
//! (webhooks, notify); this module runs them:
//!
//! - [`worker`]: the per-replica workers: woken by `NOTIFY m77_jobs` (polling
//!   every few seconds only as a fallback), a heartbeat per running job, and
//!   a graceful stop that lets running jobs finish or releases them.
//! - [`export`]: CSV exports stored in PostgreSQL.
//! - [`webhook`]: webhook deliveries (`crate::webhooks`).
//! - [`import`]: bulk imports of CSV and NDJSON files.
//! - [`email`]: e-mail notifications (`crate::mail`).
//!
//! Delivery is at least once: a worker that dies mid-job stops renewing its
//! lease and the job runs again elsewhere, so every handler is idempotent.

pub mod email;
pub mod export;
pub mod import;
pub mod webhook;
pub mod worker;
