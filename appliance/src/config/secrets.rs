//! `[secrets]`: the key-encryption key file, and its format.
//!
//! The file holds one or more 256-bit keys, one per line as
//! `<id> <base64url key>`, newest first; `#` starts a comment. Every key
//! opens the values sealed with it; which one seals new values is recorded
//! in the database (`secrets_key`), so a key can be added to every
//! replica's copy before any replica uses it (`admin rotate-keys --stage`).

use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::secret::{check_private_file, PrivateFileError};

/// The file's name under `state_dir` when `secrets.key_file` is unset
/// (managed database only: generated on first start).
pub const DEFAULT_KEY_FILE: &str = "secrets.key";

/// Length of a key-encryption key, in bytes (AES-256).
pub const KEY_LEN: usize = 32;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The key-encryption key file; required with an external database.
    pub key_file: Option<PathBuf>,
}

/// Where the key file is, once the configuration is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileLocation {
    pub path: PathBuf,
    /// The default under `state_dir`: made on first start when missing.
    pub generate: bool,
}

/// A key's id: 16 lowercase hex digits, random.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(text: &str) -> Option<KeyId> {
        let ok = (8..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| KeyId(text.to_string()))
    }

    /// A new random id from 8 random bytes.
    pub fn from_random(bytes: [u8; 8]) -> KeyId {
        KeyId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One key of the file. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Kek {
    pub id: KeyId,
    pub key: [u8; KEY_LEN],
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({}, <redacted>)", self.id)
    }
}

/// The parsed file: newest key first, at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    pub keys: Vec<Kek>,
}

/// Why a key file cannot be used; the message never holds key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFileError {
    #[error(transparent)]
    File(#[from] PrivateFileError),
    #[error("{path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path} holds no key; copy the file from another replica, or make one with `mogothrow77 key-file new PATH`")]
    NoKey { path: String },
}

impl KeyFile {
    /// Reads and checks the file (private, every line a key).
    pub fn read(path: &Path) -> Result<KeyFile, KeyFileError> {
        check_private_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| PrivateFileError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        KeyFile::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, path: &str) -> Result<KeyFile, KeyFileError> {
        let mut keys: Vec<Kek> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| KeyFileError::Line {
                path: path.to_string(),
                line: n + 1,
                reason: reason.to_string(),
            };
            let mut fields = line.split_whitespace();
            let (Some(id), Some(key), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(bad("expected `<id> <key>` (two fields)"));
            };
            let id = KeyId::parse(id)
                .ok_or_else(|| bad("the id is not 8 to 32 lowercase hexadecimal digits"))?;
            let key = URL_SAFE_NO_PAD
                .decode(key)
                .ok()
                .and_then(|k| <[u8; KEY_LEN]>::try_from(k).ok())
                .ok_or_else(|| bad("the key is not 32 bytes in unpadded base64url"))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(bad("this id is on an earlier line too"));
            }
            keys.push(Kek { id, key });
        }
        if keys.is_empty() {
            return Err(KeyFileError::NoKey {
                path: path.to_string(),
            });
        }
        Ok(KeyFile { keys })
    }

    /// The file's text (what [`KeyFile::parse`] reads back).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Mogothrow77 key-encryption keys (secrets.key_file), newest first.\n\
             # Every key opens what it sealed; the database names the one that seals.\n\
             # Keep a copy with the backups: a restore onto another host needs it.\n",
        );
        for k in &self.keys {
            out.push_str(&format!("{} {}\n", k.id, URL_SAFE_NO_PAD.encode(k.key)));
        }
        out
    }

    pub fn get(&self, id: &KeyId) -> Option<&Kek> {
        self.keys.iter().find(|k| &k.id == id)
    }

    pub fn newest(&self) -> &Kek {
        // `parse` and every constructor keep at least one key.
        &self.keys[0]
    }
}

/// Checks the section against the database target: the file is required
/// with an external database (every replica must read the same keys),
/// and read when set.
pub fn check(
    c: &SecretsConfig,
    state_dir: &Path,
    external_database: bool,
    problem: &mut impl FnMut(&str, String),
) -> KeyFileLocation {
    let Some(path) = &c.key_file else {
        if external_database {
            problem(
                "secrets.key_file",
                "required with database.url: every replica must seal and open secrets with the \
                 same key-encryption keys. Make one (`mogothrow77 key-file new PATH`), give every \
                 replica a copy owned by the service user (mode 0600), and set secrets.key_file \
                 to its path (docs/security.md#secrets-at-rest)"
                    .to_string(),
            );
        }
        return KeyFileLocation {
            path: state_dir.join(DEFAULT_KEY_FILE),
            generate: true,
        };
    };
    if !path.is_absolute() {
        problem(
            "secrets.key_file",
            format!("{} is not an absolute path", path.display()),
        );
    } else if let Err(e) = KeyFile::read(path) {
        problem("secrets.key_file", e.to_string());
    }
    KeyFileLocation {
        path: path.clone(),
        generate: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Kek {
        Kek {
            id: KeyId::from_random([b; 8]),
            key: [b; KEY_LEN],
        }
    }

    #[test]
    fn a_file_reads_back_what_it_renders() {
        let file = KeyFile {
            keys: vec![key(2), key(1)],
        };
        let text = file.render();
        assert_eq!(KeyFile::parse(&text, "f"), Ok(file.clone()));
        assert_eq!(file.newest().id.as_str(), "0202020202020202");
        assert!(!format!("{file:?}").contains(&URL_SAFE_NO_PAD.encode([2u8; KEY_LEN])));
    }

    #[test]
    fn bad_lines_are_named_without_their_key() {
        let secret = URL_SAFE_NO_PAD.encode([7u8; 31]);
        let err = KeyFile::parse(&format!("# c\n\nabcdef01 {secret}\n"), "f").expect_err("refused");
        assert_eq!(
            err.to_string(),
            "f line 3: the key is not 32 bytes in unpadded base64url"
        );
        let good = URL_SAFE_NO_PAD.encode([7u8; KEY_LEN]);
        for (text, reason) in [
            (format!("ABCDEF01 {good}"), "the id is not"),
            (format!("abcdef01 {good} extra"), "two fields"),
            (format!("abcdef01 {good}\nabcdef01 {good}"), "earlier line"),
        ] {
            let message = KeyFile::parse(&text, "f").expect_err("refused").to_string();
            assert!(message.contains(reason), "{message}");
            assert!(!message.contains(&good), "{message}");
        }
        assert!(matches!(
            KeyFile::parse("# only a comment\n", "f"),
            Err(KeyFileError::NoKey { .. })
        ));
    }

    #[test]
    fn generative_any_key_file_parses_or_is_refused_without_its_keys() {
        let good = KeyFile {
            keys: vec![key(3), key(4)],
        }
        .render();
        let encoded = [
            URL_SAFE_NO_PAD.encode([3u8; KEY_LEN]),
            URL_SAFE_NO_PAD.encode([4u8; KEY_LEN]),
        ];
        generative::run(
            "key file",
            &[good.as_bytes(), b"abcdef0123456789 AAAA\n"],
            &[b" ", b"\n", b"#", b"\t", b"0", b"f", b"=", b"\xc3\xa9"],
            |_, input| {
                let text = String::from_utf8_lossy(input);
                match KeyFile::parse(&text, "f") {
                    Ok(file) => {
                        assert!(!file.keys.is_empty());
                        assert_eq!(KeyFile::parse(&file.render(), "f"), Ok(file));
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for k in &encoded {
                            assert!(!message.contains(k.as_str()), "{message}");
                        }
                    }
                }
            },
        );
    }

    #[test]
    fn an_external_database_needs_the_file() {
        let mut problems = Vec::new();
        let location = check(
            &SecretsConfig::default(),
            Path::new("/var/lib/m"),
            true,
            &mut |k: &str, m: String| problems.push((k.to_string(), m)),
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "secrets.key_file");
        problems.clear();
        let location_managed = check(
            &SecretsConfig::default(),
            Path::new("/var/lib/m"),
            false,
            &mut |k: &str, m: String| problems.push((k.to_string(), m)),
        );
        assert!(problems.is_empty());
        assert_eq!(location, location_managed);
        assert_eq!(location.path, Path::new("/var/lib/m/secrets.key"));
        assert!(location.generate);
    }
}
