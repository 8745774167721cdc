//! Records benchmarks (not tests): `cargo bench -p mogothrow77 --bench records`.
//!
//! A collection of 1,000,000 records with 10 fields (loaded by SQL), then,
//! over HTTPS with an API token:
//! - a page of 50 records with a two-field filter and a sort, paced to about
//!   500 requests/s (wrk with a per-connection delay), p50/p95/p99, against
//!   pgbench running the page's SQL at `-R 500` in the same run;
//! - the same request's maximum throughput against pgbench's tps, three
//!   alternating pairs on the same rows, the median pair reported;
//! - a deep cursor page (page 10,000 of 50, reached by walking cursors);
//! - create and update throughput, and create again with a webhook
//!   subscribed to the collection (its deliveries running alongside);
//! - CSV export streamed over HTTPS (curl) of 100k, ~1M and ~3M rows against
//!   `COPY … TO STDOUT (FORMAT csv)` of the same rows, and the server's peak RSS;
//! - a stored export job of ~1M rows, from the request to downloadable.
//!
//! Needs `wrk`, `curl` and PostgreSQL's `pgbench`: `apt-get install wrk curl postgresql`.

// Tests and benchmarks set up and inspect the database directly, not as the
// server does: tokio-postgres's own methods are fine here (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;
#[allow(dead_code)]
mod load;

use harness::api::encode;
use harness::app::AppConfig;
use harness::pg::PgCluster;
use load::Wrk;

const RECORDS: i64 = 1_000_000;
const SECS: u32 = 10;
const MAX_CONNECTIONS: u32 = 16;
/// Alternating API / pgbench maximum-throughput runs.
const MAX_PAIRS: usize = 3;
/// 8 connections, each waiting this long after an answer: about 500
/// requests/s when answers take a few milliseconds.
const PACED_CONNECTIONS: u32 = 8;
const PACED_DELAY_MS: u32 = 14;

fn report(name: &str, l: &load::Load) {
    println!(
        "{name:46} {:>8.0} req/s  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms",
        l.rps, l.p50_ms, l.p95_ms, l.p99_ms
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cluster = PgCluster::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(cluster.create_database());
    let config = AppConfig::external(
        &cluster.dsn(&db),
        "[api]\nrate_limit_per_minute = 1000000\nmax_concurrent_queries = 0\n\
         [webhooks]\nallow_addresses = [\"127.0.0.1/32\"]\n",
    );
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let dir = config.dir.path();
    let (token, admin) = runtime.block_on(load::admin_and_token(
        &config,
        addr,
        &["records:read", "records:write", "records:export"],
    ));
    let bearer = format!("Authorization: Bearer {token}");
    let json = "Content-Type: application/json";

    // Ten fields; status and priority indexed (filtered), code unique.
    let r = runtime.block_on(admin.post("/api/v1/collections", load::ten_fields("big")));
    assert_eq!(r.status, 201, "{}", r.body);
    let sql = runtime.block_on(cluster.connect(&db));
    let field = |name: &str| -> i64 {
        runtime
            .block_on(sql.query_one(
                "SELECT f.id FROM collection_fields f JOIN collections c ON c.id = f.collection_id \
                 WHERE c.name = 'big' AND f.name = $1",
                &[&name],
            ))
            .expect("field")
            .get(0)
    };
    let f: Vec<String> = [
        "title", "status", "priority", "amount", "due", "seen_at", "done", "owner", "tags", "code",
    ]
    .iter()
    .map(|n| format!("\"f_{}\"", field(n)))
    .collect();
    let cid: i64 = runtime
        .block_on(sql.query_one("SELECT id FROM collections WHERE name = 'big'", &[]))
        .expect("collection")
        .get(0);
    let table = format!("records.\"c_{cid}\"");
    let started = std::time::Instant::now();
    runtime.block_on(load::load_records(&sql, &table, &f, 1, RECORDS));
    println!(
        "## {RECORDS} records with 10 fields loaded by SQL in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The page: two-field filter and a sort.
    let filter = r#"{"and":[{"field":"status","op":"eq","value":"open"},{"field":"priority","op":"gte","value":500}]}"#;
    let page_url = format!(
        "https://{addr}/api/v1/collections/big/records?limit=50&sort=priority&filter={}",
        encode(filter)
    );
    let page_sql =
        format!(
        "SELECT id, version, created_at, updated_at, created_by, updated_by, {cols} FROM {table} \
         WHERE ((\"{s}\" COLLATE \"C\" = 'open') AND ({p} >= 500)) \
         ORDER BY {p} ASC NULLS LAST, id ASC LIMIT 51;\n",
        cols = f
            .iter()
            .enumerate()
            .map(|(i, c)| if i == 3 { format!("{c}::text AS out_amount") } else { c.clone() })
            .collect::<Vec<_>>()
            .join(", "),
        s = f[1].trim_matches('"'),
        p = f[2],
    );
    let pace = format!("function delay() return {PACED_DELAY_MS} end");
    let paced = load::wrk(
        &Wrk {
            url: &page_url,
            headers: &[&bearer],
            connections: PACED_CONNECTIONS,
            secs: SECS,
            lua: &pace,
        },
        dir,
    );
    // The references run right after, on the same rows in the same state
    // (the server idle meanwhile). Maximum throughput alternates API and
    // pgbench three times: the ratio is the median of the three pairs, as
    // single runs on two shared cores vary by ±10%.
    let pg_paced = load::pgbench(
        &cluster,
        &db,
        dir,
        &page_sql,
        PACED_CONNECTIONS,
        SECS,
        Some(500),
    );
    let mut pairs = Vec::new();
    for _ in 0..MAX_PAIRS {
        let api = load::wrk(
            &Wrk {
                url: &page_url,
                headers: &[&bearer],
                connections: MAX_CONNECTIONS,
                secs: SECS,
                lua: "",
            },
            dir,
        );
        let pg = load::pgbench(&cluster, &db, dir, &page_sql, MAX_CONNECTIONS, SECS, None);
        pairs.push((api, pg));
    }
    pairs.sort_by(|a, b| (a.0.rps / a.1.tps).total_cmp(&(b.0.rps / b.1.tps)));
    let (max, pg_max) = &pairs[pairs.len() / 2];

    // Page 10,000: walk 499,950 records by cursor (200 a page, then 50).
    let mut cursor: Option<String> = None;
    let mut walked = 0i64;
    let walk_started = std::time::Instant::now();
    while walked < 499_950 {
        let limit = if walked < 499_800 { 200 } else { 50 };
        let mut path = format!("/api/v1/collections/big/records?limit={limit}&sort=priority");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", encode(c)));
        }
        let r = runtime.block_on(admin.get(&path));
        assert_eq!(r.status, 200, "{}", r.body);
        let body = r.json();
        walked += body["items"]
            .as_array()
            .map(|a| a.len() as i64)
            .unwrap_or(0);
        cursor = body["next_cursor"].as_str().map(str::to_string);
    }
    let walk_secs = walk_started.elapsed().as_secs_f64();
    let deep_url = format!(
        "https://{addr}/api/v1/collections/big/records?limit=50&sort=priority&cursor={}",
        encode(cursor.as_deref().expect("a cursor at page 10,000"))
    );
    let deep = load::wrk(
        &Wrk {
            url: &deep_url,
            headers: &[&bearer],
            connections: PACED_CONNECTIONS,
            secs: SECS,
            lua: &pace,
        },
        dir,
    );

    // Writes.
    let create_lua = r#"
wrk.method = "POST"
wrk.body = '{"data":{"title":"bench","status":"open","priority":7,"amount":"12.50","done":false}}'
"#;
    let create = load::wrk(
        &Wrk {
            url: &format!("https://{addr}/api/v1/collections/big/records"),
            headers: &[&bearer, json],
            connections: MAX_CONNECTIONS,
            secs: SECS,
            lua: create_lua,
        },
        dir,
    );
    let update_lua = format!(
        r#"
request = function()
  local id = math.random(1, {RECORDS})
  return wrk.format("PATCH", "/api/v1/collections/big/records/" .. id, nil,
    '{{"data":{{"priority":' .. math.random(0, 999) .. '}}}}')
end
"#
    );
    let update = load::wrk(
        &Wrk {
            url: &format!("https://{addr}/api/v1/collections/big/records"),
            headers: &[&bearer, json],
            connections: MAX_CONNECTIONS,
            secs: SECS,
            lua: &update_lua,
        },
        dir,
    );
    // Create again while a webhook is subscribed: every write also queues
    // a delivery, which the server's workers send meanwhile.
    let receiver = runtime.block_on(harness::receiver::Receiver::start(
        "127.0.0.1",
        vec![harness::receiver::Answer::status(204)],
    ));
    let r = runtime.block_on(admin.post(
        "/api/v1/webhooks",
        serde_json::json!({ "url": receiver.url("/in"), "collection": "big", "events": ["record.created"] }),
    ));
    assert_eq!(r.status, 201, "{}", r.body);
    let webhook = r.json()["id"].as_i64().expect("webhook id");
    let create_hooked = load::wrk(
        &Wrk {
            url: &format!("https://{addr}/api/v1/collections/big/records"),
            headers: &[&bearer, json],
            connections: MAX_CONNECTIONS,
            secs: SECS,
            lua: create_lua,
        },
        dir,
    );
    let delivered_during = receiver.received().len();
    // Deleting it cancels what is still queued, so the exports below run
    // without deliveries alongside.
    let r = runtime.block_on(admin.delete(&format!("/api/v1/webhooks/{webhook}")));
    assert_eq!(r.status, 204, "{}", r.body);
    drop(receiver);

    // CSV exports: streamed to curl over HTTPS, against COPY of the same
    // rows to a client in the same run; the server's peak RSS meanwhile.
    let csv_columns = std::iter::once("id::text".to_string())
        .chain(f.iter().map(|c| format!("{c}::text")))
        .collect::<Vec<_>>()
        .join(", ");
    let export_100k = export_pair(
        &runtime,
        &sql,
        &table,
        &csv_columns,
        &app,
        addr,
        &token,
        Some((&f[2], 100)),
    );
    let export_1m = export_pair(
        &runtime,
        &sql,
        &table,
        &csv_columns,
        &app,
        addr,
        &token,
        None,
    );
    let stored_1m = stored_export(&runtime, &admin, &app);
    runtime.block_on(load::load_records(
        &sql,
        &table,
        &f,
        RECORDS + 1,
        3 * RECORDS,
    ));
    let export_3m = export_pair(
        &runtime,
        &sql,
        &table,
        &csv_columns,
        &app,
        addr,
        &token,
        None,
    );

    let _ = app.stop();

    println!(
        "\n## Page of 50 (filter status = open AND priority >= 500, sort priority), HTTPS + token"
    );
    report("paced (8 connections, 14 ms think time)", &paced);
    println!(
        "reference: pgbench -R 500 -c{PACED_CONNECTIONS}, the page's SQL: latency average {:.2} ms -> API p50 {:.1}x of it  (target API p95 <= 10 ms)",
        pg_paced.latency_ms,
        paced.p50_ms / pg_paced.latency_ms
    );
    report("maximum (16 connections), median pair", max);
    println!(
        "reference: pgbench -c{MAX_CONNECTIONS} -j2: {:.0} tps -> API at {:.2}x of it (target >= 0.3x)",
        pg_max.tps,
        max.rps / pg_max.tps
    );
    println!(
        "  all {MAX_PAIRS} pairs (API req/s / pgbench tps): {}",
        pairs
            .iter()
            .map(|(a, p)| format!("{:.0}/{:.0} = {:.2}x", a.rps, p.tps, a.rps / p.tps))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "\n## Deep cursor page (page 10,000 of 50, sort priority; walked in {walk_secs:.1} s)"
    );
    report("paced (8 connections, 14 ms think time)", &deep);
    println!("\n## Writes (16 connections, audited)");
    report("create", &create);
    report("update (PATCH, random record)", &update);
    report("create, webhook subscribed", &create_hooked);
    println!(
        "  -> {:.2}x of create without; {delivered_during} deliveries sent during the {SECS} s",
        create_hooked.rps / create.rps
    );
    println!("\n## CSV export, streamed over HTTPS (curl) vs COPY ... TO STDOUT (FORMAT csv) to a client");
    for (label, e) in [
        ("100k rows (priority < 100)", &export_100k),
        ("all rows (~1M)", &export_1m),
        ("all rows (~3M)", &export_3m),
    ] {
        println!(
            "{label:28} {:>9} rows {:>6.1} MB  streamed {:>6.2} s  COPY {:>6.2} s  -> {:.2}x (target <= 1.5x)  server peak RSS {:.1} MB (target <= 50)",
            e.rows,
            e.bytes as f64 / 1e6,
            e.streamed_secs,
            e.copy_secs,
            e.streamed_secs / e.copy_secs,
            e.peak_rss_mb
        );
    }
    let (stored_secs, stored_rss, stored_rows) = stored_1m;
    println!(
        "stored export job, all rows ({stored_rows}): request to downloadable {stored_secs:.2} s -> {:.2}x COPY's {:.2} s (target <= 2.5x)  server peak RSS {stored_rss:.1} MB",
        stored_secs / export_1m.copy_secs,
        export_1m.copy_secs
    );
}

/// Starts a stored export of every record and waits until it is ready:
/// seconds from the request to downloadable, the server's peak RSS, rows.
fn stored_export(
    runtime: &tokio::runtime::Runtime,
    admin: &harness::api::ApiClient,
    app: &harness::app::App,
) -> (f64, f64, i64) {
    let peak = RssSampler::start(app.pid());
    let started = std::time::Instant::now();
    let rows = runtime.block_on(async {
        let r = admin
            .post("/api/v1/collections/big/exports", serde_json::json!({}))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.json()["id"].as_i64().expect("id");
        loop {
            let e = admin.get(&format!("/api/v1/exports/{id}")).await.json();
            if e["state"] == "ready" {
                break e["rows"].as_i64().unwrap_or(0);
            }
            assert!(
                e["state"] == "queued" || e["state"] == "running",
                "export failed: {e}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    let secs = started.elapsed().as_secs_f64();
    (secs, peak.stop(), rows)
}

/// Samples a process's resident memory every 5 ms until stopped.
struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak_kb = 0u64;
            while !flag.load(Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    if let Some(kb) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    {
                        peak_kb = peak_kb.max(kb);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak_kb
        });
        RssSampler { stop, thread }
    }

    /// The peak, in MB.
    fn stop(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("sampler") as f64 / 1024.0
    }
}

struct ExportRun {
    rows: i64,
    bytes: u64,
    streamed_secs: f64,
    copy_secs: f64,
    peak_rss_mb: f64,
}

/// Streams the export (curl, discarding the body) while sampling the
/// server's RSS, then runs COPY of the same rows; `filter` is
/// `(column, bound)` for `column < bound`.
#[allow(clippy::too_many_arguments)]
fn export_pair(
    runtime: &tokio::runtime::Runtime,
    sql: &tokio_postgres::Client,
    table: &str,
    columns: &str,
    app: &harness::app::App,
    addr: std::net::SocketAddr,
    token: &str,
    filter: Option<(&str, i64)>,
) -> ExportRun {
    let mut url = format!("https://{addr}/api/v1/collections/big/export.csv");
    let mut condition = "true".to_string();
    if let Some((column, bound)) = filter {
        url.push_str(&format!(
            "?filter={}",
            encode(&format!(
                r#"{{"field":"priority","op":"lt","value":{bound}}}"#
            ))
        ));
        condition = format!("{column} < {bound}");
    }
    let peak = RssSampler::start(app.pid());
    let started = std::time::Instant::now();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--fail",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
        ])
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(&url)
        .output()
        .expect("curl (apt-get install curl)");
    let streamed_secs = started.elapsed().as_secs_f64();
    let peak_rss_mb = peak.stop();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("size");

    let copy = format!(
        "COPY (SELECT {columns} FROM {table} WHERE {condition} ORDER BY id) TO STDOUT (FORMAT csv, HEADER)"
    );
    let started = std::time::Instant::now();
    let copied = runtime.block_on(async {
        use futures_util::StreamExt;
        let stream = sql.copy_out(&copy).await.expect("copy");
        futures_util::pin_mut!(stream);
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            n += chunk.expect("copy data").len() as u64;
        }
        n
    });
    let copy_secs = started.elapsed().as_secs_f64();
    let rows: i64 = runtime
        .block_on(sql.query_one(
            &format!("SELECT count(*) FROM {table} WHERE {condition}"),
            &[],
        ))
        .expect("count")
        .get(0);
    assert!(copied > 0);
    ExportRun {
        rows,
        bytes,
        streamed_secs,
        copy_secs,
        peak_rss_mb,
    }
}
