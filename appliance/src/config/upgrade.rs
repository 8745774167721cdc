//! `[upgrade]`: read by `mogothrow77-upgrade`, not by the server, which only
//! checks its shape.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeConfig {
    /// An API token for `mogothrow77 smoke`, run after a swap.
    pub smoke_token_file: Option<PathBuf>,
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(c: &UpgradeConfig, problem: &mut impl FnMut(&str, String)) {
    if let Some(path) = &c.smoke_token_file {
        if !path.is_absolute() {
            problem(
                "upgrade.smoke_token_file",
                format!(
                    "{} is not an absolute path; the upgrade tool runs from anywhere",
                    path.display()
                ),
            );
        }
    }
}
