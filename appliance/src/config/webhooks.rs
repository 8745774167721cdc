//! `[webhooks]`: delivery limits and where deliveries may connect.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::cidr::Cidr;
use super::in_range;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub disable_after_failures: u32,
    pub disable_after_hours: u64,
    pub allow_addresses: Vec<String>,
    pub deny_private_addresses: bool,
    pub ca_file: Option<PathBuf>,
}

/// Where outbound deliveries (webhooks, traces) may connect: the blocks
/// allowed whatever they are, and whether private ranges are refused. What
/// it allows is decided by `webhooks::guard`.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    pub allow: Vec<Cidr>,
    pub deny_private: bool,
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(c: &WebhooksConfig, problem: &mut impl FnMut(&str, String)) -> AddressPolicy {
    in_range(problem, "webhooks.timeout_secs", c.timeout_secs, 1..=300);
    in_range(
        problem,
        "webhooks.max_attempts",
        u64::from(c.max_attempts),
        1..=50,
    );
    in_range(
        problem,
        "webhooks.disable_after_failures",
        u64::from(c.disable_after_failures),
        1..=100_000,
    );
    in_range(
        problem,
        "webhooks.disable_after_hours",
        c.disable_after_hours,
        0..=8760,
    );
    let mut allow = Vec::new();
    for (i, text) in c.allow_addresses.iter().enumerate() {
        match Cidr::parse(text) {
            Ok(cidr) => allow.push(cidr),
            Err(e) => problem(&format!("webhooks.allow_addresses[{i}]"), e.to_string()),
        }
    }
    if let Some(ca) = &c.ca_file {
        if !ca.is_file() {
            problem(
                "webhooks.ca_file",
                format!("{} does not exist or is not a file", ca.display()),
            );
        }
    }
    AddressPolicy {
        allow,
        deny_private: c.deny_private_addresses,
    }
}
