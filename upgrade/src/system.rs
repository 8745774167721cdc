//! The host's side of an upgrade: the systemd service, the package manager
//! and the server binary's own commands. Every call is a real program with
//! its exit status and output checked.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use contracts::exit::ServerExit;

pub const SERVICE: &str = "mogothrow77.service";
pub const PACKAGE: &str = "mogothrow77";

fn describe(program: &str, out: &Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if text.is_empty() {
        text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    // Long outputs: the tail holds the reason.
    let tail: Vec<&str> = text.lines().rev().take(6).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!("{program} failed ({}): {}", out.status, tail.join(" | "))
}

/// Runs a program; `Ok(stdout)` on success.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let program = format!("{:?}", cmd.get_program());
    let program = program.trim_matches('"').to_string();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(describe(&program, &out))
    }
}

pub fn stop_service() -> Result<(), String> {
    run(Command::new("systemctl").args(["stop", SERVICE])).map(drop)
}

/// Starts the service; `systemctl start` of a `Type=notify` unit returns
/// once the server has reported READY=1 (or failed).
pub fn start_service() -> Result<(), String> {
    run(Command::new("systemctl").args(["start", SERVICE]))
        .map(drop)
        .map_err(|e| {
            let journal = Command::new("journalctl")
                .args(["-u", SERVICE, "-n", "5", "--no-pager", "-o", "cat"])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .replace('\n', " | ")
                })
                .unwrap_or_default();
            format!("{e}; the service's last log lines: {journal}")
        })
}

/// Restarts the service (e.g. after its configuration changed); returns
/// once the new process reported READY=1 (or failed).
pub fn restart_service() -> Result<(), String> {
    run(Command::new("systemctl").args(["restart", SERVICE])).map(drop)
}

/// Has systemd read its unit files again (after a unit changed).
pub fn daemon_reload() -> Result<(), String> {
    run(Command::new("systemctl").arg("daemon-reload")).map(drop)
}

pub fn service_active() -> bool {
    Command::new("systemctl")
        .args(["is-active", "--quiet", SERVICE])
        .status()
        .is_ok_and(|s| s.success())
}

/// The installed package's version (`0.1.0-1`), if dpkg has it installed
/// (not only its configuration files left after a removal).
pub fn installed_package_version() -> Option<String> {
    let out =
        run(Command::new("dpkg-query").args(["-W", "-f", "${Status}|${Version}", PACKAGE])).ok()?;
    let (status, version) = out.split_once('|')?;
    (status.ends_with(" installed") && !version.is_empty()).then(|| version.to_string())
}

/// The installed .rpm's version (`0.1.0-1`), if rpm knows the package
/// (two, comma-separated, when an interrupted `rpm -U` left both).
pub fn installed_rpm_version() -> Option<String> {
    let out =
        run(Command::new("rpm").args(["-q", "--qf", "%{VERSION}-%{RELEASE}\n", PACKAGE])).ok()?;
    let versions: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (!versions.is_empty()).then(|| versions.join(", "))
}

/// An .rpm file's package name and version (`mogothrow77`, `0.1.0`).
pub fn rpm_file_version(rpm: &Path) -> Result<(String, String), String> {
    let out = run(Command::new("rpm")
        .args(["-qp", "--qf", "%{NAME} %{VERSION}"])
        .arg(rpm))?;
    out.split_once(' ')
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .ok_or_else(|| format!("rpm -qp {} printed {out:?}", rpm.display()))
}

/// Installs or upgrades to an .rpm (`rpm -U`; `--oldpackage` to go back
/// to an older release) without letting its scriptlets restart the
/// service. A changed configuration file is kept (`%config(noreplace)`).
pub fn install_rpm(rpm: &Path, older: bool) -> Result<(), String> {
    let mut cmd = Command::new("rpm");
    cmd.arg("-U");
    if older {
        cmd.arg("--oldpackage");
    }
    run(cmd.arg(rpm).env("MOGOTHROW77_NO_START", "1")).map(drop)
}

/// Installs a package without letting its maintainer scripts start or
/// restart the service: the upgrade tool starts it itself. A configuration
/// file the admin changed is kept, never asked about (no one is there to
/// answer a dpkg prompt).
pub fn install_package(deb: &Path) -> Result<(), String> {
    run(Command::new("dpkg")
        .args(["--force-confdef", "--force-confold", "-i"])
        .arg(deb)
        .env("MOGOTHROW77_NO_START", "1")
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .map(drop)
}

/// Unpacks a package's files into `dest` (to run its binary before it is
/// installed).
pub fn unpack_package(deb: &Path, dest: &Path) -> Result<PathBuf, String> {
    if dest.exists() {
        fs::remove_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    // dpkg-deb makes `dest` but not its parents (the staging directory
    // goes once an upgrade has finished).
    fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dest))?;
    let binary = dest.join("usr/bin/mogothrow77");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!("{} holds no usr/bin/mogothrow77", deb.display()))
    }
}

/// Builds a package from what dpkg has installed (files, control data,
/// conffiles and maintainer scripts), so a release installed by hand can
/// be rolled back to. The configuration files go in as they are now.
pub fn repack_installed(out_dir: &Path, scratch: &Path) -> Result<PathBuf, String> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| format!("{p}: {e}")
    };
    if scratch.exists() {
        fs::remove_dir_all(scratch).map_err(io(scratch))?;
    }
    let control_dir = scratch.join("DEBIAN");
    fs::create_dir_all(&control_dir).map_err(io(&control_dir))?;
    let listed = run(Command::new("dpkg-query").args(["-L", PACKAGE]))?;
    for line in listed.lines() {
        let path = Path::new(line.trim());
        if !path.is_absolute() || line.trim() == "/." {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(path) else {
            continue;
        };
        let dest = scratch.join(path.strip_prefix("/").unwrap_or(path));
        if meta.is_dir() {
            fs::create_dir_all(&dest).map_err(io(&dest))?;
        } else if meta.is_file() {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io(parent))?;
            }
            fs::copy(path, &dest).map_err(io(path))?;
        } else if meta.file_type().is_symlink() {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let target = fs::read_link(path).map_err(io(path))?;
            std::os::unix::fs::symlink(target, &dest).map_err(io(&dest))?;
        }
    }
    let status = run(Command::new("dpkg-query").args(["-s", PACKAGE]))?;
    let control: String = status
        .lines()
        .filter(|l| !l.starts_with("Status:"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(control_dir.join("control"), control).map_err(io(&control_dir))?;
    // dpkg's own list of the package's control files (not its database
    // layout, which is dpkg's business).
    let control_files = run(Command::new("dpkg-query").args(["--control-path", PACKAGE]))?;
    for (name, mode) in [
        ("conffiles", 0o644),
        ("md5sums", 0o644),
        ("preinst", 0o755),
        ("postinst", 0o755),
        ("prerm", 0o755),
        ("postrm", 0o755),
    ] {
        let suffix = format!(".{name}");
        let found = control_files
            .lines()
            .map(|l| Path::new(l.trim()))
            .find(|p| p.to_string_lossy().ends_with(&suffix));
        if let Some(source) = found.filter(|p| p.is_file()) {
            let dest = control_dir.join(name);
            fs::copy(source, &dest).map_err(io(source))?;
            fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(io(&dest))?;
        }
    }
    fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let version = installed_package_version().unwrap_or_else(|| "unknown".to_string());
    let deb = out_dir.join(format!("{PACKAGE}_{version}_amd64.deb"));
    // Kept on this host for a rollback only: gzip at its fastest level
    // packs the release in about a second where dpkg-deb's default (xz)
    // takes tens of seconds, at some more disk (counted by preflight).
    // Every dpkg since Debian 11 reads it.
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "-z1", "--build"])
        .arg(scratch)
        .arg(&deb))?;
    fs::remove_dir_all(scratch).map_err(io(scratch))?;
    Ok(deb)
}

/// Free bytes on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Result<u64, String> {
    let out = run(Command::new("df").args(["--output=avail", "-B1"]).arg(path))?;
    out.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("df printed {out:?} for {}", path.display()))
}

/// Bytes under `path` (0 when it does not exist).
pub fn used_bytes(path: &Path) -> u64 {
    if !path.exists() {
        return 0;
    }
    run(Command::new("du").args(["-s", "-B1"]).arg(path))
        .ok()
        .and_then(|o| o.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// A server binary's answer to `migrate --check` on the live database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaFit {
    /// It can run on the schema as it is (exit 0).
    Runs,
    /// It would apply these migrations first (exit 1), each as
    /// `V<n>__<name> (<kind>)`.
    Pending(Vec<String>),
    /// The schema holds a contract migration it does not know (exit 3).
    TooNew,
    /// Something else went wrong (e.g. the database is unreachable).
    Unknown(String),
}

pub fn schema_fit(binary: &Path, config: &Path) -> SchemaFit {
    let out = Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(["migrate", "--check"])
        .output();
    match out {
        Ok(o) => match o.status.code().and_then(ServerExit::from_code) {
            Some(ServerExit::Ok) => SchemaFit::Runs,
            // `migrate --check`: 1 means migrations are pending.
            Some(ServerExit::Failure) => SchemaFit::Pending(
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| l.starts_with("  V"))
                    .map(|l| l.trim().to_string())
                    .collect(),
            ),
            Some(ServerExit::SchemaIncompatible) => SchemaFit::TooNew,
            _ => SchemaFit::Unknown(describe(&binary.display().to_string(), &o)),
        },
        Err(e) => SchemaFit::Unknown(format!("cannot run {}: {e}", binary.display())),
    }
}

/// Runs one of the server binary's admin commands with the configuration;
/// `Ok` carries what it printed for people, without its JSON log lines
/// (e.g. those of a managed cluster it started for the command).
pub fn server(binary: &Path, config: &Path, args: &[&str]) -> Result<String, String> {
    run(Command::new(binary).arg("--config").arg(config).args(args)).map(|out| {
        out.lines()
            .filter(|l| !l.starts_with('{'))
            .collect::<Vec<_>>()
            .join("\n")
    })
}
