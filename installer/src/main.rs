//! `mogothrow77-install`: installs the appliance from a signed offline
//! bundle. Verifies the bundle, runs the host checks (printing each with
//! what to do when it fails), installs the package from the bundle with apt
//! on Debian and Ubuntu hosts (no network: the bundle is the only package
//! source), the .rpm with rpm on RHEL-family hosts (src/rpm.rs), or the
//! plain layout under /opt/mogothrow77 on hosts with neither or when asked
//! (src/plain.rs), starts the service, waits for READY and `/readyz`, and
//! prints the console URL and the first-admin setup link. With
//! `--database-url-file` it installs the URL of an external PostgreSQL as a
//! secret, names it in the configuration and has the server check the
//! database before the first start (src/database.rs). `--check` runs the
//! checks only, and writes nothing outside a temporary directory it
//! removes. Running it again is safe and repairs a partial installation.
//! After a successful run the unpacked bundle is removed.
//!
//! Exit codes (docs/install.md): 0 done, 2 usage, 10 refused before
//! changing anything, 11 stopped and needs an admin.

mod apt;
mod database;
mod hostnames;
mod key_file;
mod plain;
mod preflight;
mod rpm;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Parser;
use mogothrow77_upgrade::layout::{self, Layout};
use mogothrow77_upgrade::release::{self, OpenError, Release};
use mogothrow77_upgrade::{probe, settings, system, Exit};

const CONFIG: &str = contracts::locations::CONFIG_FILE;

#[derive(Debug, Parser)]
#[command(
    name = "mogothrow77-install",
    version,
    about = "Install Mogothrow77 from a signed offline bundle"
)]
struct Cli {
    /// The offline bundle (mogothrow77-<version>-offline.zip), or a
    /// directory it was unpacked into with `unzip`.
    bundle: PathBuf,
    /// The vendor's minisign public key (from the release notes, received
    /// out of band).
    #[arg(long = "public-key", value_name = "FILE", required = true)]
    public_keys: Vec<PathBuf>,
    /// Run the host checks only; change nothing.
    #[arg(long)]
    check: bool,
    /// How to install: the .deb with apt (package), the .rpm with rpm
    /// (rpm), or release directories under /opt/mogothrow77 with no
    /// package manager (plain). auto: package when dpkg and apt-get are
    /// present, else rpm when rpm is, else plain; an installed appliance
    /// keeps its layout.
    #[arg(long, value_enum, default_value = "auto")]
    layout: preflight::Requested,
    /// Where the installer unpacks the bundle and keeps its apt state.
    #[arg(
        long,
        value_name = "DIR",
        default_value = contracts::locations::INSTALL_WORK_DIR
    )]
    work_dir: PathBuf,
    /// Where the host's OS is described.
    #[arg(long, value_name = "PATH", default_value = "/etc/os-release")]
    os_release: PathBuf,
    /// Use an external PostgreSQL instead of the managed one: a file with
    /// its connection URL for the application role
    /// (postgresql://USER:PASSWORD@HOST:5432/DATABASE?sslmode=require).
    /// Installed as /etc/mogothrow77/secrets/database-url (0640
    /// root:mogothrow77), named in the configuration, never printed.
    #[arg(long, value_name = "FILE")]
    database_url_file: Option<PathBuf>,
    /// With --database-url-file: the schema owner's URL, for migrations
    /// (installed as /etc/mogothrow77/secrets/database-migration-url).
    #[arg(long, value_name = "FILE", requires = "database_url_file")]
    migration_url_file: Option<PathBuf>,
    /// With --database-url-file: the key-encryption key file of the
    /// installation's first replica (every replica seals and opens secrets
    /// with the same keys), copied to /var/lib/mogothrow77/secrets.key.
    /// Without it the first replica's is made there.
    #[arg(long, value_name = "FILE", requires = "database_url_file")]
    key_file: Option<PathBuf>,
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
    ExitCode::from(install(&cli) as u8)
}

fn refuse(message: &str) -> Exit {
    println!("REFUSED  {message}");
    println!("nothing was changed");
    Exit::Refused
}

fn stopped(message: &str) -> Exit {
    println!("STOPPED  {message}");
    println!(
        "see \"When the installer stops\" in install.md: /usr/share/doc/mogothrow77/install.md.gz \
         once the package is installed, docs/install.md in the bundle"
    );
    Exit::NeedsAdmin
}

fn install(cli: &Cli) -> Exit {
    // --check unpacks into a temporary directory, removed when it returns.
    let scratch = if cli.check {
        match tempfile::Builder::new()
            .prefix("mogothrow77-install-check.")
            .tempdir()
        {
            Ok(dir) => Some(dir),
            Err(e) => return refuse(&format!("cannot make a temporary directory: {e}")),
        }
    } else {
        None
    };
    let work_dir = scratch
        .as_ref()
        .map_or_else(|| cli.work_dir.clone(), |d| d.path().to_path_buf());
    let release = match open_bundle(cli, &work_dir) {
        Ok(r) => r,
        Err(OpenError::Key(e)) => {
            println!("{e}");
            return Exit::Usage;
        }
        Err(OpenError::Refused(e)) => return refuse(&e),
    };
    println!(
        "ok    bundle {} {} (commit {}): signature and {} file digests verified",
        release.manifest.product,
        release.manifest.version,
        release.manifest.commit,
        release.manifest.files.len()
    );
    let chosen = preflight::choose_layout(cli.layout, preflight::LayoutProbe::host());
    let layout = chosen.0;
    let binary = layout.binary();
    let mut checks = preflight::run(
        &release,
        &preflight::Host {
            os_release: &cli.os_release,
            meminfo: Path::new("/proc/meminfo"),
            installed_binary: &binary,
            layout: &chosen,
            external_database: cli.database_url_file.is_some(),
        },
    );
    for c in &checks {
        print_check(c);
    }
    let request = preflight::package_request(&release, cli.database_url_file.is_some());
    let apt_source = match layout {
        Layout::Package => {
            let (source, check) = packages_check(&release, &work_dir.join("apt"), &request);
            print_check(&check);
            checks.push(check);
            source
        }
        Layout::Rpm => {
            let check = rpm::check(&release);
            print_check(&check);
            checks.push(check);
            None
        }
        Layout::Plain => None,
    };
    let mut failed = checks.iter().filter(|c| !c.passed).count();
    let secrets = match external_database(cli) {
        Ok(secrets) => secrets,
        Err(e) => {
            println!("FAIL  database: {e}");
            failed += 1;
            Vec::new()
        }
    };
    if failed > 0 {
        return refuse(&format!("{failed} check(s) failed; fix them and run again"));
    }
    if cli.check {
        println!("all checks passed; nothing was changed (--check)");
        return Exit::Done;
    }
    let reinstall = preflight::is_reinstall(&release, &binary);
    if reinstall && !secrets.is_empty() {
        if let Err(e) = configured_already(&secrets) {
            return refuse(&e);
        }
    }
    let started = Instant::now();
    match layout {
        // apt on every run: a rerun completes a partial installation
        // (apt does nothing when every package is installed).
        Layout::Package => {
            let Some(source) = &apt_source else {
                return stopped("the bundle's apt source is not prepared");
            };
            if let Err(e) = source.install(&request) {
                return stopped(&format!("installing {} failed: {e}", request.join(" ")));
            }
            println!(
                "ok    {} {} from the bundle in {:.1} s",
                if reinstall { "checked" } else { "installed" },
                request.join(" "),
                started.elapsed().as_secs_f64()
            );
        }
        // Installed unless this version is; the unit enabled and the .rpm
        // kept on every run.
        Layout::Rpm => match rpm::install(&release) {
            Ok(fresh) => println!(
                "ok    {} mogothrow77 {} from the bundle's .rpm in {:.1} s (kept in {}/releases for rollback)",
                if fresh { "installed" } else { "checked" },
                release.target,
                started.elapsed().as_secs_f64(),
                mogothrow77_upgrade::journal::DEFAULT_WORK_DIR
            ),
            Err(e) => return stopped(&format!("installing the .rpm failed: {e}")),
        },
        // Checked and repaired on every run: each of its steps is safe to
        // repeat.
        Layout::Plain => {
            if let Err(e) = plain::install(&release) {
                return stopped(&format!("installing the plain layout failed: {e}"));
            }
            println!(
                "ok    installed mogothrow77 {} in {}/releases/{} (current), unit {}, in {:.1} s",
                release.target,
                layout::PLAIN_ROOT,
                release.target,
                layout::PLAIN_UNIT,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let mut restart = false;
    if !secrets.is_empty() {
        match configure_external(&secrets, cli.key_file.as_deref(), &binary) {
            Ok(changed) => restart = changed && system::service_active(),
            Err(e) => return stopped(&e),
        }
    }
    match configure_hostname() {
        Ok(changed) => restart |= changed && system::service_active(),
        Err(e) => println!("note  tls.hostnames: {e}"),
    }
    let started = Instant::now();
    let running = if restart {
        system::restart_service()
    } else {
        system::start_service()
    };
    if let Err(e) = running {
        return stopped(&format!("the service does not start: {e}"));
    }
    let settings = match settings::load(Path::new(CONFIG)) {
        Ok(s) => s,
        Err(e) => return stopped(&e),
    };
    match probe::wait_ready(
        settings.probe_addr,
        &settings.cert_file,
        Duration::from_secs(120),
    ) {
        Ok(ready) if ready.version == release.target.to_string() => println!(
            "ok    service ready in {:.1} s: /readyz answers version {}, schema level {}",
            started.elapsed().as_secs_f64(),
            ready.version,
            ready.schema_level
        ),
        Ok(ready) => {
            return stopped(&format!(
                "/readyz answers version {}, not {}",
                ready.version, release.target
            ))
        }
        Err(e) => return stopped(&format!("the service is not ready: {e}")),
    }
    keep_public_key(&cli.public_keys);
    first_admin(&binary);
    remove_unpacked(&cli.work_dir, !cli.bundle.is_dir());
    Exit::Done
}

fn print_check(c: &preflight::Check) {
    if c.passed {
        println!("ok    {}: {}", c.name, c.detail);
    } else {
        println!("FAIL  {}: {}", c.name, c.detail);
        println!("      fix: {}", c.fix);
    }
}

/// The `packages` check: apt, with the bundle as its only source, would
/// install the request (a simulation, `apt-get -s`). Returns the prepared
/// source for the installation.
fn packages_check(
    release: &Release,
    dir: &Path,
    request: &[String],
) -> (Option<apt::BundleSource>, preflight::Check) {
    let what = request.join(" ");
    let source = match apt::BundleSource::prepare(&release.dir, dir) {
        Ok(source) => source,
        Err(e) => {
            return (
                None,
                preflight::Check::failed(
                    "packages",
                    format!("apt cannot read the bundle's packages: {e}"),
                    "check that apt works on this host (`apt-get check`), then run again",
                ),
            )
        }
    };
    match source.simulate(request) {
        Ok(count) => (
            Some(source),
            preflight::Check::passed(
                "packages",
                format!(
                    "apt can install {what} from the bundle alone ({count} packages, simulated)"
                ),
            ),
        ),
        Err(apt::AptError::Refused { missing, lines }) if !missing.is_empty() => {
            let fix = format!(
                "install {} on this host from your Debian 12 installation media or local \
                 mirror (`apt-get install {}`), or lift what holds {} back (`apt-mark \
                 showhold`, /etc/apt/preferences.d), then run again",
                missing.join(", "),
                missing.join(" "),
                if missing.len() == 1 { "it" } else { "them" }
            );
            let e = apt::AptError::Refused { missing, lines };
            (
                None,
                preflight::Check::failed("packages", format!("for {what}: {e}"), &fix),
            )
        }
        Err(e) => (
            None,
            preflight::Check::failed(
                "packages",
                format!("for {what}: {e}"),
                "do what apt's lines above say (e.g. `dpkg --configure -a` after an \
                 interrupted installation), then run again",
            ),
        ),
    }
}

/// Keeps the public key the bundle was verified with where the upgrade
/// tool looks by default (docs/upgrade.md), unless one is there already.
fn keep_public_key(keys: &[PathBuf]) {
    let kept = Path::new(mogothrow77_upgrade::check::DEFAULT_PUBLIC_KEY);
    let Some(key) = keys.first() else { return };
    let Ok(bytes) = fs::read(key) else { return };
    match fs::read(kept) {
        Ok(existing) if existing == bytes => {}
        Ok(_) => println!(
            "note  {} is kept as it is (it differs from {}): mogothrow77-upgrade uses it by default",
            kept.display(),
            key.display()
        ),
        Err(_) => {
            let written = kept
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| fs::write(kept, &bytes))
                .and_then(|()| {
                    fs::set_permissions(
                        kept,
                        std::os::unix::fs::PermissionsExt::from_mode(0o644),
                    )
                });
            match written {
                Ok(()) => println!(
                    "ok    public key {} kept as {} (mogothrow77-upgrade's default)",
                    key.display(),
                    kept.display()
                ),
                Err(e) => println!("note  cannot keep the public key as {}: {e}", kept.display()),
            }
        }
    }
}

/// After a successful run the unpacked bundle and apt's lists of it go:
/// nothing in them is needed again (the upgrade tool keeps what a rollback
/// needs in /var/lib/mogothrow77-upgrade). A bundle directory the admin
/// unpacked is theirs and stays.
fn remove_unpacked(work_dir: &Path, unpacked_here: bool) {
    let bundle = work_dir.join("bundle");
    let freed = du(&bundle);
    for dir in [bundle, work_dir.join("apt")] {
        if dir.exists() {
            if let Err(e) = fs::remove_dir_all(&dir) {
                println!("note  cannot remove {}: {e}", dir.display());
                return;
            }
        }
    }
    let _ = fs::remove_dir(work_dir);
    if unpacked_here {
        println!(
            "ok    removed the unpacked bundle ({} MB) from {}",
            freed >> 20,
            work_dir.display()
        );
    }
}

fn du(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| du(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// The URL files of `--database-url-file` / `--migration-url-file`, read
/// and checked (one check line each).
fn external_database(cli: &Cli) -> Result<Vec<database::UrlSecret>, String> {
    let mut secrets = Vec::new();
    if let Some(path) = &cli.database_url_file {
        secrets.push(database::read_url_file(
            path,
            "url_file",
            "url",
            "database-url",
        )?);
    }
    if let Some(path) = &cli.migration_url_file {
        secrets.push(database::read_url_file(
            path,
            "migration_url_file",
            "migration_url",
            "database-migration-url",
        )?);
    }
    for s in &secrets {
        println!(
            "ok    database: external, {} from {} (not shown)",
            s.key,
            s.source.display()
        );
    }
    Ok(secrets)
}

/// A reinstall keeps the database it has: the files must be the ones the
/// configuration names already (their contents may change: a new password).
fn configured_already(secrets: &[database::UrlSecret]) -> Result<(), String> {
    let text = fs::read_to_string(CONFIG).map_err(|e| format!("{CONFIG}: {e}"))?;
    for s in secrets {
        let path = Path::new(database::SECRETS_DIR).join(s.file_name);
        let edit = database::name_in_database_table(
            &text,
            s.key,
            s.inline_key,
            &path.display().to_string(),
        )?;
        if edit.is_some() {
            return Err(format!(
                "mogothrow77 is installed already and its configuration does not use \
                 database.{} = \"{}\": the installer does not move an installed appliance \
                 to another database (its data would stay behind; \"An external database\" in /usr/share/doc/mogothrow77/install.md.gz)",
                s.key,
                path.display()
            ));
        }
    }
    Ok(())
}

/// Installs the URL secrets, names them in the configuration, and lets the
/// server check the database before the service starts. Returns whether
/// anything changed.
/// The host's fully qualified name added to `tls.hostnames` (the name
/// clients use must be allowed, and is put in the self-signed
/// certificate). Returns whether the configuration changed.
fn configure_hostname() -> Result<bool, String> {
    let Some(name) = hostnames::this_host() else {
        println!(
            "note  tls.hostnames: this host's name has no domain (kernel host name, /etc/hosts): \
             add the name clients use to tls.hostnames in {CONFIG}"
        );
        return Ok(false);
    };
    let config = Path::new(CONFIG);
    let text = fs::read_to_string(config).map_err(|e| format!("{CONFIG}: {e}"))?;
    let Some(edited) = hostnames::add_to_config(&text, &name)? else {
        println!("ok    tls.hostnames: {name} (unchanged)");
        return Ok(false);
    };
    let gid = database::group_id(system::PACKAGE)?;
    database::write_private(config, edited.as_bytes(), gid)?;
    println!(
        "ok    tls.hostnames: {name} added in {CONFIG} (the console answers to it, and it is in \
         the self-signed certificate)"
    );
    Ok(true)
}

fn configure_external(
    secrets: &[database::UrlSecret],
    key_file: Option<&Path>,
    binary: &Path,
) -> Result<bool, String> {
    let gid = database::group_id(system::PACKAGE)?;
    let keys_changed = key_file::install(key_file, binary, Path::new(CONFIG))?;
    let changed = keys_changed
        | database::install(
            secrets,
            Path::new(database::SECRETS_DIR),
            Path::new(CONFIG),
            gid,
        )?;
    println!(
        "ok    database: {} (0640 root:{}) named in {CONFIG}{}",
        secrets
            .iter()
            .map(|s| Path::new(database::SECRETS_DIR)
                .join(s.file_name)
                .display()
                .to_string())
            .collect::<Vec<_>>()
            .join(", "),
        system::PACKAGE,
        if changed { "" } else { " (unchanged)" }
    );
    let out = Command::new(binary)
        .args(["--config", CONFIG, "check"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let reason = stdout
            .lines()
            .find(|l| l.starts_with("FAIL"))
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        return Err(format!(
            "the database check failed: {reason}; the service was not (re)started with it: \
             fix the database or the URL file and run the installer again"
        ));
    }
    println!("ok    database: reachable as the application role, PostgreSQL version and schema accepted (mogothrow77 check)");
    Ok(changed)
}

fn open_bundle(cli: &Cli, work_dir: &Path) -> Result<Release, OpenError> {
    if cli.bundle.is_dir() {
        return release::open_any(&cli.bundle, &cli.public_keys, work_dir);
    }
    let dest = work_dir.join("bundle");
    let io = |e: std::io::Error| OpenError::Refused(format!("{}: {e}", work_dir.display()));
    if dest.exists() {
        fs::remove_dir_all(&dest).map_err(io)?;
    }
    fs::create_dir_all(work_dir).map_err(io)?;
    fs::set_permissions(
        work_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(io)?;
    release::open_any(&cli.bundle, &cli.public_keys, &dest)
}

/// The console URL, and the first-admin setup link while no user exists.
fn first_admin(binary: &Path) {
    let out = Command::new(binary)
        .args(["--config", CONFIG, "admin", "setup-token"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let link = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let console = link.split("/setup#").next().unwrap_or_default();
            println!("console: {console}/");
            println!("first-admin setup link (one-time, valid 24 hours; `mogothrow77 admin setup-token` issues a new one):");
            println!("  {link}");
        }
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stderr).to_string();
            if text.contains("users exist already") {
                println!("users exist already: sign in to the console");
            } else {
                println!("note  no setup link: {}", text.trim());
            }
        }
        Err(e) => println!("note  no setup link: cannot run {}: {e}", binary.display()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
