//! The verify step's staging: the bundle unpacked, the new release kept
//! (how: the layout's `Install::stage`) and its binary asked before it is
//! installed.

use std::fs;
use std::path::PathBuf;

use super::release_files::schema_level;
use super::{Failure, Run, StepResult};
use crate::host;
use crate::journal::Journal;
use crate::release::{self, OpenError};

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
        self.install().staged_binary(&self.work, journal)
    }

    /// Keeps the target's package and unpacks its binary (package
    /// layouts), or writes its release directory (plain layout), to run its
    /// binary before it is installed.
    pub(super) fn stage_package(
        &self,
        release: &release::Release,
        journal: &mut Journal,
    ) -> StepResult {
        let install = self.install();
        let (kept, binary) = install
            .stage(&self.work, release, journal)
            .map_err(Failure::Refuse)?;
        let reported = host::installed_version(&binary).map_err(Failure::Refuse)?;
        if reported != Some(release.target) {
            return Err(Failure::Refuse(format!(
                "the bundle's {} holds mogothrow77 {}, not {}",
                install.release_name(),
                reported.map(|v| v.to_string()).unwrap_or_default(),
                release.target
            )));
        }
        journal.package = Some(kept);
        journal.target_schema_level = schema_level(&binary);
        Ok(String::new())
    }
}
