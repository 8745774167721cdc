//! Load generation shared by the benchmarks: wrk over HTTPS (optionally
//! with a per-connection delay, which bounds the request rate), pgbench on
//! the same SQL as the reference, and a first admin with an API token.

use std::path::Path;
use std::process::Command;

use crate::harness;
use crate::harness::app::AppConfig;
use crate::harness::pg::PgCluster;

/// Throughput and latency of one wrk run.
pub struct Load {
    pub rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

const REPORT: &str = r#"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %f %f %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect))
end
"#;

/// One wrk run: `lua` is prepended to the reporting script (e.g. a
/// `request` function for writes, or a `delay` that paces each
/// connection).
pub struct Wrk<'a> {
    pub url: &'a str,
    pub headers: &'a [&'a str],
    pub connections: u32,
    pub secs: u32,
    pub lua: &'a str,
}

pub fn wrk(w: &Wrk<'_>, dir: &Path) -> Load {
    let script = dir.join("wrk.lua");
    std::fs::write(&script, format!("{}\n{REPORT}", w.lua)).expect("write lua");
    let mut cmd = Command::new("wrk");
    for h in w.headers {
        cmd.arg("-H").arg(h);
    }
    let threads = w.connections.clamp(1, 2);
    let out = cmd
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", w.connections))
        .arg(format!("-d{}s", w.secs))
        .arg("-s")
        .arg(&script)
        .arg(w.url)
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
    assert_eq!(f[4], 0.0, "wrk saw errors against {}:\n{text}", w.url);
    Load {
        rps: f[0],
        p50_ms: f[1],
        p95_ms: f[2],
        p99_ms: f[3],
    }
}

/// What pgbench reported.
pub struct Pgbench {
    pub tps: f64,
    pub latency_ms: f64,
}

/// pgbench running one statement, prepared; `rate` paces it (`-R`).
pub fn pgbench(
    cluster: &PgCluster,
    db: &str,
    dir: &Path,
    sql: &str,
    clients: u32,
    secs: u32,
    rate: Option<u32>,
) -> Pgbench {
    let script = dir.join("bench.sql");
    std::fs::write(&script, sql).expect("write sql");
    harness::chmod(&script, 0o644);
    let mut cmd = Command::new("pgbench");
    cmd.args(["-n", "-M", "prepared", &format!("-c{clients}"), "-j2"])
        .arg(format!("-T{secs}"));
    if let Some(r) = rate {
        cmd.arg(format!("-R{r}"));
    }
    let out = cmd
        .arg("-f")
        .arg(&script)
        .arg(cluster.dsn(db))
        .output()
        .expect("pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    let number = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "pgbench printed no {prefix:?}:\n{text}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    };
    Pgbench {
        tps: number("tps = "),
        latency_ms: number("latency average = "),
    }
}

/// Creates the first admin through a setup link, and an API token with
/// `permissions`; returns the token and the admin's session.
pub async fn admin_and_token(
    config: &AppConfig,
    addr: std::net::SocketAddr,
    permissions: &[&str],
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
            serde_json::json!({ "name": "bench", "permissions": permissions }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (
        r.json()["token"].as_str().expect("token").to_string(),
        admin,
    )
}

/// The benchmarks' collection `name`: ten fields of every kind, `status`
/// and `priority` indexed, `code` unique.
pub fn ten_fields(name: &str) -> serde_json::Value {
    serde_json::json!({ "name": name, "fields": [
        { "name": "title", "type": "text" },
        { "name": "status", "type": "enum", "enum_values": ["open", "closed", "pending"], "indexed": true },
        { "name": "priority", "type": "integer", "indexed": true },
        { "name": "amount", "type": "decimal" },
        { "name": "due", "type": "date" },
        { "name": "seen_at", "type": "timestamp" },
        { "name": "done", "type": "boolean" },
        { "name": "owner", "type": "text" },
        { "name": "tags", "type": "json" },
        { "name": "code", "type": "text", "unique": true }
    ] })
}

/// Loads records `from..=to` by SQL into the bench collection's `table`
/// (`columns`: its ten field columns, in order), then analyzes it.
pub async fn load_records(
    sql: &tokio_postgres::Client,
    table: &str,
    columns: &[String],
    from: i64,
    to: i64,
) {
    sql.batch_execute(&load_sql(table, columns, from, to))
        .await
        .expect("load records");
}

/// The SQL of [`load_records`], for a client of another kind (`psql`).
pub fn load_sql(table: &str, columns: &[String], from: i64, to: i64) -> String {
    format!(
        "INSERT INTO {table} ({}) \
         SELECT 'title ' || g, (ARRAY['open','closed','pending'])[1 + g % 3], g % 1000, \
                (g % 100000) / 100.0, date '2026-01-01' + (g % 365), \
                timestamptz '2026-01-01' + g * interval '1 second', g % 2 = 0, \
                'owner' || (g % 50), jsonb_build_object('n', g % 10), 'code-' || g \
         FROM generate_series({from}, {to}) g; ANALYZE {table};",
        columns.join(", ")
    )
}

/// Runs `cmd` to its end (it must succeed) and returns how long it took,
/// in seconds: one whole-process measurement.
pub fn timed(what: &str, cmd: &mut std::process::Command) -> f64 {
    let started = std::time::Instant::now();
    let out = cmd.output().expect("run");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}
