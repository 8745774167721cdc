//! Scrubbing text before it leaves the host: every known secret value (and
//! its Base64, URL-encoded and hex forms) replaced, then whatever looks like
//! a credential by its shape — URL passwords, `password=`/`token=`/`secret=`
//! values, bearer tokens, API tokens, webhook secrets, session cookies, PEM
//! private keys — and, unless asked to keep them, e-mail addresses.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

/// What replaces a secret.
pub const REDACTED: &str = crate::config::REDACTED;

/// Known secrets shorter than this are not searched for (they would match
/// ordinary text); the shape rules still apply to them.
const SHORTEST: usize = 6;

/// Keys whose value is a secret wherever they appear as `key=value`,
/// `key: value` or `"key":"value"` (case-insensitive).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "sslpassword",
    "token",
    "secret",
    "api_key",
    "apikey",
    "access_token",
    "authorization",
    "cookie",
    "set-cookie",
];

/// Prefixes of the appliance's own credentials, whose rest is redacted.
const CREDENTIAL_PREFIXES: &[&str] = &[
    "Bearer ",
    "bearer ",
    "Basic ",
    crate::identity::tokens::PREFIX,
    "whsec_",
    crate::identity::sessions::COOKIE,
];

#[derive(Debug, Default)]
pub struct Scrubber {
    needles: Vec<String>,
    keep_emails: bool,
}

impl Scrubber {
    pub fn new(keep_emails: bool) -> Scrubber {
        Scrubber {
            needles: Vec::new(),
            keep_emails,
        }
    }

    /// Adds a secret value: it, its encodings, and for a URL its password.
    pub fn secret(&mut self, value: &str) {
        let value = value.trim();
        if let Some(password) = url_password(value) {
            self.secret(&password);
        }
        if value.chars().count() < SHORTEST {
            return;
        }
        let bytes = value.as_bytes();
        let forms = [
            value.to_string(),
            STANDARD.encode(bytes),
            STANDARD_NO_PAD.encode(bytes),
            URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            crate::http::percent_encode(value),
            crate::http::percent_encode(value).replace("%20", "+"),
            hex(bytes),
            hex(bytes).to_uppercase(),
        ];
        for form in forms {
            if !self.needles.contains(&form) {
                self.needles.push(form);
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// Adds a secret held as bytes (a TOTP seed): its Base32, Base64 and hex.
    pub fn secret_bytes(&mut self, bytes: &[u8]) {
        if bytes.len() < SHORTEST {
            return;
        }
        for form in [
            crate::identity::totp::base32_encode(bytes),
            STANDARD.encode(bytes),
            hex(bytes),
        ] {
            self.secret(&form);
        }
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        out = private_keys(&out);
        out = url_passwords(&out);
        for prefix in CREDENTIAL_PREFIXES {
            out = after_prefix(&out, prefix);
        }
        for key in SECRET_KEYS {
            out = key_values(&out, key);
        }
        out = random_strings(&out);
        if !self.keep_emails {
            out = emails(&out);
        }
        out
    }
}

/// The password of a `scheme://user:password@host` URL, or of a libpq
/// key/value string's `password=…`.
fn url_password(value: &str) -> Option<String> {
    if let Some((_, rest)) = value.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next()?;
        let (userinfo, _) = authority.rsplit_once('@')?;
        let (_, password) = userinfo.split_once(':')?;
        return Some(percent_decode(password));
    }
    value.split_whitespace().find_map(|pair| {
        pair.strip_prefix("password=")
            .map(|p| p.trim_matches('\'').to_string())
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_pair = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex_pair) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_value_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '"' | '\'' | '&' | ';' | ',' | '}' | ']' | ')' | '<' | '>'
        )
}

/// `-----BEGIN … PRIVATE KEY-----` blocks, whole (also with their line
/// breaks escaped, as in a JSON log line); a block without its end line
/// takes the rest of the text with it.
fn private_keys(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let label_start = start + BEGIN.len();
        let Some(label_len) = rest[label_start..].find("-----") else {
            break;
        };
        let label = &rest[label_start..label_start + label_len];
        let header_end = label_start + label_len + 5;
        if !label.contains("PRIVATE KEY") || label.len() > 40 {
            out.push_str(&rest[..header_end]);
            rest = &rest[header_end..];
            continue;
        }
        out.push_str(&rest[..start]);
        out.push_str(REDACTED);
        let footer = format!("-----END {label}-----");
        rest = match rest[header_end..].find(&footer) {
            Some(i) => &rest[header_end + i + footer.len()..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Runs of Base64url characters at least this long that mix upper and
/// lower case look like random credentials (session ids, setup tokens).
const RANDOM_RUN: usize = 32;

/// Random-looking runs (see [`RANDOM_RUN`]); hex (digests, trace ids,
/// UUIDs) and lower-case identifiers (metric names) are kept.
fn random_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run_start: Option<usize> = None;
    let flush = |out: &mut String, run: &str| {
        let looks_random = run.len() >= RANDOM_RUN
            && run.chars().any(|c| c.is_ascii_uppercase())
            && run.chars().any(|c| c.is_ascii_lowercase())
            && !run.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        out.push_str(if looks_random { REDACTED } else { run });
    };
    for (i, c) in text.char_indices() {
        let in_run = c.is_ascii_alphanumeric() || c == '_' || c == '-';
        match (in_run, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(start)) => {
                flush(&mut out, &text[start..i]);
                run_start = None;
                out.push(c);
            }
            (false, None) => out.push(c),
            (true, Some(_)) => {}
        }
    }
    if let Some(start) = run_start {
        flush(&mut out, &text[start..]);
    }
    out
}

/// `scheme://user:password@` → `scheme://user:<redacted>@`.
fn url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (before, after) = rest.split_at(i + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || !is_value_char(c))
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@') {
            Some(at) => match authority[..at].find(':') {
                Some(colon) => {
                    out.push_str(&authority[..=colon]);
                    out.push_str(REDACTED);
                    out.push_str(&authority[at..]);
                }
                None => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

/// The value after `prefix` (a token's own prefix is kept, so a reader
/// still sees what kind of credential was there).
fn after_prefix(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let value_start = i + prefix.len();
        out.push_str(&rest[..value_start]);
        let after = &rest[value_start..];
        let after = after.strip_prefix('=').map_or(after, |a| {
            out.push('=');
            a
        });
        let end = after
            .find(|c: char| !is_value_char(c))
            .unwrap_or(after.len());
        if end > 0 && !after[..end].starts_with(REDACTED) {
            out.push_str(REDACTED);
        } else {
            out.push_str(&after[..end]);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `key=value`, `key: value`, `key = "value"`, `"key":"value"`: the value.
fn key_values(text: &str, key: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find(key) {
        let start = from + found;
        let end_key = start + key.len();
        from = end_key;
        // A whole key: not the tail or head of a longer word.
        let before = text[..start].chars().next_back();
        let after_key = text[end_key..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if word(before) || word(after_key) {
            continue;
        }
        let rest = &text[end_key..];
        let trimmed = rest.trim_start_matches('"').trim_start();
        let Some(separated) = trimmed
            .strip_prefix('=')
            .or_else(|| trimmed.strip_prefix(':'))
        else {
            continue;
        };
        let value = separated.trim_start();
        let (quote, value) = match value.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &value[1..]),
            _ => (None, value),
        };
        let len = match quote {
            Some(q) => value.find(q).unwrap_or(value.len()),
            None => value
                .find(|c: char| !is_value_char(c))
                .unwrap_or(value.len()),
        };
        if len == 0 || value[..len] == *REDACTED {
            continue;
        }
        let value_start = text.len() - value.len();
        out.push_str(&text[copied..value_start]);
        out.push_str(REDACTED);
        copied = value_start + len;
        from = copied;
    }
    out.push_str(&text[copied..]);
    out
}

/// `local@domain.tld` → `<email>`.
fn emails(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, piece) in text.split('@').enumerate() {
        if i == 0 {
            out.push_str(piece);
            continue;
        }
        let local_len = out
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-'))
            .count();
        let domain_len = piece
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
            .unwrap_or(piece.len());
        let domain = piece[..domain_len].trim_end_matches('.');
        let is_email = local_len > 0
            && domain.contains('.')
            && domain
                .rsplit('.')
                .next()
                .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
        if is_email {
            let keep = out.len() - local_len;
            out.truncate(keep);
            out.push_str("<email>");
            out.push_str(&piece[domain.len()..]);
        } else {
            out.push('@');
            out.push_str(piece);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubbed(secrets: &[&str], text: &str) -> String {
        let mut s = Scrubber::new(false);
        for secret in secrets {
            s.secret(secret);
        }
        s.scrub(text)
    }

    #[test]
    fn a_known_secret_goes_in_every_encoding() {
        let secret = "S3cr3t/Pass+word=";
        let text = format!(
            "plain {secret} b64 {} url {} hex {}",
            STANDARD.encode(secret),
            crate::http::percent_encode(secret),
            hex(secret.as_bytes())
        );
        let out = scrubbed(&[secret], &text);
        assert_eq!(
            out,
            "plain <redacted> b64 <redacted> url <redacted> hex <redacted>"
        );
    }

    #[test]
    fn a_database_url_gives_its_password_as_a_secret() {
        let out = scrubbed(
            &["postgres://app:p%40ss-w0rd!@db.example:5432/records"],
            "login failed for p@ss-w0rd! (retrying)",
        );
        assert_eq!(out, "login failed for <redacted> (retrying)");
    }

    #[test]
    fn credentials_are_recognised_by_their_shape() {
        let cases = [
            (
                r#"url = "postgres://app:hunter2@db/x""#,
                r#"url = "postgres://app:<redacted>@db/x""#,
            ),
            (
                "smtp password = \"correct horse\" next",
                "smtp password = \"<redacted>\" next",
            ),
            (
                r#"{"password":"hunter2","user":"bob"}"#,
                r#"{"password":"<redacted>","user":"bob"}"#,
            ),
            (
                "GET /setup?token=abc123&x=1",
                "GET /setup?token=<redacted>&x=1",
            ),
            (
                "Authorization: Bearer m77_abcDEF123",
                "Authorization: <redacted> <redacted>",
            ),
            (
                "cookie __Host-mogothrow77_session=zzz; Path=/",
                "cookie __Host-mogothrow77_session=<redacted>; Path=/",
            ),
            ("secret whsec_QUJD+/== end", "secret whsec_<redacted> end"),
            ("the password_hash column", "the password_hash column"),
            ("tokens issued: 3", "tokens issued: 3"),
        ];
        for (input, expected) in cases {
            assert_eq!(scrubbed(&[], input), expected, "{input}");
        }
    }

    #[test]
    fn private_keys_are_removed_whole_and_certificates_kept() {
        let text = "a\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\
                    -----BEGIN PRIVATE KEY-----\nMIIEv\nQQQ\n-----END PRIVATE KEY-----\nb";
        let out = scrubbed(&[], text);
        assert!(out.contains("BEGIN CERTIFICATE"), "{out}");
        assert!(!out.contains("MIIEv") && !out.contains("QQQ"), "{out}");
        assert!(out.ends_with("<redacted>\nb"), "{out}");
    }

    #[test]
    fn escaped_private_keys_and_random_strings_go() {
        let out = scrubbed(
            &[],
            r#"{"message":"-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n","x":1}"#,
        );
        assert_eq!(out, r#"{"message":"<redacted>\n","x":1}"#);
        let session = "Qm9yZWQtd2l0aC1yYW5kb20tYnl0ZXMtMzItbG9uZw";
        let kept =
            "trace 4bf92f3577b34da6a3ce929d0e0e4736 id 0b9c5d8e-1f2a-4c3b-9d7e-6f5a4b3c2d1e \
                    mogothrow77_http_requests_in_flight_total /usr/lib/postgresql/15/bin/postgres";
        assert_eq!(scrubbed(&[], &format!("s {session} e")), "s <redacted> e");
        assert_eq!(scrubbed(&[], kept), kept);
    }

    #[test]
    fn emails_go_unless_kept() {
        let text = "sent to alice.smith+x@corp.example.com, from admin@localhost";
        assert_eq!(
            Scrubber::new(false).scrub(text),
            "sent to <email>, from admin@localhost"
        );
        assert_eq!(Scrubber::new(true).scrub(text), text);
    }

    #[test]
    fn a_totp_seed_goes_in_base32() {
        let seed = b"12345678901234567890";
        let mut s = Scrubber::new(false);
        s.secret_bytes(seed);
        assert_eq!(
            s.scrub("otpauth secret GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "otpauth secret <redacted>"
        );
    }
}
