//! `mogothrow77 backup`: a pg_dump archive that restores to the same data.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::harness::app::AppConfig;
use crate::harness::pg::shared;

#[tokio::test(flavor = "multi_thread")]
async fn backup_restores_to_the_same_data_and_never_overwrites() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    assert_eq!(config.run(&["migrate"]).code(), Some(0));
    let client = shared().connect(&db).await;
    client
        .batch_execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             SELECT 10000 + g, 'marker ' || g, 'now', '0' FROM generate_series(1, 3) g",
        )
        .await
        .expect("marker rows");

    // In the state directory: the command runs as the service user.
    let out = config.state_dir().join("backup.dump");
    let done = config.run(&["backup", "--out", out.to_str().expect("path")]);
    assert_eq!(done.code(), Some(0), "{}", done.all());
    assert!(done.stdout.contains("backup written"), "{}", done.stdout);
    let mode = std::fs::metadata(&out)
        .expect("archive")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the archive is private: {mode:o}");

    // An independent restore into an empty database has the same rows.
    let copy = shared().create_database().await;
    let restored = Command::new(shared().program("pg_restore"))
        .args(["--no-owner", "--no-privileges", "--dbname"])
        .arg(shared().dsn(&copy))
        .arg(&out)
        .output()
        .expect("pg_restore");
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let count = |c: tokio_postgres::Client| async move {
        c.query_one(
            "SELECT count(*), string_agg(name, ',' ORDER BY version) FROM refinery_schema_history",
            &[],
        )
        .await
        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
        .expect("history")
    };
    assert_eq!(
        count(shared().connect(&copy).await).await,
        count(shared().connect(&db).await).await
    );

    // A second backup to the same file is refused; the first stays intact.
    let before = std::fs::read(&out).expect("archive");
    let again = config.run(&["backup", "--out", out.to_str().expect("path")]);
    assert_eq!(again.code(), Some(1), "{}", again.all());
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(std::fs::read(&out).expect("archive"), before);
}

#[test]
fn managed_backup_starts_the_cluster_for_its_run() {
    let config = AppConfig::new("");
    assert_eq!(config.run(&["migrate"]).code(), Some(0));
    let out = config.state_dir().join("managed.dump");
    let done = config.run(&["backup", "--out", out.to_str().expect("path")]);
    assert_eq!(done.code(), Some(0), "{}", done.all());
    assert!(out.is_file());
    // The cluster it started for the dump is stopped again.
    assert!(!config.state_dir().join("postgres/postmaster.pid").exists());
}

/// The number of entries `audit verify` reports (the chain checked whole).
fn audit_entries(config: &AppConfig) -> String {
    let verified = config.run(&["audit", "verify"]);
    assert_eq!(verified.code(), Some(0), "{}", verified.all());
    verified
        .stdout
        .split("audit log intact: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("entry count")
        .to_string()
}

#[test]
fn managed_restore_brings_back_the_archived_state() {
    let config = AppConfig::new("");
    let mut app = config.spawn();
    app.wait_ready();
    let archive = config.state_dir().join("before.dump");
    let path = archive.to_str().expect("path");
    assert_eq!(config.run(&["backup", "--out", path]).code(), Some(0));
    let before = audit_entries(&config);
    // A change after the backup: a setup link issued (an audit entry).
    assert_eq!(config.run(&["admin", "setup-token"]).code(), Some(0));
    assert_ne!(audit_entries(&config), before);

    // Never under a running service.
    let refused = config.run(&["restore", "--from", path]);
    assert_eq!(refused.code(), Some(1), "{}", refused.all());
    assert!(
        refused.stderr.contains("stop it first"),
        "{}",
        refused.stderr
    );
    app.stop();

    // Not an archive: refused before anything is dropped.
    let junk = config.state_dir().join("junk.dump");
    std::fs::write(&junk, b"not an archive").expect("write");
    let bad = config.run(&["restore", "--from", junk.to_str().expect("path")]);
    assert_eq!(bad.code(), Some(1), "{}", bad.all());
    assert!(
        bad.stderr.contains("not a readable pg_dump archive"),
        "{}",
        bad.stderr
    );

    let restored = config.run(&["restore", "--from", path]);
    assert_eq!(restored.code(), Some(0), "{}", restored.all());
    assert!(restored.stdout.contains("restored"), "{}", restored.stdout);
    let mut app = config.spawn();
    app.wait_ready();
    // The change after the backup is gone and the chain is intact.
    assert_eq!(audit_entries(&config), before);
    app.stop();
}
