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
//! - a replica killed while it runs an export: the other replica takes the
//!   job over after the lease, and the file is whole (its digest matches);
//! - the primary's postmaster killed (kill -9): Patroni starts PostgreSQL
//!   again; 503 (never 500) meanwhile;
//! - the primary's node crashes (kill -9 of Patroni and the postmaster):
//!   503 (never 500) until Patroni has promoted the standby, then writes
//!   succeed without restarting the appliance;
//! - PostgreSQL restarted on the primary (`patronictl restart`), and a
//!   planned switchover (`patronictl switchover`): the same.
//!
//! No acknowledged write is lost in any of them. Each prints its figures.
//! The `ha` stage of scripts/test runs this (as root: PostgreSQL and
//! Patroni run as `nobody`); `cargo test` alone skips it (ignored).
//! The release binaries come from `MOGOTHROW77_HA_BINARY` (N, default:
//! this build) and `MOGOTHROW77_HA_NEXT_BINARY` (N+1, with an expand
//! migration: scripts/test builds it as the upgrade tests' fixture).

// Tests and benchmarks set up and inspect the database directly, not as the
// server does: tokio-postgres's own methods are fine here (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[allow(dead_code)] // pg_auto_failover: for the failover benchmark
mod auto_failover;
#[path = "../it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;
mod load;
mod patroni;
mod site;
mod topology;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use load::{Load, CLIENTS};
use patroni::Patroni;
use site::{until_writes_succeed, Site};
use topology::Cluster;

fn binary(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
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

    let cluster = Patroni::start();
    println!(
        "HA setup: etcd and two Patroni members up in {:.1} s",
        stage.elapsed().as_secs_f64()
    );
    let mut site = Site::start(cluster, &this).await;
    let addr = site.addr();

    // 1. kill -9 of one replica.
    let load = Load::start(addr, &site.token, "load");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let event = Instant::now();
    site.replicas[1].app().signal(Signal::SIGKILL);
    site.replicas[1].app().wait_exit(Duration::from_secs(5));
    tokio::time::sleep(Site::<Patroni>::BALANCER_NOTICES).await;
    site.replicas[1].start();
    tokio::time::sleep(Site::<Patroni>::BALANCER_NOTICES).await;
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
        tokio::time::sleep(Site::<Patroni>::BALANCER_NOTICES).await;
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
        tokio::time::sleep(Site::<Patroni>::BALANCER_NOTICES).await;
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

    // 4. A replica killed while it runs an export: the other takes the job
    //    over when its lease runs out, and the file is whole.
    export_survives_its_replica(&mut site).await;

    // 5. The postmaster alone killed: Patroni brings PostgreSQL back.
    database_failure(&mut site, "PostgreSQL postmaster killed (kill -9)", |c| {
        c.kill_postmaster()
    })
    .await;
    site.cluster.wait_healthy(Duration::from_secs(90));

    // 6. The primary's node crashes: Patroni promotes the standby.
    let mut crashed = 0;
    database_failure(
        &mut site,
        "PostgreSQL primary crashed (Patroni failover)",
        |c| crashed = c.crash_primary(),
    )
    .await;
    site.cluster.restart_member(crashed);
    site.cluster.wait_healthy(Duration::from_secs(90));

    // 7. PostgreSQL restarted on the primary.
    database_failure(&mut site, "PostgreSQL restart (patronictl restart)", |c| {
        c.restart_primary_postgres()
    })
    .await;

    // 8. A planned switchover (patronictl switchover).
    site.cluster.wait_healthy(Duration::from_secs(90));
    database_failure(
        &mut site,
        "planned switchover (patronictl switchover)",
        |c| c.switchover(),
    )
    .await;

    site.stop();
    println!(
        "HA stage: all scenarios passed in {:.1} s",
        stage.elapsed().as_secs_f64()
    );
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
        doc.contains(patroni::PATRONI_DCS),
        "docs/high-availability.md must show Patroni's bootstrap.dcs as the HA test runs it:\n{}",
        patroni::PATRONI_DCS
    );
}

/// Scenario 4: an export of the records that exist before it starts (the
/// load keeps writing others), its first chunk held up so that its replica
/// is killed mid-file; the other replica finishes it.
async fn export_survives_its_replica(site: &mut Site<Patroni>) {
    let addr = site.addr();
    let sql = site.sql().await;
    // Every record written so far has n below the next load round's first.
    let limit = load::next_round_floor();
    let stored = site.stored().await.values().filter(|n| **n < limit).count() as i64;
    sql.batch_execute(
        "CREATE FUNCTION ha_slow_chunk() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$; \
         CREATE TRIGGER ha_slow_chunk BEFORE INSERT ON export_chunks FOR EACH ROW \
         WHEN (NEW.seq = 0 AND NEW.attempt = 1) EXECUTE FUNCTION ha_slow_chunk();",
    )
    .await
    .expect("slow trigger");
    let load = Load::start(addr, &site.token, "load");
    let event = Instant::now();
    let client = harness::api::ApiClient::with_token(addr, &site.token);
    let filter = format!(r#"{{"field":"n","op":"lt","value":{limit}}}"#);
    let r = client
        .post(
            "/api/v1/collections/load/exports",
            serde_json::json!({ "filter": filter }),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_i64().expect("id");
    let job: i64 = client.get(&format!("/api/v1/exports/{id}")).await.json()["job_id"]
        .as_i64()
        .expect("job id");
    // Its worker, once the job runs (its first chunk is then held up for
    // 3 s): `host:pid#n`.
    let deadline = Instant::now() + Duration::from_secs(30);
    let worker: String = loop {
        let row = sql
            .query_one("SELECT worker, state FROM jobs WHERE id = $1", &[&job])
            .await
            .expect("job");
        if row.get::<_, String>(1) == "running" {
            break row.get(0);
        }
        assert!(Instant::now() < deadline, "the export never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let pid: u32 = worker
        .split(':')
        .nth(1)
        .and_then(|p| p.split('#').next())
        .and_then(|p| p.parse().ok())
        .expect("worker pid");
    let victim = site
        .replicas
        .iter()
        .position(|r| r.app.as_ref().map(|a| a.pid()) == Some(pid))
        .expect("the worker is one of the replicas");
    site.replicas[victim].app().signal(Signal::SIGKILL);
    site.replicas[victim]
        .app()
        .wait_exit(Duration::from_secs(5));
    let killed = Instant::now();
    // Taken over after the lease (10 s), finished by the other replica.
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let r = client.get(&format!("/api/v1/exports/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let e = r.json();
        if e["state"] == "ready" {
            break e;
        }
        assert_ne!(e["state"], "failed", "{e}");
        assert!(Instant::now() < deadline, "export {id} still {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took_over = killed.elapsed();
    // Really taken over: a second attempt, by another worker.
    let row = sql
        .query_one("SELECT attempts, worker FROM jobs WHERE id = $1", &[&job])
        .await
        .expect("job");
    assert_eq!(row.get::<_, i32>(0), 2, "the export was not taken over");
    assert_ne!(
        row.get::<_, String>(1),
        worker,
        "the same worker finished it"
    );
    site.replicas[victim].start();
    tokio::time::sleep(Site::<Patroni>::BALANCER_NOTICES).await;
    let report = load.stop().await;
    let failures = site
        .report("replica killed during an export", &report, event)
        .await;
    let unanswered: usize = failures
        .iter()
        .filter(|(s, _)| *s == 0)
        .map(|(_, n)| n)
        .sum();
    assert!(
        failures.iter().all(|(s, _)| *s == 0) && unanswered <= CLIENTS,
        "export scenario: more than the in-flight requests failed: {failures:?}"
    );
    sql.batch_execute("DROP TRIGGER ha_slow_chunk ON export_chunks; DROP FUNCTION ha_slow_chunk()")
        .await
        .expect("drop trigger");
    let file = client
        .get(done["download_url"].as_str().expect("download link"))
        .await;
    assert_eq!(file.status, 200, "{}", file.body);
    let digest = ring::digest::digest(&ring::digest::SHA256, file.body.as_bytes());
    use base64::Engine;
    assert_eq!(
        file.header("repr-digest"),
        Some(
            format!(
                "sha-256=:{}:",
                base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
            )
            .as_str()
        ),
        "the file is not the one the export recorded"
    );
    // Header line + one line per record that existed when it started.
    assert_eq!(
        file.body.matches("\r\n").count() as i64,
        stored + 1,
        "the file is not whole"
    );
    println!(
        "HA export: {stored} records, finished by the other replica {:.1} s after its worker was killed",
        took_over.as_secs_f64()
    );
}

/// A database failure under load: `break_it` at a known instant, writes
/// tried until one succeeds; only 503 `database_unavailable` may fail, no
/// acknowledged write may be lost (`Site::report`).
async fn database_failure(
    site: &mut Site<Patroni>,
    scenario: &str,
    break_it: impl FnOnce(&mut Patroni),
) {
    let addr = site.addr();
    let load = Load::start(addr, &site.token, "load");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let event = Instant::now();
    break_it(&mut site.cluster);
    let recovered = until_writes_succeed(addr, &site.token, event).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.stop().await;
    let failures = site.report(scenario, &report, event).await;
    assert!(
        failures.iter().all(|(s, _)| *s == 503),
        "{scenario}: only 503 database_unavailable may fail: {failures:?}"
    );
    println!(
        "HA {scenario}: writes succeed again {:.1} s after it began",
        recovered.as_secs_f64()
    );
}
