//! Running as the unprivileged service user: when started as root, the server
//! binds its port and prepares its directories, then drops to the configured
//! user and group for good.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::sys::stat::{umask, Mode};
use nix::unistd::{chown, geteuid, getuid, setgid, setgroups, setuid, Gid, Group, Uid, User};

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error(
        "the service user `{0}` does not exist; create it with \
         `useradd --system --user-group --home-dir /var/lib/mogothrow77 --shell /usr/sbin/nologin {0}` \
         or set service.user"
    )]
    NoUser(String),
    #[error("the service group `{0}` does not exist; create it with `groupadd --system {0}` or set service.group")]
    NoGroup(String),
    #[error("service.user `{0}` is root; the server never serves as root")]
    RootUser(String),
    #[error("cannot prepare {path}: {reason}")]
    Directory { path: String, reason: String },
    #[error("cannot drop privileges: {0}")]
    Drop(String),
}

/// The user and group the server runs as.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub uid: Uid,
    pub gid: Gid,
}

pub fn is_root() -> bool {
    geteuid().is_root()
}

/// Looks up the configured service user and group.
pub fn lookup(user: &str, group: &str) -> Result<ServiceAccount, PrivilegeError> {
    let u = User::from_name(user)
        .ok()
        .flatten()
        .ok_or_else(|| PrivilegeError::NoUser(user.to_string()))?;
    if u.uid.is_root() {
        return Err(PrivilegeError::RootUser(user.to_string()));
    }
    let g = Group::from_name(group)
        .ok()
        .flatten()
        .ok_or_else(|| PrivilegeError::NoGroup(group.to_string()))?;
    Ok(ServiceAccount {
        uid: u.uid,
        gid: g.gid,
    })
}

/// Creates `dir` (mode 0750) and, when an account is given, hands it over.
/// An existing directory someone else owns (e.g. a volume mounted for a
/// non-root container) is used as it is: only its owner may chmod it.
pub fn prepare_dir(dir: &Path, owner: Option<&ServiceAccount>) -> Result<(), PrivilegeError> {
    let err = |e: &dyn std::fmt::Display| PrivilegeError::Directory {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    if let Some(account) = owner {
        chown(dir, Some(account.uid), Some(account.gid)).map_err(|e| err(&e))?;
    }
    if self::owner(dir) == Some(geteuid()) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
            .map_err(|e| err(&e))?;
    }
    Ok(())
}

/// The owner of `path`, when it exists.
pub fn owner(path: &Path) -> Option<Uid> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| Uid::from_raw(m.uid()))
}

/// Hands every file under `dir` to the account (for state written by an
/// earlier run as root).
pub fn chown_tree(dir: &Path, account: &ServiceAccount) -> Result<(), PrivilegeError> {
    let err = |p: &Path, e: &dyn std::fmt::Display| PrivilegeError::Directory {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let meta = std::fs::symlink_metadata(dir).map_err(|e| err(dir, &e))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    chown(dir, Some(account.uid), Some(account.gid)).map_err(|e| err(dir, &e))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).map_err(|e| err(dir, &e))? {
            let entry = entry.map_err(|e| err(dir, &e))?;
            chown_tree(&entry.path(), account)?;
        }
    }
    Ok(())
}

/// Drops to the service account: supplementary groups, group, then user.
/// Afterwards regaining root is impossible; this is verified.
pub fn drop_to(account: &ServiceAccount) -> Result<(), PrivilegeError> {
    let fail = |what: &str, e: nix::Error| PrivilegeError::Drop(format!("{what}: {e}"));
    setgroups(&[account.gid]).map_err(|e| fail("setgroups", e))?;
    setgid(account.gid).map_err(|e| fail("setgid", e))?;
    setuid(account.uid).map_err(|e| fail("setuid", e))?;
    if getuid().is_root() || geteuid().is_root() || setuid(Uid::from_raw(0)).is_ok() {
        return Err(PrivilegeError::Drop(
            "still able to act as root".to_string(),
        ));
    }
    Ok(())
}

/// Files the server creates are never world-accessible.
pub fn set_umask() {
    umask(Mode::from_bits_truncate(0o027));
}

/// The user who runs this command: under sudo the one who ran sudo,
/// otherwise the effective user's name (`uid<N>` without one).
pub fn invoking_user() -> String {
    let euid = nix::unistd::geteuid();
    let sudo_user = std::env::var("SUDO_USER")
        .ok()
        .filter(|u| euid.is_root() && !u.is_empty());
    sudo_user.unwrap_or_else(|| {
        nix::unistd::User::from_uid(euid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid{euid}"))
    })
}

/// This host's name (`localhost` when it has none).
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
