//! `mogothrow77-upgrade`: upgrades an installation from a signed offline
//! bundle. This release has `check`, which verifies the bundle and prints
//! the upgrade plan and every reason it would be refused, changing nothing.
//!
//! Exit codes (docs/upgrade.md): 0 the upgrade is possible, 2 usage,
//! 10 refused before changing anything.

mod check;
mod host;

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
        /// The offline bundle (mogothrow77-<version>-offline.zip).
        bundle: PathBuf,
        /// Trusted minisign public key(s) of the vendor.
        #[arg(long = "public-key", value_name = "FILE", default_value = check::DEFAULT_PUBLIC_KEY)]
        public_keys: Vec<PathBuf>,
        /// The installed server binary, asked for its version.
        #[arg(long, value_name = "PATH", default_value = "/usr/bin/mogothrow77")]
        installed: PathBuf,
        /// Where the host's OS is described.
        #[arg(long, value_name = "PATH", default_value = "/etc/os-release")]
        os_release: PathBuf,
    },
}

/// Exit codes shared with the installer (product contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Done = 0,
    Usage = 2,
    Refused = 10,
}

fn main() -> ExitCode {
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
        Command::Check {
            bundle,
            public_keys,
            installed,
            os_release,
        } => check::run(&check::Inputs {
            bundle,
            public_keys,
            installed,
            os_release,
        }),
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
