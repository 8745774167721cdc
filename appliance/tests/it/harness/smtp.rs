//! A mail relay for tests, written here from RFC 5321 (not the server's
//! client): EHLO offering STARTTLS and AUTH PLAIN, a self-signed
//! certificate for `localhost`, every message recorded with whether TLS
//! was on and what credentials came; the first `refuse_rcpt` RCPT TO
//! commands are answered 451 (try again later).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// One message as the relay accepted it.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub tls: bool,
    /// `user:password` from AUTH PLAIN.
    pub auth: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, as sent (dot-stuffing undone).
    pub data: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<&str> {
        let head = self.data.split("\r\n\r\n").next()?;
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
    }

    /// The body, Base64-decoded when the message says it is Base64.
    pub fn text(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if self.header("Content-Transfer-Encoding") == Some("base64") {
            let joined: String = body.split_whitespace().collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(joined)
                    .expect("a Base64 body"),
            )
            .expect("UTF-8")
        } else {
            body.to_string()
        }
    }
}

#[derive(Default)]
struct State {
    mails: Vec<Mail>,
    refuse_rcpt: usize,
    rcpt_seen: usize,
}

pub struct Relay {
    pub addr: SocketAddr,
    /// The certificate (PEM) to trust as `smtp.ca_file`.
    pub cert_pem: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// The `[smtp]` table for this relay (STARTTLS, its certificate written
    /// to `dir` as the CA), plus `extra` lines.
    pub fn settings(&self, dir: &std::path::Path, extra: &str) -> String {
        let ca = dir.join("smtp-ca.pem");
        std::fs::write(&ca, &self.cert_pem).expect("write CA");
        format!(
            "[smtp]\nhost = \"localhost\"\nport = {}\nsecurity = \"starttls\"\n\
             from = \"records@example.com\"\nca_file = \"{}\"\n{extra}",
            self.addr.port(),
            ca.display()
        )
    }

    pub async fn start(refuse_rcpt: usize) -> Relay {
        let ck =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![ck.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der())),
        )
        .expect("server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            refuse_rcpt,
            ..State::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (state, acceptor) = (shared.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _ = session(stream, state, acceptor).await;
                });
            }
        });
        Relay {
            addr,
            cert_pem: ck.cert.pem(),
            state,
            task,
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.state.lock().expect("lock").mails.clone()
    }

    pub fn rcpt_seen(&self) -> usize {
        self.state.lock().expect("lock").rcpt_seen
    }
}

async fn session(
    stream: TcpStream,
    state: Arc<Mutex<State>>,
    acceptor: TlsAcceptor,
) -> std::io::Result<()> {
    let mut plain = BufReader::new(stream);
    plain
        .get_mut()
        .write_all(b"220 localhost test relay\r\n")
        .await?;
    if converse(&mut plain, &state, false).await? {
        let tls = acceptor.accept(plain.into_inner()).await?;
        let mut tls = BufReader::new(tls);
        converse(&mut tls, &state, true).await?;
    }
    Ok(())
}

/// Answers commands; true when the client asked for STARTTLS.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    state: &Arc<Mutex<State>>,
    tls: bool,
) -> std::io::Result<bool> {
    let mut mail = Mail {
        tls,
        ..Mail::default()
    };
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).await? == 0 {
            return Ok(false);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        let upper = line.to_ascii_uppercase();
        let answer: String = if upper.starts_with("EHLO ") {
            if tls {
                "250-localhost\r\n250 AUTH PLAIN\r\n".to_string()
            } else {
                "250-localhost\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n".to_string()
            }
        } else if upper == "STARTTLS" && !tls {
            s.get_mut().write_all(b"220 go ahead\r\n").await?;
            return Ok(true);
        } else if let Some(token) = line.strip_prefix("AUTH PLAIN ") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(token)
                .unwrap_or_default();
            let parts: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).to_string())
                .collect();
            mail.auth = Some(format!(
                "{}:{}",
                parts.get(1).map_or("", String::as_str),
                parts.get(2).map_or("", String::as_str)
            ));
            "235 ok\r\n".to_string()
        } else if let Some(from) = upper.strip_prefix("MAIL FROM:") {
            mail.from = line[10..10 + from.len()]
                .trim_matches(['<', '>'])
                .to_string();
            "250 ok\r\n".to_string()
        } else if upper.starts_with("RCPT TO:") {
            let mut st = state.lock().expect("lock");
            st.rcpt_seen += 1;
            if st.rcpt_seen <= st.refuse_rcpt {
                "451 mailbox busy, try again later\r\n".to_string()
            } else {
                mail.to.push(line[8..].trim_matches(['<', '>']).to_string());
                "250 ok\r\n".to_string()
            }
        } else if upper == "DATA" {
            s.get_mut().write_all(b"354 go on\r\n").await?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if s.read_line(&mut l).await? == 0 {
                    return Ok(false);
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(
                    l.strip_prefix('.')
                        .filter(|_| l.starts_with(".."))
                        .unwrap_or(&l),
                );
            }
            mail.data = data;
            state.lock().expect("lock").mails.push(mail.clone());
            "250 queued\r\n".to_string()
        } else if upper == "QUIT" {
            s.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(false);
        } else {
            "500 unknown command\r\n".to_string()
        };
        s.get_mut().write_all(answer.as_bytes()).await?;
    }
}
