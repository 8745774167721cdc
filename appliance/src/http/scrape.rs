//! Who may read `/metrics`: loopback (only while the server terminates TLS
//! itself), the address blocks of `metrics.allow_addresses`, or a client
//! presenting the bearer token of `metrics.token_file` (Prometheus's
//! `authorization.credentials_file`). Everyone else is refused.
//!
//! With `tls.enabled = false` the server sits behind a TLS-terminating
//! proxy, which connects from loopback on behalf of every client: loopback
//! then proves nothing and is not trusted.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::RwLock;

use axum::http::HeaderMap;

use crate::config::Cidr;
use crate::config::{MetricsAccess, Secret};

/// Why a scrape was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token configured, and the address is not one that may scrape.
    Address,
    /// A token is configured and the request carries none.
    TokenMissing,
    /// The request carries a bearer token that is not the configured one.
    TokenWrong,
}

impl Refusal {
    /// What the client is told (never the token, never the allowed blocks).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Address => {
                "/metrics is answered only to loopback (while the server terminates TLS), to \
                 the addresses in metrics.allow_addresses, or with the bearer token of \
                 metrics.token_file; add the scraper's address or configure a token"
            }
            Refusal::TokenMissing => {
                "/metrics needs the bearer token of metrics.token_file (Authorization: Bearer \
                 …; Prometheus: authorization.credentials_file) or a client address in \
                 metrics.allow_addresses"
            }
            Refusal::TokenWrong => {
                "the bearer token does not match metrics.token_file; give the scraper the \
                 token from that file"
            }
        }
    }
}

/// The access rule of `/metrics`, with the token that SIGHUP may replace.
pub struct ScrapeAccess {
    allow: Vec<Cidr>,
    trust_loopback: bool,
    token_file: Option<PathBuf>,
    /// SHA-256 of the token: compared digest to digest, so the comparison's
    /// time says nothing about the token itself.
    token: RwLock<Option<[u8; 32]>>,
}

fn digest(token: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token).as_ref());
    out
}

impl ScrapeAccess {
    pub fn new(access: &MetricsAccess, tls_enabled: bool) -> ScrapeAccess {
        ScrapeAccess {
            allow: access.allow.clone(),
            trust_loopback: tls_enabled,
            token_file: access.token_file.clone(),
            token: RwLock::new(access.token.as_ref().map(|t| digest(t.expose().as_bytes()))),
        }
    }

    /// Re-reads `metrics.token_file` (SIGHUP). On error the current token is
    /// kept and the error returned; `Ok(false)` when no file is configured.
    pub fn reload(&self) -> Result<bool, crate::config::PrivateFileError> {
        let Some(path) = &self.token_file else {
            return Ok(false);
        };
        let token: Secret = crate::config::read_metrics_token(path)?;
        let new = digest(token.expose().as_bytes());
        if let Ok(mut slot) = self.token.write() {
            *slot = Some(new);
        }
        Ok(true)
    }

    /// Decides one scrape from the client's address and headers.
    pub fn check(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Result<(), Refusal> {
        if let Some(peer) = peer {
            let peer = canonical(peer);
            if (self.trust_loopback && peer.is_loopback())
                || self.allow.iter().any(|c| c.contains(peer))
            {
                return Ok(());
            }
        }
        let expected = self.token.read().ok().and_then(|t| *t);
        let Some(expected) = expected else {
            return Err(Refusal::Address);
        };
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        match presented {
            None => Err(Refusal::TokenMissing),
            Some(token) if digest(token.as_bytes()) == expected => Ok(()),
            Some(_) => Err(Refusal::TokenWrong),
        }
    }
}

/// The credentials of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `::ffff:127.0.0.1` is the IPv4 address it carries.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn access(allow: &[&str], token: Option<&str>, tls: bool) -> ScrapeAccess {
        ScrapeAccess::new(
            &MetricsAccess {
                allow: allow
                    .iter()
                    .map(|c| Cidr::parse(c).expect("cidr"))
                    .collect(),
                token_file: None,
                token: token.map(Secret::new),
            },
            tls,
        )
    }

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(value) = authorization {
            h.insert(
                axum::http::header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("header"),
            );
        }
        h
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("ip"))
    }

    #[test]
    fn loopback_is_trusted_only_while_tls_is_on() {
        let on = access(&[], None, true);
        for addr in ["127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(on.check(ip(addr), &headers(None)), Ok(()), "{addr}");
        }
        assert_eq!(
            on.check(ip("10.0.0.5"), &headers(None)),
            Err(Refusal::Address)
        );
        assert_eq!(on.check(None, &headers(None)), Err(Refusal::Address));
        let off = access(&[], None, false);
        assert_eq!(
            off.check(ip("127.0.0.1"), &headers(None)),
            Err(Refusal::Address)
        );
        assert_eq!(off.check(ip("::1"), &headers(None)), Err(Refusal::Address));
    }

    #[test]
    fn allowed_blocks_pass_without_a_token() {
        let a = access(&["10.1.0.0/16", "fd00::/8"], Some(TOKEN), false);
        assert_eq!(a.check(ip("10.1.200.3"), &headers(None)), Ok(()));
        assert_eq!(a.check(ip("::ffff:10.1.0.9"), &headers(None)), Ok(()));
        assert_eq!(a.check(ip("fd12::1"), &headers(None)), Ok(()));
        assert_eq!(
            a.check(ip("10.2.0.1"), &headers(None)),
            Err(Refusal::TokenMissing)
        );
        let loopback = access(&["127.0.0.1/32"], None, false);
        assert_eq!(loopback.check(ip("127.0.0.1"), &headers(None)), Ok(()));
    }

    #[test]
    fn the_token_opens_it_from_anywhere() {
        let a = access(&[], Some(TOKEN), false);
        let from = ip("203.0.113.7");
        assert_eq!(
            a.check(from, &headers(Some(&format!("Bearer {TOKEN}")))),
            Ok(())
        );
        assert_eq!(
            a.check(from, &headers(Some(&format!("bearer  {TOKEN} ")))),
            Ok(())
        );
        for wrong in [
            format!("Bearer {TOKEN}x"),
            format!("Bearer {}", &TOKEN[1..]),
            "Bearer x".to_string(),
            format!("Basic {TOKEN}"),
        ] {
            let expected = if wrong.starts_with("Basic") {
                Refusal::TokenMissing
            } else {
                Refusal::TokenWrong
            };
            assert_eq!(
                a.check(from, &headers(Some(&wrong))),
                Err(expected),
                "{wrong}"
            );
        }
        assert_eq!(a.check(from, &headers(None)), Err(Refusal::TokenMissing));
        // Without a configured token, a presented one opens nothing.
        let none = access(&[], None, false);
        assert_eq!(
            none.check(from, &headers(Some(&format!("Bearer {TOKEN}")))),
            Err(Refusal::Address)
        );
    }

    #[test]
    fn reload_replaces_the_token_and_keeps_it_on_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metrics-token");
        std::fs::write(&path, format!("{TOKEN}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let a = ScrapeAccess::new(
            &MetricsAccess {
                allow: Vec::new(),
                token_file: Some(path.clone()),
                token: Some(Secret::new(TOKEN)),
            },
            true,
        );
        let from = ip("192.0.2.1");
        let old = headers(Some(&format!("Bearer {TOKEN}")));
        assert_eq!(a.check(from, &old), Ok(()));
        let new_token = "fedcba9876543210fedcba9876543210";
        std::fs::write(&path, new_token).expect("write");
        assert_eq!(a.reload(), Ok(true));
        assert_eq!(a.check(from, &old), Err(Refusal::TokenWrong));
        let new = headers(Some(&format!("Bearer {new_token}")));
        assert_eq!(a.check(from, &new), Ok(()));
        // A broken file keeps the token in use.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(a.reload().is_err());
        assert_eq!(a.check(from, &new), Ok(()));
    }
}
