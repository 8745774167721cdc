//! `[api]`: request rate, query time and batch size limits.

use serde::{Deserialize, Serialize};

use super::in_range;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub rate_limit_per_minute: u32,
    pub query_timeout_ms: u64,
    /// Record queries one caller may have running at once; 0: no limit.
    pub max_concurrent_queries: u32,
    /// Largest body of a batch write (`POST …/records/batch`).
    pub batch_body_limit_bytes: usize,
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(c: &ApiConfig, problem: &mut impl FnMut(&str, String)) {
    in_range(
        problem,
        "api.rate_limit_per_minute",
        u64::from(c.rate_limit_per_minute),
        1..=1_000_000,
    );
    in_range(
        problem,
        "api.query_timeout_ms",
        c.query_timeout_ms,
        100..=600_000,
    );
    in_range(
        problem,
        "api.max_concurrent_queries",
        u64::from(c.max_concurrent_queries),
        0..=10_000,
    );
    in_range(
        problem,
        "api.batch_body_limit_bytes",
        c.batch_body_limit_bytes as u64,
        65_536..=268_435_456,
    );
}
