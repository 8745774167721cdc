//! What every response carries: security headers, request ids, JSON errors;
//! and the metrics endpoint.

use crate::harness::app::AppConfig;
use crate::harness::client;
use crate::harness::pg::shared;

#[tokio::test(flavor = "multi_thread")]
async fn responses_carry_security_headers_request_ids_and_json_errors() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let mut app = config.spawn();
    let addr = app.wait_ready();

    let health = client::get(addr, "/healthz").await.expect("healthz");
    assert_eq!(health.status, 200);
    for (name, expected) in [
        ("strict-transport-security", "max-age="),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        let value = health.header(name).unwrap_or_default();
        assert!(value.contains(expected), "{name}: {value:?}");
    }
    let generated = health.header("x-request-id").expect("request id generated");
    assert!(generated.len() >= 16);

    let echoed = client::get_with(addr, "/healthz", &[("X-Request-Id", "trace-abc.123")])
        .await
        .expect("healthz");
    assert_eq!(echoed.header("x-request-id"), Some("trace-abc.123"));
    let hostile = client::get_with(addr, "/healthz", &[("X-Request-Id", "<script>")])
        .await
        .expect("healthz");
    assert_ne!(hostile.header("x-request-id"), Some("<script>"));

    let missing = client::get_with(addr, "/no/such/thing", &[("X-Request-Id", "req-404")])
        .await
        .expect("404");
    assert_eq!(missing.status, 404);
    let body = missing.json();
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["request_id"], "req-404");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(missing.header("content-security-policy").is_some());

    let metrics = client::get(addr, "/metrics").await.expect("metrics");
    assert_eq!(metrics.status, 200);
    for series in [
        "mogothrow77_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"2xx\"}",
        "mogothrow77_http_responses_total{code=\"200\"}",
        "mogothrow77_http_request_duration_seconds_bucket",
        "mogothrow77_http_requests_in_flight",
        "mogothrow77_db_pool_connections",
        "mogothrow77_db_pool_available",
        "mogothrow77_db_pool_waiting",
        "mogothrow77_build_info{version=",
    ] {
        assert!(
            metrics.body.contains(series),
            "{series} missing:\n{}",
            metrics.body
        );
    }
    let access = app.wait_event("request", std::time::Duration::from_secs(5));
    assert!(access["request_id"].is_string() && access["status"].is_number());
    assert!(app.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_only_when_tls_is_disabled() {
    let db = shared().create_database().await;
    let tls_on = AppConfig::external(&shared().dsn(&db), "");
    let mut app = tls_on.spawn();
    let addr = app.wait_ready();
    assert!(
        client::get_plain(addr, "/healthz")
            .await
            .map(|r| r.status != 200)
            .unwrap_or(true),
        "plain HTTP must not be served when TLS is on"
    );
    assert!(app.stop().success());

    let tls_off =
        AppConfig::external(&shared().dsn(&db), "").env("MOGOTHROW77_TLS__ENABLED", "false");
    let mut app = tls_off.spawn();
    let addr = app.wait_ready();
    let r = client::get_plain(addr, "/healthz").await.expect("plain");
    assert_eq!(r.status, 200);
    assert!(app.output().contains("TLS is disabled"));
    assert!(app.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_get_413_and_idle_connections_are_closed() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncReadExt;

    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "")
        .env("MOGOTHROW77_HTTP__BODY_LIMIT_BYTES", "2048")
        .env("MOGOTHROW77_HTTP__HEADER_READ_TIMEOUT_SECS", "1");
    let mut app = config.spawn();
    let addr = app.wait_ready();

    let big = client::send_raw(
        addr,
        b"POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("413");
    assert_eq!(big.status, 413, "{}", big.body);
    assert_eq!(big.json()["code"], "payload_too_large");
    assert!(big.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("2048")));

    // A connection that never sends a request head is closed by the server.
    let mut idle = client::connect_tls(addr).await.expect("connect");
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "expected the server to close the idle connection, got {read:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(app.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documentation_is_served_under_docs() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let mut app = config.spawn();
    let addr = app.wait_ready();

    let index = client::get(addr, "/docs/").await.expect("index");
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(index
        .header("content-security-policy")
        .is_some_and(|c| c.contains("script-src 'self'")));
    for page in [
        "observability.md",
        "operations.md",
        "runbooks/database-unreachable.md",
    ] {
        assert!(
            index.body.contains(&format!("href=\"/docs/{page}\"")),
            "{page} not listed:\n{}",
            index.body
        );
    }
    let page = client::get(addr, "/docs/observability.md")
        .await
        .expect("page");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<title>Observability · "),
        "{}",
        page.body
    );
    // Anchors as GitHub makes them, so links from the repository and from
    // alerts' runbook_url land on the heading.
    assert!(page.body.contains("<h2 id=\"series\">"), "{}", page.body);
    assert!(page.body.contains("href=\"configuration.md#metrics\""));
    assert!(!page.body.contains("<script"), "{}", page.body);
    let css = client::get(addr, "/docs/docs.css").await.expect("css");
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));

    for missing in [
        "/docs/nope.md",
        "/docs/../Cargo.toml",
        "/docs/%2e%2e/Cargo.toml",
    ] {
        let r = client::get(addr, missing).await.expect("missing");
        assert_eq!(r.status, 404, "{missing}: {}", r.body);
        assert_eq!(r.json()["code"], "not_found");
    }
    assert!(app.stop().success());
}

/// DNS rebinding: a request naming another host is refused with 421 (the
/// JSON error body); this server's names, IP literals and the health
/// probes pass; `http.allowed_hosts` replaces the default names.
#[tokio::test(flavor = "multi_thread")]
async fn only_requests_naming_this_server_are_served() {
    let db = crate::harness::pg::shared().create_database().await;
    let dsn = crate::harness::pg::shared().dsn(&db);
    let get = |addr: std::net::SocketAddr, host: String, path: &'static str| async move {
        client::send_raw(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("answer")
    };
    let config = AppConfig::external(&dsn, "");
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let own = nix::unistd::gethostname()
        .expect("hostname")
        .into_string()
        .expect("utf-8");
    for host in [
        "localhost".to_string(),
        "LOCALHOST:8443".to_string(),
        format!("127.0.0.1:{}", addr.port()),
        "[::1]".to_string(),
        own,
    ] {
        let r = get(addr, host.clone(), "/api/v1/setup").await;
        assert_eq!(r.status, 200, "{host}: {}", r.body);
    }
    let r = get(addr, "rebind.evil.example".to_string(), "/api/v1/setup").await;
    assert_eq!(r.status, 421, "{}", r.body);
    assert_eq!(r.json()["code"], "misdirected_request");
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    for probe in ["/healthz", "/readyz"] {
        let r = get(addr, "rebind.evil.example".to_string(), probe).await;
        assert_eq!(r.status, 200, "{probe}: {}", r.body);
    }
    assert!(app.stop().success());

    let config = AppConfig::external(
        &dsn,
        "[http]\nallowed_hosts = [\"records.example.com\", \"*.corp.example\"]\n",
    );
    let mut app = config.spawn();
    let addr = app.wait_ready();
    for (host, status) in [
        ("records.example.com:443", 200),
        ("a.corp.example", 200),
        ("10.0.0.1", 200),
        ("localhost", 421),
    ] {
        let r = get(addr, host.to_string(), "/api/v1/setup").await;
        assert_eq!(r.status, status, "{host}: {}", r.body);
    }
    assert!(app.stop().success());
}

/// `api.max_concurrent_queries`: a caller with that many record queries
/// running gets 429 with `Retry-After` for the next one; others are not
/// held up by it, and the place comes back when the query ends.
#[tokio::test(flavor = "multi_thread")]
async fn one_caller_may_run_only_so_many_record_queries_at_once() {
    use serde_json::json;
    let site = crate::harness::api::Site::start_with("[api]\nmax_concurrent_queries = 1\n").await;
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "notes", "fields": [{ "name": "title", "type": "text" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A lock held elsewhere keeps the first listing running.
    let mut sql = site.sql().await;
    let id: i64 = sql
        .query_one("SELECT id FROM collections WHERE name = 'notes'", &[])
        .await
        .expect("id")
        .get(0);
    let tx = sql.transaction().await.expect("tx");
    tx.batch_execute(&format!(
        "LOCK TABLE records.\"c_{id}\" IN ACCESS EXCLUSIVE MODE"
    ))
    .await
    .expect("lock");
    let admin = site.admin.clone();
    let running = tokio::spawn(async move { admin.get("/api/v1/collections/notes/records").await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let refused = site.admin.get("/api/v1/collections/notes/records").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["code"], "rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        refused.body.contains("max_concurrent_queries"),
        "{}",
        refused.body
    );
    tx.rollback().await.expect("release");
    let first = running.await.expect("task");
    assert_eq!(first.status, 200, "{}", first.body);
    let again = site.admin.get("/api/v1/collections/notes/records").await;
    assert_eq!(again.status, 200, "the place came back: {}", again.body);
}
