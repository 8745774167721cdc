//! The shipped alert rules in a real Prometheus scraping a real `serve`
//! over TLS with the scrape token: stopping the database makes
//! `Mogothrow77DatabaseUnavailable` go pending, then firing; starting it
//! again resolves it. The rules are the ones `mogothrow77 monitoring rules`
//! prints, with every `for:` shortened for the test (a copy made here, not
//! committed).

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
