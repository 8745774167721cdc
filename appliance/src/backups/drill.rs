//! `mogothrow77 backup drill`: the newest backup that recorded its record
//! counts is restored into a scratch database beside the live one (decrypted
//! first when it is age-encrypted), every collection's record count is
//! compared with the count recorded in the dump's snapshot, the restored
//! audit log's chain is verified, and the copy is dropped. The outcome is
//! kept with the backup (`drilled_at`, `drill_ok`, `drill_report`) for
//! `diagnose`, the metrics and the console, and audited.

use crate::db::Sql;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};
use tokio_postgres::error::SqlState;

use super::pitr::drill::PitrDrilled;
use super::pitr::Pitr;
use crate::age::Identity;
use crate::audit;
use crate::db::managed::PgBinaries;
use crate::db::scratch::{Place, Scratch, ScratchError, Use};
use crate::db::{describe_pg_error, Connections};

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(
        "no backup to drill: none recorded its record counts yet (scheduled backups and \
         `mogothrow77 backup --out FILE` do)"
    )]
    NoBackup,
    #[error(
        "the newest backup {0} is not on this host's disk (moved, deleted, or written by another \
         replica): restore access to it, or take a new backup"
    )]
    Missing(String),
    #[error(transparent)]
    Open(#[from] super::archive::OpenError),
    #[error(transparent)]
    Scratch(#[from] ScratchError),
    #[error("{0}")]
    Db(String),
    #[error("{0}")]
    Io(String),
}

impl From<tokio_postgres::Error> for DrillError {
    fn from(e: tokio_postgres::Error) -> DrillError {
        DrillError::Db(describe_pg_error(&e))
    }
}

/// One collection's count: recorded at the dump, found in the restored copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub collection: String,
    pub recorded: Option<i64>,
    pub restored: Option<i64>,
}

impl Count {
    pub fn matches(&self) -> bool {
        self.recorded.is_some() && self.recorded == self.restored
    }
}

/// The part of a drill's report that its counts make: `records` restored
/// and the `mismatches`.
pub fn counts_report(counts: &[Count]) -> (i64, Value) {
    let records = counts.iter().filter_map(|c| c.restored).sum();
    let mismatches = counts
        .iter()
        .filter(|c| !c.matches())
        .map(|c| {
            json!({ "collection": c.collection, "recorded": c.recorded, "restored": c.restored })
        })
        .collect();
    (records, mismatches)
}

/// What a drill found.
#[derive(Debug)]
pub struct Drilled {
    pub backup_id: i64,
    pub archive: String,
    pub taken_at: SystemTime,
    pub encrypted: bool,
    pub counts: Vec<Count>,
    pub audit_entries: i64,
    pub audit_problems: Vec<String>,
    pub seconds: f64,
    pub warnings: Vec<String>,
    /// The point-in-time drill (managed mode with `backup.pitr`): what it
    /// found, or why it could not run.
    pub pitr: Option<Result<PitrDrilled, String>>,
}

impl Drilled {
    pub fn ok(&self) -> bool {
        self.counts.iter().all(Count::matches)
            && self.audit_problems.is_empty()
            && self
                .pitr
                .as_ref()
                .is_none_or(|p| p.as_ref().is_ok_and(PitrDrilled::ok))
    }

    /// What is kept with the backup and put in the audit entry.
    pub fn report(&self) -> Value {
        let (records, mismatches) = counts_report(&self.counts);
        json!({
            "archive": self.archive,
            "encrypted": self.encrypted,
            "ok": self.ok(),
            "seconds": self.seconds,
            "collections": self.counts.len(),
            "records": records,
            "mismatches": mismatches,
            "audit_entries": self.audit_entries,
            "audit_problems": self.audit_problems,
            "pitr": match &self.pitr {
                None => Value::Null,
                Some(Ok(p)) => p.report(),
                Some(Err(e)) => json!({ "ok": false, "error": e }),
            },
        })
    }
}

/// The newest backup with recorded counts: id, archive, counts, when.
async fn newest(
    client: &tokio_postgres::Client,
) -> Result<(i64, String, Value, SystemTime), DrillError> {
    let row = Sql::query_opt(
        &client,
        "SELECT id, archive, record_counts, finished_at FROM backups \
             WHERE record_counts IS NOT NULL AND pruned_at IS NULL \
             ORDER BY finished_at DESC, id DESC LIMIT 1",
        &[],
    )
    .await;
    match row {
        Ok(Some(r)) => Ok((r.get(0), r.get(1), r.get(2), r.get(3))),
        Ok(None) => Err(DrillError::NoBackup),
        Err(e)
            if matches!(
                e.code(),
                Some(&SqlState::UNDEFINED_TABLE | &SqlState::UNDEFINED_COLUMN)
            ) =>
        {
            Err(DrillError::NoBackup)
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs the drill (nothing of the live database changes; see [`record`]).
pub async fn run(
    connections: &Connections,
    place: Place<'_>,
    binaries: &PgBinaries,
    ca_file: Option<&Path>,
    identities: Option<&[Identity]>,
    work_dir: &Path,
    pitr: Option<&Pitr>,
) -> Result<Drilled, DrillError> {
    let started = Instant::now();
    let live = connections
        .connect_owner()
        .await
        .map_err(|e| DrillError::Db(e.to_string()))?;
    let (backup_id, archive, recorded, taken_at) = newest(&live).await?;
    let path = PathBuf::from(&archive);
    if !path.is_file() {
        return Err(DrillError::Missing(archive));
    }
    // Where a decrypted copy goes, and whose disk must hold the restored
    // copy in managed mode.
    super::archive::create_private_dir(work_dir)
        .map_err(|e| DrillError::Io(format!("cannot create {}: {e}", work_dir.display())))?;
    let opened = super::archive::open(&path, identities, work_dir, "drill")?;
    let dump = opened.path();
    let place_cluster = match &place {
        Place::Managed(pg) => Some(*pg),
        Place::External => None,
    };
    let scratch = Scratch::begin(&live, place, connections, Use::Drill).await?;
    let outcome = async {
        let bytes = scratch.live_bytes().await?;
        scratch.check_space(work_dir, bytes, false)?;
        scratch.restore(binaries, ca_file, dump).await?;
        let copy = scratch.connect_reader().await?;
        let restored = super::record_counts(&copy).await?;
        let verified = audit::verify(&copy)
            .await
            .map_err(|e| DrillError::Db(e.to_string()))?;
        Ok::<_, DrillError>((restored, verified))
    }
    .await;
    let warnings = scratch.finish().await;
    let encrypted = opened.was_encrypted();
    drop(opened);
    let (restored, verified) = outcome?;
    let counts = compare(&recorded, &restored);
    // Still under the scratch lock (`live` holds it until this returns):
    // one drill at a time owns `<work_dir>/pitr-drill`.
    let pitr = match (pitr, &place_cluster) {
        (Some(pitr), Some(live)) => Some(
            super::pitr::drill::run(pitr, live, work_dir)
                .await
                .map_err(|e| e.to_string()),
        ),
        _ => None,
    };
    Ok(Drilled {
        backup_id,
        archive,
        taken_at,
        encrypted,
        counts,
        audit_entries: verified.entries,
        audit_problems: verified.problems.iter().map(ToString::to_string).collect(),
        seconds: started.elapsed().as_secs_f64(),
        warnings,
        pitr,
    })
}

/// Every collection named in either count, with both numbers.
pub fn compare(recorded: &Value, restored: &Value) -> Vec<Count> {
    let mut names: Vec<String> = [recorded, restored]
        .into_iter()
        .filter_map(Value::as_object)
        .flat_map(|m| m.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|collection| Count {
            recorded: recorded.get(&collection).and_then(Value::as_i64),
            restored: restored.get(&collection).and_then(Value::as_i64),
            collection,
        })
        .collect()
}

/// Keeps the outcome with the backup and audits it (`backup.drill`), in
/// one transaction on the live database. A drill that could not run
/// (`Err`) is audited as a failure.
pub async fn record(
    client: &mut tokio_postgres::Client,
    ctx: &audit::Context,
    outcome: &Result<Drilled, DrillError>,
) -> Result<(), DrillError> {
    let tx = client.transaction().await?;
    let event = match outcome {
        Ok(drilled) => {
            let report = drilled.report();
            Sql::execute(
                &tx,
                "UPDATE backups SET drilled_at = now(), drill_ok = $2, drill_report = $3 \
                 WHERE id = $1",
                &[&drilled.backup_id, &drilled.ok(), &report],
            )
            .await?;
            audit::Event::new(
                "backup.drill",
                &drilled.archive,
                if drilled.ok() {
                    audit::Outcome::Success
                } else {
                    audit::Outcome::Failure
                },
            )
            .details(report)
        }
        Err(e) => audit::Event::new("backup.drill", "", audit::Outcome::Failure)
            .details(json!({ "error": e.to_string() })),
    };
    audit::append(&tx, ctx, &event)
        .await
        .map_err(|e| DrillError::Db(e.to_string()))?;
    tx.commit().await?;
    Ok(())
}

/// What a replica needs to run scheduled drills (`backup.drill_schedule`).
pub struct Drills {
    pub connections: Connections,
    pub binaries: PgBinaries,
    pub ca_file: Option<PathBuf>,
    /// `backup.age_identity_file`'s keys (for encrypted archives).
    pub identities: Vec<Identity>,
    pub work_dir: PathBuf,
    /// Managed: the state directory and `database.postgres_bin_dir`, to
    /// reach the running cluster as its superuser for the scratch copy.
    pub managed: Option<(PathBuf, Option<PathBuf>)>,
    /// Point-in-time recovery (managed with `backup.pitr`): drilled too.
    pub pitr: Option<Pitr>,
}

impl Drills {
    /// The settings' scheduled drills; `Ok(None)` without a drill schedule.
    pub fn for_settings(
        settings: &crate::config::Settings,
        connections: &Connections,
        pitr: Option<&Pitr>,
    ) -> Result<Option<Drills>, crate::db::backup::BackupError> {
        if settings.backup.drill_schedule.is_none() {
            return Ok(None);
        }
        Ok(Some(Drills {
            connections: connections.clone(),
            binaries: crate::db::backup::binaries_for(settings)?,
            ca_file: settings.config.database.ca_file.clone(),
            identities: settings.backup.identities.clone(),
            work_dir: settings.backup.work_dir.clone(),
            managed: match &settings.database {
                crate::config::DatabaseTarget::Managed { bin_dir } => {
                    Some((settings.config.state_dir.clone(), bin_dir.clone()))
                }
                crate::config::DatabaseTarget::External { .. } => None,
            },
            pitr: pitr.cloned(),
        }))
    }

    /// One scheduled drill, run to its end and recorded (actor `system`);
    /// `Err` when it could not run (it is recorded as failed then too).
    pub async fn run_scheduled(&self) -> Result<bool, DrillError> {
        let managed = match &self.managed {
            Some((state_dir, bin_dir)) => Some(
                crate::db::managed::ManagedPostgres::prepare(state_dir, bin_dir.as_deref(), 10)
                    .await
                    .map_err(|e| DrillError::Db(e.to_string()))?,
            ),
            None => None,
        };
        let place = match &managed {
            Some(pg) => Place::Managed(pg),
            None => Place::External,
        };
        let identities = (!self.identities.is_empty()).then_some(&self.identities[..]);
        let drilled = run(
            &self.connections,
            place,
            &self.binaries,
            self.ca_file.as_deref(),
            identities,
            &self.work_dir,
            self.pitr.as_ref(),
        )
        .await;
        let mut client = self
            .connections
            .connect_app()
            .await
            .map_err(|e| DrillError::Db(e.to_string()))?;
        let ctx = audit::Context {
            actor: "system".to_string(),
            ..Default::default()
        };
        record(&mut client, &ctx, &drilled).await?;
        match drilled {
            Ok(d) => {
                if d.ok() {
                    tracing::info!(archive = %d.archive, seconds = d.seconds, "scheduled restore drill passed");
                } else {
                    tracing::error!(archive = %d.archive, report = %d.report(), "scheduled restore drill FAILED");
                }
                Ok(d.ok())
            }
            Err(e) => Err(e),
        }
    }
}
