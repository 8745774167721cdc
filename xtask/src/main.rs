//! Build and release automation: `cargo xtask <command>`.
//!
//! - `man DIR`: the `mogothrow77(1)` man page, generated from the CLI.
//! - `deb --binary BIN --out DIR`: the Debian package, built with
//!   `dpkg-deb` from `appliance/packaging/`, reproducibly (file times from
//!   `SOURCE_DATE_EPOCH`, or the commit time; root-owned entries).

mod deb;
mod reproducible;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the mogothrow77(1) man page into DIR.
    Man { dir: PathBuf },
    /// Build the .deb from a release binary.
    Deb {
        /// The release binary to package.
        #[arg(long)]
        binary: PathBuf,
        /// Directory for the .deb.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Man { dir } => deb::write_man_page(&dir).map(|p| println!("{}", p.display())),
        Command::Deb { binary, out } => {
            deb::build(&binary, &out).map(|p| println!("{}", p.display()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cargo xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
