//! Configuration: built-in defaults < config file < `MOGOTHROW77_…` environment.
//!
//! Loading never half-succeeds: every problem is collected and reported with
//! the key, where it was set (`file:line`, the environment variable, or the
//! built-in default) and what is expected.

//!
//! One file per section, each with its struct and its check; the value
//! types the checks produce (address policies, the mail relay, the
//! database target) live with them. This module imports nothing else of
//! the crate: every other module may depend on it.

mod api;
mod audit;
mod auth;
mod backup;
pub mod cidr;
mod database;
mod http;
mod jobs;
mod locate;
mod log;
mod metrics;
mod schedule;
pub mod secret;
mod secrets;
mod service;
mod smtp;
mod sources;
mod telemetry;
mod tls;
mod upgrade;
mod webhooks;

use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use api::ApiConfig;
pub use audit::{AuditConfig, AuditForwarding, SyslogTarget};
pub use auth::AuthConfig;
pub use backup::{BackupConfig, BackupPolicy, PitrPolicy};
pub use cidr::{Cidr, CidrError};
pub use database::{normalize_sslmode, DatabaseConfig, DatabaseTarget};
pub use http::HttpConfig;
pub use jobs::JobsConfig;
pub use log::{LogConfig, LogFormat, LogLevel};
pub use metrics::{read_metrics_token, MetricsAccess, MetricsConfig};
pub use schedule::{Schedule, ScheduleError};
pub use secret::{check_private_file, PrivateFileError, Secret, REDACTED};
pub use secrets::{
    Kek, KeyFile, KeyFileError, KeyFileLocation, KeyId, SecretsConfig, DEFAULT_KEY_FILE, KEY_LEN,
};
pub use service::ServiceConfig;
pub use smtp::{check_address, SmtpConfig, SmtpRelay, SmtpSecurity};
pub use telemetry::{TelemetryConfig, TelemetrySettings};
pub use tls::TlsConfig;
pub use upgrade::UpgradeConfig;
pub use webhooks::{AddressPolicy, WebhooksConfig};

use sources::Sources;

/// Where packages install the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = contracts::locations::CONFIG_FILE;
/// Prefix of configuration environment variables; nested keys use `__`.
pub const ENV_PREFIX: &str = "MOGOTHROW77_";
/// The commented defaults file is the reference for every key.
pub const DEFAULTS_TOML: &str = include_str!("../../config.default.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub state_dir: PathBuf,
    pub service: ServiceConfig,
    pub tls: TlsConfig,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub api: ApiConfig,
    pub jobs: JobsConfig,
    pub webhooks: WebhooksConfig,
    pub smtp: SmtpConfig,
    pub metrics: MetricsConfig,
    pub telemetry: TelemetryConfig,
    pub upgrade: UpgradeConfig,
    pub audit: AuditConfig,
    pub backup: BackupConfig,
    pub secrets: SecretsConfig,
    pub log: LogConfig,
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The effective configuration (secrets redacted when serialized).
    pub config: Config,
    /// The configuration file that was read, if any.
    pub file: Option<PathBuf>,
    pub listen: SocketAddr,
    pub database: DatabaseTarget,
    /// Where webhook deliveries may connect (`webhooks.allow_addresses`,
    /// `webhooks.deny_private_addresses`).
    pub webhook_policy: AddressPolicy,
    /// The mail relay, when `smtp.host` is set.
    pub smtp: Option<SmtpRelay>,
    /// Who may read `/metrics` besides loopback (`[metrics]`).
    pub metrics: MetricsAccess,
    /// Traces (`[telemetry]`).
    pub telemetry: TelemetrySettings,
    /// Where audit entries are forwarded (`[audit]`).
    pub audit: AuditForwarding,
    /// Scheduled backups (`[backup]`).
    pub backup: BackupPolicy,
    /// The key-encryption key file (`[secrets]`).
    pub key_file: KeyFileLocation,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `tls.key_file`.
    pub key: String,
    /// Where the value came from: `FILE:LINE`, `FILE`, `env MOGOTHROW77_…`,
    /// or `built-in default`.
    pub source: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ({}): {}", self.key, self.source, self.message)
    }
}

/// The configuration cannot be used; every problem found is listed.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn one(key: &str, source: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![Problem {
                key: key.to_string(),
                source: source.into(),
                message: message.into(),
            }],
        }
    }
}

impl Settings {
    /// Loads the configuration. `file` is `--config`; it must exist. Without it,
    /// [`DEFAULT_CONFIG_PATH`] is read when present.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let file = match file {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError::one(
                        "--config",
                        "command line",
                        format!("{} does not exist or is not a file", path.display()),
                    ));
                }
                // Absolute, so messages and permission checks name one file.
                Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
            }
            None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.is_file()),
        };
        let file_text = match &file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                ConfigError::one(
                    "--config",
                    path.display().to_string(),
                    format!("cannot read the file: {e}"),
                )
            })?),
            None => None,
        };
        let mut figment = Figment::from(Toml::string(DEFAULTS_TOML));
        if let Some(path) = &file {
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        let sources = Sources {
            figment: &figment,
            file_text: file_text.as_deref(),
        };
        let config: Config = figment
            .extract()
            .map_err(|e| sources.describe_figment_error(e))?;
        validate(config, file, &sources)
    }
}

fn validate(
    config: Config,
    file: Option<PathBuf>,
    sources: &Sources<'_>,
) -> Result<Settings, ConfigError> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            key: key.to_string(),
            source: sources.of_key(key),
            message,
        });
    };

    let listen = match config.listen.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        _ => {
            problem(
                "listen",
                format!(
                    "`{}` is not an address and port; expected IP:PORT with a port \
                     up to 65535, e.g. 0.0.0.0:8443 (port 0 picks a free port)",
                    config.listen
                ),
            );
            None
        }
    };
    if !config.state_dir.is_absolute() {
        problem(
            "state_dir",
            format!(
                "`{}` is not an absolute path; expected e.g. /var/lib/mogothrow77",
                config.state_dir.display()
            ),
        );
    }
    service::check(&config.service, &mut problem);
    tls::check(&config.tls, &mut problem);
    http::check(&config.http, &mut problem);
    auth::check(&config.auth, &mut problem);
    api::check(&config.api, &mut problem);
    jobs::check(&config.jobs, &mut problem);
    let in_the_file = |key: &str| {
        file.as_ref()
            .is_some_and(|path| sources.of_key(key).starts_with(&path.display().to_string()))
    };
    let database = database::check(
        &config.database,
        file.as_deref(),
        &in_the_file,
        &mut problem,
    );
    let smtp = smtp::check(&config.smtp, &mut problem);
    let webhook_policy = webhooks::check(&config.webhooks, &mut problem);
    let metrics = metrics::check(&config.metrics, &mut problem);
    let telemetry = telemetry::check(&config.telemetry, &mut problem);
    upgrade::check(&config.upgrade, &mut problem);
    let audit = audit::check(&config.audit, &mut problem);
    let backup = backup::check(&config.backup, &config.state_dir, &mut problem);
    if backup.pitr.is_some() && matches!(database, DatabaseTarget::External { .. }) {
        problem(
            "backup.pitr",
            "point-in-time recovery here is for the managed database; with database.url the \
             database server's own tooling (its DBA's pgBackRest, Barman or the provider's \
             PITR) owns it: remove backup.pitr and keep the scheduled logical backups"
                .to_string(),
        );
    }

    let key_file = secrets::check(
        &config.secrets,
        &config.state_dir,
        matches!(database, DatabaseTarget::External { .. }),
        &mut problem,
    );

    let Some(listen) = listen.filter(|_| problems.is_empty()) else {
        return Err(ConfigError { problems });
    };
    Ok(Settings {
        config,
        file,
        listen,
        database,
        webhook_policy,
        smtp,
        metrics,
        telemetry,
        audit,
        backup,
        key_file,
    })
}

/// Reports `key` when `value` is outside `range`.
fn in_range(
    problem: &mut impl FnMut(&str, String),
    key: &str,
    value: u64,
    range: RangeInclusive<u64>,
) {
    if !range.contains(&value) {
        problem(
            key,
            format!(
                "{value} is out of range; expected {} to {}",
                range.start(),
                range.end()
            ),
        );
    }
}

impl Settings {
    /// The console's address on `port`: the first TLS host name (the one
    /// the certificate is made for), https unless TLS is off.
    pub fn console_url(&self, port: u16) -> String {
        let scheme = if self.config.tls.enabled {
            "https"
        } else {
            "http"
        };
        let host = self
            .config
            .tls
            .hostnames
            .first()
            .map(String::as_str)
            .unwrap_or("localhost");
        format!("{scheme}://{host}:{port}/")
    }

    /// The effective configuration as TOML, secrets redacted.
    /// Every secret value the configuration holds (database URLs, the
    /// SMTP password, the metrics token, telemetry headers), for scrubbing
    /// text that leaves the host. Never print them.
    pub fn secret_values(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let DatabaseTarget::External { url, migration_url } = &self.database {
            out.push(url.expose());
            if let Some(m) = migration_url {
                out.push(m.expose());
            }
        }
        if let Some(p) = self.smtp.as_ref().and_then(|s| s.password.as_ref()) {
            out.push(p.expose());
        }
        if let Some(token) = &self.metrics.token {
            out.push(token.expose());
        }
        for (_, value) in &self.telemetry.headers {
            out.push(value);
        }
        out
    }

    pub fn effective_toml(&self) -> String {
        toml::to_string_pretty(&self.config)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generative_any_configuration_file_loads_or_is_refused_naming_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        let example = "listen = \"0.0.0.0:8443\"\nstate_dir = \"/var/lib/m77\"\n\n[tls]\n\
                       hostnames = [\"records.example.com\"]\n\n[database]\npool_size = 16\n\
                       slow_statement_ms = 500\n\n[backup]\nschedule = \"daily 02:30\"\nkeep = 7\n\n\
                       [log]\nlevel = \"info\"\n";
        generative::run(
            "configuration file",
            &[example.as_bytes(), DEFAULTS_TOML.as_bytes()],
            &[
                b"[",
                b"]",
                b"=",
                b"\"",
                b"'",
                b"\n",
                b"#",
                b"-1",
                b"18446744073709551616",
                b"1e309",
                b"true",
                b"[api]",
                b"[secrets]\nkey_file = \"rel\"\n",
                b"url = \"x\"",
                b"{ a = 1 }",
                b"\\u0000",
                b"every 0h",
                b"daily 25:61",
            ],
            |_, input| {
                std::fs::write(&path, input).expect("write");
                if let Err(e) = Settings::load(Some(&path)) {
                    assert!(!e.problems.is_empty());
                    for p in &e.problems {
                        assert!(!p.key.is_empty() && !p.message.is_empty(), "{p}");
                    }
                }
            },
        );
    }

    #[test]
    fn the_defaults_are_the_ones_the_tools_assume() {
        // The installer and the upgrade tool read a configuration file that
        // may leave these out (contracts::locations).
        let defaults: Config = Figment::from(Toml::string(DEFAULTS_TOML))
            .extract()
            .expect("the defaults parse");
        assert_eq!(defaults.listen, contracts::locations::LISTEN);
        assert_eq!(
            defaults.state_dir,
            PathBuf::from(contracts::locations::STATE_DIR)
        );
        assert_eq!(
            defaults.state_dir.join(DEFAULT_KEY_FILE),
            PathBuf::from(contracts::locations::KEY_FILE)
        );
        assert_eq!(
            crate::tls::self_signed_paths(&defaults.state_dir).cert,
            defaults
                .state_dir
                .join(contracts::locations::SELF_SIGNED_CERT)
        );
    }
}
