//! DNS rebinding: a page on another site whose name resolves to this
//! appliance would pass the Origin check for anonymous requests, so only
//! requests that name the appliance in `Host` are served — its configured
//! names (`http.allowed_hosts`, by default `tls.hostnames`, the host's own
//! name and `localhost`) or any IP literal; the port is ignored. Others get
//! 421 with the JSON error body. `/healthz` and `/readyz` answer every name
//! (balancers and kubelets send an IP or nothing).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ErrorBody, ErrorCode};

/// The names this appliance answers to (lower case; `*.example.com`
/// matches one label).
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    names: Arc<[String]>,
}

impl AllowedHosts {
    pub fn new(names: impl IntoIterator<Item = String>) -> AllowedHosts {
        AllowedHosts {
            names: names
                .into_iter()
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// Whether a `Host` value names this appliance.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim();
        // `[v6]:port` or `[v6]`: an IP literal.
        if let Some(rest) = host.strip_prefix('[') {
            return rest
                .split_once(']')
                .is_some_and(|(ip, _)| ip.parse::<IpAddr>().is_ok());
        }
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        };
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names
            .iter()
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(parent) => name
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => *allowed == name,
            })
    }
}

pub async fn middleware(
    State(hosts): State<AllowedHosts>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(host) if !hosts.allows(&host) => {
            let shown: String = host.chars().filter(|c| !c.is_control()).take(100).collect();
            ErrorBody::new(
                ErrorCode::MisdirectedRequest,
                format!(
                    "this server does not answer to the name {shown:?}; use one of its names (an \
                     admin lists them in http.allowed_hosts, or tls.hostnames)"
                ),
            )
            .into_response()
        }
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ips_and_wildcards() {
        let hosts = AllowedHosts::new(
            ["Records.example.com", "localhost", "*.corp.example"].map(String::from),
        );
        for ok in [
            "records.example.com",
            "RECORDS.example.com.:8443",
            "localhost:8443",
            "a.corp.example",
            "10.0.0.7:8443",
            "[::1]:8443",
            "[fd00::1]",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "records.example.com.evil.example",
            "corp.example",
            "a.b.corp.example",
            "[not-an-ip]:1",
            "",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
    }
}
