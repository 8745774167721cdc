//! The steps between verifying and starting: compatibility, preflight,
//! backup (with the previous release's package kept), swap and health.

use std::fs;
use std::path::Path;

use compat::Version;

use super::{Failure, Run, StepResult, READY_LIMIT};
use crate::journal::{self, Journal};
use crate::release;
use crate::system::{self, SchemaFit};
use crate::{check, host};

impl Run<'_> {
    pub(super) fn compatibility(
        &self,
        release: &release::Release,
        journal: &mut Journal,
    ) -> StepResult {
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

    pub(super) fn preflight(&self, journal: &Journal) -> StepResult {
        let state = &self.settings.state_dir;
        let package = journal
            .package
            .as_ref()
            .map_or(0, |kept| self.install().staged_bytes(kept));
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
        // Checked before the backup is taken: without it there is no way
        // back.
        self.install()
            .way_back(&self.work, &journal.from)
            .map_err(Failure::Refuse)?;
        Ok(format!(
            "{} MiB free for the backup, {} MiB for the release; no other upgrade runs",
            free_state >> 20,
            free_root >> 20
        ))
    }

    pub(super) fn backup(&self, journal: &mut Journal) -> StepResult {
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

        let previous = self
            .install()
            .keep_previous(&self.work, &journal.from)
            .map_err(fail)?;
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

    pub(super) fn swap(&self, journal: &Journal) -> StepResult {
        let package = journal
            .package
            .as_ref()
            .ok_or_else(|| Failure::Fail("the journal names no package".to_string()))?;
        let install = self.install();
        install
            .install(package, &journal.to, false)
            .map_err(Failure::Fail)?;
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
        Ok(install.installed(package, &journal.to))
    }

    pub(super) fn health(&self, journal: &mut Journal) -> StepResult {
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
        let smoke = self.smoke()?;
        journal.downtime_seconds = journal.stopped_at.map(|t| journal::now() - t);
        Ok(format!(
            "READY; /readyz: version {}, schema level {}; {smoke}",
            ready.version, ready.schema_level
        ))
    }

    /// `mogothrow77 smoke` against this host with the new binary, when
    /// `upgrade.smoke_token_file` is set; a failure fails the health step
    /// (and so the upgrade rolls back).
    fn smoke(&self) -> Result<String, Failure> {
        let Some(token) = &self.settings.smoke_token_file else {
            return Ok("smoke check skipped (upgrade.smoke_token_file is not set)".to_string());
        };
        let path = |p: &Path| {
            p.to_str()
                .map(str::to_string)
                .ok_or_else(|| Failure::Fail(format!("{} is not UTF-8", p.display())))
        };
        let url = format!("https://{}", self.settings.probe_addr);
        let (token, cert) = (path(token)?, path(&self.settings.cert_file)?);
        system::server(
            &self.layout.binary(),
            &self.opts.config,
            &[
                "smoke",
                "--url",
                &url,
                "--token-file",
                &token,
                "--pin-cert",
                &cert,
            ],
        )
        .map_err(|e| Failure::Fail(format!("the smoke check failed: {e}")))?;
        Ok("smoke check passed".to_string())
    }
}
