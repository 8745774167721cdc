//! The package layout: the .deb, installed by dpkg.

use std::fs;
use std::path::{Path, PathBuf};

use super::{is_version, keep, staged_root, Install};
use crate::journal::{Journal, WorkDir};
use crate::release::Release;
use crate::system;

pub(super) struct Deb;

impl Install for Deb {
    fn release_name(&self) -> &'static str {
        "package"
    }

    /// The .deb kept in the releases directory, its files unpacked into
    /// the staging directory.
    fn stage(
        &self,
        work: &WorkDir,
        release: &Release,
        _journal: &Journal,
    ) -> Result<(PathBuf, PathBuf), String> {
        let kept = keep(work, &release.deb()?)?;
        let binary = system::unpack_package(&kept, &staged_root(work))?;
        Ok((kept, binary))
    }

    /// Kept from an earlier upgrade, or rebuilt from what dpkg installed.
    fn keep_previous(&self, work: &WorkDir, from: &str) -> Result<PathBuf, String> {
        let releases = work.releases();
        let prefix = format!("{}_{from}-", system::PACKAGE);
        if let Ok(entries) = fs::read_dir(&releases) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with(&prefix) && name.ends_with(".deb") {
                    return Ok(entry.path());
                }
            }
        }
        let installed = system::installed_package_version().unwrap_or_default();
        if !installed.starts_with(&format!("{from}-")) {
            return Err(format!(
                "dpkg lists mogothrow77 {installed:?}, but the binary reports {from}: \
                 finish or repair the package first (dpkg --configure -a)"
            ));
        }
        system::repack_installed(&releases, &work.root.join("repack"))
    }

    fn install(&self, release: &Path, _version: &str, _older: bool) -> Result<(), String> {
        system::install_package(release)
    }

    fn is_installed(&self, version: &str) -> bool {
        is_version(system::installed_package_version(), version)
    }

    /// Unpacked from the kept package.
    fn previous_binary(&self, work: &WorkDir, journal: &Journal) -> Result<PathBuf, String> {
        let Some(previous) = &journal.previous_package else {
            return Err(format!("the journal keeps no package of {}", journal.from));
        };
        system::unpack_package(previous, &work.root.join("staging/previous"))
            .map_err(|e| format!("the kept package of {} is unusable: {e}", journal.from))
    }
}
