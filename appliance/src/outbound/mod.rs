//! Outbound HTTP for webhook deliveries and trace exports: one POST, to
//! an address the guard ([`guard`]) let through, over TLS for `https`
//! (verified against the system's CAs and the caller's CA file), within one
//! time limit for the whole exchange, following at most three redirects,
//! each checked like the first hop.
//!
//! Connections are not pooled: deliveries to one receiver are spread over
//! time and replicas, and a fresh connection is re-checked every time.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub mod guard;

use crate::config::AddressPolicy;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 3;

/// Why an attempt did not get a response.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("`{0}` is not a usable webhook URL; expected http:// or https:// with a host and no credentials")]
    BadUrl(String),
    #[error("{host} resolves to {address}, {why}; deliveries there are refused unless an admin adds it to webhooks.allow_addresses")]
    Refused {
        host: String,
        address: String,
        why: &'static str,
    },
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("the HTTP exchange failed: {0}")]
    Http(String),
    #[error("no response within {0} s")]
    Timeout(u64),
    #[error("the receiver redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects,
    #[error("the receiver redirected to {0}, which is not followed (only to http(s) URLs, never from https to http)")]
    BadRedirect(String),
}

impl SendError {
    /// The failure as a metrics label (a fixed set).
    pub fn outcome_label(&self) -> &'static str {
        match self {
            SendError::BadUrl(_) | SendError::Refused { .. } => "refused",
            SendError::Resolve { .. } | SendError::Connect { .. } => "connect_error",
            SendError::Tls { .. } => "tls_error",
            SendError::Timeout(_) => "timeout",
            SendError::Http(_) | SendError::TooManyRedirects | SendError::BadRedirect(_) => {
                "http_error"
            }
        }
    }

    /// Errors another attempt cannot cure (the URL or the policy must change).
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::BadUrl(_) | SendError::Refused { .. })
    }
}

/// Where an attempt got to: the last URL and address tried.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub url: String,
    pub address: Option<SocketAddr>,
}

/// The delivery client.
#[derive(Clone)]
pub struct Outbound {
    tls: TlsConnector,
    policy: AddressPolicy,
    timeout: Duration,
    user_agent: &'static str,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read webhooks.ca_file {path}: {reason}")]
pub struct CaFileError {
    pub path: String,
    pub reason: String,
}

/// A parsed target.
/// Where an http(s) URL leads.
#[derive(Debug, Clone)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written.
    pub authority: String,
    /// The path and query (`/` when empty).
    pub path: String,
}

/// Reads an http(s) URL with a host and without credentials.
pub fn target(url: &str) -> Result<Target, SendError> {
    let bad = || SendError::BadUrl(url.to_string());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad()),
    };
    let authority = uri.authority().ok_or_else(bad)?;
    if authority.as_str().contains('@') {
        return Err(bad());
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(bad());
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok(Target {
        https,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        authority: authority.as_str().to_string(),
        path: uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string()),
    })
}

/// Checks a URL an admin enters (scheme, host, no credentials); where it
/// resolves is checked at delivery, when it matters.
pub fn check_url(url: &str) -> Result<(), SendError> {
    if url.len() > 2000 {
        let start: String = url.chars().take(40).collect();
        return Err(SendError::BadUrl(format!("{start}…")));
    }
    target(url).map(|_| ())
}

impl Outbound {
    pub fn new(
        policy: AddressPolicy,
        timeout: Duration,
        ca_file: Option<&Path>,
        user_agent: &'static str,
    ) -> Result<Outbound, CaFileError> {
        let config = crate::tls::client_config(ca_file, true).map_err(|e| CaFileError {
            path: e.path,
            reason: e.reason,
        })?;
        Ok(Outbound {
            tls: TlsConnector::from(Arc::new(config)),
            policy,
            timeout,
            user_agent,
        })
    }

    /// POSTs `body` with `headers` to `url`; the response's status, or why
    /// there was none. `trace` tells where the attempt got to either way.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(impl AsRef<str>, String)],
        body: Bytes,
        trace: &mut Trace,
    ) -> Result<StatusCode, SendError> {
        let seconds = self.timeout.as_secs();
        match tokio::time::timeout(self.timeout, self.follow(url, headers, body, trace)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Timeout(seconds)),
        }
    }

    async fn follow(
        &self,
        url: &str,
        headers: &[(impl AsRef<str>, String)],
        body: Bytes,
        trace: &mut Trace,
    ) -> Result<StatusCode, SendError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            trace.url = url.clone();
            trace.address = None;
            let t = target(&url)?;
            let (status, location) = self.once(&t, headers, body.clone(), trace).await?;
            if !matches!(status.as_u16(), 301 | 302 | 307 | 308) {
                return Ok(status);
            }
            let Some(location) = location else {
                return Ok(status);
            };
            let next = if location.starts_with('/') && !location.starts_with("//") {
                format!(
                    "{}://{}{location}",
                    if t.https { "https" } else { "http" },
                    t.authority
                )
            } else {
                location
            };
            match target(&next) {
                // Never from https down to http.
                Ok(n) if !t.https || n.https => url = next,
                _ => return Err(SendError::BadRedirect(next)),
            }
        }
        Err(SendError::TooManyRedirects)
    }

    /// One exchange: resolve, check, connect, (TLS,) POST.
    async fn once(
        &self,
        t: &Target,
        headers: &[(impl AsRef<str>, String)],
        body: Bytes,
        trace: &mut Trace,
    ) -> Result<(StatusCode, Option<String>), SendError> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((t.host.as_str(), t.port))
            .await
            .map_err(|e| SendError::Resolve {
                host: t.host.clone(),
                reason: e.to_string(),
            })?
            .collect();
        let mut refused = None;
        let mut allowed = Vec::new();
        for a in addresses {
            match self.policy.check(a.ip()) {
                Ok(()) => allowed.push(a),
                Err(why) => {
                    refused.get_or_insert(SendError::Refused {
                        host: t.host.clone(),
                        address: a.ip().to_string(),
                        why: why.describe(),
                    });
                }
            }
        }
        if allowed.is_empty() {
            return Err(refused.unwrap_or_else(|| SendError::Resolve {
                host: t.host.clone(),
                reason: "no addresses".to_string(),
            }));
        }
        let mut last_error = None;
        let mut stream = None;
        for a in allowed {
            trace.address = Some(a);
            match TcpStream::connect(a).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => {
                    last_error = Some(SendError::Connect {
                        address: a.to_string(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        let Some(stream) = stream else {
            return Err(last_error.unwrap_or(SendError::Http("no connection".to_string())));
        };
        let _ = stream.set_nodelay(true);
        let request = Request::builder()
            .method(Method::POST)
            .uri(t.path.as_str())
            .header(header::HOST, t.authority.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, self.user_agent);
        let mut request = request
            .body(Full::new(body))
            .map_err(|e| SendError::Http(e.to_string()))?;
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (
                axum::http::HeaderName::from_bytes(name.as_ref().as_bytes()),
                HeaderValue::from_str(value),
            ) {
                request.headers_mut().insert(n, v);
            }
        }
        if t.https {
            let name = ServerName::try_from(t.host.clone()).map_err(|e| SendError::Tls {
                host: t.host.clone(),
                reason: e.to_string(),
            })?;
            let tls = self
                .tls
                .connect(name, stream)
                .await
                .map_err(|e| SendError::Tls {
                    host: t.host.clone(),
                    reason: e.to_string(),
                })?;
            exchange(TokioIo::new(tls), request).await
        } else {
            exchange(TokioIo::new(stream), request).await
        }
    }
}

async fn exchange<I>(
    io: I,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Option<String>), SendError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| SendError::Http(e.to_string()))?;
    // The connection is driven by its own task, which ends with this
    // exchange however it ends (a timeout drops this future).
    let driver = Aborted(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| SendError::Http(e.to_string()))?;
    drop(driver);
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((response.status(), location))
}

/// Aborts the task it holds when dropped.
struct Aborted(tokio::task::JoinHandle<()>);

impl Drop for Aborted {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        for good in [
            "https://hooks.example.com/in",
            "http://10.0.0.5:8080/x?y=1",
            "http://[::1]:9000/",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://user:pw@example.com/",
            "http:///path",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        let t = target("http://[::1]:9000/a").expect("parses");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9000, "/a")
        );
    }
}
