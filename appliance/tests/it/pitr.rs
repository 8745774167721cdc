//! Point-in-time recovery of the managed database (`backup.pitr`): WAL
//! archived by pgBackRest, base backups at the schedule's slots, `backup
//! drill` restoring a moment into a scratch cluster, and `restore
//! --to-time`: set A written, the time noted, set B written → after the
//! restore A is there, B is not, and the audit chain verifies.

use std::time::Duration;

use serde_json::json;

use crate::harness::api::{ApiClient, Site, ADMIN, PASSWORD};

const PITR: &str = "[backup]\nschedule = \"every 10s\"\npitr = true\narchive_timeout_secs = 10\n";

async fn write(site: &Site, names: &[&str]) {
    for name in names {
        let r = site
            .admin
            .post(
                "/api/v1/collections/people/records",
                json!({ "data": { "name": name } }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

async fn names(client: &ApiClient) -> Vec<String> {
    let r = client
        .get("/api/v1/collections/people/records?limit=100")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut names: Vec<String> = r.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["data"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_to_a_time_keeps_what_was_written_before_it_and_nothing_after() {
    let mut site = Site::start_managed(PITR).await;
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "people", "fields": [{ "name": "name", "type": "text" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    site.app
        .wait_event("PITR base backup taken", Duration::from_secs(90));
    let state = site.config.state_dir();
    assert!(
        state
            .join("backups/scheduled/pitr/backup/mogothrow77")
            .is_dir(),
        "the repository is under backup.dir"
    );

    write(&site, &["ada", "grace"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let moment = now_rfc3339();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    write(&site, &["edsger", "barbara"]).await;

    // The drill restores a moment of its own into a scratch cluster.
    let drilled = site.config.run(&["backup", "drill"]);
    assert_eq!(drilled.code(), Some(0), "{}", drilled.all());
    assert!(
        drilled.stdout.contains("point-in-time drill: restored to")
            && drilled
                .stdout
                .contains("ok    people: 4 records at that moment, 4 restored"),
        "{}",
        drilled.stdout
    );
    assert!(
        !state.join("backups/work/pitr-drill").exists(),
        "the scratch cluster is removed"
    );

    let running = site.config.run(&["restore", "--to-time", &moment]);
    assert_eq!(running.code(), Some(1), "{}", running.all());
    assert!(
        running.stderr.contains("stop it first"),
        "{}",
        running.stderr
    );
    assert!(site.app.stop().success(), "{}", site.app.output());

    for (when, says, code) in [
        ("next tuesday", "RFC 3339", 2),
        ("2000-01-01T00:00:00Z", "before the oldest base backup", 1),
        ("2999-01-01T00:00:00Z", "in the future", 1),
    ] {
        let refused = site.config.run(&["restore", "--to-time", when]);
        assert_eq!(refused.code(), Some(code), "{when}: {}", refused.all());
        assert!(refused.stderr.contains(says), "{when}: {}", refused.stderr);
    }

    let restored = site.config.run(&["restore", "--to-time", &moment]);
    assert_eq!(restored.code(), Some(0), "{}", restored.all());
    assert!(
        restored.stdout.contains("restored the managed database to")
            && restored.stdout.contains("entries verify"),
        "{}",
        restored.stdout
    );
    let kept: Vec<_> = std::fs::read_dir(&state)
        .expect("state dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("postgres.before-pitr-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the data directory as it was is kept aside");

    let mut again = site.config.spawn();
    let addr = again.wait_ready();
    let admin = ApiClient::login(addr, ADMIN, PASSWORD).await;
    assert_eq!(names(&admin).await, ["ada", "grace"]);
    let verified = site.config.run(&["audit", "verify"]);
    assert_eq!(verified.code(), Some(0), "{}", verified.all());
    let audit = admin
        .get("/api/v1/audit?action=database.restore&limit=5")
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let entries = audit.json()["items"].as_array().expect("items").clone();
    assert_eq!(entries.len(), 1, "{}", audit.body);
    assert_eq!(entries[0]["details"]["records"]["people"], 2);
    // Archiving goes on after the restore, on the new timeline; the test's
    // repository is on the database's file system, which diagnose warns of.
    let diagnosed = site.config.run(&["diagnose"]);
    let line = diagnosed
        .stdout
        .lines()
        .find(|l| l.contains("point-in-time recovery"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.starts_with("warn") && line.contains("shares the database's file system"),
        "{}",
        diagnosed.stdout
    );
    assert!(again.stop().success(), "{}", again.output());
}
