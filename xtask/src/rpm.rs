//! The RPM package: the same staged payload as the .deb, built with
//! `rpmbuild` from `appliance/packaging/rpm/mogothrow77.spec`, reproducibly
//! (SOURCE_DATE_EPOCH as build time and file-time clamp, fixed build host).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::deb::{glibc_requirement, set_dir_modes, stage_payload};
use crate::paths::{io, packaging};
use crate::reproducible::{clamp_mtimes, run, source_date_epoch, Result};

/// Builds `mogothrow77-<version>-1.x86_64.rpm` in `out`, the version
/// being the one the binary reports (as for the .deb).
pub fn build(binary: &Path, out: &Path) -> Result<PathBuf> {
    let version = &crate::deb::binary_version(binary)?;
    let epoch = source_date_epoch()?;
    // rpmbuild runs its scriptlets elsewhere: every path it gets is absolute.
    let out = &fs::canonicalize(out).map_err(io(out))?;
    let top = out.join("rpmbuild");
    if top.exists() {
        fs::remove_dir_all(&top).map_err(io(&top))?;
    }
    let stage = top.join("stage");
    fs::create_dir_all(&stage).map_err(io(&stage))?;
    stage_payload(&stage, binary)?;
    set_dir_modes(&stage)?;
    clamp_mtimes(&stage, epoch)?;
    let glibc = glibc_requirement(binary)?;
    let spec = packaging().join("rpm/mogothrow77.spec");
    let define = |key: &str, value: &str| format!("{key} {value}");
    let mut cmd = Command::new("rpmbuild");
    cmd.arg("-bb")
        .arg("--quiet")
        .args(["--define", &define("_topdir", &top.display().to_string())])
        .args(["--define", &define("version", version)])
        .args(["--define", &define("stage", &stage.display().to_string())])
        .args(["--define", &define("glibc", &glibc)])
        .args(["--define", "_buildhost reproducible"])
        .args(["--define", "use_source_date_epoch_as_buildtime 1"])
        .args(["--define", "clamp_mtime_to_source_date_epoch 1"])
        .args(["--define", "_binary_payload w9.xzdio"])
        .arg(&spec)
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        // Standard output carries only the package path.
        .stdout(std::process::Stdio::from(std::io::stderr()));
    run(&mut cmd)?;
    let name = format!("mogothrow77-{version}-1.x86_64.rpm");
    let built = top.join("RPMS/x86_64").join(&name);
    let dest = out.join(&name);
    fs::rename(&built, &dest).map_err(io(&built))?;
    fs::remove_dir_all(&top).map_err(io(&top))?;
    Ok(dest)
}
