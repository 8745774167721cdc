//! `[jobs]`: background workers, leases, export retention, import size.

use serde::{Deserialize, Serialize};

use super::in_range;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    pub workers: usize,
    pub lease_secs: u64,
    pub export_retention_hours: u64,
    pub import_max_mb: u64,
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(c: &JobsConfig, problem: &mut impl FnMut(&str, String)) {
    in_range(problem, "jobs.workers", c.workers as u64, 0..=32);
    in_range(problem, "jobs.lease_secs", c.lease_secs, 2..=3600);
    in_range(
        problem,
        "jobs.export_retention_hours",
        c.export_retention_hours,
        1..=8760,
    );
    in_range(problem, "jobs.import_max_mb", c.import_max_mb, 1..=10240);
}
