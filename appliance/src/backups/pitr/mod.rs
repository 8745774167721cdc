//! Point-in-time recovery of the managed database (`backup.pitr`, ADR
//! 0023): pgBackRest archives every WAL segment (at least every
//! `backup.archive_timeout_secs` when there were changes: the RPO) and
//! takes a base backup at each `backup.schedule` slot — full when the
//! newest full one is `backup.pitr_full_days` old, differential otherwise.
//! [`restore`] brings the stopped cluster back to a moment; [`drill`]
//! proves it can, on a scratch cluster.

pub mod drill;
pub mod restore;

use crate::db::Sql;
use std::time::{Duration, Instant, SystemTime};

use crate::config::PitrPolicy;
use crate::db::managed::{ManagedPostgres, DATABASE};
use crate::db::pgbackrest::{self, Kind, Pgbackrest, PgbackrestError};

#[derive(Debug, thiserror::Error)]
pub enum PitrError {
    #[error(transparent)]
    Tool(#[from] PgbackrestError),
    #[error(
        "the repository {0} holds no base backup yet: the first one is taken at the next \
         backup.schedule slot"
    )]
    NoBaseBackup(String),
    #[error("the point-in-time task stopped: {0}")]
    Task(String),
    #[error("WAL archiving is not working: {0}")]
    Archiving(String),
    #[error("managed database: {0}")]
    Managed(#[from] crate::db::managed::ManagedError),
    #[error("{0}")]
    Db(String),
}

/// pgBackRest set up for the managed cluster, and the policy it follows.
#[derive(Debug, Clone)]
pub struct Pitr {
    pub policy: PitrPolicy,
    pub tool: Pgbackrest,
}

/// A base backup just taken.
#[derive(Debug)]
pub struct Based {
    pub kind: Kind,
    pub label: String,
    pub repository_bytes: u64,
    pub seconds: f64,
}

impl Pitr {
    /// Writes pgBackRest's configuration for the cluster in `pg` and turns
    /// on its WAL archiving (from the cluster's next start).
    pub fn enable(policy: &PitrPolicy, pg: &mut ManagedPostgres) -> Result<Pitr, PgbackrestError> {
        let pitr = Pitr::for_cluster(policy, pg)?;
        pg.archive_with(
            pitr.tool.archive_command(),
            policy.archive_timeout.as_secs(),
        );
        Ok(pitr)
    }

    /// pgBackRest as the service configured it, to read the repository
    /// (`diagnose`); writes nothing.
    pub fn reading(policy: &PitrPolicy) -> Result<Pitr, PgbackrestError> {
        Ok(Pitr {
            policy: policy.clone(),
            tool: Pgbackrest::configured(&policy.home, &policy.repository)?,
        })
    }

    /// pgBackRest configured for the cluster in `pg`, whose archiving is
    /// left as it is.
    pub fn for_cluster(policy: &PitrPolicy, pg: &ManagedPostgres) -> Result<Pitr, PgbackrestError> {
        let tool = Pgbackrest::configure(
            &policy.home,
            &policy.repository,
            policy.keep_full,
            &pg.layout,
            pg.os_user(),
        )?;
        Ok(Pitr {
            policy: policy.clone(),
            tool,
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Pgbackrest) -> Result<T, PgbackrestError> + Send + 'static,
    ) -> Result<T, PitrError> {
        let tool = self.tool.clone();
        tokio::task::spawn_blocking(move || f(&tool))
            .await
            .map_err(|e| PitrError::Task(e.to_string()))?
            .map_err(PitrError::from)
    }

    /// Creates the stanza, or checks that the existing one is this
    /// cluster's (the cluster must be running).
    pub async fn set_up(&self) -> Result<(), PitrError> {
        self.blocking(Pgbackrest::stanza_create).await
    }

    /// What the repository holds.
    pub async fn info(&self) -> Result<pgbackrest::Info, PitrError> {
        self.blocking(Pgbackrest::info).await
    }

    /// Takes the slot's base backup: full when there is none younger than
    /// `full_every`, differential otherwise.
    pub async fn base_backup(&self) -> Result<Based, PitrError> {
        let started = Instant::now();
        // A stanza missing (a repository emptied by hand) is made again.
        self.set_up().await?;
        let info = self.info().await?;
        let full_due = info.newest_full().is_none_or(|at| {
            SystemTime::now()
                .duration_since(at)
                .is_ok_and(|age| age >= self.policy.full_every)
        });
        let kind = if full_due {
            Kind::Full
        } else {
            Kind::Differential
        };
        self.blocking(move |t| t.backup(kind)).await?;
        let info = self.info().await?;
        let newest = info
            .newest()
            .ok_or_else(|| PitrError::NoBaseBackup(self.repository()))?;
        Ok(Based {
            kind,
            label: newest.label.clone(),
            repository_bytes: newest.repository_bytes,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    pub fn repository(&self) -> String {
        self.policy.repository.display().to_string()
    }
}

/// Waits until the archiver has taken `segment` (from
/// [`ManagedPostgres::switch_wal`]) into the repository.
pub async fn wait_archived(
    pitr: &Pitr,
    pg: &ManagedPostgres,
    segment: &str,
    limit: Duration,
) -> Result<(), PitrError> {
    let client = pg.connect_superuser(DATABASE).await?;
    let deadline = Instant::now() + limit;
    loop {
        let row = Sql::query_one(&client,
                "SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''),                         coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)                  FROM pg_stat_archiver",
                &[],
            )
            .await
            .map_err(|e| PitrError::Db(crate::db::describe_pg_error(&e)))?;
        let (archived, failed_wal, failing): (String, String, bool) =
            (row.get(0), row.get(1), row.get(2));
        if archived.as_str() >= segment && !archived.ends_with(".history") {
            return Ok(());
        }
        if failing && failed_wal.as_str() >= segment {
            return Err(PitrError::Archiving(format!(
                "archiving {failed_wal} failed; pgBackRest's log in {} says why",
                pitr.policy.home.join("log").display()
            )));
        }
        if Instant::now() > deadline {
            return Err(PitrError::Archiving(format!(
                "{segment} was not archived within {} s (the newest archived is {})",
                limit.as_secs(),
                if archived.is_empty() {
                    "none"
                } else {
                    &archived
                }
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `t` as PostgreSQL's `recovery_target_time` reads it, in UTC with
/// microseconds: `2026-12-07 15:01:15.476975+00`.
pub fn target_text(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Reads `--to-time`: RFC 3339 (`2026-12-07T15:01:15Z`,
/// `2026-12-07T16:01:15.5+01:00`), a space allowed for the `T`.
pub fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    let normalised = text.trim().replacen(' ', "T", 1);
    time::OffsetDateTime::parse(&normalised, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!(
                "{text:?} is not a time ({e}); give it as RFC 3339 with its offset, e.g. \
             2026-12-07T15:01:15Z or 2026-12-07T16:01:15+01:00"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_with_their_offset_and_written_in_utc() {
        let t = parse_time("2026-12-07T16:01:15.5+01:00").expect("time");
        assert_eq!(target_text(t), "2026-12-07 15:01:15.500000+00");
        let t = parse_time("2026-12-07 15:01:15Z").expect("time");
        assert_eq!(target_text(t), "2026-12-07 15:01:15.000000+00");
        let e = parse_time("yesterday").expect_err("not a time");
        assert!(e.contains("RFC 3339"), "{e}");
        assert!(
            parse_time("2026-12-07T15:01:15").is_err(),
            "an offset is required"
        );
    }
}
