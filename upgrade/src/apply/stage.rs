//! The verify step's staging: the bundle unpacked, the new release's
//! package kept in `releases/` and its binary unpacked to ask before it is
//! installed.

use std::fs;
use std::path::PathBuf;

use super::release_files::schema_level;
use super::{Failure, Run, StepResult};
use crate::host;
use crate::journal::Journal;
use crate::layout::{self, Layout, Plain};
use crate::release::{self, OpenError};
use crate::system;

impl Run<'_> {
    pub(super) fn open_bundle(&self) -> Result<release::Release, OpenError> {
        let dest = self.staging.join("bundle");
        for dir in [&dest, &self.staging.join("root")] {
            if dir.exists() {
                fs::remove_dir_all(dir)
                    .map_err(|e| OpenError::Refused(format!("{}: {e}", dir.display())))?;
            }
        }
        fs::create_dir_all(&self.staging)
            .map_err(|e| OpenError::Refused(format!("{}: {e}", self.staging.display())))?;
        release::open(&self.opts.bundle, &self.opts.public_keys, &dest)
    }

    /// The target's server binary, to run before it is installed.
    pub(super) fn new_binary(&self, journal: &Journal) -> PathBuf {
        match self.layout {
            Layout::Package | Layout::Rpm => self.staging.join("root/usr/bin/mogothrow77"),
            Layout::Plain => Plain::host()
                .release_dir(&journal.to)
                .join("bin/mogothrow77"),
        }
    }

    /// Keeps the target's package and unpacks its binary (package layout),
    /// or writes its release directory (plain layout), to run its binary
    /// before it is installed.
    pub(super) fn stage_package(
        &self,
        release: &release::Release,
        journal: &mut Journal,
    ) -> StepResult {
        let (kept, binary) = match self.layout {
            Layout::Package => self.stage_deb(release)?,
            Layout::Rpm => self.stage_rpm(release)?,
            Layout::Plain => {
                let plain = Plain::host();
                let current = plain.current().unwrap_or_default();
                if current != journal.from && current != journal.to {
                    return Err(Failure::Refuse(format!(
                        "{}/current points to {current:?}, but the upgrade is from {}: \
                         point it back at releases/{} \
                         (/usr/share/doc/mogothrow77/upgrade.md.gz, section current-points-to-another-release)",
                        layout::PLAIN_ROOT,
                        journal.from,
                        journal.from
                    )));
                }
                let dir = plain.stage(release).map_err(Failure::Refuse)?;
                let binary = dir.join("bin/mogothrow77");
                (dir, binary)
            }
        };
        let reported = host::installed_version(&binary).map_err(Failure::Refuse)?;
        if reported != Some(release.target) {
            return Err(Failure::Refuse(format!(
                "the bundle's {} holds mogothrow77 {}, not {}",
                if self.layout == Layout::Plain {
                    "plain/ release"
                } else {
                    "package"
                },
                reported.map(|v| v.to_string()).unwrap_or_default(),
                release.target
            )));
        }
        journal.package = Some(kept);
        journal.target_schema_level = schema_level(&binary);
        Ok(String::new())
    }

    /// The rpm layout's staging: the .rpm kept in the releases directory
    /// (its name and version checked), the bundle's binary (the same
    /// bytes) in the staging directory.
    pub(super) fn stage_rpm(
        &self,
        release: &release::Release,
    ) -> Result<(PathBuf, PathBuf), Failure> {
        let refuse = Failure::Refuse;
        let rpm = release.rpm().map_err(refuse)?;
        let (name, version) = system::rpm_file_version(&rpm).map_err(refuse)?;
        if name != system::PACKAGE || version != release.target.to_string() {
            return Err(refuse(format!(
                "the bundle's .rpm is {name} {version}, not {} {}",
                system::PACKAGE,
                release.target
            )));
        }
        let releases = self.work.releases();
        fs::create_dir_all(&releases)
            .map_err(|e| refuse(format!("{}: {e}", releases.display())))?;
        let kept = releases.join(rpm.file_name().unwrap_or_default());
        fs::copy(&rpm, &kept).map_err(|e| refuse(format!("{}: {e}", kept.display())))?;
        let binary = self.staging.join("root/usr/bin/mogothrow77");
        let source = release.plain_file("bin/mogothrow77").map_err(refuse)?;
        let copied = binary
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::copy(&source, &binary))
            .and_then(|_| {
                fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            });
        copied.map_err(|e| refuse(format!("{}: {e}", binary.display())))?;
        Ok((kept, binary))
    }

    /// The package layout's staging: the .deb kept in the releases
    /// directory, its files unpacked into the staging directory.
    pub(super) fn stage_deb(
        &self,
        release: &release::Release,
    ) -> Result<(PathBuf, PathBuf), Failure> {
        let deb = release.deb().map_err(Failure::Refuse)?;
        let releases = self.work.releases();
        fs::create_dir_all(&releases)
            .map_err(|e| Failure::Refuse(format!("{}: {e}", releases.display())))?;
        let kept = releases.join(deb.file_name().unwrap_or_default());
        fs::copy(&deb, &kept).map_err(|e| Failure::Refuse(format!("{}: {e}", kept.display())))?;
        let binary =
            system::unpack_package(&kept, &self.staging.join("root")).map_err(Failure::Refuse)?;
        Ok((kept, binary))
    }
}
