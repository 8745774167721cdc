//! `[http]`: the listener's time and size limits.

use serde::{Deserialize, Serialize};

use super::in_range;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub header_read_timeout_secs: u64,
    pub tls_handshake_timeout_secs: u64,
    pub body_limit_bytes: usize,
    pub drain_delay_secs: u64,
    pub shutdown_grace_secs: u64,
    /// The names requests may use in `Host` (besides IP literals); empty:
    /// `tls.hostnames`, the host's own name and `localhost`.
    pub allowed_hosts: Vec<String>,
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(c: &HttpConfig, problem: &mut impl FnMut(&str, String)) {
    in_range(
        problem,
        "http.header_read_timeout_secs",
        c.header_read_timeout_secs,
        1..=3600,
    );
    in_range(
        problem,
        "http.tls_handshake_timeout_secs",
        c.tls_handshake_timeout_secs,
        1..=3600,
    );
    in_range(
        problem,
        "http.drain_delay_secs",
        c.drain_delay_secs,
        0..=300,
    );
    in_range(
        problem,
        "http.shutdown_grace_secs",
        c.shutdown_grace_secs,
        0..=3600,
    );
    for (i, name) in c.allowed_hosts.iter().enumerate() {
        let bare = name.strip_prefix("*.").unwrap_or(name);
        let ok = !bare.is_empty()
            && bare
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-'));
        if !ok {
            problem(
                &format!("http.allowed_hosts[{i}]"),
                format!("`{name}`: expected a host name such as records.example.com or *.example.com (no port, no scheme)"),
            );
        }
    }
    in_range(
        problem,
        "http.body_limit_bytes",
        c.body_limit_bytes as u64,
        1024..=1 << 30,
    );
}
