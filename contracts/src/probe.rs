//! `/readyz` over TLS, trusting exactly the certificate the server's
//! configuration names (pinned by its bytes: the self-signed default has
//! no CA to check against, and a pinned certificate is stronger than a
//! name check for a probe of this very host).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// What a ready server reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// `None` from releases before the upgrade tool, which did not report
    /// their version there (the tools ask the installed binary instead).
    pub version: Option<String>,
    pub schema_level: u64,
}

#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server presented another certificate than its configured one".to_string(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client configuration that trusts exactly the (first) certificate
/// in `cert_file`, whatever its names: for a client of this very host.
pub fn client_config(cert_file: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let cert = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("cannot read {}: {e}", cert_file.display()))?
        .next()
        .ok_or_else(|| format!("{} holds no certificate", cert_file.display()))?
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { cert, provider }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The address a probe on this host connects to for a server listening on
/// `listen`: the loopback address of the same family when it listens on
/// every address.
pub fn local_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// How a probe reaches the server.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    /// HTTPS, trusting exactly the certificate in this file.
    Pinned(&'a Path),
    /// Plain HTTP (`tls.enabled = false`).
    Plain,
}

/// An answer: the status code and at most the bytes asked for of the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One `GET path` (HTTP/1.0, so the body is never chunked), with a bearer
/// token when given; reads at most `limit` bytes of the answer.
pub fn get(
    addr: SocketAddr,
    transport: Transport<'_>,
    path: &str,
    bearer: Option<&str>,
    limit: u64,
) -> Result<Answer, String> {
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let authorization = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{authorization}\r\n");
    let mut response = Vec::new();
    match transport {
        Transport::Pinned(cert_file) => {
            let config = client_config(cert_file)?;
            let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
            let mut conn =
                rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
            let mut tls = rustls::Stream::new(&mut conn, &mut sock);
            tls.write_all(request.as_bytes())
                .map_err(|e| format!("{addr}: {e}"))?;
            let _ = tls.take(limit).read_to_end(&mut response);
        }
        Transport::Plain => {
            sock.write_all(request.as_bytes())
                .map_err(|e| format!("{addr}: {e}"))?;
            let _ = (&mut sock).take(limit).read_to_end(&mut response);
        }
    }
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{addr} sent no HTTP response"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{addr} sent no HTTP status"))?;
    Ok(Answer {
        status,
        body: response[split + 4..].to_vec(),
    })
}

/// One GET /readyz: `Ok(Ready)` on 200, `Err` with the reason otherwise.
pub fn readyz(addr: SocketAddr, cert_file: &Path) -> Result<Ready, String> {
    // Bounded: a readiness answer is a few hundred bytes.
    let answer = get(
        addr,
        Transport::Pinned(cert_file),
        "/readyz",
        None,
        64 * 1024,
    )?;
    let json: serde_json::Value = serde_json::from_slice(&answer.body)
        .map_err(|_| format!("/readyz answered {}", answer.status))?;
    if answer.status != 200 {
        return Err(format!(
            "/readyz answered {}: {}",
            answer.status, json["reasons"]
        ));
    }
    Ok(Ready {
        version: json["version"].as_str().map(str::to_string),
        schema_level: json["schema_level"].as_u64().unwrap_or(0),
    })
}

/// Polls `/readyz` until it answers ready or `limit` passes.
pub fn wait_ready(addr: SocketAddr, cert_file: &Path, limit: Duration) -> Result<Ready, String> {
    let start = Instant::now();
    loop {
        match readyz(addr, cert_file) {
            Ok(ready) => return Ok(ready),
            Err(e) if start.elapsed() >= limit => {
                return Err(format!("not ready after {} s: {e}", limit.as_secs()))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
