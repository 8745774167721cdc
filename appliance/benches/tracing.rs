//! What tracing costs (not a test): `cargo bench -p mogothrow77 --bench tracing`.
//!
//! The records page of the records benchmark (a two-field filter and a
//! sort, 50 of 100,000 records, HTTPS with an API token) at maximum
//! throughput (wrk, 16 connections), with tracing off, and on with
//! `telemetry.sample_ratio` 1.0 and 0.01 sending to a local OTLP sink that
//! answers every batch 200. After one warm-up run (not counted), five
//! rounds, each running the three in a rotated order (so no variant always
//! goes first), a fresh server per run on the same database; the median of
//! each is reported with its ratio to tracing off, and the spans the 1.0
//! servers exported.
//!
//! Needs `wrk`: `apt-get install wrk`.

// Tests and benchmarks set up and inspect the database directly, not as the
// server does: tokio-postgres's own methods are fine here (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;
#[allow(dead_code)]
mod load;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use harness::api::encode;
use harness::app::AppConfig;
use harness::pg::PgCluster;
use load::Wrk;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RECORDS: i64 = 100_000;
const SECS: u32 = 10;
const CONNECTIONS: u32 = 16;
const ROUNDS: usize = 5;

/// An OTLP/HTTP endpoint that reads each request and answers 200.
async fn sink() -> (u16, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind sink");
    let port = listener.local_addr().expect("addr").port();
    let batches = Arc::new(AtomicU64::new(0));
    let counted = batches.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16384];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        counted.fetch_add(1, Ordering::Relaxed);
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                }
            });
        }
    });
    (port, batches)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cluster = PgCluster::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(cluster.create_database());
    let (sink_port, batches) = runtime.block_on(sink());
    let base = "[api]\nrate_limit_per_minute = 1000000\nmax_concurrent_queries = 0\n";
    let variants: [(&str, String); 3] = [
        ("tracing off", String::new()),
        (
            "tracing on, sample_ratio 1.0",
            format!("[telemetry]\notlp_endpoint = \"http://127.0.0.1:{sink_port}\"\nsample_ratio = 1.0\n"),
        ),
        (
            "tracing on, sample_ratio 0.01",
            format!("[telemetry]\notlp_endpoint = \"http://127.0.0.1:{sink_port}\"\nsample_ratio = 0.01\n"),
        ),
    ];

    // The data and the token, through a first server.
    let config = AppConfig::external(&cluster.dsn(&db), base);
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let (token, admin) = runtime.block_on(load::admin_and_token(&config, addr, &["records:read"]));
    let r = runtime.block_on(admin.post(
        "/api/v1/collections",
        serde_json::json!({ "name": "big", "fields": [
            { "name": "title", "type": "text" },
            { "name": "status", "type": "enum", "enum_values": ["open", "closed", "pending"], "indexed": true },
            { "name": "priority", "type": "integer", "indexed": true }
        ] }),
    ));
    assert_eq!(r.status, 201, "{}", r.body);
    let sql = runtime.block_on(cluster.connect(&db));
    let cid: i64 = runtime
        .block_on(sql.query_one("SELECT id FROM collections WHERE name = 'big'", &[]))
        .expect("collection")
        .get(0);
    let columns: Vec<String> = runtime
        .block_on(sql.query(
            "SELECT f.id FROM collection_fields f WHERE f.collection_id = $1 ORDER BY f.id",
            &[&cid],
        ))
        .expect("fields")
        .iter()
        .map(|r| format!("\"f_{}\"", r.get::<_, i64>(0)))
        .collect();
    runtime
        .block_on(sql.batch_execute(&format!(
            "INSERT INTO records.\"c_{cid}\" ({}) \
             SELECT 'title ' || g, (ARRAY['open','closed','pending'])[1 + g % 3], g % 1000 \
             FROM generate_series(1, {RECORDS}) g; ANALYZE records.\"c_{cid}\";",
            columns.join(", ")
        )))
        .expect("load records");
    assert!(app.stop().success());

    let filter = r#"{"and":[{"field":"status","op":"eq","value":"open"},{"field":"priority","op":"gte","value":500}]}"#;
    let bearer = format!("Authorization: Bearer {token}");
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut exported = 0.0;
    // Warm-up: the data into PostgreSQL's cache, the binary into the page cache.
    let warm = AppConfig::external(&cluster.dsn(&db), base);
    let mut warm_app = warm.spawn();
    let warm_addr = warm_app.wait_ready();
    load::wrk(
        &Wrk {
            url: &format!(
                "https://{warm_addr}/api/v1/collections/big/records?limit=50&sort=priority&filter={}",
                encode(filter)
            ),
            headers: &[&bearer],
            connections: CONNECTIONS,
            secs: SECS,
            lua: "",
        },
        warm.dir.path(),
    );
    assert!(warm_app.stop().success());
    for round in 0..ROUNDS {
        for step in 0..variants.len() {
            let i = (round + step) % variants.len();
            let (name, extra) = &variants[i];
            let config = AppConfig::external(&cluster.dsn(&db), &format!("{base}{extra}"));
            let mut app = config.spawn();
            let addr = app.wait_ready();
            let url = format!(
                "https://{addr}/api/v1/collections/big/records?limit=50&sort=priority&filter={}",
                encode(filter)
            );
            let run = load::wrk(
                &Wrk {
                    url: &url,
                    headers: &[&bearer],
                    connections: CONNECTIONS,
                    secs: SECS,
                    lua: "",
                },
                config.dir.path(),
            );
            if i == 1 {
                // Let the last batch go out, then read what was sent.
                std::thread::sleep(std::time::Duration::from_secs(3));
                let body = runtime
                    .block_on(harness::client::get(addr, "/metrics"))
                    .expect("metrics")
                    .body;
                exported += harness::client::metric(
                    &body,
                    "mogothrow77_telemetry_spans_total{outcome=\"exported\"}",
                )
                .unwrap_or(0.0);
            }
            assert!(app.stop().success());
            println!(
                "round {} {name:32} {:>8.0} req/s  p50 {:.2} ms  p95 {:.2} ms",
                round + 1,
                run.rps,
                run.p50_ms,
                run.p95_ms
            );
            results[i].push(run.rps);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let off = median(&mut results[0].clone());
    println!(
        "## records page, {RECORDS} records, wrk -c{CONNECTIONS} {SECS} s, median of {ROUNDS}, rotated order"
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        let m = median(&mut results[i]);
        println!("{name:32} {m:>8.0} req/s  {:.3}x of tracing off", m / off);
    }
    println!(
        "spans exported by the 1.0 servers: {exported:.0} in {} batches received by the sink",
        batches.load(Ordering::Relaxed)
    );
}
