//! The plain layout: release directories under `/opt/mogothrow77`, the
//! `current` symlink switched between them (`crate::layout::Plain`).

use std::path::{Path, PathBuf};

use super::{Install, Report};
use crate::journal::{Journal, WorkDir};
use crate::layout::{Plain, PLAIN_ROOT, PLAIN_UNIT};
use crate::release::Release;
use crate::system;

pub(super) struct PlainRelease;

/// Refuses when `current` points to neither end of the upgrade.
fn current_is(plain: &Plain, versions: &[&str], from: &str, began: bool) -> Result<(), String> {
    let current = plain.current().unwrap_or_default();
    if versions.contains(&current.as_str()) {
        return Ok(());
    }
    Err(format!(
        "{PLAIN_ROOT}/current points to {current:?}, but the upgrade {} from {from}: \
         point it back at releases/{from} \
         (/usr/share/doc/mogothrow77/upgrade.md.gz, section current-points-to-another-release)",
        if began { "began" } else { "is" }
    ))
}

impl Install for PlainRelease {
    fn release_name(&self) -> &'static str {
        "plain/ release"
    }

    /// The release directory written from the bundle's `plain/` files.
    fn stage(
        &self,
        _work: &WorkDir,
        release: &Release,
        journal: &Journal,
    ) -> Result<(PathBuf, PathBuf), String> {
        let plain = Plain::host();
        current_is(&plain, &[&journal.from, &journal.to], &journal.from, false)?;
        let dir = plain.stage(release)?;
        let binary = dir.join("bin/mogothrow77");
        Ok((dir, binary))
    }

    fn staged_binary(&self, _work: &WorkDir, journal: &Journal) -> PathBuf {
        Plain::host()
            .release_dir(&journal.to)
            .join("bin/mogothrow77")
    }

    /// Written already (step 1): what it takes on disk.
    fn staged_bytes(&self, kept: &Path) -> u64 {
        system::used_bytes(kept)
    }

    /// Its release directory, which `current` points to.
    fn keep_previous(&self, _work: &WorkDir, from: &str) -> Result<PathBuf, String> {
        let plain = Plain::host();
        current_is(&plain, &[from], from, true)?;
        Ok(plain.release_dir(from))
    }

    /// `current` switched to its release directory, its unit installed,
    /// systemd's units reloaded.
    fn install(&self, _release: &Path, version: &str, _older: bool) -> Result<(), String> {
        let plain = Plain::host();
        plain.switch_to(version)?;
        plain.install_unit(Path::new(PLAIN_UNIT))?;
        // Always: a run killed after writing the unit and before the
        // reload finds the text unchanged when it runs again.
        system::daemon_reload()
    }

    fn installed(&self, _release: &Path, to: &str) -> String {
        format!("{PLAIN_ROOT}/current → releases/{to}")
    }

    /// The new release and the previous one (for rollback) stay.
    fn finished(&self, journal: &Journal, report: &Report) {
        match Plain::host().prune(&journal.from) {
            Ok(removed) if !removed.is_empty() => report.line(&format!(
                "removed older release directories: {}",
                removed.join(", ")
            )),
            Ok(_) => {}
            Err(e) => report.line(&format!("note     older releases were not removed: {e}")),
        }
    }

    fn is_installed(&self, version: &str) -> bool {
        Plain::host().current().as_deref() == Some(version)
    }

    /// In its release directory.
    fn previous_binary(&self, _work: &WorkDir, journal: &Journal) -> Result<PathBuf, String> {
        let binary = Plain::host()
            .release_dir(&journal.from)
            .join("bin/mogothrow77");
        if !binary.is_file() {
            return Err(format!("{} is gone", binary.display()));
        }
        Ok(binary)
    }

    /// A rollback killed before it installed the unit left the newer
    /// release's: the switch is repeated even when `current` points back.
    fn reinstalls_always(&self) -> bool {
        true
    }
}
