//! Scheduled backups (`[backup]`): a schedule set, its newest run, its
//! copies, and whether `backup.dir` can be storage every replica sees.

use crate::db::Sql;
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
const SHARED_FS: [nix::libc::__fsword_t; 7] = [
    0x6969,
    0xFF53_4D42,
    0xFE53_4D42,
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
    Some(SHARED_FS.contains(&fs.filesystem_type().0))
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
    let newest = Sql::query_opt(
        &client,
        "SELECT j.state, j.attempts, j.last_error FROM backup_slots s \
               LEFT JOIN jobs j ON j.id = s.job_id WHERE s.kind = 'backup' \
              ORDER BY s.slot DESC LIMIT 1",
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
    let copies = Sql::query_opt(
        &client,
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
    let replicas: i64 = Sql::query_one(
        &client,
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

pub const DRILL_NAME: &str = "restore drill";
/// A drill older than this warns: drills are proof, and proof ages.
const DRILL_WARN_AGE: std::time::Duration = std::time::Duration::from_secs(8 * 24 * 3600);

/// The newest restore drill: never run warns, failed fails, older than a
/// week and a day warns.
pub async fn drill(client: &Client, runbooks: &Runbooks) -> Check {
    const DRILL_PAGE: &str = "operations.md#restore-drills";
    let row = Sql::query_opt(
        &client,
        "SELECT drilled_at, drill_ok, drill_report, archive FROM backups \
             WHERE drilled_at IS NOT NULL ORDER BY drilled_at DESC LIMIT 1",
        &[],
    )
    .await;
    let row = match row {
        Ok(row) => row,
        Err(e)
            if matches!(
                e.code(),
                Some(&SqlState::UNDEFINED_TABLE | &SqlState::UNDEFINED_COLUMN)
            ) =>
        {
            return Check::skip(DRILL_NAME, "the schema predates restore drills (migrate)")
        }
        Err(e) => {
            return Check::fail(
                DRILL_NAME,
                describe_pg_error(&e),
                runbooks.fix(
                    "the database answered with an error: see its log",
                    DRILL_PAGE,
                ),
            )
        }
    };
    let Some(row) = row else {
        return Check::warn(
            DRILL_NAME,
            "no backup was ever restored to prove it",
            runbooks.fix(
                "run `mogothrow77 backup drill` (weekly, from a timer)",
                DRILL_PAGE,
            ),
        );
    };
    let (at, ok, report, archive): (
        std::time::SystemTime,
        Option<bool>,
        Option<serde_json::Value>,
        String,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3));
    let age = std::time::SystemTime::now()
        .duration_since(at)
        .unwrap_or_default();
    let report = report.unwrap_or_default();
    let value = format!(
        "{:.1} days ago: {archive} restored, {} collection(s), {} records, audit chain of {} entries",
        age.as_secs_f64() / 86_400.0,
        report["collections"],
        report["records"],
        report["audit_entries"]
    );
    if ok != Some(true) {
        return Check::fail(
            DRILL_NAME,
            format!(
                "{value}; it FAILED: mismatches {}, audit problems {}",
                report["mismatches"], report["audit_problems"]
            ),
            runbooks.fix(
                "the backup does not restore to what was recorded: take a new backup and drill it",
                DRILL_PAGE,
            ),
        );
    }
    if age > DRILL_WARN_AGE {
        return Check::warn(
            DRILL_NAME,
            value,
            runbooks.fix("drill again: `mogothrow77 backup drill`", DRILL_PAGE),
        );
    }
    Check::pass(DRILL_NAME, value)
}
