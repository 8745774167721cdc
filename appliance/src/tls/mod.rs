//! TLS for the HTTPS listener: certificate files or a generated self-signed
//! certificate, and a resolver whose certificate is swapped on SIGHUP without
//! touching open connections.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::{check_private_file, PrivateFileError};

pub mod summary;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} holds no PEM certificate; expected a PEM certificate chain, leaf first")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key; expected a PKCS#8, PKCS#1 or SEC1 PEM key")]
    NoKey { path: String },
    #[error("the private key in {path} is not usable: {reason}")]
    BadKey { path: String, reason: String },
    #[error("the key file is not private: {0}")]
    KeyPermissions(#[from] PrivateFileError),
    #[error("cannot generate the self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Where the certificate and key come from.
#[derive(Debug, Clone)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reads a certificate chain and key into a rustls `CertifiedKey`.
pub fn load_certified_key(paths: &CertPaths) -> Result<CertifiedKey, TlsError> {
    check_private_file(&paths.key)?;
    let read = |p: &Path| {
        fs::read(p).map_err(|e| TlsError::Read {
            path: p.display().to_string(),
            reason: e.to_string(),
        })
    };
    let certs = read_chain(&paths.cert)?;
    let key_pem = read(&paths.key)?;
    let key: PrivateKeyDer<'static> =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
            path: paths.key.display().to_string(),
        })?;
    let signing_key = any_supported_type(&key).map_err(|e| TlsError::BadKey {
        path: paths.key.display().to_string(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified.keys_match().map_err(|e| TlsError::BadKey {
        path: paths.key.display().to_string(),
        reason: format!(
            "it does not belong to the certificate in {} ({e})",
            paths.cert.display()
        ),
    })?;
    Ok(certified)
}

/// The PEM certificate chain in `path`, leaf first.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = fs::read(path).map_err(|e| TlsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

/// SHA-256 fingerprint of the leaf certificate, as colon-separated hex.
pub fn fingerprint(key: &CertifiedKey) -> String {
    let Some(leaf) = key.cert.first() else {
        return String::new();
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
    hex_colons(digest.as_ref())
}

/// Bytes as upper-case hex pairs joined by colons (certificate fingerprints).
fn hex_colons(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Paths of the generated certificate under the state directory.
pub fn self_signed_paths(state_dir: &Path) -> CertPaths {
    let dir = state_dir.join("tls");
    CertPaths {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

/// How long a generated certificate is valid.
pub const SELF_SIGNED_DAYS: i64 = 365;
/// A generated certificate is renewed this long before it expires.
pub const RENEW_BEFORE_DAYS: i64 = 30;

/// What [`ensure_self_signed`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum SelfSigned {
    /// The certificate is good as it is.
    Kept,
    /// There was none: a new key and certificate.
    Created,
    /// A new certificate for the same key (clients pinning the key keep
    /// working), and why.
    Renewed(&'static str),
}

/// Keeps the generated certificate of `paths` valid for `hostnames`:
/// creates it when there is none, and renews it — same key, one year —
/// when it expires within [`RENEW_BEFORE_DAYS`], when it was made valid
/// for longer than a year (by an older release: 1975 to 4096), or when it
/// does not name every host name.
pub fn ensure_self_signed(paths: &CertPaths, hostnames: &[String]) -> Result<SelfSigned, TlsError> {
    let now = time::OffsetDateTime::now_utc();
    let existing = paths.cert.is_file() && paths.key.is_file();
    let reason = if existing {
        let leaf = read_chain(&paths.cert)
            .ok()
            .and_then(|chain| summary::summarize(&chain).ok())
            .and_then(|chain| chain.into_iter().next());
        match leaf {
            None => Some("it could not be read"),
            Some(leaf) if leaf.not_after - leaf.not_before > 400 * 86_400 => {
                Some("it was valid for more than a year")
            }
            Some(leaf) if leaf.not_after - now.unix_timestamp() < RENEW_BEFORE_DAYS * 86_400 => {
                Some("it expires within 30 days")
            }
            Some(leaf) if hostnames.iter().any(|h| !leaf.covers(h)) => {
                Some("it does not name every host name")
            }
            Some(_) => return Ok(SelfSigned::Kept),
        }
    } else {
        None
    };
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = match reason {
        Some(_) => {
            let pem = fs::read_to_string(&paths.key).map_err(|e| TlsError::Read {
                path: paths.key.display().to_string(),
                reason: e.to_string(),
            })?;
            rcgen::KeyPair::from_pem(&pem).map_err(generate)?
        }
        None => rcgen::KeyPair::generate().map_err(generate)?,
    };
    let mut params = rcgen::CertificateParams::new(hostnames.to_vec()).map_err(generate)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!(
            "mogothrow77 self-signed ({})",
            hostnames.first().map(String::as_str).unwrap_or("localhost")
        ),
    );
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let cert = params.self_signed(&key).map_err(generate)?;
    if let Some(dir) = paths.key.parent() {
        fs::create_dir_all(dir).map_err(|e| TlsError::Write {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    if reason.is_none() {
        write_file(&paths.key, key.serialize_pem().as_bytes(), 0o600)?;
    }
    write_file(&paths.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(match reason {
        Some(why) => SelfSigned::Renewed(why),
        None => SelfSigned::Created,
    })
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let err = |e: std::io::Error| TlsError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

/// Serves the current certificate; [`CertResolver::reload`] swaps it.
#[derive(Debug)]
pub struct CertResolver {
    paths: CertPaths,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    pub fn new(paths: CertPaths) -> Result<Self, TlsError> {
        let key = load_certified_key(&paths)?;
        Ok(CertResolver {
            paths,
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// Re-reads the files. On error the old certificate stays in use.
    pub fn reload(&self) -> Result<String, TlsError> {
        let key = Arc::new(load_certified_key(&self.paths)?);
        let fp = fingerprint(&key);
        match self.current.write() {
            Ok(mut guard) => *guard = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
        Ok(fp)
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.current())
    }

    /// When the served certificate expires (Unix time), if it can be read.
    pub fn not_after(&self) -> Option<i64> {
        use x509_cert::der::Decode;
        let key = self.current();
        let leaf = key.cert.first()?;
        let cert = x509_cert::Certificate::from_der(leaf.as_ref()).ok()?;
        let secs = cert
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs();
        i64::try_from(secs).ok()
    }

    fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls server configuration: TLS 1.2+, HTTP/1.1.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Why a CA file cannot be trusted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct CaFileError {
    pub path: String,
    pub reason: String,
}

/// The configuration for outgoing TLS (webhooks, the mail relay, an
/// external database): certificates verified against the CAs of `ca_file`
/// (PEM) and, with `system_roots`, the system's.
pub fn client_config(
    ca_file: Option<&Path>,
    system_roots: bool,
) -> Result<rustls::ClientConfig, CaFileError> {
    let mut roots = rustls::RootCertStore::empty();
    if system_roots {
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    if let Some(path) = ca_file {
        let err = |reason: String| CaFileError {
            path: path.display().to_string(),
            reason,
        };
        let pem = fs::read(path).map_err(|e| err(e.to_string()))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(err("no PEM certificate found".to_string()));
        }
        roots.add_parsable_certificates(certs);
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| CaFileError {
        path: String::new(),
        reason: e.to_string(),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(paths: &CertPaths) -> summary::Summary {
        let chain = read_chain(&paths.cert).expect("chain");
        summary::summarize(&chain).expect("summary").remove(0)
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_generated_certificate_lasts_a_year_and_is_renewed_with_its_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let paths = self_signed_paths(dir.path());
        let hosts = names(&["localhost", "records"]);
        assert_eq!(
            ensure_self_signed(&paths, &hosts).expect("create"),
            SelfSigned::Created
        );
        let first = leaf(&paths);
        let days = (first.not_after - first.not_before) / 86_400;
        assert_eq!(days, SELF_SIGNED_DAYS + 1, "a year (from yesterday)");
        let mode = fs::metadata(&paths.key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let key = fs::read(&paths.key).expect("key");
        assert_eq!(
            ensure_self_signed(&paths, &hosts).expect("again"),
            SelfSigned::Kept
        );

        // A new host name: renewed, same key.
        let more = names(&["localhost", "records", "records.example.com"]);
        assert_eq!(
            ensure_self_signed(&paths, &more).expect("names"),
            SelfSigned::Renewed("it does not name every host name")
        );
        assert!(leaf(&paths).covers("records.example.com"));
        assert_eq!(fs::read(&paths.key).expect("key"), key, "the key is kept");
        load_certified_key(&paths).expect("the key still matches");

        // Expiring soon: renewed.
        let pair = rcgen::KeyPair::from_pem(&String::from_utf8(key.clone()).expect("pem"))
            .expect("key pair");
        let mut params = rcgen::CertificateParams::new(more.clone()).expect("params");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(300);
        params.not_after = now + time::Duration::days(10);
        fs::write(&paths.cert, params.self_signed(&pair).expect("cert").pem()).expect("write");
        assert_eq!(
            ensure_self_signed(&paths, &more).expect("expiring"),
            SelfSigned::Renewed("it expires within 30 days")
        );
        assert!(leaf(&paths).not_after > now.unix_timestamp() + 300 * 86_400);

        // An older release's certificate, valid 1975 to 4096: renewed.
        let old = rcgen::generate_simple_self_signed(more.clone()).expect("old");
        fs::write(&paths.cert, old.cert.pem()).expect("write");
        fs::write(&paths.key, old.key_pair.serialize_pem()).expect("write");
        assert_eq!(
            ensure_self_signed(&paths, &more).expect("old"),
            SelfSigned::Renewed("it was valid for more than a year")
        );
        assert_eq!(
            fs::read_to_string(&paths.key).expect("key"),
            old.key_pair.serialize_pem(),
            "the old key is kept"
        );
        load_certified_key(&paths).expect("matches");
    }
}
