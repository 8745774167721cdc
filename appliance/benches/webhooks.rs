//! Webhook delivery benchmark (not a test):
//! `cargo bench -p mogothrow77 --bench webhooks`.
//!
//! A real server (its own workers, `jobs.workers` = 2 and 8) delivers
//! 2,000 events queued at once (by `webhooks::emit`, as a record write
//! does) to a receiver on loopback that answers 204 at once. Deliveries/s
//! from the commit to the last delivery recorded as delivered. The
//! reference, measured in the same run with the same concurrency: the same
//! 2,000 signed POSTs sent straight through the delivery client
//! (`webhooks::outbound`), no queue — so the ratio is what the queue,
//! the attempt log and the health bookkeeping cost per delivery.

// Tests and benchmarks set up and inspect the database directly, not as the
// server does: tokio-postgres's own methods are fine here (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use harness::api::Site;
use harness::pg::{pool, shared};
use harness::receiver::{Answer, Receiver};
use mogothrow77::config::{AddressPolicy, Cidr};
use mogothrow77::outbound::{Outbound, Trace};
use mogothrow77::webhooks::{self, signing, EventType};
use serde_json::json;

const EVENTS: usize = 2_000;

/// Deliveries/s through the server's queue with `workers` workers.
async fn through_the_queue(workers: usize) -> f64 {
    let site = Site::start_with(&format!(
        "[jobs]\nworkers = {workers}\n[webhooks]\nallow_addresses = [\"127.0.0.1/32\"]\n"
    ))
    .await;
    let receiver = Receiver::start("127.0.0.1", vec![Answer::status(204)]).await;
    let r = site
        .admin
        .post(
            "/api/v1/webhooks",
            json!({ "url": receiver.url("/in"), "events": ["record.created"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let webhook = r.json()["id"].as_i64().expect("id");
    let pool = pool(&shared().dsn(&site.db), 2);
    let mut client = pool.get().await.expect("connection");
    let tx = client.transaction().await.expect("transaction");
    for n in 0..EVENTS {
        let queued = webhooks::emit(
            &tx,
            EventType::RecordCreated,
            "bench",
            json!({ "collection": "bench", "record": { "id": n, "version": 1, "data": { "title": "x".repeat(100) } } }),
            None,
            12,
        )
        .await
        .expect("emit");
        assert_eq!(queued, 1);
    }
    let started = Instant::now();
    tx.commit().await.expect("commit");
    receiver.wait_for(EVENTS, Duration::from_secs(600)).await;
    let sql = site.sql().await;
    loop {
        let delivered: i64 = sql
            .query_one(
                "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1 \
                   AND delivered_at IS NOT NULL",
                &[&webhook],
            )
            .await
            .expect("count")
            .get(0);
        if delivered as usize == EVENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let received = receiver.received();
    assert_eq!(received.len(), EVENTS, "each event delivered exactly once");
    EVENTS as f64 / secs
}

/// The same signed POSTs straight through the delivery client.
async fn straight(concurrency: usize) -> f64 {
    let receiver = Receiver::start("127.0.0.1", vec![Answer::status(204)]).await;
    let outbound = Arc::new(
        Outbound::new(
            AddressPolicy {
                allow: vec![Cidr::parse("127.0.0.1/32").expect("cidr")],
                deny_private: false,
            },
            Duration::from_secs(10),
            None,
            "Mogothrow77-Webhooks-Bench",
        )
        .expect("client"),
    );
    let secret = signing::new_secret();
    let url = receiver.url("/in");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (outbound, secret, url) = (outbound.clone(), secret.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for n in (t..EVENTS).step_by(concurrency) {
                let body = Bytes::from(
                    json!({ "type": "record.created", "data": { "record": { "id": n, "data": { "title": "x".repeat(100) } } } })
                        .to_string(),
                );
                let id = format!("evt-{n}");
                let signature = signing::header(&[&secret], &id, 1, &body).expect("sign");
                let headers = [("webhook-id", id), ("webhook-signature", signature)];
                let status = outbound
                    .post(&url, &headers, body, &mut Trace::default())
                    .await
                    .expect("post");
                assert!(status.is_success());
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(receiver.received().len(), EVENTS);
    EVENTS as f64 / secs
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!("## Webhook deliveries: {EVENTS} events to a local receiver (204 at once)");
    for workers in [2usize, 8] {
        let queued = runtime.block_on(through_the_queue(workers));
        let direct = runtime.block_on(straight(workers));
        println!(
            "{workers} workers: {queued:>7.0} deliveries/s through the queue; \
             {direct:>7.0} POSTs/s straight through the client; ratio {:.2}",
            queued / direct
        );
    }
}
