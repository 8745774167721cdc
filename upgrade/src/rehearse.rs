//! `rehearse BUNDLE`: the new release's migrations run on a copy of the live
//! database (the new binary's `migrate --rehearse`), so an admin knows
//! before the maintenance window how long they take and which tables they
//! block. The live database is only read; the copy is dropped.

use std::process::Command;

use contracts::rehearsal::{Mark, Report};

use crate::check::{self, Inputs};
use crate::Exit;

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
    for (mark, line) in report.lines() {
        match mark {
            Mark::Ok => println!("ok       {line}"),
            Mark::Fail => println!("FAIL     {line}"),
            Mark::Detail => println!("           {line}"),
            Mark::Warn => println!("warn     {line}"),
        }
    }
    match report.failed() {
        Some(m) => println!(
            "FAILED   the upgrade to {target} would fail at V{}__{}: fix the cause above, then \
             rehearse again (/usr/share/doc/mogothrow77/upgrade.md.gz, section a-migration-failed)",
            m.version, m.name
        ),
        None => println!(
            "ok       the migrations took {:.3} s on the copy: `apply` stops the service \
             for about that long plus the package swap and start (about 1 s)",
            report.total_seconds()
        ),
    }
}
