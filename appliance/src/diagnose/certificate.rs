//! The HTTPS certificate: readable, its key private and matching, the chain
//! in order, the configured host names covered, and days to expiry.

use super::{Check, Runbooks};
use crate::config::Settings;
use crate::tls::{self, summary};

const NAME: &str = "TLS certificate";

/// Below this many days the `Mogothrow77CertificateExpiresVerySoon` alert
/// pages; below `WARN_DAYS` the `…ExpiresSoon` one warns.
const FAIL_DAYS: i64 = 2;
const WARN_DAYS: i64 = 14;

pub fn check(settings: &Settings, runbooks: &Runbooks) -> Check {
    let config = &settings.config.tls;
    if !config.enabled {
        return Check::skip(
            NAME,
            "tls.enabled = false: plain HTTP behind a TLS-terminating proxy",
        );
    }
    let replace = |what: &str| {
        runbooks.fix(
            &format!("{what}; then `systemctl reload mogothrow77` (SIGHUP) loads the new files"),
            "runbooks/alerts.md#mogothrow77certificateexpiressoon",
        )
    };
    let (paths, generated) = match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => (
            tls::CertPaths {
                cert: cert.clone(),
                key: key.clone(),
            },
            false,
        ),
        _ => (tls::self_signed_paths(&settings.config.state_dir), true),
    };
    if generated && !paths.cert.exists() {
        return Check::warn(
            NAME,
            "self-signed, not generated yet (`serve` writes it at its first start)",
            replace("set tls.cert_file and tls.key_file to a certificate your clients trust"),
        );
    }
    let chain = tls::load_certified_key(&paths).and_then(|key| {
        summary::summarize(&key.cert).map_err(|e| tls::TlsError::Read {
            path: paths.cert.display().to_string(),
            reason: e.to_string(),
        })
    });
    let chain = match chain {
        Ok(chain) => chain,
        Err(e) => {
            return Check::fail(
                NAME,
                e.to_string(),
                replace("fix the files tls.cert_file and tls.key_file name"),
            )
        }
    };
    let Some(leaf) = chain.first() else {
        return Check::fail(
            NAME,
            format!("{} holds no certificate", paths.cert.display()),
            replace("install a PEM certificate chain, leaf first"),
        );
    };
    verdict(&chain, leaf, &config.hostnames, &replace, now())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The verdict on a chain that was read and whose key matches.
fn verdict(
    chain: &[summary::Summary],
    leaf: &summary::Summary,
    hostnames: &[String],
    replace: &dyn Fn(&str) -> String,
    now: i64,
) -> Check {
    let days = (leaf.not_after - now).div_euclid(86_400);
    let value = format!(
        "{}, names {}, expires in {days} days, SHA-256 {}",
        if leaf.self_signed() {
            "self-signed".to_string()
        } else {
            format!("issued by {}", leaf.issuer)
        },
        leaf.names.join(", "),
        leaf.fingerprint
    );
    if let Some(i) = chain.iter().position(|c| c.not_after <= now) {
        return Check::fail(
            NAME,
            format!("{value}; certificate {} of the chain has expired", i + 1),
            replace("install a renewed certificate"),
        );
    }
    if let Some(i) = chain.iter().position(|c| c.not_before > now) {
        return Check::fail(
            NAME,
            format!(
                "{value}; certificate {} of the chain is not valid yet (check the clock)",
                i + 1
            ),
            replace("install a certificate valid now, or correct this host's clock"),
        );
    }
    if days < FAIL_DAYS {
        return Check::fail(NAME, value, replace("install a renewed certificate now"));
    }
    if let Some(i) = summary::broken_link(chain) {
        return Check::fail(
            NAME,
            format!(
                "{value}; certificate {} was not issued by the next one in the file",
                i + 1
            ),
            replace("order the chain leaf first, then each issuer"),
        );
    }
    let uncovered: Vec<&str> = hostnames
        .iter()
        .filter(|h| !leaf.covers(h))
        .map(String::as_str)
        .collect();
    if !uncovered.is_empty() {
        return Check::warn(
            NAME,
            format!("{value}; not valid for {}", uncovered.join(", ")),
            replace("use a certificate whose names include every entry of tls.hostnames"),
        );
    }
    if days < WARN_DAYS {
        return Check::warn(NAME, value, replace("renew the certificate"));
    }
    if leaf.self_signed() {
        return Check::warn(
            NAME,
            value,
            replace(
                "browsers and clients do not trust a self-signed certificate: set \
                 tls.cert_file and tls.key_file to one your site's CA issued",
            ),
        );
    }
    Check::pass(NAME, value)
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    fn cert(subject: &str, issuer: &str, not_before: i64, not_after: i64) -> summary::Summary {
        summary::Summary {
            subject: subject.to_string(),
            issuer: issuer.to_string(),
            names: vec!["records.example.com".to_string()],
            not_before,
            not_after,
            fingerprint: "AA:BB".to_string(),
        }
    }

    fn status(chain: &[summary::Summary], hosts: &[&str], now: i64) -> (Status, String) {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let c = verdict(chain, &chain[0], &hosts, &|s: &str| s.to_string(), now);
        (c.status, c.value)
    }

    #[test]
    fn each_problem_has_its_verdict() {
        let day = 86_400;
        let leaf = cert("CN=leaf", "CN=ca", 0, 100 * day);
        let ca = cert("CN=ca", "CN=ca", 0, 1000 * day);
        let good = [leaf.clone(), ca.clone()];
        assert_eq!(status(&good, &["records.example.com"], day).0, Status::Pass);
        let (s, value) = status(&good, &["records.example.com", "other.example"], day);
        assert_eq!(s, Status::Warn);
        assert!(value.ends_with("not valid for other.example"), "{value}");
        assert_eq!(status(&good, &[], 90 * day).0, Status::Warn);
        assert_eq!(status(&good, &[], 99 * day).0, Status::Fail);
        let (s, value) = status(&good, &[], 100 * day);
        assert_eq!(s, Status::Fail);
        assert!(value.contains("has expired"), "{value}");
        assert_eq!(status(&good, &[], -1).0, Status::Fail);
        let reversed = [ca.clone(), leaf.clone()];
        assert_eq!(status(&reversed, &[], day).0, Status::Fail);
        let self_signed = [cert("CN=a", "CN=a", 0, 100 * day)];
        let (s, value) = status(&self_signed, &[], day);
        assert_eq!(s, Status::Warn);
        assert!(value.starts_with("self-signed"), "{value}");
    }
}
