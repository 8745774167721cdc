//! `/metrics`: label values from fixed sets whatever clients send, and the
//! endpoint answered only to loopback (with TLS on), `metrics.allow_addresses`
//! or the bearer token of `metrics.token_file`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::app::AppConfig;
use crate::harness::chmod;
use crate::harness::client::{self, metric};
use crate::harness::pg::shared;

/// The sample lines of an exposition (no comments), e.g.
/// `mogothrow77_http_requests_total{…} 3`, reduced to their series.
fn series(body: &str) -> std::collections::BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').map_or(l, |(name, _)| name).to_string())
        .collect()
}

/// One hostile request of kind `i % 5`, each with made-up parts numbered `i`.
async fn hostile(addr: SocketAddr, i: usize) {
    let made_up_method = format!("X{i}MADE-UP");
    let path = format!("/no/such/{i}/{}", "seg/".repeat(i % 7));
    let header = format!("X-Made-Up-{i}");
    let result = match i % 5 {
        0 => client::request(addr, &made_up_method, "/healthz", &[], None).await,
        1 => client::get(addr, &path).await,
        2 => client::request(addr, &made_up_method, &path, &[], None).await,
        3 => {
            client::get_with(
                addr,
                &format!("/healthz?q={i}"),
                &[
                    (header.as_str(), "value"),
                    ("X-Request-Id", &format!("r{i}")),
                ],
            )
            .await
        }
        // A known path with a method its route does not take.
        _ => client::request(addr, "DELETE", "/readyz", &[], None).await,
    };
    let response = result.expect("hostile request answered");
    assert!(
        response.status < 500,
        "request {i} got {}: {}",
        response.status,
        response.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn made_up_methods_paths_and_headers_add_no_series() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let mut app = config.spawn();
    let addr = app.wait_ready();

    // Every kind of hostile request once, plus one 60 KB method, then two
    // scrapes (the first scrape's own series appear with the second).
    for i in 0..5 {
        hostile(addr, i).await;
    }
    let huge = "M".repeat(60 * 1024);
    let r = client::request(addr, &huge, "/healthz", &[], None)
        .await
        .expect("60 KB method");
    assert!(r.status < 500, "{}", r.status);
    client::get(addr, "/metrics").await.expect("metrics");
    let before = client::get(addr, "/metrics").await.expect("metrics");
    assert_eq!(before.status, 200);
    let before_series = series(&before.body);
    for expected in [
        "mogothrow77_http_requests_total{route=\"unmatched\",method=\"other\",status=\"4xx\"}",
        "mogothrow77_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"4xx\"}",
        "mogothrow77_http_requests_total{route=\"unmatched\",method=\"DELETE\",status=\"4xx\"}",
        "mogothrow77_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"2xx\"}",
        "mogothrow77_http_responses_total{code=\"405\"}",
        "mogothrow77_http_responses_total{code=\"404\"}",
    ] {
        assert!(
            before_series.contains(expected),
            "{expected} missing:\n{}",
            before.body
        );
    }
    assert!(
        !before.body.contains("X0MADE-UP") && !before.body.contains("MMMM"),
        "a client's method became a label:\n{}",
        before.body
    );

    // Thousands more, sixteen at a time.
    const COUNT: usize = 3000;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(5));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let next = next.clone();
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= COUNT {
                    break;
                }
                hostile(addr, i).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("hostile requests");
    }
    for _ in 0..20 {
        client::request(addr, &huge, "/healthz", &[], None)
            .await
            .expect("60 KB method");
    }

    let after = client::get(addr, "/metrics").await.expect("metrics");
    let after_series = series(&after.body);
    let added: Vec<_> = after_series.difference(&before_series).collect();
    assert!(
        added.is_empty(),
        "{} new series after {COUNT} hostile requests: {added:?}",
        added.len()
    );
    assert_eq!(after_series.len(), before_series.len());
    // The counts moved (the requests were seen), the size did not.
    assert!(
        after.body.contains(&format!(
            "mogothrow77_http_requests_total{{route=\"unmatched\",method=\"other\",status=\"4xx\"}} {}",
            // kinds 0 and 2, plus the 21 huge ones
            (0..COUNT).filter(|i| i % 5 == 0 || i % 5 == 2).count() + 21
        )),
        "{}",
        after.body
    );
    assert!(
        after.body.len() < before.body.len() + 4096,
        "the exposition grew from {} to {} bytes",
        before.body.len(),
        after.body.len()
    );
    assert!(app.stop().success());
}

fn token_file(config: &AppConfig, name: &str, token: &str) -> std::path::PathBuf {
    let path = config.path(name);
    crate::harness::secret_file(&path, &format!("{token}\n"));
    path
}

const TOKEN: &str = "c2NyYXBlLXRva2VuLWZvci10ZXN0cw";

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_tls_proxy_loopback_needs_the_token_or_an_allowed_address() {
    let db = shared().create_database().await;
    let config =
        AppConfig::external(&shared().dsn(&db), "").env("MOGOTHROW77_TLS__ENABLED", "false");
    let path = token_file(&config, "metrics-token", TOKEN);
    let config = config.env(
        "MOGOTHROW77_METRICS__TOKEN_FILE",
        &path.display().to_string(),
    );
    let mut app = config.spawn();
    let addr = app.wait_ready();

    let none = client::get_plain(addr, "/metrics").await.expect("metrics");
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(none.json()["code"], "unauthenticated");
    assert!(none.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("metrics.token_file")));
    assert_eq!(
        none.header("www-authenticate"),
        Some("Bearer realm=\"metrics\"")
    );
    assert!(!none.body.contains("mogothrow77_"), "{}", none.body);

    let bearer = format!("Bearer {TOKEN}");
    let ok = client::get_plain_with(addr, "/metrics", &[("Authorization", &bearer)])
        .await
        .expect("metrics");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("mogothrow77_build_info"));

    let wrong = client::get_plain_with(
        addr,
        "/metrics",
        &[("Authorization", &format!("Bearer {TOKEN}X"))],
    )
    .await
    .expect("metrics");
    assert_eq!(wrong.status, 401);
    assert!(wrong.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("does not match")));

    // Rotation: a new token in the file, SIGHUP; the old one stops working.
    let rotated = "bmV3LXNjcmFwZS10b2tlbi1yb3RhdGVk";
    std::fs::write(&path, rotated).expect("rotate");
    app.signal(nix::sys::signal::Signal::SIGHUP);
    app.wait_event(
        "SIGHUP: metrics.token_file re-read",
        Duration::from_secs(10),
    );
    let old = client::get_plain_with(addr, "/metrics", &[("Authorization", &bearer)])
        .await
        .expect("metrics");
    assert_eq!(old.status, 401);
    let new = client::get_plain_with(
        addr,
        "/metrics",
        &[("Authorization", &format!("Bearer {rotated}"))],
    )
    .await
    .expect("metrics");
    assert_eq!(new.status, 200);
    // A broken file on SIGHUP keeps the token in use.
    chmod(&path, 0o644);
    app.signal(nix::sys::signal::Signal::SIGHUP);
    app.wait_event(
        "SIGHUP: cannot read metrics.token_file; keeping the current token",
        Duration::from_secs(10),
    );
    let kept = client::get_plain_with(
        addr,
        "/metrics",
        &[("Authorization", &format!("Bearer {rotated}"))],
    )
    .await
    .expect("metrics");
    assert_eq!(kept.status, 200);
    assert!(app.stop().success());
    let logs = app.output();
    assert!(
        !logs.contains(TOKEN) && !logs.contains(rotated),
        "a token was logged"
    );

    // No token, no allowed address: refused, even from loopback.
    let closed =
        AppConfig::external(&shared().dsn(&db), "").env("MOGOTHROW77_TLS__ENABLED", "false");
    let mut app = closed.spawn();
    let addr = app.wait_ready();
    let refused = client::get_plain(addr, "/metrics").await.expect("metrics");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.json()["code"], "forbidden");
    assert!(refused.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("metrics.allow_addresses")));
    assert!(app.stop().success());

    // The proxy's (or Prometheus's) address allowed: answered.
    let allowed = AppConfig::external(
        &shared().dsn(&db),
        "[metrics]\nallow_addresses = [\"127.0.0.1/32\"]\n",
    )
    .env("MOGOTHROW77_TLS__ENABLED", "false");
    let mut app = allowed.spawn();
    let addr = app.wait_ready();
    let ok = client::get_plain(addr, "/metrics").await.expect("metrics");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(app.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_tls_other_hosts_need_an_allowed_address_or_the_token() {
    let Some(host) = crate::harness::non_loopback_address() else {
        panic!("this test needs a non-loopback address on the host (a default route)");
    };
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "").env("MOGOTHROW77_LISTEN", "0.0.0.0:0");
    let path = token_file(&config, "metrics-token", TOKEN);
    let config = config.env(
        "MOGOTHROW77_METRICS__TOKEN_FILE",
        &path.display().to_string(),
    );
    let mut app = config.spawn();
    let port = app.wait_ready().port();
    let loopback = SocketAddr::from(([127, 0, 0, 1], port));
    let remote = SocketAddr::new(host, port);

    let local = client::get(loopback, "/metrics").await.expect("metrics");
    assert_eq!(local.status, 200, "{}", local.body);
    let stranger = client::get(remote, "/metrics").await.expect("metrics");
    assert_eq!(stranger.status, 401, "{}", stranger.body);
    let with_token = client::get_with(
        remote,
        "/metrics",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
    .await
    .expect("metrics");
    assert_eq!(with_token.status, 200, "{}", with_token.body);
    // Everything else is still served to that address.
    let health = client::get(remote, "/healthz").await.expect("healthz");
    assert_eq!(health.status, 200);
    assert!(app.stop().success());

    let allowed = AppConfig::external(
        &shared().dsn(&db),
        &format!("[metrics]\nallow_addresses = [\"{host}/32\"]\n"),
    )
    .env("MOGOTHROW77_LISTEN", "0.0.0.0:0");
    let mut app = allowed.spawn();
    let port = app.wait_ready().port();
    let ok = client::get(SocketAddr::new(host, port), "/metrics")
        .await
        .expect("metrics");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(app.stop().success());
}

#[test]
fn bad_metrics_settings_stop_the_start_naming_the_key() {
    let config = AppConfig::new("[metrics]\nallow_addresses = [\"10.0.0.0/8\", \"prometheus\"]\n");
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("`metrics.allow_addresses[1]`") && out.stderr.contains("CIDR"),
        "{}",
        out.stderr
    );

    let config = AppConfig::new("");
    let short = token_file(&config, "short", "tooshort");
    let out = config
        .env(
            "MOGOTHROW77_METRICS__TOKEN_FILE",
            &short.display().to_string(),
        )
        .run(&["serve"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("`metrics.token_file`") && out.stderr.contains("shorter than 16"),
        "{}",
        out.stderr
    );
    assert!(!out.all().contains("tooshort"), "{}", out.all());

    let config = AppConfig::new("");
    let open = token_file(&config, "open", TOKEN);
    chmod(&open, 0o644);
    let out = config
        .env(
            "MOGOTHROW77_METRICS__TOKEN_FILE",
            &open.display().to_string(),
        )
        .run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("`metrics.token_file`") && out.stderr.contains("chmod 600"),
        "{}",
        out.stderr
    );
    assert!(!out.all().contains(TOKEN), "{}", out.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn what_an_operator_watches_is_published() {
    let site = crate::harness::api::Site::start().await;
    let body = client::get(site.addr, "/metrics")
        .await
        .expect("metrics")
        .body;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    // The generated certificate: valid for years from now.
    let expiry = metric(
        &body,
        "mogothrow77_tls_certificate_expiry_timestamp_seconds",
    )
    .expect("certificate expiry");
    assert!(
        expiry > now + 300.0 * 86400.0,
        "expires at {expiry}, now {now}"
    );
    // The state directory's file system, as statvfs sees it.
    let state = site.config.state_dir();
    let stat = nix::sys::statvfs::statvfs(&state).expect("statvfs");
    let size = metric(&body, "mogothrow77_filesystem_size_bytes{dir=\"state\"}").expect("size");
    assert_eq!(size, (stat.blocks() * stat.fragment_size()) as f64);
    let avail = metric(&body, "mogothrow77_filesystem_avail_bytes{dir=\"state\"}").expect("avail");
    assert!(avail > 0.0 && avail <= size, "{avail} of {size}");
    let files = metric(&body, "mogothrow77_filesystem_files{dir=\"state\"}").expect("inodes");
    let free = metric(&body, "mogothrow77_filesystem_files_free{dir=\"state\"}").expect("free");
    assert!(free > 0.0 && free <= files, "{free} of {files}");
    // External database: no managed data directory to watch.
    assert!(!body.contains("dir=\"postgres\""), "{body}");
    assert_eq!(
        metric(&body, "mogothrow77_cache_listener_connected"),
        Some(1.0)
    );
    // The first admin's creation was audited: one append at least, timed.
    let appends =
        metric(&body, "mogothrow77_audit_append_duration_seconds_count").expect("audit appends");
    assert!(appends >= 1.0, "{body}");
    // This process, as the kernel counts it.
    let rss = metric(&body, "mogothrow77_process_resident_memory_bytes").expect("rss");
    assert!(rss > 1e6 && rss < 1e9, "{rss}");
    let fds = metric(&body, "mogothrow77_process_open_fds").expect("fds");
    let max_fds = metric(&body, "mogothrow77_process_max_fds").expect("max fds");
    assert!(fds > 3.0 && fds < max_fds, "{fds} of {max_fds}");
    assert!(metric(&body, "mogothrow77_process_cpu_seconds_total").is_some_and(|s| s > 0.0));
    let size = metric(&body, "mogothrow77_database_size_bytes").expect("database size");
    assert!(size > 1e6, "{size}");
    // Fixed label sets exist from the start, at zero.
    for series in [
        "mogothrow77_db_errors_total{kind=\"read_only\"}",
        "mogothrow77_webhook_deliveries_total{outcome=\"timeout\"}",
        "mogothrow77_job_runs_total{kind=\"email\",outcome=\"lost\"}",
    ] {
        assert_eq!(metric(&body, series), Some(0.0), "{series}:\n{body}");
    }
    let started = metric(&body, "mogothrow77_process_start_time_seconds").expect("start");
    assert!(started <= now && started > now - 600.0);
    let level = crate::harness::newest_migration();
    assert!(
        body.contains(&format!("schema_level=\"{level}\"")),
        "build_info without the schema level {level}:\n{body}"
    );
}

#[test]
fn the_rules_are_printed_with_this_appliances_runbook_base() {
    let config = AppConfig::new("[tls]\nhostnames = [\"records.example.com\"]\n")
        .env("MOGOTHROW77_LISTEN", "0.0.0.0:8443");
    let out = config.run(&["monitoring", "rules"]);
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(out.stdout.starts_with("# Mogothrow77: SLO recording rules"));
    assert!(
        out.stdout.contains(
            "runbook_url: https://records.example.com:8443/docs/runbooks/alerts.md#mogothrow77databaseunavailable"
        ),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("__RUNBOOK_BASE__"));

    let out = config.run(&[
        "monitoring",
        "rules",
        "--runbook-base",
        "https://wiki.example.com/m77/",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(out
        .stdout
        .contains("runbook_url: https://wiki.example.com/m77/runbooks/alerts.md#mogothrow77down"));

    let out = config.run(&["monitoring", "rules", "--runbook-base", "wiki.example.com"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr
            .contains("--runbook-base `wiki.example.com` is not usable"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn slow_statements_are_counted_and_logged_by_summary_without_values() {
    // Every schema change takes longer than a millisecond.
    let site = crate::harness::api::Site::start_with("slow_statement_ms = 1\n").await;
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            serde_json::json!({ "name": "slowpoke", "fields": [{ "name": "title", "type": "text" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for _ in 0..5 {
        let r = site
            .admin
            .post(
                "/api/v1/collections/slowpoke/records",
                serde_json::json!({ "data": { "title": "value-never-logged" } }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let body = client::get(site.addr, "/metrics")
        .await
        .expect("metrics")
        .body;
    let slow: f64 = ["select", "insert", "update", "delete", "other"]
        .iter()
        .map(|op| {
            metric(
                &body,
                &format!("mogothrow77_db_slow_statements_total{{operation=\"{op}\"}}"),
            )
            .unwrap_or_else(|| panic!("no series for {op}:\n{body}"))
        })
        .sum();
    assert!(slow >= 1.0, "{body}");
    let logs = site.app.output();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "slow statement")
        .collect();
    assert!(
        lines.len() as f64 >= slow,
        "{slow} counted, logged:\n{logs}"
    );
    for line in &lines {
        let text = line.to_string();
        assert!(!text.contains("value-never-logged"), "{text}");
        assert_eq!(line["threshold_ms"], 1, "{text}");
        assert!(
            line["duration_ms"].as_u64().is_some_and(|d| d >= 1),
            "{text}"
        );
        // Keyword and table; a collection's table by its kind, not its id.
        let statement = line["statement"].as_str().unwrap_or_default();
        assert!(
            statement
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase()),
            "{text}"
        );
        assert!(
            !statement.contains("records.c_") || statement.ends_with("records.c_{id}"),
            "{text}"
        );
    }

    // A threshold of 0 is refused at start, naming the key.
    let out = AppConfig::external(&shared().dsn(&site.db), "")
        .env("MOGOTHROW77_DATABASE__SLOW_STATEMENT_MS", "0")
        .run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("database.slow_statement_ms"),
        "{}",
        out.stderr
    );
}
