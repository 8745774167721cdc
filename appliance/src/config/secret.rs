//! Secrets: values that must never reach logs, `check` output or error messages,
//! and the permission rule for files that hold them.

use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize, Serializer};

/// Text shown wherever a secret would otherwise be printed.
pub const REDACTED: &str = "<redacted>";

/// A secret string. `Debug`, `Display` and `Serialize` never show the value;
/// only [`Secret::expose`] does, at the one place that needs it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Call only where the value is used, never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Why a private file (key or secret) cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrivateFileError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "{path} has mode {mode:04o}, readable by others than its owner; \
         run `chmod 600 {path}` (or `chmod 640` with owner root and the service group)"
    )]
    TooOpen { path: String, mode: u32 },
    #[error("{path} is empty")]
    Empty { path: String },
    #[error("{path}: {reason}")]
    Unusable { path: String, reason: String },
}

/// Checks that a file holding a key or secret is private: never accessible by
/// "others"; group-readable only when owned by root (the packaged layout,
/// `root:mogothrow77 0640`), as PostgreSQL does for its own key files.
pub fn check_private_file(path: &Path) -> Result<(), PrivateFileError> {
    let meta = fs::metadata(path).map_err(|e| PrivateFileError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mode = meta.mode() & 0o7777;
    let others = mode & 0o007 != 0;
    let group_readable = mode & 0o070 != 0;
    let group_ok = meta.uid() == 0 && mode & 0o030 == 0;
    if others || (group_readable && !group_ok) {
        return Err(PrivateFileError::TooOpen {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

/// Reads a secret from a private file, trimming one trailing newline.
pub fn read_secret_file(path: &Path) -> Result<Secret, PrivateFileError> {
    check_private_file(path)?;
    let text = fs::read_to_string(path).map_err(|e| PrivateFileError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(PrivateFileError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(
            serde_json::to_string(&s).expect("serialize"),
            "\"<redacted>\""
        );
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn open_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        fs::write(&path, "value\n").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_secret_file(&path).expect("private").expose(), "value");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o604)).expect("chmod");
        assert!(matches!(
            check_private_file(&path),
            Err(PrivateFileError::TooOpen { mode: 0o604, .. })
        ));
        let owned_by_root = fs::metadata(&path).expect("meta").uid() == 0;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        assert_eq!(check_private_file(&path).is_ok(), owned_by_root);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o660)).expect("chmod");
        assert!(check_private_file(&path).is_err());
    }
}
