//! The database going away under load — a restart, a primary turned
//! read-only as after a failover — answers 503 `database_unavailable` with
//! `Retry-After`, never 500; no acknowledged write is lost; the server
//! recovers by itself and says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::api::{ApiClient, Site};
use crate::harness::client;
use crate::harness::pg::PgCluster;

const SETTINGS: &str = "connect_timeout_secs = 2\n[api]\nrate_limit_per_minute = 1000000\nmax_concurrent_queries = 0\n";

async fn collection(site: &Site) {
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "load", "fields": [{ "name": "n", "type": "integer" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Writers and a reader until `stop`: the acknowledged writes' ids and n,
/// and the statuses seen. Anything but 2xx and 503 `database_unavailable`
/// (with Retry-After) fails the test.
fn load(
    client: &ApiClient,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<(i64, i64)>>> {
    let mut tasks = Vec::new();
    for w in 0..3i64 {
        let client = client.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0i64;
            while !stop.load(Ordering::SeqCst) {
                let n = w * 1_000_000 + i;
                i += 1;
                let r = if w == 0 {
                    client
                        .get("/api/v1/collections/load/records?limit=20&sort=-n")
                        .await
                } else {
                    client
                        .post(
                            "/api/v1/collections/load/records",
                            json!({ "data": { "n": n } }),
                        )
                        .await
                };
                match r.status {
                    200 => {}
                    201 => acknowledged.push((r.json()["id"].as_i64().expect("id"), n)),
                    503 => {
                        assert_eq!(r.json()["code"], "database_unavailable", "{}", r.body);
                        assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => panic!("a request failed with {other}: {}", r.body),
                }
            }
            acknowledged
        }));
    }
    tasks
}

/// Waits until a write succeeds again; returns how long that took.
async fn until_writes_succeed(client: &ApiClient, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client
            .post(
                "/api/v1/collections/load/records",
                json!({ "data": { "n": -1 } }),
            )
            .await;
        if r.status == 201 {
            return since.elapsed();
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(
            Instant::now() < deadline,
            "writes did not recover: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn assert_all_stored(cluster: &PgCluster, db: &str, acknowledged: &[(i64, i64)]) {
    let sql = cluster.connect(db).await;
    let ids = sql
        .query_one(
            "SELECT c.id, f.id FROM collections c JOIN collection_fields f \
             ON f.collection_id = c.id WHERE c.name = 'load' AND f.name = 'n'",
            &[],
        )
        .await
        .expect("catalog");
    let (collection, field): (i64, i64) = (ids.get(0), ids.get(1));
    let rows = sql
        .query(
            &format!("SELECT id, \"f_{field}\"::bigint FROM records.\"c_{collection}\""),
            &[],
        )
        .await
        .expect("records");
    let stored: std::collections::HashMap<i64, i64> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|(id, n)| stored.get(id) != Some(n))
        .collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restart_under_load_answers_503_never_500_and_loses_no_acknowledged_write() {
    let mut cluster = PgCluster::start();
    let mut site = Site::start_on(&cluster, SETTINGS).await;
    collection(&site).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&site.admin, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // pg_ctl restart -m fast: every backend is ended (57P01), then new
    // connections are refused until the server is back.
    let restarted = Instant::now();
    cluster.stop();
    // Down long enough for the replica's probe (every 5 s) to see it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    cluster.run();
    let recovery = until_writes_succeed(&site.admin, restarted).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.expect("load task"));
    }
    assert!(
        acknowledged.len() > 10,
        "too little load: {}",
        acknowledged.len()
    );
    assert_all_stored(&cluster, &site.db, &acknowledged).await;
    eprintln!(
        "database restart: {} acknowledged writes, writes back after {recovery:?}",
        acknowledged.len()
    );
    // Back by itself, and said so.
    site.app
        .wait_event("the database is reachable again", Duration::from_secs(20));
    site.app.wait_event(
        "the cache invalidation connection is back; caches are on again",
        Duration::from_secs(20),
    );
    let logs = site.app.output();
    assert!(!logs.contains("database error during a request"), "{logs}");
    assert!(site.app.stop().success(), "{}", site.app.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_turned_read_only_answers_503_and_readyz_says_why() {
    let cluster = PgCluster::start();
    let mut site = Site::start_on(&cluster, SETTINGS).await;
    collection(&site).await;
    let r = site
        .admin
        .post(
            "/api/v1/collections/load/records",
            json!({ "data": { "n": 1 } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // What a demoted primary looks like to a session that stays connected.
    let sql = cluster.connect(&site.db).await;
    sql.batch_execute("ALTER SYSTEM SET default_transaction_read_only = on")
        .await
        .expect("read-only");
    sql.batch_execute("SELECT pg_reload_conf()")
        .await
        .expect("reload");
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let r = site
            .admin
            .post(
                "/api/v1/collections/load/records",
                json!({ "data": { "n": 2 } }),
            )
            .await;
        if r.status != 201 {
            break r;
        }
        assert!(Instant::now() < deadline, "writes still accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(
        refused.json()["code"],
        "database_unavailable",
        "{}",
        refused.body
    );
    assert_eq!(
        refused.header("retry-after"),
        Some("2"),
        "{:?}",
        refused.headers
    );
    let ready = client::get(site.addr, "/readyz").await.expect("readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("read-only"), "{}", ready.body);
    // Reads go on.
    let r = site.admin.get("/api/v1/collections/load/records").await;
    assert_eq!(r.status, 200, "{}", r.body);

    sql.batch_execute("ALTER SYSTEM RESET default_transaction_read_only")
        .await
        .expect("read-write");
    sql.batch_execute("SELECT pg_reload_conf()")
        .await
        .expect("reload");
    until_writes_succeed(&site.admin, Instant::now()).await;
    let ready = client::get(site.addr, "/readyz").await.expect("readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    let metrics = client::get(site.addr, "/metrics")
        .await
        .expect("metrics")
        .body;
    assert!(
        client::metric(&metrics, "mogothrow77_db_errors_total{kind=\"read_only\"}")
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(site.app.stop().success(), "{}", site.app.output());
}
