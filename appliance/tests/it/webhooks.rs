//! Webhooks end to end: a receiver on loopback (allow-listed here) checks
//! each delivery's signature with an HMAC computed by hand; failures are
//! retried with growing delays, then dead-lettered, the webhook disabled
//! after sustained failure (audited), and redelivered by an admin; the
//! SSRF guard refuses loopback, metadata and redirects to them.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::digest::{digest, SHA256};
use serde_json::{json, Value};

use crate::harness::api::{assert_error, ApiClient, Site, ADMIN};
use crate::harness::receiver::{Answer, Received, Receiver};

/// HMAC-SHA256 (RFC 2104) built from SHA-256 here, independent of the
/// server's HMAC code.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(digest(&SHA256, key).as_ref());
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message);
    let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(digest(&SHA256, &inner).as_ref());
    digest(&SHA256, &outer).as_ref().to_vec()
}

/// The secrets (of those given) whose signature the request carries.
fn signed_by<'a>(request: &Received, secrets: &[&'a str]) -> Vec<&'a str> {
    let id = request.header("webhook-id");
    let timestamp = request.header("webhook-timestamp");
    let mut message = format!("{id}.{timestamp}.").into_bytes();
    message.extend_from_slice(&request.body);
    let carried: Vec<&str> = request
        .header("webhook-signature")
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .collect();
    secrets
        .iter()
        .copied()
        .filter(|secret| {
            let key = STANDARD
                .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
                .expect("base64 secret");
            let expected = STANDARD.encode(hmac_sha256(&key, &message));
            carried.contains(&expected.as_str())
        })
        .collect()
}

fn assert_fresh(request: &Received) {
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .parse()
        .expect("numeric webhook-timestamp");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (now - timestamp).abs() < 60,
        "timestamp {timestamp}, now {now}"
    );
}

async fn tickets(site: &Site) {
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "tickets", "fields": [
                { "name": "title", "type": "text", "required": true },
                { "name": "pin", "type": "text", "sensitive": true }
            ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Creates a ticket titled `title`; the write must succeed.
async fn new_ticket(client: &ApiClient, title: &str) {
    let r = client
        .post(
            "/api/v1/collections/tickets/records",
            json!({ "data": { "title": title } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn create_webhook(client: &ApiClient, body: Value) -> (i64, String) {
    let r = client.post("/api/v1/webhooks", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let w = r.json();
    (
        w["id"].as_i64().expect("id"),
        w["secret"].as_str().expect("secret").to_string(),
    )
}

/// Polls a webhook's deliveries until the newest satisfies `done`.
async fn wait_delivery(client: &ApiClient, webhook: i64, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let r = client
            .get(&format!("/api/v1/webhooks/{webhook}/deliveries"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        if let Some(d) = page["items"].get(0).filter(|d| done(d)) {
            let detail = client
                .get(&format!(
                    "/api/v1/webhooks/{webhook}/deliveries/{}",
                    d["id"]
                ))
                .await;
            assert_eq!(detail.status, 200, "{}", detail.body);
            return detail.json();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "webhook {webhook}'s deliveries after 60 s: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn allow_loopback(extra: &str) -> String {
    format!("[webhooks]\nallow_addresses = [\"127.0.0.1/32\"]\n{extra}")
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_are_signed_retried_with_growing_delays_and_logged() {
    let site = Site::start_with(&allow_loopback("")).await;
    tickets(&site).await;
    let receiver = Receiver::start(
        "127.0.0.1",
        vec![
            Answer::status(500),
            Answer::status(502),
            Answer::status(204),
        ],
    )
    .await;

    // Definitions are checked; the secret is shown once.
    for (body, status, code) in [
        (
            json!({ "url": "ftp://x/", "events": ["record.created"] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "url": "https://u:p@x/", "events": ["record.created"] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "url": receiver.url("/"), "events": [] }),
            422,
            "validation_failed",
        ),
        // Over 2,000 bytes, cut inside a multi-byte character for the message.
        (
            json!({ "url": format!("https://a{}", "é".repeat(1000)), "events": ["record.created"] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "url": receiver.url("/"), "events": ["record.*"] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "url": receiver.url("/"), "events": ["record.created"], "collection": "nope" }),
            404,
            "not_found",
        ),
    ] {
        let r = site.admin.post("/api/v1/webhooks", body.clone()).await;
        assert_error(&r, status, code);
    }
    let (id, secret) = create_webhook(
        &site.admin,
        json!({
            "url": receiver.url("/hooks/in?token=receiver-own"),
            "description": "ticketing",
            "collection": "tickets",
            "events": ["record.created", "record.updated", "record.deleted", "export.completed", "import.completed"],
        }),
    )
    .await;
    let shown = site.admin.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(shown.status, 200);
    assert!(shown.json().get("secret").is_none(), "{}", shown.body);
    assert!(!shown.body.contains(&secret));

    // A write that fails notifies nobody; one that commits does.
    let r = site
        .admin
        .post(
            "/api/v1/collections/tickets/records",
            json!({ "data": { "pin": "1" } }),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = site
        .admin
        .post(
            "/api/v1/collections/tickets/records",
            json!({ "data": { "title": "printer, \"on fire\"", "pin": "4711" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let record = r.json()["id"].as_i64().expect("record id");

    let got = receiver.wait_for(3, Duration::from_secs(40)).await;
    let first_id = got[0].header("webhook-id").to_string();
    for request in &got[..3] {
        assert_eq!(request.path, "/hooks/in?token=receiver-own");
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(
            request.header("webhook-id"),
            first_id,
            "same event id on every attempt"
        );
        assert_eq!(signed_by(request, &[&secret]), vec![secret.as_str()]);
        assert_eq!(
            signed_by(
                request,
                &["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
            )
            .len(),
            0
        );
        assert_fresh(request);
        let body = request.json();
        assert_eq!(body["type"], "record.created");
        assert_eq!(body["data"]["collection"], "tickets");
        assert_eq!(body["data"]["record"]["id"], record);
        assert_eq!(
            body["data"]["record"]["data"]["title"],
            "printer, \"on fire\""
        );
        assert!(
            body["data"]["record"]["data"].get("pin").is_none(),
            "sensitive fields stay out of payloads: {body}"
        );
    }
    // Retries 5 s then 10 s apart before jitter: between half and all of it.
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(
        gap1 >= Duration::from_millis(2400),
        "first retry after {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(4900),
        "second retry after {gap2:?}"
    );
    assert!(gap2 > gap1, "delays grow: {gap1:?} then {gap2:?}");

    let d = wait_delivery(&site.admin, id, |d| d["state"] == "delivered").await;
    assert_eq!(d["event"], "record.created");
    assert_eq!(d["event_id"], first_id);
    assert_eq!(d["attempts"], 3);
    let log = d["attempts_log"].as_array().expect("attempts_log");
    let statuses: Vec<i64> = log
        .iter()
        .map(|a| a["status"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, vec![500, 502, 204]);
    assert!(
        log[0]["error"].as_str().unwrap_or("").contains("500"),
        "{d}"
    );
    assert!(log[2]["error"].is_null());
    assert_eq!(log[2]["address"], receiver.addr.to_string());
    assert!(log.iter().all(|a| a["latency_ms"].as_i64().is_some()));
    assert_eq!(d["payload"]["type"], "record.created");
    let w = site
        .admin
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .json();
    assert_eq!(w["consecutive_failures"], 0);
    assert!(w["failing_since"].is_null());
    // The attempts in /metrics: two 5xx, one 2xx, each timed.
    let metrics = crate::harness::client::get(site.addr, "/metrics")
        .await
        .expect("metrics");
    for series in [
        "mogothrow77_webhook_deliveries_total{outcome=\"5xx\"} 2",
        "mogothrow77_webhook_deliveries_total{outcome=\"2xx\"} 1",
        "mogothrow77_webhook_delivery_duration_seconds_count 3",
    ] {
        assert!(metrics.body.contains(series), "{series}:\n{}", metrics.body);
    }

    // Rotation: for a while both secrets sign.
    let r = site
        .admin
        .post(&format!("/api/v1/webhooks/{id}/rotate-secret"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new_secret = r.json()["secret"].as_str().expect("secret").to_string();
    assert_ne!(new_secret, secret);
    assert!(r.json()["previous_secret_until"].is_string());
    let r = site
        .admin
        .patch(
            &format!("/api/v1/collections/tickets/records/{record}"),
            json!({ "data": { "title": "printer fixed" } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = receiver.wait_for(4, Duration::from_secs(20)).await;
    let update = &got[3];
    assert_eq!(update.json()["type"], "record.updated");
    assert_eq!(update.json()["data"]["changed"], json!(["title"]));
    assert_ne!(update.header("webhook-id"), first_id);
    assert_eq!(
        signed_by(update, &[&new_secret, &secret]),
        vec![new_secret.as_str(), secret.as_str()]
    );

    let r = site
        .admin
        .delete(&format!("/api/v1/collections/tickets/records/{record}"))
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = receiver.wait_for(5, Duration::from_secs(20)).await;
    assert_eq!(got[4].json()["type"], "record.deleted");
    assert_eq!(got[4].json()["data"]["record"]["id"], record);

    // A stored export's completion is an event too.
    let r = site
        .admin
        .post("/api/v1/collections/tickets/exports", json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let export = r.json()["id"].as_i64().expect("export id");
    let got = receiver.wait_for(6, Duration::from_secs(30)).await;
    let done = got[5].json();
    assert_eq!(done["type"], "export.completed");
    assert_eq!(done["data"]["export_id"], export);
    assert_eq!(done["data"]["rows"], 0);
    assert_eq!(done["data"]["url"], format!("/api/v1/exports/{export}"));

    // So is an import's end — one event for the import, none per record.
    let r = site
        .admin
        .call_raw(
            "POST",
            "/api/v1/collections/tickets/imports?mode=skip_invalid",
            Some("title,pin\nimported,1\n,2\n"),
            &[("Content-Type", "text/csv")],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let import = r.json()["id"].as_i64().expect("import id");
    let got = receiver.wait_for(7, Duration::from_secs(30)).await;
    let imported = got[6].json();
    assert_eq!(imported["type"], "import.completed", "{imported}");
    assert_eq!(imported["data"]["import_id"], import);
    assert_eq!(imported["data"]["outcome"], "completed");
    assert_eq!(
        (
            imported["data"]["imported"].as_i64(),
            imported["data"]["failed"].as_i64()
        ),
        (Some(1), Some(1))
    );

    // Audited, without the secret or the URL's query string.
    let audit = site.admin.get("/api/v1/audit?action=webhook.create").await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let entry = &audit.json()["items"][0];
    assert_eq!(entry["details"]["url"], receiver.url("/hooks/in"));
    let all = site.admin.get("/api/v1/audit?limit=200").await;
    assert!(!all.body.contains(&secret) && !all.body.contains(&new_secret));
    assert!(!all.body.contains("receiver-own"));
    let rotated = site
        .admin
        .get("/api/v1/audit?action=webhook.rotate_secret")
        .await
        .json();
    assert_eq!(rotated["items"][0]["details"]["webhook_id"], id);

    // Other collections' events do not reach it.
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "other", "fields": [{ "name": "x", "type": "text" }] }),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = site
        .admin
        .post(
            "/api/v1/collections/other/records",
            json!({ "data": { "x": "y" } }),
        )
        .await;
    assert_eq!(r.status, 201);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn sustained_failure_dead_letters_disables_and_an_admin_redelivers() {
    let site = Site::start_with(&allow_loopback(
        "max_attempts = 3\ndisable_after_failures = 3\ndisable_after_hours = 0\n",
    ))
    .await;
    tickets(&site).await;
    let receiver = Receiver::start("127.0.0.1", vec![Answer::status(503)]).await;
    let (id, secret) = create_webhook(
        &site.admin,
        json!({ "url": receiver.url("/"), "events": ["record.created"] }),
    )
    .await;
    new_ticket(&site.admin, "t").await;

    let d = wait_delivery(&site.admin, id, |d| d["state"] == "failed").await;
    assert_eq!(d["attempts"], 3);
    assert_eq!(receiver.received().len(), 3);
    let job = site
        .admin
        .get(&format!("/api/v1/jobs/{}", d["job_id"]))
        .await
        .json();
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["kind"], "webhook");

    let w = site
        .admin
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .json();
    assert_eq!(w["enabled"], false, "{w}");
    assert!(
        w["disabled_reason"]
            .as_str()
            .unwrap_or("")
            .contains("3 delivery attempts in a row failed"),
        "{w}"
    );
    let audit = site
        .admin
        .get("/api/v1/audit?action=webhook.disable")
        .await
        .json();
    assert_eq!(audit["items"][0]["actor"], "system", "{audit}");
    assert_eq!(audit["items"][0]["details"]["webhook_id"], id);

    // A disabled webhook gets no new deliveries and cannot be redelivered to.
    new_ticket(&site.admin, "u").await;
    let page = site
        .admin
        .get(&format!("/api/v1/webhooks/{id}/deliveries"))
        .await
        .json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    let redeliver = format!("/api/v1/webhooks/{id}/deliveries/{}/redeliver", d["id"]);
    assert_error(
        &site.admin.post(&redeliver, json!({})).await,
        409,
        "conflict",
    );

    // Enabled again (failures cleared), the dead letter is redelivered:
    // the same event id, a new delivery that succeeds.
    let r = site
        .admin
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({ "enabled": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["consecutive_failures"], 0);
    assert!(r.json()["disabled_reason"].is_null());
    receiver.set_script(vec![Answer::status(200)]);
    let r = site.admin.post(&redeliver, json!({})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["redelivery_of"], d["id"]);
    let again = wait_delivery(&site.admin, id, |x| x["state"] == "delivered").await;
    assert_eq!(again["event_id"], d["event_id"]);
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    assert_eq!(
        got[3].header("webhook-id"),
        d["event_id"].as_str().unwrap_or("?")
    );
    assert_eq!(signed_by(&got[3], &[&secret]).len(), 1);
    let audit = site
        .admin
        .get("/api/v1/audit?action=webhook.redeliver")
        .await
        .json();
    assert_eq!(audit["items"][0]["actor"], ADMIN);

    // Only admins manage webhooks.
    let (_, editor) = site.user("eddie", "editor").await;
    assert_error(&editor.get("/api/v1/webhooks").await, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guard_refuses_loopback_metadata_and_redirects_to_them() {
    let site = Site::start_with(&allow_loopback("")).await;
    tickets(&site).await;
    // 127.0.0.2 is loopback too, but not allow-listed: nothing may reach it.
    let forbidden = Receiver::start("127.0.0.2", vec![Answer::status(200)]).await;
    let redirector = Receiver::start(
        "127.0.0.1",
        vec![Answer {
            status: 307,
            location: Some(forbidden.url("/stolen")),
        }],
    )
    .await;
    let targets = [
        (forbidden.url("/"), "a loopback address"),
        (
            format!("http://[::1]:{}/", forbidden.addr.port()),
            "a loopback address",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "a cloud metadata service address",
        ),
        (
            format!("http://[::ffff:169.254.169.254]:{}/", forbidden.addr.port()),
            "a cloud metadata service address",
        ),
        (redirector.url("/moved"), "a loopback address"),
        (
            "http://192.0.2.10/documentation-only".to_string(),
            "a special-purpose address",
        ),
    ];
    // The host's own non-loopback address (a service on another interface).
    let own = crate::harness::non_loopback_address().map(|ip| {
        (
            format!(
                "http://{}/",
                std::net::SocketAddr::new(ip, forbidden.addr.port())
            ),
            "an address of the appliance's own host",
        )
    });
    let targets: Vec<(String, &str)> = targets.into_iter().chain(own).collect();
    let mut hooks = Vec::new();
    for (url, _) in &targets {
        let (id, _) = create_webhook(
            &site.admin,
            json!({ "url": url, "events": ["record.created"], "collection": "tickets" }),
        )
        .await;
        hooks.push(id);
    }
    new_ticket(&site.admin, "t").await;
    for (id, (url, why)) in hooks.iter().zip(&targets) {
        let d = wait_delivery(&site.admin, *id, |d| d["state"] == "failed").await;
        assert_eq!(d["attempts"], 1, "refusals are not retried: {d}");
        let error = d["attempts_log"][0]["error"].as_str().unwrap_or("");
        assert!(
            error.contains(why) && error.contains("webhooks.allow_addresses"),
            "{url}: {error}"
        );
        assert!(d["attempts_log"][0]["status"].is_null());
    }
    // The redirect was followed no further than the check.
    assert_eq!(redirector.received().len(), 1);
    let redirected = wait_delivery(&site.admin, hooks[4], |_| true).await;
    assert_eq!(
        redirected["attempts_log"][0]["url"],
        forbidden.url("/stolen")
    );
    assert_eq!(
        forbidden.received().len(),
        0,
        "nothing reached the refused address"
    );
}
