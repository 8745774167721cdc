//! The Debian package, staged file by file and built with `dpkg-deb`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;

use crate::paths::{io, packaging, workspace};
use crate::reproducible::{clamp_mtimes, gzip, run, run_capture, source_date_epoch, Result};

const PACKAGE: &str = "mogothrow77";
/// Debian revision of the package; bump when only the packaging changes.
const REVISION: &str = "1";

/// Copies `from` to `stage/to` with `mode`, creating directories.
fn install(from: &Path, stage: &Path, to: &str, mode: u32) -> Result<()> {
    let bytes = fs::read(from).map_err(io(from))?;
    write(stage, to, &bytes, mode)
}

fn write(stage: &Path, to: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let dest = stage.join(to.trim_start_matches('/'));
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    fs::write(&dest, bytes).map_err(io(&dest))?;
    fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(io(&dest))
}

/// The man page, rendered from the CLI definition.
fn man_page() -> Result<Vec<u8>> {
    let command = mogothrow77::cli::Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut out)
        .map_err(|e| format!("cannot render the man page: {e}"))?;
    Ok(out)
}

pub fn write_man_page(dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join("mogothrow77.1");
    fs::write(&path, man_page()?).map_err(io(&path))?;
    Ok(path)
}

/// The newest glibc symbol version the binary needs, e.g. "2.34".
pub fn glibc_requirement(binary: &Path) -> Result<String> {
    let symbols = run_capture(Command::new("objdump").arg("-T").arg(binary))?;
    let mut newest: Option<(u32, u32)> = None;
    for token in symbols.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
        if let Some(version) = token.strip_prefix("GLIBC_") {
            let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            newest = newest.max(Some(v));
        }
    }
    newest
        .map(|(a, b)| format!("{a}.{b}"))
        .ok_or_else(|| format!("{} links no glibc symbols", binary.display()))
}

fn installed_size_kib(stage: &Path) -> Result<u64> {
    fn walk(p: &Path, total: &mut u64) -> Result<()> {
        for entry in fs::read_dir(p).map_err(io(p))?.flatten() {
            let meta = entry.metadata().map_err(io(&entry.path()))?;
            if meta.is_dir() {
                *total += 4096;
                walk(&entry.path(), total)?;
            } else {
                *total += meta.len().div_ceil(1024) * 1024;
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(stage, &mut total)?;
    Ok(total.div_ceil(1024))
}

fn md5sums(stage: &Path) -> Result<String> {
    let mut files = Vec::new();
    fn walk(root: &Path, p: &Path, files: &mut Vec<String>) -> Result<()> {
        for entry in fs::read_dir(p).map_err(io(p))?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, files)?;
            } else if let Ok(rel) = path.strip_prefix(root) {
                files.push(rel.display().to_string());
            }
        }
        Ok(())
    }
    walk(stage, stage, &mut files)?;
    files.sort();
    let mut out = String::new();
    for file in files {
        let sum = run_capture(Command::new("md5sum").arg(&file).current_dir(stage))?;
        out.push_str(&sum);
    }
    Ok(out)
}

/// The documents the packages (gzipped, under /usr/share/doc/mogothrow77/)
/// and the bundle (under docs/) carry: every Markdown file below `docs/`
/// (paths relative to it, sorted) — the same set the server serves as HTML
/// under `/docs/`, so whatever a message or another document points to is
/// on site.
pub fn shipped_docs() -> Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else if path.extension().is_some_and(|e| e == "md") {
                let rel = path.strip_prefix(root).map_err(|e| e.to_string())?;
                out.push(rel.to_string_lossy().to_string());
            }
        }
        Ok(())
    }
    let root = workspace().join("docs");
    let mut docs = Vec::new();
    walk(&root, &root, &mut docs)?;
    docs.sort();
    Ok(docs)
}

/// The monitoring files the packages and the bundle carry, below `monitoring/`.
pub const MONITORING_FILES: [&str; 5] = [
    "prometheus/mogothrow77.rules.yml",
    "alertmanager/alertmanager.example.yml",
    "grafana/mogothrow77-overview.json",
    "grafana/mogothrow77-jobs.json",
    "grafana/mogothrow77-database.json",
];

/// The files every package installs: the server and upgrade binaries, systemd unit, sysusers.d
/// entry, the configuration (no secrets), docs and the man page.
pub fn stage_payload(stage: &Path, binary: &Path) -> Result<()> {
    let packaging = packaging();
    install(binary, stage, "/usr/bin/mogothrow77", 0o755)?;
    // The upgrade tool is built beside the server (same cargo invocation).
    let upgrade = binary.with_file_name("mogothrow77-upgrade");
    install(&upgrade, stage, "/usr/bin/mogothrow77-upgrade", 0o755)?;
    install(
        &packaging.join("mogothrow77.service"),
        stage,
        "/usr/lib/systemd/system/mogothrow77.service",
        0o644,
    )?;
    install(
        &packaging.join("sysusers.conf"),
        stage,
        "/usr/lib/sysusers.d/mogothrow77.conf",
        0o644,
    )?;
    install(
        &packaging.join("config.toml"),
        stage,
        "/etc/mogothrow77/config.toml",
        0o644,
    )?;
    let doc = "/usr/share/doc/mogothrow77";
    // The upstream changelog, where Debian policy (12.7) puts it.
    let changelog = workspace().join("CHANGELOG.md");
    let text = fs::read(&changelog).map_err(io(&changelog))?;
    write(stage, &format!("{doc}/changelog.gz"), &gzip(&text)?, 0o644)?;
    for name in shipped_docs()? {
        let path = workspace().join("docs").join(&name);
        let text = fs::read(&path).map_err(io(&path))?;
        write(stage, &format!("{doc}/{name}.gz"), &gzip(&text)?, 0o644)?;
    }
    // Prometheus rules (with __RUNBOOK_BASE__ for the site to set), the
    // Alertmanager example and the Grafana dashboards, for the site's monitoring.
    for name in MONITORING_FILES {
        install(
            &workspace().join("monitoring").join(name),
            stage,
            &format!("/usr/share/mogothrow77/monitoring/{name}"),
            0o644,
        )?;
    }
    write(
        stage,
        "/usr/share/man/man1/mogothrow77.1.gz",
        &gzip(&man_page()?)?,
        0o644,
    )
}

/// The release the binary reports (`mogothrow77 version`), so the package
/// can never claim another.
pub fn binary_version(binary: &Path) -> Result<String> {
    let out = run_capture(Command::new(binary).arg("version"))?;
    out.split_whitespace()
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| format!("{} version printed {out:?}", binary.display()))
}

/// Builds `mogothrow77_<version>-<rev>_amd64.deb` in `out`.
pub fn build(binary: &Path, out: &Path) -> Result<PathBuf> {
    let version = format!("{}-{REVISION}", binary_version(binary)?);
    let epoch = source_date_epoch()?;
    let packaging = packaging();
    let stage = out.join(format!("{PACKAGE}-deb-stage"));
    if stage.exists() {
        fs::remove_dir_all(&stage).map_err(io(&stage))?;
    }
    fs::create_dir_all(&stage).map_err(io(&stage))?;

    stage_payload(&stage, binary)?;
    let doc = "/usr/share/doc/mogothrow77";
    install(
        &packaging.join("debian/copyright"),
        &stage,
        &format!("{doc}/copyright"),
        0o644,
    )?;
    let changelog = fs::read(packaging.join("debian/changelog")).map_err(io(&packaging))?;
    write(
        &stage,
        &format!("{doc}/changelog.Debian.gz"),
        &gzip(&changelog)?,
        0o644,
    )?;

    let md5 = md5sums(&stage)?;
    let control = format!(
        "Package: {PACKAGE}\n\
         Version: {version}\n\
         Architecture: amd64\n\
         Maintainer: Mogothrow77 developers <release@mogothrow77.invalid>\n\
         Installed-Size: {size}\n\
         Depends: libc6 (>= {glibc}), libgcc-s1 (>= 4.2), systemd | systemd-standalone-sysusers, procps, pgbackrest\n\
         Recommends: postgresql\n\
         Section: database\n\
         Priority: optional\n\
         Description: on-premises records appliance\n \
         Mogothrow77 keeps structured records in typed collections and serves\n \
         them through a versioned REST API and a web console, over PostgreSQL.\n \
         .\n \
         This package runs it as a sandboxed systemd service. Without a\n \
         configured database it creates and supervises its own PostgreSQL\n \
         cluster (from the recommended postgresql package), and serves HTTPS\n \
         on port 8443 with a generated self-signed certificate.\n",
        size = installed_size_kib(&stage)?,
        glibc = glibc_requirement(binary)?,
    );
    write(&stage, "/DEBIAN/control", control.as_bytes(), 0o644)?;
    write(&stage, "/DEBIAN/md5sums", md5.as_bytes(), 0o644)?;
    write(
        &stage,
        "/DEBIAN/conffiles",
        b"/etc/mogothrow77/config.toml\n",
        0o644,
    )?;
    for script in ["postinst", "prerm", "postrm"] {
        install(
            &packaging.join("debian").join(script),
            &stage,
            &format!("/DEBIAN/{script}"),
            0o755,
        )?;
    }
    // Directories: 0755, as dpkg expects.
    set_dir_modes(&stage)?;
    clamp_mtimes(&stage, epoch)?;

    let deb = out.join(format!("{PACKAGE}_{version}_amd64.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "-z9", "--build"])
        .arg(&stage)
        .arg(&deb)
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        // Standard output carries only the package path.
        .stdout(std::process::Stdio::from(std::io::stderr())))?;
    fs::remove_dir_all(&stage).map_err(io(&stage))?;
    Ok(deb)
}

pub fn set_dir_modes(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(io(dir))?;
    for entry in fs::read_dir(dir).map_err(io(dir))?.flatten() {
        if entry.path().is_dir() {
            set_dir_modes(&entry.path())?;
        }
    }
    Ok(())
}
