//! Identity: people, their credentials (passwords, TOTP, API tokens) and
//! browser sessions, the first-admin setup token, sign-in throttling and the
//! installation's server keys. All state lives in PostgreSQL so any replica
//! can serve any request.

pub mod keys;
pub mod password;
pub mod reset;
pub mod sessions;
pub mod setup;
pub mod throttle;
pub mod tokens;
pub mod totp;
pub mod users;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    // SystemRandom only fails when the OS has no entropy source at all, in
    // which case nothing secure can be done: stop rather than go on weak.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        panic!("the operating system's random number generator failed");
    }
    bytes
}

/// A random secret of 32 bytes as URL-safe base64 (43 characters).
pub fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(32))
}

/// Untrusted text made safe to store and show: at most `max` characters,
/// control characters (including NUL, which PostgreSQL text cannot hold)
/// replaced with U+FFFD.
pub fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// SHA-256 of a high-entropy secret: what is stored instead of the secret.
pub fn digest(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// Session lifetimes and sign-in throttling, from the `[auth]` settings.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub lifetimes: sessions::Lifetimes,
    pub throttle: throttle::Limits,
}

impl AuthSettings {
    pub fn from_config(auth: &crate::config::AuthConfig) -> AuthSettings {
        use std::time::Duration;
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        AuthSettings {
            lifetimes: sessions::Lifetimes {
                idle: minutes(auth.session_idle_minutes),
                absolute: minutes(auth.session_absolute_hours * 60),
            },
            throttle: throttle::Limits {
                account_failures: count(auth.lockout_account_failures),
                address_failures: count(auth.lockout_address_failures),
                window: minutes(auth.lockout_window_minutes),
                lockout: minutes(auth.lockout_minutes),
            },
        }
    }
}
