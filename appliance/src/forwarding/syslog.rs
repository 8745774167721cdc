//! Syslog for a SIEM: one RFC 5424 message per audit entry, sent over TLS
//! with RFC 5425's octet-counting framing (`LEN SP MSG`).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::Entry;
use crate::config::SyslogTarget;

/// Facility `log audit` (13), severity `notice` (5) for successes and
/// `warning` (4) for failures and refusals.
fn priority(outcome: &str) -> u8 {
    13 * 8 + if outcome == "success" { 5 } else { 4 }
}

/// The SD-ID's enterprise number: 32473, reserved for documentation
/// (RFC 5612); receivers match on the name `mogothrow77`.
const SD_ID: &str = "mogothrow77@32473";

/// An SD-PARAM value: `"`, `\` and `]` escaped (RFC 5424, 6.3.3).
fn sd_value(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' | ']' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

/// A header field: printable US-ASCII without spaces, at most `max`
/// characters, `-` when empty (RFC 5424, 6.2).
fn header_field(value: &str, max: usize) -> String {
    let field: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if field.is_empty() {
        "-".to_string()
    } else {
        field
    }
}

/// The RFC 5424 message of one entry: structured data names the entry
/// (seq, action, outcome, actor, target); the message is the entry as JSON.
pub fn message(entry: &Entry, hostname: &str) -> String {
    format!(
        "<{}>1 {} {} mogothrow77 {} {} [{SD_ID} seq=\"{}\" action=\"{}\" outcome=\"{}\" actor=\"{}\" target=\"{}\"] {}",
        priority(&entry.outcome),
        entry.occurred_at,
        header_field(hostname, 255),
        std::process::id(),
        header_field(&entry.action, 32),
        entry.seq,
        sd_value(&entry.action),
        sd_value(&entry.outcome),
        sd_value(&entry.actor),
        sd_value(&entry.target),
        entry.json()
    )
}

/// RFC 5425 framing.
fn frame(message: &str) -> String {
    format!("{} {message}", message.len())
}

/// A TLS connection to the receiver, opened on demand.
pub struct Syslog {
    target: SyslogTarget,
    tls: TlsConnector,
    stream: Option<TlsStream<TcpStream>>,
    hostname: String,
}

impl Syslog {
    pub fn new(target: SyslogTarget) -> Result<Syslog, String> {
        let config = crate::tls::client_config(target.ca_file.as_deref(), true)
            .map_err(|e| format!("audit.syslog_ca_file {e}"))?;
        Ok(Syslog {
            target,
            tls: TlsConnector::from(Arc::new(config)),
            stream: None,
            hostname: crate::privileges::host_name(),
        })
    }

    /// Whether what was sent so far can be taken as received: the
    /// connection is still open (a receiver that stopped closed it, and what
    /// was sent since it last was confirmed is sent again).
    pub async fn still_open(&mut self) -> bool {
        let Some(stream) = self.stream.as_mut() else {
            return false;
        };
        let mut buf = [0u8; 256];
        let open = match tokio::time::timeout(Duration::from_millis(5), stream.read(&mut buf)).await
        {
            // Nothing to read: still open.
            Err(_) => true,
            Ok(Ok(0)) | Ok(Err(_)) => false,
            // Receivers send nothing; ignore it if one does.
            Ok(Ok(_)) => true,
        };
        if !open {
            self.stream = None;
        }
        open
    }

    /// Sends the entries in order; on any failure the connection is dropped
    /// (the caller sends them again from the last confirmed entry).
    pub async fn send(&mut self, entries: &[Entry]) -> Result<(), String> {
        if self.stream.is_none() {
            self.stream = Some(self.connect().await?);
        }
        let mut out = String::new();
        for entry in entries {
            out.push_str(&frame(&message(entry, &self.hostname)));
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err("no connection".to_string());
        };
        let written = async {
            stream.write_all(out.as_bytes()).await?;
            stream.flush().await
        };
        match tokio::time::timeout(Duration::from_secs(30), written).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.stream = None;
                Err(format!("writing to {}: {e}", self.address()))
            }
            Err(_) => {
                self.stream = None;
                Err(format!(
                    "writing to {}: no progress in 30 s",
                    self.address()
                ))
            }
        }
    }

    fn address(&self) -> String {
        format!("{}:{}", self.target.host, self.target.port)
    }

    async fn connect(&self) -> Result<TlsStream<TcpStream>, String> {
        let address = self.address();
        let tcp = tokio::time::timeout(
            Duration::from_secs(10),
            TcpStream::connect((self.target.host.as_str(), self.target.port)),
        )
        .await
        .map_err(|_| format!("connecting to {address}: timed out"))?
        .map_err(|e| format!("connecting to {address}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(self.target.host.clone())
            .map_err(|e| format!("{}: {e}", self.target.host))?;
        tokio::time::timeout(Duration::from_secs(10), self.tls.connect(name, tcp))
            .await
            .map_err(|_| format!("TLS with {address}: timed out"))?
            .map_err(|e| format!("TLS with {address}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_one_framed_rfc_5424_message() {
        let entry = Entry {
            seq: 7,
            occurred_at: "2026-12-07T06:00:00.123Z".to_string(),
            actor_id: Some(1),
            actor: "ad\"min]".to_string(),
            action: "auth.login".to_string(),
            target: "user:1".to_string(),
            outcome: "failure".to_string(),
            client_addr: "10.0.0.1".to_string(),
            request_id: "r1".to_string(),
            details: "{\"reason\":\"bad_password\"}".to_string(),
            hash: "ab".to_string(),
        };
        let m = message(&entry, "host one");
        assert!(
            m.starts_with(&format!(
                "<108>1 2026-12-07T06:00:00.123Z hostone mogothrow77 {} auth.login [mogothrow77@32473 seq=\"7\" action=\"auth.login\" outcome=\"failure\" actor=\"ad\\\"min\\]\" target=\"user:1\"] {{",
                std::process::id()
            )),
            "{m}"
        );
        let framed = frame(&m);
        let (len, rest) = framed.split_once(' ').expect("framed");
        assert_eq!(len.parse::<usize>().expect("length"), rest.len());
        let json: serde_json::Value =
            serde_json::from_str(m.split_once("] ").expect("msg").1).expect("json");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["details"]["reason"], "bad_password");
    }
}
