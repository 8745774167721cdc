//! The web console: static assets compiled into the binary (no CDN, works
//! air-gapped), served same-origin under the strict CSP. Every console
//! path serves the same page; the script renders the view and talks to
//! `/api/v1` like any integrator.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::AppState;

const INDEX: &str = include_str!("../../console/index.html");

// Every other file below `appliance/console/` (the ES modules, the
// stylesheet, the icon), listed by build.rs.
include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// The console's pages (client-side routes).
pub const PAGES: [&str; 15] = [
    "/",
    "/login",
    "/setup",
    "/reset-password",
    "/users",
    "/account",
    "/audit",
    "/system",
    "/collections",
    "/collections/{name}",
    "/collections/{name}/schema",
    "/exports",
    "/jobs",
    "/webhooks",
    "/imports",
];

/// A response the binary carries: its content type, revalidated on use.
pub(super) fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Assets change with the binary; revalidate rather than cache blindly.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for page in PAGES {
        router = router.route(page, get(index));
    }
    for &(path, content_type, body) in ASSETS {
        router = router.route(path, get(move || async move { asset(content_type, body) }));
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(path: &str) -> &'static str {
        let (_, _, body) = ASSETS
            .iter()
            .find(|(p, _, _)| *p == path)
            .unwrap_or_else(|| panic!("{path} is not an asset"));
        std::str::from_utf8(body).expect("UTF-8")
    }

    /// `base`'s directory joined with a relative module specifier.
    fn resolve(base: &str, specifier: &str) -> String {
        let mut parts: Vec<&str> = base.split('/').collect();
        parts.pop();
        for part in specifier.split('/') {
            match part {
                "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        parts.join("/")
    }

    /// The names a module exports (`export function|const|class NAME`,
    /// `default` for `export default`).
    fn exports(source: &str) -> Vec<String> {
        source
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .map(|rest| {
                let rest = rest.strip_prefix("async ").unwrap_or(rest);
                if rest.starts_with("default") {
                    return "default".to_string();
                }
                rest.split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn every_import_names_a_served_module_that_exports_it() {
        let mut seen = 0;
        for (path, _, _) in ASSETS.iter().filter(|(p, _, _)| p.ends_with(".js")) {
            for line in text(path).lines().filter(|l| l.starts_with("import ")) {
                let (names, specifier) = line
                    .strip_prefix("import ")
                    .and_then(|l| l.strip_suffix("';"))
                    .and_then(|l| l.split_once(" from '"))
                    .unwrap_or_else(|| panic!("{path}: write imports on one line: {line}"));
                let target = resolve(path, specifier);
                let exported = exports(text(&target));
                let wanted: Vec<&str> = match names.strip_prefix('{') {
                    Some(list) => list
                        .trim_end_matches('}')
                        .split(',')
                        .map(|n| n.split(" as ").next().unwrap_or_default().trim())
                        .collect(),
                    None => vec!["default"],
                };
                for name in wanted {
                    assert!(
                        exported.iter().any(|e| e == name),
                        "{path} imports {name} from {target}, which exports {exported:?}"
                    );
                    seen += 1;
                }
            }
        }
        assert!(seen > 50, "only {seen} imports found");
    }

    /// The rate and time-left arithmetic of `lib/rate.js`, run by node
    /// (installed by scripts/test with npm; without it, skipped and said).
    #[test]
    fn progress_rates_and_time_left_follow_the_samples() {
        let module = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console/lib/rate.js");
        let script = format!(
            "import assert from 'node:assert/strict';
             import {{ RateMeter, secondsLeft, formatDuration }} from 'file://{}';
             const m = new RateMeter();
             assert.equal(m.sample('a', 0, 0), null);
             assert.equal(m.sample('a', 100, 1000), 100);
             assert.equal(m.sample('a', 300, 2000), 150);
             // Samples older than the window leave it.
             assert.equal(m.sample('a', 300, 20000), null);
             assert.equal(m.sample('a', 600, 22000), 150);
             // A job that starts over (done went down) is measured afresh.
             assert.equal(m.sample('b', 50, 0), null);
             assert.equal(m.sample('b', 10, 1000), null);
             assert.equal(m.sample('b', 30, 2000), 20);
             assert.equal(secondsLeft(100, 1100, 100), 10);
             assert.equal(secondsLeft(100, 100, 5), null);
             assert.equal(secondsLeft(120, 100, 5), null);
             assert.equal(secondsLeft(0, 100, null), null);
             assert.equal(formatDuration(0.2), '1 s');
             assert.equal(formatDuration(40), '40 s');
             assert.equal(formatDuration(180), '3 min');
             assert.equal(formatDuration(3900), '1 h 5 min');",
            module.display()
        );
        match std::process::Command::new("node")
            .args(["--input-type=module", "-e", &script])
            .output()
        {
            Ok(out) => assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("node cannot run ({e}): lib/rate.js is not tested"),
        }
    }

    #[test]
    fn every_module_is_reached_from_the_page_and_small() {
        assert!(INDEX.contains(r#"<script type="module" src="/assets/app.js">"#));
        assert!(INDEX.contains(r#"href="/assets/app.css""#));
        // What app.js reaches, following imports.
        let mut reached = vec!["/assets/app.js".to_string()];
        let mut i = 0;
        while i < reached.len() {
            let path = reached[i].clone();
            for line in text(&path).lines().filter(|l| l.starts_with("import ")) {
                let specifier = line
                    .rsplit_once(" from '")
                    .map(|(_, s)| s)
                    .unwrap_or_default();
                let target = resolve(&path, specifier.trim_end_matches("';"));
                if !reached.contains(&target) {
                    reached.push(target);
                }
            }
            i += 1;
        }
        for (path, _, body) in ASSETS.iter().filter(|(p, _, _)| p.ends_with(".js")) {
            assert!(
                reached.iter().any(|r| r == path),
                "{path} is served but nothing imports it"
            );
            let lines = body.iter().filter(|b| **b == b'\n').count();
            assert!(
                lines <= 300,
                "{path} has {lines} lines; split it (at most 300)"
            );
        }
    }
}
