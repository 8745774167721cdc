//! The rpm layout: the bundle's .rpm installed with `rpm -U` on
//! RHEL-family hosts (its scriptlets create the service user and the
//! secrets directory; told not to start the service, which the installer
//! starts), the unit enabled, and the .rpm kept in the upgrade tool's
//! releases directory: rpm cannot rebuild a package from what it
//! installed, and the first upgrade's rollback needs this one.

use std::fs;
use std::process::Command;

use mogothrow77_upgrade::journal::{WorkDir, DEFAULT_WORK_DIR};
use mogothrow77_upgrade::release::Release;
use mogothrow77_upgrade::system;

/// Installs the release's .rpm unless that version is installed already
/// (returns whether it did); keeps the .rpm for rollback either way.
pub fn install(release: &Release) -> Result<bool, String> {
    let rpm = release.rpm()?;
    let work = WorkDir::lock(std::path::Path::new(DEFAULT_WORK_DIR))
        .map_err(|e| format!("{e} (an upgrade may be running)"))?;
    let installed = system::installed_rpm_version().unwrap_or_default();
    let fresh = !installed.starts_with(&format!("{}-", release.target));
    if fresh {
        system::install_rpm(&rpm, false)?;
    }
    let releases = work.releases();
    fs::create_dir_all(&releases).map_err(|e| format!("{}: {e}", releases.display()))?;
    let kept = releases.join(rpm.file_name().unwrap_or_default());
    fs::copy(&rpm, &kept).map_err(|e| format!("{}: {e}", kept.display()))?;
    system::daemon_reload()?;
    system::run(Command::new("systemctl").args(["enable", "--quiet", system::SERVICE]))?;
    Ok(fresh)
}
