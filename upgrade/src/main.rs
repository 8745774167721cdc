//! `mogothrow77-upgrade`: upgrades a package installation from a signed
//! offline bundle. `check` prints the plan and every blocking reason and
//! changes nothing; `rehearse` runs the new migrations on a copy of the
//! database; `apply` upgrades as a journaled state machine
//! (src/apply.rs); `rollback` returns to the previous release; `status`
//! shows the journal.
//!
//! Exit codes (docs/upgrade.md): 0 done, 1 failed and rolled back, 2 usage,
//! 10 refused before changing anything, 11 stopped and needs an admin.

use mogothrow77_upgrade::{apply, check, faults, journal, rehearse, Exit};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mogothrow77-upgrade",
    version,
    about = "Mogothrow77 upgrade tool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify BUNDLE and print the upgrade plan and every blocking reason;
    /// changes nothing.
    Check {
        #[command(flatten)]
        target: Target,
    },
    /// Run BUNDLE's migrations on a copy of the live database and report
    /// each one's duration and the table locks it takes; the copy is
    /// dropped and the live database only read. Exit 1 when a migration
    /// fails on the copy.
    Rehearse {
        #[command(flatten)]
        target: Target,
        /// Print the report as JSON on standard output (progress goes to
        /// standard error).
        #[arg(long)]
        json: bool,
    },
    /// Upgrade to BUNDLE's release: verify, check compatibility, preflight,
    /// back up, stop, migrate, swap the package, start, verify health.
    /// Journaled: after a crash, rerun `apply` to finish or `rollback`.
    Apply {
        /// The offline bundle (mogothrow77-<version>-offline.zip).
        bundle: PathBuf,
        /// Trusted minisign public key(s) of the vendor.
        #[arg(long = "public-key", value_name = "FILE", default_value = check::DEFAULT_PUBLIC_KEY)]
        public_keys: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        /// Where the host's OS is described.
        #[arg(long, value_name = "PATH", default_value = "/etc/os-release")]
        os_release: PathBuf,
    },
    /// Return to the release before the journal's upgrade (binary rollback;
    /// refused with the backup named when the schema moved past it).
    Rollback {
        #[command(flatten)]
        common: Common,
        /// When the previous release cannot run on the schema (a contract
        /// migration ran), restore the database backup the upgrade took —
        /// every change made since is lost — instead of stopping.
        #[arg(long)]
        restore_backup: bool,
        /// The private key (`age-keygen`'s file) that opens the backup when
        /// backups are encrypted (`backup.age_recipients_file`).
        #[arg(long, value_name = "KEYFILE", requires = "restore_backup")]
        identity: Option<PathBuf>,
    },
    /// Show the journal of the last upgrade.
    Status {
        #[command(flatten)]
        common: Common,
    },
}

/// The bundle and the host `check` and `rehearse` look at.
#[derive(Debug, clap::Args)]
struct Target {
    /// The offline bundle (mogothrow77-<version>-offline.zip).
    bundle: PathBuf,
    /// Trusted minisign public key(s) of the vendor.
    #[arg(long = "public-key", value_name = "FILE", default_value = check::DEFAULT_PUBLIC_KEY)]
    public_keys: Vec<PathBuf>,
    /// The installed server binary, asked for its version [default: the
    /// installed layout's: /usr/bin/mogothrow77, or
    /// /opt/mogothrow77/current/bin/mogothrow77 in the plain layout].
    #[arg(long, value_name = "PATH")]
    installed: Option<PathBuf>,
    /// Where the host's OS is described.
    #[arg(long, value_name = "PATH", default_value = "/etc/os-release")]
    os_release: PathBuf,
    /// The appliance's configuration file (where the database is); the new
    /// release asks the database about its schema when it exists.
    #[arg(
        long,
        value_name = "FILE",
        default_value = contracts::locations::CONFIG_FILE
    )]
    config: PathBuf,
}

impl Target {
    fn inputs(self) -> check::Inputs {
        check::Inputs {
            bundle: self.bundle,
            public_keys: self.public_keys,
            installed: self
                .installed
                .unwrap_or_else(|| mogothrow77_upgrade::layout::Layout::detect().binary()),
            os_release: self.os_release,
            config: self.config,
        }
    }
}

#[derive(Debug, clap::Args)]
struct Common {
    /// The appliance's configuration file.
    #[arg(
        long,
        value_name = "FILE",
        default_value = contracts::locations::CONFIG_FILE
    )]
    config: PathBuf,
    /// The tool's journal, lock, kept packages and configuration copies.
    #[arg(long, value_name = "DIR", default_value = journal::DEFAULT_WORK_DIR)]
    work_dir: PathBuf,
    /// Print the result as JSON on standard output (progress goes to
    /// standard error).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    faults::arm();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Done
            } as u8);
        }
    };
    let exit = match cli.command {
        Command::Check { target } => check::run(&target.inputs()),
        Command::Rehearse { target, json } => rehearse::run(&target.inputs(), json),
        Command::Apply {
            bundle,
            public_keys,
            common,
            os_release,
        } => apply::apply(&apply::Options {
            bundle,
            public_keys,
            config: common.config,
            work_dir: common.work_dir,
            os_release,
            json: common.json,
            restore_backup: false,
            identity: None,
        }),
        Command::Rollback {
            common,
            restore_backup,
            identity,
        } => apply::rollback(&apply::Options {
            bundle: PathBuf::new(),
            public_keys: Vec::new(),
            config: common.config,
            work_dir: common.work_dir,
            os_release: PathBuf::from("/etc/os-release"),
            json: common.json,
            restore_backup,
            identity,
        }),
        Command::Status { common } => apply::status(&common.work_dir, common.json),
    };
    ExitCode::from(exit as u8)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
