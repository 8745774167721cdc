//! Where a key's value came from (`file:line`, an environment variable or
//! the built-in default), and figment's errors as [`Problem`]s.

use figment::{Figment, Metadata, Source};

use super::{locate, ConfigError, Problem, ENV_PREFIX};

/// Renders where a key's value came from.
pub(super) struct Sources<'a> {
    pub(super) figment: &'a Figment,
    pub(super) file_text: Option<&'a str>,
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

    pub(super) fn of_key(&self, key: &str) -> String {
        // `webhooks.allow_addresses[2]` came from where the list did.
        let key = key.split('[').next().unwrap_or(key);
        self.describe(self.figment.find_metadata(key), key)
    }

    pub(super) fn describe_figment_error(&self, error: figment::Error) -> ConfigError {
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
