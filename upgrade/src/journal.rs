//! The upgrade journal: what an `apply` has done, step by step, written
//! to disk (and fsync'd) before and after every step, so a rerun after a
//! crash or `kill -9` knows where it stopped. One upgrade at a time: the
//! journal directory's lock file is held for the whole run.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::layout::Layout;

/// The steps of `apply`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Verify,
    Compatibility,
    Preflight,
    Backup,
    Stop,
    Migrate,
    Swap,
    Start,
    Health,
}

impl Step {
    pub const ALL: [Step; 9] = [
        Step::Verify,
        Step::Compatibility,
        Step::Preflight,
        Step::Backup,
        Step::Stop,
        Step::Migrate,
        Step::Swap,
        Step::Start,
        Step::Health,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Verify => "verify",
            Step::Compatibility => "compatibility",
            Step::Preflight => "preflight",
            Step::Backup => "backup",
            Step::Stop => "stop",
            Step::Migrate => "migrate",
            Step::Swap => "swap",
            Step::Start => "start",
            Step::Health => "health",
        }
    }

    /// 1-based position, for "step 4/9".
    pub fn number(self) -> usize {
        self as usize + 1
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Started,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: Step,
    pub state: StepState,
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub seconds: f64,
    pub detail: String,
}

/// Where an upgrade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Running, or interrupted: rerun `apply` or `rollback`.
    InProgress,
    Done,
    /// Refused before anything changed.
    Refused,
    /// Failed; the previous release runs again.
    RolledBack,
    /// Stopped; an admin must act (the runbook section is named).
    NeedsAdmin,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub id: String,
    pub from: String,
    pub to: String,
    pub bundle: PathBuf,
    pub outcome: Outcome,
    /// How the releases are installed (the layout found when the upgrade
    /// began).
    #[serde(default)]
    pub layout: Layout,
    /// The target's package, kept in the releases directory (package
    /// layout), or its release directory (plain layout).
    pub package: Option<PathBuf>,
    /// The previous release's package, or its release directory, for
    /// rollback.
    pub previous_package: Option<PathBuf>,
    /// The database archive and the configuration copy.
    pub backup: Option<PathBuf>,
    pub config_backup: Option<PathBuf>,
    /// Whether the target has migrations to run (found by the
    /// compatibility step).
    #[serde(default)]
    pub migrations_pending: bool,
    /// One of them is a contract migration: afterwards the previous release
    /// cannot run, so the backup is test-restored before anything changes.
    #[serde(default)]
    pub contract_pending: bool,
    /// The schema level the target binary brings.
    pub target_schema_level: Option<u32>,
    /// When the service was stopped (seconds since the epoch).
    pub stopped_at: Option<f64>,
    /// Time from stopping the service to the target serving ready.
    pub downtime_seconds: Option<f64>,
    pub message: Option<String>,
    pub steps: Vec<StepRecord>,
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Journal {
    pub fn new(from: &str, to: &str, bundle: &Path, layout: Layout) -> Journal {
        let secs = now() as u64;
        Journal {
            id: format!("{secs}-{from}-to-{to}"),
            from: from.to_string(),
            to: to.to_string(),
            bundle: bundle.to_path_buf(),
            outcome: Outcome::InProgress,
            layout,
            package: None,
            previous_package: None,
            backup: None,
            config_backup: None,
            migrations_pending: false,
            contract_pending: false,
            target_schema_level: None,
            stopped_at: None,
            downtime_seconds: None,
            message: None,
            steps: Vec::new(),
        }
    }

    pub fn done(&self, step: Step) -> bool {
        self.steps
            .iter()
            .any(|r| r.step == step && r.state == StepState::Done)
    }

    /// Whether any step that changes the installation has begun.
    pub fn changed_anything(&self) -> bool {
        self.steps.iter().any(|r| r.step >= Step::Stop)
    }

    pub fn record(&mut self, step: Step, state: StepState, seconds: f64, detail: &str) {
        self.steps.push(StepRecord {
            step,
            state,
            at: now(),
            seconds,
            detail: detail.to_string(),
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error(
        "another upgrade or rollback is running (it holds {path}); wait for it, or check \
         `mogothrow77-upgrade status`"
    )]
    Busy { path: String },
    #[error("the journal {path} is unreadable ({reason}); see /usr/share/doc/mogothrow77/upgrade.md.gz, section the-journal-is-unreadable")]
    Corrupt { path: String, reason: String },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |e| JournalError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Where the upgrade tool keeps its journal unless told otherwise
/// (`--work-dir`); the installer keeps an installed .rpm there too.
pub const DEFAULT_WORK_DIR: &str = contracts::locations::UPGRADE_WORK_DIR;

/// The tool's own directory (root-owned, 0700): journal, lock, kept
/// packages, configuration copies, staging.
pub struct WorkDir {
    pub root: PathBuf,
    _lock: File,
}

impl WorkDir {
    /// Creates the directory if needed and takes the lock; fails at once
    /// when another run holds it.
    pub fn lock(root: &Path) -> Result<WorkDir, JournalError> {
        fs::create_dir_all(root).map_err(io_err(root))?;
        fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(io_err(root))?;
        let path = root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(WorkDir {
                root: root.to_path_buf(),
                _lock: file,
            }),
            Err(fs::TryLockError::WouldBlock) => Err(JournalError::Busy {
                path: path.display().to_string(),
            }),
            Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }

    pub fn journal_path(&self) -> PathBuf {
        self.root.join("journal.json")
    }

    pub fn releases(&self) -> PathBuf {
        self.root.join("releases")
    }

    pub fn load(&self) -> Result<Option<Journal>, JournalError> {
        load(&self.journal_path())
    }

    /// Writes the journal atomically and durably: a temporary file,
    /// fsync, rename, fsync of the directory.
    pub fn save(&self, journal: &Journal) -> Result<(), JournalError> {
        let path = self.journal_path();
        let tmp = self.root.join("journal.json.tmp");
        let text = serde_json::to_vec_pretty(journal).map_err(|e| JournalError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(&text).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.root))
    }

    /// Moves a finished journal aside so the next upgrade starts a new one.
    pub fn archive(&self, journal: &Journal) -> Result<(), JournalError> {
        let dir = self.root.join("history");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let to = dir.join(format!("{}.json", journal.id));
        fs::rename(self.journal_path(), &to).map_err(io_err(&to))
    }
}

/// Reads a journal without taking the lock (for `status`).
pub fn load(path: &Path) -> Result<Option<Journal>, JournalError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| JournalError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_journal_reads_back_and_a_second_lock_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = WorkDir::lock(dir.path()).expect("lock");
        assert!(matches!(
            WorkDir::lock(dir.path()),
            Err(JournalError::Busy { .. })
        ));
        let mut j = Journal::new("0.1.0", "0.1.1", Path::new("/b.zip"), Layout::Plain);
        j.record(Step::Verify, StepState::Done, 0.5, "ok");
        work.save(&j).expect("save");
        let back = work.load().expect("load").expect("journal");
        assert!(back.done(Step::Verify));
        assert_eq!(back.layout, Layout::Plain);
        assert!(!back.done(Step::Backup));
        assert!(!back.changed_anything());
        drop(work);
        assert!(WorkDir::lock(dir.path()).is_ok(), "the lock is released");
        fs::write(dir.path().join("journal.json"), b"{not json").expect("write");
        assert!(matches!(
            load(&dir.path().join("journal.json")),
            Err(JournalError::Corrupt { .. })
        ));
    }

    #[test]
    fn steps_are_numbered_in_order() {
        assert_eq!(Step::Verify.number(), 1);
        assert_eq!(Step::Health.number(), Step::ALL.len());
        assert!(Step::ALL.windows(2).all(|w| w[0] < w[1]));
    }
}
