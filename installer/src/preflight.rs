//! The host checks the installer runs before it changes anything. Each
//! says what it found and, when it fails, what to do.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use mogothrow77_upgrade::layout::{self, Layout};
use mogothrow77_upgrade::release::Release;
use mogothrow77_upgrade::{host, system};

/// The port the package's configuration listens on.
pub const HTTPS_PORT: u16 = 8443;
const MIN_MEMORY_KIB: u64 = 1024 * 1024;
const MIN_STATE_FREE: u64 = 1 << 30;
const MIN_USR_FREE: u64 = 300 << 20;

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
    /// What to do when it failed.
    pub fix: String,
}

impl Check {
    pub fn passed(name: &'static str, detail: String) -> Check {
        pass(name, detail)
    }

    pub fn failed(name: &'static str, detail: String, fix: &str) -> Check {
        fail(name, detail, fix)
    }
}

fn pass(name: &'static str, detail: String) -> Check {
    Check {
        name,
        passed: true,
        detail,
        fix: String::new(),
    }
}

fn fail(name: &'static str, detail: String, fix: &str) -> Check {
    Check {
        name,
        passed: false,
        detail,
        fix: fix.to_string(),
    }
}

/// What the checks look at; paths are parameters so tests can point them
/// elsewhere.
pub struct Host<'a> {
    pub os_release: &'a Path,
    pub meminfo: &'a Path,
    pub installed_binary: &'a Path,
    /// The layout chosen and its check ([`choose_layout`]).
    pub layout: &'a (Layout, Check),
    /// The database is an external PostgreSQL (`--database-url-file`).
    pub external_database: bool,
}

pub fn run(release: &Release, host_paths: &Host<'_>) -> Vec<Check> {
    let (layout, layout_check) = host_paths.layout;
    vec![
        os(release, host_paths.os_release),
        arch(),
        systemd(),
        layout_check.clone(),
        memory(host_paths.meminfo),
        disk(
            "disk /var/lib",
            "/var/lib",
            MIN_STATE_FREE,
            "the appliance's state and its database",
        ),
        match layout {
            Layout::Package | Layout::Rpm => {
                disk("disk /usr", "/usr", MIN_USR_FREE, "the programs")
            }
            Layout::Plain => disk("disk /opt", "/opt", MIN_USR_FREE, "the programs"),
        },
        port(),
        postgresql(release, *layout, host_paths.external_database),
        clock(release),
        installed(release, host_paths.installed_binary),
    ]
}

fn os(release: &Release, os_release: &Path) -> Check {
    let supported = release
        .data
        .release(release.target)
        .map(|r| r.os.clone())
        .unwrap_or_default();
    match host::os_name(os_release) {
        Ok(os) if supported.contains(&os) => pass("os", format!("{os} is supported")),
        Ok(os) => fail(
            "os",
            format!("{os} is not supported by {}", release.target),
            &format!("install on one of: {}", supported.join(", ")),
        ),
        Err(e) => fail("os", e, "this host has no readable /etc/os-release"),
    }
}

fn arch() -> Check {
    let arch = std::env::consts::ARCH;
    if arch == "x86_64" {
        pass("cpu", arch.to_string())
    } else {
        fail(
            "cpu",
            arch.to_string(),
            "the release is built for x86_64 hosts only",
        )
    }
}

fn systemd() -> Check {
    if Path::new("/run/systemd/system").is_dir() {
        pass("systemd", "systemd is the service manager".to_string())
    } else {
        fail(
            "systemd",
            "systemd is not running as the init system".to_string(),
            "boot the host with systemd; the package runs the appliance as a systemd service \
             (containers: use the OCI image instead)",
        )
    }
}

/// The layout asked for with `--layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Requested {
    /// The .deb when dpkg and apt-get are there, else the .rpm when rpm
    /// is, else plain; an installed appliance keeps its layout.
    Auto,
    /// The .deb, installed with apt from the bundle.
    Package,
    /// The .rpm, installed with rpm (RHEL-family hosts).
    Rpm,
    /// The plain layout under /opt/mogothrow77 (no package manager).
    Plain,
}

/// What the layout choice looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayoutProbe {
    /// The layout mogothrow77 is installed in, if it is.
    pub installed: Option<Layout>,
    pub apt: bool,
    pub rpm: bool,
    pub sysusers: bool,
}

impl LayoutProbe {
    pub fn host() -> LayoutProbe {
        let file = |p: &str| Path::new(p).is_file();
        LayoutProbe {
            // Release directories without `current`: a plain install
            // that was interrupted (rerunning it finishes it).
            installed: Layout::installed().or_else(|| {
                Path::new(layout::PLAIN_ROOT)
                    .join("releases")
                    .is_dir()
                    .then_some(Layout::Plain)
            }),
            apt: file("/usr/bin/dpkg") && file("/usr/bin/apt-get"),
            rpm: file("/usr/bin/rpm"),
            sysusers: file("/usr/bin/systemd-sysusers") || file("/bin/systemd-sysusers"),
        }
    }
}

fn describe(layout: Layout) -> String {
    match layout {
        Layout::Package => "package (the .deb)".to_string(),
        Layout::Rpm => "rpm (the .rpm)".to_string(),
        Layout::Plain => format!("plain, under {}", layout::PLAIN_ROOT),
    }
}

/// The layout to install in, with its check line. An installed appliance
/// keeps its layout (the upgrade tool finds it there).
pub fn choose_layout(requested: Requested, probe: LayoutProbe) -> (Layout, Check) {
    const NAME: &str = "layout";
    let asked = match requested {
        Requested::Auto => None,
        Requested::Package => Some(Layout::Package),
        Requested::Rpm => Some(Layout::Rpm),
        Requested::Plain => Some(Layout::Plain),
    };
    if let Some(installed) = probe.installed {
        return match asked {
            Some(asked) if asked != installed => (
                installed,
                fail(
                    NAME,
                    format!(
                        "installed already in the {} layout, not {}",
                        describe(installed),
                        describe(asked)
                    ),
                    "run without --layout: an installed appliance keeps its layout \
                     (to change it, remove the installation first; the data in \
                     /var/lib/mogothrow77 stays)",
                ),
            ),
            _ => (
                installed,
                pass(NAME, format!("{} (installed already)", describe(installed))),
            ),
        };
    }
    let missing = |layout: Layout, what: &str, fix: &str| {
        (
            layout,
            fail(NAME, format!("{}: {what}", describe(layout)), fix),
        )
    };
    let chosen = match asked {
        Some(layout) => layout,
        None if probe.apt => Layout::Package,
        None if probe.rpm => Layout::Rpm,
        None => Layout::Plain,
    };
    match chosen {
        Layout::Package if !probe.apt => missing(
            chosen,
            "dpkg and apt-get are not present",
            "run with --layout rpm on RHEL-family hosts, or --layout plain",
        ),
        Layout::Rpm if !probe.rpm => missing(
            chosen,
            "rpm is not present",
            "run with --layout package on Debian and Ubuntu hosts, or --layout plain",
        ),
        Layout::Plain if !probe.sysusers => missing(
            chosen,
            "systemd-sysusers is not installed",
            "install systemd's sysusers tool (systemd 215 or newer)",
        ),
        Layout::Package => (
            chosen,
            pass(
                NAME,
                "package: the .deb with apt from the bundle".to_string(),
            ),
        ),
        Layout::Rpm => (
            chosen,
            pass(NAME, "rpm: the bundle's .rpm with rpm -U".to_string()),
        ),
        Layout::Plain => (
            chosen,
            pass(
                NAME,
                format!(
                    "plain: release directories under {}/releases{}",
                    layout::PLAIN_ROOT,
                    if asked.is_some() {
                        ""
                    } else {
                        " (neither dpkg/apt-get nor rpm here)"
                    }
                ),
            ),
        ),
    }
}

fn memory(meminfo: &Path) -> Check {
    let total = std::fs::read_to_string(meminfo).ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    });
    match total {
        Some(kib) if kib >= MIN_MEMORY_KIB => pass("memory", format!("{} MiB", kib / 1024)),
        Some(kib) => fail(
            "memory",
            format!("{} MiB", kib / 1024),
            "give the host at least 1 GiB of memory",
        ),
        None => fail(
            "memory",
            format!("cannot read MemTotal from {}", meminfo.display()),
            "run on a Linux host with /proc mounted",
        ),
    }
}

fn disk(name: &'static str, path: &str, need: u64, what: &str) -> Check {
    // A directory the install creates (e.g. /opt) is on its parent's
    // filesystem until then.
    let existing = Path::new(path)
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    match system::free_bytes(existing) {
        Ok(free) if free >= need => pass(name, format!("{} MiB free", free >> 20)),
        Ok(free) => fail(
            name,
            format!("{} MiB free; {what} need {} MiB", free >> 20, need >> 20),
            &format!("free space on the filesystem holding {path}"),
        ),
        Err(e) => fail(name, e, "check the filesystem"),
    }
}

fn port() -> Check {
    let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, HTTPS_PORT);
    match TcpListener::bind(addr) {
        Ok(_) => pass("https port", format!("{HTTPS_PORT} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && system::service_active() => pass(
            "https port",
            format!("{HTTPS_PORT} is served by mogothrow77 (installed already)"),
        ),
        Err(e) => fail(
            "https port",
            format!("{HTTPS_PORT} cannot be used: {e}"),
            &format!(
                "stop what listens on {HTTPS_PORT} (`ss -ltnp 'sport = :{HTTPS_PORT}'`), or \
                 install, then set `listen` in /etc/mogothrow77/config.toml"
            ),
        ),
    }
}

/// The PostgreSQL majors installed where the managed mode finds them:
/// `/usr/lib/postgresql/N/bin` (Debian), or `postgres` in the service's
/// `PATH` (its version asked).
fn host_postgresql() -> Vec<u32> {
    let mut majors: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|major| Path::new(&format!("/usr/lib/postgresql/{major}/bin/postgres")).is_file())
        .collect();
    for dir in ["/usr/local/bin", "/usr/bin", "/bin"] {
        let postgres = Path::new(dir).join("postgres");
        if !postgres.is_file() {
            continue;
        }
        // "postgres (PostgreSQL) 15.8"
        let major = system::run(std::process::Command::new(&postgres).arg("--version"))
            .ok()
            .and_then(|out| {
                out.split_whitespace()
                    .last()
                    .and_then(|v| v.split('.').next())
                    .and_then(|m| m.parse::<u32>().ok())
            });
        majors.extend(major);
        break;
    }
    majors
}

/// What the installer asks apt for (package layout): `mogothrow77`, and
/// the bundle's PostgreSQL by name, never left to a Recommends apt may
/// drop: for the managed mode on a host with no supported PostgreSQL the
/// server (`postgresql-15`); with an external database the client programs
/// (`postgresql-client-15`: the backups before upgrades run `pg_dump`)
/// unless the host has them.
pub fn package_request(release: &Release, external: bool) -> Vec<String> {
    let mut request = vec![system::PACKAGE.to_string()];
    let supported = supported_postgresql(release);
    let Some(major) = bundled_postgresql(release, &supported) else {
        return request;
    };
    if external {
        if !host_postgresql_clients()
            .iter()
            .any(|m| supported.contains(m))
        {
            request.push(format!("postgresql-client-{major}"));
        }
    } else if !host_postgresql().iter().any(|m| supported.contains(m)) {
        request.push(format!("postgresql-{major}"));
    }
    request
}

/// Majors of the PostgreSQL client programs installed the Debian way
/// (`/usr/lib/postgresql/N/bin/pg_dump`).
fn host_postgresql_clients() -> Vec<u32> {
    std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|major| Path::new(&format!("/usr/lib/postgresql/{major}/bin/pg_dump")).is_file())
        .collect()
}

fn supported_postgresql(release: &Release) -> Vec<u32> {
    release
        .data
        .release(release.target)
        .map(|r| r.postgresql.clone())
        .unwrap_or_default()
}

/// The newest supported PostgreSQL whose server package the bundle carries.
fn bundled_postgresql(release: &Release, supported: &[u32]) -> Option<u32> {
    supported
        .iter()
        .copied()
        .filter(|major| {
            !release
                .listed(&format!("packages/debian12/postgresql-{major}_"), ".deb")
                .is_empty()
        })
        .max()
}

/// A supported PostgreSQL on the host, or one the bundle brings for
/// managed mode (package layout: apt installs it from the bundle).
fn postgresql(release: &Release, layout: Layout, external: bool) -> Check {
    let supported = supported_postgresql(release);
    let installed = host_postgresql();
    if let Some(major) = installed.iter().filter(|m| supported.contains(m)).max() {
        return pass(
            "postgresql",
            format!("PostgreSQL {major} is installed (managed mode uses it)"),
        );
    }
    if layout != Layout::Package {
        if external {
            return pass(
                "postgresql",
                "external (the server checks its version before the service starts)".to_string(),
            );
        }
        return fail(
            "postgresql",
            format!(
                "no supported PostgreSQL ({}) installed for the managed mode",
                supported
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "install a supported PostgreSQL server with the host's package manager \
             (postgresql-server; only the .deb's installation brings PostgreSQL from the \
             bundle), or use an external PostgreSQL with --database-url-file",
        );
    }
    match bundled_postgresql(release, &supported) {
        Some(major) => pass(
            "postgresql",
            format!("PostgreSQL {major} comes from the bundle (managed mode)"),
        ),
        None => fail(
            "postgresql",
            format!(
                "no supported PostgreSQL ({}) on the host or in the bundle",
                supported
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "install a supported PostgreSQL server package, or use the offline bundle that \
             carries PostgreSQL",
        ),
    }
}

fn clock(release: &Release) -> Check {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let built = release.manifest.created;
    let day = 86_400;
    if now + day < built {
        fail(
            "clock",
            format!("the clock says {now} (Unix time), before the bundle was made ({built})"),
            "set the clock (`timedatectl set-time`, or NTP): certificates and sessions depend on it",
        )
    } else if now > built + 10 * 365 * day {
        fail(
            "clock",
            format!("the clock says {now} (Unix time), over ten years after the bundle was made"),
            "set the clock (`timedatectl set-time`, or NTP)",
        )
    } else {
        pass("clock", "plausible (after the bundle was made)".to_string())
    }
}

fn installed(release: &Release, binary: &Path) -> Check {
    match host::installed_version(binary) {
        Ok(None) => pass("not installed yet", "a new installation".to_string()),
        Ok(Some(v)) if v == release.target => pass(
            "installed already",
            format!("{v} is installed: the installer checks it and starts it if needed"),
        ),
        Ok(Some(v)) if v < release.target => fail(
            "installed already",
            format!("{v} is installed"),
            &format!(
                "upgrade with `mogothrow77-upgrade apply` and this bundle ({} → {})",
                v, release.target
            ),
        ),
        Ok(Some(v)) => fail(
            "installed already",
            format!(
                "{v}, newer than the bundle's {}, is installed",
                release.target
            ),
            "nothing to install; downgrades are not supported",
        ),
        Err(e) => fail(
            "installed already",
            e,
            "repair or remove the installed package",
        ),
    }
}

/// Whether the version in the check list is the target (for re-runs).
pub fn is_reinstall(release: &Release, binary: &Path) -> bool {
    matches!(host::installed_version(binary), Ok(Some(v)) if v == release.target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use offline_bundle::{FileEntry, Manifest};

    fn release(created: u64, files: &[&str]) -> Release {
        let data = compat::CompatData::parse(
            "[[release]]\nversion = \"1.0.0\"\nschema_level = 1\nupgrade_from = []\n\
             required_stops = []\npostgresql = [15, 16]\nos = [\"debian-12\"]\n\
             kubernetes = { min = \"1.27\", max = \"1.30\" }\n",
            "test",
        )
        .expect("compat");
        Release {
            target: compat::Version(1, 0, 0),
            data,
            manifest: Manifest {
                format: 1,
                product: "mogothrow77".to_string(),
                version: "1.0.0".to_string(),
                commit: "0123456789ab".to_string(),
                created,
                files: files
                    .iter()
                    .map(|p| FileEntry {
                        path: p.to_string(),
                        size: 0,
                        sha256: "0".repeat(64),
                    })
                    .collect(),
            },
            dir: "/nonexistent".into(),
        }
    }

    #[test]
    fn the_layout_follows_the_host_and_an_installed_appliance_keeps_its_own() {
        let debian = LayoutProbe {
            apt: true,
            sysusers: true,
            ..LayoutProbe::default()
        };
        let rhel = LayoutProbe {
            rpm: true,
            sysusers: true,
            ..LayoutProbe::default()
        };
        let other = LayoutProbe {
            sysusers: true,
            ..LayoutProbe::default()
        };
        let choose = |r, p| {
            let (layout, check) = choose_layout(r, p);
            (
                layout,
                check.passed,
                format!("{} {}", check.detail, check.fix),
            )
        };
        assert_eq!(choose(Requested::Auto, debian).0, Layout::Package);
        assert!(choose(Requested::Auto, debian).1);
        assert_eq!(choose(Requested::Plain, debian).0, Layout::Plain);
        assert!(choose(Requested::Plain, debian).1);
        assert_eq!(choose(Requested::Auto, rhel).0, Layout::Rpm);
        assert!(choose(Requested::Auto, rhel).1);
        let (layout, passed, text) = choose(Requested::Auto, other);
        assert!(passed && layout == Layout::Plain, "{text}");
        assert!(text.contains("neither dpkg/apt-get nor rpm"), "{text}");
        let (_, passed, text) = choose(Requested::Package, rhel);
        assert!(!passed && text.contains("--layout rpm"), "{text}");
        let (_, passed, text) = choose(Requested::Rpm, debian);
        assert!(!passed && text.contains("rpm is not present"), "{text}");

        for installed in [Layout::Package, Layout::Rpm, Layout::Plain] {
            let probe = LayoutProbe {
                installed: Some(installed),
                apt: true,
                rpm: true,
                sysusers: true,
            };
            let (layout, passed, text) = choose(Requested::Auto, probe);
            assert!(passed && layout == installed, "{text}");
            assert!(text.contains("installed already"), "{text}");
            for other in [Requested::Package, Requested::Rpm, Requested::Plain] {
                let (layout, passed, text) = choose(other, probe);
                assert_eq!(layout, installed);
                let same = matches!(
                    (other, installed),
                    (Requested::Package, Layout::Package)
                        | (Requested::Rpm, Layout::Rpm)
                        | (Requested::Plain, Layout::Plain)
                );
                assert_eq!(passed, same, "{text}");
                if !same {
                    assert!(text.contains("keeps its layout"), "{text}");
                }
            }
        }

        let no_sysusers = LayoutProbe {
            sysusers: false,
            ..other
        };
        let (_, passed, text) = choose(Requested::Auto, no_sysusers);
        assert!(!passed && text.contains("systemd-sysusers"), "{text}");
    }

    #[test]
    fn checks_say_what_they_found_and_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = release(
            1_700_000_000,
            &["packages/debian12/postgresql-15_15.18_amd64.deb"],
        );

        let os = dir.path().join("os-release");
        std::fs::write(&os, "ID=debian\nVERSION_ID=\"12\"\n").expect("write");
        assert!(super::os(&r, &os).passed);
        std::fs::write(&os, "ID=fedora\nVERSION_ID=\"40\"\n").expect("write");
        let c = super::os(&r, &os);
        assert!(!c.passed);
        assert!(
            c.detail.contains("fedora-40") && c.fix.contains("debian-12"),
            "{c:?}"
        );

        let mem = dir.path().join("meminfo");
        std::fs::write(&mem, "MemTotal:        2048000 kB\nMemFree: 1 kB\n").expect("write");
        assert!(memory(&mem).passed);
        std::fs::write(&mem, "MemTotal:         512000 kB\n").expect("write");
        let c = memory(&mem);
        assert!(!c.passed && c.fix.contains("1 GiB"), "{c:?}");

        assert!(clock(&r).passed);
        let future = release(u64::MAX / 2, &[]);
        assert!(!clock(&future).passed);

        let bin = dir.path().join("mogothrow77");
        assert!(installed(&r, &bin).passed, "nothing installed");
        std::fs::write(
            &bin,
            "#!/bin/sh\necho 'mogothrow77 0.9.0 (commit 0123456789ab, schema level 1)'\n",
        )
        .expect("write");
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let c = installed(&r, &bin);
        assert!(
            !c.passed && c.fix.contains("mogothrow77-upgrade apply"),
            "{c:?}"
        );
    }
}
