//! The plain layout (docs/install.md#the-plain-layout): for hosts where the
//! installer does not use a package manager. What the .deb's files and
//! maintainer script do, done here from the bundle's `plain/` files:
//! the release directory under `/opt/mogothrow77/releases/` with `current`
//! pointing to it, the service user from the sysusers.d entry, the
//! configuration (0640 root:mogothrow77, kept when it exists), the secrets
//! directory, the unit in `/etc/systemd/system` (enabled), and the admin
//! commands linked into `/usr/local/bin`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use mogothrow77_upgrade::layout::{self, Plain};
use mogothrow77_upgrade::release::Release;
use mogothrow77_upgrade::system;

use crate::database;

const SYSUSERS: &str = "/etc/sysusers.d/mogothrow77.conf";
const CONFIG_DIR: &str = "/etc/mogothrow77";
const LINKS: &str = "/usr/local/bin";

fn io(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Installs the release in the plain layout; safe to run again (files that
/// exist with the right contents are left alone, the configuration is never
/// overwritten).
pub fn install(release: &Release) -> Result<(), String> {
    // The service user first: the configuration is given to its group.
    let sysusers = Path::new(SYSUSERS);
    if let Some(dir) = sysusers.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    fs::copy(release.plain_file("sysusers.conf")?, sysusers).map_err(io(sysusers))?;
    fs::set_permissions(sysusers, fs::Permissions::from_mode(0o644)).map_err(io(sysusers))?;
    system::run(Command::new("systemd-sysusers").arg(sysusers))?;
    let gid = database::group_id(system::PACKAGE)?;

    let plain = Plain::host();
    let version = release.target.to_string();
    plain.stage(release)?;
    plain.switch_to(&version)?;

    let config_dir = Path::new(CONFIG_DIR);
    fs::create_dir_all(config_dir).map_err(io(config_dir))?;
    fs::set_permissions(config_dir, fs::Permissions::from_mode(0o755)).map_err(io(config_dir))?;
    let config = config_dir.join("config.toml");
    if !config.exists() {
        let next = config_dir.join(".config.toml.new");
        fs::copy(release.plain_file("config.toml")?, &next).map_err(io(&next))?;
        std::os::unix::fs::chown(&next, Some(0), Some(gid)).map_err(io(&next))?;
        fs::set_permissions(&next, fs::Permissions::from_mode(0o640)).map_err(io(&next))?;
        fs::File::open(&next)
            .and_then(|f| f.sync_all())
            .map_err(io(&next))?;
        fs::rename(&next, &config).map_err(io(&config))?;
    }
    let secrets = Path::new(database::SECRETS_DIR);
    fs::create_dir_all(secrets).map_err(io(secrets))?;
    std::os::unix::fs::chown(secrets, Some(0), Some(gid)).map_err(io(secrets))?;
    fs::set_permissions(secrets, fs::Permissions::from_mode(0o750)).map_err(io(secrets))?;

    for name in ["mogothrow77", "mogothrow77-upgrade"] {
        let link = Path::new(LINKS).join(name);
        let target = Path::new(layout::PLAIN_ROOT).join("current/bin").join(name);
        if fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
            continue;
        }
        if fs::symlink_metadata(&link).is_ok_and(|m| !m.file_type().is_symlink()) {
            return Err(format!(
                "{} exists and is not a link the installer made: move it away and run again",
                link.display()
            ));
        }
        fs::create_dir_all(LINKS).map_err(io(Path::new(LINKS)))?;
        let next = Path::new(LINKS).join(format!(".{name}.new"));
        let _ = fs::remove_file(&next);
        std::os::unix::fs::symlink(&target, &next).map_err(io(&next))?;
        fs::rename(&next, &link).map_err(io(&link))?;
    }

    plain.install_unit(Path::new(layout::PLAIN_UNIT))?;
    // Always: a run killed between writing the unit and the reload finds
    // the text unchanged the next time.
    system::daemon_reload()?;
    system::run(Command::new("systemctl").args(["enable", "--quiet", system::SERVICE]))?;
    Ok(())
}
