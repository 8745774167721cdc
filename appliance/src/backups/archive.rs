//! An archive made ready for `pg_restore`: a plain one as it is, an
//! age-encrypted one decrypted into the work directory (removed again when
//! the [`Opened`] is dropped). `restore` and `backup drill` open archives
//! this way.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::age::Identity;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0} is encrypted (age): give the private key that opens it with --identity KEYFILE")]
    NeedsKey(String),
    #[error("cannot create {dir}: {reason}")]
    WorkDir { dir: String, reason: String },
    #[error("cannot decrypt {path}: {reason}")]
    Decrypt { path: String, reason: String },
}

/// Creates `dir` and its missing parents, private to the service user.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// An archive ready for `pg_restore`.
pub enum Opened {
    Plain(PathBuf),
    /// A decrypted copy, removed when dropped.
    Decrypted(PathBuf),
}

impl Opened {
    pub fn path(&self) -> &Path {
        match self {
            Opened::Plain(p) | Opened::Decrypted(p) => p,
        }
    }

    pub fn was_encrypted(&self) -> bool {
        matches!(self, Opened::Decrypted(_))
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Opened::Decrypted(p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Opens `archive`: decrypted with `identities` into `work_dir` as
/// `<purpose>-<pid>.dump` when it is age-encrypted, used as it is otherwise.
pub fn open(
    archive: &Path,
    identities: Option<&[Identity]>,
    work_dir: &Path,
    purpose: &str,
) -> Result<Opened, OpenError> {
    let encrypted = crate::age::is_age_file(archive).map_err(|e| OpenError::Read {
        path: archive.display().to_string(),
        reason: e.to_string(),
    })?;
    if !encrypted {
        return Ok(Opened::Plain(archive.to_path_buf()));
    }
    let identities =
        identities.ok_or_else(|| OpenError::NeedsKey(archive.display().to_string()))?;
    create_private_dir(work_dir).map_err(|e| OpenError::WorkDir {
        dir: work_dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let plain = work_dir.join(format!("{purpose}-{}.dump", std::process::id()));
    let _ = std::fs::remove_file(&plain);
    crate::age::decrypt_file(archive, &plain, identities).map_err(|e| OpenError::Decrypt {
        path: archive.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(Opened::Decrypted(plain))
}
