//! pgBackRest, the managed cluster's point-in-time recovery (ADR 0023):
//! its configuration, log, lock and spool under `<state_dir>/pgbackrest`
//! (nothing outside the unit's sandbox), its repository where
//! `backup.pitr_dir` says, and every call through `--config` so the
//! system's `/etc/pgbackrest.conf` is never read. Runs as the service user,
//! the cluster's OS user. Calls block: async callers spawn them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::managed::Layout;

/// The stanza: pgBackRest's name for the one cluster it backs up.
pub const STANZA: &str = "mogothrow77";

#[derive(Debug, thiserror::Error)]
pub enum PgbackrestError {
    #[error(
        "backup.pitr is on, but pgBackRest is not installed: apt-get install pgbackrest \
         (Debian/Ubuntu; the mogothrow77 package depends on it) or dnf install pgbackrest \
         (RHEL family, from the PostgreSQL project's repository)"
    )]
    Missing,
    #[error("cannot prepare {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("pgbackrest {command} failed ({status}): {output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
    #[error("pgbackrest info answered what this version cannot read: {0}")]
    Info(String),
}

impl PgbackrestError {
    /// True when the program is missing (exit 5).
    pub fn is_missing_component(&self) -> bool {
        matches!(self, PgbackrestError::Missing)
    }
}

/// Full or differential: what a base backup copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Full,
    Differential,
}

impl Kind {
    fn arg(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Differential => "diff",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Differential => "differential",
        }
    }
}

/// One base backup in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseBackup {
    pub label: String,
    pub kind: String,
    pub started: SystemTime,
    pub stopped: SystemTime,
    /// The database's size at the backup.
    pub database_bytes: u64,
    /// What it takes in the repository.
    pub repository_bytes: u64,
}

/// What the repository holds.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// Oldest first.
    pub backups: Vec<BaseBackup>,
    /// The newest WAL segment archived, when there is one.
    pub newest_wal: Option<String>,
    /// pgBackRest's own status message for the stanza (`ok` when usable).
    pub status: String,
}

impl Info {
    pub fn newest(&self) -> Option<&BaseBackup> {
        self.backups.last()
    }

    /// The newest full backup's stop time.
    pub fn newest_full(&self) -> Option<SystemTime> {
        self.backups
            .iter()
            .rev()
            .find(|b| b.kind == "full")
            .map(|b| b.stopped)
    }

    /// The oldest point a restore can reach: the end of the oldest backup.
    pub fn earliest(&self) -> Option<SystemTime> {
        self.backups.first().map(|b| b.stopped)
    }
}

/// pgBackRest configured for the managed cluster.
#[derive(Debug, Clone)]
pub struct Pgbackrest {
    program: PathBuf,
    config: PathBuf,
    pub repository: PathBuf,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> PgbackrestError + '_ {
    move |e| PgbackrestError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn private_dir(dir: &Path) -> Result<(), PgbackrestError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

/// `pgbackrest` in `PATH` (or the usual places when `PATH` is bare).
pub fn find() -> Result<PathBuf, PgbackrestError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/local/bin".into()])
        .map(|d| d.join("pgbackrest"))
        .find(|p| p.is_file())
        .ok_or(PgbackrestError::Missing)
}

/// Quotes `text` for the shell PostgreSQL runs `archive_command` with.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

impl Pgbackrest {
    /// Writes `<home>/pgbackrest.conf` for the cluster in `layout` (run by
    /// `os_user`) and makes the directories it names; rewritten at every
    /// start, like the cluster's access rules.
    pub fn configure(
        home: &Path,
        repository: &Path,
        keep_full: u32,
        layout: &Layout,
        os_user: &str,
    ) -> Result<Pgbackrest, PgbackrestError> {
        let program = find()?;
        for dir in [
            home.to_path_buf(),
            home.join("log"),
            home.join("lock"),
            home.join("spool"),
            repository.to_path_buf(),
        ] {
            private_dir(&dir)?;
        }
        let config = home.join("pgbackrest.conf");
        let text = format!(
            "# Managed by mogothrow77: rewritten at every start (backup.pitr).\n\
             [global]\n\
             repo1-path={repo}\n\
             repo1-retention-full={keep_full}\n\
             log-path={home}/log\n\
             lock-path={home}/lock\n\
             spool-path={home}/spool\n\
             log-level-console=warn\n\
             log-level-stderr=off\n\
             log-level-file=info\n\
             start-fast=y\n\
             compress-type=zst\n\
             \n\
             [{STANZA}]\n\
             pg1-path={data}\n\
             pg1-socket-path={socket}\n\
             pg1-port={port}\n\
             pg1-user={os_user}\n",
            repo = repository.display(),
            home = home.display(),
            data = layout.data_dir.display(),
            socket = layout.socket_dir.display(),
            port = super::managed::PORT,
        );
        let partial = home.join("pgbackrest.conf.partial");
        std::fs::write(&partial, text).map_err(io_err(&partial))?;
        std::fs::rename(&partial, &config).map_err(io_err(&config))?;
        Ok(Pgbackrest {
            program,
            config,
            repository: repository.to_path_buf(),
        })
    }

    /// pgBackRest as `configure` left it, for reading only (`diagnose`):
    /// nothing is written.
    pub fn configured(home: &Path, repository: &Path) -> Result<Pgbackrest, PgbackrestError> {
        Ok(Pgbackrest {
            program: find()?,
            config: home.join("pgbackrest.conf"),
            repository: repository.to_path_buf(),
        })
    }

    /// The cluster's `archive_command`.
    pub fn archive_command(&self) -> String {
        format!(
            "{} --config={} --stanza={STANZA} archive-push %p",
            shell_quote(&self.program.display().to_string()),
            shell_quote(&self.config.display().to_string()),
        )
    }

    fn run(&self, command: &str, args: &[String]) -> Result<String, PgbackrestError> {
        let out = Command::new(&self.program)
            .arg(format!("--config={}", self.config.display()))
            .arg(format!("--stanza={STANZA}"))
            .args(args)
            .arg(command)
            .env_remove("NOTIFY_SOCKET")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| PgbackrestError::Failed {
                command: command.to_string(),
                status: "not started".to_string(),
                output: e.to_string(),
            })?;
        if !out.status.success() {
            let mut output = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if output.is_empty() {
                output = String::from_utf8_lossy(&out.stdout).trim().to_string();
            }
            return Err(PgbackrestError::Failed {
                command: command.to_string(),
                status: out.status.to_string(),
                output,
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates the stanza (or checks the existing one matches the
    /// cluster); the cluster must be running.
    pub fn stanza_create(&self) -> Result<(), PgbackrestError> {
        self.run("stanza-create", &[]).map(drop)
    }

    /// Takes a base backup; the cluster must be running.
    pub fn backup(&self, kind: Kind) -> Result<(), PgbackrestError> {
        self.run("backup", &[format!("--type={}", kind.arg())])
            .map(drop)
    }

    /// What the repository holds.
    pub fn info(&self) -> Result<Info, PgbackrestError> {
        // Read-only, and run by `diagnose` as root too: no log file.
        parse_info(&self.run(
            "info",
            &[
                "--output=json".to_string(),
                "--log-level-file=off".to_string(),
            ],
        )?)
    }

    /// Restores into `data_dir` (empty, or missing) the cluster as of
    /// `target` (PostgreSQL's `recovery_target_time` form); PostgreSQL
    /// replays the WAL to it at its next start and then promotes.
    pub fn restore(&self, data_dir: &Path, target: &str) -> Result<(), PgbackrestError> {
        private_dir(data_dir)?;
        self.run(
            "restore",
            &[
                format!("--pg1-path={}", data_dir.display()),
                "--type=time".to_string(),
                format!("--target={target}"),
                "--target-action=promote".to_string(),
            ],
        )
        .map(drop)
    }
}

fn seconds(v: &Value) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(v.as_u64().unwrap_or(0))
}

/// Reads `pgbackrest info --output=json` for the stanza.
pub fn parse_info(json: &str) -> Result<Info, PgbackrestError> {
    let all: Value =
        serde_json::from_str(json).map_err(|e| PgbackrestError::Info(e.to_string()))?;
    let Some(stanza) = all
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == STANZA))
    else {
        return Ok(Info {
            status: "no stanza yet".to_string(),
            ..Info::default()
        });
    };
    let backups = stanza["backup"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["error"] != true)
        .map(|b| BaseBackup {
            label: b["label"].as_str().unwrap_or_default().to_string(),
            kind: b["type"].as_str().unwrap_or_default().to_string(),
            started: seconds(&b["timestamp"]["start"]),
            stopped: seconds(&b["timestamp"]["stop"]),
            database_bytes: b["info"]["size"].as_u64().unwrap_or(0),
            repository_bytes: b["info"]["repository"]["size"].as_u64().unwrap_or(0),
        })
        .collect();
    let newest_wal = stanza["archive"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["max"].as_str())
        .max()
        .map(str::to_string);
    Ok(Info {
        backups,
        newest_wal,
        status: stanza["status"]["message"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What pgBackRest 2.45 printed for a stanza with one full backup.
    const INFO: &str = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000002","min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000002","stop":"000000010000000000000002"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":22992372,"repository":{"delta":3043374,"size":3043374},"size":22992372},"label":"20261207-150109F","lsn":{"start":"0/2000028","stop":"0/2000100"},"prior":null,"reference":null,"timestamp":{"start":1796655669,"stop":1796655671},"type":"full"}],"cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7716577332935203404,"version":"15"}],"name":"mogothrow77","repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]"#;

    #[test]
    fn info_is_read() {
        let info = parse_info(INFO).expect("info");
        assert_eq!(info.status, "ok");
        assert_eq!(info.backups.len(), 1);
        let b = info.newest().expect("a backup");
        assert_eq!(b.label, "20261207-150109F");
        assert_eq!(b.kind, "full");
        assert_eq!(b.database_bytes, 22_992_372);
        assert_eq!(b.repository_bytes, 3_043_374);
        assert_eq!(
            info.newest_full(),
            Some(UNIX_EPOCH + Duration::from_secs(1_796_655_671))
        );
        assert_eq!(info.newest_wal.as_deref(), Some("000000010000000000000002"));
    }

    #[test]
    fn a_missing_stanza_is_an_empty_repository_and_garbage_an_error() {
        let info = parse_info("[]").expect("empty");
        assert!(info.backups.is_empty());
        assert!(parse_info("not json").is_err());
    }

    #[test]
    fn archive_command_paths_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("/a b/it's"), "'/a b/it'\\''s'");
    }
}
