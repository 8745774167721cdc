//! What differs between the layouts (`crate::layout`) while a release is
//! upgraded or rolled back: the [`Install`] trait, one implementation per
//! layout (`deb.rs`, `rpm.rs`, `plain.rs`). The steps and the recovery
//! call it and never match on the layout (where the installed binary and
//! the programs are is `Layout::binary` and `Layout::programs_dir`, which
//! the tool's other commands use too).

mod deb;
mod plain;
mod rpm;

use std::fs;
use std::path::{Path, PathBuf};

use super::Report;
use crate::journal::{Journal, WorkDir};
use crate::layout::Layout;
use crate::release::Release;

/// How releases are installed, kept and brought back in one layout.
/// Errors are messages for the report; each step decides whether one
/// refuses (nothing changed) or fails.
pub(super) trait Install {
    /// What the bundle's release is called in messages.
    fn release_name(&self) -> &'static str;

    /// Keeps the target release (its package, or its release directory)
    /// and returns it with the target's server binary, to run before it is
    /// installed.
    fn stage(
        &self,
        work: &WorkDir,
        release: &Release,
        journal: &Journal,
    ) -> Result<(PathBuf, PathBuf), String>;

    /// The target's server binary once staged: in the package layouts,
    /// where `stage` unpacked it.
    fn staged_binary(&self, work: &WorkDir, _journal: &Journal) -> PathBuf {
        staged_root(work).join("usr/bin/mogothrow77")
    }

    /// What the staged release takes on disk.
    fn staged_bytes(&self, kept: &Path) -> u64 {
        fs::metadata(kept).map_or(0, |m| m.len())
    }

    /// Checked before the backup is taken: the way back exists.
    fn way_back(&self, _work: &WorkDir, _from: &str) -> Result<(), String> {
        Ok(())
    }

    /// The installed release, kept for a rollback.
    fn keep_previous(&self, work: &WorkDir, from: &str) -> Result<PathBuf, String>;

    /// Makes `version` the installed release from `release` (what
    /// [`Install::stage`] or [`Install::keep_previous`] kept); `older`:
    /// going back.
    fn install(&self, release: &Path, version: &str, older: bool) -> Result<(), String>;

    /// What the swap step reports once `to` is installed from `release`.
    fn installed(&self, release: &Path, _to: &str) -> String {
        format!("{} installed", release.display())
    }

    /// Tidying once an upgrade to `journal.to` is done.
    fn finished(&self, _journal: &Journal, _report: &Report) {}

    /// A state only an admin can repair, found before a rollback.
    fn interrupted(&self) -> Option<String> {
        None
    }

    /// Whether `version` is the installed release.
    fn is_installed(&self, version: &str) -> bool;

    /// The previous release's server binary while it is not installed, to
    /// ask it about the schema before anything changes.
    fn previous_binary(&self, work: &WorkDir, journal: &Journal) -> Result<PathBuf, String>;

    /// Whether a rollback installs the previous release even when it is
    /// installed already (what it left behind may be the newer one's).
    fn reinstalls_always(&self) -> bool {
        false
    }
}

/// The implementation for `layout`.
pub(super) fn of(layout: Layout) -> &'static dyn Install {
    match layout {
        Layout::Package => &deb::Deb,
        Layout::Rpm => &rpm::Rpm,
        Layout::Plain => &plain::PlainRelease,
    }
}

/// Copies a bundle's package into the releases directory, kept for a
/// later rollback.
fn keep(work: &WorkDir, package: &Path) -> Result<PathBuf, String> {
    let releases = work.releases();
    fs::create_dir_all(&releases).map_err(|e| format!("{}: {e}", releases.display()))?;
    let kept = releases.join(package.file_name().unwrap_or_default());
    fs::copy(package, &kept).map_err(|e| format!("{}: {e}", kept.display()))?;
    Ok(kept)
}

/// Where a package layout unpacks the target's files.
fn staged_root(work: &WorkDir) -> PathBuf {
    work.root.join("staging/root")
}

/// Whether a package manager's `version-release` is `version`.
fn is_version(listed: Option<String>, version: &str) -> bool {
    listed
        .unwrap_or_default()
        .starts_with(&format!("{version}-"))
}
