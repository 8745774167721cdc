//! `[auth]`: sessions and sign-in lockouts.

use serde::{Deserialize, Serialize};

use super::in_range;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub session_idle_minutes: u64,
    pub session_absolute_hours: u64,
    pub lockout_account_failures: u32,
    pub lockout_address_failures: u32,
    pub lockout_window_minutes: u64,
    pub lockout_minutes: u64,
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(c: &AuthConfig, problem: &mut impl FnMut(&str, String)) {
    in_range(
        problem,
        "auth.session_idle_minutes",
        c.session_idle_minutes,
        1..=10080,
    );
    in_range(
        problem,
        "auth.session_absolute_hours",
        c.session_absolute_hours,
        1..=720,
    );
    in_range(
        problem,
        "auth.lockout_window_minutes",
        c.lockout_window_minutes,
        1..=1440,
    );
    in_range(problem, "auth.lockout_minutes", c.lockout_minutes, 1..=1440);
    in_range(
        problem,
        "auth.lockout_account_failures",
        u64::from(c.lockout_account_failures),
        1..=1000,
    );
    in_range(
        problem,
        "auth.lockout_address_failures",
        u64::from(c.lockout_address_failures),
        1..=100000,
    );
}
