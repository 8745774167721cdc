//! Point-in-time recovery (`backup.pitr`): the running cluster archives
//! its WAL and the archiver is not failing, the repository holds a base
//! backup, and it is not on the database's own file system.

use crate::db::Sql;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

use tokio_postgres::Client;

use super::{Check, Runbooks};
use crate::backups::pitr::Pitr;
use crate::config::{DatabaseTarget, Settings};
use crate::db::describe_pg_error;

pub const NAME: &str = "point-in-time recovery";
const PAGE: &str = "runbooks/point-in-time-recovery.md";

/// The device of `dir`, or of its nearest existing parent.
fn device(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|p| p.exists())?;
    std::fs::metadata(existing).ok().map(|m| m.dev())
}

fn hours_ago(t: SystemTime) -> f64 {
    SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs_f64()
        / 3600.0
}

pub async fn check(
    client: &Client,
    settings: &Settings,
    pitr: Option<&Pitr>,
    runbooks: &Runbooks,
) -> Check {
    if matches!(settings.database, DatabaseTarget::External { .. }) {
        return Check::skip(
            NAME,
            "external database: its server's own tooling owns point-in-time recovery",
        );
    }
    if settings.backup.pitr.is_none() {
        return Check::skip(
            NAME,
            "off: a restore goes back to the newest logical backup (backup.pitr turns it on)",
        );
    }
    let Some(pitr) = pitr else {
        return Check::fail(
            NAME,
            crate::db::pgbackrest::PgbackrestError::Missing.to_string(),
            runbooks.fix("install pgBackRest, then restart the service", PAGE),
        );
    };
    let archiver = Sql::query_one(
        &client,
        "SELECT current_setting('archive_mode'), \
                    coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false), \
                    coalesce(last_failed_wal, ''), coalesce(last_archived_wal, '') \
             FROM pg_stat_archiver",
        &[],
    )
    .await;
    let row = match archiver {
        Ok(row) => row,
        Err(e) => {
            return Check::fail(
                NAME,
                format!(
                    "cannot read the archiver's state: {}",
                    describe_pg_error(&e)
                ),
                runbooks.fix("check the database's log", PAGE),
            )
        }
    };
    let (mode, failing, failed_wal, archived_wal): (String, bool, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if mode != "on" {
        return Check::warn(
            NAME,
            "backup.pitr is on, but the running cluster does not archive its WAL yet",
            runbooks.fix(
                "restart the service (systemctl restart mogothrow77): archiving starts with the \
                 cluster",
                PAGE,
            ),
        );
    }
    if failing {
        return Check::fail(
            NAME,
            format!(
                "archiving WAL fails (newest failure: {failed_wal}); WAL piles up in the data \
                 directory until it works again"
            ),
            runbooks.fix(
                &format!(
                    "read pgBackRest's log in {} and fix the repository {}",
                    pitr.policy.home.join("log").display(),
                    pitr.repository()
                ),
                PAGE,
            ),
        );
    }
    let info = match pitr.info().await {
        Ok(info) => info,
        Err(e) => {
            return Check::fail(
                NAME,
                e.to_string(),
                runbooks.fix("check the repository and pgBackRest's log", PAGE),
            )
        }
    };
    let archived = if archived_wal.is_empty() {
        "none archived yet".to_string()
    } else {
        format!("newest archived {archived_wal}")
    };
    let Some(newest) = info.newest() else {
        return Check::warn(
            NAME,
            format!(
                "WAL archived into {} ({archived}), but no base backup yet",
                pitr.repository()
            ),
            runbooks.fix(
                "wait for the next backup.schedule slot, which takes the first one",
                PAGE,
            ),
        );
    };
    let value = format!(
        "WAL archived at least every {} s into {} ({archived}); newest base backup {} ({}, \
         {:.1} h ago); restores reach back to {:.1} h ago",
        pitr.policy.archive_timeout.as_secs(),
        pitr.repository(),
        newest.label,
        newest.kind,
        hours_ago(newest.stopped),
        info.earliest().map_or(0.0, hours_ago),
    );
    let data_dir = crate::db::managed::data_dir(&settings.config.state_dir);
    match (device(&pitr.policy.repository), device(&data_dir)) {
        (Some(a), Some(b)) if a == b => Check::warn(
            NAME,
            format!("{value}; the repository shares the database's file system"),
            runbooks.fix(
                "put backup.pitr_dir on another file system (a failing archive fills the one \
                 it is on, and a lost disk takes both)",
                PAGE,
            ),
        ),
        _ => Check::pass(NAME, value),
    }
}
