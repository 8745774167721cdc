//! The files of `monitoring/` in a real Prometheus scraping a real `serve`:
//! - the alert rules, over TLS with the scrape token: stopping the database
//!   makes `Mogothrow77DatabaseUnavailable` go pending, then firing;
//!   starting it again resolves it. The rules are the ones `mogothrow77
//!   monitoring rules` prints, with every `for:` shortened for the test (a
//!   copy made here, not committed);
//! - the Grafana dashboards: every panel's query is valid and returns
//!   series once the server has had some traffic.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::app::{App, AppConfig};
use crate::harness::pg::PgCluster;
use crate::harness::prometheus::Prometheus;

const TOKEN: &str = "YWxlcnRpbmctdGVzdC1zY3JhcGUtdG9rZW4";

/// The shipped rules with each `for:` at 3 s and every group evaluated each
/// second, runbook links under a test base.
fn rules_for_test() -> String {
    let rules = mogothrow77::monitoring::rules("https://records.test/docs").expect("rules");
    rules
        .lines()
        .map(|line| {
            let indent = &line[..line.len() - line.trim_start().len()];
            let key = line.trim_start().split(':').next().unwrap_or_default();
            match key {
                // Alerts wait 3 s instead of minutes; groups run every second.
                "for" => format!("{indent}for: 3s"),
                "interval" => format!("{indent}interval: 1s"),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A server on `cluster` reachable on a non-loopback address, so the scrape
/// needs the token; and a Prometheus scraping it every second.
async fn scraped_server(cluster: &PgCluster, db: &str) -> (AppConfig, App, Prometheus) {
    let host = crate::harness::non_loopback_address()
        .expect("this test needs a non-loopback address on the host (a default route)");
    let config = AppConfig::external(&cluster.dsn(db), "").env("MOGOTHROW77_LISTEN", "0.0.0.0:0");
    let token = config.path("metrics-token");
    crate::harness::secret_file(&token, TOKEN);
    let config = config.env(
        "MOGOTHROW77_METRICS__TOKEN_FILE",
        &token.display().to_string(),
    );
    let mut app = config.spawn();
    let port = app.wait_ready().port();
    let target = SocketAddr::new(host, port);
    // Prometheus's own copy of the token, and the server's certificate as
    // the CA it trusts.
    let credentials = config.path("prometheus-token");
    std::fs::write(&credentials, TOKEN).expect("token for prometheus");
    let ca = config.state_dir().join("tls/cert.pem");
    let prometheus_config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files: [RULES]\n\
         scrape_configs:\n  - job_name: mogothrow77\n    scheme: https\n\
         \x20   tls_config:\n      ca_file: {}\n      server_name: localhost\n\
         \x20   authorization:\n      credentials_file: {}\n\
         \x20   static_configs:\n      - targets: [\"{target}\"]\n",
        ca.display(),
        credentials.display(),
    );
    let prometheus = Prometheus::start(&prometheus_config, &rules_for_test()).await;
    (config, app, prometheus)
}

async fn wait_for(
    prometheus: &Prometheus,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&[serde_json::Value]) -> bool,
    expr: &str,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let result = prometheus.query(expr).await;
        if done(&result) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: `{expr}` gave {result:?}\nprometheus log:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn value(result: &[serde_json::Value]) -> Option<f64> {
    result.first()?.get("value")?.get(1)?.as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_fires_its_alert_and_recovery_resolves_it() {
    let mut cluster = PgCluster::start();
    let db = cluster.create_database().await;
    let (_config, mut app, prometheus) = scraped_server(&cluster, &db).await;

    wait_for(
        &prometheus,
        "the target is scraped with the token",
        Duration::from_secs(30),
        |r| value(r) == Some(1.0),
        "up{job=\"mogothrow77\"}",
    )
    .await;
    wait_for(
        &prometheus,
        "the database probe is up",
        Duration::from_secs(30),
        |r| value(r) == Some(1.0),
        "mogothrow77_database_up",
    )
    .await;
    assert_eq!(
        prometheus
            .alert_state("Mogothrow77DatabaseUnavailable")
            .await,
        None
    );
    // Every rule loaded and evaluates without error against real series.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let groups = prometheus.api("/api/v1/rules").await;
        let rules: Vec<serde_json::Value> = groups["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        assert!(rules.len() >= 30, "{groups}");
        let unhealthy: Vec<_> = rules.iter().filter(|r| r["health"] != "ok").collect();
        if unhealthy.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rules not evaluated well: {unhealthy:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    cluster.stop();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let state = prometheus
            .alert_state("Mogothrow77DatabaseUnavailable")
            .await;
        if let Some(state) = &state {
            if seen.last() != Some(state) {
                seen.push(state.clone());
            }
            if state == "firing" {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the alert did not fire within 60 s (states seen: {seen:?})\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen, ["pending", "firing"], "pending first, then firing");
    // The runbook link points at the section for this alert.
    let alerts = prometheus.api("/api/v1/alerts").await;
    let alert = alerts["data"]["alerts"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|a| a["labels"]["alertname"] == "Mogothrow77DatabaseUnavailable")
                .cloned()
        })
        .expect("the alert");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "https://records.test/docs/runbooks/alerts.md#mogothrow77databaseunavailable"
    );

    cluster.run();
    let deadline = Instant::now() + Duration::from_secs(60);
    while prometheus
        .alert_state("Mogothrow77DatabaseUnavailable")
        .await
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the alert was not resolved within 60 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(app.stop().success(), "{}", app.output());
}

/// Every panel (rows' panels included) of a dashboard.
fn panels(dashboard: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        if panel["type"] == "row" {
            out.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        } else {
            out.push(panel.clone());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_panel_query_returns_series() {
    use serde_json::json;
    let site = crate::harness::api::Site::start().await;
    // Traffic: a collection, records written, listed and read.
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "assets", "fields": [{ "name": "tag", "type": "text" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = site
        .admin
        .post(
            "/api/v1/collections/assets/records",
            json!({ "data": { "tag": "A-1" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_i64().expect("id");
    for _ in 0..3 {
        assert_eq!(
            site.admin
                .get("/api/v1/collections/assets/records")
                .await
                .status,
            200
        );
        assert_eq!(
            site.admin
                .get(&format!("/api/v1/collections/assets/records/{id}"))
                .await
                .status,
            200
        );
    }

    let ca = site.config.state_dir().join("tls/cert.pem");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: mogothrow77\n    scheme: https\n\
         \x20   tls_config:\n      ca_file: {}\n      server_name: localhost\n\
         \x20   static_configs:\n      - targets: [\"{}\"]\n",
        ca.display(),
        site.addr,
    );
    let prometheus = Prometheus::start(&config, "groups: []\n").await;
    // Rates need two samples of each series in their window.
    wait_for(
        &prometheus,
        "two scrapes",
        Duration::from_secs(30),
        |r| !r.is_empty(),
        "rate(mogothrow77_process_cpu_seconds_total[1m])",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../monitoring/grafana");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("monitoring/grafana")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    let mut failures = Vec::new();
    let mut uids = std::collections::HashSet::new();
    let mut queries = 0;
    for file in &files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("JSON");
        assert!(
            uids.insert(dashboard["uid"].to_string()),
            "{name}: uid repeated"
        );
        assert!(
            dashboard["schemaVersion"].as_i64() >= Some(39),
            "{name}: schemaVersion"
        );
        let variables = dashboard["templating"]["list"]
            .as_array()
            .expect("variables");
        assert!(
            variables.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}: the data source is a variable"
        );
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{name}: {title}"
            );
            assert!(
                panel["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}: {title} explains itself"
            );
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{name}: {title} has no query");
            for target in targets {
                let expr = target["expr"].as_str().expect("expr");
                let query = expr
                    .replace("$__rate_interval", "1m")
                    .replace("$job", "mogothrow77")
                    .replace("$instance", ".+");
                queries += 1;
                let r = crate::harness::client::get_plain(
                    prometheus.addr,
                    &format!(
                        "/api/v1/query?query={}",
                        crate::harness::api::encode(&query)
                    ),
                )
                .await
                .expect("query");
                let body: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
                if body["status"] != "success" {
                    failures.push(format!(
                        "{name}: {title}: `{query}` is invalid: {}",
                        body["error"]
                    ));
                } else if body["data"]["result"].as_array().is_none_or(Vec::is_empty) {
                    failures.push(format!("{name}: {title}: `{query}` returned no series"));
                }
            }
        }
    }
    assert!(queries >= 30, "{queries} queries");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
