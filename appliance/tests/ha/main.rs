//! High availability, proven on the reference topology of
//! docs/high-availability.md run as processes on this machine (etcd,
//! Patroni with two PostgreSQL members in synchronous replication, HAProxy,
//! two appliance replicas), each scenario under a steady load of mixed
//! reads and writes whose every acknowledged write is checked afterwards:
//!
//! - kill -9 of a replica: only the requests in flight on it fail;
//! - a rolling restart (SIGTERM, each replica in turn): no request fails;
//! - a rolling upgrade N → N+1 (an expand migration; N serves on the new
//!   schema meanwhile): no request fails;
//! - the primary's node crashes (kill -9 of Patroni and the postmaster):
//!   503 (never 500) until Patroni has promoted the standby, then writes
//!   succeed without restarting the appliance;
//! - PostgreSQL restarted on the primary (`patronictl restart`): the same.
//!
//! No acknowledged write is lost in any of them. Each prints its figures.
//! The `ha` stage of scripts/test runs this (as root: PostgreSQL and
//! Patroni run as `nobody`); `cargo test` alone skips it (ignored).
//! The release binaries come from `MOGOTHROW77_HA_BINARY` (N, default:
//! this build) and `MOGOTHROW77_HA_NEXT_BINARY` (N+1, with an expand
//! migration: scripts/test builds it as the upgrade tests' fixture).

#[path = "../it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;
mod load;
mod topology;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use harness::api::{setup_token, ApiClient};
use load::{Load, Report, CLIENTS};
use topology::{Balancer, Database, Replica};

const PASSWORD: &str = "correct horse battery staple";

fn binary(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

struct Site {
    db: Database,
    balancer: Balancer,
    replicas: Vec<Replica>,
    token: String,
    sql_dsn: String,
}

impl Site {
    /// How long HAProxy takes to see a replica's /readyz change
    /// (`inter 1s`, `fall 2` / `rise 2`), with margin.
    const BALANCER_NOTICES: Duration = Duration::from_secs(3);

    async fn stored(&self) -> std::collections::HashMap<i64, i64> {
        let (sql, connection) = tokio_postgres::connect(&self.sql_dsn, tokio_postgres::NoTls)
            .await
            .expect("connect through the balancer");
        tokio::spawn(connection);
        let ids = sql
            .query_one(
                "SELECT c.id, f.id FROM collections c JOIN collection_fields f \
                 ON f.collection_id = c.id WHERE c.name = 'load' AND f.name = 'n'",
                &[],
            )
            .await
            .expect("catalog");
        let (c, f): (i64, i64) = (ids.get(0), ids.get(1));
        sql.query(
            &format!("SELECT id, \"f_{f}\"::bigint FROM records.\"c_{c}\""),
            &[],
        )
        .await
        .expect("records")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    }

    /// Prints the scenario's figures and checks that no acknowledged
    /// write is missing; returns the failures by status.
    async fn report(&self, scenario: &str, report: &Report, event: Instant) -> Vec<(u16, usize)> {
        let stored = self.stored().await;
        let lost: Vec<_> = report
            .acknowledged
            .iter()
            .filter(|(id, n)| stored.get(id) != Some(n))
            .collect();
        let failures: Vec<(u16, usize)> = report.failures().into_iter().collect();
        println!(
            "HA {scenario}: {} requests ({} acknowledged writes), failures by status {:?} \
             (0 = no answer), lost writes {}, recovery {}, took {:.1} s",
            report.outcomes.len(),
            report.acknowledged.len(),
            failures,
            lost.len(),
            report
                .recovery(event)
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "- (nothing failed)".to_string()),
            report.duration.as_secs_f64()
        );
        assert!(
            lost.is_empty(),
            "{scenario}: acknowledged writes lost: {lost:?}"
        );
        assert!(
            report.acknowledged.len() >= 20,
            "{scenario}: too little load to prove anything"
        );
        failures
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "the ha stage of scripts/test runs it: root, Patroni, etcd and HAProxy"]
async fn replicas_and_database_fail_over_without_losing_acknowledged_writes() {
    assert!(
        harness::is_root(),
        "run as root: PostgreSQL and Patroni are started as nobody"
    );
    let this = binary("MOGOTHROW77_HA_BINARY").unwrap_or_else(|| PathBuf::from(harness::app::BIN));
    let next = binary("MOGOTHROW77_HA_NEXT_BINARY").expect(
        "MOGOTHROW77_HA_NEXT_BINARY: the N+1 release (an expand migration) for the rolling upgrade",
    );
    let stage = Instant::now();

    let db = Database::start();
    println!(
        "HA setup: etcd and two Patroni members up in {:.1} s",
        stage.elapsed().as_secs_f64()
    );
    let primary = &db.members[db.primary()];
    let admin_dsn = format!(
        "host=127.0.0.1 port={} user=postgres password=postgres dbname=postgres",
        primary.pg_port
    );
    let (sql, connection) = tokio_postgres::connect(&admin_dsn, tokio_postgres::NoTls)
        .await
        .expect("connect to the primary");
    tokio::spawn(connection);
    sql.batch_execute("CREATE DATABASE m77")
        .await
        .expect("database");
    drop(sql);

    let ports = [topology::free_port(), topology::free_port()];
    let balancer = Balancer::start(db.dir.path(), &db.members, &ports);
    let dsn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=m77 sslmode=disable",
        balancer.db_port
    );
    wait_for_primary_only(&dsn).await;
    let mut replicas: Vec<Replica> = ports
        .iter()
        .map(|p| Replica::new(&dsn, *p, &this))
        .collect();
    for r in &mut replicas {
        r.start();
    }
    let token = {
        let link_token = setup_token(replicas[0].app());
        let mut admin = ApiClient::anonymous(balancer.app());
        tokio::time::sleep(Site::BALANCER_NOTICES).await;
        let r = admin
            .post(
                "/api/v1/setup",
                json!({ "token": link_token, "username": "admin", "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        admin.adopt_session(&r);
        let r = admin
            .post(
                "/api/v1/collections",
                json!({ "name": "load", "fields": [{ "name": "n", "type": "integer" }] }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let r = admin
            .post(
                "/api/v1/me/tokens",
                json!({ "name": "load", "permissions": ["records:read", "records:write"] }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["token"].as_str().expect("token").to_string()
    };
    let mut site = Site {
        db,
        balancer,
        replicas,
        token,
        sql_dsn: dsn,
    };
    let addr = site.balancer.app();

    // 1. kill -9 of one replica.
    let load = Load::start(addr, &site.token, "load");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let event = Instant::now();
    site.replicas[1].app().signal(Signal::SIGKILL);
    site.replicas[1].app().wait_exit(Duration::from_secs(5));
    tokio::time::sleep(Site::BALANCER_NOTICES).await;
    site.replicas[1].start();
    tokio::time::sleep(Site::BALANCER_NOTICES).await;
    let report = load.stop().await;
    let failures = site
        .report("replica killed (kill -9)", &report, event)
        .await;
    // Only what was in flight on it: no answer (each client has one
    // request at a time); never an error status.
    let unanswered: usize = failures
        .iter()
        .filter(|(s, _)| *s == 0)
        .map(|(_, n)| n)
        .sum();
    assert!(
        failures.iter().all(|(s, _)| *s == 0) && unanswered <= CLIENTS,
        "kill -9: more than the in-flight requests failed: {failures:?}"
    );

    // 2. Rolling restart: SIGTERM each replica in turn.
    let load = Load::start(addr, &site.token, "load");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let event = Instant::now();
    for i in 0..site.replicas.len() {
        let replica = &mut site.replicas[i];
        replica.app().signal(Signal::SIGTERM);
        let status = replica.app().wait_exit(Duration::from_secs(30));
        assert_eq!(status.code(), Some(0), "{}", replica.app().output());
        replica.start();
        tokio::time::sleep(Site::BALANCER_NOTICES).await;
    }
    let report = load.stop().await;
    let failures = site
        .report("rolling restart (SIGTERM)", &report, event)
        .await;
    assert!(
        failures.is_empty(),
        "rolling restart: requests failed: {failures:?}"
    );

    // 3. Rolling upgrade N → N+1: the first N+1 applies the expand
    //    migration while the other replica, still N, serves on.
    let load = Load::start(addr, &site.token, "load");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let event = Instant::now();
    for i in 0..site.replicas.len() {
        let replica = &mut site.replicas[i];
        replica.app().signal(Signal::SIGTERM);
        let status = replica.app().wait_exit(Duration::from_secs(30));
        assert_eq!(status.code(), Some(0), "{}", replica.app().output());
        replica.config.binary = next.clone();
        replica.start();
        tokio::time::sleep(Site::BALANCER_NOTICES).await;
    }
    let report = load.stop().await;
    let failures = site.report("rolling upgrade N → N+1", &report, event).await;
    assert!(
        failures.is_empty(),
        "rolling upgrade: requests failed: {failures:?}"
    );
    for r in &site.replicas {
        let ready = harness::client::get(
            std::net::SocketAddr::from(([127, 0, 0, 1], r.port)),
            "/readyz",
        )
        .await
        .expect("readyz");
        assert_eq!(ready.status, 200, "{}", ready.body);
        assert_ne!(
            ready.json()["version"],
            env!("CARGO_PKG_VERSION"),
            "{}",
            ready.body
        );
    }

    // 4. The primary's node crashes: Patroni promotes the standby.
    let load = Load::start(addr, &site.token, "load");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let event = Instant::now();
    let crashed = site.db.crash_primary();
    let recovered = until_writes_succeed(addr, &site.token, event).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.stop().await;
    let failures = site
        .report(
            "PostgreSQL primary crashed (Patroni failover)",
            &report,
            event,
        )
        .await;
    assert!(
        failures.iter().all(|(s, _)| *s == 503),
        "failover: only 503 database_unavailable may fail: {failures:?}"
    );
    println!(
        "HA failover: writes succeed again {:.1} s after the crash",
        recovered.as_secs_f64()
    );
    site.db.restart_member(crashed);
    site.db.wait_healthy(Duration::from_secs(90));

    // 5. PostgreSQL restarted on the primary.
    let load = Load::start(addr, &site.token, "load");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let event = Instant::now();
    site.db.restart_primary_postgres();
    let recovered = until_writes_succeed(addr, &site.token, event).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.stop().await;
    let failures = site
        .report("PostgreSQL restart (patronictl restart)", &report, event)
        .await;
    assert!(
        failures.iter().all(|(s, _)| *s == 503),
        "restart: only 503 database_unavailable may fail: {failures:?}"
    );
    println!(
        "HA restart: writes succeed again {:.1} s after the restart began",
        recovered.as_secs_f64()
    );

    for r in &mut site.replicas {
        let status = r.app().stop();
        assert!(status.success(), "{}", r.app().output());
    }
    println!(
        "HA stage: all scenarios passed in {:.1} s",
        stage.elapsed().as_secs_f64()
    );
}

/// Writes until one succeeds after `since`; how long from `since`.
async fn until_writes_succeed(addr: std::net::SocketAddr, token: &str, since: Instant) -> Duration {
    let client = ApiClient::with_token(addr, token);
    let deadline = Instant::now() + Duration::from_secs(90);
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
            "writes did not come back: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Until the balancer's health checks have settled (HAProxy starts its
/// servers as up): ten connections in a row reach the writable primary.
async fn wait_for_primary_only(dsn: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut in_a_row = 0;
    while in_a_row < 10 {
        assert!(
            Instant::now() < deadline,
            "the balancer never settled on the primary"
        );
        let writable = async {
            let (sql, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
                .await
                .ok()?;
            tokio::spawn(connection);
            let row = sql
                .query_one("SELECT NOT pg_is_in_recovery()", &[])
                .await
                .ok()?;
            Some(row.get::<_, bool>(0))
        }
        .await;
        if writable == Some(true) {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// docs/high-availability.md shows the balancer's configuration and
/// Patroni's cluster settings exactly as this test runs them (with a
/// site's addresses instead of loopback ports).
#[test]
fn the_documented_configuration_is_the_tested_one() {
    use topology::Endpoint;
    let doc = include_str!("../../../docs/high-availability.md");
    let endpoint = |name: &str, host: &str, port: u16, check_port: u16| Endpoint {
        name: name.to_string(),
        host: host.to_string(),
        port,
        check_port,
    };
    let members = [
        endpoint("pg1", "10.0.0.21", 5432, 8008),
        endpoint("pg2", "10.0.0.22", 5432, 8008),
    ];
    let replicas = [
        endpoint("app1", "10.0.0.11", 8443, 8443),
        endpoint("app2", "10.0.0.12", 8443, 8443),
    ];
    let haproxy = topology::haproxy_config("*", 5432, 443, &members, &replicas);
    assert!(
        doc.contains(&haproxy),
        "docs/high-availability.md must show the balancer's configuration as the HA test \
         runs it:\n{haproxy}"
    );
    assert!(
        doc.contains(topology::REPLICA_SETTINGS),
        "docs/high-availability.md must show the replicas' settings as the HA test runs them:\n{}",
        topology::REPLICA_SETTINGS
    );
    assert!(
        doc.contains(topology::PATRONI_DCS),
        "docs/high-availability.md must show Patroni's bootstrap.dcs as the HA test runs it:\n{}",
        topology::PATRONI_DCS
    );
}
