//! `rehearse BUNDLE`: the new release's migrations run on a copy of the live
//! database (the new binary's `migrate --rehearse`), so an admin knows
//! before the maintenance window how long they take and which tables they
//! block. The live database is only read; the copy is dropped.

use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::check::{self, Inputs};
use crate::Exit;

/// The server's rehearsal report (`mogothrow77 migrate --rehearse --json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_level: i32,
    pub target_level: i32,
    pub database_bytes: i64,
    pub copy_seconds: f64,
    pub migrations: Vec<MigrationRun>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationRun {
    pub version: i32,
    pub name: String,
    pub kind: String,
    pub seconds: f64,
    pub locks: Vec<TableLock>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableLock {
    pub table: String,
    pub mode: String,
    /// `nothing`, `schema_changes`, `writes` or `reads_and_writes`.
    pub blocks: String,
}

impl Report {
    fn failed(&self) -> Option<&MigrationRun> {
        self.migrations.iter().find(|m| m.error.is_some())
    }

    /// Finds the report among the lines the server printed (its log lines
    /// are JSON too, but not reports).
    fn find(stdout: &str) -> Option<Report> {
        stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Report>(l).ok())
    }
}

fn blocks(text: &str) -> &str {
    match text {
        "nothing" => "blocks nothing the service does",
        "schema_changes" => "blocks only other schema changes",
        "writes" => "blocks writes (reads go on)",
        _ => "blocks reads and writes",
    }
}

pub fn run(inputs: &Inputs, json: bool) -> Exit {
    let scratch = match check::scratch_dir() {
        Ok(dir) => dir,
        Err(exit) => return exit,
    };
    let (release, plan, _) =
        match check::verify_and_decide(inputs, &scratch.path().join("bundle"), json) {
            Ok(decided) => decided,
            Err(exit) => return exit,
        };
    if plan.installed.is_none() {
        return check::refuse(
            "nothing is installed: there is no database to rehearse on (use mogothrow77-install)",
        );
    }
    if let Some(b) = plan.blockers.first() {
        return check::refuse(format!(
            "{b}; `mogothrow77-upgrade check` lists every reason"
        ));
    }
    if !inputs.config.is_file() {
        return check::refuse(format!(
            "no configuration at {}: pass the appliance's with --config",
            inputs.config.display()
        ));
    }
    let binary = match release.server_binary(scratch.path()) {
        Ok(b) => b,
        Err(e) => return check::refuse(e),
    };
    let progress = format!(
        "...      copying the database and running {}'s migrations on the copy",
        release.target
    );
    if json {
        eprintln!("{progress}");
    } else {
        println!("{progress}");
    }
    let out = match Command::new(&binary)
        .arg("--config")
        .arg(&inputs.config)
        .args(["migrate", "--rehearse", "--json"])
        .output()
    {
        Ok(out) => out,
        Err(e) => return check::refuse(format!("cannot run {}: {e}", binary.display())),
    };
    let Some(report) = Report::find(&String::from_utf8_lossy(&out.stdout)) else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no report");
        return check::refuse(format!(
            "the rehearsal could not run ({}): {reason}",
            out.status
        ));
    };
    let exit = if report.failed().is_some() {
        Exit::Failed
    } else {
        Exit::Done
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "exit": exit as u8,
                "target": release.target.to_string(),
                "rehearsal": report,
            })
        );
    } else {
        print_report(&report, &release.target.to_string());
    }
    exit
}

fn print_report(report: &Report, target: &str) {
    if report.migrations.is_empty() {
        println!(
            "ok       {target} runs no migrations on this database (schema level {}): the \
             upgrade's downtime is the binary swap alone",
            report.schema_level
        );
        return;
    }
    println!(
        "ok       copied the database ({:.1} MB) in {:.1} s; the live database was not changed",
        report.database_bytes as f64 / 1e6,
        report.copy_seconds
    );
    for m in &report.migrations {
        let label = format!("V{}__{} ({})", m.version, m.name, m.kind);
        match &m.error {
            Some(error) => println!("FAIL     {label} after {:.3} s: {error}", m.seconds),
            None => println!("ok       {label}: {:.3} s", m.seconds),
        }
        if m.error.is_none() && m.locks.is_empty() {
            println!("           no locks on existing tables");
        }
        for lock in &m.locks {
            println!(
                "           {} on {}: {} for {:.3} s",
                lock.mode,
                lock.table,
                blocks(&lock.blocks),
                m.seconds
            );
        }
    }
    for w in &report.warnings {
        println!("warn     {w}");
    }
    match report.failed() {
        Some(m) => println!(
            "FAILED   the upgrade to {target} would fail at V{}__{}: fix the cause above, then \
             rehearse again (/usr/share/doc/mogothrow77/upgrade.md.gz, section a-migration-failed)",
            m.version, m.name
        ),
        None => {
            let total: f64 = report.migrations.iter().map(|m| m.seconds).sum();
            println!(
                "ok       the migrations took {total:.3} s on the copy: `apply` stops the service \
                 for about that long plus the package swap and start (about 1 s)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_found_among_log_lines() {
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
        assert_eq!(report.migrations[0].locks[0].blocks, "writes");
        assert!(report.failed().is_none());
        assert!(Report::find("{\"level\":\"INFO\"}\nnot json\n").is_none());
    }
}
