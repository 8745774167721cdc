//! `apply BUNDLE` and `rollback`: the upgrade as a journaled state machine.
//!
//! Every step is recorded before and after it runs, so a run that was
//! killed is finished by the next `apply` (each step can be repeated
//! safely) or undone by `rollback`. Failures before the service is stopped
//! change nothing (exit 10); later ones bring the previous release back
//! when it can run on the schema (exit 1), and otherwise stop with the
//! runbook section and the backup named (exit 11).

mod layouts;
mod recovery;
mod release_files;
mod rollback;
mod stage;
mod steps;

use recovery::{recover, remove_staging};
pub use rollback::{rollback, status};

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::journal::{self, Journal, JournalError, Outcome, Step, StepState, WorkDir};
use crate::layout::Layout;
use crate::release::{self, OpenError};
use crate::settings::{self, Settings};
use crate::system;
use crate::{faults, host, Exit};

/// How long a started service may take to answer `/readyz`.
const READY_LIMIT: Duration = Duration::from_secs(60);

pub struct Options {
    pub bundle: PathBuf,
    pub public_keys: Vec<PathBuf>,
    pub config: PathBuf,
    pub work_dir: PathBuf,
    pub os_release: PathBuf,
    pub json: bool,
    /// `rollback --restore-backup`: when the previous release cannot run
    /// on the schema, restore the upgrade's backup (losing every change
    /// made since) instead of stopping.
    pub restore_backup: bool,
    /// `rollback --identity KEYFILE`: the private key that opens the
    /// backup when it was encrypted (`backup.age_recipients_file`).
    pub identity: Option<PathBuf>,
}

/// Progress lines: standard output, or standard error when `--json` keeps
/// standard output for the journal.
struct Report {
    json: bool,
}

impl Report {
    fn line(&self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    fn finish(&self, journal: Option<&Journal>, exit: Exit) -> Exit {
        if self.json {
            let value = match journal {
                Some(j) => serde_json::to_value(j).unwrap_or_default(),
                None => serde_json::Value::Null,
            };
            println!(
                "{}",
                serde_json::json!({ "exit": exit as u8, "journal": value })
            );
        }
        exit
    }
}

/// Why a step stopped.
enum Failure {
    /// Nothing was changed; the upgrade is refused.
    Refuse(String),
    /// Something failed after changes began.
    Fail(String),
}

type StepResult = Result<String, Failure>;

struct Run<'a> {
    opts: &'a Options,
    /// Whether the journal is written (from the backup step on, or when
    /// resuming).
    persist: Cell<bool>,
    /// The last upgrade's finished journal, archived once this run persists.
    superseded: RefCell<Option<Journal>>,
    work: WorkDir,
    settings: Settings,
    report: Report,
    staging: PathBuf,
    /// How releases are installed here (the journal's, when resuming).
    layout: Layout,
}

impl Run<'_> {
    /// How releases are installed in this run's layout.
    fn install(&self) -> &'static dyn layouts::Install {
        layouts::of(self.layout)
    }
}

fn refuse_now(report: &Report, message: &str) -> Exit {
    report.line(&format!("REFUSED  {message}"));
    report.line("nothing was changed");
    report.finish(None, Exit::Refused)
}

pub fn apply(opts: &Options) -> Exit {
    let report = Report { json: opts.json };
    let work = match WorkDir::lock(&opts.work_dir) {
        Ok(w) => w,
        Err(e @ JournalError::Busy { .. }) => return refuse_now(&report, &e.to_string()),
        Err(e) => return refuse_now(&report, &e.to_string()),
    };
    let settings = match settings::load(&opts.config) {
        Ok(s) => s,
        Err(e) => return refuse_now(&report, &e),
    };
    let previous = match work.load() {
        Ok(j) => j,
        Err(e) => {
            report.line(&format!("STOPPED  {e}"));
            return report.finish(None, Exit::NeedsAdmin);
        }
    };
    let staging = work.root.join("staging");
    let resuming = previous
        .as_ref()
        .is_some_and(|j| j.outcome == Outcome::InProgress);
    let layout = match &previous {
        Some(j) if resuming => j.layout,
        _ => Layout::detect(),
    };
    let run = Run {
        opts,
        layout,
        staging,
        work,
        settings,
        report,
        persist: Cell::new(resuming),
        superseded: RefCell::new(None),
    };
    // Always verify the bundle first, also when resuming.
    let started = Instant::now();
    let release = match run.open_bundle() {
        Ok(r) => r,
        Err(OpenError::Key(e)) => {
            run.report.line(&e);
            return run.report.finish(None, Exit::Usage);
        }
        Err(OpenError::Refused(e)) => {
            if let Some(j) = previous.filter(|j| j.outcome == Outcome::InProgress) {
                // An interrupted upgrade cannot continue without its bundle.
                run.report.line(&format!("REFUSED  {e}"));
                run.report.line(&format!(
                    "an unfinished upgrade {} → {} is in the journal: rerun apply with its bundle, \
                     or run `mogothrow77-upgrade rollback`",
                    j.from, j.to
                ));
                return run.report.finish(Some(&j), Exit::Refused);
            }
            return refuse_now(&run.report, &e);
        }
    };
    let target = release.target;
    let mut journal = match previous {
        Some(j) if j.outcome == Outcome::InProgress => {
            if j.to != target.to_string() {
                run.report.line(&format!(
                    "REFUSED  an unfinished upgrade {} → {} is in the journal; this bundle is {target}: \
                     rerun apply with the {} bundle, or run `mogothrow77-upgrade rollback` first",
                    j.from, j.to, j.to
                ));
                return run.report.finish(Some(&j), Exit::Refused);
            }
            run.report.line(&format!(
                "resuming the upgrade {} → {} (journal {})",
                j.from, j.to, j.id
            ));
            j
        }
        other => {
            // The last upgrade's journal stays until this one changes
            // something (a refused attempt leaves it in place).
            *run.superseded.borrow_mut() = other;
            let installed =
                match host::installed_version(&layout.binary()) {
                    Ok(Some(v)) => v,
                    Ok(None) => return refuse_now(
                        &run.report,
                        "mogothrow77 is not installed here: install it with mogothrow77-install",
                    ),
                    Err(e) => return refuse_now(&run.report, &e),
                };
            Journal::new(
                &installed.to_string(),
                &target.to_string(),
                &opts.bundle,
                layout,
            )
        }
    };
    let verified = run.stage_package(&release, &mut journal);
    let outcome = run
        .finish_step(
            &mut journal,
            Step::Verify,
            started,
            verified.map(|_| {
                format!(
                    "bundle {} (commit {}): signature and {} file digests verified",
                    release.manifest.version,
                    release.manifest.commit,
                    release.manifest.files.len()
                )
            }),
        )
        .and_then(|()| run.steps(&release, &mut journal));
    match outcome {
        Ok(exit) | Err(exit) => exit,
    }
}

impl Run<'_> {
    /// Records a step's end; on failure, decides what happens next.
    fn finish_step(
        &self,
        journal: &mut Journal,
        step: Step,
        started: Instant,
        result: StepResult,
    ) -> Result<(), Exit> {
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(detail) => {
                journal.record(step, StepState::Done, seconds, &detail);
                self.save(journal)?;
                self.report.line(&format!(
                    "[{}/9] {:<13} done in {seconds:.1} s{}",
                    step.number(),
                    step.name(),
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!("  {detail}")
                    }
                ));
                faults::after(step);
                Ok(())
            }
            Err(Failure::Refuse(reason)) | Err(Failure::Fail(reason))
                if !journal.changed_anything() =>
            {
                journal.record(step, StepState::Failed, seconds, &reason);
                journal.outcome = Outcome::Refused;
                journal.message = Some(reason.clone());
                self.save(journal)?;
                self.report.line(&format!(
                    "[{}/9] {:<13} FAILED after {seconds:.1} s",
                    step.number(),
                    step.name()
                ));
                self.report.line(&format!("REFUSED  {reason}"));
                self.report
                    .line(&format!("nothing was changed: {} still runs", journal.from));
                Err(self.report.finish(Some(journal), Exit::Refused))
            }
            Err(Failure::Refuse(reason)) | Err(Failure::Fail(reason)) => {
                journal.record(step, StepState::Failed, seconds, &reason);
                self.save(journal)?;
                self.report.line(&format!(
                    "[{}/9] {:<13} FAILED after {seconds:.1} s: {reason}",
                    step.number(),
                    step.name()
                ));
                let exit = recover(
                    &self.report,
                    &self.work,
                    &self.settings,
                    self.opts,
                    journal,
                    &reason,
                );
                Err(self.report.finish(Some(journal), exit))
            }
        }
    }

    /// Writes the journal once this run has begun to change the host
    /// (before that, a crash or refusal leaves nothing to finish or undo).
    fn save(&self, journal: &Journal) -> Result<(), Exit> {
        if !self.persist.get() {
            return Ok(());
        }
        self.work.save(journal).map_err(|e| {
            self.report
                .line(&format!("STOPPED  cannot write the journal: {e}"));
            Exit::NeedsAdmin
        })
    }

    fn steps(&self, release: &release::Release, journal: &mut Journal) -> Result<Exit, Exit> {
        for step in &Step::ALL[1..] {
            let step = *step;
            // Steps the journal marks done are not repeated, except start
            // and health: a resumed run must see the service ready itself.
            if journal.done(step) && !matches!(step, Step::Start | Step::Health) {
                continue;
            }
            if step == Step::Backup && !self.persist.get() {
                if let Some(last) = self.superseded.borrow_mut().take() {
                    if let Err(e) = self.work.archive(&last) {
                        self.report
                            .line(&format!("STOPPED  cannot archive the last journal: {e}"));
                        return Err(self.report.finish(Some(journal), Exit::Refused));
                    }
                }
                self.persist.set(true);
            }
            journal.record(step, StepState::Started, 0.0, "");
            self.save(journal)?;
            let started = Instant::now();
            let result = match step {
                Step::Verify => Ok(String::new()),
                Step::Compatibility => self.compatibility(release, journal),
                Step::Preflight => self.preflight(journal),
                Step::Backup => self.backup(journal),
                Step::Stop => {
                    if journal.stopped_at.is_none() {
                        journal.stopped_at = Some(journal::now());
                    }
                    system::stop_service()
                        .map(|()| String::new())
                        .map_err(Failure::Fail)
                }
                // Nothing pending: the managed cluster need not even start.
                Step::Migrate if !journal.migrations_pending => {
                    Ok("no migrations to run".to_string())
                }
                Step::Migrate => {
                    system::server(&self.new_binary(journal), &self.opts.config, &["migrate"])
                        .map(|out| out.lines().collect::<Vec<_>>().join("; "))
                        .map_err(|e| {
                            Failure::Fail(format!("{e} (/usr/share/doc/mogothrow77/upgrade.md.gz, section a-migration-failed)"))
                        })
                }
                Step::Swap => self.swap(journal),
                Step::Start => system::start_service()
                    .map(|()| String::new())
                    .map_err(Failure::Fail),
                Step::Health => self.health(journal),
            };
            self.finish_step(journal, step, started, result)?;
        }
        journal.outcome = Outcome::Done;
        journal.message = None;
        self.save(journal)?;
        remove_staging(&self.work, &self.report);
        self.install().finished(journal, &self.report);
        self.report.line(&format!(
            "upgraded {} → {}; the service was down {:.1} s; backup: {}",
            journal.from,
            journal.to,
            journal.downtime_seconds.unwrap_or(0.0),
            journal
                .backup
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
        Ok(self.report.finish(Some(journal), Exit::Done))
    }
}
