//! Writing the key file: made once with one key, changed only by adding a
//! key in front (a rotation's stage) or dropping keys that seal nothing.
//! Every write goes to a temporary file beside it, synced, then renamed
//! over it with the same owner and mode, so a crash leaves the old file
//! or the new one, never half of one.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};

use super::VaultError;
use crate::config::{Kek, KeyFile, KeyId, KEY_LEN};

/// A new random key.
pub fn new_key() -> Kek {
    let mut bytes = [0u8; KEY_LEN + 8];
    // Without an entropy source no key can be made safely: stop.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        panic!("the operating system's random number generator failed");
    }
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&bytes[..KEY_LEN]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[KEY_LEN..]);
    Kek {
        id: KeyId::from_random(id),
        key,
    }
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> VaultError {
    VaultError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Makes a key file with one new key; refuses to replace a file.
pub fn create(path: &Path) -> Result<KeyFile, VaultError> {
    let file = KeyFile {
        keys: vec![new_key()],
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| write_err(path, e))?;
    }
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| write_err(path, e))?;
    out.write_all(file.render().as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(|e| write_err(path, e))?;
    Ok(file)
}

/// Replaces the file's keys with `file`, keeping its owner and mode.
pub fn replace(path: &Path, file: &KeyFile) -> Result<(), VaultError> {
    let meta = fs::metadata(path).map_err(|e| write_err(path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.new"));
    let _ = fs::remove_file(&temp);
    let result = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        out.write_all(file.render().as_bytes())?;
        out.sync_all()?;
        // Same owner and mode as the file it replaces (root may run this
        // on a file the service user owns).
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&temp, Some(meta.uid()), Some(meta.gid()))?;
        }
        fs::set_permissions(
            &temp,
            std::os::unix::fs::PermissionsExt::from_mode(meta.mode() & 0o7777),
        )?;
        fs::rename(&temp, path)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok::<(), std::io::Error>(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(write_err(path, e));
    }
    Ok(())
}

/// Adds a new key in front of the file's keys; returns it.
pub fn stage(path: &Path) -> Result<Kek, VaultError> {
    let mut file = KeyFile::read(path)?;
    let key = new_key();
    file.keys.insert(0, key.clone());
    replace(path, &file)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_made_private_then_grows_in_front() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        let first = create(&path).expect("create");
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        assert!(matches!(create(&path), Err(VaultError::Write { .. })));
        let added = stage(&path).expect("stage");
        let now = KeyFile::read(&path).expect("read");
        assert_eq!(now.keys.len(), 2);
        assert_eq!(now.newest(), &added);
        assert_eq!(now.keys[1], first.keys[0]);
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        assert!(!dir.path().join(".k.new").exists());
    }
}
