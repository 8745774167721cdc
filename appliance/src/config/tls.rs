//! `[tls]`: the HTTPS listener's certificate, given or self-signed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::secret::check_private_file;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub enabled: bool,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub hostnames: Vec<String>,
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(c: &TlsConfig, problem: &mut impl FnMut(&str, String)) {
    match (&c.cert_file, &c.key_file) {
        (Some(_), None) => problem(
            "tls.key_file",
            "missing: tls.cert_file is set, so the key must be set too".to_string(),
        ),
        (None, Some(_)) => problem(
            "tls.cert_file",
            "missing: tls.key_file is set, so the certificate must be set too".to_string(),
        ),
        (Some(_), Some(key)) if c.enabled => {
            if let Err(e) = check_private_file(key) {
                problem("tls.key_file", e.to_string());
            }
        }
        _ => {}
    }
    if c.hostnames.is_empty() || c.hostnames.iter().any(|h| h.is_empty()) {
        problem(
            "tls.hostnames",
            "expected a list of one or more non-empty host names".to_string(),
        );
    }
}
