//! `check BUNDLE`: verify, then decide whether this host may upgrade to the
//! bundle's release, and print the plan. Nothing on the host changes.

use std::fmt;
use std::path::{Path, PathBuf};

use compat::{CompatData, Version};

use crate::release::{self, OpenError};
use crate::system::{self, SchemaFit};
use crate::{host, Exit};

/// Where packages install the vendor's release public key.
pub const DEFAULT_PUBLIC_KEY: &str = contracts::locations::RELEASE_KEY;

pub struct Inputs {
    pub bundle: PathBuf,
    pub public_keys: Vec<PathBuf>,
    pub installed: PathBuf,
    pub os_release: PathBuf,
    pub config: PathBuf,
}

/// Why an upgrade is refused; each names what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    Downgrade {
        installed: Version,
        target: Version,
    },
    SameVersion(Version),
    UnsupportedSource {
        installed: Version,
        target: Version,
        supported: Vec<Version>,
    },
    RequiredStops {
        installed: Version,
        target: Version,
        stops: Vec<Version>,
    },
    UnsupportedOs {
        os: String,
        supported: Vec<String>,
    },
    /// The new release cannot use the database as it is.
    Schema(String),
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[Version]| {
            v.iter()
                .map(Version::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Blocker::Downgrade { installed, target } => write!(
                f,
                "{target} is older than the installed {installed}: downgrades are not supported \
                 (roll back with `mogothrow77-upgrade rollback` instead)"
            ),
            Blocker::SameVersion(v) => write!(f, "{v} is already installed"),
            Blocker::UnsupportedSource {
                installed,
                target,
                supported,
            } => write!(
                f,
                "{target} does not upgrade from {installed}; it upgrades from: {}",
                if supported.is_empty() {
                    "no earlier release".to_string()
                } else {
                    list(supported)
                }
            ),
            Blocker::RequiredStops {
                installed,
                target,
                stops,
            } => write!(
                f,
                "{installed} → {target} must stop at {} first: upgrade to {} with its bundle, \
                 let it run, then upgrade to {target} (see compat-matrix.md)",
                list(stops),
                stops.first().map(Version::to_string).unwrap_or_default()
            ),
            Blocker::Schema(text) => f.write_str(text),
            Blocker::UnsupportedOs { os, supported } => write!(
                f,
                "this host runs {os}, which the release does not support; supported: {}",
                supported.join(", ")
            ),
        }
    }
}

/// The decision for one host.
#[derive(Debug)]
pub struct Plan {
    pub installed: Option<Version>,
    pub target: Version,
    pub blockers: Vec<Blocker>,
    /// A contract migration will run (known once the database was asked).
    pub rollback_needs_backup: bool,
}

/// Decides from the bundle's compatibility data alone.
pub fn decide(
    data: &CompatData,
    target: Version,
    installed: Option<Version>,
    os: &str,
) -> Result<Plan, String> {
    let release = data.release(target).ok_or_else(|| {
        format!("the bundle's compat.toml has no entry for its own release {target}")
    })?;
    let mut blockers = Vec::new();
    if let Some(installed) = installed {
        if installed > target {
            blockers.push(Blocker::Downgrade { installed, target });
        } else if installed == target {
            blockers.push(Blocker::SameVersion(target));
        } else if !release.upgrade_from.contains(&installed) {
            blockers.push(Blocker::UnsupportedSource {
                installed,
                target,
                supported: release.upgrade_from.clone(),
            });
        } else if let Some(stop) = release.required_stops.iter().find(|s| s.from == installed) {
            if !stop.via.is_empty() {
                blockers.push(Blocker::RequiredStops {
                    installed,
                    target,
                    stops: stop.via.clone(),
                });
            }
        }
    }
    if !release.os.iter().any(|o| o == os) {
        blockers.push(Blocker::UnsupportedOs {
            os: os.to_string(),
            supported: release.os.clone(),
        });
    }
    Ok(Plan {
        installed,
        target,
        blockers,
        rollback_needs_backup: false,
    })
}

pub(crate) fn refuse(message: impl fmt::Display) -> Exit {
    println!("REFUSED  {message}");
    println!("nothing was changed");
    Exit::Refused
}

pub fn run(inputs: &Inputs) -> Exit {
    let unpacked = match scratch_dir() {
        Ok(dir) => dir,
        Err(exit) => return exit,
    };
    let dest = unpacked.path().join("bundle");
    let (release, mut plan, os) = match verify_and_decide(inputs, &dest, false) {
        Ok(decided) => decided,
        Err(exit) => return exit,
    };
    if plan.blockers.is_empty() && plan.installed.is_some() {
        schema(&release, inputs, unpacked.path(), &mut plan);
    }
    print_plan(&plan, &os, &dest);
    print_release_notes(&release, &plan);
    if plan.blockers.is_empty() {
        Exit::Done
    } else {
        for b in &plan.blockers {
            println!("REFUSED  {b}");
        }
        println!("nothing was changed");
        Exit::Refused
    }
}

/// A private scratch directory for the unpacked bundle and release.
pub(crate) fn scratch_dir() -> Result<tempfile::TempDir, Exit> {
    tempfile::Builder::new()
        .prefix("mogothrow77-upgrade-")
        .tempdir()
        .map_err(|e| refuse(format!("cannot create a scratch directory: {e}")))
}

/// Verifies the bundle into `dest` and decides the upgrade path for this
/// host from its compatibility data (the database is not asked yet).
/// `Err` is the exit of a refusal, already printed.
/// With `progress_to_stderr`, the verified-bundle line goes to standard
/// error (standard output is for JSON).
pub(crate) fn verify_and_decide(
    inputs: &Inputs,
    dest: &Path,
    progress_to_stderr: bool,
) -> Result<(release::Release, Plan, String), Exit> {
    let release = match release::open(&inputs.bundle, &inputs.public_keys, dest) {
        Ok(r) => r,
        Err(OpenError::Key(e)) => {
            println!("{e}");
            return Err(Exit::Usage);
        }
        Err(OpenError::Refused(e)) => return Err(refuse(e)),
    };
    let verified = format!(
        "ok       bundle {} {} (commit {}): signature and {} file digests verified",
        release.manifest.product,
        release.manifest.version,
        release.manifest.commit,
        release.manifest.files.len()
    );
    if progress_to_stderr {
        eprintln!("{verified}");
    } else {
        println!("{verified}");
    }
    let installed = host::installed_version(&inputs.installed).map_err(refuse)?;
    let os = host::os_name(&inputs.os_release).map_err(refuse)?;
    let plan = decide(&release.data, release.target, installed, &os).map_err(refuse)?;
    Ok((release, plan, os))
}

/// Asks the new release about the live database: whether it accepts the
/// schema, which migrations it would run, and so whether rolling back
/// afterwards needs the backup.
fn schema(release: &release::Release, inputs: &Inputs, scratch: &Path, plan: &mut Plan) {
    if !inputs.config.is_file() {
        println!(
            "note     no configuration at {}: the database schema was not checked",
            inputs.config.display()
        );
        return;
    }
    let binary = match release.server_binary(scratch) {
        Ok(b) => b,
        Err(e) => {
            plan.blockers.push(Blocker::Schema(e));
            return;
        }
    };
    match system::schema_fit(&binary, &inputs.config) {
        SchemaFit::Runs => println!("ok       database schema: no migrations to run"),
        SchemaFit::Pending(pending) => {
            println!(
                "ok       database schema: migrations to run: {}",
                pending.join(", ")
            );
            println!(
                "note     `mogothrow77-upgrade rehearse` runs them on a copy of the database \
                 first and reports how long each takes and which tables it locks"
            );
            let contracts: Vec<&str> = pending
                .iter()
                .filter(|m| m.ends_with("(contract)"))
                .map(String::as_str)
                .collect();
            plan.rollback_needs_backup = !contracts.is_empty();
            if contracts.is_empty() {
                println!(
                    "ok       rollback window: all are expand migrations, so `rollback` can \
                     return to the installed release without restoring the backup"
                );
            } else {
                println!(
                    "note     rollback needs the backup: {} is a contract migration; once it ran, \
                     the installed release cannot run on the schema and going back means \
                     restoring the backup (/usr/share/doc/mogothrow77/upgrade.md.gz, section restoring-the-backup)",
                    contracts.join(", ")
                );
            }
        }
        SchemaFit::TooNew => plan.blockers.push(Blocker::Schema(format!(
            "the database schema holds contract migrations {} does not know",
            release.target
        ))),
        SchemaFit::Unknown(e) => plan.blockers.push(Blocker::Schema(format!(
            "cannot check the database with {}: {e}",
            release.target
        ))),
    }
}

/// The notes of every release the upgrade crosses, from the bundle's
/// CHANGELOG.md (which holds the history up to its own release).
fn print_release_notes(release: &release::Release, plan: &Plan) {
    use contracts::changelog;
    let Some(installed) = plan.installed else {
        return;
    };
    let Some(path) = release
        .listed("CHANGELOG.md", "CHANGELOG.md")
        .into_iter()
        .next()
    else {
        println!("note     the bundle carries no release notes (it was built before they existed)");
        return;
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            println!("note     cannot read the bundle's release notes: {e}");
            return;
        }
    };
    let releases = changelog::parse(&text);
    let crossed = changelog::between(&releases, &installed.to_string(), &plan.target.to_string());
    if crossed.is_empty() {
        println!(
            "note     the bundle's CHANGELOG.md has no notes for the releases after {installed} \
             up to {}",
            plan.target
        );
        return;
    }
    let versions: Vec<&str> = crossed.iter().map(|r| r.version.as_str()).collect();
    println!(
        "release notes of {} (read \"Might break\" and \"Migrations\" before you apply):",
        versions.join(", ")
    );
    for r in crossed {
        print!("{}", changelog::text(r, "  "));
    }
}

fn print_plan(plan: &Plan, os: &str, unpacked: &Path) {
    match plan.installed {
        Some(v) => println!("ok       installed: {v}; target: {}", plan.target),
        None => println!(
            "ok       nothing installed yet; target: {} (use mogothrow77-install)",
            plan.target
        ),
    }
    println!("ok       host OS: {os}");
    if !plan.blockers.is_empty() {
        return;
    }
    let package = if unpacked.join("packages/debian12").is_dir() {
        "the .deb"
    } else {
        "the package"
    };
    println!("plan (`mogothrow77-upgrade apply` runs these steps, journaled):");
    for (i, step) in [
        "verify the bundle and unpack the new release's binary",
        "check the upgrade path, the OS and that the new release accepts the database schema",
        "preflight: disk space for the backup and the release; no other upgrade running",
        "back up the database (<state_dir>/backups/, read back with pg_restore --list) and /etc/mogothrow77; keep the running release's package for rollback",
        "stop the service (it drains in-flight requests)",
        "run the new release's forward-only migrations",
        &format!("install {package} with MOGOTHROW77_NO_START=1"),
        "start the service (systemd waits for READY)",
        "check /readyz answers with the target version and schema level",
        if plan.rollback_needs_backup {
            "afterwards `rollback` cannot return without the backup (a contract migration runs)"
        } else {
            "afterwards `rollback` can return to the installed release (binary only)"
        },
    ]
    .iter()
    .enumerate()
    {
        println!("  {}. {step}", i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> CompatData {
        let release = |v: &str, level: u32, from: &str, stops: &str| {
            format!(
                "[[release]]\nversion = \"{v}\"\nschema_level = {level}\nupgrade_from = [{from}]\n\
                 required_stops = [{stops}]\npostgresql = [15]\nos = [\"debian-12\"]\n\
                 kubernetes = {{ min = \"1.27\", max = \"1.30\" }}\n"
            )
        };
        let text = [
            release("1.0.0", 1, "", ""),
            release("1.1.0", 2, "\"1.0.0\"", ""),
            release(
                "1.2.0",
                3,
                "\"1.0.0\", \"1.1.0\"",
                "{ from = \"1.0.0\", via = [\"1.1.0\"] }",
            ),
        ]
        .join("\n");
        CompatData::parse(&text, "test").expect("parse")
    }

    fn v(s: &str) -> Version {
        Version::parse(s).expect("version")
    }

    #[test]
    fn decisions() {
        let d = data();
        assert!(decide(&d, v("1.1.0"), Some(v("1.0.0")), "debian-12")
            .expect("plan")
            .blockers
            .is_empty());
        assert!(decide(&d, v("1.2.0"), Some(v("1.1.0")), "debian-12")
            .expect("plan")
            .blockers
            .is_empty());
        assert!(decide(&d, v("1.0.0"), None, "debian-12")
            .expect("plan")
            .blockers
            .is_empty());
        let stop = decide(&d, v("1.2.0"), Some(v("1.0.0")), "debian-12").expect("plan");
        assert_eq!(
            stop.blockers,
            vec![Blocker::RequiredStops {
                installed: v("1.0.0"),
                target: v("1.2.0"),
                stops: vec![v("1.1.0")]
            }]
        );
        assert!(stop.blockers[0].to_string().contains("must stop at 1.1.0"));
        let down = decide(&d, v("1.0.0"), Some(v("1.1.0")), "debian-12").expect("plan");
        assert!(matches!(down.blockers[0], Blocker::Downgrade { .. }));
        let os = decide(&d, v("1.1.0"), Some(v("1.0.0")), "rhel-7").expect("plan");
        assert!(matches!(&os.blockers[0], Blocker::UnsupportedOs { os, .. } if os == "rhel-7"));
        assert!(decide(&d, v("9.9.9"), None, "debian-12").is_err());
    }
}
