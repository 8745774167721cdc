//! A small SMTP client (RFC 5321) for notifications: one message per
//! connection, `STARTTLS` (RFC 3207) or implicit TLS verified against the
//! system's CAs and `smtp.ca_file`, `AUTH PLAIN` only over TLS, within one
//! time limit. A 4xx reply is a transient failure (retried), a 5xx one
//! permanent; the password never reaches a log or an error message.

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{SmtpRelay, SmtpSecurity};

/// Why a message was not accepted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SmtpError {
    /// Worth another attempt (the relay is away, busy, or said 4xx).
    #[error("{0}")]
    Transient(String),
    /// The relay refused for good (5xx): the address, the credentials or
    /// the configuration must change.
    #[error("{0}")]
    Permanent(String),
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read smtp.ca_file {path}: {reason}")]
pub struct CaFileError {
    pub path: String,
    pub reason: String,
}

/// The client, ready to send.
#[derive(Clone)]
pub struct Mailer {
    relay: SmtpRelay,
    tls: TlsConnector,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.relay.host)
            .field("port", &self.relay.port)
            .finish()
    }
}

/// One message.
pub struct Message<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

impl Mailer {
    pub fn new(relay: SmtpRelay, ca_file: Option<&Path>) -> Result<Mailer, CaFileError> {
        let config = crate::tls::client_config(ca_file, true).map_err(|e| CaFileError {
            path: e.path,
            reason: e.reason,
        })?;
        Ok(Mailer {
            relay,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Sends one message; `Ok` once the relay accepted it.
    /// The relay's host name.
    pub fn host(&self) -> &str {
        &self.relay.host
    }

    pub async fn send(&self, message: &Message<'_>) -> Result<(), SmtpError> {
        let seconds = self.relay.timeout.as_secs();
        tokio::time::timeout(self.relay.timeout, self.exchange(message))
            .await
            .map_err(|_| {
                SmtpError::Transient(format!(
                    "the mail relay {}:{} did not finish within {seconds} s",
                    self.relay.host, self.relay.port
                ))
            })?
    }

    async fn exchange(&self, message: &Message<'_>) -> Result<(), SmtpError> {
        let r = &self.relay;
        let tcp = TcpStream::connect((r.host.as_str(), r.port))
            .await
            .map_err(|e| {
                SmtpError::Transient(format!(
                    "cannot connect to the mail relay {}:{}: {e}",
                    r.host, r.port
                ))
            })?;
        match r.security {
            SmtpSecurity::None => self.session(BufReader::new(tcp), true, message).await,
            SmtpSecurity::Tls => {
                let tls = self.handshake(tcp).await?;
                self.session(BufReader::new(tls), true, message).await
            }
            SmtpSecurity::StartTls => {
                let mut s = BufReader::new(tcp);
                expect(&mut s, "the greeting", 220).await?;
                let extensions = ehlo(&mut s).await?;
                if !extensions
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case("STARTTLS"))
                {
                    return Err(SmtpError::Permanent(format!(
                        "the mail relay {} does not offer STARTTLS; set smtp.security to \"tls\" \
                         if it expects TLS from the start",
                        r.host
                    )));
                }
                command(&mut s, "STARTTLS", "STARTTLS", 220).await?;
                let tls = self.handshake(s.into_inner()).await?;
                self.session(BufReader::new(tls), false, message).await
            }
        }
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, SmtpError> {
        let host = &self.relay.host;
        let name = ServerName::try_from(host.clone()).map_err(|e| {
            SmtpError::Permanent(format!("{host} is not a name TLS can check: {e}"))
        })?;
        self.tls.connect(name, tcp).await.map_err(|e| {
            SmtpError::Transient(format!("TLS with the mail relay {host} failed: {e}"))
        })
    }

    /// EHLO (again, after STARTTLS), AUTH, the envelope, the message, QUIT.
    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut s: BufReader<S>,
        greeting: bool,
        message: &Message<'_>,
    ) -> Result<(), SmtpError> {
        let r = &self.relay;
        if greeting {
            expect(&mut s, "the greeting", 220).await?;
        }
        ehlo(&mut s).await?;
        if let (Some(user), Some(password)) = (&r.username, &r.password) {
            if r.security == SmtpSecurity::None {
                return Err(SmtpError::Permanent(
                    "refusing to send the SMTP password without TLS".to_string(),
                ));
            }
            let token = STANDARD.encode(format!("\0{user}\0{}", password.expose()));
            // Written by hand: the token must not appear in an error.
            write_line(&mut s, &format!("AUTH PLAIN {token}")).await?;
            let (code, text) = reply(&mut s).await?;
            check("AUTH PLAIN", 235, code, &text)?;
        }
        command(&mut s, &format!("MAIL FROM:<{}>", r.from), "MAIL FROM", 250).await?;
        command(&mut s, &format!("RCPT TO:<{}>", message.to), "RCPT TO", 250).await?;
        command(&mut s, "DATA", "DATA", 354).await?;
        let data = render(&r.from, message);
        s.get_mut()
            .write_all(data.as_bytes())
            .await
            .map_err(io_error)?;
        s.get_mut().write_all(b".\r\n").await.map_err(io_error)?;
        s.get_mut().flush().await.map_err(io_error)?;
        expect(&mut s, "the end of the message", 250).await?;
        // The message is accepted; a failing QUIT changes nothing.
        let _ = write_line(&mut s, "QUIT").await;
        Ok(())
    }
}

fn io_error(e: std::io::Error) -> SmtpError {
    SmtpError::Transient(format!("the connection to the mail relay failed: {e}"))
}

async fn write_line<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    line: &str,
) -> Result<(), SmtpError> {
    s.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(io_error)?;
    s.get_mut().flush().await.map_err(io_error)
}

/// One reply, possibly of several lines (`250-…` then `250 …`).
async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
) -> Result<(u16, Vec<String>), SmtpError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        // At most 1,001 bytes: a relay that never ends its line cannot make
        // this grow.
        let n = (&mut *s)
            .take(1001)
            .read_line(&mut line)
            .await
            .map_err(io_error)?;
        if n == 0 {
            return Err(SmtpError::Transient(
                "the mail relay closed the connection".to_string(),
            ));
        }
        if line.len() > 1000 || lines.len() > 100 {
            return Err(SmtpError::Transient(
                "the mail relay's reply is too long".to_string(),
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                SmtpError::Transient(format!("the mail relay answered {line:?}, not SMTP"))
            })?;
        let more = line.as_bytes().get(3) == Some(&b'-');
        lines.push(line.get(4..).unwrap_or("").to_string());
        if !more {
            return Ok((code, lines));
        }
    }
}

fn check(what: &str, want: u16, code: u16, text: &[String]) -> Result<(), SmtpError> {
    if code == want {
        return Ok(());
    }
    let said: String = text.join(" ").chars().take(300).collect();
    let message = format!("the mail relay answered {what} with {code} {said}");
    if (400..500).contains(&code) {
        Err(SmtpError::Transient(message))
    } else {
        Err(SmtpError::Permanent(message))
    }
}

async fn expect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    what: &str,
    want: u16,
) -> Result<Vec<String>, SmtpError> {
    let (code, text) = reply(s).await?;
    check(what, want, code, &text)?;
    Ok(text)
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    line: &str,
    what: &str,
    want: u16,
) -> Result<Vec<String>, SmtpError> {
    write_line(s, line).await?;
    expect(s, what, want).await
}

/// EHLO; returns the extensions offered.
async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
) -> Result<Vec<String>, SmtpError> {
    let me = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
        })
        .unwrap_or_else(|| "localhost".to_string());
    let lines = command(s, &format!("EHLO {me}"), "EHLO", 250).await?;
    Ok(lines
        .iter()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// A header value: plain when ASCII, else RFC 2047 encoded; never a line
/// break.
fn header_text(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        clean
    } else {
        format!("=?utf-8?B?{}?=", STANDARD.encode(clean.as_bytes()))
    }
}

/// The message as sent after DATA: headers, and the body in Base64 (so
/// any text passes any relay, and no line can start with a dot).
pub fn render(from: &str, m: &Message<'_>) -> String {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let domain = from.rsplit('@').next().unwrap_or("localhost");
    let body = m.body.replace("\r\n", "\n").replace('\n', "\r\n");
    let encoded = STANDARD.encode(body.as_bytes());
    let mut out = format!(
        "From: Mogothrow77 <{from}>\r\nTo: <{}>\r\nSubject: {}\r\nDate: {date}\r\n\
         Message-ID: <{}@{domain}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\
         Auto-Submitted: auto-generated\r\n\r\n",
        m.to,
        header_text(m.subject),
        uuid::Uuid::new_v4()
    );
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_encode_subject_and_body_safely() {
        let m = Message {
            to: "ada@example.com",
            subject: "Export ready: café\r\nBcc: evil@x.org",
            body: "line one\n.line starting with a dot\nü",
        };
        let text = render("app@example.com", &m);
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(!head.contains("Bcc:"), "{head}");
        assert!(head.contains("Subject: =?utf-8?B?"), "{head}");
        assert!(head.contains("Content-Transfer-Encoding: base64"));
        let decoded = STANDARD
            .decode(body.replace("\r\n", ""))
            .expect("base64 body");
        assert_eq!(
            String::from_utf8(decoded).expect("utf-8"),
            "line one\r\n.line starting with a dot\r\nü"
        );
        assert!(body.lines().all(|l| l.len() <= 76 && !l.starts_with('.')));
    }

    #[test]
    fn four_hundreds_are_transient_five_hundreds_permanent() {
        assert!(matches!(
            check("RCPT TO", 250, 451, &["try later".to_string()]),
            Err(SmtpError::Transient(_))
        ));
        assert!(matches!(
            check("RCPT TO", 250, 550, &["no such user".to_string()]),
            Err(SmtpError::Permanent(m)) if m.contains("550 no such user")
        ));
        assert_eq!(check("DATA", 354, 354, &[]), Ok(()));
    }
}
