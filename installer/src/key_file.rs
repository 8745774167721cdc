//! The key-encryption key file an external database requires
//! (`secrets.key_file`): the first replica's installer makes it with the
//! release's `mogothrow77 key-file new`; every other replica's is given
//! that file with `--key-file` (they must seal and open with the same
//! keys). Kept in the state directory, the service user's, mode 0600, so
//! `mogothrow77 admin rotate-keys` can add keys to it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::database;

/// Where the key file goes.
pub const PATH: &str = contracts::locations::KEY_FILE;

/// Puts the key file in place (made, or copied from `given`) and names it
/// in the configuration. Returns whether anything changed.
pub fn install(given: Option<&Path>, binary: &Path, config: &Path) -> Result<bool, String> {
    let path = Path::new(PATH);
    let user = mogothrow77_upgrade::system::PACKAGE;
    let (uid, gid) = (database::user_id(user)?, database::group_id(user)?);
    let mut changed = false;
    match (given, path.exists()) {
        (Some(source), true) => {
            let same = fs::read(source).map_err(|e| format!("{}: {e}", source.display()))?
                == fs::read(path).map_err(|e| format!("{PATH}: {e}"))?;
            if !same {
                return Err(format!(
                    "{PATH} exists and differs from {}: the installer never replaces a key file \
                     (it may hold the only key that opens this installation's secrets); compare \
                     them, and move {PATH} away by hand if the given one is right",
                    source.display()
                ));
            }
            println!("ok    key file: {PATH} is the one given (unchanged)");
        }
        (Some(source), false) => {
            let bytes = fs::read(source).map_err(|e| format!("{}: {e}", source.display()))?;
            let tmp = path.with_extension("install-tmp");
            let _ = fs::remove_file(&tmp);
            let write = || -> std::io::Result<()> {
                fs::write(&tmp, &bytes)?;
                fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
                std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))?;
                fs::rename(&tmp, path)
            };
            write().map_err(|e| format!("{PATH}: {e}"))?;
            println!(
                "ok    key file: {} copied to {PATH} (0600 {user})",
                source.display()
            );
            changed = true;
        }
        (None, true) => println!("ok    key file: {PATH} (kept)"),
        (None, false) => {
            let out = Command::new(binary)
                .args(["key-file", "new", PATH])
                .output()
                .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "mogothrow77 key-file new: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| format!("{PATH}: {e}"))?;
            println!(
                "ok    key file: made {PATH} (0600 {user}); give every other replica a copy with \
                 `--key-file`, and keep one with the backups: a restore onto another host needs it"
            );
            changed = true;
        }
    }
    let text = fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
    if let Some(edited) = database::name_in_table(&text, "secrets", "key_file", None, PATH)? {
        database::write_private(config, edited.as_bytes(), gid)?;
        println!(
            "ok    secrets.key_file = \"{PATH}\" in {}",
            config.display()
        );
        changed = true;
    }
    Ok(changed)
}
