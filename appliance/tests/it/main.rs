//! Integration tests: the real binary, real PostgreSQL, real sockets.
//! One test binary (see docs/ARCHITECTURE.md); add modules, not binaries.

// Tests and benchmarks set up and inspect the database directly, not as the
// server does: tokio-postgres's own methods are fine here (clippy.toml).
#![allow(clippy::disallowed_methods)]

mod harness;

mod api_conventions;
mod audit_forwarding;
mod audit_log;
mod authz_matrix;
mod backup;
mod backup_drills;
mod batch;
mod break_glass;
mod caches;
mod config_errors;
mod console;
mod database_outages;
mod database_tls;
mod demo;
mod diagnose;
mod encrypted_backups;
mod exports;
mod generative_api;
mod http_surface;
mod identity;
mod imports;
mod jobs;
mod lifecycle;
mod managed;
mod metrics;
mod monitoring;
mod notify;
mod pitr;
mod poolers;
mod readiness;
mod records;
mod records_oracle;
mod rehearse;
mod scheduled_backups;
mod schema;
mod secrets;
mod secrets_at_rest;
mod smoke;
mod support_bundle;
mod traces;
mod webhooks;
