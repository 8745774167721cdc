//! Soak (a benchmark command, not a test):
//! `SOAK_MINUTES=60 cargo bench -p mogothrow77 --bench soak`.
//!
//! One server under a steady mix for SOAK_MINUTES (default 60): record
//! listings with a filter (20/s), record creates (10/s, each delivered to
//! a webhook receiver on loopback), a stored export of the collection
//! every 30 s (made, downloaded, deleted). Every minute it prints the
//! server's RSS, its open file descriptors, the database's connections,
//! the minute's p99 latency and its failures and deliveries; at the end
//! the slope of each (least squares over the minutes after the first
//! five, per hour). A leak is a steady slope, a bug.

// Tests and benchmarks set up and inspect the database directly, not as the
// server does: tokio-postgres's own methods are fine here (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;
#[allow(dead_code)]
mod load;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::api::{encode, ApiClient, Site};
use harness::receiver::{Answer, Receiver};
use serde_json::json;

/// What one minute saw.
#[derive(Default)]
struct Minute {
    latencies_ms: Vec<f64>,
    failures: u64,
}

struct Shared {
    minute: Mutex<Minute>,
    exports: AtomicU64,
}

impl Shared {
    fn record(&self, started: Instant, ok: bool) {
        let mut m = self
            .minute
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.latencies_ms
            .push(started.elapsed().as_secs_f64() * 1000.0);
        if !ok {
            m.failures += 1;
        }
    }
}

fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

fn open_fds(pid: u32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0.0, |d| d.count() as f64)
}

/// Least-squares slope of `ys` over their index.
fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        num += dx * (y - mean_y);
        den += dx * dx;
    }
    num / den
}

/// Runs `step` every `period` until `until`.
async fn steady<F, Fut>(period: Duration, until: Instant, mut step: F)
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0;
    while Instant::now() < until {
        tick.tick().await;
        step(n).await;
        n += 1;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let minutes: u64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let site = Site::start_with(
        "[webhooks]\nallow_addresses = [\"127.0.0.1/32\"]\n[api]\nrate_limit_per_minute = 1000000\n",
    )
    .await;
    let pid = site.app.pid();
    let admin = site.admin.clone();
    let r = admin
        .post("/api/v1/collections", load::ten_fields("soak"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let receiver = Receiver::start("127.0.0.1", vec![Answer::status(204)]).await;
    let r = admin
        .post(
            "/api/v1/webhooks",
            json!({ "url": receiver.url("/in"), "events": ["record.created"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sql = site.sql().await;
    let shared = Arc::new(Shared {
        minute: Mutex::new(Minute::default()),
        exports: AtomicU64::new(0),
    });
    let until = Instant::now() + Duration::from_secs(minutes * 60);
    println!(
        "soak: {minutes} min; listings 20/s, creates 10/s (each a webhook delivery), an export every 30 s"
    );

    let filter = encode(r#"{"field": "status", "op": "eq", "value": "open"}"#);
    let reads = {
        let (client, shared) = (admin.clone(), shared.clone());
        let path =
            format!("/api/v1/collections/soak/records?limit=50&sort=-priority&filter={filter}");
        tokio::spawn(async move {
            steady(Duration::from_millis(50), until, |_| {
                let (client, shared, path) = (client.clone(), shared.clone(), path.clone());
                async move {
                    tokio::spawn(async move {
                        let t = Instant::now();
                        let r = client.get(&path).await;
                        shared.record(t, r.status == 200);
                    });
                }
            })
            .await;
        })
    };
    let writes = {
        let (client, shared) = (admin.clone(), shared.clone());
        tokio::spawn(async move {
            steady(Duration::from_millis(100), until, |n| {
                let (client, shared) = (client.clone(), shared.clone());
                async move {
                    tokio::spawn(async move {
                        let status = ["open", "closed", "pending"][(n % 3) as usize];
                        let t = Instant::now();
                        let r = client
                            .post(
                                "/api/v1/collections/soak/records",
                                json!({ "data": {
                                    "title": format!("soak {n}"),
                                    "status": status,
                                    "priority": n % 1000,
                                    "code": format!("c{n}"),
                                } }),
                            )
                            .await;
                        shared.record(t, r.status == 201);
                    });
                }
            })
            .await;
        })
    };
    let exports = {
        let (client, shared) = (admin.clone(), shared.clone());
        tokio::spawn(async move {
            steady(Duration::from_secs(30), until, |_| {
                let (client, shared) = (client.clone(), shared.clone());
                async move {
                    let t = Instant::now();
                    let ok = export_once(&client).await;
                    shared.record(t, ok);
                    if ok {
                        shared.exports.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .await;
        })
    };

    println!(
        "{:>4} {:>9} {:>6} {:>6} {:>9} {:>8} {:>9} {:>8} {:>7}",
        "min", "rss_mib", "fds", "db_con", "requests", "p99_ms", "failures", "webhooks", "exports"
    );
    let mut rows: Vec<[f64; 4]> = Vec::new();
    for minute in 1..=minutes {
        tokio::time::sleep_until((until - Duration::from_secs((minutes - minute) * 60)).into())
            .await;
        let m = std::mem::take(
            &mut *shared
                .minute
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut lat = m.latencies_ms;
        lat.sort_by(f64::total_cmp);
        let p99 = lat
            .get(((lat.len() as f64 * 0.99) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0);
        let rss = status_kib(pid, "VmRSS:") / 1024.0;
        let fds = open_fds(pid);
        let connections: i64 = sql
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
                &[],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(-1);
        println!(
            "{minute:>4} {rss:>9.1} {fds:>6} {connections:>6} {:>9} {p99:>8.1} {:>9} {:>8} {:>7}",
            lat.len(),
            m.failures,
            receiver.received().len(),
            shared.exports.load(Ordering::Relaxed)
        );
        rows.push([rss, fds, connections as f64, p99]);
    }
    for t in [reads, writes, exports] {
        let _ = t.await;
    }
    let settled: Vec<[f64; 4]> = rows.iter().skip(5).copied().collect();
    let column = |i: usize| settled.iter().map(|r| r[i]).collect::<Vec<_>>();
    println!(
        "slope per hour after minute 5: rss {:+.1} MiB, fds {:+.1}, db connections {:+.1}, p99 {:+.1} ms",
        slope(&column(0)) * 60.0,
        slope(&column(1)) * 60.0,
        slope(&column(2)) * 60.0,
        slope(&column(3)) * 60.0
    );
}

/// One stored export: made, waited for, downloaded, deleted.
async fn export_once(client: &ApiClient) -> bool {
    let r = client
        .post("/api/v1/collections/soak/exports", json!({}))
        .await;
    let Some(id) = r.json()["id"].as_i64().filter(|_| r.status == 202) else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let e = client.get(&format!("/api/v1/exports/{id}")).await.json();
        if e["state"] == "ready" {
            let link = e["download_url"].as_str().unwrap_or_default().to_string();
            let ok = client.get(&link).await.status == 200;
            let deleted = client.delete(&format!("/api/v1/exports/{id}")).await.status < 300;
            return ok && deleted;
        }
        if e["state"] == "failed" || Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
