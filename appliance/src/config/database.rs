//! `[database]`: the managed cluster (the default) or an external
//! PostgreSQL, its URLs (inline or from files), TLS CA and pool.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::in_range;
use super::secret::{read_secret_file, Secret};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: Option<Secret>,
    pub url_file: Option<PathBuf>,
    pub migration_url: Option<Secret>,
    pub migration_url_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub auto_migrate: bool,
    pub pool_size: usize,
    pub connect_timeout_secs: u64,
    pub slow_statement_ms: u64,
    pub postgres_bin_dir: Option<PathBuf>,
}

/// Which PostgreSQL the appliance uses.
#[derive(Debug, Clone)]
pub enum DatabaseTarget {
    /// A cluster the appliance creates and supervises under `state_dir`.
    Managed { bin_dir: Option<PathBuf> },
    /// An existing server. `migration_url` is the schema owner's connection;
    /// `None` means migrations use `url` too.
    External {
        url: Secret,
        migration_url: Option<Secret>,
    },
}

/// The URL as the PostgreSQL client library takes it. libpq's
/// `verify-ca` and `verify-full` mean "require, and verify", which is what
/// `require` does here (the server certificate and host name are always
/// verified), so they are accepted as `require`.
pub fn normalize_sslmode(url: &str) -> String {
    url.replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require")
}

/// A secret given inline (`key`) or in a file (`key_file`), not both.
pub(super) fn secret_value(
    key: &str,
    inline: &Option<Secret>,
    path: &Option<PathBuf>,
    problem: &mut impl FnMut(&str, String),
) -> Option<Secret> {
    match (inline, path) {
        (Some(_), Some(_)) => {
            problem(key, format!("set either {key} or {key}_file, not both"));
            None
        }
        (Some(value), None) => Some(value.clone()),
        (None, Some(path)) => match read_secret_file(path) {
            Ok(value) => Some(value),
            Err(e) => {
                problem(&format!("{key}_file"), e.to_string());
                None
            }
        },
        (None, None) => None,
    }
}

/// Checks the section; each problem is reported as `(key, message)`.
/// `file` is the configuration file read and `from_file(key)` whether a
/// key's value came from it (an inline password there must not be
/// readable by others).
pub fn check(
    db: &DatabaseConfig,
    file: Option<&Path>,
    from_file: &impl Fn(&str) -> bool,
    problem: &mut impl FnMut(&str, String),
) -> DatabaseTarget {
    in_range(
        problem,
        "database.connect_timeout_secs",
        db.connect_timeout_secs,
        1..=3600,
    );
    in_range(problem, "database.pool_size", db.pool_size as u64, 1..=1000);
    in_range(
        problem,
        "database.slow_statement_ms",
        db.slow_statement_ms,
        1..=3_600_000,
    );
    let url = secret_value("database.url", &db.url, &db.url_file, problem);
    let migration_url = secret_value(
        "database.migration_url",
        &db.migration_url,
        &db.migration_url_file,
        problem,
    );
    for (key, value, in_a_file) in [
        ("database.url", &url, db.url_file.is_some()),
        (
            "database.migration_url",
            &migration_url,
            db.migration_url_file.is_some(),
        ),
    ] {
        let key = if in_a_file {
            format!("{key}_file")
        } else {
            key.to_string()
        };
        if let Some(value) = value {
            if let Err(e) = normalize_sslmode(value.expose()).parse::<tokio_postgres::Config>() {
                // The parser's message never contains the URL itself.
                problem(
                    &key,
                    format!(
                        "not a valid PostgreSQL connection string ({e}); expected \
                         postgresql://USER@HOST[:PORT]/DBNAME[?sslmode=require]"
                    ),
                );
            }
        }
    }
    if let Some(path) = file {
        let readable_by_others = std::fs::metadata(path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o004 != 0)
            .unwrap_or(false);
        let has_password = |value: &Option<Secret>| {
            value.as_ref().is_some_and(|v| {
                normalize_sslmode(v.expose())
                    .parse::<tokio_postgres::Config>()
                    .is_ok_and(|c| c.get_password().is_some())
            })
        };
        for (key, inline_password) in [
            ("database.url", has_password(&db.url)),
            ("database.migration_url", has_password(&db.migration_url)),
        ] {
            if inline_password && readable_by_others && from_file(key) {
                problem(
                    key,
                    format!(
                        "holds a password in {}, which others can read; move it to {key}_file \
                         (a file only the service can read) or `chmod o-r` the config file",
                        path.display()
                    ),
                );
            }
        }
    }
    if migration_url.is_some() && url.is_none() {
        problem(
            "database.migration_url",
            "set without database.url; the managed database needs neither".to_string(),
        );
    }
    if let Some(ca) = &db.ca_file {
        if !ca.is_file() {
            problem(
                "database.ca_file",
                format!("{} does not exist or is not a file", ca.display()),
            );
        }
    }
    match url {
        Some(url) => DatabaseTarget::External { url, migration_url },
        None => DatabaseTarget::Managed {
            bin_dir: db.postgres_bin_dir.clone(),
        },
    }
}
