//! Configuration: built-in defaults < config file < `MOGOTHROW77_…` environment.
//!
//! Loading never half-succeeds: every problem is collected and reported with
//! the key, where it was set (`file:line`, the environment variable, or the
//! built-in default) and what is expected.

mod locate;
mod metrics;
pub mod secret;
mod telemetry;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::{Figment, Metadata, Source};
use serde::{Deserialize, Serialize};

pub use metrics::{read_metrics_token, MetricsAccess, MetricsConfig};
pub use secret::{check_private_file, PrivateFileError, Secret};
pub use telemetry::{TelemetryConfig, TelemetrySettings};

/// Where packages install the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/mogothrow77/config.toml";
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
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub session_idle_minutes: u64,
    pub session_absolute_hours: u64,
    pub lockout_account_failures: u32,
    pub lockout_address_failures: u32,
    pub lockout_window_minutes: u64,
    pub lockout_minutes: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub rate_limit_per_minute: u32,
    pub query_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    pub workers: usize,
    pub lease_secs: u64,
    pub export_retention_hours: u64,
    pub import_max_mb: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: String,
    pub username: String,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub from: String,
    pub ca_file: Option<PathBuf>,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub disable_after_failures: u32,
    pub disable_after_hours: u64,
    pub allow_addresses: Vec<String>,
    pub deny_private_addresses: bool,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub user: String,
    pub group: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub enabled: bool,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub header_read_timeout_secs: u64,
    pub tls_handshake_timeout_secs: u64,
    pub body_limit_bytes: usize,
    pub shutdown_grace_secs: u64,
}

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
    pub postgres_bin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: LogLevel,
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
    pub webhook_policy: crate::webhooks::guard::Policy,
    /// The mail relay, when `smtp.host` is set.
    pub smtp: Option<crate::notify::smtp::Relay>,
    /// Who may read `/metrics` besides loopback (`[metrics]`).
    pub metrics: MetricsAccess,
    /// Traces (`[telemetry]`).
    pub telemetry: TelemetrySettings,
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

/// Renders where a key's value came from.
struct Sources<'a> {
    figment: &'a Figment,
    file_text: Option<&'a str>,
}

impl Sources<'_> {
    fn describe(&self, metadata: Option<&Metadata>, key: &str) -> String {
        let Some(md) = metadata else {
            return "built-in default".to_string();
        };
        match &md.source {
            Some(Source::File(path)) => {
                match self.file_text.and_then(|t| locate::line_of_key(t, key)) {
                    Some(line) => format!("{}:{line}", path.display()),
                    None => path.display().to_string(),
                }
            }
            Some(Source::Code(_)) | Some(Source::Custom(_)) | None
                if md.name.contains("environment") =>
            {
                let parts: Vec<&str> = key.split('.').collect();
                format!(
                    "environment variable {}{}",
                    ENV_PREFIX,
                    parts.join("__").to_uppercase()
                )
            }
            _ => "built-in default".to_string(),
        }
    }

    fn of_key(&self, key: &str) -> String {
        // `webhooks.allow_addresses[2]` came from where the list did.
        let key = key.split('[').next().unwrap_or(key);
        self.describe(self.figment.find_metadata(key), key)
    }

    fn describe_figment_error(&self, error: figment::Error) -> ConfigError {
        use figment::error::Kind;
        let mut problems = Vec::new();
        for e in error {
            let mut path = e.path.clone();
            let message = match &e.kind {
                Kind::UnknownField(field, expected) => {
                    if path.last() != Some(field) {
                        path.push(field.clone());
                    }
                    format!("unknown key; expected one of: {}", expected.join(", "))
                }
                Kind::MissingField(field) => {
                    if path.last().map(|s| s.as_str()) != Some(field) {
                        path.push(field.to_string());
                    }
                    "missing key".to_string()
                }
                Kind::InvalidType(actual, expected) => {
                    format!("expected {expected}, found {actual}")
                }
                Kind::InvalidValue(actual, expected) => {
                    format!("expected {expected}, found {actual}")
                }
                Kind::UnknownVariant(found, expected) => format!(
                    "unknown value `{found}`; expected one of: {}",
                    expected.join(", ")
                ),
                other => other.to_string(),
            };
            let key = if path.is_empty() {
                "(whole file)".to_string()
            } else {
                path.join(".")
            };
            let source = match &e.metadata {
                Some(md) => self.describe(Some(md), &key),
                None => self.of_key(&key),
            };
            problems.push(Problem {
                key,
                source,
                message,
            });
        }
        ConfigError { problems }
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
    for (key, value) in [
        ("service.user", &config.service.user),
        ("service.group", &config.service.group),
    ] {
        if value.is_empty() {
            problem(key, "must not be empty".to_string());
        }
    }
    match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(_), None) => problem(
            "tls.key_file",
            "missing: tls.cert_file is set, so the key must be set too".to_string(),
        ),
        (None, Some(_)) => problem(
            "tls.cert_file",
            "missing: tls.key_file is set, so the certificate must be set too".to_string(),
        ),
        (Some(_), Some(key)) if config.tls.enabled => {
            if let Err(e) = check_private_file(key) {
                problem("tls.key_file", e.to_string());
            }
        }
        _ => {}
    }
    if config.tls.hostnames.is_empty() || config.tls.hostnames.iter().any(|h| h.is_empty()) {
        problem(
            "tls.hostnames",
            "expected a list of one or more non-empty host names".to_string(),
        );
    }
    for (key, value) in [
        (
            "http.header_read_timeout_secs",
            config.http.header_read_timeout_secs,
        ),
        (
            "http.tls_handshake_timeout_secs",
            config.http.tls_handshake_timeout_secs,
        ),
        (
            "database.connect_timeout_secs",
            config.database.connect_timeout_secs,
        ),
    ] {
        if !(1..=3600).contains(&value) {
            problem(key, format!("{value} is out of range; expected 1 to 3600"));
        }
    }
    if config.http.shutdown_grace_secs > 3600 {
        problem(
            "http.shutdown_grace_secs",
            format!(
                "{} is out of range; expected 0 to 3600",
                config.http.shutdown_grace_secs
            ),
        );
    }
    if !(1024..=1 << 30).contains(&config.http.body_limit_bytes) {
        problem(
            "http.body_limit_bytes",
            format!(
                "{} is out of range; expected 1024 to 1073741824",
                config.http.body_limit_bytes
            ),
        );
    }
    for (key, value, range) in [
        (
            "auth.session_idle_minutes",
            config.auth.session_idle_minutes,
            1..=10080,
        ),
        (
            "auth.session_absolute_hours",
            config.auth.session_absolute_hours,
            1..=720,
        ),
        (
            "auth.lockout_window_minutes",
            config.auth.lockout_window_minutes,
            1..=1440,
        ),
        (
            "auth.lockout_minutes",
            config.auth.lockout_minutes,
            1..=1440,
        ),
        (
            "auth.lockout_account_failures",
            u64::from(config.auth.lockout_account_failures),
            1..=1000,
        ),
        (
            "auth.lockout_address_failures",
            u64::from(config.auth.lockout_address_failures),
            1..=100000,
        ),
        (
            "api.rate_limit_per_minute",
            u64::from(config.api.rate_limit_per_minute),
            1..=1_000_000,
        ),
        (
            "api.query_timeout_ms",
            config.api.query_timeout_ms,
            100..=600_000,
        ),
        ("jobs.workers", config.jobs.workers as u64, 0..=32),
        ("jobs.lease_secs", config.jobs.lease_secs, 2..=3600),
        (
            "jobs.export_retention_hours",
            config.jobs.export_retention_hours,
            1..=8760,
        ),
        ("jobs.import_max_mb", config.jobs.import_max_mb, 1..=10240),
        (
            "webhooks.timeout_secs",
            config.webhooks.timeout_secs,
            1..=300,
        ),
        (
            "webhooks.max_attempts",
            u64::from(config.webhooks.max_attempts),
            1..=50,
        ),
        (
            "webhooks.disable_after_failures",
            u64::from(config.webhooks.disable_after_failures),
            1..=100_000,
        ),
        (
            "webhooks.disable_after_hours",
            config.webhooks.disable_after_hours,
            0..=8760,
        ),
    ] {
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
    if !(1..=1000).contains(&config.database.pool_size) {
        problem(
            "database.pool_size",
            format!(
                "{} is out of range; expected 1 to 1000",
                config.database.pool_size
            ),
        );
    }

    let db = &config.database;
    let mut secret =
        |key: &str, inline: &Option<Secret>, path: &Option<PathBuf>| -> Option<Secret> {
            match (inline, path) {
                (Some(_), Some(_)) => {
                    problem(key, format!("set either {key} or {key}_file, not both"));
                    None
                }
                (Some(value), None) => Some(value.clone()),
                (None, Some(path)) => match secret::read_secret_file(path) {
                    Ok(value) => Some(value),
                    Err(e) => {
                        problem(&format!("{key}_file"), e.to_string());
                        None
                    }
                },
                (None, None) => None,
            }
        };
    let url = secret("database.url", &db.url, &db.url_file);
    let migration_url = secret(
        "database.migration_url",
        &db.migration_url,
        &db.migration_url_file,
    );
    let smtp_password = if config.smtp.host.trim().is_empty() {
        None
    } else {
        secret(
            "smtp.password",
            &config.smtp.password,
            &config.smtp.password_file,
        )
    };
    for (key, value, from_file) in [
        ("database.url", &url, db.url_file.is_some()),
        (
            "database.migration_url",
            &migration_url,
            db.migration_url_file.is_some(),
        ),
    ] {
        let key = if from_file {
            format!("{key}_file")
        } else {
            key.to_string()
        };
        let key = key.as_str();
        if let Some(value) = value {
            if let Err(e) =
                crate::db::normalize_sslmode(value.expose()).parse::<tokio_postgres::Config>()
            {
                // The parser's message never contains the URL itself.
                problem(
                    key,
                    format!(
                        "not a valid PostgreSQL connection string ({e}); expected \
                         postgresql://USER@HOST[:PORT]/DBNAME[?sslmode=require]"
                    ),
                );
            }
        }
    }
    if let Some(path) = &file {
        let readable_by_others = std::fs::metadata(path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o004 != 0)
            .unwrap_or(false);
        let has_password = |value: &Option<Secret>| {
            value.as_ref().is_some_and(|v| {
                crate::db::normalize_sslmode(v.expose())
                    .parse::<tokio_postgres::Config>()
                    .is_ok_and(|c| c.get_password().is_some())
            })
        };
        for (key, inline_password) in [
            ("database.url", has_password(&db.url)),
            ("database.migration_url", has_password(&db.migration_url)),
        ] {
            if inline_password
                && readable_by_others
                && sources.of_key(key).starts_with(&path.display().to_string())
            {
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

    let smtp = smtp_relay(&config.smtp, smtp_password, &mut problem);
    let mut allow = Vec::new();
    for (i, text) in config.webhooks.allow_addresses.iter().enumerate() {
        match crate::webhooks::guard::Cidr::parse(text) {
            Ok(cidr) => allow.push(cidr),
            Err(e) => problem(&format!("webhooks.allow_addresses[{i}]"), e.to_string()),
        }
    }
    if let Some(ca) = &config.webhooks.ca_file {
        if !ca.is_file() {
            problem(
                "webhooks.ca_file",
                format!("{} does not exist or is not a file", ca.display()),
            );
        }
    }
    let metrics = metrics::check(&config.metrics, &mut problem);
    let telemetry = telemetry::check(&config.telemetry, &mut problem);

    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    let webhook_policy = crate::webhooks::guard::Policy {
        allow,
        deny_private: config.webhooks.deny_private_addresses,
    };
    let database = match url {
        Some(url) => DatabaseTarget::External { url, migration_url },
        None => DatabaseTarget::Managed {
            bin_dir: config.database.postgres_bin_dir.clone(),
        },
    };
    let Some(listen) = listen else {
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
    })
}

/// The mail relay from `[smtp]`; `None` when `smtp.host` is empty.
fn smtp_relay(
    c: &SmtpConfig,
    password: Option<Secret>,
    problem: &mut impl FnMut(&str, String),
) -> Option<crate::notify::smtp::Relay> {
    use crate::notify::smtp::{check_address, Relay, Security};
    if c.host.trim().is_empty() {
        return None;
    }
    let security = Security::parse(&c.security);
    if security.is_none() {
        problem(
            "smtp.security",
            format!(
                "unknown value `{}`; expected one of: starttls, tls, none",
                c.security
            ),
        );
    }
    if c.port == 0 {
        problem(
            "smtp.port",
            "0 is not a port; expected 1 to 65535 (587 for starttls, 465 for tls)".to_string(),
        );
    }
    if let Err(e) = check_address(&c.from) {
        problem("smtp.from", e);
    }
    if !(1..=300).contains(&c.timeout_secs) {
        problem(
            "smtp.timeout_secs",
            format!("{} is out of range; expected 1 to 300", c.timeout_secs),
        );
    }
    let username = (!c.username.is_empty()).then(|| c.username.clone());
    match (&username, &password) {
        (Some(_), None) => problem(
            "smtp.password",
            "missing: smtp.username is set, so set smtp.password or smtp.password_file".to_string(),
        ),
        (None, Some(_)) => problem(
            "smtp.username",
            "missing: a password is set, so the user name must be too".to_string(),
        ),
        (Some(_), Some(_)) if security == Some(Security::None) => problem(
            "smtp.security",
            "is \"none\", but a password is set: it would cross the network in clear; use starttls or tls".to_string(),
        ),
        _ => {}
    }
    if let Some(ca) = &c.ca_file {
        if !ca.is_file() {
            problem(
                "smtp.ca_file",
                format!("{} does not exist or is not a file", ca.display()),
            );
        }
    }
    Some(Relay {
        host: c.host.trim().to_string(),
        port: c.port,
        security: security.unwrap_or(Security::StartTls),
        username,
        password,
        from: c.from.clone(),
        timeout: std::time::Duration::from_secs(c.timeout_secs),
    })
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
    pub fn effective_toml(&self) -> String {
        toml::to_string_pretty(&self.config)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}
