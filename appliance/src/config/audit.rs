//! `[audit]`: where audit entries are forwarded besides the database — a
//! SIEM over syslog (RFC 5424 over TLS, RFC 5425), a JSON-lines file, the
//! journal (one log line per entry).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `host:port` of a syslog receiver speaking TLS (usually port 6514).
    pub syslog_address: Option<String>,
    /// CAs (PEM) trusted for the receiver, besides the system's.
    pub syslog_ca_file: Option<PathBuf>,
    /// A file the entries are appended to, one JSON object per line.
    pub file: Option<PathBuf>,
    /// Each entry also as a log line (target `audit`) for the journal.
    pub journal: bool,
}

/// The checked `[audit]` section: the forwarding destinations.
#[derive(Debug, Clone, Default)]
pub struct AuditForwarding {
    pub syslog: Option<SyslogTarget>,
    pub file: Option<PathBuf>,
    pub journal: bool,
}

impl AuditForwarding {
    /// The configured destinations' names, as metrics and `diagnose` show them.
    pub fn sinks(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.syslog.is_some() {
            out.push("syslog");
        }
        if self.file.is_some() {
            out.push("file");
        }
        if self.journal {
            out.push("journal");
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct SyslogTarget {
    pub host: String,
    pub port: u16,
    pub ca_file: Option<PathBuf>,
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(c: &AuditConfig, problem: &mut impl FnMut(&str, String)) -> AuditForwarding {
    let syslog = c
        .syslog_address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .and_then(|address| {
            let parsed = address.rsplit_once(':').and_then(|(host, port)| {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
                let ok = !host.is_empty()
                    && host
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | ':'));
                ok.then(|| (host.to_string(), port))
            });
            if parsed.is_none() {
                problem(
                    "audit.syslog_address",
                    format!("`{address}`: expected HOST:PORT, e.g. siem.example.com:6514"),
                );
            }
            parsed.map(|(host, port)| SyslogTarget {
                host,
                port,
                ca_file: c.syslog_ca_file.clone(),
            })
        });
    if c.syslog_ca_file.is_some() && c.syslog_address.is_none() {
        problem(
            "audit.syslog_ca_file",
            "is set but audit.syslog_address is not".to_string(),
        );
    }
    if let Some(ca) = &c.syslog_ca_file {
        if !ca.is_file() {
            problem(
                "audit.syslog_ca_file",
                format!("{} does not exist or is not a file", ca.display()),
            );
        }
    }
    if let Some(file) = &c.file {
        if !file.is_absolute() {
            problem(
                "audit.file",
                format!("{} is not an absolute path", file.display()),
            );
        }
    }
    AuditForwarding {
        syslog,
        file: c.file.clone(),
        journal: c.journal,
    }
}
