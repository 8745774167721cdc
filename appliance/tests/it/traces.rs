//! Traces over OTLP/HTTP, received by a real OTLP receiver that decodes
//! them with the official protobuf definitions (`tests/otlp_receiver.py`,
//! opentelemetry-proto; `OTLP_RECEIVER_PYTHON` names a Python that has it,
//! set by scripts/test): an export clicked with a caller's `traceparent`
//! arrives as one trace — request → job enqueued → job run (each chunk,
//! the file stored) → e-mail and webhook queued → sent — each span under
//! the right parent, and the webhook receiver gets the trace in its
//! `traceparent`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::api::{ApiClient, Site, PASSWORD};
use crate::harness::receiver::{Answer, Receiver};
use crate::harness::smtp::Relay;

/// The receiver process and the spans it printed.
struct Collector {
    child: Child,
    port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    fn start() -> Collector {
        let python = std::env::var("OTLP_RECEIVER_PYTHON").unwrap_or_else(|_| {
            panic!(
                "OTLP_RECEIVER_PYTHON is not set: point it at a Python with the \
                 opentelemetry-proto package (scripts/test installs it and sets it)"
            )
        });
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp_receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| l.trim().parse().ok())
            .expect("the receiver's port");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().expect("lock").push(v);
                }
            }
        });
        Collector { child, port, spans }
    }

    fn spans(&self) -> Vec<Value> {
        self.spans.lock().expect("lock").clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread")]
async fn an_export_is_one_trace_from_the_click_to_the_mail_and_the_webhook() {
    let collector = Collector::start();
    let relay = Relay::start(0).await;
    let dir = crate::harness::open_tempdir();
    let headers = dir.path().join("otlp-headers");
    crate::harness::secret_file(
        &headers,
        "# collector key\nAuthorization: Bearer collector-key\n",
    );
    let site = Site::start_with(&format!(
        "{}[webhooks]\nallow_addresses = [\"127.0.0.1/32\"]\n\
         [telemetry]\notlp_endpoint = \"http://127.0.0.1:{}/\"\nservice_name = \"records-test\"\n\
         headers_file = \"{}\"\nresource_attributes = {{ \"deployment.environment\" = \"ci\" }}\n",
        relay.settings(dir.path(), ""),
        collector.port,
        headers.display(),
    ))
    .await;
    let hook = Receiver::start("127.0.0.1", vec![Answer::status(204)]).await;
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "notes", "fields": [{ "name": "title", "type": "text" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Titles a statement's span must never show.
    for t in ["title-value-one", "title-value-two"] {
        let r = site
            .admin
            .post(
                "/api/v1/collections/notes/records",
                json!({ "data": { "title": t } }),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let r = site
        .admin
        .post(
            "/api/v1/webhooks",
            json!({ "url": hook.url("/in"), "events": ["export.completed"], "collection": "notes" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = site
        .admin
        .post(
            "/api/v1/users",
            json!({ "username": "eddie", "role": "editor", "password": PASSWORD, "email": "eddie@example.com" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let eddie = ApiClient::login(site.addr, "eddie", PASSWORD).await.header(
        "traceparent",
        &format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"),
    );

    // The click.
    let r = eddie
        .post("/api/v1/collections/notes/exports", json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let started = Instant::now();
    while relay.mails().is_empty() || hook.received().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no mail or webhook: {} mails, {} deliveries",
            relay.mails().len(),
            hook.received().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery = &hook.received()[0];
    let sent_parent = delivery.header("traceparent").to_string();
    assert!(
        sent_parent.starts_with(&format!("00-{CALLER_TRACE}-")) && sent_parent.ends_with("-01"),
        "the webhook carries the trace: {sent_parent:?}"
    );

    // Every span of the chain arrives (batches go out every 2 s).
    let wanted = ["job email", "smtp send", "job webhook", "webhook delivery"];
    let started = Instant::now();
    let ours = loop {
        let ours: Vec<Value> = collector
            .spans()
            .into_iter()
            .filter(|s| s["trace_id"] == CALLER_TRACE)
            .collect();
        if wanted.iter().all(|w| ours.iter().any(|s| s["name"] == *w)) {
            break ours;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "spans of the trace so far: {:#?}\nall spans: {}",
            ours.iter().map(|s| s["name"].clone()).collect::<Vec<_>>(),
            collector.spans().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by_id: HashMap<String, &Value> = ours
        .iter()
        .map(|s| (s["span_id"].as_str().unwrap_or_default().to_string(), s))
        .collect();
    let one = |name: &str| -> &Value {
        let found: Vec<&Value> = ours.iter().filter(|s| s["name"] == name).collect();
        assert_eq!(found.len(), 1, "one `{name}` span: {found:#?}");
        found[0]
    };
    let parent_of = |span: &Value| -> String {
        let parent = span["parent_span_id"].as_str().unwrap_or_default();
        by_id
            .get(parent)
            .and_then(|p| p["name"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("(outside: {parent})"))
    };

    let request = one("POST /api/v1/collections/{collection}/exports");
    assert_eq!(request["kind"], "SPAN_KIND_SERVER");
    assert_eq!(
        request["parent_span_id"], CALLER_SPAN,
        "the request continues the caller's span"
    );
    assert_eq!(request["attributes"]["http.response.status_code"], 202);
    assert_eq!(
        request["attributes"]["http.route"],
        "/api/v1/collections/{collection}/exports"
    );
    for (child, parent, kind) in [
        (
            "enqueue export",
            "POST /api/v1/collections/{collection}/exports",
            "SPAN_KIND_PRODUCER",
        ),
        ("job export", "enqueue export", "SPAN_KIND_CONSUMER"),
        ("export file stored", "job export", "SPAN_KIND_INTERNAL"),
        ("enqueue email", "job export", "SPAN_KIND_PRODUCER"),
        ("job email", "enqueue email", "SPAN_KIND_CONSUMER"),
        ("smtp send", "job email", "SPAN_KIND_CLIENT"),
        ("job webhook", "enqueue webhook", "SPAN_KIND_CONSUMER"),
        ("webhook delivery", "job webhook", "SPAN_KIND_CLIENT"),
    ] {
        let span = one(child);
        assert_eq!(parent_of(span), parent, "the parent of `{child}`");
        assert_eq!(span["kind"], kind, "`{child}`");
        assert!(span["end"].as_u64() >= span["start"].as_u64(), "{span}");
    }
    // The export.completed event is queued by the export job (the record
    // writes before the click queued none: nobody subscribed to them).
    let enqueue_webhooks: Vec<&Value> = ours
        .iter()
        .filter(|s| s["name"] == "enqueue webhook")
        .collect();
    assert!(
        enqueue_webhooks
            .iter()
            .any(|s| parent_of(s) == "job export"),
        "{enqueue_webhooks:#?}"
    );
    let chunks: Vec<&Value> = ours
        .iter()
        .filter(|s| s["name"] == "export chunk")
        .collect();
    assert!(!chunks.is_empty() && chunks.iter().all(|c| parent_of(c) == "job export"));
    // Each SQL statement is a span, named by keyword and table, under the
    // work that ran it; never with a value.
    let statements: Vec<&Value> = ours
        .iter()
        .filter(|s| s["attributes"]["db.system.name"] == "postgresql")
        .collect();
    for s in &statements {
        assert_eq!(s["kind"], "SPAN_KIND_CLIENT", "{s}");
        assert_eq!(s["name"], s["attributes"]["db.query.summary"], "{s}");
        assert!(
            !s.to_string().contains("title-value") && !s.to_string().contains("eddie"),
            "a statement's span shows a value: {s}"
        );
    }
    let statement_under = |name: &str, parent: &str| {
        statements
            .iter()
            .any(|s| s["name"] == name && parent_of(s) == parent)
    };
    assert!(
        statement_under("INSERT jobs", "enqueue export"),
        "the job's INSERT under its enqueue span: {:#?}",
        statements
            .iter()
            .map(|s| (s["name"].clone(), parent_of(s)))
            .collect::<Vec<_>>()
    );
    assert!(
        statement_under("SELECT records.c_{id}", "export chunk")
            || statement_under("SELECT records.c_{id}", "job export")
    );
    assert!(
        statements
            .iter()
            .any(|s| parent_of(s) == "POST /api/v1/collections/{collection}/exports"),
        "the request's own statements"
    );
    // What the receiver was sent is the delivery span's own context.
    let delivery_span = one("webhook delivery");
    assert_eq!(
        sent_parent,
        format!(
            "00-{CALLER_TRACE}-{}-01",
            delivery_span["span_id"].as_str().unwrap_or_default()
        )
    );
    assert_eq!(
        delivery_span["attributes"]["http.response.status_code"],
        204
    );
    // Resource, scope and the collector's credentials.
    assert_eq!(request["resource"]["service.name"], "records-test");
    assert_eq!(request["resource"]["deployment.environment"], "ci");
    assert_eq!(request["scope"], "mogothrow77");
    assert_eq!(request["authorization"], "Bearer collector-key");

    // The logs name the trace: the access log line of the click, and the
    // job's lines (in their span).
    let logs = site.app.output();
    let click = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["target"] == "access" && l["path"] == "/api/v1/collections/notes/exports")
        .expect("the click's access log line");
    assert_eq!(click["trace_id"], CALLER_TRACE);
    assert!(
        logs.lines()
            .any(|l| l.contains("\"job succeeded\"") && l.contains(CALLER_TRACE)),
        "job log lines name the trace"
    );
    assert!(
        !logs.contains("collector-key"),
        "the collector's key was logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_collector_costs_requests_nothing_and_drops_are_counted() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let site = Site::start_with(&format!(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\n"
    ))
    .await;
    // Requests are served while every export fails (spans are handed to
    // a bounded queue; nothing waits for the collector).
    for _ in 0..50 {
        assert_eq!(site.admin.get("/api/v1/me").await.status, 200);
    }
    // Counted as failed exports once a batch was tried (every 2 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = crate::harness::client::get(site.addr, "/metrics")
            .await
            .expect("metrics")
            .body;
        let failed = crate::harness::client::metric(
            &body,
            "mogothrow77_telemetry_spans_total{outcome=\"export_failed\"}",
        );
        if failed.is_some_and(|n| n >= 50.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        site.app
            .output()
            .contains("cannot send spans to the OpenTelemetry collector"),
        "the failure is logged"
    );
}

#[test]
fn bad_telemetry_settings_stop_the_start_naming_the_key() {
    for (toml, key) in [
        (
            "[telemetry]\notlp_endpoint = \"collector:4318\"\n",
            "`telemetry.otlp_endpoint`",
        ),
        (
            "[telemetry]\nsample_ratio = 2.0\n",
            "`telemetry.sample_ratio`",
        ),
        (
            "[telemetry]\nheaders_file = \"/nonexistent/headers\"\n",
            "`telemetry.headers_file`",
        ),
        (
            "[telemetry]\nca_file = \"/nonexistent/ca.pem\"\n",
            "`telemetry.ca_file`",
        ),
    ] {
        let config = crate::harness::app::AppConfig::new(toml);
        let out = config.run(&["check"]);
        assert_eq!(out.code(), Some(2), "{toml}: {}", out.all());
        assert!(out.stderr.contains(key), "{toml}: {}", out.stderr);
    }
}
