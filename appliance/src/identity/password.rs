//! Password hashing (Argon2id, PHC strings) and the password policy.
//!
//! [`hash`], [`verify`] and [`verify_dummy`] are deliberately slow (tens of
//! milliseconds of CPU and ~19 MiB of memory each). They are synchronous: async
//! callers must run them inside `tokio::task::spawn_blocking`, never directly
//! on a runtime worker thread.

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::password_hash::Error as HashError;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    ARGON2ID_IDENT,
};
use ring::rand::{SecureRandom, SystemRandom};

/// Argon2 memory cost in KiB (OWASP Password Storage Cheat Sheet).
pub const M_COST: u32 = 19_456;
/// Argon2 iterations (OWASP Password Storage Cheat Sheet).
pub const T_COST: u32 = 2;
/// Argon2 parallelism (OWASP Password Storage Cheat Sheet).
pub const P_COST: u32 = 1;
/// Salt length in bytes.
pub const SALT_LEN: usize = 16;
/// Hash output length in bytes.
pub const OUTPUT_LEN: usize = 32;

/// Minimum password length, in Unicode scalar values.
pub const MIN_LENGTH: usize = 12;
/// Maximum password length, in Unicode scalar values (bounds Argon2 input).
pub const MAX_LENGTH: usize = 256;

/// Commonly used and breached passwords, one per line, lowercase.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// Shortest normalised list entry that is matched as a password's stem.
const MIN_STEM_LEN: usize = 4;

/// Context strings shorter than this are ignored.
const MIN_CONTEXT_LEN: usize = 3;

/// Parts of context strings (e.g. one word of a display name) shorter than
/// this are ignored, to avoid rejecting passwords for containing "ann".
const MIN_CONTEXT_PART_LEN: usize = 4;

/// Failure to hash or verify a password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Hashing itself failed (random number generator, memory, parameters).
    #[error(
        "password hashing failed: {0}; retry, and if it persists check the appliance's \
         free memory and its system random number generator"
    )]
    Hash(String),
    /// The stored hash is not a usable Argon2 PHC string.
    #[error(
        "the stored password hash is malformed: {0}; the account cannot log in with a \
         password until an administrator resets it"
    )]
    Malformed(String),
}

impl PasswordError {
    /// Stable snake_case code for logs and API responses.
    pub fn code(&self) -> &'static str {
        match self {
            PasswordError::Hash(_) => "hash_failed",
            PasswordError::Malformed(_) => "malformed_hash",
        }
    }
}

/// Why a new password was rejected. Messages are meant for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Fewer than `min` characters.
    #[error(
        "The password is too short: use at least {min} characters. A passphrase of three \
         or four unrelated words is long enough and easy to remember."
    )]
    TooShort { min: usize },
    /// More than `max` characters.
    #[error("The password is too long: use at most {max} characters.")]
    TooLong { max: usize },
    /// Contains the user name, display name or product name.
    #[error(
        "The password contains \"{fragment}\", which is part of your user name, your name \
         or the product name. Choose a password that cannot be guessed from your account \
         details."
    )]
    ContainsContext { fragment: String },
    /// Mostly one character or one short pattern repeated.
    #[error(
        "The password is mostly one character or one short pattern repeated (like \
         \"aaaa\" or \"abcabc\"). Choose something less predictable, such as several \
         unrelated words."
    )]
    Repetitive,
    /// Mostly a sequence such as "12345", "abcde" or a keyboard row.
    #[error(
        "The password is mostly a predictable sequence, such as \"12345\", \"abcde\" or \
         a keyboard row like \"qwerty\". Choose something less predictable, such as \
         several unrelated words."
    )]
    Sequential,
    /// A commonly used or breached password, or a simple variant of one.
    #[error(
        "The password is a commonly used or breached password, or one with only digits or \
         symbols added or letters swapped for look-alikes (like \"P@ssw0rd2024!\"). \
         Attackers try these first. Choose something less predictable, such as several \
         unrelated words."
    )]
    Common,
}

impl PolicyError {
    /// Stable snake_case code for API responses and translations.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::TooShort { .. } => "too_short",
            PolicyError::TooLong { .. } => "too_long",
            PolicyError::ContainsContext { .. } => "contains_context",
            PolicyError::Repetitive => "repetitive",
            PolicyError::Sequential => "sequential",
            PolicyError::Common => "common",
        }
    }
}

// ---------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(M_COST, T_COST, P_COST, Some(OUTPUT_LEN))
        .map_err(|e| PasswordError::Hash(format!("invalid Argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_with_salt(password: &str, salt: &[u8]) -> Result<String, PasswordError> {
    let phc = hasher()?
        .hash_password_with_salt(password.as_bytes(), salt)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(phc.to_string())
}

/// Hashes `password` with Argon2id (m=19456 KiB, t=2, p=1) and a fresh
/// 16-byte random salt, returning a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
///
/// CPU-heavy: call from `tokio::task::spawn_blocking` in async code.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| PasswordError::Hash("the system random number generator failed".into()))?;
    hash_with_salt(password, &salt)
}

/// Checks `password` against a stored PHC string, using the algorithm and
/// parameters recorded in it (so older hashes keep working).
///
/// Returns `Ok(false)` on a wrong password and `Err` only when the stored hash
/// is malformed or hashing fails. CPU-heavy: call from
/// `tokio::task::spawn_blocking` in async code.
pub fn verify(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::Malformed(e.to_string()))?;
    Algorithm::try_from(parsed.algorithm.as_str()).map_err(|_| {
        PasswordError::Malformed(format!(
            "unsupported algorithm \"{}\" (expected argon2id, argon2i or argon2d)",
            parsed.algorithm.as_str()
        ))
    })?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(PasswordError::Malformed(
            "the salt or hash field is missing".into(),
        ));
    }
    Params::try_from(&parsed)
        .map_err(|e| PasswordError::Malformed(format!("invalid parameters: {e}")))?;

    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(HashError::PasswordInvalid) => Ok(false),
        Err(e @ (HashError::OutOfMemory | HashError::Internal | HashError::Crypto)) => {
            Err(PasswordError::Hash(e.to_string()))
        }
        Err(e) => Err(PasswordError::Malformed(e.to_string())),
    }
}

/// True when `phc` was not made with the current algorithm and parameters
/// (or cannot be parsed), so a successful login should store a fresh [`hash`].
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm != ARGON2ID_IDENT
        || parsed.version != Some(u32::from(Version::V0x13))
        || params.m_cost() != M_COST
        || params.t_cost() != T_COST
        || params.p_cost() != P_COST
        || !params.keyid().is_empty()
        || !params.data().is_empty()
        || parsed.hash.map(|h| h.len()) != Some(OUTPUT_LEN)
        || parsed.salt.map(|s| s.len()) != Some(SALT_LEN)
}

/// Does the same Argon2 work as [`verify`] against a fixed dummy hash, for
/// logins naming an unknown user, so response time does not reveal whether
/// an account exists. The dummy hash is computed on first use.
///
/// CPU-heavy: call from `tokio::task::spawn_blocking` in async code.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy = DUMMY
        .get_or_init(|| hash_with_salt("mogothrow77 dummy password", b"mogothrow77-salt").ok());
    match dummy {
        Some(phc) => {
            let _ = std::hint::black_box(verify(password, phc));
        }
        // Unreachable in practice; still spend the same work.
        None => {
            let _ = std::hint::black_box(hash(password));
        }
    }
}

// ---------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------

/// Checks a new password against the policy (NIST SP 800-63B style: length,
/// blocklist, context; no composition rules).
///
/// `context` holds strings the password must not contain: the user name, the
/// display name and the product name ("mogothrow77"). Strings shorter than 3
/// characters are ignored. Length is counted in Unicode scalar values.
pub fn check_policy(password: &str, context: &[&str]) -> Result<(), PolicyError> {
    let len = password.chars().count();
    if len < MIN_LENGTH {
        return Err(PolicyError::TooShort { min: MIN_LENGTH });
    }
    if len > MAX_LENGTH {
        return Err(PolicyError::TooLong { max: MAX_LENGTH });
    }

    let lower = password.to_lowercase();
    if let Some(fragment) = context_fragment(&lower, context) {
        return Err(PolicyError::ContainsContext { fragment });
    }

    // The "stem" drops digits and symbols around the password, so that
    // "hellohello2024!" is judged like "hellohello". Only used when the stem
    // is most of the password.
    let full: Vec<char> = lower.chars().collect();
    let stem: Vec<char> = lower
        .trim_matches(|c: char| !c.is_alphabetic())
        .chars()
        .collect();
    let stem_dominates = stem.len() >= MIN_STEM_LEN && stem.len() * 2 >= full.len();

    if is_repetitive(&full) || (stem_dominates && is_repetitive(&stem)) {
        return Err(PolicyError::Repetitive);
    }
    if is_sequential(&full) || (stem_dominates && is_sequential(&stem)) {
        return Err(PolicyError::Sequential);
    }
    let common = common_passwords();
    if variants(&lower).iter().any(|v| common.contains(v.as_str())) {
        return Err(PolicyError::Common);
    }
    Ok(())
}

/// The blocklist plus the normalised form of each entry (so "trustno1" also
/// blocks "trustno" + anything).
fn common_passwords() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut set = HashSet::new();
        for entry in COMMON_PASSWORDS.lines().map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            set.insert(entry.to_owned());
            for v in variants(entry) {
                if v.chars().count() >= MIN_STEM_LEN {
                    set.insert(v);
                }
            }
        }
        set
    })
}

/// Maps a look-alike character to the letter it stands for.
fn unleet_char(c: char, one: char) -> Option<char> {
    Some(match c {
        '0' => 'o',
        '1' => one,
        '3' => 'e',
        '4' => 'a',
        '5' => 's',
        '7' => 't',
        '@' => 'a',
        '$' => 's',
        '!' => 'i',
        _ => return None,
    })
}

fn unleet(s: &str, one: char) -> String {
    s.chars()
        .map(|c| unleet_char(c, one).unwrap_or(c))
        .collect()
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '_' | '.' | ',')
}

/// Normalised forms of a lowercase password: with/without separators,
/// digits and symbols stripped from the ends (all of them, or only those
/// that are not look-alikes), and leetspeak undone ("1" as "i" or "l").
fn variants(lower: &str) -> Vec<String> {
    let squashed: String = lower.chars().filter(|&c| !is_separator(c)).collect();
    let not_letter = |c: char| !c.is_alphabetic();
    let plain_affix = |c: char| !c.is_alphabetic() && unleet_char(c, 'i').is_none();

    let mut bases: Vec<&str> = Vec::new();
    for s in [lower, squashed.as_str()] {
        bases.push(s);
        let end = s.trim_end_matches(not_letter);
        bases.push(end);
        bases.push(end.trim_start_matches(not_letter));
        let end = s.trim_end_matches(plain_affix);
        bases.push(end);
        bases.push(end.trim_start_matches(plain_affix));
    }

    let mut out = Vec::with_capacity(bases.len() * 3);
    for b in bases.into_iter().filter(|b| !b.is_empty()) {
        out.push(b.to_owned());
        out.push(unleet(b, 'i'));
        out.push(unleet(b, 'l'));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The first context string (or part of one) contained in the password,
/// compared case-insensitively and with leetspeak undone on both sides.
fn context_fragment(lower: &str, context: &[&str]) -> Option<String> {
    let pw_forms = [lower.to_owned(), unleet(lower, 'i'), unleet(lower, 'l')];
    for ctx in context {
        let ctx = ctx.trim().to_lowercase();
        let mut fragments = Vec::new();
        if ctx.chars().count() >= MIN_CONTEXT_LEN {
            fragments.push(ctx.clone());
        }
        // Parts: "Jane Doe" -> "jane"; "j.doe42@example.com" -> "doe42", "doe".
        for part in ctx.split(|c: char| !c.is_alphanumeric()) {
            let letters = part.trim_matches(|c: char| !c.is_alphabetic());
            for p in [part, letters] {
                if p.chars().count() >= MIN_CONTEXT_PART_LEN {
                    fragments.push(p.to_owned());
                }
            }
        }
        for fragment in fragments {
            let hit = pw_forms.iter().any(|pw| {
                pw.contains(&fragment)
                    || pw.contains(&unleet(&fragment, 'i'))
                    || pw.contains(&unleet(&fragment, 'l'))
            });
            if hit {
                return Some(fragment);
            }
        }
    }
    None
}

/// Very few distinct characters, or a unit shorter than [`MIN_LENGTH`]
/// repeated at least twice ("abcabcabcabc", "passwordpassword").
fn is_repetitive(chars: &[char]) -> bool {
    let n = chars.len();
    if n < 2 {
        return false;
    }
    let distinct: HashSet<char> = chars.iter().copied().collect();
    if distinct.len() <= 3 {
        return true;
    }
    (1..=n / 2)
        .filter(|&p| p < MIN_LENGTH)
        .any(|p| chars[p..] == chars[..n - p])
}

/// Alphabet, digit and keyboard sequences; runs may go either way.
const SEQUENCES: &[&str] = &[
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "`1234567890-=",
    "~!@#$%^&*()_+",
    "qwertyuiop[]\\",
    "asdfghjkl;'",
    "zxcvbnm,./",
    "qwertzuiop",
    "yxcvbnm",
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
    "1qaz",
    "2wsx",
    "3edc",
    "4rfv",
    "5tgb",
    "6yhn",
    "7ujm",
    "8ik,",
    "9ol.",
    "0p;/",
    "1q2w3e4r5t6y7u8i9o0p",
    "q1w2e3r4t5y6u7i8o9p0",
    "1a2b3c4d5e6f7g8h9i",
];

/// True when runs of 3+ characters from [`SEQUENCES`] cover at least 3/4 of
/// the password.
fn is_sequential(chars: &[char]) -> bool {
    let n = chars.len();
    if n < 3 {
        return false;
    }
    let mut covered = vec![false; n];
    for seq in SEQUENCES {
        let seq: Vec<char> = seq.chars().collect();
        let forward = |a: char, b: char| seq.windows(2).any(|w| w[0] == a && w[1] == b);
        let backward = |a: char, b: char| forward(b, a);
        for step in [&forward as &dyn Fn(char, char) -> bool, &backward] {
            let mut start = 0;
            for i in 1..=n {
                let continues = i < n && step(chars[i - 1], chars[i]);
                if !continues {
                    if i - start >= 3 {
                        covered[start..i].iter_mut().for_each(|c| *c = true);
                    }
                    start = i;
                }
            }
        }
    }
    covered.iter().filter(|&&c| c).count() * 4 >= n * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: &[&str] = &["jdoe", "Jane Doe", "mogothrow77"];

    fn rejected(pw: &str) -> Option<&'static str> {
        check_policy(pw, CTX).err().map(|e| e.code())
    }

    #[test]
    fn hash_format_verify_and_dummy() {
        let phc = hash("correct horse battery staple").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let parsed = PasswordHash::new(&phc).expect("parse");
        assert_eq!(parsed.salt.expect("salt").len(), SALT_LEN);
        assert_eq!(parsed.hash.expect("hash").len(), OUTPUT_LEN);
        assert!(!needs_rehash(&phc));

        assert!(verify("correct horse battery staple", &phc).expect("verify"));
        assert!(!verify("correct horse battery stapler", &phc).expect("verify"));

        // Fresh salt each time.
        assert_ne!(phc, hash("correct horse battery staple").expect("hash"));

        verify_dummy("whatever the attacker typed");
    }

    #[test]
    fn other_parameters_verify_and_need_rehash() {
        let params = Params::new(8192, 1, 1, None).expect("params");
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(b"old password here", b"0123456789abcdef")
            .expect("hash")
            .to_string();
        assert!(old.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{old}");
        assert!(verify("old password here", &old).expect("verify"));
        assert!(!verify("old password her", &old).expect("verify"));
        assert!(needs_rehash(&old));
    }

    #[test]
    fn malformed_hashes_are_errors() {
        for bad in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!$!!!",
            "$bcrypt$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$x=3$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            let err = verify("password", bad).expect_err(bad);
            assert!(matches!(err, PasswordError::Malformed(_)), "{bad}: {err:?}");
            assert_eq!(err.code(), "malformed_hash");
            assert!(needs_rehash(bad), "{bad}");
        }
    }

    #[test]
    fn length_limits() {
        assert_eq!(
            check_policy("short pw", CTX),
            Err(PolicyError::TooShort { min: 12 })
        );
        // 11 characters but 22 bytes: still too short.
        assert_eq!(
            check_policy("ééééééééééé", &[]),
            Err(PolicyError::TooShort { min: 12 })
        );
        // 12 characters of multi-byte text is long enough.
        assert_eq!(check_policy("żółw żółw śpi", &[]), Ok(()));
        let long = "word ".repeat(60);
        assert_eq!(
            check_policy(&long, &[]),
            Err(PolicyError::TooLong { max: 256 })
        );
        assert_eq!(rejected(&"x".repeat(257)), Some("too_long"));
    }

    #[test]
    fn repetitive_and_sequential() {
        for pw in [
            "aaaaaaaaaaaa",
            "abcabcabcabc",
            "abababababab",
            "passwordpassword",
            "hellohello2024!",
            "123123123123",
        ] {
            assert_eq!(rejected(pw), Some("repetitive"), "{pw}");
        }
        for pw in [
            "123456789012",
            "abcdefghijkl",
            "zyxwvutsrqpo",
            "qwertyuiopasdfghjkl",
            "asdfghjkl;'zxcvbnm",
            "1qaz2wsx3edc",
            "abcdefgh2024!",
        ] {
            assert_eq!(rejected(pw), Some("sequential"), "{pw}");
        }
    }

    #[test]
    fn common_and_variants() {
        for pw in [
            "P@ssw0rd2024!",
            "Password123456",
            "Summer2024!!",
            "Welcome-2024!",
            "L3tm31n!!!!!",
            "iloveyou12345",
            "I love you 2024",
            "Dragon_123456",
            "changeme123456",
            "football1234!",
            "Trustno1!!!!!",
            "Baseball!!!!",
            "!!!Monkey2024",
        ] {
            assert_eq!(rejected(pw), Some("common"), "{pw}");
        }
    }

    #[test]
    fn context_is_rejected() {
        let err = check_policy("my-jdoe-secret-phrase", CTX).expect_err("username");
        assert_eq!(err.code(), "contains_context");
        assert_eq!(
            err,
            PolicyError::ContainsContext {
                fragment: "jdoe".into()
            }
        );
        assert_eq!(rejected("Mogothrow77 is great"), Some("contains_context"));
        assert_eq!(rejected("m0g0thr0w77 rocks!!"), Some("contains_context"));
        assert_eq!(rejected("ilovejane very much"), Some("contains_context"));
        // Context strings under 3 characters are ignored.
        assert_eq!(check_policy("al went to the zoo", &["al"]), Ok(()));
    }

    #[test]
    fn good_passwords_pass() {
        for pw in [
            "correct horse battery staple",
            "Tr0ub4dor&3-xyzzy-lamp",
            "purple elephant dances quietly",
            "my cat eats kale on tuesdays",
            "żółw żółw śpi",
            "7f#Kq9!zLm2@",
        ] {
            assert_eq!(check_policy(pw, CTX), Ok(()), "{pw}");
        }
    }

    #[test]
    fn error_codes_and_messages() {
        let all = [
            PolicyError::TooShort { min: 12 },
            PolicyError::TooLong { max: 256 },
            PolicyError::ContainsContext {
                fragment: "jdoe".into(),
            },
            PolicyError::Repetitive,
            PolicyError::Sequential,
            PolicyError::Common,
        ];
        let codes: Vec<_> = all.iter().map(PolicyError::code).collect();
        assert_eq!(
            codes,
            [
                "too_short",
                "too_long",
                "contains_context",
                "repetitive",
                "sequential",
                "common"
            ]
        );
        assert!(all[0].to_string().contains("at least 12 characters"));
        assert!(all[1].to_string().contains("at most 256 characters"));
        assert!(all[2].to_string().contains("\"jdoe\""));
        assert_eq!(PasswordError::Hash("x".into()).code(), "hash_failed");
    }

    #[test]
    fn embedded_list_is_clean() {
        let entries: Vec<&str> = COMMON_PASSWORDS.lines().collect();
        assert!(entries.len() >= 500, "{}", entries.len());
        let mut seen = HashSet::new();
        for e in &entries {
            assert!(!e.is_empty(), "empty line");
            assert_eq!(*e, e.trim(), "whitespace around {e:?}");
            assert_eq!(*e, e.to_lowercase(), "not lowercase: {e:?}");
            assert!(seen.insert(*e), "duplicate: {e:?}");
        }
        for base in [
            "password", "summer", "winter", "welcome", "letmein", "admin", "qwerty", "iloveyou",
            "dragon", "monkey", "football", "baseball", "changeme", "january", "december",
        ] {
            assert!(seen.contains(base), "missing {base}");
        }
    }
}
