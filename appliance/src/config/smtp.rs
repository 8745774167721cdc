//! `[smtp]`: the mail relay notifications go through.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::database::secret_value;
use super::secret::Secret;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: String,
    pub username: String,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub from: String,
    pub ca_file: Option<PathBuf>,
    pub timeout_secs: u64,
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with `STARTTLS` (port 587); a server that
    /// does not offer it is refused.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same host or a trusted network.
    None,
}

impl SmtpSecurity {
    pub fn parse(s: &str) -> Option<SmtpSecurity> {
        match s {
            "starttls" => Some(SmtpSecurity::StartTls),
            "tls" => Some(SmtpSecurity::Tls),
            "none" => Some(SmtpSecurity::None),
            _ => None,
        }
    }
}

/// Where and how to send (`Debug` redacts the password).
#[derive(Clone, Debug)]
pub struct SmtpRelay {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub timeout: Duration,
}

/// An address the appliance writes into a command or a header: no
/// control characters, brackets, commas or spaces, one `@`.
pub fn check_address(address: &str) -> Result<(), String> {
    let bad = address.len() > 254
        || address
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "<>,;\"()[]\\".contains(c))
        || address.matches('@').count() != 1
        || address.starts_with('@')
        || address.ends_with('@')
        || address.ends_with('.');
    if bad {
        Err(format!(
            "{address:?} is not an e-mail address; expected name@domain, at most 254 characters"
        ))
    } else {
        Ok(())
    }
}

/// Checks the section; each problem is reported as `(key, message)`. The
/// relay, when `smtp.host` is set.
pub fn check(c: &SmtpConfig, problem: &mut impl FnMut(&str, String)) -> Option<SmtpRelay> {
    if c.host.trim().is_empty() {
        return None;
    }
    let password = secret_value("smtp.password", &c.password, &c.password_file, problem);
    let security = SmtpSecurity::parse(&c.security);
    if security.is_none() {
        problem(
            "smtp.security",
            format!(
                "unknown value `{}`; expected one of: starttls, tls, none",
                c.security
            ),
        );
    }
    if c.port == 0 {
        problem(
            "smtp.port",
            "0 is not a port; expected 1 to 65535 (587 for starttls, 465 for tls)".to_string(),
        );
    }
    if let Err(e) = check_address(&c.from) {
        problem("smtp.from", e);
    }
    if !(1..=300).contains(&c.timeout_secs) {
        problem(
            "smtp.timeout_secs",
            format!("{} is out of range; expected 1 to 300", c.timeout_secs),
        );
    }
    let username = (!c.username.is_empty()).then(|| c.username.clone());
    match (&username, &password) {
        (Some(_), None) => problem(
            "smtp.password",
            "missing: smtp.username is set, so set smtp.password or smtp.password_file".to_string(),
        ),
        (None, Some(_)) => problem(
            "smtp.username",
            "missing: a password is set, so the user name must be too".to_string(),
        ),
        (Some(_), Some(_)) if security == Some(SmtpSecurity::None) => problem(
            "smtp.security",
            "is \"none\", but a password is set: it would cross the network in clear; use starttls or tls".to_string(),
        ),
        _ => {}
    }
    if let Some(ca) = &c.ca_file {
        if !ca.is_file() {
            problem(
                "smtp.ca_file",
                format!("{} does not exist or is not a file", ca.display()),
            );
        }
    }
    Some(SmtpRelay {
        host: c.host.trim().to_string(),
        port: c.port,
        security: security.unwrap_or(SmtpSecurity::StartTls),
        username,
        password,
        from: c.from.clone(),
        timeout: Duration::from_secs(c.timeout_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_cannot_inject_commands_or_headers() {
        for good in ["ada@example.com", "a.b+tag@sub.example.org", "x@localhost"] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "no-at",
            "two@@x",
            "a@b@c",
            "@x.org",
            "x@",
            "a b@x.org",
            "a@x.org\r\nRCPT TO:<evil@x.org>",
            "a@x.org>",
            "<a@x.org",
            "a,b@x.org",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }
}
