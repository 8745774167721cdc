//! `mogothrow77 diagnose`: what is wrong with this appliance, in one run.
//! Each check is pass, warn, fail or skip, with what it measured and, when
//! not passing, the fix and its runbook. It reads only: no file is written,
//! no row changed, and a stopped managed cluster is not started.

mod backups;
mod certificate;
mod database;
mod host;
mod pitr;
mod secrets;

pub use database::{reach, Reach};
pub use host::{unit, UNIT};

use serde::Serialize;

use crate::config::Settings;
use crate::exit::Exit;

/// A check's verdict, mildest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Skip,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    /// What was measured or found.
    pub value: String,
    /// On warn and fail: what to do, with the runbook's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, value: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status,
            value: value.into(),
            fix: None,
        }
    }

    pub fn pass(name: impl Into<String>, value: impl Into<String>) -> Check {
        Check::new(name, Status::Pass, value)
    }

    pub fn skip(name: impl Into<String>, value: impl Into<String>) -> Check {
        Check::new(name, Status::Skip, value)
    }

    pub fn warn(name: impl Into<String>, value: impl Into<String>, fix: String) -> Check {
        Check {
            fix: Some(fix),
            ..Check::new(name, Status::Warn, value)
        }
    }

    pub fn fail(name: impl Into<String>, value: impl Into<String>, fix: String) -> Check {
        Check {
            fix: Some(fix),
            ..Check::new(name, Status::Fail, value)
        }
    }
}

/// Where the fixes point: this appliance's own documentation (served at
/// `/docs`, and installed under /usr/share/doc/mogothrow77).
#[derive(Debug, Clone)]
pub struct Runbooks {
    base: String,
}

impl Runbooks {
    pub fn new(settings: &Settings) -> Runbooks {
        Runbooks {
            base: crate::monitoring::default_runbook_base(settings),
        }
    }

    /// `fix` followed by the page (`runbooks/alerts.md#anchor`).
    pub fn fix(&self, fix: &str, page: &str) -> String {
        format!("{fix} (runbook: {}/{page})", self.base)
    }
}

/// Every check of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass)
    }

    /// 0 all pass (or skip), 6 warnings only, 1 any failure.
    pub fn exit(&self) -> Exit {
        match self.worst() {
            Status::Pass | Status::Skip => Exit::Ok,
            Status::Warn => Exit::Warnings,
            Status::Fail => Exit::Failure,
        }
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The human form: one line per check, the fix indented below it.
    pub fn text(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{:<4}  {:<width$}  {}\n",
                c.status.label(),
                c.name,
                c.value
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("      {:<width$}  fix: {fix}\n", ""));
            }
        }
        out.push_str(&format!(
            "{} checks: {} passed, {} warnings, {} failed, {} skipped\n",
            self.checks.len(),
            self.count(Status::Pass),
            self.count(Status::Warn),
            self.count(Status::Fail),
            self.count(Status::Skip)
        ));
        out
    }
}

/// `diagnose [--json]`.
pub async fn run(settings: Settings, json: bool) -> Exit {
    let report = collect(&settings).await;
    if json {
        match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("mogothrow77 diagnose: {e}");
                return Exit::Failure;
            }
        }
    } else {
        print!("{}", report.text());
    }
    report.exit()
}

/// Runs every check, as the service user when started as root.
pub async fn collect(settings: &Settings) -> Report {
    let runbooks = Runbooks::new(settings);
    let mut checks = vec![configuration(settings)];
    checks.push(host::service_user(settings, &runbooks));
    checks.push(host::state_dir(settings, &runbooks));
    checks.push(certificate::check(settings, &runbooks));
    checks.extend(host::storage(settings, &runbooks));
    let unit = host::unit();
    checks.push(host::open_files(&unit, &runbooks));
    checks.push(host::systemd(&unit, &runbooks));
    checks.extend(database::checks(settings, &runbooks).await);
    Report {
        version: crate::cli::VERSION,
        checks,
    }
}

fn configuration(settings: &Settings) -> Check {
    let from = match &settings.file {
        Some(file) => format!("{} and the environment", file.display()),
        None => "built-in defaults and the environment (no configuration file)".to_string(),
    };
    Check::pass("configuration", format!("valid: {from}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(statuses: &[Status]) -> Report {
        Report {
            version: "test",
            checks: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| Check {
                    fix: matches!(s, Status::Warn | Status::Fail).then(|| "do this".to_string()),
                    ..Check::new(format!("check {i}"), *s, "measured")
                })
                .collect(),
        }
    }

    /// Every page (and anchor) a fix links to exists in the documentation
    /// the server serves under `/docs`.
    #[test]
    fn every_runbook_link_resolves() {
        let sources = [
            include_str!("certificate.rs"),
            include_str!("database.rs"),
            include_str!("host.rs"),
        ];
        let mut links = Vec::new();
        for source in sources {
            for literal in source.split('"').skip(1).step_by(2) {
                let is_link = literal.ends_with(".md") || literal.contains(".md#");
                if is_link && !literal.contains(' ') {
                    links.push(literal);
                }
            }
        }
        assert!(links.len() >= 10, "{links:?}");
        for link in links {
            let (page, anchor) = link.split_once('#').unwrap_or((link, ""));
            let markdown = crate::docs::page(page).unwrap_or_else(|| panic!("no page {page}"));
            if !anchor.is_empty() {
                let rendered = crate::docs::render(markdown);
                assert!(
                    rendered.anchors.iter().any(|a| a == anchor),
                    "{page} has no #{anchor}"
                );
            }
        }
    }

    #[test]
    fn the_exit_code_is_the_worst_verdict() {
        assert_eq!(report(&[]).exit(), Exit::Ok);
        assert_eq!(report(&[Status::Pass, Status::Skip]).exit(), Exit::Ok);
        assert_eq!(
            report(&[Status::Pass, Status::Warn, Status::Skip]).exit(),
            Exit::Warnings
        );
        assert_eq!(
            report(&[Status::Warn, Status::Fail, Status::Pass]).exit(),
            Exit::Failure
        );
    }

    #[test]
    fn the_text_names_each_check_and_the_fix_below_a_warning() {
        let text = report(&[Status::Pass, Status::Warn]).text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "pass  check 0  measured");
        assert_eq!(lines[1], "warn  check 1  measured");
        assert_eq!(lines[2], "               fix: do this");
        assert_eq!(
            lines[3],
            "2 checks: 1 passed, 1 warnings, 0 failed, 0 skipped"
        );
    }
}
