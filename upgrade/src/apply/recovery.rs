//! Bringing the previous release back after a failure or on `rollback`,
//! within the rollback window or with the backup restored; and tidying
//! `staging/` once an upgrade or rollback has finished.

use std::fs;

use super::{layouts, Options, Report, READY_LIMIT};
use crate::journal::{Journal, Outcome, Step, WorkDir};
use crate::settings::Settings;
use crate::system::{self, SchemaFit};
use crate::Exit;

/// Brings the journal's previous release back, or says why it cannot.
pub(super) fn recover(
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
    let install = layouts::of(layout);
    // A state only an admin can repair (an `rpm -U` killed midway).
    if let Some(listed) = install.interrupted() {
        let serving = journal.done(Step::Health).then_some(journal.outcome);
        let exit = needs_admin(journal, "rpm-lists-two-versions", listed);
        if let Some(outcome) = serving {
            journal.outcome = outcome;
            let _ = work.save(journal);
            report.line(&format!("nothing was changed: {} still serves", journal.to));
        }
        return exit;
    }
    // Which binary is the previous release: the installed one, or the one
    // in the kept package (unpacked to ask it before anything changes), or
    // in its release directory (plain layout).
    let previous_installed = install.is_installed(&journal.from);
    let previous_binary = if previous_installed {
        layout.binary()
    } else {
        match install.previous_binary(work, journal) {
            Ok(binary) => binary,
            Err(e) => return needs_admin(journal, "the-previous-release-cannot-be-restored", e),
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
        let from = backup.display().to_string();
        let identity = opts.identity.as_ref().map(|p| p.display().to_string());
        let mut args = vec!["restore", "--from", &from];
        if let Some(key) = &identity {
            args.extend(["--identity", key]);
        }
        let restored = system::server(&layout.binary(), config, &args);
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
    if !previous_installed || install.reinstalls_always() {
        let previous = journal.previous_package.clone().unwrap_or_default();
        if let Err(e) = install.install(&previous, &journal.from, true) {
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
pub(super) fn remove_staging(work: &WorkDir, report: &Report) {
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
