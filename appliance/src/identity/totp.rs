//! Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps) and recovery codes.

use std::fmt;

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use ring::digest;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Length of a newly generated secret, in bytes (160 bits, as RFC 4226 recommends).
const SECRET_LEN: usize = 20;
/// Shortest secret accepted by [`TotpSecret::from_bytes`], in bytes.
const MIN_SECRET_LEN: usize = 16;
/// Longest secret accepted by [`TotpSecret::from_bytes`], in bytes.
const MAX_SECRET_LEN: usize = 64;
/// Length of one time step, in seconds.
const STEP_SECS: u64 = 30;
/// Number of digits in a code.
const DIGITS: usize = 6;
/// `10^DIGITS`.
const MODULUS: u32 = 1_000_000;
/// How many steps either side of the current one [`verify`] accepts.
const SKEW_STEPS: i64 = 1;

/// RFC 4648 base32 alphabet.
const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Characters used in recovery codes: lowercase letters and digits without `0 1 i l o`.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Characters in a recovery code, not counting the dash.
const RECOVERY_LEN: usize = 10;

/// Why a TOTP operation failed; the messages are meant for the person entering the code.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    /// The input is not six digits.
    #[error("the code must be the 6 digits shown in your authenticator app")]
    Malformed,
    /// The code does not match the current time window.
    #[error(
        "the code is not correct; enter the code currently shown in your authenticator app and \
         check that your device's clock is set correctly"
    )]
    Mismatch,
    /// The code was correct but has already been used.
    #[error("this code has already been used; wait for your authenticator app to show a new code")]
    Replayed,
    /// The secret has an unsupported length.
    #[error(
        "the authenticator secret is invalid (it must be 16 to 64 bytes); set up the authenticator \
         app again"
    )]
    BadSecret,
    /// The QR code could not be rendered.
    #[error("could not draw the QR code ({0}); enter the secret key into your authenticator app by hand")]
    Qr(String),
}

/// A shared TOTP secret. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct TotpSecret {
    bytes: Vec<u8>,
}

impl TotpSecret {
    /// Generates a new random 20-byte secret from the operating system's RNG.
    ///
    /// # Panics
    ///
    /// Panics if the operating system's random number generator fails; there is no safe way to
    /// continue without one.
    pub fn generate() -> TotpSecret {
        let mut bytes = vec![0u8; SECRET_LEN];
        fill_random(&mut bytes);
        TotpSecret { bytes }
    }

    /// Wraps existing key material, e.g. loaded from storage; it must be 16 to 64 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<TotpSecret, TotpError> {
        if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            Ok(TotpSecret {
                bytes: bytes.to_vec(),
            })
        } else {
            Err(TotpError::BadSecret)
        }
    }

    /// The raw key bytes, for storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The key as unpadded RFC 4648 base32, the form authenticator apps expect.
    pub fn to_base32(&self) -> String {
        base32_encode(&self.bytes)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpSecret")
            .field(
                "bytes",
                &format_args!("<redacted {} bytes>", self.bytes.len()),
            )
            .finish()
    }
}

/// Fills `buf` from the system RNG, panicking if the RNG is unavailable.
fn fill_random(buf: &mut [u8]) {
    if SystemRandom::new().fill(buf).is_err() {
        panic!("the operating system's random number generator failed");
    }
}

/// Encodes `data` as RFC 4648 base32 without `=` padding.
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                BASE32_ALPHABET[((buffer >> bits) & 0x1f) as usize],
            ));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_ALPHABET[((buffer << (5 - bits)) & 0x1f) as usize],
        ));
    }
    out
}

/// The time step containing `unix_secs`.
fn step_of(unix_secs: u64) -> i64 {
    // u64::MAX / 30 is below i64::MAX, so this never saturates in practice.
    i64::try_from(unix_secs / STEP_SECS).unwrap_or(i64::MAX)
}

/// The code for time step `step` (RFC 4226 HOTP with the step as counter).
fn code_for_step(secret: &TotpSecret, step: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret.bytes);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    format!("{:0width$}", binary % MODULUS, width = DIGITS)
}

/// The 6-digit code for the time `unix_secs`, zero-padded.
pub fn code_at(secret: &TotpSecret, unix_secs: u64) -> String {
    code_for_step(secret, unix_secs / STEP_SECS)
}

/// Compares two byte strings without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    diff == 0
}

/// Checks `code` against the time `unix_secs`, allowing one step of clock skew either way.
///
/// Spaces inside the code are ignored. On success returns the matched step, which the caller
/// must store and pass back as `last_used_step` next time so that each code works only once.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    unix_secs: u64,
    last_used_step: Option<i64>,
) -> Result<i64, TotpError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Malformed);
    }

    let current = step_of(unix_secs);
    let mut fresh_match: Option<i64> = None;
    let mut replayed_match = false;
    // Check every step in the window (no early return) so timing does not reveal which matched.
    for step in current.saturating_sub(SKEW_STEPS)..=current.saturating_add(SKEW_STEPS) {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        if constant_time_eq(code_for_step(secret, counter).as_bytes(), code.as_bytes()) {
            if last_used_step.is_some_and(|last| step <= last) {
                replayed_match = true;
            } else {
                fresh_match = Some(step);
            }
        }
    }

    match fresh_match {
        Some(step) => Ok(step),
        None if replayed_match => Err(TotpError::Replayed),
        None => Err(TotpError::Mismatch),
    }
}

/// The `otpauth://totp/...` URI that authenticator apps import (usually via a QR code).
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let issuer = crate::http::percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        account = crate::http::percent_encode(account),
        secret = secret.to_base32(),
    )
}

/// Renders `uri` as a standalone SVG QR code (error correction level M, with quiet zone).
pub fn qr_svg(uri: &str) -> Result<String, TotpError> {
    let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
        .map_err(|e| TotpError::Qr(e.to_string()))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// Generates `n` random recovery codes of the form `xxxxx-xxxxx` (about 49 bits each).
///
/// # Panics
///
/// Panics if the operating system's random number generator fails.
pub fn generate_recovery_codes(n: usize) -> Vec<String> {
    // Largest multiple of the alphabet size that fits in a byte; bytes at or above it are
    // rejected so that every character is equally likely.
    let limit = 256 - 256 % RECOVERY_ALPHABET.len();
    let mut pool = [0u8; 64];
    let mut pos = pool.len();
    let mut next_char = || loop {
        if pos == pool.len() {
            fill_random(&mut pool);
            pos = 0;
        }
        let byte = usize::from(pool[pos]);
        pos += 1;
        if byte < limit {
            return char::from(RECOVERY_ALPHABET[byte % RECOVERY_ALPHABET.len()]);
        }
    };

    (0..n)
        .map(|_| {
            let mut code = String::with_capacity(RECOVERY_LEN + 1);
            for i in 0..RECOVERY_LEN {
                if i == RECOVERY_LEN / 2 {
                    code.push('-');
                }
                code.push(next_char());
            }
            code
        })
        .collect()
}

/// Turns user input into the canonical `xxxxx-xxxxx` form, or `None` if it cannot be a recovery code.
///
/// Case, spaces and dashes are ignored.
pub fn normalize_recovery_code(input: &str) -> Option<String> {
    let chars: Vec<char> = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    if chars.len() != RECOVERY_LEN
        || !chars
            .iter()
            .all(|c| c.is_ascii() && RECOVERY_ALPHABET.contains(&(*c as u8)))
    {
        return None;
    }
    let mut canonical = String::with_capacity(RECOVERY_LEN + 1);
    canonical.extend(&chars[..RECOVERY_LEN / 2]);
    canonical.push('-');
    canonical.extend(&chars[RECOVERY_LEN / 2..]);
    Some(canonical)
}

/// SHA-256 of a recovery code's canonical form, for storage and lookup.
///
/// The input is normalized first when possible, so `"ABCDE FGHJK"` and `"abcde-fghjk"` give the
/// same digest; input that is not a valid code is hashed as given (and so matches no stored code).
pub fn recovery_code_digest(code: &str) -> [u8; 32] {
    let canonical = normalize_recovery_code(code);
    let bytes = canonical.as_deref().unwrap_or(code).as_bytes();
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::process::Command;

    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").expect("20-byte RFC secret")
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 Appendix B, SHA-1 rows; the 6-digit code is the last 6 digits of the 8-digit value.
        let cases: [(u64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        let secret = rfc_secret();
        for (time, eight) in cases {
            assert_eq!(code_at(&secret, time), &eight[2..], "time {time}");
        }
    }

    #[test]
    fn base32_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (input, expected) in cases {
            assert_eq!(base32_encode(input.as_bytes()), expected, "input {input:?}");
        }
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn secret_lengths() {
        assert_eq!(TotpSecret::generate().as_bytes().len(), 20);
        assert_ne!(
            TotpSecret::generate().as_bytes(),
            TotpSecret::generate().as_bytes()
        );
        for ok in [16, 20, 32, 64] {
            assert!(TotpSecret::from_bytes(&vec![7u8; ok]).is_ok(), "len {ok}");
        }
        for bad in [0, 10, 15, 65, 128] {
            assert!(
                matches!(
                    TotpSecret::from_bytes(&vec![7u8; bad]),
                    Err(TotpError::BadSecret)
                ),
                "len {bad}"
            );
        }
    }

    #[test]
    fn debug_redacts_secret() {
        let secret = TotpSecret::generate();
        let debug = format!("{secret:?}");
        assert!(!debug.contains(&secret.to_base32()), "{debug}");
        assert!(
            !debug.contains(&format!("{:?}", secret.as_bytes())),
            "{debug}"
        );
        assert!(debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn verify_accepts_current_step_and_spaces() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = step_of(now);
        let code = code_at(&secret, now);
        assert_eq!(
            verify(&secret, &code, now, None).expect("current code"),
            step
        );
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(
            verify(&secret, &spaced, now, None).expect("spaced code"),
            step
        );
        assert_eq!(
            verify(&secret, &format!(" {code} "), now, None).expect("padded code"),
            step
        );
    }

    #[test]
    fn verify_skew_window() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = step_of(now);
        let code_for = |delta: i64| {
            let counter = u64::try_from(step + delta).expect("positive step");
            code_for_step(&secret, counter)
        };
        assert_eq!(
            verify(&secret, &code_for(-1), now, None).expect("previous step"),
            step - 1
        );
        assert_eq!(
            verify(&secret, &code_for(1), now, None).expect("next step"),
            step + 1
        );
        for delta in [-2, 2] {
            assert!(
                matches!(
                    verify(&secret, &code_for(delta), now, None),
                    Err(TotpError::Mismatch)
                ),
                "delta {delta}"
            );
        }
    }

    #[test]
    fn verify_rejects_wrong_code() {
        let secret = rfc_secret();
        let now = 59;
        let code = code_at(&secret, now);
        let wrong: String = code
            .chars()
            .map(|c| if c == '0' { '1' } else { '0' })
            .collect();
        assert!(matches!(
            verify(&secret, &wrong, now, None),
            Err(TotpError::Mismatch)
        ));
    }

    #[test]
    fn verify_rejects_replay() {
        let secret = rfc_secret();
        let now = 2_000_000_000;
        let code = code_at(&secret, now);
        let step = verify(&secret, &code, now, None).expect("first use");
        assert!(matches!(
            verify(&secret, &code, now, Some(step)),
            Err(TotpError::Replayed)
        ));
        // A code from an older step than the last used one is a replay as well.
        assert!(matches!(
            verify(&secret, &code, now, Some(step + 1)),
            Err(TotpError::Replayed)
        ));
        // The next step's code is still fine.
        let next = now + STEP_SECS;
        let next_code = code_at(&secret, next);
        assert_eq!(
            verify(&secret, &next_code, next, Some(step)).expect("next code"),
            step + 1
        );
    }

    #[test]
    fn verify_rejects_malformed() {
        let secret = rfc_secret();
        for input in ["", "12345", "1234567", "abcdef", "12 34 5x", "١٢٣٤٥٦"] {
            assert!(
                matches!(verify(&secret, input, 59, None), Err(TotpError::Malformed)),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn matches_oathtool() {
        let secrets = [
            TotpSecret::generate(),
            TotpSecret::from_bytes(&[0xa5; 16]).expect("16-byte secret"),
            TotpSecret::from_bytes(&[0x3c; 64]).expect("64-byte secret"),
        ];
        let times: [u64; 7] = [
            0,
            29,
            30,
            1_111_111_109,
            1_700_000_000,
            1_767_225_600,
            4_102_444_799,
        ];
        for secret in &secrets {
            let b32 = secret.to_base32();
            for time in times {
                let output = match Command::new("oathtool")
                    .args(["--totp", "--base32", "--digits=6"])
                    .arg(format!("--now=@{time}"))
                    .arg(&b32)
                    .output()
                {
                    Ok(output) => output,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                        "oathtool is not installed; install it with `apt-get install oathtool`"
                    ),
                    Err(e) => panic!("could not run oathtool: {e}"),
                };
                assert!(
                    output.status.success(),
                    "oathtool failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                let expected = String::from_utf8(output.stdout).expect("oathtool prints ASCII");
                assert_eq!(
                    code_at(secret, time),
                    expected.trim(),
                    "time {time}, key length {}",
                    secret.as_bytes().len()
                );
            }
        }
    }

    #[test]
    fn otpauth_uri_format() {
        let uri = otpauth_uri(&rfc_secret(), "Mogothrow77 Records", "ana.ruiz@example.org");
        assert_eq!(
            uri,
            "otpauth://totp/Mogothrow77%20Records:ana.ruiz%40example.org\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Mogothrow77%20Records\
             &algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            crate::http::percent_encode("a:b/c?d&é~"),
            "a%3Ab%2Fc%3Fd%26%C3%A9~"
        );
    }

    #[test]
    fn qr_svg_is_plain_svg() {
        let uri = otpauth_uri(&TotpSecret::generate(), "Mogothrow77", "admin");
        let svg = qr_svg(&uri).expect("QR code renders");
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.to_ascii_lowercase().contains("<script"));
    }

    #[test]
    fn qr_svg_reports_oversized_input() {
        let too_long = "x".repeat(10_000);
        assert!(matches!(qr_svg(&too_long), Err(TotpError::Qr(_))));
    }

    #[test]
    fn recovery_codes_format_and_uniqueness() {
        let codes = generate_recovery_codes(1000);
        assert_eq!(codes.len(), 1000);
        for code in &codes {
            assert_eq!(code.len(), 11, "{code}");
            for (i, c) in code.chars().enumerate() {
                if i == 5 {
                    assert_eq!(c, '-', "{code}");
                } else {
                    assert!(RECOVERY_ALPHABET.contains(&(c as u8)), "{code}");
                }
            }
            assert_eq!(
                normalize_recovery_code(code).as_deref(),
                Some(code.as_str())
            );
        }
        let unique: HashSet<&String> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
        assert!(generate_recovery_codes(0).is_empty());
    }

    #[test]
    fn normalize_recovery_codes() {
        assert_eq!(
            normalize_recovery_code("ABCDE FGHJK").as_deref(),
            Some("abcde-fghjk")
        );
        assert_eq!(
            normalize_recovery_code(" abcde-fghjk ").as_deref(),
            Some("abcde-fghjk")
        );
        assert_eq!(
            normalize_recovery_code("ab-cd-ef-gh-jk").as_deref(),
            Some("abcde-fghjk")
        );
        for bad in [
            "",
            "abcde-fghj",
            "abcde-fghjkm",
            "abcde-fghj1",
            "abcde-fghj0",
            "abcde-fghjl",
            "abcde-fghjo",
            "abcde-fghj!",
            "abcde-fghjé",
        ] {
            assert_eq!(normalize_recovery_code(bad), None, "input {bad:?}");
        }
    }

    #[test]
    fn recovery_digest_uses_canonical_form() {
        let canonical = recovery_code_digest("abcde-fghjk");
        let expected = digest::digest(&digest::SHA256, b"abcde-fghjk");
        assert_eq!(canonical.as_slice(), expected.as_ref());
        assert_eq!(recovery_code_digest("ABCDE FGHJK"), canonical);
        assert_ne!(recovery_code_digest("abcde-fghjm"), canonical);
    }
}
