//! Release compatibility: which release upgrades from which, through which
//! stops, and how far a binary can be rolled back without restoring a
//! backup.
//!
//! `compat.toml` declares the releases. What can be derived is derived from
//! the migrations' `-- kind: expand|contract` declarations, and [`check`]
//! compares the declarations with the derivation, so the data cannot drift:
//! - a schema at level L can be used by any binary that knows the newest
//!   *contract* migration at or below L ([`min_binary_level`]);
//! - release P can run on release R's schema when P's level reaches that
//!   minimum: R's **rollback window** is the earlier releases P for which
//!   that holds (rolling back to them needs no database restore);
//! - upgrading X → R is **rolling** when X can run on R's schema (old
//!   replicas keep working while new ones migrate); otherwise it crosses a
//!   contract migration and needs **downtime** (every replica stopped).
//! - **required stops**: a contract migration removes what the release
//!   before it stopped using (after dual writes, backfills and the like ran
//!   under that release). So for every contract migration C an upgrade
//!   crosses, the last release *before* C must have been installed and run:
//!   from X to R, the stops are those releases that X has not reached yet.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
}

/// A release version, `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
        let v = Version(parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Version::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not MAJOR.MINOR.PATCH")))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesRange {
    pub min: String,
    pub max: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    pub from: Version,
    pub via: Vec<Version>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: Version,
    /// The newest migration this release ships.
    pub schema_level: u32,
    /// Versions that may upgrade to this one (directly or through stops).
    pub upgrade_from: Vec<Version>,
    /// The releases an upgrade from a source must pass through.
    pub required_stops: Vec<Stop>,
    pub postgresql: Vec<u32>,
    pub os: Vec<String>,
    pub kubernetes: KubernetesRange,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatData {
    #[serde(rename = "release")]
    pub releases: Vec<Release>,
}

impl CompatData {
    pub fn parse(text: &str, path: &str) -> Result<CompatData, CompatError> {
        let mut data: CompatData = toml::from_str(text).map_err(|e| CompatError::Parse {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        data.releases.sort_by_key(|r| r.version);
        Ok(data)
    }

    pub fn load(path: &Path) -> Result<CompatData, CompatError> {
        let text = std::fs::read_to_string(path).map_err(|e| CompatError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        CompatData::parse(&text, &path.display().to_string())
    }

    pub fn release(&self, version: Version) -> Option<&Release> {
        self.releases.iter().find(|r| r.version == version)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Expand,
    Contract,
}

/// Every migration's version and declared kind.
#[derive(Debug, Clone, Default)]
pub struct Migrations {
    pub kinds: BTreeMap<u32, Kind>,
}

impl Migrations {
    /// Reads `V<n>__<name>.sql` files and their first-line declarations.
    pub fn load(dir: &Path) -> Result<Migrations, CompatError> {
        let read_err = |e: std::io::Error| CompatError::Read {
            path: dir.display().to_string(),
            reason: e.to_string(),
        };
        let mut kinds = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(version) = name
                .strip_prefix('V')
                .and_then(|r| r.split_once("__"))
                .and_then(|(v, _)| v.parse::<u32>().ok())
            else {
                continue;
            };
            let text = std::fs::read_to_string(entry.path()).map_err(read_err)?;
            let kind = match text.lines().next().map(str::trim) {
                Some("-- kind: expand") => Kind::Expand,
                Some("-- kind: contract") => Kind::Contract,
                _ => {
                    return Err(CompatError::Parse {
                        path: entry.path().display().to_string(),
                        reason: "no `-- kind:` declaration on the first line".to_string(),
                    })
                }
            };
            kinds.insert(version, kind);
        }
        Ok(Migrations { kinds })
    }

    pub fn newest(&self) -> u32 {
        self.kinds.keys().next_back().copied().unwrap_or(0)
    }
}

/// The lowest binary schema level that may run on a schema at `level`.
pub fn min_binary_level(migrations: &Migrations, level: u32) -> u32 {
    migrations
        .kinds
        .range(..=level)
        .filter(|(_, k)| **k == Kind::Contract)
        .map(|(v, _)| *v)
        .next_back()
        .unwrap_or(0)
}

/// Whether release `old` can run on release `new`'s schema.
pub fn runs_on(migrations: &Migrations, old: &Release, new: &Release) -> bool {
    old.schema_level >= min_binary_level(migrations, new.schema_level)
}

/// Earlier releases `release` can be rolled back to without a restore.
pub fn rollback_window(
    data: &CompatData,
    migrations: &Migrations,
    release: &Release,
) -> Vec<Version> {
    data.releases
        .iter()
        .filter(|p| p.version < release.version && runs_on(migrations, p, release))
        .map(|p| p.version)
        .collect()
}

/// Whether old replicas of `from` keep working on `to`'s schema during a
/// rolling upgrade (no contract migration crossed).
pub fn rolling(data: &CompatData, migrations: &Migrations, from: Version, to: Version) -> bool {
    match (data.release(from), data.release(to)) {
        (Some(f), Some(t)) => runs_on(migrations, f, t),
        _ => false,
    }
}

/// The releases an upgrade from `from` to `to` must stop at, oldest first:
/// for each contract migration crossed, the last release before it.
pub fn required_stops(
    data: &CompatData,
    migrations: &Migrations,
    from: Version,
    to: Version,
) -> Vec<Version> {
    let (Some(start), Some(goal)) = (data.release(from), data.release(to)) else {
        return Vec::new();
    };
    let mut stops: Vec<Version> = migrations
        .kinds
        .iter()
        .filter(|(v, k)| {
            **k == Kind::Contract && **v > start.schema_level && **v <= goal.schema_level
        })
        .filter_map(|(contract, _)| {
            data.releases
                .iter()
                .filter(|r| r.schema_level < *contract)
                .map(|r| r.version)
                .next_back()
        })
        .filter(|stop| *stop > from)
        .collect();
    stops.sort();
    stops.dedup();
    stops
}

/// One disagreement between `compat.toml` and what the migrations imply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem(pub String);

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the declarations against the derivations. `current` is the
/// version being built, which must have an entry at the newest schema level.
pub fn check(data: &CompatData, migrations: &Migrations, current: Version) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut p = |s: String| problems.push(Problem(s));
    match data.release(current) {
        None => p(format!(
            "compat.toml has no entry for the current version {current}"
        )),
        Some(r) if r.schema_level != migrations.newest() => p(format!(
            "{current}: schema_level is {}, but the newest migration is V{}",
            r.schema_level,
            migrations.newest()
        )),
        Some(_) => {}
    }
    let mut last_level = 0;
    for r in &data.releases {
        let v = r.version;
        if r.schema_level != 0 && !migrations.kinds.contains_key(&r.schema_level) {
            p(format!(
                "{v}: schema_level {} is not a migration",
                r.schema_level
            ));
        }
        if r.schema_level < last_level {
            p(format!(
                "{v}: schema_level {} is below an earlier release's",
                r.schema_level
            ));
        }
        last_level = r.schema_level;
        for from in &r.upgrade_from {
            if *from >= v {
                p(format!("{v}: upgrade_from {from} is not older"));
                continue;
            }
            if data.release(*from).is_none() {
                p(format!("{v}: upgrade_from {from} has no [[release]] entry"));
                continue;
            }
            let declared: &[Version] = r
                .required_stops
                .iter()
                .find(|s| s.from == *from)
                .map(|s| s.via.as_slice())
                .unwrap_or(&[]);
            let derived = required_stops(data, migrations, *from, v);
            if declared != derived.as_slice() {
                p(format!(
                    "{v}: from {from} the migrations require the stops {} (declared: {})",
                    list(&derived),
                    list(declared)
                ));
            }
        }
        for s in &r.required_stops {
            if !r.upgrade_from.contains(&s.from) {
                p(format!(
                    "{v}: required_stops names {}, which is not in upgrade_from",
                    s.from
                ));
            }
        }
    }
    problems
}

fn list(versions: &[Version]) -> String {
    if versions.is_empty() {
        return "none".to_string();
    }
    versions
        .iter()
        .map(Version::to_string)
        .collect::<Vec<_>>()
        .join(" → ")
}

/// `compat-matrix.md`, generated.
pub fn render_matrix(data: &CompatData, migrations: &Migrations) -> String {
    let mut out = String::from(
        "# Compatibility matrix\n\n\
         Generated from `compat.toml` and the migrations' expand/contract kinds by\n\
         `cargo xtask compat-matrix`; do not edit (a test fails when it drifts).\n\
         How the columns are derived: `compat/src/lib.rs`; releasing: `docs/releasing.md`.\n\n\
         | Release | Schema level | Oldest binary level on its schema | Upgrades from | Binary rollback without restore to | PostgreSQL | OS | Kubernetes (chart) |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in data.releases.iter().rev() {
        let from = if r.upgrade_from.is_empty() {
            "— (first release)".to_string()
        } else {
            r.upgrade_from
                .iter()
                .map(|f| {
                    let stops = required_stops(data, migrations, *f, r.version);
                    let via = if stops.is_empty() {
                        String::new()
                    } else {
                        format!(" via {}", list(&stops))
                    };
                    let mode = if rolling(data, migrations, *f, r.version) {
                        "rolling"
                    } else {
                        "downtime"
                    };
                    format!("{f}{via} ({mode})")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let window = rollback_window(data, migrations, r);
        let first = data.releases.iter().all(|p| p.version >= r.version);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {}–{} |\n",
            r.version,
            r.schema_level,
            min_binary_level(migrations, r.schema_level),
            from,
            if first {
                "—".to_string()
            } else if window.is_empty() {
                "— (restore the backup)".to_string()
            } else {
                list(&window).replace(" → ", ", ")
            },
            r.postgresql
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            r.os.join(", "),
            r.kubernetes.min,
            r.kubernetes.max
        ));
    }
    out
}
