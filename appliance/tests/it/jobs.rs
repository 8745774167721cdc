//! The job queue through its first kind, stored CSV exports: written by a
//! job on any replica, downloaded through an expiring per-person link;
//! a worker killed mid-export is replaced and no partial file is ever
//! offered; failures retry with growing delays, then dead-letter, and an
//! admin can replay them.

use std::time::{Duration, Instant};

use base64::Engine;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::harness::api::{assert_error, ApiClient, Site};
use crate::harness::app::{App, AppConfig};
use crate::harness::pg::shared;

/// A collection of `rows` records loaded by SQL (long titles: about 2.5 MB
/// of CSV for 40,000 rows, so the file spans several 1 MiB chunks).
async fn notes(site: &Site, rows: i64) {
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "notes", "fields": [
                { "name": "title", "type": "text" },
                { "name": "n", "type": "integer", "indexed": true },
                { "name": "risky", "type": "text" }
            ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sql = site.sql().await;
    let ids: Vec<i64> = sql
        .query(
            "SELECT f.id FROM collection_fields f JOIN collections c ON c.id = f.collection_id \
             WHERE c.name = 'notes' ORDER BY f.position, f.id",
            &[],
        )
        .await
        .expect("fields")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let table: i64 = sql
        .query_one("SELECT id FROM collections WHERE name = 'notes'", &[])
        .await
        .expect("collection")
        .get(0);
    sql.batch_execute(&format!(
        "INSERT INTO records.\"c_{table}\" (\"f_{}\", \"f_{}\", \"f_{}\") \
         SELECT 'note, \"quoted\" ' || repeat('x', 40) || g, g, \
                CASE WHEN g % 7 = 0 THEN '=cmd|' || g WHEN g % 11 = 0 THEN NULL ELSE 'ok' END \
         FROM generate_series(1, {rows}) g",
        ids[0], ids[1], ids[2]
    ))
    .await
    .expect("load");
}

/// Polls an export until `done` says so; returns it.
async fn wait_export(client: &ApiClient, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let r = client.get(&format!("/api/v1/exports/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let e = r.json();
        if done(&e) {
            return e;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "export {id} still {e} after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Holds the notes' table from `sql`'s session (until its ROLLBACK): every
/// export attempt then times out, as behind a long schema change.
async fn hold_notes(sql: &tokio_postgres::Client) {
    let table: i64 = sql
        .query_one("SELECT id FROM collections WHERE name = 'notes'", &[])
        .await
        .expect("collection")
        .get(0);
    sql.batch_execute(&format!(
        "BEGIN; LOCK TABLE records.\"c_{table}\" IN ACCESS EXCLUSIVE MODE;"
    ))
    .await
    .expect("lock");
}

/// Waits until a job's first attempt failed and it waits for its retry.
async fn wait_for_retry(admin: &ApiClient, job: i64) {
    let started = Instant::now();
    loop {
        let j = admin.get(&format!("/api/v1/jobs/{job}")).await.json();
        if j["attempts"] == 1 && j["state"] == "queued" {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{j}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start_export(client: &ApiClient, body: Value) -> i64 {
    let r = client.post("/api/v1/collections/notes/exports", body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_i64().expect("id");
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/exports/{id}").as_str())
    );
    id
}

fn sha256_b64(body: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(d.as_ref())
}

/// A download link sealed with the installation's key, as the server would
/// make it, for any expiry.
async fn forged_link(site: &Site, export: i64, user: i64, until: i64) -> String {
    let key: Vec<u8> = site
        .sql()
        .await
        .query_one("SELECT key FROM server_keys WHERE name = 'cursor'", &[])
        .await
        .expect("key")
        .get(0);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let payload = until.to_string();
    let tag = ring::hmac::sign(
        &key,
        format!("export-download:{export}:{user}\n{payload}").as_bytes(),
    );
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}", b64.encode(&payload), b64.encode(tag.as_ref()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_export_is_written_by_a_job_and_downloaded_through_an_expiring_link() {
    let site = Site::start().await;
    notes(&site, 3000).await;
    let (eddie_id, eddie) = site.user("eddie", "editor").await;
    let (_, erin) = site.user("erin", "editor").await;
    let (_, viewer) = site.user("vic", "viewer").await;
    let filter = r#"{"field":"n","op":"lte","value":2500}"#;
    let body = json!({ "filter": filter, "sort": "-n" });
    assert_error(
        &viewer
            .post("/api/v1/collections/notes/exports", body.clone())
            .await,
        403,
        "forbidden",
    );
    // Refused at once when it could not run.
    assert_error(
        &eddie
            .post(
                "/api/v1/collections/notes/exports",
                json!({ "filter": "{" }),
            )
            .await,
        400,
        "invalid_filter",
    );
    assert_error(
        &eddie
            .post(
                "/api/v1/collections/notes/exports",
                json!({ "formulas": "no" }),
            )
            .await,
        422,
        "validation_failed",
    );

    let id = start_export(&eddie, body).await;
    let ready = wait_export(&eddie, id, |e| e["state"] == "ready").await;
    assert_eq!(ready["rows"], 2500, "{ready}");
    let link = ready["download_url"]
        .as_str()
        .expect("download_url")
        .to_string();

    // The file is what the streamed export gives for the same request.
    let file = eddie.get(&link).await;
    assert_eq!(file.status, 200, "{}", file.body);
    let streamed = eddie
        .get(&format!(
            "/api/v1/collections/notes/export.csv?sort=-n&filter={}",
            "%7B%22field%22%3A%22n%22%2C%22op%22%3A%22lte%22%2C%22value%22%3A2500%7D"
        ))
        .await;
    assert_eq!(streamed.status, 200, "{}", streamed.body);
    assert_eq!(file.body, streamed.body);
    assert_eq!(file.body.matches("\r\n").count(), 2501);
    assert!(file.body.contains(",'=cmd|"), "formulas neutralised");
    assert_eq!(
        file.header("content-length"),
        Some(file.body.len().to_string().as_str())
    );
    assert_eq!(
        file.header("repr-digest"),
        Some(format!("sha-256=:{}:", sha256_b64(&file.body)).as_str())
    );
    assert_eq!(ready["bytes"], json!(file.body.len()));

    // Only the requester (and admins) see it; a link is one person's.
    assert_error(
        &erin.get(&format!("/api/v1/exports/{id}")).await,
        404,
        "not_found",
    );
    assert_error(&erin.get(&link).await, 404, "not_found");
    assert_error(&site.admin.get(&link).await, 403, "invalid_link");
    let admin_view = site
        .admin
        .get(&format!("/api/v1/exports/{id}"))
        .await
        .json();
    let admin_link = admin_view["download_url"].as_str().expect("admin link");
    assert_eq!(site.admin.get(admin_link).await.status, 200);
    // Altered, missing or expired links are refused.
    let tampered = link.replace("link=", "link=A");
    assert_error(&eddie.get(&tampered).await, 403, "invalid_link");
    assert_error(
        &eddie.get(&format!("/api/v1/exports/{id}/download")).await,
        403,
        "invalid_link",
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = forged_link(&site, id, eddie_id, now - 1).await;
    assert_error(
        &eddie
            .get(&format!("/api/v1/exports/{id}/download?link={expired}"))
            .await,
        403,
        "invalid_link",
    );
    let fresh = forged_link(&site, id, eddie_id, now + 60).await;
    assert_eq!(
        eddie
            .get(&format!("/api/v1/exports/{id}/download?link={fresh}"))
            .await
            .status,
        200,
        "a link sealed with the installation's key works: the test's sealing is the server's"
    );

    // Lists: one's own; admins see all.
    let mine = eddie.get("/api/v1/exports").await.json();
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1));
    let theirs = erin.get("/api/v1/exports").await.json();
    assert_eq!(theirs["items"].as_array().map(Vec::len), Some(0));
    let all = site.admin.get("/api/v1/exports").await.json();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(1));

    // Audited: the request with its exact filter, the file, each download.
    let audit = site
        .admin
        .get("/api/v1/audit?action=export.create")
        .await
        .json();
    assert_eq!(audit["items"][0]["actor"], "eddie");
    assert_eq!(audit["items"][0]["details"]["filter"], filter);
    let audit = site
        .admin
        .get("/api/v1/audit?action=export.ready")
        .await
        .json();
    assert_eq!(audit["items"][0]["details"]["rows"], 2500);
    assert_eq!(audit["items"][0]["actor"], "eddie");
    let audit = site
        .admin
        .get("/api/v1/audit?action=export.download")
        .await
        .json();
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(3));

    // Metrics show the queue.
    let metrics = crate::harness::client::get(site.addr, "/metrics")
        .await
        .expect("metrics");
    assert!(
        metrics
            .body
            .contains("mogothrow77_job_runs_total{kind=\"export\",outcome=\"succeeded\"} 1"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("mogothrow77_jobs_due"),
        "{}",
        metrics.body
    );

    // Deleted: gone with its file.
    let r = eddie.delete(&format!("/api/v1/exports/{id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(
        &eddie.get(&format!("/api/v1/exports/{id}")).await,
        404,
        "not_found",
    );
    let chunks: i64 = site
        .sql()
        .await
        .query_one("SELECT count(*) FROM export_chunks", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(chunks, 0);

    // One person keeps at most 20 exports.
    let small = json!({ "filter": r#"{"field":"n","op":"lte","value":1}"# });
    let mut kept = Vec::new();
    for _ in 0..20 {
        kept.push(start_export(&erin, small.clone()).await);
    }
    assert_error(
        &erin
            .post("/api/v1/collections/notes/exports", small.clone())
            .await,
        409,
        "too_many_exports",
    );
    assert_eq!(
        eddie
            .post("/api/v1/collections/notes/exports", small.clone())
            .await
            .status,
        202,
        "the bound is per person"
    );
    let r = erin.delete(&format!("/api/v1/exports/{}", kept[0])).await;
    assert_eq!(r.status, 204, "{}", r.body);
    start_export(&erin, small).await;
}

pub fn replica(site: &Site, extra: &str) -> (App, std::net::SocketAddr, AppConfig) {
    let config = AppConfig::external(&shared().dsn(&site.db), extra);
    let mut app = config.spawn();
    let addr = app.wait_ready();
    (app, addr, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_the_queue_and_a_killed_worker_is_replaced() {
    let lease = "[jobs]\nlease_secs = 2\n";
    let mut site = Site::start_with(lease).await;
    notes(&site, 40_000).await;
    let (mut b, b_addr, _config_b) = replica(&site, lease);
    let r = site
        .admin
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "jobs", "permissions": ["records:export", "records:read", "jobs:manage"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.json()["token"].as_str().expect("token").to_string();
    let on_a = ApiClient::with_token(site.addr, &secret);
    let on_b = ApiClient::with_token(b_addr, &secret);

    // Several jobs, both replicas working: each runs exactly once.
    let mut ids = Vec::new();
    for i in 0..6 {
        let client = if i % 2 == 0 { &on_a } else { &on_b };
        ids.push(start_export(client, json!({ "filter": format!(r#"{{"field":"n","op":"lte","value":{}}}"#, 100 * (i + 1)) })).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let e = wait_export(&on_a, *id, |e| e["state"] == "ready").await;
        assert_eq!(e["rows"], 100 * (i as i64 + 1));
        let job = on_b
            .get(&format!("/api/v1/jobs/{}", e["job_id"]))
            .await
            .json();
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "{job}");
        assert_eq!(
            job["attempts_log"].as_array().map(Vec::len),
            Some(1),
            "{job}"
        );
    }

    // A worker killed mid-export (after its first chunk, while it writes the
    // second): the other replica takes the job up when the lease runs out.
    let sql = site.sql().await;
    sql.batch_execute(
        "CREATE FUNCTION test_slow_chunk() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$; \
         CREATE TRIGGER test_slow_chunk BEFORE INSERT ON export_chunks FOR EACH ROW \
         WHEN (NEW.seq = 1 AND NEW.attempt = 1) EXECUTE FUNCTION test_slow_chunk();",
    )
    .await
    .expect("slow trigger");
    let id = start_export(&on_a, json!({})).await;
    let job_id = on_a.get(&format!("/api/v1/exports/{id}")).await.json()["job_id"]
        .as_i64()
        .expect("job id");
    let started = Instant::now();
    let worker: String = loop {
        let row = sql
            .query_one(
                "SELECT j.worker, (SELECT count(*) FROM export_chunks c JOIN exports e \
                                   ON e.id = c.export_id WHERE e.job_id = j.id) \
                 FROM jobs j WHERE j.id = $1",
                &[&job_id],
            )
            .await
            .expect("job");
        let chunks: i64 = row.get(1);
        if chunks >= 1 {
            break row.get(0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the export never wrote a chunk"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // No partial file is offered while it runs.
    let running = on_a.get(&format!("/api/v1/exports/{id}")).await.json();
    assert_eq!(running["state"], "running", "{running}");
    assert!(running.get("download_url").is_none(), "{running}");
    let pid: u32 = worker
        .split(':')
        .nth(1)
        .and_then(|p| p.split('#').next())
        .and_then(|p| p.parse().ok())
        .expect("worker pid");
    let (survivor, killed_a) = if pid == site.app.pid() {
        site.app.signal(Signal::SIGKILL);
        (&on_b, true)
    } else {
        assert_eq!(pid, b.pid(), "the worker is one of the two replicas");
        b.signal(Signal::SIGKILL);
        (&on_a, false)
    };
    let done = wait_export(survivor, id, |e| e["state"] == "ready").await;
    let job = survivor.get(&format!("/api/v1/jobs/{job_id}")).await.json();
    let log = job["attempts_log"].as_array().expect("attempts").clone();
    assert_eq!(log.len(), 2, "{job}");
    assert_eq!(log[0]["outcome"], "lease_expired", "{job}");
    assert_eq!(log[0]["worker"], json!(worker));
    assert_eq!(log[1]["outcome"], "succeeded", "{job}");
    assert_ne!(log[1]["worker"], json!(worker));
    // The file is whole: every record once, as the streamed export has it.
    let file = survivor
        .get(done["download_url"].as_str().expect("link"))
        .await;
    assert_eq!(file.status, 200);
    assert_eq!(file.body.matches("\r\n").count(), 40_001);
    let streamed = survivor.get("/api/v1/collections/notes/export.csv").await;
    assert_eq!(file.body, streamed.body);
    let attempts_stored: Vec<i32> = sql
        .query(
            "SELECT DISTINCT c.attempt FROM export_chunks c JOIN exports e ON e.id = c.export_id \
             WHERE e.job_id = $1",
            &[&job_id],
        )
        .await
        .expect("chunks")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The killed attempt's chunks are gone (deleted when the next attempt
    // started, or when it finished), unless the killed worker's last insert
    // landed after that: then it is still never served, and goes with the
    // export.
    assert!(attempts_stored.contains(&2), "{attempts_stored:?}");
    if killed_a {
        let _ = site.app.wait_exit(Duration::from_secs(5));
    } else {
        let _ = b.wait_exit(Duration::from_secs(5));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_jobs_retry_with_growing_delays_then_dead_letter_and_replay() {
    let site = Site::start_with("[api]\nquery_timeout_ms = 300\n").await;
    notes(&site, 50).await;
    let admin = &site.admin;
    let sql = site.sql().await;
    // A job finished long ago is purged by the lease keeper.
    let old: i64 = sql
        .query_one(
            "INSERT INTO jobs (kind, payload, max_attempts, state, finished_at) \
             VALUES ('export', '{}', 4, 'succeeded', now() - interval '31 days') RETURNING id",
            &[],
        )
        .await
        .expect("old job")
        .get(0);
    // The records are held by another session: every attempt times out.
    hold_notes(&sql).await;
    let id = start_export(admin, json!({})).await;
    let failed = wait_export(admin, id, |e| e["state"] == "failed").await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or("")
            .contains("statement timeout"),
        "{failed}"
    );
    let job_id = failed["job_id"].as_i64().expect("job id");
    let job = admin.get(&format!("/api/v1/jobs/{job_id}")).await.json();
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["attempts"], 4);
    let log = job["attempts_log"].as_array().expect("attempts").clone();
    assert_eq!(log.len(), 4, "{job}");
    assert!(log.iter().all(|a| a["outcome"] == "failed"), "{job}");
    // Exponential from 2 s with equal jitter: gap n is between 2^n / 2 and
    // 2^n seconds (plus the 0.3 s timeout and scheduling).
    let at = |i: usize| {
        time::OffsetDateTime::parse(
            log[i]["started_at"].as_str().expect("started_at"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("time")
    };
    for n in 1..4 {
        let gap = (at(n) - at(n - 1)).as_seconds_f64();
        let full = 2f64.powi(n as i32);
        assert!(
            gap >= full / 2.0 && gap <= full + 1.5,
            "gap before attempt {} is {gap:.2} s, expected {}..{} s: {job}",
            n + 1,
            full / 2.0,
            full + 1.5
        );
    }
    let dead = admin.get("/api/v1/jobs?state=dead").await.json();
    assert_eq!(dead["items"][0]["id"], job_id, "{dead}");
    assert_error(
        &admin
            .post(&format!("/api/v1/jobs/{job_id}/cancel"), json!({}))
            .await,
        409,
        "conflict",
    );

    // Released, then replayed by an admin: it completes.
    sql.batch_execute("ROLLBACK").await.expect("release");
    let r = admin
        .post(&format!("/api/v1/jobs/{job_id}/retry"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "queued");
    let ready = wait_export(admin, id, |e| e["state"] == "ready").await;
    assert_eq!(ready["rows"], 50);
    let audit = admin.get("/api/v1/audit?action=job.retry").await.json();
    assert_eq!(audit["items"][0]["details"]["job_id"], job_id);

    // A job waiting for its retry can be cancelled; its export says so.
    hold_notes(&sql).await;
    let second = start_export(admin, json!({})).await;
    let waiting = wait_export(admin, second, |e| {
        e["state"] == "queued" && e["error"].is_null()
    })
    .await;
    let second_job = waiting["job_id"].as_i64().expect("job");
    wait_for_retry(admin, second_job).await;
    let r = admin
        .post(&format!("/api/v1/jobs/{second_job}/cancel"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "cancelled");
    let cancelled = admin.get(&format!("/api/v1/exports/{second}")).await.json();
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert_error(
        &admin.get(&format!("/api/v1/jobs/{old}")).await,
        404,
        "not_found",
    );
    assert_eq!(
        admin.get(&format!("/api/v1/jobs/{job_id}")).await.status,
        200,
        "a job an export points at stays"
    );
    sql.batch_execute("ROLLBACK").await.expect("release");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_server_gives_its_running_job_back() {
    let mut site = Site::start_with("[http]\nshutdown_grace_secs = 1\n").await;
    notes(&site, 40_000).await;
    let sql = site.sql().await;
    // The first attempt's second chunk takes 4 s: longer than the grace.
    sql.batch_execute(
        "CREATE FUNCTION test_slow_chunk() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(4); RETURN NEW; END $$; \
         CREATE TRIGGER test_slow_chunk BEFORE INSERT ON export_chunks FOR EACH ROW \
         WHEN (NEW.seq = 1 AND NEW.attempt = 1) EXECUTE FUNCTION test_slow_chunk();",
    )
    .await
    .expect("slow trigger");
    let id = start_export(&site.admin, json!({})).await;
    let started = Instant::now();
    while sql
        .query_one("SELECT count(*) FROM export_chunks", &[])
        .await
        .expect("chunks")
        .get::<_, i64>(0)
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no chunk written"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = Instant::now();
    let status = site.app.stop();
    assert!(status.success(), "{status:?}\n{}", site.app.output());
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "the stop waited for the job instead of releasing it after the 1 s grace"
    );
    assert!(
        site.app.output().contains("job released"),
        "{}",
        site.app.output()
    );
    let row = sql
        .query_one(
            "SELECT j.state, j.attempts, j.max_attempts, j.worker IS NULL, a.outcome \
             FROM jobs j JOIN exports e ON e.job_id = j.id \
             JOIN job_attempts a ON a.job_id = j.id AND a.attempt = 1 WHERE e.id = $1",
            &[&id],
        )
        .await
        .expect("job");
    assert_eq!(row.get::<_, String>(0), "queued");
    assert_eq!(row.get::<_, i32>(1), 1);
    assert_eq!(
        row.get::<_, i32>(2),
        5,
        "a release does not use up an attempt"
    );
    assert!(row.get::<_, bool>(3));
    assert_eq!(row.get::<_, Option<String>>(4).as_deref(), Some("released"));

    // The next server to start finishes it.
    let (_next, addr, _config) = replica(&site, "");
    let admin = ApiClient::login(
        addr,
        crate::harness::api::ADMIN,
        crate::harness::api::PASSWORD,
    )
    .await;
    let done = wait_export(&admin, id, |e| e["state"] == "ready").await;
    assert_eq!(done["rows"], 40_000);
    let job = admin
        .get(&format!("/api/v1/jobs/{}", done["job_id"]))
        .await
        .json();
    let outcomes: Vec<&str> = job["attempts_log"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["released", "succeeded"], "{job}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_whose_fields_are_gone_fails_at_once_without_retrying() {
    let site = Site::start_with("[api]\nquery_timeout_ms = 300\n").await;
    notes(&site, 50).await;
    let admin = &site.admin;
    let sql = site.sql().await;
    // The first attempt times out on a held table and waits for its retry.
    hold_notes(&sql).await;
    let id = start_export(admin, json!({ "fields": "title,risky" })).await;
    let job_id = admin.get(&format!("/api/v1/exports/{id}")).await.json()["job_id"]
        .as_i64()
        .expect("job id");
    wait_for_retry(admin, job_id).await;
    // Meanwhile a field it exports is removed (metadata only: no lock).
    let r = admin.delete("/api/v1/collections/notes/fields/risky").await;
    assert!(matches!(r.status, 200 | 204), "{}", r.body);
    sql.batch_execute("ROLLBACK").await.expect("release");

    // The next attempt cannot plan it: dead at once, not retried twice more.
    let failed = wait_export(admin, id, |e| e["state"] == "failed").await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or("")
            .contains("fields changed since the export was asked for"),
        "{failed}"
    );
    let job = admin.get(&format!("/api/v1/jobs/{job_id}")).await.json();
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
}
