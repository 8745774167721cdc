//! Build and release automation: `cargo xtask <command>`.
//!
//! - `man DIR`: the `mogothrow77(1)` man page, generated from the CLI.
//! - `deb --binary BIN --out DIR`: the Debian package, built with
//!   `dpkg-deb` from `appliance/packaging/`, reproducibly (file times from
//!   `SOURCE_DATE_EPOCH`, or the commit time; root-owned entries).
//! - `rpm --binary BIN --out DIR`: the RPM package (same payload), built
//!   with `rpmbuild`, reproducibly.
//! - `bundle --deb DEB [--debian-packages DIR] --key KEY --out DIR`: the
//!   signed offline bundle (see `offline-bundle/`).
//! - `oci --binary BIN --out DIR [--deb-cache DIR]`: the OCI image archive
//!   (an OCI image layout in one tar), assembled without a container engine.
//! - `verify-bundle BUNDLE --public-key PUB [--dest DIR]`: check (and unpack)
//!   a bundle with the reader the installer uses.

mod bundle;
mod deb;
mod oci;
mod paths;
mod reproducible;
mod rpm;

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
    /// Build the signed offline bundle.
    Bundle {
        /// The appliance's .deb.
        #[arg(long)]
        deb: PathBuf,
        /// The appliance's .rpm.
        #[arg(long)]
        rpm: Option<PathBuf>,
        /// The OCI image archive.
        #[arg(long)]
        oci: Option<PathBuf>,
        /// The Debian packages the image's layer was made from (listed in the SBOM).
        #[arg(long)]
        oci_debs: Option<PathBuf>,
        /// Directory of Debian 12 packages to include (PostgreSQL and what it
        /// needs on a minimal host).
        #[arg(long)]
        debian_packages: Option<PathBuf>,
        /// minisign secret key file (unencrypted; from the release secret
        /// store, never from git).
        #[arg(long, env = "MOGOTHROW77_SIGNING_KEY_FILE")]
        key: PathBuf,
        /// Directory for the bundle.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a bundle against a minisign public key; unpack it with --dest.
    VerifyBundle {
        bundle: PathBuf,
        #[arg(long)]
        public_key: PathBuf,
        #[arg(long)]
        dest: Option<PathBuf>,
    },
    /// Build the .rpm from a release binary.
    Rpm {
        /// The release binary to package.
        #[arg(long)]
        binary: PathBuf,
        /// Directory for the .rpm.
        #[arg(long)]
        out: PathBuf,
    },
    /// Build the .deb from a release binary.
    Deb {
        /// The release binary to package.
        #[arg(long)]
        binary: PathBuf,
        /// Directory for the .deb.
        #[arg(long)]
        out: PathBuf,
    },
    /// Build the OCI image archive from a release binary.
    Oci {
        /// The release binary to package (the glibc 2.28 portable build).
        #[arg(long)]
        binary: PathBuf,
        /// Directory for the archive.
        #[arg(long)]
        out: PathBuf,
        /// Where the Debian packages for the layer are kept (default
        /// target/oci-debs); downloaded with apt-get when missing.
        #[arg(long)]
        deb_cache: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Man { dir } => deb::write_man_page(&dir).map(|p| println!("{}", p.display())),
        Command::Rpm { binary, out } => {
            rpm::build(&binary, &out).map(|p| println!("{}", p.display()))
        }
        Command::Deb { binary, out } => {
            deb::build(&binary, &out).map(|p| println!("{}", p.display()))
        }
        Command::Oci {
            binary,
            out,
            deb_cache,
        } => oci::build(&binary, &out, deb_cache.as_deref()).map(|p| println!("{}", p.display())),
        Command::Bundle {
            deb,
            rpm,
            oci,
            oci_debs,
            debian_packages,
            key,
            out,
        } => bundle::build(bundle::BundleArgs {
            deb: &deb,
            rpm: rpm.as_deref(),
            oci: oci.as_deref(),
            oci_debs: oci_debs.as_deref(),
            debian_packages: debian_packages.as_deref(),
            key: &key,
            out: &out,
        })
        .map(|p| println!("{}", p.display())),
        Command::VerifyBundle {
            bundle,
            public_key,
            dest,
        } => bundle::verify(&bundle, &public_key, dest.as_deref()).map(|s| println!("{s}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cargo xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
