//! `mogothrow77 diagnose`: every check with its verdict, the exit code the
//! worst verdict gives (0 pass, 6 warnings only, 1 a failure), problems
//! planted in the database found, and nothing changed by running it — a
//! stopped managed cluster is reported, not started.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::harness::api::Site;
use crate::harness::app::{AppConfig, Finished};

/// Every check's name with its status and value, from `diagnose --json`.
fn report(out: &Finished) -> BTreeMap<String, (String, String)> {
    let json: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "diagnose --json prints one JSON document ({e}): {}",
            out.all()
        )
    });
    assert!(json["version"].as_str().is_some(), "{json}");
    json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            let status = c["status"].as_str().expect("status").to_string();
            if matches!(status.as_str(), "warn" | "fail") {
                assert!(
                    c["fix"].as_str().is_some_and(|f| f.contains("runbook: ")),
                    "a {status} names its fix and runbook: {c}"
                );
            }
            (
                c["name"].as_str().expect("name").to_string(),
                (status, c["value"].as_str().expect("value").to_string()),
            )
        })
        .collect()
}

fn status<'a>(checks: &'a BTreeMap<String, (String, String)>, name: &str) -> &'a str {
    &checks
        .get(name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
        .0
}

fn value<'a>(checks: &'a BTreeMap<String, (String, String)>, name: &str) -> &'a str {
    &checks
        .get(name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
        .1
}

/// The verdict the disk checks must give for a directory on `dir`'s file
/// system: on a runner whose own disk is nearly full a warning or a failure
/// is the right answer, so the expectation follows the host (the thresholds
/// are the `Mogothrow77DiskSpaceLow` alert's: 10 % warns, 3 % fails).
fn disk_verdict(dir: &Path) -> &'static str {
    let stat = nix::sys::statvfs::statvfs(dir).expect("statvfs");
    let share = |free: u64, total: u64| match total {
        0 => 1.0,
        _ => free as f64 / total as f64,
    };
    let worst = share(stat.blocks_available(), stat.blocks())
        .min(share(stat.files_available(), stat.files()));
    if worst < 0.03 {
        "fail"
    } else if worst < 0.10 {
        "warn"
    } else {
        "pass"
    }
}

/// The failures of the disk checks in a report.
fn disk_failures(checks: &BTreeMap<String, (String, String)>) -> usize {
    checks
        .iter()
        .filter(|(name, (status, _))| name.starts_with("disk: ") && status == "fail")
        .count()
}

/// Every file under `dir` with its length and modification time.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let entry = entry.expect("entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            }
            out.insert(
                entry.path().display().to_string(),
                (meta.len(), meta.modified().expect("mtime")),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn diagnose_reports_every_check_and_finds_planted_problems() {
    let site = Site::start().await;
    let disk = disk_verdict(&site.config.state_dir());

    let first = site.config.run(&["diagnose", "--json"]);
    let checks = report(&first);
    for (name, expected) in [
        ("configuration", "pass"),
        ("service user", "pass"),
        ("state directory", "pass"),
        ("disk: state", disk),
        ("database", "pass"),
        ("PostgreSQL", "pass"),
        ("database timeouts", "pass"),
        ("schema", "pass"),
        ("clock skew", "pass"),
        ("job queue", "pass"),
        ("cache notifications", "pass"),
        ("audit chain", "pass"),
        // The generated certificate, and no backup taken yet: warnings.
        ("TLS certificate", "warn"),
        ("last backup", "warn"),
    ] {
        assert_eq!(status(&checks, name), expected, "{name}: {checks:?}");
    }
    assert!(value(&checks, "TLS certificate").starts_with("self-signed"));
    assert_eq!(value(&checks, "last backup"), "no backup recorded");
    assert!(
        value(&checks, "connection budget").contains("1 replica(s) running"),
        "the server's LISTEN connection is counted: {checks:?}"
    );
    assert!(checks.contains_key("open-file limit"));
    assert!(checks.contains_key("systemd unit"));
    assert!(
        !checks
            .iter()
            .any(|(name, (s, _))| s == "fail" && !name.starts_with("disk: ")),
        "nothing fails on a healthy site: {checks:?}"
    );
    let worst = if disk == "fail" { 1 } else { 6 };
    assert_eq!(first.code(), Some(worst), "warnings only: {}", first.all());

    // A backup is recorded and reported.
    let archive = site.config.state_dir().join("diagnose.dump");
    let backup = site
        .config
        .run(&["backup", "--out", archive.to_str().expect("path")]);
    assert_eq!(backup.code(), Some(0), "{}", backup.all());
    let checks = report(&site.config.run(&["diagnose", "--json"]));
    assert_eq!(status(&checks, "last backup"), "pass", "{checks:?}");
    assert!(
        value(&checks, "last backup").contains("diagnose.dump"),
        "{checks:?}"
    );
    // And for the backup-age alert: the replica publishes its time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let metrics = crate::harness::client::get(site.addr, "/metrics")
            .await
            .expect("metrics")
            .body;
        let at: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("mogothrow77_backup_last_success_timestamp_seconds "))
            .and_then(|v| v.trim().parse().ok())
            .expect("the backup series");
        if at > 1.0e9 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backup time still {at}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }

    // A dead job warns; an edited audit entry fails, and the text form
    // says so with the fix below it.
    let sql = site.sql().await;
    sql.batch_execute(
        "INSERT INTO jobs (kind, payload, max_attempts, state, finished_at) \
         VALUES ('export', '{}', 4, 'dead', now())",
    )
    .await
    .expect("dead job");
    let checks = report(&site.config.run(&["diagnose", "--json"]));
    assert_eq!(status(&checks, "job queue"), "warn", "{checks:?}");
    assert!(
        value(&checks, "job queue").ends_with("1 dead"),
        "{checks:?}"
    );
    sql.batch_execute(
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only; \
         UPDATE audit_log SET actor = 'someone-else' WHERE seq = 1; \
         ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;",
    )
    .await
    .expect("edit the audit log");
    let failed = 1 + disk_failures(&checks);
    let text = site.config.run(&["diagnose"]);
    assert_eq!(text.code(), Some(1), "a failure: {}", text.all());
    let line = text
        .stdout
        .lines()
        .position(|l| l.starts_with("FAIL  audit chain"))
        .unwrap_or_else(|| panic!("{}", text.stdout));
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert!(
        lines[line].contains("entry 1 was modified"),
        "{}",
        text.stdout
    );
    assert!(
        lines[line + 1].trim_start().starts_with("fix: ")
            && lines[line + 1].contains("/docs/runbooks/audit-log-tampered.md"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .lines()
            .last()
            .is_some_and(|l| l.contains(&format!("{failed} failed"))),
        "{}",
        text.stdout
    );
}

#[test]
fn a_certificate_whose_key_does_not_match_fails_the_tls_check() {
    let config = AppConfig::new("").with_mismatched_tls_key();
    let out = config.run(&["diagnose", "--json"]);
    let checks = report(&out);
    assert_eq!(status(&checks, "TLS certificate"), "fail", "{checks:?}");
    assert!(
        value(&checks, "TLS certificate").contains("does not belong to the certificate"),
        "{checks:?}"
    );
    assert_eq!(out.code(), Some(1), "{}", out.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_managed_cluster_is_reported_not_started_and_nothing_changes() {
    let config = AppConfig::new("");
    // Creates the managed cluster, starts it for the run, stops it.
    let migrated = config.run(&["migrate"]);
    assert_eq!(migrated.code(), Some(0), "{}", migrated.all());
    let state = config.state_dir();
    let before = snapshot(&state);

    let out = config.run(&["diagnose", "--json"]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    let checks = report(&out);
    assert_eq!(status(&checks, "database"), "fail", "{checks:?}");
    assert!(
        value(&checks, "database").contains("managed cluster not running"),
        "{checks:?}"
    );
    for name in ["PostgreSQL", "schema", "audit chain", "last backup"] {
        assert_eq!(status(&checks, name), "skip", "{name}: {checks:?}");
    }
    assert_eq!(
        status(&checks, "disk: postgres"),
        disk_verdict(&state),
        "{checks:?}"
    );
    assert_eq!(
        snapshot(&state),
        before,
        "diagnose changed the state directory"
    );
    assert!(!state.join("postgres/postmaster.pid").exists());

    // Running: the same checks pass against the service's own cluster.
    let mut app = config.spawn();
    app.wait_ready();
    let checks = report(&config.run(&["diagnose", "--json"]));
    for name in [
        "database",
        "PostgreSQL",
        "schema",
        "connection budget",
        "audit chain",
    ] {
        assert_eq!(status(&checks, name), "pass", "{name}: {checks:?}");
    }
    assert!(
        value(&checks, "connection budget").contains("managed cluster is sized"),
        "{checks:?}"
    );
    app.stop();
}
