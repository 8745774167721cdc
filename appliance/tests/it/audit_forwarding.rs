//! Audit forwarding (`[audit]`): every entry reaches Debian's rsyslog over
//! TLS (RFC 5424 messages, RFC 5425 framing) and a JSON-lines file, in
//! order; a receiver restarted mid-stream gets everything it missed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::api::Site;
use crate::harness::syslog::Rsyslog;
use crate::harness::{client, give_to_service_user, open_tempdir};

/// The audit sequence numbers in `text` (one message or JSON line each),
/// in the order they arrived.
fn seqs(text: &str, from_syslog: bool) -> Vec<i64> {
    text.lines()
        .filter_map(|line| {
            let json = if from_syslog {
                // `<PRI>1 TIME HOST mogothrow77 PID MSGID [SD] {json}`
                line.contains("[mogothrow77@32473 ")
                    .then(|| line.split_once("] {").map(|(_, j)| format!("{{{j}")))??
            } else {
                line.to_string()
            };
            let value: serde_json::Value = serde_json::from_str(&json).ok()?;
            value["seq"].as_i64()
        })
        .collect()
}

/// Asserts every entry 1..=head arrived, in order of first arrival.
fn complete(received: &[i64], head: i64, what: &str) {
    let mut seen = BTreeSet::new();
    let mut last = 0;
    for &s in received {
        if seen.insert(s) {
            assert!(s > last, "{what}: {s} arrived after {last}: {received:?}");
            last = s;
        }
    }
    let expected: BTreeSet<i64> = (1..=head).collect();
    assert_eq!(seen, expected, "{what}: every entry once at least");
}

async fn head(site: &Site) -> i64 {
    site.sql()
        .await
        .query_one("SELECT seq FROM audit_chain_head WHERE id", &[])
        .await
        .expect("head")
        .get(0)
}

async fn audited_actions(site: &Site, n: usize) {
    for i in 0..n {
        let r = site
            .admin
            .post(
                "/api/v1/me/tokens",
                json!({ "name": format!("t{i}"), "permissions": ["audit:read"] }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_entry_reaches_rsyslog_over_tls_and_the_file_also_across_a_receiver_restart() {
    let mut rsyslog = Rsyslog::start();
    let shared = open_tempdir();
    give_to_service_user(shared.path());
    let ca = shared.path().join("siem-ca.pem");
    std::fs::write(&ca, &rsyslog.ca_pem).expect("ca");
    give_to_service_user(&ca);
    let file = shared.path().join("audit.jsonl");
    let site = Site::start_with(&format!(
        "[audit]\nsyslog_address = \"localhost:{}\"\nsyslog_ca_file = \"{}\"\nfile = \"{}\"\n",
        rsyslog.port,
        ca.display(),
        file.display()
    ))
    .await;

    audited_actions(&site, 10).await;
    let h = head(&site).await;
    until("the first entries at the receiver", async || {
        seqs(&rsyslog.received(), true).contains(&h)
    })
    .await;

    // The receiver goes away; entries keep coming; it comes back.
    rsyslog.stop();
    audited_actions(&site, 10).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    rsyslog.restart();
    audited_actions(&site, 5).await;
    let h = head(&site).await;
    until("every entry at the receiver", async || {
        seqs(&rsyslog.received(), true).contains(&h)
            && seqs(&std::fs::read_to_string(&file).unwrap_or_default(), false).contains(&h)
    })
    .await;
    let received = rsyslog.received();
    complete(&seqs(&received, true), h, "rsyslog");
    let line = received
        .lines()
        .find(|l| l.contains("action=\"token.create\""))
        .expect("a token.create message");
    assert!(
        line.starts_with("<109>1 ") && line.contains(" mogothrow77 "),
        "facility log audit, severity notice, RFC 5424: {line}"
    );
    let lines = std::fs::read_to_string(&file).expect("the JSON-lines file");
    complete(&seqs(&lines, false), h, "file");
    let first: serde_json::Value =
        serde_json::from_str(lines.lines().next().expect("a line")).expect("JSON");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["hash"].as_str().map(str::len), Some(64));

    // The outage shows in the metrics, and the lag closes.
    until("the lag back to 0", async || {
        let m = client::get(site.addr, "/metrics")
            .await
            .expect("metrics")
            .body;
        m.contains("mogothrow77_audit_forward_lag_entries{sink=\"syslog\"} 0")
            && m.contains("mogothrow77_audit_forward_lag_entries{sink=\"file\"} 0")
    })
    .await;
    let metrics = client::get(site.addr, "/metrics")
        .await
        .expect("metrics")
        .body;
    let failures: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mogothrow77_audit_forward_failures_total{sink=\"syslog\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the failures series");
    assert!(failures >= 1.0, "the outage was counted: {failures}");

    let diagnose = site.config.run(&["diagnose", "--json"]);
    let report: serde_json::Value =
        serde_json::from_str(diagnose.stdout.trim()).expect("diagnose JSON");
    let check = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "audit forwarding")
        .expect("the audit forwarding check")
        .clone();
    assert_eq!(check["status"], "pass", "{check}");
    assert!(
        check["value"]
            .as_str()
            .is_some_and(|v| v.contains("syslog: 0 entries behind")),
        "{check}"
    );
}
