//! The rehearsal report: what `mogothrow77 migrate --rehearse` found on a
//! copy of the database (its `--json` output), which `mogothrow77-upgrade
//! rehearse` reads; and its lines for people, which both print.

use serde::{Deserialize, Serialize};

/// What a rehearsal found. `mogothrow77-upgrade rehearse` reads it as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The newest migration applied to the live database.
    pub schema_level: i32,
    /// The schema level of this binary.
    pub target_level: i32,
    /// `pg_database_size` of the live database.
    pub database_bytes: i64,
    /// Dump and restore of the copy.
    pub copy_seconds: f64,
    /// The pending migrations in order; a failed one is the last.
    pub migrations: Vec<MigrationRun>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn failed(&self) -> Option<&MigrationRun> {
        self.migrations.iter().find(|m| m.error.is_some())
    }

    pub fn total_seconds(&self) -> f64 {
        self.migrations.iter().map(|m| m.seconds).sum()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationRun {
    pub version: i32,
    pub name: String,
    pub kind: String,
    /// The migration's statements and its commit.
    pub seconds: f64,
    /// The strongest lock it held on each table that existed before it ran.
    /// Locks are held until the transaction commits, i.e. for `seconds`.
    pub locks: Vec<TableLock>,
    /// PostgreSQL's message when the migration failed on the copy.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableLock {
    /// `schema.table`.
    pub table: String,
    /// The lock mode as SQL names it (`ACCESS EXCLUSIVE`, `SHARE`, …).
    pub mode: String,
    pub blocks: Blocks,
}

/// What a lock mode stops the running service from doing.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Blocks {
    /// Reads and writes of the service go on.
    Nothing,
    /// Other schema changes and VACUUM wait; reads and writes go on.
    SchemaChanges,
    /// Inserts, updates and deletes wait; reads go on.
    Writes,
    /// Every access waits, reads included.
    ReadsAndWrites,
}

impl Blocks {
    pub fn describe(self) -> &'static str {
        match self {
            Blocks::Nothing => "blocks nothing the service does",
            Blocks::SchemaChanges => "blocks only other schema changes",
            Blocks::Writes => "blocks writes (reads go on)",
            Blocks::ReadsAndWrites => "blocks reads and writes",
        }
    }
}

impl Report {
    /// Finds the report among the lines the server printed (its log lines
    /// are JSON too, but not reports).
    pub fn find(stdout: &str) -> Option<Report> {
        stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Report>(l).ok())
    }

    /// The report's lines for people, each with its mark: per migration
    /// `V9__name (expand): 0.412 s` (or its failure), then each lock it
    /// held and what that lock blocks for how long, then the warnings. The
    /// caller adds its own opening and closing lines.
    pub fn lines(&self) -> Vec<(Mark, String)> {
        let mut lines = Vec::new();
        for m in &self.migrations {
            let label = format!("V{}__{} ({})", m.version, m.name, m.kind);
            match &m.error {
                Some(error) => lines.push((
                    Mark::Fail,
                    format!("{label} after {:.3} s: {error}", m.seconds),
                )),
                None => lines.push((Mark::Ok, format!("{label}: {:.3} s", m.seconds))),
            }
            if m.error.is_none() && m.locks.is_empty() {
                lines.push((Mark::Detail, "no locks on existing tables".to_string()));
            }
            for lock in &m.locks {
                lines.push((
                    Mark::Detail,
                    format!(
                        "{} on {}: {} for {:.3} s",
                        lock.mode,
                        lock.table,
                        lock.blocks.describe(),
                        m.seconds
                    ),
                ));
            }
        }
        for w in &self.warnings {
            lines.push((Mark::Warn, w.clone()));
        }
        lines
    }
}

/// How a report line is marked when printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Ok,
    Fail,
    /// Belongs to the line above.
    Detail,
    Warn,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_found_among_log_lines_and_reads_as_lines() {
        let stdout = concat!(
            "{\"level\":\"INFO\",\"message\":\"managed PostgreSQL started\"}\n",
            "{\"schema_level\":8,\"target_level\":9,\"database_bytes\":100,\"copy_seconds\":0.5,",
            "\"migrations\":[{\"version\":9,\"name\":\"x\",\"kind\":\"expand\",\"seconds\":0.1,",
            "\"locks\":[{\"table\":\"public.users\",\"mode\":\"SHARE\",\"blocks\":\"writes\"}],",
            "\"error\":null}],\"warnings\":[]}\n",
            "{\"level\":\"INFO\",\"message\":\"managed PostgreSQL stopped\"}\n",
        );
        let report = Report::find(stdout).expect("report");
        assert_eq!(report.target_level, 9);
        assert_eq!(report.migrations[0].locks[0].blocks, Blocks::Writes);
        assert!(report.failed().is_none());
        assert_eq!(
            report.lines(),
            [
                (Mark::Ok, "V9__x (expand): 0.100 s".to_string()),
                (
                    Mark::Detail,
                    "SHARE on public.users: blocks writes (reads go on) for 0.100 s".to_string()
                ),
            ]
        );
        assert!(Report::find("{\"level\":\"INFO\"}\nnot json\n").is_none());
    }
}
