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

use crate::preflight::Check;

/// The `packages` check of the rpm layout: rpm's own dry run of the
/// installation (`rpm -U --test`). No EL repository is reachable from an
/// air-gapped host and the bundle carries none of the base system, so what
/// it lacks is named for the admin to install from the site's media.
pub fn check(release: &Release) -> Check {
    let rpm = match release.rpm() {
        Ok(rpm) => rpm,
        Err(e) => return Check::failed("packages", e, "use a bundle built with the .rpm"),
    };
    if system::installed_rpm_version()
        .is_some_and(|v| v.starts_with(&format!("{}-", release.target)))
    {
        return Check::passed("packages", format!("{} is installed", release.target));
    }
    let out = match Command::new("rpm")
        .args(["-U", "--test"])
        .arg(&rpm)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            return Check::failed(
                "packages",
                format!("cannot run rpm: {e}"),
                "install rpm, or choose another --layout",
            )
        }
    };
    if out.status.success() {
        return Check::passed(
            "packages",
            format!(
                "rpm can install {} (rpm -U --test)",
                rpm.file_name().unwrap_or_default().to_string_lossy()
            ),
        );
    }
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let missing = failed_dependencies(&text);
    let lines: String = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("\n      rpm: {}", l.trim()))
        .collect();
    if missing.is_empty() {
        return Check::failed(
            "packages",
            format!("rpm refuses the installation{lines}"),
            "do what rpm's lines above say, then run again",
        );
    }
    Check::failed(
        "packages",
        format!(
            "the host lacks {} (the bundle carries no RHEL base packages){lines}",
            missing.join(", ")
        ),
        &format!(
            "install {} from your distribution's media or local repository (`dnf install {}`), \
             then run again",
            missing.join(", "),
            missing.join(" ")
        ),
    )
}

/// What rpm says is missing: `\tsystemd is needed by mogothrow77-0.1.0-1.x86_64`.
fn failed_dependencies(stderr: &str) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for line in stderr.lines() {
        if let Some((what, _)) = line.trim().split_once(" is needed by ") {
            let what = what.trim().to_string();
            if !missing.contains(&what) {
                missing.push(what);
            }
        }
    }
    missing
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn rpms_failed_dependencies_are_named() {
        let stderr = "error: Failed dependencies:\n\
            \tsystemd is needed by mogothrow77-0.1.0-1.x86_64\n\
            \tshadow-utils is needed by mogothrow77-0.1.0-1.x86_64\n\
            \t/usr/sbin/useradd is needed by mogothrow77-0.1.0-1.x86_64\n";
        assert_eq!(
            super::failed_dependencies(stderr),
            ["systemd", "shadow-utils", "/usr/sbin/useradd"]
        );
        assert!(super::failed_dependencies("error: open of x failed").is_empty());
    }
}
