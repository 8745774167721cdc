//! `rollback` and `status`.

use std::path::Path;

use super::recovery::recover;
use super::{refuse_now, Options, Report};
use crate::journal::{self, Outcome, WorkDir};
use crate::settings;
use crate::Exit;

/// `rollback`: returns to the release before the journal's upgrade.
pub fn rollback(opts: &Options) -> Exit {
    let report = Report { json: opts.json };
    let work = match WorkDir::lock(&opts.work_dir) {
        Ok(w) => w,
        Err(e) => return refuse_now(&report, &e.to_string()),
    };
    let settings = match settings::load(&opts.config) {
        Ok(s) => s,
        Err(e) => return refuse_now(&report, &e),
    };
    let mut journal = match work.load() {
        Ok(Some(j)) => j,
        Ok(None) => {
            report.line("nothing to roll back: no upgrade is in the journal");
            return report.finish(None, Exit::Done);
        }
        Err(e) => {
            report.line(&format!("STOPPED  {e}"));
            return report.finish(None, Exit::NeedsAdmin);
        }
    };
    if matches!(journal.outcome, Outcome::Refused | Outcome::RolledBack) {
        report.line(&format!(
            "nothing to roll back: the last upgrade {} → {} ended {:?}; {} runs",
            journal.from, journal.to, journal.outcome, journal.from
        ));
        return report.finish(Some(&journal), Exit::Done);
    }
    let exit = recover(
        &report,
        &work,
        &settings,
        opts,
        &mut journal,
        "rollback requested",
    );
    let exit = if exit == Exit::Failed {
        Exit::Done
    } else {
        exit
    };
    report.finish(Some(&journal), exit)
}

/// `status`: the journal, as text or JSON.
pub fn status(work_dir: &Path, json: bool) -> Exit {
    match journal::load(&work_dir.join("journal.json")) {
        Ok(None) => {
            if json {
                println!("null");
            } else {
                println!("no upgrade has run on this host");
            }
            Exit::Done
        }
        Ok(Some(j)) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
                return Exit::Done;
            }
            println!("upgrade {} → {} (journal {})", j.from, j.to, j.id);
            println!("outcome: {:?}", j.outcome);
            if let Some(m) = &j.message {
                println!("message: {m}");
            }
            for r in &j.steps {
                println!(
                    "  [{}/9] {:<13} {:?} {:.1} s {}",
                    r.step.number(),
                    r.step.name(),
                    r.state,
                    r.seconds,
                    r.detail
                );
            }
            if let Some(b) = &j.backup {
                println!("backup: {}", b.display());
            }
            if let Some(d) = j.downtime_seconds {
                println!("downtime: {d:.1} s");
            }
            Exit::Done
        }
        Err(e) => {
            println!("{e}");
            Exit::NeedsAdmin
        }
    }
}
