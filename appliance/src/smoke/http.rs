//! The smoke check's HTTP client: one request per connection to the base
//! URL, JSON in and out, an API token, TLS verified against the system's
//! CAs (plus `--ca-file`) or pinned to one certificate (`--pin-cert`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::outbound::Target;

/// The most of a response body read (a tiny export and JSON answers).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// How the server's certificate is trusted.
pub enum Trust<'a> {
    /// The system's CAs, and those of this PEM file when given.
    Roots(Option<&'a Path>),
    /// Exactly this certificate (the appliance's own, on its host).
    Pinned(&'a Path),
}

pub struct Client {
    target: Target,
    tls: Option<TlsConnector>,
    token: String,
    timeout: Duration,
}

/// An answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The API's error, for a message: `code: message`.
    pub fn error(&self) -> String {
        let json = self.json();
        match (json["code"].as_str(), json["message"].as_str()) {
            (Some(code), Some(message)) => format!("{} {code}: {message}", self.status),
            _ => format!("HTTP {}", self.status),
        }
    }
}

impl Client {
    pub fn new(
        url: &str,
        trust: Trust<'_>,
        token: String,
        timeout: Duration,
    ) -> Result<Client, String> {
        let target = crate::outbound::target(url.trim_end_matches('/'))
            .map_err(|_| format!("--url {url:?}: expected https://HOST[:PORT] (or http://)"))?;
        let tls = if target.https {
            let config = match trust {
                Trust::Roots(ca_file) => Arc::new(
                    crate::tls::client_config(ca_file, true)
                        .map_err(|e| format!("--ca-file {e}"))?,
                ),
                Trust::Pinned(cert) => {
                    contracts::probe::client_config(cert).map_err(|e| format!("--pin-cert: {e}"))?
                }
            };
            Some(TlsConnector::from(config))
        } else {
            None
        };
        Ok(Client {
            target,
            tls,
            token,
            timeout,
        })
    }

    /// The base URL's path prefix joined with `path` (which starts with `/`).
    fn uri(&self, path: &str) -> String {
        format!("{}{path}", self.target.path.trim_end_matches('/'))
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, String> {
        let what = format!("{method} {path}");
        match tokio::time::timeout(self.timeout, self.exchange(method, path, body)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!(
                "{what}: no answer within {} s",
                self.timeout.as_secs()
            )),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, String> {
        let t = &self.target;
        let stream = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", t.authority))?;
        let _ = stream.set_nodelay(true);
        let mut request = Request::builder()
            .method(method)
            .uri(self.uri(path))
            .header(header::HOST, t.authority.as_str())
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "mogothrow77-smoke")
            .header(header::CONNECTION, "close");
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", self.token)) {
            request = request.header(header::AUTHORIZATION, value);
        }
        let bytes = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(bytes)).map_err(|e| e.to_string())?;
        match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(t.host.clone()).map_err(|e| e.to_string())?;
                let stream = tls
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS with {}: {e}", t.authority))?;
                round_trip(TokioIo::new(stream), request).await
            }
            None => round_trip(TokioIo::new(stream), request).await,
        }
    }
}

async fn round_trip<I>(io: I, request: Request<Full<Bytes>>) -> Result<Answer, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok(Answer { status, body })
    }
    .await;
    driver.abort();
    result
}
