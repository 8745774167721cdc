//! `apply BUNDLE` and `rollback`: the upgrade as a journaled state machine.
//!
//! Every step is recorded before and after it runs, so a run that was
//! killed is finished by the next `apply` (each step can be repeated
//! safely) or undone by `rollback`. Failures before the service is stopped
//! change nothing (exit 10); later ones bring the previous release back
//! when it can run on the schema (exit 1), and otherwise stop with the
//! runbook section and the backup named (exit 11).

use std::cell::{Cell, RefCell};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use compat::Version;

use crate::journal::{self, Journal, JournalError, Outcome, Step, StepState, WorkDir};
use crate::layout::{self, Layout, Plain};
use crate::release::{self, OpenError};
use crate::settings::{self, Settings};
use crate::system::{self, SchemaFit};
use crate::{check, faults, host, Exit};

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
    fn open_bundle(&self) -> Result<release::Release, OpenError> {
        let dest = self.staging.join("bundle");
        for dir in [&dest, &self.staging.join("root")] {
            if dir.exists() {
                fs::remove_dir_all(dir)
                    .map_err(|e| OpenError::Refused(format!("{}: {e}", dir.display())))?;
            }
        }
        fs::create_dir_all(&self.staging)
            .map_err(|e| OpenError::Refused(format!("{}: {e}", self.staging.display())))?;
        release::open(&self.opts.bundle, &self.opts.public_keys, &dest)
    }

    /// The target's server binary, to run before it is installed.
    fn new_binary(&self, journal: &Journal) -> PathBuf {
        match self.layout {
            Layout::Package | Layout::Rpm => self.staging.join("root/usr/bin/mogothrow77"),
            Layout::Plain => Plain::host()
                .release_dir(&journal.to)
                .join("bin/mogothrow77"),
        }
    }

    /// Keeps the target's package and unpacks its binary (package layout),
    /// or writes its release directory (plain layout), to run its binary
    /// before it is installed.
    fn stage_package(&self, release: &release::Release, journal: &mut Journal) -> StepResult {
        let (kept, binary) = match self.layout {
            Layout::Package => self.stage_deb(release)?,
            Layout::Rpm => self.stage_rpm(release)?,
            Layout::Plain => {
                let plain = Plain::host();
                let current = plain.current().unwrap_or_default();
                if current != journal.from && current != journal.to {
                    return Err(Failure::Refuse(format!(
                        "{}/current points to {current:?}, but the upgrade is from {}: \
                         point it back at releases/{} \
                         (/usr/share/doc/mogothrow77/upgrade.md.gz, section current-points-to-another-release)",
                        layout::PLAIN_ROOT,
                        journal.from,
                        journal.from
                    )));
                }
                let dir = plain.stage(release).map_err(Failure::Refuse)?;
                let binary = dir.join("bin/mogothrow77");
                (dir, binary)
            }
        };
        let reported = host::installed_version(&binary).map_err(Failure::Refuse)?;
        if reported != Some(release.target) {
            return Err(Failure::Refuse(format!(
                "the bundle's {} holds mogothrow77 {}, not {}",
                if self.layout == Layout::Plain {
                    "plain/ release"
                } else {
                    "package"
                },
                reported.map(|v| v.to_string()).unwrap_or_default(),
                release.target
            )));
        }
        journal.package = Some(kept);
        journal.target_schema_level = schema_level(&binary);
        Ok(String::new())
    }

    /// The rpm layout's staging: the .rpm kept in the releases directory
    /// (its name and version checked), the bundle's binary (the same
    /// bytes) in the staging directory.
    fn stage_rpm(&self, release: &release::Release) -> Result<(PathBuf, PathBuf), Failure> {
        let refuse = Failure::Refuse;
        let rpm = release.rpm().map_err(refuse)?;
        let (name, version) = system::rpm_file_version(&rpm).map_err(refuse)?;
        if name != system::PACKAGE || version != release.target.to_string() {
            return Err(refuse(format!(
                "the bundle's .rpm is {name} {version}, not {} {}",
                system::PACKAGE,
                release.target
            )));
        }
        let releases = self.work.releases();
        fs::create_dir_all(&releases)
            .map_err(|e| refuse(format!("{}: {e}", releases.display())))?;
        let kept = releases.join(rpm.file_name().unwrap_or_default());
        fs::copy(&rpm, &kept).map_err(|e| refuse(format!("{}: {e}", kept.display())))?;
        let binary = self.staging.join("root/usr/bin/mogothrow77");
        let source = release.plain_file("bin/mogothrow77").map_err(refuse)?;
        let copied = binary
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::copy(&source, &binary))
            .and_then(|_| {
                fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            });
        copied.map_err(|e| refuse(format!("{}: {e}", binary.display())))?;
        Ok((kept, binary))
    }

    /// The package layout's staging: the .deb kept in the releases
    /// directory, its files unpacked into the staging directory.
    fn stage_deb(&self, release: &release::Release) -> Result<(PathBuf, PathBuf), Failure> {
        let deb = release.deb().map_err(Failure::Refuse)?;
        let releases = self.work.releases();
        fs::create_dir_all(&releases)
            .map_err(|e| Failure::Refuse(format!("{}: {e}", releases.display())))?;
        let kept = releases.join(deb.file_name().unwrap_or_default());
        fs::copy(&deb, &kept).map_err(|e| Failure::Refuse(format!("{}: {e}", kept.display())))?;
        let binary =
            system::unpack_package(&kept, &self.staging.join("root")).map_err(Failure::Refuse)?;
        Ok((kept, binary))
    }

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
        if self.layout == Layout::Plain {
            // The new release and the previous one (for rollback) stay.
            match Plain::host().prune(&journal.from) {
                Ok(removed) if !removed.is_empty() => self.report.line(&format!(
                    "removed older release directories: {}",
                    removed.join(", ")
                )),
                Ok(_) => {}
                Err(e) => self
                    .report
                    .line(&format!("note     older releases were not removed: {e}")),
            }
        }
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

    fn compatibility(&self, release: &release::Release, journal: &mut Journal) -> StepResult {
        let from = Version::parse(&journal.from)
            .ok_or_else(|| Failure::Refuse(format!("installed version {:?}", journal.from)))?;
        let os = host::os_name(&self.opts.os_release).map_err(Failure::Refuse)?;
        let plan = check::decide(&release.data, release.target, Some(from), &os)
            .map_err(Failure::Refuse)?;
        if let Some(blocker) = plan.blockers.first() {
            return Err(Failure::Refuse(blocker.to_string()));
        }
        let fit = system::schema_fit(&self.new_binary(journal), &self.opts.config);
        journal.migrations_pending = matches!(fit, SchemaFit::Pending(_));
        journal.contract_pending = matches!(&fit, SchemaFit::Pending(list)
            if list.iter().any(|m| m.ends_with("(contract)")));
        match fit {
            SchemaFit::Runs | SchemaFit::Pending(_) => {}
            SchemaFit::TooNew => {
                return Err(Failure::Refuse(format!(
                    "the database schema holds contract migrations {} does not know: it was \
                     migrated by a newer release",
                    release.target
                )))
            }
            SchemaFit::Unknown(e) => {
                return Err(Failure::Refuse(format!(
                    "cannot check the database with {}: {e}",
                    release.target
                )))
            }
        }
        Ok(format!(
            "{} → {} allowed on {os}; the database schema fits{}",
            journal.from,
            journal.to,
            match (journal.migrations_pending, journal.contract_pending) {
                (_, true) => "; migrations to run, one a contract migration (the backup will be test-restored)",
                (true, false) => "; migrations to run",
                (false, _) => "; no migrations to run",
            }
        ))
    }

    fn preflight(&self, journal: &Journal) -> StepResult {
        let state = &self.settings.state_dir;
        let package = match (self.layout, &journal.package) {
            // Written already (step 1): what it takes on disk.
            (Layout::Plain, Some(dir)) => system::used_bytes(dir),
            (_, package) => package
                .as_ref()
                .and_then(|p| fs::metadata(p).ok())
                .map_or(0, |m| m.len()),
        };
        // The backup is at most about the database's size on disk (managed
        // mode), and so is its test restore's copy; the package is unpacked
        // twice (staging and install).
        let database = system::used_bytes(&state.join("postgres"));
        let margin = 64 << 20;
        let copies = if journal.contract_pending { 2 } else { 1 };
        let need_state = copies * database + margin;
        let free_state = system::free_bytes(state).map_err(Failure::Refuse)?;
        if free_state < need_state {
            return Err(Failure::Refuse(format!(
                "{} has {} MiB free; the backup needs about {} MiB: free space there first \
                 (/usr/share/doc/mogothrow77/upgrade.md.gz, section not-enough-disk-space)",
                state.display(),
                free_state >> 20,
                need_state >> 20
            )));
        }
        let need_root = 3 * package + margin;
        let programs = self.layout.programs_dir();
        let free_root = system::free_bytes(programs).map_err(Failure::Refuse)?;
        if free_root < need_root {
            return Err(Failure::Refuse(format!(
                "{} has {} MiB free; the new release needs about {} MiB \
                 (/usr/share/doc/mogothrow77/upgrade.md.gz, section not-enough-disk-space)",
                programs.display(),
                free_root >> 20,
                need_root >> 20
            )));
        }
        if self.layout == Layout::Rpm {
            // Checked before the backup is taken: without it there is no
            // way back.
            kept_rpm(&self.work.releases(), &journal.from).map_err(Failure::Refuse)?;
        }
        Ok(format!(
            "{} MiB free for the backup, {} MiB for the release; no other upgrade runs",
            free_state >> 20,
            free_root >> 20
        ))
    }

    fn backup(&self, journal: &mut Journal) -> StepResult {
        let fail = |e: String| Failure::Fail(e);
        let state = &self.settings.state_dir;
        let owner = fs::metadata(state).map_err(|e| fail(format!("{}: {e}", state.display())))?;
        let dir = state.join("backups").join(&journal.id);
        for d in [state.join("backups"), dir.clone()] {
            fs::create_dir_all(&d).map_err(|e| fail(format!("{}: {e}", d.display())))?;
            std::os::unix::fs::chown(
                &d,
                Some(std::os::unix::fs::MetadataExt::uid(&owner)),
                Some(std::os::unix::fs::MetadataExt::gid(&owner)),
            )
            .map_err(|e| fail(format!("{}: {e}", d.display())))?;
            fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| fail(format!("{}: {e}", d.display())))?;
        }
        let archive = dir.join("database.dump");
        // A run killed during the dump leaves a partial archive.
        let _ = fs::remove_file(&archive);
        let path = archive
            .to_str()
            .ok_or_else(|| fail("non-UTF-8 state_dir".into()))?;
        // Past the rollback window the backup is the only way back: it is
        // restored into a scratch database before anything changes.
        let mut args = vec!["backup", "--out", path];
        if journal.contract_pending {
            args.push("--test-restore");
        }
        system::server(&self.new_binary(journal), &self.opts.config, &args).map_err(|e| {
            fail(format!(
                "{e} (/usr/share/doc/mogothrow77/upgrade.md.gz, section the-backup-failed)"
            ))
        })?;
        journal.backup = Some(archive.clone());

        let config_dir = self
            .opts
            .config
            .parent()
            .unwrap_or(Path::new("/etc/mogothrow77"));
        let config_copy = self.work.root.join("backups").join(&journal.id).join("etc");
        if config_copy.exists() {
            fs::remove_dir_all(&config_copy)
                .map_err(|e| fail(format!("{}: {e}", config_copy.display())))?;
        }
        if let Some(parent) = config_copy.parent() {
            fs::create_dir_all(parent).map_err(|e| fail(format!("{}: {e}", parent.display())))?;
        }
        system::run(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(config_dir)
                .arg(&config_copy),
        )
        .map_err(fail)?;
        journal.config_backup = Some(config_copy);

        let previous = self.previous_package(journal).map_err(fail)?;
        journal.previous_package = Some(previous.clone());
        Ok(format!(
            "database → {} ({} bytes{}); configuration → {}; previous release kept as {}",
            archive.display(),
            fs::metadata(&archive).map_or(0, |m| m.len()),
            if journal.contract_pending {
                ", test-restored into a scratch database"
            } else {
                ""
            },
            journal
                .config_backup
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            previous.display()
        ))
    }

    /// The installed release's package: kept from an earlier upgrade, or
    /// rebuilt from what dpkg installed. In the plain layout, its release
    /// directory, which `current` points to.
    fn previous_package(&self, journal: &Journal) -> Result<PathBuf, String> {
        if self.layout == Layout::Plain {
            let plain = Plain::host();
            let current = plain.current().unwrap_or_default();
            if current != journal.from {
                return Err(format!(
                    "{}/current points to {current:?}, but the upgrade began from {}: \
                     point it back at releases/{} (/usr/share/doc/mogothrow77/upgrade.md.gz, section current-points-to-another-release)",
                    layout::PLAIN_ROOT,
                    journal.from,
                    journal.from
                ));
            }
            return Ok(plain.release_dir(&journal.from));
        }
        let releases = self.work.releases();
        if self.layout == Layout::Rpm {
            return kept_rpm(&releases, &journal.from);
        }
        let prefix = format!("{}_{}-", system::PACKAGE, journal.from);
        if let Ok(entries) = fs::read_dir(&releases) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with(&prefix) && name.ends_with(".deb") {
                    return Ok(entry.path());
                }
            }
        }
        let installed = system::installed_package_version().unwrap_or_default();
        if !installed.starts_with(&format!("{}-", journal.from)) {
            return Err(format!(
                "dpkg lists mogothrow77 {installed:?}, but the binary reports {}: \
                 finish or repair the package first (dpkg --configure -a)",
                journal.from
            ));
        }
        system::repack_installed(&releases, &self.work.root.join("repack"))
    }

    fn swap(&self, journal: &Journal) -> StepResult {
        let package = journal
            .package
            .as_ref()
            .ok_or_else(|| Failure::Fail("the journal names no package".to_string()))?;
        install_release(self.layout, package, &journal.to, false).map_err(Failure::Fail)?;
        let binary = self.layout.binary();
        let now = host::installed_version(&binary).map_err(Failure::Fail)?;
        if now.map(|v| v.to_string()).as_deref() != Some(journal.to.as_str()) {
            return Err(Failure::Fail(format!(
                "after installing {}, {} reports {:?}",
                package.display(),
                binary.display(),
                now.map(|v| v.to_string())
            )));
        }
        Ok(match self.layout {
            Layout::Package | Layout::Rpm => format!("{} installed", package.display()),
            Layout::Plain => format!("{}/current → releases/{}", layout::PLAIN_ROOT, journal.to),
        })
    }

    fn health(&self, journal: &mut Journal) -> StepResult {
        let ready = crate::probe::wait_ready(
            self.settings.probe_addr,
            &self.settings.cert_file,
            READY_LIMIT,
        )
        .map_err(|e| Failure::Fail(format!("/readyz: {e}")))?;
        if ready.version != journal.to {
            return Err(Failure::Fail(format!(
                "/readyz reports version {}, not {}",
                ready.version, journal.to
            )));
        }
        if let Some(level) = journal.target_schema_level {
            if ready.schema_level != u64::from(level) {
                return Err(Failure::Fail(format!(
                    "/readyz reports schema level {}, not {level}",
                    ready.schema_level
                )));
            }
        }
        journal.downtime_seconds = journal.stopped_at.map(|t| journal::now() - t);
        Ok(format!(
            "READY; /readyz: version {}, schema level {}",
            ready.version, ready.schema_level
        ))
    }
}

/// The kept .rpm of `version` (rpm cannot rebuild one from what it
/// installed, so the installer or an earlier upgrade kept it), and a copy
/// of the installed binary beside it, to ask about the schema on rollback.
fn kept_rpm(releases: &Path, version: &str) -> Result<PathBuf, String> {
    let prefix = format!("{}-{version}-", system::PACKAGE);
    let found = fs::read_dir(releases).ok().and_then(|entries| {
        entries.flatten().map(|e| e.path()).find(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".x86_64.rpm"))
        })
    });
    let Some(rpm) = found else {
        return Err(format!(
            "the .rpm of the installed release {version} is not kept in {}: copy \
             {prefix}1.x86_64.rpm there from {version}'s offline bundle (packages/el8/) and \
             run apply again (/usr/share/doc/mogothrow77/upgrade.md.gz, section the-installed-rpm-is-not-kept)",
            releases.display()
        ));
    };
    let binary = previous_rpm_binary(releases, version);
    if !binary.is_file() {
        let next = binary.with_extension("new");
        fs::copy(layout::PACKAGE_BINARY, &next).map_err(|e| format!("{}: {e}", next.display()))?;
        fs::rename(&next, &binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    }
    Ok(rpm)
}

/// Where [`kept_rpm`] keeps a copy of the previous release's binary.
fn previous_rpm_binary(releases: &Path, version: &str) -> PathBuf {
    releases.join(format!("{}-{version}.bin", system::PACKAGE))
}

/// Makes `version` the installed release: `dpkg -i` or `rpm -U` of its
/// package (`older`: going back), or `current` switched to its release
/// directory (its unit installed, systemd's units reloaded).
fn install_release(
    layout: Layout,
    package: &Path,
    version: &str,
    older: bool,
) -> Result<(), String> {
    match layout {
        Layout::Package => system::install_package(package),
        // A rerun after rpm finished: installing it again would fail.
        Layout::Rpm
            if system::installed_rpm_version()
                .is_some_and(|v| v.starts_with(&format!("{version}-"))) =>
        {
            Ok(())
        }
        Layout::Rpm => {
            if let Some(listed) = system::installed_rpm_version().filter(|v| v.contains(", ")) {
                return Err(format!(
                    "rpm lists mogothrow77 {listed}: an interrupted rpm -U left both \
                     (/usr/share/doc/mogothrow77/upgrade.md.gz, section rpm-lists-two-versions)"
                ));
            }
            system::install_rpm(package, older)?;
            system::daemon_reload()
        }
        Layout::Plain => {
            let plain = Plain::host();
            plain.switch_to(version)?;
            plain.install_unit(Path::new(layout::PLAIN_UNIT))?;
            // Always: a run killed after writing the unit and before the
            // reload finds the text unchanged when it runs again.
            system::daemon_reload()
        }
    }
}

/// The schema level a server binary reports (`mogothrow77 version`).
fn schema_level(binary: &Path) -> Option<u32> {
    let out = system::run(std::process::Command::new(binary).arg("version")).ok()?;
    out.rsplit("schema level ")
        .next()?
        .trim_end_matches([')', '\n', ' '])
        .parse()
        .ok()
}

/// Brings the journal's previous release back, or says why it cannot.
fn recover(
    report: &Report,
    work: &WorkDir,
    settings: &Settings,
    opts: &Options,
    journal: &mut Journal,
    reason: &str,
) -> Exit {
    report.line(&format!("rolling back to {}: {reason}", journal.from));
    let config = &opts.config;
    let needs_admin = |journal: &mut Journal, section: &str, text: String| {
        let backup = journal
            .backup
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none was taken".to_string());
        let message = format!(
            "{text}. The database backup from before the upgrade: {backup}. \
             See /usr/share/doc/mogothrow77/upgrade.md.gz, section {section}"
        );
        report.line(&format!("STOPPED  {message}"));
        journal.outcome = Outcome::NeedsAdmin;
        journal.message = Some(message);
        let _ = work.save(journal);
        Exit::NeedsAdmin
    };
    // A release that was verified healthy keeps serving until the previous
    // one is known to fit the schema; otherwise the service is stopped now
    // (it may be failing and restarting).
    if !journal.done(Step::Health) {
        let _ = system::stop_service();
    }
    let layout = journal.layout;
    // An `rpm -U` killed midway leaves both versions in rpm's database,
    // and which files are on disk is not knowable from here.
    if layout == Layout::Rpm {
        if let Some(listed) = system::installed_rpm_version().filter(|v| v.contains(", ")) {
            let serving = journal.done(Step::Health).then_some(journal.outcome);
            let exit = needs_admin(
                journal,
                "rpm-lists-two-versions",
                format!("rpm lists mogothrow77 {listed}: an interrupted rpm -U left both"),
            );
            if let Some(outcome) = serving {
                journal.outcome = outcome;
                let _ = work.save(journal);
                report.line(&format!("nothing was changed: {} still serves", journal.to));
            }
            return exit;
        }
    }
    // Which binary is the previous release: the installed one, or the one
    // in the kept package (unpacked to ask it before anything changes), or
    // in its release directory (plain layout).
    let previous_installed = match layout {
        Layout::Package => system::installed_package_version()
            .unwrap_or_default()
            .starts_with(&format!("{}-", journal.from)),
        Layout::Rpm => system::installed_rpm_version()
            .unwrap_or_default()
            .starts_with(&format!("{}-", journal.from)),
        Layout::Plain => Plain::host().current().as_deref() == Some(journal.from.as_str()),
    };
    let previous_binary = if previous_installed {
        layout.binary()
    } else if layout == Layout::Rpm {
        let binary = previous_rpm_binary(&work.releases(), &journal.from);
        if !binary.is_file() || journal.previous_package.is_none() {
            return needs_admin(
                journal,
                "the-previous-release-cannot-be-restored",
                format!("the journal keeps no .rpm of {}", journal.from),
            );
        }
        binary
    } else if layout == Layout::Plain {
        let binary = Plain::host()
            .release_dir(&journal.from)
            .join("bin/mogothrow77");
        if !binary.is_file() {
            return needs_admin(
                journal,
                "the-previous-release-cannot-be-restored",
                format!("{} is gone", binary.display()),
            );
        }
        binary
    } else {
        let Some(previous) = journal.previous_package.clone() else {
            return needs_admin(
                journal,
                "the-previous-release-cannot-be-restored",
                format!("the journal keeps no package of {}", journal.from),
            );
        };
        match system::unpack_package(&previous, &work.root.join("staging/previous")) {
            Ok(binary) => binary,
            Err(e) => {
                return needs_admin(
                    journal,
                    "the-previous-release-cannot-be-restored",
                    format!("the kept package of {} is unusable: {e}", journal.from),
                )
            }
        }
    };
    // The previous release must be able to run on the schema as it is now
    // (the rollback window: only expand migrations since it).
    let fit = system::schema_fit(&previous_binary, config);
    let restore = fit == SchemaFit::TooNew && opts.restore_backup;
    if opts.restore_backup && !restore {
        report.line(&format!(
            "the backup is not needed: {} can run on the database as it is",
            journal.from
        ));
    }
    let unfit = match fit {
        SchemaFit::Runs | SchemaFit::Pending(_) => None,
        SchemaFit::TooNew if restore => None,
        SchemaFit::TooNew => Some((
            "the-schema-is-past-the-rollback-window",
            format!(
                "{} cannot run on the database: {} applied a contract migration, so going \
                 back needs the backup restored",
                journal.from, journal.to
            ),
        )),
        SchemaFit::Unknown(e) => Some((
            "the-previous-release-does-not-start",
            format!("{} cannot check the database: {e}", journal.from),
        )),
    };
    if let Some((section, text)) = unfit {
        let serving = journal.done(Step::Health).then_some(journal.outcome);
        let exit = needs_admin(journal, section, text);
        if let Some(outcome) = serving {
            // Nothing was touched: the upgraded release still serves.
            journal.outcome = outcome;
            let _ = work.save(journal);
            report.line(&format!("nothing was changed: {} still serves", journal.to));
        }
        return exit;
    }
    let _ = system::stop_service();
    if restore {
        let Some(backup) = journal.backup.clone() else {
            return needs_admin(
                journal,
                "restoring-the-backup-failed",
                "the journal names no backup".to_string(),
            );
        };
        // The binary installed now restores: restoring does not depend on
        // the schema, and it is the release that knows this state_dir.
        let restored = system::server(
            &layout.binary(),
            config,
            &["restore", "--from", &backup.display().to_string()],
        );
        if let Err(e) = restored {
            return needs_admin(
                journal,
                "restoring-the-backup-failed",
                format!("restoring {} failed: {e}", backup.display()),
            );
        }
        report.line(&format!(
            "restored the backup {} taken before the upgrade; changes made since are gone",
            backup.display()
        ));
    }
    // The plain layout's switch is repeated even when `current` points back
    // already: a rollback killed before it installed the unit left the
    // newer release's.
    if !previous_installed || layout == Layout::Plain {
        let previous = journal.previous_package.clone().unwrap_or_default();
        if let Err(e) = install_release(layout, &previous, &journal.from, true) {
            return needs_admin(
                journal,
                "the-previous-release-cannot-be-restored",
                format!("reinstalling {} failed: {e}", previous.display()),
            );
        }
    }
    if let Err(e) = system::start_service() {
        return needs_admin(
            journal,
            "the-previous-release-does-not-start",
            format!("{} does not start: {e}", journal.from),
        );
    }
    match crate::probe::wait_ready(settings.probe_addr, &settings.cert_file, READY_LIMIT) {
        Ok(ready) if ready.version == journal.from => {}
        Ok(ready) => {
            return needs_admin(
                journal,
                "the-previous-release-does-not-start",
                format!("/readyz reports {}, not {}", ready.version, journal.from),
            )
        }
        Err(e) => {
            return needs_admin(
                journal,
                "the-previous-release-does-not-start",
                format!("{} is not ready: {e}", journal.from),
            )
        }
    }
    let with_backup = if restore {
        " with the backup restored"
    } else {
        ""
    };
    journal.outcome = Outcome::RolledBack;
    journal.message = Some(format!(
        "rolled back to {}{with_backup}: {reason}",
        journal.from
    ));
    let _ = work.save(journal);
    remove_staging(work, report);
    report.line(&format!(
        "ROLLED BACK  {} runs again{with_backup} and is ready ({reason})",
        journal.from
    ));
    Exit::Failed
}

/// Once an upgrade or rollback is finished the unpacked bundle and
/// release in `staging/` are not needed again: a rollback uses the kept
/// packages in `releases/` and the backup (docs/upgrade.md#what-the-tool-keeps).
fn remove_staging(work: &WorkDir, report: &Report) {
    let staging = work.root.join("staging");
    if staging.exists() {
        if let Err(e) = fs::remove_dir_all(&staging) {
            report.line(&format!(
                "note     the unpacked bundle was not removed: {}: {e}",
                staging.display()
            ));
        }
    }
}

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
