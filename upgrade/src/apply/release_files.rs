//! Releases on disk: the kept .rpm and its binary, installing a release in
//! the host's layout, and asking a binary its schema level.

use std::fs;
use std::path::{Path, PathBuf};

use crate::layout::{self, Layout, Plain};
use crate::system;

/// The kept .rpm of `version` (rpm cannot rebuild one from what it
/// installed, so the installer or an earlier upgrade kept it), and a copy
/// of the installed binary beside it, to ask about the schema on rollback.
pub(super) fn kept_rpm(releases: &Path, version: &str) -> Result<PathBuf, String> {
    let prefix = format!("{}-{version}-", system::PACKAGE);
    let found = fs::read_dir(releases).ok().and_then(|entries| {
        entries.flatten().map(|e| e.path()).find(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".x86_64.rpm"))
        })
    });
    let Some(rpm) = found else {
        return Err(format!(
            "the .rpm of the installed release {version} is not kept in {}: copy \
             {prefix}1.x86_64.rpm there from {version}'s offline bundle (packages/el8/) and \
             run apply again (/usr/share/doc/mogothrow77/upgrade.md.gz, section the-installed-rpm-is-not-kept)",
            releases.display()
        ));
    };
    let binary = previous_rpm_binary(releases, version);
    if !binary.is_file() {
        let next = binary.with_extension("new");
        fs::copy(layout::PACKAGE_BINARY, &next).map_err(|e| format!("{}: {e}", next.display()))?;
        fs::rename(&next, &binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    }
    Ok(rpm)
}

/// Where [`kept_rpm`] keeps a copy of the previous release's binary.
pub(super) fn previous_rpm_binary(releases: &Path, version: &str) -> PathBuf {
    releases.join(format!("{}-{version}.bin", system::PACKAGE))
}

/// Makes `version` the installed release: `dpkg -i` or `rpm -U` of its
/// package (`older`: going back), or `current` switched to its release
/// directory (its unit installed, systemd's units reloaded).
pub(super) fn install_release(
    layout: Layout,
    package: &Path,
    version: &str,
    older: bool,
) -> Result<(), String> {
    match layout {
        Layout::Package => system::install_package(package),
        // A rerun after rpm finished: installing it again would fail.
        Layout::Rpm
            if system::installed_rpm_version()
                .is_some_and(|v| v.starts_with(&format!("{version}-"))) =>
        {
            Ok(())
        }
        Layout::Rpm => {
            if let Some(listed) = system::installed_rpm_version().filter(|v| v.contains(", ")) {
                return Err(format!(
                    "rpm lists mogothrow77 {listed}: an interrupted rpm -U left both \
                     (/usr/share/doc/mogothrow77/upgrade.md.gz, section rpm-lists-two-versions)"
                ));
            }
            system::install_rpm(package, older)?;
            system::daemon_reload()
        }
        Layout::Plain => {
            let plain = Plain::host();
            plain.switch_to(version)?;
            plain.install_unit(Path::new(layout::PLAIN_UNIT))?;
            // Always: a run killed after writing the unit and before the
            // reload finds the text unchanged when it runs again.
            system::daemon_reload()
        }
    }
}

/// The schema level a server binary reports (`mogothrow77 version`).
pub(super) fn schema_level(binary: &Path) -> Option<u32> {
    let out = system::run(std::process::Command::new(binary).arg("version")).ok()?;
    out.rsplit("schema level ")
        .next()?
        .trim_end_matches([')', '\n', ' '])
        .parse()
        .ok()
}
