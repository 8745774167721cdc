//! Forward-only migrations and the schema compatibility guard.
//!
//! Each migration declares itself `expand` or `contract` on its first line
//! (checked by the build script). Applying one records its kind in
//! `mogothrow77_migration_kinds` in the same transaction, so any binary can
//! decide whether it may run on a schema: it may, unless the schema holds a
//! contract migration the binary does not know.

use super::sql::{Cached, Sql};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use refinery::Migration;
use tokio_postgres::Client;

use super::describe_pg_error;

/// The migrations compiled in by the build script (`migrations/`, plus a
/// test fixture's extra ones in upgrade-test builds).
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// Advisory lock key held while migrating ("mogo77" in ASCII).
pub(crate) const MIGRATION_LOCK: i64 = 0x6d6f_676f_3737;
const KINDS_TABLE: &str = "mogothrow77_migration_kinds";
const HISTORY_TABLE: &str = "refinery_schema_history";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Expand,
    Contract,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Expand => "expand",
            Kind::Contract => "contract",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        match text {
            "expand" => Some(Kind::Expand),
            "contract" => Some(Kind::Contract),
            _ => None,
        }
    }
}

/// A migration embedded in this binary.
#[derive(Debug, Clone)]
pub struct KnownMigration {
    pub version: i32,
    pub name: String,
    pub kind: Kind,
    sql: String,
}

impl fmt::Display for KnownMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "V{}__{} ({})",
            self.version,
            self.name,
            self.kind.as_str()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database error while {doing}: {reason}")]
    Database { doing: &'static str, reason: String },
    #[error("embedded migration {0} has no valid `-- kind:` declaration")]
    Undeclared(String),
    #[error(transparent)]
    Incompatible(#[from] Incompatible),
    #[error("applying migrations failed: {0}")]
    Apply(String),
}

/// The schema cannot be used by this binary.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Incompatible {
    #[error(
        "the database schema needs a newer mogothrow77: it holds contract migration(s) {versions:?} \
         that this binary (schema level {binary_level}) does not know; run the newer binary, \
         or restore the backup taken before the upgrade"
    )]
    NeedsNewerBinary {
        versions: Vec<i32>,
        binary_level: i32,
    },
    #[error(
        "migration V{version} applied to the database differs from this binary's ({name}); \
         shipped migrations must never change"
    )]
    Divergent { version: i32, name: String },
    #[error(
        "migration(s) {versions:?} are pending but older than the newest applied migration; \
         this binary cannot apply them (mixed release lines)"
    )]
    Gap { versions: Vec<i32> },
    #[error(
        "{count} migration(s) pending ({first} … {last}) and database.auto_migrate is false; \
         run `mogothrow77 migrate`"
    )]
    Pending {
        count: usize,
        first: String,
        last: String,
    },
}

/// Migrations embedded in this binary, oldest first.
pub fn known() -> Result<Vec<KnownMigration>, MigrateError> {
    let mut out = Vec::new();
    for (stem, sql) in embedded::EMBEDDED {
        let m = Migration::unapplied(stem, sql).map_err(|e| MigrateError::Apply(e.to_string()))?;
        let kind = sql
            .lines()
            .next()
            .and_then(|l| l.trim().strip_prefix("-- kind:"))
            .and_then(|k| Kind::parse(k.trim()))
            .ok_or_else(|| MigrateError::Undeclared(m.name().to_string()))?;
        out.push(KnownMigration {
            version: m.version() as i32,
            name: m.name().to_string(),
            kind,
            sql: sql.to_string(),
        });
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

/// The highest schema version this binary knows (its "schema level").
pub fn binary_level() -> i32 {
    known()
        .ok()
        .and_then(|k| k.last().map(|m| m.version))
        .unwrap_or(0)
}

/// What the database holds, compared with what this binary knows.
#[derive(Debug, Clone, Default)]
pub struct SchemaStatus {
    /// Applied migrations: version → name.
    pub applied: BTreeMap<i32, String>,
    /// Recorded kinds of applied migrations.
    pub kinds: BTreeMap<i32, Kind>,
    /// Known migrations not yet applied.
    pub pending: Vec<KnownMigration>,
    pub binary_level: i32,
    known_names: BTreeMap<i32, String>,
}

impl SchemaStatus {
    /// Versions applied to the database that this binary does not know.
    pub fn unknown(&self) -> Vec<i32> {
        self.applied
            .keys()
            .filter(|v| !self.known_names.contains_key(v))
            .copied()
            .collect()
    }

    /// The oldest binary schema level that may run on this schema: the
    /// newest applied contract migration (0 when there is none).
    pub fn required_level(&self) -> i32 {
        self.kinds
            .iter()
            .filter(|(_, k)| **k == Kind::Contract)
            .map(|(v, _)| *v)
            .max()
            .unwrap_or(0)
    }

    /// Whether this binary may run on the schema, ignoring pending migrations.
    pub fn check_runnable(&self) -> Result<(), Incompatible> {
        // An unknown migration whose kind was not recorded is treated as contract.
        let blocking: Vec<i32> = self
            .unknown()
            .into_iter()
            .filter(|v| self.kinds.get(v) != Some(&Kind::Expand))
            .collect();
        if !blocking.is_empty() {
            return Err(Incompatible::NeedsNewerBinary {
                versions: blocking,
                binary_level: self.binary_level,
            });
        }
        for (version, name) in &self.applied {
            if let Some(known) = self.known_names.get(version) {
                if known != name {
                    return Err(Incompatible::Divergent {
                        version: *version,
                        name: known.clone(),
                    });
                }
            }
        }
        let newest = self.applied.keys().max().copied().unwrap_or(0);
        let gap: Vec<i32> = self
            .pending
            .iter()
            .filter(|m| m.version < newest)
            .map(|m| m.version)
            .collect();
        if !gap.is_empty() {
            return Err(Incompatible::Gap { versions: gap });
        }
        Ok(())
    }

    /// Whether this binary may serve on the schema as it is now.
    pub fn check_serveable(&self) -> Result<(), Incompatible> {
        self.check_runnable()?;
        if let (Some(first), Some(last)) = (self.pending.first(), self.pending.last()) {
            return Err(Incompatible::Pending {
                count: self.pending.len(),
                first: first.to_string(),
                last: last.to_string(),
            });
        }
        Ok(())
    }
}

fn db_err(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> MigrateError {
    move |e| MigrateError::Database {
        doing,
        reason: describe_pg_error(&e),
    }
}

/// Reads the schema's state. Works with any role that can read the tables.
pub async fn status(client: &Client) -> Result<SchemaStatus, MigrateError> {
    let known = known()?;
    let row = Sql::query_one(
        &client,
        "SELECT to_regclass($1)::text IS NOT NULL, to_regclass($2)::text IS NOT NULL",
        &[&HISTORY_TABLE, &KINDS_TABLE],
    )
    .await
    .map_err(db_err("reading the schema state"))?;
    let (has_history, has_kinds): (bool, bool) = (row.get(0), row.get(1));
    let mut applied = BTreeMap::new();
    if has_history {
        for row in Sql::query(
            &client,
            &format!("SELECT version, name FROM {HISTORY_TABLE}"),
            &[],
        )
        .await
        .map_err(db_err("reading applied migrations"))?
        {
            applied.insert(row.get::<_, i32>(0), row.get::<_, String>(1));
        }
    }
    let mut kinds = BTreeMap::new();
    if has_kinds {
        for row in Sql::query(
            &client,
            &format!("SELECT version, kind FROM {KINDS_TABLE}"),
            &[],
        )
        .await
        .map_err(db_err("reading migration kinds"))?
        {
            let kind: String = row.get(1);
            // An unrecognised kind is treated as contract: the safe reading.
            kinds.insert(
                row.get::<_, i32>(0),
                Kind::parse(&kind).unwrap_or(Kind::Contract),
            );
        }
    }
    SchemaStatus::new(applied, kinds, known)
}

/// The joined statement `/readyz` runs: applied migrations with their kinds.
const READINESS_SQL: &str = "SELECT h.version, h.name, k.kind \
     FROM refinery_schema_history h LEFT JOIN mogothrow77_migration_kinds k USING (version)";

/// The schema state in one prepared, cached statement, for the readiness
/// probe on a pooled connection (the tables exist once the server serves).
pub async fn status_for_readiness(
    client: &deadpool_postgres::Client,
) -> Result<SchemaStatus, MigrateError> {
    let statement = client
        .prepared(READINESS_SQL)
        .await
        .map_err(db_err("preparing the schema state query"))?;
    let rows = client
        .query(&statement, &[])
        .await
        .map_err(db_err("reading the schema state"))?;
    let mut applied = BTreeMap::new();
    let mut kinds = BTreeMap::new();
    for row in rows {
        let version: i32 = row.get(0);
        applied.insert(version, row.get::<_, String>(1));
        if let Some(kind) = row.get::<_, Option<String>>(2) {
            kinds.insert(version, Kind::parse(&kind).unwrap_or(Kind::Contract));
        }
    }
    SchemaStatus::new(applied, kinds, known()?)
}

impl SchemaStatus {
    fn new(
        applied: BTreeMap<i32, String>,
        kinds: BTreeMap<i32, Kind>,
        known: Vec<KnownMigration>,
    ) -> Result<SchemaStatus, MigrateError> {
        let applied_versions: BTreeSet<i32> = applied.keys().copied().collect();
        Ok(SchemaStatus {
            pending: known
                .iter()
                .filter(|m| !applied_versions.contains(&m.version))
                .cloned()
                .collect(),
            binary_level: known.last().map(|m| m.version).unwrap_or(0),
            known_names: known.into_iter().map(|m| (m.version, m.name)).collect(),
            applied,
            kinds,
        })
    }
}

/// Applies pending migrations as the schema owner, under an advisory lock so
/// concurrent replicas apply each migration exactly once. Returns the
/// migrations this call applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<KnownMigration>, MigrateError> {
    Sql::execute(&*client, "SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_err("taking the migration lock"))?;
    let result = migrate_locked(client).await;
    let unlock = Sql::execute(
        &*client,
        "SELECT pg_advisory_unlock($1)",
        &[&MIGRATION_LOCK],
    )
    .await
    .map_err(db_err("releasing the migration lock"));
    let applied = result?;
    unlock?;
    Ok(applied)
}

/// Creates the table that records each applied migration's kind.
pub async fn ensure_kinds_table(client: &Client) -> Result<(), MigrateError> {
    Sql::batch_execute(
        &client,
        &format!(
            "CREATE TABLE IF NOT EXISTS {KINDS_TABLE} (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                kind       text NOT NULL CHECK (kind IN ('expand', 'contract')),
                applied_at timestamptz NOT NULL DEFAULT now()
            )"
        ),
    )
    .await
    .map_err(db_err("creating the migration kinds table"))
}

/// Whether a table is the migrations' own bookkeeping.
pub fn is_bookkeeping_table(name: &str) -> bool {
    name == KINDS_TABLE || name == HISTORY_TABLE
}

impl KnownMigration {
    /// The migration's SQL followed by the statement that records its kind,
    /// to run in one transaction.
    pub fn sql_recording_kind(&self) -> String {
        format!(
            "{}\n;\nINSERT INTO {KINDS_TABLE} (version, name, kind) VALUES ({}, '{}', '{}');\n",
            self.sql,
            self.version,
            self.name.replace('\'', "''"),
            self.kind.as_str()
        )
    }
}

async fn migrate_locked(client: &mut Client) -> Result<Vec<KnownMigration>, MigrateError> {
    ensure_kinds_table(client).await?;
    let status = status(client).await?;
    status.check_runnable()?;
    if status.pending.is_empty() {
        return Ok(Vec::new());
    }
    // Each migration records its own kind in the transaction that applies it.
    let mut runnable = Vec::new();
    for m in known()? {
        runnable.push(
            Migration::unapplied(
                &format!("V{}__{}", m.version, m.name),
                &m.sql_recording_kind(),
            )
            .map_err(|e| MigrateError::Apply(e.to_string()))?,
        );
    }
    let report = refinery::Runner::new(&runnable)
        .set_abort_missing(false)
        .set_abort_divergent(true)
        .run_async(client)
        .await
        .map_err(|e| MigrateError::Apply(describe_refinery(&e)))?;
    let applied: BTreeSet<i32> = report
        .applied_migrations()
        .iter()
        .map(|m| m.version() as i32)
        .collect();
    Ok(status
        .pending
        .into_iter()
        .filter(|m| applied.contains(&m.version))
        .collect())
}

/// refinery's message with PostgreSQL's own below it (refinery alone says
/// only "db error").
fn describe_refinery(e: &refinery::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        if let Some(pg) = s.downcast_ref::<tokio_postgres::Error>() {
            text.push_str(&describe_pg_error(pg));
            break;
        }
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_time_schema_level_is_the_embedded_one() {
        // /metrics and `version` print APPLIANCE_SCHEMA_LEVEL without
        // reading the migrations; it must be what they hold.
        assert_eq!(
            Ok(binary_level()),
            env!("APPLIANCE_SCHEMA_LEVEL").parse::<i32>()
        );
    }

    #[test]
    fn every_embedded_migration_declares_its_kind() {
        let known = known().expect("kinds declared");
        assert!(!known.is_empty());
        assert_eq!(binary_level(), known.last().map(|m| m.version).unwrap_or(0));
    }

    fn status_with(applied: &[(i32, &str, Kind)]) -> SchemaStatus {
        SchemaStatus {
            applied: applied
                .iter()
                .map(|(v, n, _)| (*v, n.to_string()))
                .collect(),
            kinds: applied.iter().map(|(v, _, k)| (*v, *k)).collect(),
            pending: Vec::new(),
            binary_level: 2,
            known_names: [(1, "a".to_string()), (2, "b".to_string())].into(),
        }
    }

    #[test]
    fn unknown_contract_blocks_unknown_expand_does_not() {
        let ok = status_with(&[(1, "a", Kind::Expand), (3, "c", Kind::Expand)]);
        assert_eq!(ok.check_runnable(), Ok(()));
        assert_eq!(ok.required_level(), 0);
        let blocked = status_with(&[(1, "a", Kind::Expand), (3, "c", Kind::Contract)]);
        assert_eq!(blocked.required_level(), 3);
        assert_eq!(
            blocked.check_runnable(),
            Err(Incompatible::NeedsNewerBinary {
                versions: vec![3],
                binary_level: 2
            })
        );
        let divergent = status_with(&[(1, "other", Kind::Expand)]);
        assert!(matches!(
            divergent.check_runnable(),
            Err(Incompatible::Divergent { version: 1, .. })
        ));
    }
}
