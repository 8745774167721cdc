//! `[telemetry]`: traces over OTLP/HTTP to an OpenTelemetry collector.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::secret::{check_private_file, PrivateFileError};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    pub otlp_endpoint: Option<String>,
    pub sample_ratio: f64,
    pub service_name: String,
    pub resource_attributes: BTreeMap<String, String>,
    pub headers_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

/// The checked `[telemetry]` section.
#[derive(Debug, Clone, Default)]
pub struct TelemetrySettings {
    /// The collector's base URL (`/v1/traces` is appended); `None`: off.
    pub endpoint: Option<String>,
    pub sample_ratio: f64,
    pub service_name: String,
    pub resource_attributes: Vec<(String, String)>,
    /// From `headers_file` (secrets, e.g. an API key): name, value.
    pub headers: Vec<(String, String)>,
    pub ca_file: Option<PathBuf>,
}

/// Whether `url` is an http(s) base URL: scheme, host, optional port and
/// path; no credentials, query or fragment.
fn endpoint_problem(url: &str) -> Option<&'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Some("expected an http:// or https:// URL");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Some("the URL has no host");
    }
    if authority.contains('@') {
        return Some("credentials do not belong in the URL; use telemetry.headers_file");
    }
    if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("the URL must not hold a query, a fragment or spaces");
    }
    if url.parse::<axum::http::Uri>().is_err() {
        return Some("not a valid URL");
    }
    None
}

/// Reads `Name: value` lines (blank lines and `#` comments skipped).
fn read_headers(path: &Path) -> Result<Vec<(String, String)>, PrivateFileError> {
    check_private_file(path)?;
    let unusable = |reason: String| PrivateFileError::Unusable {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| PrivateFileError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut headers = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            unusable(format!(
                "line {}: expected `Name: value`, e.g. `Authorization: Bearer …`",
                i + 1
            ))
        })?;
        let (name, value) = (name.trim(), value.trim());
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || axum::http::HeaderValue::from_str(value).is_err()
        {
            // The value may be a secret: name the line, never the value.
            return Err(unusable(format!(
                "line {}: not a valid HTTP header name and value",
                i + 1
            )));
        }
        headers.push((name.to_string(), value.to_string()));
    }
    Ok(headers)
}

/// Checks the section; each problem is reported as `(key, message)`.
pub fn check(
    config: &TelemetryConfig,
    problem: &mut impl FnMut(&str, String),
) -> TelemetrySettings {
    let endpoint = config
        .otlp_endpoint
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if let Some(url) = endpoint {
        if let Some(why) = endpoint_problem(url) {
            problem(
                "telemetry.otlp_endpoint",
                format!("`{url}`: {why}; expected the collector's base URL, e.g. https://otel-collector.example.com:4318"),
            );
        }
    }
    if !(0.0..=1.0).contains(&config.sample_ratio) {
        problem(
            "telemetry.sample_ratio",
            format!(
                "{} is out of range; expected 0.0 (no traces) to 1.0 (every trace)",
                config.sample_ratio
            ),
        );
    }
    let service_name = config.service_name.trim();
    if service_name.is_empty() || service_name.len() > 255 {
        problem(
            "telemetry.service_name",
            "expected a name of 1 to 255 characters, e.g. mogothrow77".to_string(),
        );
    }
    for key in config.resource_attributes.keys() {
        if key.trim().is_empty() {
            problem(
                "telemetry.resource_attributes",
                "an attribute has an empty name".to_string(),
            );
        }
    }
    let headers = match &config.headers_file {
        Some(path) => read_headers(path).unwrap_or_else(|e| {
            problem("telemetry.headers_file", e.to_string());
            Vec::new()
        }),
        None => Vec::new(),
    };
    if let Some(ca) = &config.ca_file {
        if !ca.is_file() {
            problem(
                "telemetry.ca_file",
                format!("{} does not exist or is not a file", ca.display()),
            );
        }
    }
    TelemetrySettings {
        endpoint: endpoint.map(|e| e.trim_end_matches('/').to_string()),
        sample_ratio: config.sample_ratio,
        service_name: service_name.to_string(),
        resource_attributes: config
            .resource_attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        headers,
        ca_file: config.ca_file.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config() -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: None,
            sample_ratio: 1.0,
            service_name: "mogothrow77".to_string(),
            resource_attributes: BTreeMap::new(),
            headers_file: None,
            ca_file: None,
        }
    }

    fn problems(c: &TelemetryConfig) -> Vec<String> {
        let mut out = Vec::new();
        check(c, &mut |key: &str, _m: String| out.push(key.to_string()));
        out
    }

    #[test]
    fn endpoints_ratios_and_names_are_checked() {
        assert!(problems(&config()).is_empty());
        for good in [
            "http://127.0.0.1:4318",
            "https://otel.example.com:4318/",
            "https://otel.example.com/otlp",
        ] {
            let c = TelemetryConfig {
                otlp_endpoint: Some(good.into()),
                ..config()
            };
            assert!(problems(&c).is_empty(), "{good}");
        }
        for bad in [
            "otel:4318",
            "ftp://x",
            "https://",
            "https://u:p@x",
            "https://x/v1?x=1",
            "https://x y",
        ] {
            let c = TelemetryConfig {
                otlp_endpoint: Some(bad.into()),
                ..config()
            };
            assert_eq!(problems(&c), ["telemetry.otlp_endpoint"], "{bad}");
        }
        for ratio in [-0.1, 1.5, f64::NAN] {
            let c = TelemetryConfig {
                sample_ratio: ratio,
                ..config()
            };
            assert_eq!(problems(&c), ["telemetry.sample_ratio"], "{ratio}");
        }
        let c = TelemetryConfig {
            service_name: " ".into(),
            ..config()
        };
        assert_eq!(problems(&c), ["telemetry.service_name"]);
    }

    #[test]
    fn header_files_are_private_and_well_formed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("headers");
        std::fs::write(
            &path,
            "# the collector's key\nAuthorization: Bearer s3cret\nX-Tenant: records\n",
        )
        .expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            read_headers(&path).expect("headers"),
            [
                ("Authorization".to_string(), "Bearer s3cret".to_string()),
                ("X-Tenant".to_string(), "records".to_string())
            ]
        );
        std::fs::write(&path, "Authorization Bearer s3cret\n").expect("write");
        let e = read_headers(&path).expect_err("no colon");
        assert!(
            e.to_string().contains("line 1") && !e.to_string().contains("s3cret"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            read_headers(&path),
            Err(PrivateFileError::TooOpen { .. })
        ));
    }
}
