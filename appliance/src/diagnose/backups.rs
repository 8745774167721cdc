//! Scheduled backups (`[backup]`): a schedule set, its newest run, its
//! copies, and whether `backup.dir` can be storage every replica sees.

use std::path::Path;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::{Check, Runbooks};
use crate::config::Settings;
use crate::db::describe_pg_error;

pub const NAME: &str = "backup schedule";
const PAGE: &str = "operations.md#scheduled-backups";

/// Network and cluster filesystems (statfs magic numbers): NFS, SMB/CIFS,
/// SMB2, FUSE (sshfs, s3fs…), CephFS, GlusterFS runs over FUSE, 9p, AFS.
const SHARED_FS: [i64; 7] = [
    0x6969,
    0xFF53_4D42_u32 as i64,
    0xFE53_4D42_u32 as i64,
    0x6573_5546,
    0x00C3_6400,
    0x0102_1997,
    0x5346_414F,
];

/// Whether `dir` (or the nearest existing parent) is on a network
/// filesystem; `None` when that cannot be read.
fn on_shared_storage(dir: &Path) -> Option<bool> {
    let existing = dir.ancestors().find(|p| p.exists())?;
    let fs = nix::sys::statfs::statfs(existing).ok()?;
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let kind = i64::from(fs.filesystem_type().0 as i64);
    Some(SHARED_FS.contains(&kind))
}

pub async fn check(client: &Client, settings: &Settings, runbooks: &Runbooks) -> Check {
    let policy = &settings.backup;
    let Some(schedule) = policy.schedule else {
        return Check::warn(
            NAME,
            "no backup.schedule: backups are taken only when someone runs `mogothrow77 backup`",
            runbooks.fix(
                "set backup.schedule (e.g. \"daily 02:30\") and backup.keep",
                PAGE,
            ),
        );
    };
    let retention = match (policy.keep, policy.keep_days) {
        (0, d) => format!("kept {d} days"),
        (n, 0) => format!("newest {n} kept"),
        (n, d) => format!("newest {n} kept, none over {d} days"),
    };
    let mut value = format!("{schedule} into {} ({retention})", policy.dir.display());
    // The newest slot's job: failing or dead is worth knowing before the
    // backup-age alert says so.
    let newest = client
        .query_opt(
            "SELECT j.state, j.attempts, j.last_error FROM backup_slots s \
               LEFT JOIN jobs j ON j.id = s.job_id ORDER BY s.slot DESC LIMIT 1",
            &[],
        )
        .await;
    let newest = match newest {
        Ok(row) => row,
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
            return Check::skip(
                NAME,
                format!("{value}; the schema predates scheduled backups (migrate)"),
            )
        }
        Err(e) => {
            return Check::fail(
                NAME,
                describe_pg_error(&e),
                runbooks.fix("the database answered with an error: see its log", PAGE),
            )
        }
    };
    if let Some(row) = newest {
        let (state, attempts, error): (Option<String>, Option<i32>, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        let error = error.unwrap_or_default();
        match state.as_deref() {
            Some("dead") => {
                return Check::fail(
                    NAME,
                    format!("{value}; the newest scheduled backup failed: {error}"),
                    runbooks.fix(
                        "fix the cause, then `mogothrow77 backup --out FILE` now",
                        PAGE,
                    ),
                )
            }
            Some("queued") if attempts.unwrap_or(0) > 0 => {
                return Check::warn(
                    NAME,
                    format!("{value}; the newest scheduled backup failed and is retried: {error}"),
                    runbooks.fix(
                        "fix the cause (disk space, permissions, the database)",
                        PAGE,
                    ),
                )
            }
            _ => {}
        }
    }
    let copies = client
        .query_opt(
            "SELECT archive, copies FROM backups WHERE scheduled_for IS NOT NULL \
             ORDER BY finished_at DESC LIMIT 1",
            &[],
        )
        .await;
    if let Ok(Some(row)) = copies {
        let (archive, copies): (String, Option<serde_json::Value>) = (row.get(0), row.get(1));
        let failed: Vec<String> = copies
            .as_ref()
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
            .filter(|c| c["ok"] == false)
            .map(|c| {
                format!(
                    "{} {}: {}",
                    c["kind"].as_str().unwrap_or(""),
                    c["to"].as_str().unwrap_or(""),
                    c["detail"].as_str().unwrap_or("")
                )
            })
            .collect();
        if !failed.is_empty() {
            return Check::warn(
                NAME,
                format!(
                    "{value}; the copy of {archive} failed: {}",
                    failed.join("; ")
                ),
                runbooks.fix(
                    "fix backup.copy_to / backup.hook; the archive itself is good",
                    PAGE,
                ),
            );
        }
        value.push_str(&format!("; newest {archive}"));
    }
    let replicas: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
              WHERE application_name = $1 AND datname = current_database()",
            &[&crate::listen::LISTENER_APPLICATION_NAME],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);
    if replicas > 1 && on_shared_storage(&policy.dir) != Some(true) {
        return Check::warn(
            NAME,
            format!(
                "{value}; {replicas} replicas run, and {} is not on a network filesystem this \
                 host can recognise: archives land on whichever replica takes them, and pruning \
                 cannot reach the other replicas' disks",
                policy.dir.display()
            ),
            runbooks.fix(
                "point backup.dir at storage every replica mounts (NFS), or run one replica with \
                 the schedule",
                PAGE,
            ),
        );
    }
    Check::pass(NAME, value)
}
