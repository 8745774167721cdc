//! What a certificate chain says about itself, for `diagnose` and the
//! support bundle: subject, names, validity, fingerprint and whether each
//! certificate was issued by the next. Never the key.

use std::net::IpAddr;

use rustls::pki_types::CertificateDer;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

/// One certificate of a chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses of the subject alternative names.
    pub names: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER, colon-separated hex.
    pub fingerprint: String,
}

impl Summary {
    pub fn self_signed(&self) -> bool {
        self.subject == self.issuer
    }

    /// Whether the certificate is valid for `host` (a DNS name, with a
    /// leftmost `*.` wildcard, or an IP address).
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.names.iter().any(|n| n.parse::<IpAddr>() == Ok(ip));
        }
        self.names.iter().any(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => name == host,
            }
        })
    }
}

/// A certificate that cannot be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("certificate {position} of the chain cannot be parsed: {reason}")]
pub struct ParseError {
    /// 1 for the leaf.
    pub position: usize,
    pub reason: String,
}

/// Summaries of a chain, leaf first.
pub fn summarize(chain: &[CertificateDer<'_>]) -> Result<Vec<Summary>, ParseError> {
    chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            one(der.as_ref()).map_err(|reason| ParseError {
                position: i + 1,
                reason,
            })
        })
        .collect()
}

/// Where a chain breaks: each certificate must be issued by the next one
/// (same name); returns the 1-based position of the first that is not.
pub fn broken_link(chain: &[Summary]) -> Option<usize> {
    chain
        .windows(2)
        .position(|pair| pair[0].issuer != pair[1].subject)
        .map(|i| i + 1)
}

fn one(der: &[u8]) -> Result<Summary, String> {
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
    let tbs = &cert.tbs_certificate;
    let secs = |t: &x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    let mut names = Vec::new();
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id != const_oid_san() {
            continue;
        }
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes()).map_err(|e| e.to_string())?;
        for name in san.0 {
            match name {
                GeneralName::DnsName(dns) => names.push(dns.to_string()),
                GeneralName::IpAddress(octets) => {
                    let bytes = octets.as_bytes();
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    Ok(Summary {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        names,
        not_before: secs(&tbs.validity.not_before),
        not_after: secs(&tbs.validity.not_after),
        fingerprint: super::hex_colons(digest.as_ref()),
    })
}

/// id-ce-subjectAltName (2.5.29.17).
fn const_oid_san() -> x509_cert::der::asn1::ObjectIdentifier {
    x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.29.17")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain_for(names: &[&str]) -> Vec<CertificateDer<'static>> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let cert = rcgen::generate_simple_self_signed(names).expect("generate");
        vec![cert.cert.der().clone()]
    }

    #[test]
    fn a_self_signed_certificate_is_summarized_with_its_names() {
        let chain = summarize(&chain_for(&[
            "records.example.com",
            "10.0.0.7",
            "*.corp.example",
        ]))
        .expect("summary");
        let leaf = &chain[0];
        assert!(leaf.self_signed());
        assert_eq!(
            leaf.names,
            ["records.example.com", "10.0.0.7", "*.corp.example"]
        );
        assert!(leaf.not_after > leaf.not_before);
        assert_eq!(leaf.fingerprint.len(), 32 * 3 - 1);
        assert!(leaf.covers("RECORDS.example.com."));
        assert!(leaf.covers("10.0.0.7"));
        assert!(leaf.covers("a.corp.example"));
        assert!(!leaf.covers("a.b.corp.example"));
        assert!(!leaf.covers("corp.example"));
        assert!(!leaf.covers("10.0.0.8"));
        assert_eq!(broken_link(&chain), None);
    }

    fn named(common_name: &str) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(vec![format!("{common_name}.example")]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("sign").der().clone()
    }

    #[test]
    fn a_chain_whose_next_certificate_did_not_issue_the_one_before_is_named() {
        let chain = summarize(&[named("a"), named("b")]).expect("summary");
        assert_eq!(chain[0].subject, "CN=a");
        assert_eq!(broken_link(&chain), Some(1));
        let alone = summarize(&[named("a")]).expect("summary");
        assert_eq!(broken_link(&alone), None);
    }

    #[test]
    fn garbage_is_a_parse_error_naming_the_position() {
        let mut chain = chain_for(&["a.example"]);
        chain.push(CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]));
        let err = summarize(&chain).expect_err("garbage");
        assert_eq!(err.position, 2);
    }
}
