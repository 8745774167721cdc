//! `[metrics]`: who may read `/metrics` besides loopback.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cidr::Cidr;
use super::secret::{read_secret_file, PrivateFileError, Secret};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub allow_addresses: Vec<String>,
    pub token_file: Option<PathBuf>,
}

/// The checked `[metrics]` section.
#[derive(Debug, Clone, Default)]
pub struct MetricsAccess {
    /// Address blocks that may scrape without a token.
    pub allow: Vec<Cidr>,
    /// `metrics.token_file`, re-read on SIGHUP.
    pub token_file: Option<PathBuf>,
    /// The token read from it at start.
    pub token: Option<Secret>,
}

/// Fewest characters a scrape token may have.
pub const TOKEN_MIN_LEN: usize = 16;

/// Reads the scrape token: a private file holding one line of at least
/// [`TOKEN_MIN_LEN`] visible ASCII characters (it travels in an HTTP header).
pub fn read_metrics_token(path: &Path) -> Result<Secret, PrivateFileError> {
    let token = read_secret_file(path)?;
    let text = token.expose();
    let unusable = |reason: &str| PrivateFileError::Unusable {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(unusable(
            "the token must be one line of visible ASCII characters, without spaces; \
             make one with `head -c 32 /dev/urandom | base64`",
        ));
    }
    if text.len() < TOKEN_MIN_LEN {
        return Err(unusable(
            "the token is shorter than 16 characters; make a longer one with \
             `head -c 32 /dev/urandom | base64`",
        ));
    }
    Ok(token)
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(config: &MetricsConfig, problem: &mut impl FnMut(&str, String)) -> MetricsAccess {
    let mut allow = Vec::new();
    for (i, text) in config.allow_addresses.iter().enumerate() {
        match Cidr::parse(text) {
            Ok(cidr) => allow.push(cidr),
            Err(e) => problem(&format!("metrics.allow_addresses[{i}]"), e.to_string()),
        }
    }
    let token = config
        .token_file
        .as_deref()
        .and_then(|path| match read_metrics_token(path) {
            Ok(token) => Some(token),
            Err(e) => {
                problem("metrics.token_file", e.to_string());
                None
            }
        });
    MetricsAccess {
        allow,
        token_file: config.token_file.clone(),
        token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn token_file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("token");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }

    #[test]
    fn tokens_must_be_long_visible_ascii() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = "AbCdEfGh0123456789+/=";
        assert_eq!(
            read_metrics_token(&token_file(dir.path(), &format!("{good}\n")))
                .expect("good")
                .expose(),
            good
        );
        for bad in [
            "short-token",
            "has a space in the token",
            "tökenwithumlaut1234",
        ] {
            let err = read_metrics_token(&token_file(dir.path(), bad)).expect_err(bad);
            assert!(
                matches!(err, PrivateFileError::Unusable { .. }),
                "{bad}: {err}"
            );
            assert!(!err.to_string().contains(bad), "the token is echoed: {err}");
        }
    }

    #[test]
    fn bad_blocks_and_files_are_named_by_key() {
        let mut problems = Vec::new();
        let access = check(
            &MetricsConfig {
                allow_addresses: vec!["10.0.0.0/8".into(), "10.0.0.0/99".into()],
                token_file: Some("/nonexistent/metrics-token".into()),
            },
            &mut |key: &str, message: String| problems.push((key.to_string(), message)),
        );
        assert_eq!(access.allow.len(), 1);
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["metrics.allow_addresses[1]", "metrics.token_file"]);
    }
}
