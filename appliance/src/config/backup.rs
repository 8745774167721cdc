//! `[backup]`: scheduled logical backups — when, where, how many are kept,
//! and where copies go off the host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::schedule::Schedule;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// `daily HH:MM` (UTC) or `every N{s,m,h}`; unset: no scheduled backups.
    pub schedule: Option<String>,
    /// Where scheduled archives are written; default
    /// `<state_dir>/backups/scheduled`.
    pub dir: Option<PathBuf>,
    /// How many scheduled backups are kept (the newest); 0: no limit by count.
    pub keep: u32,
    /// Scheduled backups older than this many days are removed; 0: no limit by age.
    pub keep_days: u32,
    /// A mounted directory (NFS, SMB) each archive is also copied to,
    /// verified by its SHA-256.
    pub copy_to: Option<PathBuf>,
    /// A program run with the archive's path as its one argument (e.g. an
    /// upload to object storage); its exit status is checked.
    pub hook: Option<PathBuf>,
    /// Seconds the hook may run before it is killed and reported failed.
    pub hook_timeout_secs: u64,
    /// Public keys (`age1…`, one per line) every backup archive is
    /// encrypted to, in the age format.
    pub age_recipients_file: Option<PathBuf>,
    /// When restore drills run by themselves (same forms as `schedule`).
    pub drill_schedule: Option<String>,
    /// A private key (`age-keygen`'s file) for scheduled drills of
    /// encrypted backups; nothing else reads it.
    pub age_identity_file: Option<PathBuf>,
    /// Point-in-time recovery of the managed database with pgBackRest:
    /// continuous WAL archiving, and full or differential base backups at
    /// every `schedule` slot.
    pub pitr: bool,
    /// The pgBackRest repository; default `<backup.dir>/pitr`.
    pub pitr_dir: Option<PathBuf>,
    /// Seconds after which a WAL segment with changes is archived even if
    /// it is not full: the most recent changes a PITR restore can lose.
    pub archive_timeout_secs: u64,
    /// A full base backup when the newest is this many days old;
    /// differential ones in between.
    pub pitr_full_days: u32,
    /// How many full base backups (and the WAL they need) are kept.
    pub pitr_keep_full: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            schedule: None,
            dir: None,
            keep: 7,
            keep_days: 0,
            copy_to: None,
            hook: None,
            hook_timeout_secs: 3600,
            age_recipients_file: None,
            drill_schedule: None,
            age_identity_file: None,
            pitr: false,
            pitr_dir: None,
            archive_timeout_secs: 60,
            pitr_full_days: 7,
            pitr_keep_full: 2,
        }
    }
}

/// The checked `[backup]` section.
#[derive(Debug, Clone)]
pub struct BackupPolicy {
    pub schedule: Option<Schedule>,
    pub dir: PathBuf,
    pub keep: u32,
    pub keep_days: u32,
    pub copy_to: Option<PathBuf>,
    pub hook: Option<PathBuf>,
    pub hook_timeout: Duration,
    /// Who archives are encrypted to (`backup.age_recipients_file`);
    /// empty: archives are not encrypted.
    pub recipients: Vec<crate::age::Recipient>,
    /// When drills run by themselves (`backup.drill_schedule`).
    pub drill_schedule: Option<Schedule>,
    /// The keys scheduled drills open encrypted archives with
    /// (`backup.age_identity_file`).
    pub identities: Vec<crate::age::Identity>,
    /// Where a plaintext archive is written before it is encrypted:
    /// `<state_dir>/backups/work`, beside the database it came from.
    pub work_dir: PathBuf,
    /// Point-in-time recovery (`backup.pitr`); `None`: off.
    pub pitr: Option<PitrPolicy>,
}

/// The checked PITR settings.
#[derive(Debug, Clone)]
pub struct PitrPolicy {
    /// The pgBackRest repository (`backup.pitr_dir`).
    pub repository: PathBuf,
    /// `<state_dir>/pgbackrest`: pgBackRest's configuration, log, lock and
    /// spool, all inside the unit's sandbox.
    pub home: PathBuf,
    pub archive_timeout: Duration,
    pub full_every: Duration,
    pub keep_full: u32,
}

/// The default place of scheduled archives under `state_dir`.
pub fn default_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("backups").join("scheduled")
}

/// The keys of an age key file; a problem under `key` (and none) when it
/// cannot be read or holds a line that is not one.
fn key_file<T>(
    key: &str,
    path: Option<&Path>,
    read: fn(&Path) -> Result<Vec<T>, crate::age::AgeError>,
    problem: &mut impl FnMut(&str, String),
) -> Vec<T> {
    let Some(path) = path else {
        return Vec::new();
    };
    read(path).unwrap_or_else(|e| {
        problem(key, format!("{}: {e}", path.display()));
        Vec::new()
    })
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(
    c: &BackupConfig,
    state_dir: &Path,
    problem: &mut impl FnMut(&str, String),
) -> BackupPolicy {
    let mut parse_schedule = |key: &str, text: Option<&str>| {
        text.map(str::trim)
            .filter(|s| !s.is_empty())
            .and_then(|text| match Schedule::parse(text) {
                Ok(s) => Some(s),
                Err(e) => {
                    problem(key, e.to_string());
                    None
                }
            })
    };
    let schedule = parse_schedule("backup.schedule", c.schedule.as_deref());
    let drill_schedule = parse_schedule("backup.drill_schedule", c.drill_schedule.as_deref());
    for (key, path) in [
        ("backup.age_recipients_file", &c.age_recipients_file),
        ("backup.age_identity_file", &c.age_identity_file),
        ("backup.dir", &c.dir),
        ("backup.copy_to", &c.copy_to),
        ("backup.hook", &c.hook),
        ("backup.pitr_dir", &c.pitr_dir),
    ] {
        if let Some(path) = path {
            if !path.is_absolute() {
                problem(key, format!("{} is not an absolute path", path.display()));
            }
        }
    }
    if let Some(hook) = &c.hook {
        if hook.is_absolute() && !hook.is_file() {
            problem(
                "backup.hook",
                format!(
                    "{} does not exist or is not a file; give the program to run with the \
                     archive's path",
                    hook.display()
                ),
            );
        }
    }
    if c.keep == 0 && c.keep_days == 0 && schedule.is_some() {
        problem(
            "backup.keep",
            "with backup.keep_days also 0 nothing would ever be removed and the disk fills; \
             set how many backups to keep (e.g. 7)"
                .to_string(),
        );
    }
    super::in_range(
        problem,
        "backup.hook_timeout_secs",
        c.hook_timeout_secs,
        1..=86_400,
    );
    let recipients = key_file(
        "backup.age_recipients_file",
        c.age_recipients_file.as_deref(),
        crate::age::recipients_file,
        problem,
    );
    let identities = key_file(
        "backup.age_identity_file",
        c.age_identity_file.as_deref(),
        crate::age::identity_file,
        problem,
    );
    if !identities.is_empty()
        && !recipients.is_empty()
        && !identities
            .iter()
            .any(|i| recipients.contains(&i.recipient()))
    {
        problem(
            "backup.age_identity_file",
            "none of its keys opens the archives: its public key is not in \
             backup.age_recipients_file"
                .to_string(),
        );
    }
    if drill_schedule.is_some()
        && !recipients.is_empty()
        && identities.is_empty()
        && c.age_identity_file.is_none()
    {
        problem(
            "backup.drill_schedule",
            "the archives are encrypted (backup.age_recipients_file): scheduled drills need \
             a private key in backup.age_identity_file"
                .to_string(),
        );
    }
    if c.pitr {
        super::in_range(
            problem,
            "backup.archive_timeout_secs",
            c.archive_timeout_secs,
            10..=3600,
        );
        super::in_range(
            problem,
            "backup.pitr_full_days",
            u64::from(c.pitr_full_days),
            1..=365,
        );
        super::in_range(
            problem,
            "backup.pitr_keep_full",
            u64::from(c.pitr_keep_full),
            1..=100,
        );
        if schedule.is_none() {
            problem(
                "backup.pitr",
                "point-in-time recovery takes its base backups at the backup.schedule slots: \
                 set backup.schedule too (e.g. \"daily 02:30\")"
                    .to_string(),
            );
        }
    }
    let dir = c.dir.clone().unwrap_or_else(|| default_dir(state_dir));
    let pitr = c.pitr.then(|| PitrPolicy {
        repository: c.pitr_dir.clone().unwrap_or_else(|| dir.join("pitr")),
        home: state_dir.join("pgbackrest"),
        archive_timeout: Duration::from_secs(c.archive_timeout_secs),
        full_every: Duration::from_secs(u64::from(c.pitr_full_days) * 86_400),
        keep_full: c.pitr_keep_full,
    });
    BackupPolicy {
        pitr,
        schedule,
        drill_schedule,
        identities,
        dir,
        keep: c.keep,
        keep_days: c.keep_days,
        copy_to: c.copy_to.clone(),
        hook: c.hook.clone(),
        hook_timeout: Duration::from_secs(c.hook_timeout_secs),
        recipients,
        work_dir: state_dir.join("backups").join("work"),
    }
}
