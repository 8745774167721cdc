//! A throwaway CA and the server certificates it signs, for TLS peers the
//! tests start (PostgreSQL, a syslog receiver).

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

pub fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("self-signed CA");
    Ca { cert, key }
}

/// A certificate for `localhost` signed by `ca`: (certificate, key), PEM.
pub fn server_cert(ca: &Ca) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("sign");
    (cert.pem(), key.serialize_pem())
}
