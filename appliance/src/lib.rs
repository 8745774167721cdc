//! Mogothrow77: the records appliance server. `docs/ARCHITECTURE.md` maps
//! the modules.

pub mod api;
pub mod audit;
pub mod authz;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod docs;
pub mod exit;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod monitoring;
pub mod notify;
pub mod privileges;
pub mod records;
pub mod serve;
pub mod startup;
pub mod systemd;
pub mod telemetry;
pub mod tls;
pub mod webhooks;
