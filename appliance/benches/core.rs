//! Core benchmarks (not tests): `cargo bench -p mogothrow77 --bench core`.
//!
//! Prints figures and ratios against references measured in the same run:
//! - exec → READY=1 against an already-running database, and idle RSS,
//!   against the exec time of `mogothrow77 version` (process start alone);
//! - `/healthz` and `/readyz` under `wrk` on loopback (requests/s, p50, p95,
//!   p99), against `pgbench` running the SQL `/readyz` runs, at the same
//!   concurrency;
//! - an API token check on the hot path: `GET /api/v1/setup` (one indexed
//!   query) anonymously against the same request with a bearer token (one
//!   more indexed query for the token), so the ratio isolates its cost.
//!
//! Records are benchmarked by `benches/records.rs`.
//!
//! Needs `wrk` and PostgreSQL's `pgbench`: `apt-get install wrk postgresql`.

// Tests and benchmarks set up and inspect the database directly, not as the
// server does: tokio-postgres's own methods are fine here (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;
#[allow(dead_code)]
mod load;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::app::{AppConfig, BIN};
use harness::pg::PgCluster;

const STARTS: usize = 20;
const LOAD_SECS: u32 = 10;
const CONNECTIONS: u32 = 16;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    (
        percentile(&values, 50.0),
        percentile(&values, 95.0),
        values[values.len() - 1],
    )
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// exec → READY=1, in milliseconds, and RSS after 1 s idle, in MiB.
fn startup(config: &AppConfig) -> (f64, f64) {
    let socket_path = config.path("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    harness::chmod(&socket_path, 0o777);
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config.config_path)
        .arg("serve")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("MOGOTHROW77_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut buf = [0u8; 1024];
    let ready_ms = loop {
        let n = socket.recv(&mut buf).expect("READY=1 within 30 s");
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            break start.elapsed().as_secs_f64() * 1000.0;
        }
    };
    std::thread::sleep(Duration::from_secs(1));
    let rss = rss_kib(child.id()) as f64 / 1024.0;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    (ready_ms, rss)
}

fn exec_baseline_ms() -> f64 {
    let start = Instant::now();
    let status = Command::new(BIN)
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .expect("version");
    assert!(status.success());
    start.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing we need.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cluster = PgCluster::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(cluster.create_database());
    // The rate limit would throttle the load generator.
    let config = AppConfig::external(
        &cluster.dsn(&db),
        "[api]\nrate_limit_per_minute = 1000000\nmax_concurrent_queries = 0\n",
    );
    let migrate = config.run(&["migrate"]);
    assert_eq!(migrate.code(), Some(0), "{}", migrate.all());

    println!("## Start-up (external database already running), {STARTS} starts");
    let mut ready = Vec::new();
    let mut rss = Vec::new();
    let mut baseline = Vec::new();
    for _ in 0..STARTS {
        baseline.push(exec_baseline_ms());
        let (ms, mib) = startup(&config);
        ready.push(ms);
        rss.push(mib);
    }
    let (r50, r95, rmax) = summary(ready);
    let (b50, _, _) = summary(baseline);
    let (m50, _, mmax) = summary(rss);
    println!("exec -> READY=1      median {r50:.1} ms  p95 {r95:.1} ms  max {rmax:.1} ms  (target <= 150 ms)");
    println!(
        "reference: exec of `mogothrow77 version`  median {b50:.1} ms  -> ratio {:.1}x",
        r50 / b50
    );
    println!("idle RSS after 1 s   median {m50:.1} MiB  max {mmax:.1} MiB  (target <= 30 MiB)");

    println!("\n## Load on loopback: wrk -t2 -c{CONNECTIONS} -d{LOAD_SECS}s (HTTPS)");
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let dir = config.dir.path();
    let run = |url: &str, headers: &[&str]| {
        load::wrk(
            &load::Wrk {
                url,
                headers,
                connections: CONNECTIONS,
                secs: LOAD_SECS,
                lua: "",
            },
            dir,
        )
    };
    let healthz = run(&format!("https://{addr}/healthz"), &[]);
    let readyz = run(&format!("https://{addr}/readyz"), &[]);
    let (token, _) = runtime.block_on(load::admin_and_token(&config, addr, &["system:read"]));
    let anonymous = run(&format!("https://{addr}/api/v1/setup"), &[]);
    let bearer = format!("Authorization: Bearer {token}");
    let with_token = run(&format!("https://{addr}/api/v1/setup"), &[&bearer]);
    let _ = app.stop();
    let readyz_sql = "SELECT h.version, h.name, k.kind FROM refinery_schema_history h \
                      LEFT JOIN mogothrow77_migration_kinds k USING (version);\n";
    let tps = load::pgbench(&cluster, &db, dir, readyz_sql, CONNECTIONS, LOAD_SECS, None).tps;
    for (name, l) in [("/healthz", &healthz), ("/readyz", &readyz)] {
        println!(
            "{name:9} {:>9.0} req/s  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms",
            l.rps, l.p50_ms, l.p95_ms, l.p99_ms
        );
    }
    println!(
        "reference: pgbench, /readyz's SQL, -c{CONNECTIONS} -j2: {tps:.0} tps -> /readyz at {:.2}x of it",
        readyz.rps / tps
    );
    for (name, l) in [
        ("GET /api/v1/setup anonymous", &anonymous),
        ("GET /api/v1/setup with an API token", &with_token),
    ] {
        println!(
            "{name:38} {:>9.0} req/s  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms",
            l.rps, l.p50_ms, l.p95_ms, l.p99_ms
        );
    }
    println!(
        "token check: {:.2}x the anonymous throughput, +{:.2} ms at p50",
        with_token.rps / anonymous.rps,
        with_token.p50_ms - anonymous.p50_ms
    );
}
