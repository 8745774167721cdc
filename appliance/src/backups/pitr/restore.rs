//! `mogothrow77 restore --to-time T`: the stopped managed cluster brought
//! back to the moment T. Its newest WAL is archived first (the cluster is
//! started once for that, when it can be), its data directory is kept
//! aside, pgBackRest restores the base backup before T, PostgreSQL replays
//! the archived WAL to T and promotes; the restored audit chain is verified
//! and the restore audited in it. Any failure puts the kept directory
//! back: the cluster is as it was.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::{target_text, wait_archived, Pitr, PitrError};
use crate::audit;
use crate::config::PitrPolicy;
use crate::db::managed::{ManagedPostgres, DATABASE};
use crate::db::recovery;

/// How long WAL replay may take before the restore gives up.
const REPLAY_LIMIT: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0} is in the future: give a moment that has passed")]
    Future(String),
    #[error(
        "{target} is before the oldest base backup in the repository (it ended at {earliest}): \
         the earliest moment a restore can reach is {earliest}"
    )]
    TooEarly { target: String, earliest: String },
    #[error(transparent)]
    Pitr(#[from] PitrError),
    #[error("cannot move {from} to {to}: {reason}")]
    Move {
        from: String,
        to: String,
        reason: String,
    },
    #[error(
        "{cause}; the database was put back as it was before the restore{}",
        if *.put_back { "" } else { " — NOT: see the line above" }
    )]
    RolledBack { cause: String, put_back: bool },
}

/// What a restore to a time did.
#[derive(Debug)]
pub struct Restored {
    pub target: String,
    /// The data directory as it was before, kept for the operator.
    pub kept: PathBuf,
    pub counts: Value,
    pub audit_entries: i64,
    pub audit_problems: Vec<String>,
    pub seconds: f64,
    pub warnings: Vec<String>,
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn rename(from: &Path, to: &Path) -> Result<(), RestoreError> {
    std::fs::rename(from, to).map_err(|e| RestoreError::Move {
        from: from.display().to_string(),
        to: to.display().to_string(),
        reason: e.to_string(),
    })
}

/// Restores the managed cluster in `pg` (stopped; the caller holds its
/// lock) to `target`.
pub async fn to_time(
    policy: &PitrPolicy,
    mut pg: ManagedPostgres,
    target: time::OffsetDateTime,
    ctx: &audit::Context,
) -> Result<Restored, RestoreError> {
    let started = Instant::now();
    let text = target_text(target);
    if target > time::OffsetDateTime::now_utc() {
        return Err(RestoreError::Future(text));
    }
    let pitr = Pitr::enable(policy, &mut pg).map_err(PitrError::from)?;
    // Refusals first: nothing is started for a restore that cannot run.
    let info = pitr.info().await?;
    let Some(earliest) = info.earliest() else {
        return Err(PitrError::NoBaseBackup(pitr.repository()).into());
    };
    if SystemTime::from(target) < earliest {
        return Err(RestoreError::TooEarly {
            target: text,
            earliest: rfc3339(earliest),
        });
    }
    let mut warnings = Vec::new();
    if pg.is_initialised() {
        if let Err(e) = archive_newest(&pitr, &pg).await {
            warnings.push(format!(
                "the current cluster's newest WAL could not be archived ({e}): changes made \
                 shortly before it stopped may be missing after the restore"
            ));
        }
    }
    let data_dir = pg.layout.data_dir.clone();
    let kept = data_dir.with_file_name(format!(
        "postgres.before-pitr-{}",
        time::OffsetDateTime::now_utc().unix_timestamp()
    ));
    let had_data = data_dir.exists();
    if had_data {
        rename(&data_dir, &kept)?;
    }
    let restored = async {
        let t = text.clone();
        let d = data_dir.clone();
        pitr.blocking(move |tool| tool.restore(&d, &t)).await?;
        let running = recovery::recover(&pg, REPLAY_LIMIT)
            .await
            .map_err(PitrError::from)?;
        let checked = check_and_audit(&pg, &text, &kept, ctx).await;
        running.stop().await;
        checked
    }
    .await;
    match restored {
        Ok((counts, verified)) => Ok(Restored {
            target: text,
            kept,
            counts,
            audit_entries: verified.entries,
            audit_problems: verified.problems.iter().map(ToString::to_string).collect(),
            seconds: started.elapsed().as_secs_f64(),
            warnings,
        }),
        Err(e) => {
            let cause = e.to_string();
            let put_back = std::fs::remove_dir_all(&data_dir).is_ok() || !data_dir.exists();
            let put_back = put_back && (!had_data || rename(&kept, &data_dir).is_ok());
            if !put_back {
                eprintln!(
                    "the data directory as it was is in {}: move it back to {} by hand",
                    kept.display(),
                    data_dir.display()
                );
            }
            Err(RestoreError::RolledBack { cause, put_back })
        }
    }
}

/// Starts the current cluster once to hand its newest WAL (the segment in
/// progress when it stopped) to the archive.
async fn archive_newest(pitr: &Pitr, pg: &ManagedPostgres) -> Result<(), PitrError> {
    let running = recovery::recover(pg, Duration::from_secs(300)).await?;
    let archived = async {
        let segment = pg.switch_wal().await?;
        wait_archived(pitr, pg, &segment, Duration::from_secs(120)).await
    }
    .await;
    running.stop().await;
    archived
}

/// The restored database's record counts and audit chain; the restore
/// audited in it.
async fn check_and_audit(
    pg: &ManagedPostgres,
    target: &str,
    kept: &Path,
    ctx: &audit::Context,
) -> Result<(Value, audit::Verification), PitrError> {
    let db = |e: tokio_postgres::Error| PitrError::Db(crate::db::describe_pg_error(&e));
    let mut client = pg.connect_superuser(DATABASE).await?;
    let counts = crate::backups::record_counts(&client).await.map_err(db)?;
    let verified = audit::verify(&client)
        .await
        .map_err(|e| PitrError::Db(e.to_string()))?;
    let tx = client.transaction().await.map_err(db)?;
    let event =
        audit::Event::new("database.restore", target, audit::Outcome::Success).details(json!({
            "to_time": target,
            "records": counts,
            "kept": kept.display().to_string(),
        }));
    audit::append(&tx, ctx, &event)
        .await
        .map_err(|e| PitrError::Db(e.to_string()))?;
    tx.commit().await.map_err(db)?;
    Ok((counts, verified))
}
