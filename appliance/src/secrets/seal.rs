//! One sealed value: AES-256-GCM under a key-encryption key, bound to
//! where it is stored.
//!
//! Layout: `1` (format), the key id's length and its ASCII digits, a
//! 96-bit random nonce, then the ciphertext with its 128-bit tag. The
//! additional data is the value's place (`webhooks.secret:42`), so a
//! sealed value copied into another row or column does not open.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::{Kek, KeyId};

const FORMAT: u8 = 1;

/// Why a sealed value does not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("not a sealed value of a format this release reads")]
    Format,
    #[error("sealed with key {0}, which is not this one")]
    OtherKey(KeyId),
    #[error("does not open: altered, or sealed for another place")]
    Forged,
}

fn cipher(kek: &Kek) -> LessSafeKey {
    // AES-256 takes any 32-byte key: `Kek` holds exactly that.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &kek.key).expect("a 32-byte AES-256 key"))
}

/// Seals `plain` for `place` under `kek`.
pub fn seal(kek: &Kek, place: &str, plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    // As identity::random_bytes: without an entropy source nothing can be
    // sealed safely, so stop rather than reuse a nonce.
    if SystemRandom::new().fill(&mut nonce).is_err() {
        panic!("the operating system's random number generator failed");
    }
    let id = kek.id.as_str().as_bytes();
    let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + plain.len() + 16);
    out.push(FORMAT);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&nonce);
    let mut body = plain.to_vec();
    cipher(kek)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(place.as_bytes()),
            &mut body,
        )
        .expect("AES-GCM seals any value shorter than 64 GiB");
    out.extend_from_slice(&body);
    out
}

/// The id of the key a value was sealed with.
pub fn key_id(sealed: &[u8]) -> Option<KeyId> {
    let (&format, rest) = sealed.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if format != FORMAT || rest.len() < usize::from(len) + NONCE_LEN + 16 {
        return None;
    }
    KeyId::parse(std::str::from_utf8(&rest[..usize::from(len)]).ok()?)
}

/// The value sealed for `place`, when `kek` sealed it there.
pub fn open(kek: &Kek, place: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    let id = key_id(sealed).ok_or(OpenError::Format)?;
    if id != kek.id {
        return Err(OpenError::OtherKey(id));
    }
    let rest = &sealed[2 + id.as_str().len()..];
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Format)?;
    let mut body = body.to_vec();
    let plain = cipher(kek)
        .open_in_place(nonce, Aad::from(place.as_bytes()), &mut body)
        .map_err(|_| OpenError::Forged)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KEY_LEN;

    fn kek(b: u8) -> Kek {
        Kek {
            id: KeyId::from_random([b; 8]),
            key: [b; KEY_LEN],
        }
    }

    #[test]
    fn a_value_opens_only_with_its_key_and_place() {
        let (a, b) = (kek(1), kek(2));
        let sealed = seal(&a, "webhooks.secret:1", b"whsec_x");
        assert!(!sealed.windows(7).any(|w| w == b"whsec_x"));
        assert_eq!(key_id(&sealed), Some(a.id.clone()));
        assert_eq!(
            open(&a, "webhooks.secret:1", &sealed),
            Ok(b"whsec_x".to_vec())
        );
        assert_eq!(
            open(&a, "webhooks.secret:2", &sealed),
            Err(OpenError::Forged)
        );
        assert_eq!(
            open(&b, "webhooks.secret:1", &sealed),
            Err(OpenError::OtherKey(a.id.clone()))
        );
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(
            open(&a, "webhooks.secret:1", &altered),
            Err(OpenError::Forged)
        );
        // A wrong key that claims the right id does not open it either.
        let impostor = Kek {
            id: a.id.clone(),
            key: [9; KEY_LEN],
        };
        assert_eq!(
            open(&impostor, "webhooks.secret:1", &sealed),
            Err(OpenError::Forged)
        );
        // Two seals of one value differ (a fresh nonce each).
        assert_ne!(sealed, seal(&a, "webhooks.secret:1", b"whsec_x"));
    }

    #[test]
    fn generative_sealed_values_open_only_unaltered() {
        let a = kek(5);
        let sealed = seal(&a, "users.totp_secret:1", b"0123456789abcdefghij");
        generative::run("sealed value", &[&sealed], &[&[1], &[0]], |_, input| {
            match open(&a, "users.totp_secret:1", input) {
                // Only the value as sealed opens (GCM's tag covers every byte).
                Ok(plain) => {
                    assert_eq!(plain, b"0123456789abcdefghij");
                    assert_eq!(input, &sealed[..]);
                }
                Err(_) => assert_ne!(input, &sealed[..]),
            }
            let again = seal(&a, "p", input);
            assert_eq!(open(&a, "p", &again).as_deref(), Ok(input));
        });
    }

    #[test]
    fn malformed_values_are_refused_without_panicking() {
        let a = kek(1);
        for bad in [&b""[..], &[1], &[2, 0], &[1, 16, b'a'], &[1; 40]] {
            assert!(open(&a, "p", bad).is_err(), "{bad:?}");
        }
    }
}
