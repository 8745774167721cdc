//! Signing of deliveries, following the Standard Webhooks scheme so
//! receivers can use its libraries or a few lines of their own:
//!
//! - `webhook-id`: the event's id (the same on every retry and redelivery);
//! - `webhook-timestamp`: seconds since the Unix epoch when the attempt was
//!   signed (receivers reject old ones to stop replays);
//! - `webhook-signature`: `v1,` and the Base64 HMAC-SHA256 of
//!   `{id}.{timestamp}.{body}` under the secret's bytes (the Base64 after
//!   `whsec_`); two signatures, separated by a space, while a rotated
//!   secret's predecessor is still honoured.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::hmac;

/// Prefix of secrets as shown to admins.
const PREFIX: &str = "whsec_";

/// A new secret: 32 random bytes.
pub fn new_secret() -> String {
    format!(
        "{PREFIX}{}",
        STANDARD.encode(crate::identity::random_bytes(32))
    )
}

/// The signature of one attempt under one secret (`v1,…`); `None` when the
/// stored secret is not one this module made.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    Some(format!("v1,{}", STANDARD.encode(ctx.sign().as_ref())))
}

/// The `webhook-signature` header: one signature per secret in use.
pub fn header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let signatures: Option<Vec<String>> = secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect();
    Some(signatures?.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's test suite.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn every_secret_in_use_signs_and_a_foreign_secret_is_refused() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with(PREFIX) && a != b);
        let h = header(&[&a, &b], "evt", 1, b"{}").expect("signs");
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(Some(parts[0]), sign(&a, "evt", 1, b"{}").as_deref());
        assert_ne!(sign(&a, "evt", 2, b"{}"), sign(&a, "evt", 1, b"{}"));
        assert_eq!(sign("not-a-secret", "evt", 1, b"{}"), None);
    }
}
