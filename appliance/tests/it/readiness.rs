//! `/readyz` follows the database: 200 when reachable, 503 with a reason
//! while it is down, 200 again when it returns, without a restart.

use std::time::{Duration, Instant};

use crate::harness::app::AppConfig;
use crate::harness::client::{self, metric};
use crate::harness::pg::PgCluster;

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_the_database() {
    // A private cluster: this test stops it.
    let mut cluster = PgCluster::start();
    let db = cluster.create_database().await;
    let config = AppConfig::external(&cluster.dsn(&db), "");
    let mut app = config.spawn();
    let addr = app.wait_ready();

    let ready = client::get(addr, "/readyz").await.expect("readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["status"], "ready");
    // The upgrade tool confirms the release that answers from these.
    assert_eq!(ready.json()["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        ready.json()["schema_level"].as_u64(),
        Some(crate::harness::newest_migration())
    );

    let before = client::get(addr, "/metrics").await.expect("metrics").body;
    assert_eq!(
        metric(&before, "mogothrow77_cache_listener_connected"),
        Some(1.0),
        "{before}"
    );
    assert_eq!(
        metric(&before, "mogothrow77_database_up"),
        Some(1.0),
        "{before}"
    );

    cluster.stop();
    // A request that needs the database meets it gone: 503, counted.
    let login = client::request(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[("Content-Type", "application/json")],
        Some(br#"{"username":"nobody","password":"nothing at all"}"#),
    )
    .await
    .expect("login");
    assert_eq!(login.status, 503, "{}", login.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = client::get(addr, "/metrics").await.expect("metrics").body;
        let unavailable = metric(&m, "mogothrow77_db_errors_total{kind=\"unavailable\"}")
            .or_else(|| metric(&m, "mogothrow77_db_errors_total{kind=\"pool_timeout\"}"));
        if unavailable.is_some_and(|n| n >= 1.0)
            && metric(&m, "mogothrow77_cache_listener_connected") == Some(0.0)
            && metric(&m, "mogothrow77_database_up") == Some(0.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "database outage not in /metrics:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let down = client::get(addr, "/readyz").await.expect("readyz");
    assert_eq!(down.status, 503, "{}", down.body);
    let body = down.json();
    assert_eq!(body["status"], "unavailable");
    let reason = body["reasons"][0].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("database"), "{reason}");
    // Liveness does not depend on the database.
    assert_eq!(
        client::get(addr, "/healthz").await.expect("healthz").status,
        200
    );

    cluster.run();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client::get(addr, "/readyz").await.expect("readyz");
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still {}: {}", r.status, r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The listener reconnects by itself (backoff at most 10 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = client::get(addr, "/metrics").await.expect("metrics").body;
        if metric(&m, "mogothrow77_cache_listener_connected") == Some(1.0)
            && metric(&m, "mogothrow77_database_up") == Some(1.0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "listener not back:\n{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = app.output();
    assert!(
        logs.contains("the database is unreachable from this replica"),
        "{logs}"
    );
    assert!(logs.contains("the database is reachable again"), "{logs}");
    assert!(
        logs.contains("the cache invalidation connection is back; caches are on again"),
        "{logs}"
    );
    assert!(app.stop().success(), "{}", app.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_database_at_start_exits_4() {
    let config = AppConfig::external(
        "host=/nonexistent-socket-dir user=postgres dbname=postgres",
        "",
    );
    let out = config.run(&["serve"]);
    assert_eq!(out.code(), Some(4), "{}", out.all());
    assert!(out.stderr.contains("unreachable"), "{}", out.stderr);
}
