//! PostgreSQL installations on this host: where the server and client
//! programs are, and which major version they are.

use std::path::{Path, PathBuf};

use super::managed::ManagedError;

/// A PostgreSQL installation: its `bin` directory and major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
    pub major: String,
}

impl PgBinaries {
    /// A server installation: `initdb` and `postgres` (the managed mode).
    fn at(dir: &Path) -> Option<PgBinaries> {
        if !dir.join("initdb").is_file() {
            return None;
        }
        PgBinaries::versioned(dir, "postgres")
    }

    /// The client programs alone (`pg_dump`, `pg_restore`, `psql`): what
    /// backups and restores of an external database need, e.g. from a
    /// `postgresql-client` package without the server.
    fn clients_at(dir: &Path) -> Option<PgBinaries> {
        if !dir.join("pg_restore").is_file() || !dir.join("psql").is_file() {
            return None;
        }
        PgBinaries::versioned(dir, "pg_dump")
    }

    /// `dir` with the major version `program --version` reports.
    fn versioned(dir: &Path, program: &str) -> Option<PgBinaries> {
        let program = dir.join(program);
        if !program.is_file() {
            return None;
        }
        let out = std::process::Command::new(&program)
            .arg("--version")
            .output()
            .ok()?;
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.split_whitespace().nth(2)?;
        let major = version.split('.').next()?.to_string();
        Some(PgBinaries {
            bin_dir: dir.to_path_buf(),
            major,
        })
    }
}

/// Every PostgreSQL server installation found, in search order:
/// `pg_config --bindir`, `PATH`, then `/usr/lib/postgresql/*/bin` (highest
/// major first).
pub fn discover(configured: Option<&Path>) -> (Vec<PgBinaries>, String) {
    discover_with(configured, "postgres", PgBinaries::at)
}

/// Every set of PostgreSQL client programs found, searched like
/// [`discover`]: a server installation has them, and so has a host with
/// only the client package.
pub fn discover_clients(configured: Option<&Path>) -> (Vec<PgBinaries>, String) {
    discover_with(configured, "pg_dump", PgBinaries::clients_at)
}

fn discover_with(
    configured: Option<&Path>,
    program: &str,
    probe: fn(&Path) -> Option<PgBinaries>,
) -> (Vec<PgBinaries>, String) {
    if let Some(dir) = configured {
        return (
            probe(dir).into_iter().collect(),
            format!("in {} (database.postgres_bin_dir)", dir.display()),
        );
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        if out.status.success() {
            dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    dirs.extend(versioned.into_iter().map(|(_, d)| d));
    let mut found: Vec<PgBinaries> = Vec::new();
    for dir in dirs {
        // Resolve symlinks (e.g. /usr/local/bin/postgres) to the real install
        // (Debian's /usr/bin/pg_dump is its pg_wrapper script: not one).
        let real = std::fs::canonicalize(dir.join(program))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or(dir);
        if let Some(b) = probe(&real) {
            if !found.contains(&b) {
                found.push(b);
            }
        }
    }
    (
        found,
        "via pg_config, in PATH or in /usr/lib/postgresql/*/bin".to_string(),
    )
}

/// Chooses the binaries for a data directory: its recorded major version when
/// it exists, else the highest installed major version.
pub fn choose(
    found: &[PgBinaries],
    searched: &str,
    data_dir: &Path,
) -> Result<PgBinaries, ManagedError> {
    if found.is_empty() {
        return Err(ManagedError::BinariesMissing {
            searched: searched.to_string(),
        });
    }
    match std::fs::read_to_string(data_dir.join("PG_VERSION")) {
        Ok(recorded) => {
            let recorded = recorded.trim().to_string();
            found
                .iter()
                .find(|b| b.major == recorded)
                .cloned()
                .ok_or_else(|| ManagedError::MajorVersionChanged {
                    data_dir: data_dir.display().to_string(),
                    recorded,
                    found: found
                        .iter()
                        .map(|b| b.major.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        }
        Err(_) => found
            .iter()
            .max_by_key(|b| b.major.parse::<u32>().unwrap_or(0))
            .cloned()
            .ok_or_else(|| ManagedError::BinariesMissing {
                searched: searched.to_string(),
            }),
    }
}
