//! Helpers for byte-identical builds: one timestamp for every file, taken
//! from `SOURCE_DATE_EPOCH` or the commit, and commands that must succeed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

pub type Result<T> = std::result::Result<T, String>;

/// `SOURCE_DATE_EPOCH`, else the time of the HEAD commit.
pub fn source_date_epoch() -> Result<u64> {
    if let Ok(value) = std::env::var("SOURCE_DATE_EPOCH") {
        return value
            .trim()
            .parse()
            .map_err(|_| format!("SOURCE_DATE_EPOCH={value} is not a number of seconds"));
    }
    let out = run_capture(Command::new("git").args(["log", "-1", "--format=%ct", "HEAD"]))?;
    out.trim()
        .parse()
        .map_err(|_| format!("cannot read the commit time from git: {out:?}"))
}

/// Sets the modification time of `root` and everything below it.
pub fn clamp_mtimes(root: &Path, epoch: u64) -> Result<()> {
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch);
    let meta = std::fs::symlink_metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(root)
            .map_err(|e| format!("{}: {e}", root.display()))?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for entry in entries {
            clamp_mtimes(&entry, epoch)?;
        }
    }
    if !meta.file_type().is_symlink() {
        let file = std::fs::File::open(root).map_err(|e| format!("{}: {e}", root.display()))?;
        file.set_modified(time)
            .map_err(|e| format!("{}: {e}", root.display()))?;
    }
    Ok(())
}

/// Runs a command; its failure is an error naming the command.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// Runs a command and returns its standard output.
pub fn run_capture(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}
