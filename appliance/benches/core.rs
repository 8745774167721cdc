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
//!   more indexed query for the token), so the ratio isolates its cost;
//! - a page of 50 filtered, sorted records (100,000 records; filter on an
//!   indexed enum, sort on an indexed integer) with an API token, against
//!   pgbench running the SQL the server runs for it.
//!
//! Needs `wrk` and PostgreSQL's `pgbench`: `apt-get install wrk postgresql`.

#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;

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

struct Load {
    rps: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

const WRK_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %f %f %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect))
end
"#;

fn wrk(url: &str, dir: &std::path::Path) -> Load {
    wrk_with(url, dir, &[])
}

fn wrk_with(url: &str, dir: &std::path::Path, headers: &[&str]) -> Load {
    let script = dir.join("report.lua");
    std::fs::write(&script, WRK_SCRIPT).expect("write lua");
    let mut cmd = Command::new("wrk");
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    let out = cmd
        .args([
            "-t2",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{LOAD_SECS}s"),
        ])
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()
        .expect("wrk is installed (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("wrk printed no result:\n{text}"));
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(f64::NAN))
        .collect();
    assert_eq!(f[4], 0.0, "wrk saw errors against {url}:\n{text}");
    Load {
        rps: f[0],
        p50_ms: f[1],
        p95_ms: f[2],
        p99_ms: f[3],
    }
}

/// pgbench running the statement `/readyz` runs (prepared, as the server
/// prepares it), one transaction per request.
fn pgbench_readyz_sql(cluster: &PgCluster, db: &str, dir: &std::path::Path) -> f64 {
    pgbench_sql(
        cluster,
        db,
        dir,
        "SELECT h.version, h.name, k.kind FROM refinery_schema_history h \
         LEFT JOIN mogothrow77_migration_kinds k USING (version);\n",
    )
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
        "[api]\nrate_limit_per_minute = 1000000\n",
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
    let healthz = wrk(&format!("https://{addr}/healthz"), config.dir.path());
    let readyz = wrk(&format!("https://{addr}/readyz"), config.dir.path());
    let (token, admin) = runtime.block_on(api_token(&config, addr));
    let page_sql = runtime.block_on(seed_records(&admin, &cluster, &db));
    let anonymous = wrk(&format!("https://{addr}/api/v1/setup"), config.dir.path());
    let bearer = format!("Authorization: Bearer {token}");
    let with_token = wrk_with(
        &format!("https://{addr}/api/v1/setup"),
        config.dir.path(),
        &[&bearer],
    );
    let filter = r#"{"field":"status","op":"eq","value":"open"}"#;
    let records_url = format!(
        "https://{addr}/api/v1/collections/bench/records?limit=50&sort=priority&filter={}",
        filter
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            })
            .collect::<String>()
    );
    let records = wrk_with(&records_url, config.dir.path(), &[&bearer]);
    let _ = app.stop();
    let tps = pgbench_readyz_sql(&cluster, &db, config.dir.path());
    let page_tps = pgbench_sql(&cluster, &db, config.dir.path(), &page_sql);
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
    println!(
        "records page (50 of 100,000, filter + sort, token) {:>7.0} req/s  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  (target p95 <= 10 ms at 500 req/s)",
        records.rps, records.p50_ms, records.p95_ms, records.p99_ms
    );
    println!(
        "reference: pgbench, the page's SQL, -c{CONNECTIONS} -j2: {page_tps:.0} tps -> records page at {:.2}x of it (target >= 0.3x)",
        records.rps / page_tps
    );
}

/// A collection of 100,000 records (status enum and priority integer,
/// both indexed), loaded by SQL; returns the statement the server runs
/// for the benchmarked page.
async fn seed_records(admin: &harness::api::ApiClient, cluster: &PgCluster, db: &str) -> String {
    let r = admin
        .post(
            "/api/v1/collections",
            serde_json::json!({ "name": "bench", "fields": [
                { "name": "title", "type": "text" },
                { "name": "status", "type": "enum", "enum_values": ["open", "closed", "pending"], "indexed": true },
                { "name": "priority", "type": "integer", "indexed": true }
            ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sql = cluster.connect(db).await;
    let ids: Vec<i64> = sql
        .query(
            "SELECT f.id FROM collection_fields f JOIN collections c ON c.id = f.collection_id \
             WHERE c.name = 'bench' ORDER BY f.position",
            &[],
        )
        .await
        .expect("fields")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let cid: i64 = sql
        .query_one("SELECT id FROM collections WHERE name = 'bench'", &[])
        .await
        .expect("collection")
        .get(0);
    let (t, s, p) = (ids[0], ids[1], ids[2]);
    sql.batch_execute(&format!(
        "INSERT INTO records.\"c_{cid}\" (\"f_{t}\", \"f_{s}\", \"f_{p}\") \
         SELECT 'title ' || g, (ARRAY['open','closed','pending'])[1 + g % 3], g % 1000 \
         FROM generate_series(1, 100000) g; ANALYZE records.\"c_{cid}\";"
    ))
    .await
    .expect("load records");
    format!(
        "SELECT id, version, created_at, updated_at, created_by, updated_by, \"f_{t}\", \"f_{s}\", \"f_{p}\" \
         FROM records.\"c_{cid}\" WHERE \"f_{s}\" COLLATE \"C\" = 'open' \
         ORDER BY \"f_{p}\" ASC NULLS LAST, id ASC LIMIT 51;\n"
    )
}

/// pgbench running one statement, prepared, at the benchmark's
/// concurrency; returns transactions per second.
fn pgbench_sql(cluster: &PgCluster, db: &str, dir: &std::path::Path, sql: &str) -> f64 {
    let script = dir.join("page.sql");
    std::fs::write(&script, sql).expect("write sql");
    harness::chmod(&script, 0o644);
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", &format!("-c{CONNECTIONS}"), "-j2"])
        .arg(format!("-T{LOAD_SECS}"))
        .arg("-f")
        .arg(&script)
        .arg(cluster.dsn(db))
        .output()
        .expect("pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "pgbench printed no tps:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Creates the first admin through a setup link and an API token.
async fn api_token(
    config: &AppConfig,
    addr: std::net::SocketAddr,
) -> (String, harness::api::ApiClient) {
    let issued = config.run(&["admin", "setup-token"]);
    assert_eq!(issued.code(), Some(0), "{}", issued.all());
    let setup = issued
        .stdout
        .trim()
        .split_once("#token=")
        .expect("a setup link")
        .1
        .to_string();
    let mut admin = harness::api::ApiClient::anonymous(addr);
    let r = admin
        .post(
            "/api/v1/setup",
            serde_json::json!({ "token": setup, "username": "bench", "password": harness::api::PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    admin.adopt_session(&r);
    let r = admin
        .post(
            "/api/v1/me/tokens",
            serde_json::json!({ "name": "bench", "permissions": ["system:read", "records:read"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (
        r.json()["token"].as_str().expect("token").to_string(),
        admin,
    )
}
