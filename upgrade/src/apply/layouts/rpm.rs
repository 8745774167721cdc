//! The rpm layout: the .rpm, installed by rpm. rpm cannot rebuild a
//! package from what it installed, so the previous release's .rpm must be
//! kept (by the installer or an earlier upgrade) before anything changes.

use std::fs;
use std::path::{Path, PathBuf};

use super::{is_version, keep, staged_root, Install};
use crate::journal::{Journal, WorkDir};
use crate::layout::PACKAGE_BINARY;
use crate::release::Release;
use crate::system;

pub(super) struct Rpm;

impl Install for Rpm {
    fn release_name(&self) -> &'static str {
        "package"
    }

    /// The .rpm kept in the releases directory (its name and version
    /// checked), the bundle's binary (the same bytes) in the staging
    /// directory.
    fn stage(
        &self,
        work: &WorkDir,
        release: &Release,
        _journal: &Journal,
    ) -> Result<(PathBuf, PathBuf), String> {
        let rpm = release.rpm()?;
        let (name, version) = system::rpm_file_version(&rpm)?;
        if name != system::PACKAGE || version != release.target.to_string() {
            return Err(format!(
                "the bundle's .rpm is {name} {version}, not {} {}",
                system::PACKAGE,
                release.target
            ));
        }
        let kept = keep(work, &rpm)?;
        let binary = staged_root(work).join("usr/bin/mogothrow77");
        let source = release.plain_file("bin/mogothrow77")?;
        binary
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::copy(&source, &binary))
            .and_then(|_| {
                fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            })
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        Ok((kept, binary))
    }

    fn way_back(&self, work: &WorkDir, from: &str) -> Result<(), String> {
        kept_rpm(&work.releases(), from).map(drop)
    }

    fn keep_previous(&self, work: &WorkDir, from: &str) -> Result<PathBuf, String> {
        kept_rpm(&work.releases(), from)
    }

    fn install(&self, release: &Path, version: &str, older: bool) -> Result<(), String> {
        // A rerun after rpm finished: installing it again would fail.
        if self.is_installed(version) {
            return Ok(());
        }
        if let Some(listed) = self.interrupted() {
            return Err(format!(
                "{listed} (/usr/share/doc/mogothrow77/upgrade.md.gz, section rpm-lists-two-versions)"
            ));
        }
        system::install_rpm(release, older)?;
        system::daemon_reload()
    }

    /// An `rpm -U` killed midway leaves both versions in rpm's database,
    /// and which files are on disk is not knowable from here.
    fn interrupted(&self) -> Option<String> {
        system::installed_rpm_version()
            .filter(|v| v.contains(", "))
            .map(|listed| {
                format!("rpm lists mogothrow77 {listed}: an interrupted rpm -U left both")
            })
    }

    fn is_installed(&self, version: &str) -> bool {
        is_version(system::installed_rpm_version(), version)
    }

    /// The copy [`kept_rpm`] made of the installed binary.
    fn previous_binary(&self, work: &WorkDir, journal: &Journal) -> Result<PathBuf, String> {
        let binary = previous_rpm_binary(&work.releases(), &journal.from);
        if !binary.is_file() || journal.previous_package.is_none() {
            return Err(format!("the journal keeps no .rpm of {}", journal.from));
        }
        Ok(binary)
    }
}

/// The kept .rpm of `version`, and a copy of the installed binary beside
/// it, to ask about the schema on rollback.
fn kept_rpm(releases: &Path, version: &str) -> Result<PathBuf, String> {
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
        fs::copy(PACKAGE_BINARY, &next).map_err(|e| format!("{}: {e}", next.display()))?;
        fs::rename(&next, &binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    }
    Ok(rpm)
}

/// Where [`kept_rpm`] keeps a copy of the previous release's binary.
fn previous_rpm_binary(releases: &Path, version: &str) -> PathBuf {
    releases.join(format!("{}-{version}.bin", system::PACKAGE))
}
