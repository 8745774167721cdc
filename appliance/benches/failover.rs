//! Database failover as clients see it, for both engines of
//! docs/high-availability.md: Patroni (behind HAProxy's `/primary` check)
//! and pg_auto_failover (a libpq multi-host URL with
//! `target_session_attrs=read-write`). On the same topology as the HA test
//! (two replicas behind HAProxy, four clients writing and reading), each
//! engine suffers a crash of the primary's node (kill -9 of its manager and
//! PostgreSQL) and a planned switchover; printed per case: how long until
//! writes succeed again, how many requests saw 503, and acknowledged
//! writes lost (must be 0). Figures, not pass/fail thresholds: they go to
//! docs/benchmarks.md.
//!
//! Run as root: `cargo bench -p mogothrow77 --bench failover`
//! (`MOGOTHROW77_HA_BINARY` may name a release binary; default: the
//! debug build of this source).

// Tests and benchmarks set up and inspect the database directly, not as the
// server does: tokio-postgres's own methods are fine here (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "../tests/ha/auto_failover.rs"]
mod auto_failover;
#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../tests/ha/load.rs"]
#[allow(dead_code)]
mod load;
#[path = "../tests/ha/patroni.rs"]
#[allow(dead_code)]
mod patroni;
#[path = "../tests/ha/site.rs"]
mod site;
#[path = "../tests/ha/topology.rs"]
#[allow(dead_code)]
mod topology;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use load::Load;
use site::{until_writes_succeed, Site};
use topology::Cluster;

/// One case's figures.
struct Figures {
    engine: &'static str,
    case: &'static str,
    writes_back: Duration,
    unavailable: usize,
    other_failures: usize,
    lost: usize,
}

async fn run<C: Cluster>(cluster: C, binary: &Path) -> Vec<Figures> {
    let engine = cluster.engine();
    let mut site = Site::start(cluster, binary).await;
    let mut figures = Vec::new();
    for case in ["primary crashed (kill -9)", "planned switchover"] {
        let load = Load::start(site.addr(), &site.token, "load");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let event = Instant::now();
        let crashed = if case.starts_with("primary") {
            Some(site.cluster.crash_primary())
        } else {
            site.cluster.switchover();
            None
        };
        let writes_back = until_writes_succeed(site.addr(), &site.token, event).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let report = load.stop().await;
        // `report` panics on a lost acknowledged write.
        let failures = site.report(case, &report, event).await;
        let count = |f: &dyn Fn(u16) -> bool| -> usize {
            failures.iter().filter(|(s, _)| f(*s)).map(|(_, n)| n).sum()
        };
        figures.push(Figures {
            engine,
            case,
            writes_back,
            unavailable: count(&|s| s == 503),
            other_failures: count(&|s| s != 503),
            lost: 0,
        });
        if let Some(i) = crashed {
            site.cluster.restart_member(i);
        }
        site.cluster.wait_healthy(Duration::from_secs(120));
    }
    site.stop();
    figures
}

fn main() {
    assert!(
        harness::is_root(),
        "run as root: PostgreSQL, Patroni and pg_autoctl run as other users"
    );
    let binary = std::env::var_os("MOGOTHROW77_HA_BINARY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(harness::app::BIN));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut all = Vec::new();
    runtime.block_on(async {
        all.extend(run(patroni::Patroni::start(), &binary).await);
        all.extend(run(auto_failover::AutoFailover::start(), &binary).await);
    });
    println!();
    println!("| engine | case | writes succeed again after | requests answered 503 | other failures | acknowledged writes lost |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for f in &all {
        println!(
            "| {} | {} | {:.1} s | {} | {} | {} |",
            f.engine,
            f.case,
            f.writes_back.as_secs_f64(),
            f.unavailable,
            f.other_failures,
            f.lost
        );
    }
}
