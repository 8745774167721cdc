//! `mogothrow77 backup drill`: the newest backup restored into a scratch
//! database, every collection's record count compared with the count
//! recorded in the dump's snapshot, the restored audit chain verified; the
//! outcome kept, audited, and shown by `diagnose` and the system page.

use serde_json::json;

use crate::harness::api::Site;
use crate::harness::files::wait_for;

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_proves_the_newest_backup_and_a_mismatch_fails_it() {
    let site = Site::start().await;
    let nothing = site.config.run(&["backup", "drill"]);
    assert_eq!(nothing.code(), Some(1), "{}", nothing.all());
    assert!(
        nothing.stderr.contains("no backup to drill"),
        "{}",
        nothing.stderr
    );

    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "assets", "fields": [{ "name": "tag", "type": "text" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for tag in ["a-1", "a-2"] {
        let r = site
            .admin
            .post(
                "/api/v1/collections/assets/records",
                json!({ "data": { "tag": tag } }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let archive = site.config.state_dir().join("drilled.dump");
    let written = site
        .config
        .run(&["backup", "--out", archive.to_str().expect("path")]);
    assert_eq!(written.code(), Some(0), "{}", written.all());
    // Written after the backup: not in it, and the drill must not mind.
    let r = site
        .admin
        .post(
            "/api/v1/collections/assets/records",
            json!({ "data": { "tag": "a-3" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let drilled = site.config.run(&["backup", "drill"]);
    assert_eq!(drilled.code(), Some(0), "{}", drilled.all());
    assert!(
        drilled
            .stdout
            .contains("ok    assets: 2 records recorded at the dump, 2 restored"),
        "{}",
        drilled.stdout
    );
    assert!(
        drilled.stdout.contains("drill passed"),
        "{}",
        drilled.stdout
    );
    let sql = site.sql().await;
    let row = sql
        .query_one(
            "SELECT drill_ok, drill_report FROM backups WHERE drilled_at IS NOT NULL",
            &[],
        )
        .await
        .expect("drill recorded");
    assert_eq!(row.get::<_, Option<bool>>(0), Some(true));
    let report: serde_json::Value = row.get(1);
    assert_eq!(report["mismatches"], json!([]), "{report}");
    assert!(
        report["audit_entries"].as_i64().unwrap_or(0) > 0,
        "{report}"
    );
    let scratch: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'mogothrow77_drill_%'",
            &[],
        )
        .await
        .expect("copies")
        .get(0);
    assert_eq!(scratch, 0, "the copy was dropped");
    let system = site.admin.get("/api/v1/system").await;
    assert_eq!(system.status, 200, "{}", system.body);
    let backups = &system.json()["backups"];
    assert_eq!(backups["drill"]["ok"], true, "{backups}");
    assert_eq!(backups["last"]["archive"], "drilled.dump", "{backups}");
    assert_eq!(backups["schedule"], serde_json::Value::Null, "{backups}");
    let report = site.config.run(&["diagnose"]);
    assert!(
        report
            .stdout
            .lines()
            .any(|l| l.contains("restore drill") && l.contains("pass")),
        "{}",
        report.stdout
    );

    // What was recorded at the dump and what comes back disagree: the
    // drill fails, says where, and diagnose fails with it.
    sql.execute(
        "UPDATE backups SET record_counts = '{\"assets\": 5}' WHERE drilled_at IS NOT NULL",
        &[],
    )
    .await
    .expect("tamper");
    let failed = site.config.run(&["backup", "drill"]);
    assert_eq!(failed.code(), Some(1), "{}", failed.all());
    assert!(
        failed
            .stdout
            .contains("FAIL  assets: 5 records recorded at the dump, 2 restored"),
        "{}",
        failed.stdout
    );
    assert!(failed.stdout.contains("drill FAILED"), "{}", failed.stdout);
    let outcomes: Vec<String> = sql
        .query(
            "SELECT outcome FROM audit_log WHERE action = 'backup.drill' ORDER BY seq",
            &[],
        )
        .await
        .expect("audit")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        outcomes,
        ["failure", "success", "failure"],
        "no backup, passed, failed"
    );
    let report = site.config.run(&["diagnose"]);
    assert_eq!(report.code(), Some(1), "{}", report.all());
    assert!(
        report
            .stdout
            .lines()
            .any(|l| l.contains("restore drill") && l.contains("FAIL")),
        "{}",
        report.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_checks_another_database_by_name() {
    let site = Site::start().await;
    let same = site
        .config
        .run(&["audit", "verify", "--database", &site.db]);
    assert_eq!(same.code(), Some(0), "{}", same.all());
    assert!(
        same.stdout
            .contains(&format!("checking database {}", site.db)),
        "{}",
        same.stdout
    );
    assert!(same.stdout.contains("audit log intact"), "{}", same.stdout);
    let bad = site
        .config
        .run(&["audit", "verify", "--database", "x; DROP"]);
    assert_eq!(bad.code(), Some(2), "{}", bad.all());
    let absent = site
        .config
        .run(&["audit", "verify", "--database", "mogothrow77_no_such_db"]);
    assert_ne!(absent.code(), Some(0), "{}", absent.all());
    assert!(
        absent.stderr.contains("mogothrow77_no_such_db"),
        "{}",
        absent.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drills_run_by_themselves_on_their_schedule() {
    let site =
        Site::start_with("[backup]\nschedule = \"every 1h\"\ndrill_schedule = \"every 10s\"\n")
            .await;
    let sql = site.sql().await;
    wait_for(
        "a scheduled drill that passed",
        std::time::Duration::from_secs(90),
        async || {
            sql.query_opt(
                "SELECT 1 FROM audit_log \
                 WHERE action = 'backup.drill' AND outcome = 'success' AND actor = 'system'",
                &[],
            )
            .await
            .expect("audit")
            .map(|_| ())
        },
    )
    .await;
    let ok: Option<bool> = sql
        .query_one(
            "SELECT drill_ok FROM backups WHERE drilled_at IS NOT NULL ORDER BY drilled_at DESC LIMIT 1",
            &[],
        )
        .await
        .expect("drill")
        .get(0);
    assert_eq!(ok, Some(true));
    // The job is marked done just after the drill's outcome is recorded.
    wait_for(
        "the drill's job succeeded",
        std::time::Duration::from_secs(30),
        async || {
            let jobs: i64 = sql
                .query_one(
                    "SELECT count(*) FROM jobs WHERE kind = 'backup_drill' AND state = 'succeeded'",
                    &[],
                )
                .await
                .expect("jobs")
                .get(0);
            (jobs >= 1).then_some(())
        },
    )
    .await;
    let system = site.admin.get("/api/v1/system").await;
    assert_eq!(
        system.json()["backups"]["drill_schedule"],
        "every 10s",
        "{}",
        system.body
    );
}
