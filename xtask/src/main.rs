//! Build and release automation: `cargo xtask <command>`.
//!
//! - `man DIR`: the `mogothrow77(1)` man page, generated from the CLI.
//! - `compat-matrix`: regenerate `compat-matrix.md` from `compat.toml` and
//!   the migrations' kinds (refused while they disagree).
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

mod architecture;
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
        /// The compatibility data to ship [default: the workspace's
        /// compat.toml]; upgrade-test fixture bundles name their own.
        #[arg(long)]
        compat: Option<PathBuf>,
        /// The release notes to ship [default: the workspace's
        /// CHANGELOG.md]; upgrade-test fixture bundles name their own.
        #[arg(long)]
        changelog: Option<PathBuf>,
        /// The installer binary (`mogothrow77-install`), shipped at the
        /// bundle's top level and beside it in --out with its own
        /// signature (`mogothrow77-install.minisig`).
        #[arg(long)]
        installer: Option<PathBuf>,
    },
    /// Verify a bundle against a minisign public key; unpack it with --dest.
    VerifyBundle {
        bundle: PathBuf,
        #[arg(long)]
        public_key: PathBuf,
        #[arg(long)]
        dest: Option<PathBuf>,
    },
    /// Check the server's layering (no upward import, no import cycle) and
    /// the source files' length (docs/ARCHITECTURE.md); print the layers.
    Architecture,
    /// Regenerate compat-matrix.md from compat.toml and the migrations
    /// (after checking they agree).
    CompatMatrix,
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

fn compat_matrix() -> reproducible::Result<PathBuf> {
    let root = paths::workspace();
    let data = compat::CompatData::load(&root.join("compat.toml")).map_err(|e| e.to_string())?;
    let migrations =
        compat::Migrations::load(&root.join("migrations")).map_err(|e| e.to_string())?;
    let current = compat::Version::parse(env!("CARGO_PKG_VERSION"))
        .ok_or("the workspace version is not MAJOR.MINOR.PATCH")?;
    let problems = compat::check(&data, &migrations, current);
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        return Err(format!(
            "compat.toml disagrees with the migrations:\n{}",
            lines.join("\n")
        ));
    }
    let out = root.join("compat-matrix.md");
    std::fs::write(&out, compat::render_matrix(&data, &migrations)).map_err(paths::io(&out))?;
    Ok(out)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Man { dir } => deb::write_man_page(&dir).map(|p| println!("{}", p.display())),
        Command::CompatMatrix => compat_matrix().map(|p| println!("{}", p.display())),
        Command::Architecture => architecture::check(),
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
            compat,
            changelog,
            installer,
        } => bundle::build(bundle::BundleArgs {
            deb: &deb,
            rpm: rpm.as_deref(),
            oci: oci.as_deref(),
            oci_debs: oci_debs.as_deref(),
            debian_packages: debian_packages.as_deref(),
            key: &key,
            out: &out,
            compat: compat.as_deref(),
            changelog: changelog.as_deref(),
            installer: installer.as_deref(),
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
