//! `[service]`: the user and group the server drops to.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub user: String,
    pub group: String,
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(c: &ServiceConfig, problem: &mut impl FnMut(&str, String)) {
    for (key, value) in [("service.user", &c.user), ("service.group", &c.group)] {
        if value.is_empty() {
            problem(key, "must not be empty".to_string());
        }
    }
}
