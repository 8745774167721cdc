//! Migrations and the schema compatibility guard.

use crate::harness::app::AppConfig;
use crate::harness::client;
use crate::harness::pg::shared;

/// Records a migration this binary does not know, as a newer binary would.
async fn add_future_migration(db: &str, version: i32, kind: &str) {
    let client = shared().connect(db).await;
    client
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES ($1, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
            &[&version],
        )
        .await
        .expect("insert history");
    client
        .execute(
            "INSERT INTO mogothrow77_migration_kinds (version, name, kind) \
             VALUES ($1, 'from_the_future', $2)",
            &[&version, &kind],
        )
        .await
        .expect("insert kind");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_check_lists_pending_then_migrate_applies_them() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let pending = config.run(&["migrate", "--check"]);
    assert_eq!(pending.code(), Some(1), "{}", pending.all());
    assert!(
        pending.stdout.contains("V1__appliance_metadata (expand)"),
        "{}",
        pending.stdout
    );

    let applied = config.run(&["migrate"]);
    assert_eq!(applied.code(), Some(0), "{}", applied.all());
    assert!(
        applied.stdout.contains("applied V1__appliance_metadata"),
        "{}",
        applied.stdout
    );

    let clean = config.run(&["migrate", "--check"]);
    assert_eq!(clean.code(), Some(0), "{}", clean.all());
    assert!(clean.stdout.contains("no pending migrations"));

    let kinds = shared()
        .connect(&db)
        .await
        .query_one(
            "SELECT kind FROM mogothrow77_migration_kinds WHERE version = 1",
            &[],
        )
        .await
        .expect("kind recorded");
    assert_eq!(kinds.get::<_, String>(0), "expand");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_contract_migration_refuses_start_with_exit_3() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    assert_eq!(config.run(&["migrate"]).code(), Some(0));
    add_future_migration(&db, 9001, "contract").await;

    let out = config.run(&["serve"]);
    assert_eq!(out.code(), Some(3), "{}", out.all());
    assert!(
        out.stderr.contains("needs a newer mogothrow77"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("9001"), "{}", out.stderr);

    let check = config.run(&["check"]);
    assert_eq!(check.code(), Some(3), "{}", check.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_expand_migration_allows_start() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    assert_eq!(config.run(&["migrate"]).code(), Some(0));
    add_future_migration(&db, 9002, "expand").await;

    let mut app = config.spawn();
    let addr = app.wait_ready();
    let ready = client::get(addr, "/readyz").await.expect("readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(app.stop().success(), "{}", app.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_migrations_with_auto_migrate_off_exit_3() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "auto_migrate = false\n");
    let out = config.run(&["serve"]);
    assert_eq!(out.code(), Some(3), "{}", out.all());
    assert!(out.stderr.contains("mogothrow77 migrate"), "{}", out.stderr);
    let check = config.run(&["check"]);
    assert_eq!(
        check.code(),
        Some(3),
        "check agrees with serve: {}",
        check.all()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_racing_on_an_empty_database_migrate_once() {
    let db = shared().create_database().await;
    let first = AppConfig::external(&shared().dsn(&db), "");
    let second = AppConfig::external(&shared().dsn(&db), "");
    let mut a = first.spawn();
    let mut b = second.spawn();
    let addr_a = a.wait_ready();
    let addr_b = b.wait_ready();
    for addr in [addr_a, addr_b] {
        let r = client::get(addr, "/readyz").await.expect("readyz");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let client = shared().connect(&db).await;
    let history: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .expect("count")
        .get(0);
    let known = mogothrow77::db::migrate::known().expect("known").len() as i64;
    assert_eq!(history, known);
    let installations: i64 = client
        .query_one("SELECT count(*) FROM appliance_installation", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(installations, 1, "V1 ran exactly once");
    let applied_logs = [&a, &b]
        .iter()
        .map(|app| app.output().matches("applied migration").count())
        .sum::<usize>();
    assert_eq!(
        applied_logs as i64, known,
        "each migration logged once across both"
    );
    assert!(a.stop().success());
    assert!(b.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_auto_migrate_off_serve_never_connects_as_the_schema_owner() {
    let db = shared().create_database().await;
    let migrator = AppConfig::external(&shared().dsn(&db), "");
    assert_eq!(migrator.run(&["migrate"]).code(), Some(0));
    // The owner's connection string points nowhere: serve must not need it.
    let config = AppConfig::external(
        &shared().dsn(&db),
        "auto_migrate = false\nmigration_url = \"host=/nonexistent-owner-socket user=owner dbname=x\"\n",
    );
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let ready = client::get(addr, "/readyz").await.expect("readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(app.stop().success(), "{}", app.output());
}
