//! The Prometheus rules shipped with the appliance
//! (`monitoring/prometheus/mogothrow77.rules.yml`): compiled in, so
//! `mogothrow77 monitoring rules` prints them for this very version, with
//! the runbook links pointing where the site reads its documentation.

use crate::config::Settings;

/// The rules as committed; `__RUNBOOK_BASE__` stands for the runbook base.
pub const RULES: &str = include_str!("../../monitoring/prometheus/mogothrow77.rules.yml");

/// The placeholder the committed file uses for the runbook base.
pub const PLACEHOLDER: &str = "__RUNBOOK_BASE__";

/// A runbook base that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--runbook-base `{0}` is not usable; expected an http:// or https:// URL without spaces or \
     quotes, such as https://records.example.com:8443/docs"
)]
pub struct BaseError(pub String);

/// This appliance's own documentation: `https://<first host name>:<port>/docs`.
pub fn default_runbook_base(settings: &Settings) -> String {
    format!("{}docs", settings.console_url(settings.listen.port()))
}

/// The rules with every runbook link under `base` (a trailing `/` is dropped).
pub fn rules(base: &str) -> Result<String, BaseError> {
    let trimmed = base.trim_end_matches('/');
    let host = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    let usable = host.is_some_and(|h| {
        !h.is_empty()
            && h.chars().all(|c| {
                c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '`' | '{' | '}' | '\\' | '#')
            })
    });
    if !usable {
        return Err(BaseError(base.to_string()));
    }
    Ok(RULES.replace(PLACEHOLDER, trimmed))
}

/// Every alert's name with its severity label and runbook URL, read from
/// the rules file's lines (the file's layout: `- alert:` then its labels and
/// annotations, indented below it).
pub fn alerts() -> Vec<(String, Option<String>, Option<String>)> {
    let mut out: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for line in RULES.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert: ") {
            out.push((name.trim().to_string(), None, None));
        } else if let Some(last) = out.last_mut() {
            if let Some(severity) = line.strip_prefix("severity: ") {
                last.1 = Some(severity.trim().to_string());
            } else if let Some(url) = line.strip_prefix("runbook_url: ") {
                last.2 = Some(url.trim().to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_has_a_severity_and_a_runbook_section_that_exists() {
        let alerts = alerts();
        assert!(alerts.len() >= 10, "{alerts:?}");
        for (name, severity, url) in &alerts {
            assert!(
                matches!(severity.as_deref(), Some("critical" | "warning")),
                "{name}: severity {severity:?}"
            );
            let url = url
                .as_deref()
                .unwrap_or_else(|| panic!("{name} has no runbook_url"));
            let path = url
                .strip_prefix(&format!("{PLACEHOLDER}/"))
                .unwrap_or_else(|| panic!("{name}: {url} is not under {PLACEHOLDER}/"));
            let (page, anchor) = path
                .split_once('#')
                .unwrap_or_else(|| panic!("{name}: {url} names no section"));
            let markdown = crate::docs::page(page)
                .unwrap_or_else(|| panic!("{name}: no page {page} in docs/"));
            let anchors = crate::docs::render(markdown).anchors;
            assert!(
                anchors.iter().any(|a| a == anchor),
                "{name}: no heading #{anchor} in docs/{page}"
            );
            assert_eq!(
                anchor,
                name.to_lowercase(),
                "{name}: its section is named after it"
            );
        }
    }

    #[test]
    fn the_base_is_substituted_everywhere_and_checked() {
        let text = rules("https://records.example.com:8443/docs/").expect("rules");
        assert!(!text.contains(PLACEHOLDER));
        assert!(text.contains(
            "runbook_url: https://records.example.com:8443/docs/runbooks/alerts.md#mogothrow77down"
        ));
        for bad in [
            "records.example.com/docs",
            "ftp://x/docs",
            "https://",
            "https://x/do cs",
            "https://x/\"docs",
            "https://x/{{docs}}",
        ] {
            assert_eq!(rules(bad), Err(BaseError(bad.to_string())), "{bad}");
        }
    }
}
