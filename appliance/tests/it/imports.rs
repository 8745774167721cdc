//! Bulk imports of CSV and NDJSON: good files import every row with its
//! types (and an export imports back to the same records), bad rows are
//! reported with their lines, all-or-nothing leaves nothing behind,
//! skip-invalid keeps the good rows, and hostile or oversized uploads are
//! refused up front.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::api::{assert_error, ApiClient, Site};

const FIELDS: &str = r#"[
    { "name": "title", "type": "text", "required": true },
    { "name": "qty", "type": "integer" },
    { "name": "price", "type": "decimal" },
    { "name": "ok", "type": "boolean" },
    { "name": "due", "type": "date" },
    { "name": "seen", "type": "timestamp" },
    { "name": "kind", "type": "enum", "enum_values": ["a", "b"] },
    { "name": "doc", "type": "json" },
    { "name": "code", "type": "text", "unique": true }
]"#;

async fn collection(site: &Site, name: &str) {
    let fields: Value = serde_json::from_str(FIELDS).expect("fields");
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": name, "fields": fields }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn upload(
    client: &ApiClient,
    path: &str,
    body: &str,
    content_type: &str,
) -> crate::harness::client::Response {
    client
        .call_raw("POST", path, Some(body), &[("Content-Type", content_type)])
        .await
}

/// Uploads and waits for the import to finish; returns it.
async fn import(client: &ApiClient, path: &str, body: &str, content_type: &str) -> Value {
    let r = upload(client, path, body, content_type).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_i64().expect("id");
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/imports/{id}").as_str())
    );
    let started = Instant::now();
    loop {
        let r = client.get(&format!("/api/v1/imports/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let i = r.json();
        if !matches!(i["state"].as_str(), Some("queued" | "running")) {
            return i;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "import {id}: {i}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every record of a collection, by id, data only.
async fn records(client: &ApiClient, name: &str) -> Vec<Value> {
    let r = client
        .get(&format!(
            "/api/v1/collections/{name}/records?limit=200&sort=id"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["data"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_good_csv_imports_every_row_and_an_export_imports_back_the_same() {
    let site = Site::start().await;
    collection(&site, "stock").await;
    let csv = "\u{feff}title,qty,price,ok,due,seen,kind,doc,code\r\n\
               \"comma, \"\"quoted\"\"\r\nand a newline\",7,12.50,t,2026-01-31,2026-01-31 12:00:00+00,a,\"{\"\"k\"\": [1, 2]}\",A-1\r\n\
               empty vs null,,,,,,,,\r\n\
               \"\",-3,-0.001,false,2024-02-29,2026-11-27T08:30:00.5Z,b,null,\"\"\r\n\
               é ü 中文 🦀,9223372036854775807,1000.000,TRUE,,,,\"\"\"text\"\"\",=1+1\n";
    let done = import(
        &site.admin,
        "/api/v1/collections/stock/imports",
        csv,
        "text/csv",
    )
    .await;
    if let Some(url) = done["errors_url"].as_str() {
        panic!("{done}: {}", site.admin.get(url).await.body);
    }
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["format"], "csv");
    assert_eq!(done["mode"], "all_or_nothing");
    assert_eq!(
        (
            done["rows_total"].as_i64(),
            done["rows_imported"].as_i64(),
            done["rows_failed"].as_i64()
        ),
        (Some(4), Some(4), Some(0)),
        "{done}"
    );
    assert!(done.get("errors_url").is_none());
    assert_eq!(done["bytes"].as_u64(), Some(csv.len() as u64));

    let got = records(&site.admin, "stock").await;
    assert_eq!(got.len(), 4);
    assert_eq!(got[0]["title"], "comma, \"quoted\"\r\nand a newline");
    assert_eq!(got[0]["qty"], 7);
    assert_eq!(got[0]["price"], "12.5");
    assert_eq!(got[0]["ok"], true);
    assert_eq!(got[0]["due"], "2026-01-31");
    assert_eq!(got[0]["seen"], "2026-01-31T12:00:00Z");
    assert_eq!(got[0]["doc"], json!({ "k": [1, 2] }));
    assert_eq!(got[1]["title"], "empty vs null");
    for f in ["qty", "price", "ok", "due", "seen", "kind", "doc", "code"] {
        assert!(got[1][f].is_null(), "{f}: {}", got[1]);
    }
    assert_eq!(got[2]["title"], "");
    assert_eq!(got[2]["code"], "");
    assert_eq!(got[2]["price"], "-0.001");
    assert_eq!(got[2]["ok"], false);
    assert_eq!(got[3]["title"], "é ü 中文 🦀");
    assert_eq!(got[3]["qty"], 9223372036854775807i64);
    assert_eq!(got[3]["doc"], json!("text"));
    assert_eq!(got[3]["code"], "=1+1");

    // Audited with the file's size and digest, and the outcome.
    let audit = site
        .admin
        .get("/api/v1/audit?action=import.create")
        .await
        .json();
    assert_eq!(
        audit["items"][0]["details"]["bytes"].as_u64(),
        Some(csv.len() as u64)
    );
    assert_eq!(audit["items"][0]["details"]["sha256"], done["sha256"]);
    let audit = site
        .admin
        .get("/api/v1/audit?action=import.done")
        .await
        .json();
    assert_eq!(audit["items"][0]["details"]["imported"], 4);
    assert_eq!(audit["items"][0]["outcome"], "success");

    // What an export writes imports back to the same records.
    let export = site
        .admin
        .get("/api/v1/collections/stock/export.csv?formulas=keep")
        .await;
    assert_eq!(export.status, 200, "{}", export.body);
    collection(&site, "copy").await;
    let again = import(
        &site.admin,
        "/api/v1/collections/copy/imports?format=csv",
        &export.body,
        "application/octet-stream",
    )
    .await;
    assert_eq!(again["state"], "completed", "{again}");
    assert_eq!(records(&site.admin, "copy").await, got);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rows_are_reported_by_line_all_or_nothing_keeps_nothing_skip_invalid_the_rest() {
    let site = Site::start().await;
    collection(&site, "stock").await;
    let (_, editor) = site.user("eddie", "editor").await;
    let csv = "title,qty,kind,code\n\
               good one,1,a,X1\n\
               ,2,a,X2\n\
               bad qty,two,a,X3\n\
               \"spans\nlines\",3,c,X4\n\
               dup,4,b,X1\n\
               short,5\n\
               good two,6,b,X6\n\
               un\"quoted,7,a,X7\n";
    let path = "/api/v1/collections/stock/imports";
    let rejected = import(&editor, path, csv, "text/csv").await;
    assert_eq!(rejected["state"], "rejected", "{rejected}");
    assert_eq!(rejected["rows_total"], 8);
    assert_eq!(rejected["rows_imported"], 0);
    assert_eq!(rejected["rows_failed"], 6);
    assert!(
        records(&site.admin, "stock").await.is_empty(),
        "all or nothing"
    );
    let report_url = rejected["errors_url"]
        .as_str()
        .expect("errors_url")
        .to_string();
    let report = editor.get(&report_url).await;
    assert_eq!(report.status, 200, "{}", report.body);
    assert_eq!(
        report.header("content-type"),
        Some("text/csv; charset=utf-8; header=present")
    );
    let lines: Vec<&str> = report.body.split("\r\n").collect();
    assert_eq!(lines[0], "line,field,message");
    let at = |line: u64| -> Vec<&str> {
        lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(&format!("{line},")))
            .collect()
    };
    assert!(
        at(3)[0].starts_with("3,title,"),
        "{report:?}",
        report = report.body
    );
    assert!(
        at(4)[0].starts_with("4,qty,") && at(4)[0].contains("two"),
        "{}",
        report.body
    );
    assert!(at(5)[0].starts_with("5,kind,"), "{}", report.body);
    assert!(
        at(7)[0].starts_with("7,code,") && at(7)[0].contains("unique"),
        "{}",
        report.body
    );
    assert!(
        at(8)[0].contains("2 values, but the header has 4"),
        "{}",
        report.body
    );
    assert!(
        at(10)[0].contains("quote inside an unquoted value"),
        "{}",
        report.body
    );
    assert!(at(2).is_empty() && at(9).is_empty(), "{}", report.body);
    let audit = site
        .admin
        .get("/api/v1/audit?action=import.done")
        .await
        .json();
    assert_eq!(audit["items"][0]["outcome"], "failure");
    assert_eq!(audit["items"][0]["details"]["outcome"], "rejected");

    // The same file, skipping invalid rows: the two good ones go in.
    let kept = import(
        &editor,
        &format!("{path}?mode=skip_invalid"),
        csv,
        "text/csv",
    )
    .await;
    assert_eq!(kept["state"], "completed", "{kept}");
    assert_eq!(
        (kept["rows_imported"].as_i64(), kept["rows_failed"].as_i64()),
        (Some(2), Some(6))
    );
    let titles: Vec<Value> = records(&site.admin, "stock")
        .await
        .iter()
        .map(|r| r["title"].clone())
        .collect();
    assert_eq!(titles, vec![json!("good one"), json!("good two")]);
    assert_eq!(
        editor
            .get(kept["errors_url"].as_str().expect("errors_url"))
            .await
            .body,
        report.body
    );

    // Imports are their requester's; admins see all.
    let (_, other) = site.user("olga", "editor").await;
    let id = kept["id"].as_i64().expect("id");
    assert_error(
        &other.get(&format!("/api/v1/imports/{id}")).await,
        404,
        "not_found",
    );
    assert_error(
        &other.get(&format!("/api/v1/imports/{id}/errors.csv")).await,
        404,
        "not_found",
    );
    assert_eq!(
        other.get("/api/v1/imports").await.json()["items"],
        json!([])
    );
    assert_eq!(
        site.admin
            .get(&format!("/api/v1/imports/{id}"))
            .await
            .status,
        200
    );
    let (_, viewer) = site.user("vera", "viewer").await;
    assert_error(
        &upload(&viewer, path, csv, "text/csv").await,
        403,
        "forbidden",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ndjson_imports_and_hostile_uploads_are_refused_up_front() {
    // pool_size 4 (it follows [database]): one upload at a time.
    let site = Site::start_with("pool_size = 4\n[jobs]\nimport_max_mb = 1\n").await;
    collection(&site, "stock").await;
    let path = "/api/v1/collections/stock/imports";
    let ndjson = "{\"title\":\"one\",\"qty\":1,\"doc\":{\"a\":[true]}}\r\n\n\
                  {\"title\":\"two\",\"price\":\"2.5\",\"nope\":1}\n\
                  [\"not an object\"]\n\
                  {\"title\":\"three\",\"seen\":\"2026-01-31T12:00:00Z\"}";
    let done = import(
        &site.admin,
        &format!("{path}?mode=skip_invalid"),
        ndjson,
        "application/x-ndjson",
    )
    .await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["format"], "ndjson");
    assert_eq!(
        (done["rows_imported"].as_i64(), done["rows_failed"].as_i64()),
        (Some(2), Some(2))
    );
    let report = site
        .admin
        .get(done["errors_url"].as_str().expect("errors_url"))
        .await
        .body;
    assert!(report.contains("\r\n3,nope,no such field"), "{report}");
    assert!(report.contains("\r\n4,,expected a JSON object"), "{report}");
    let got = records(&site.admin, "stock").await;
    assert_eq!(got[0]["doc"], json!({ "a": [true] }));
    assert_eq!(got[1]["title"], "three");

    // Refused before anything is queued.
    let jobs_before = site.admin.get("/api/v1/jobs").await.json()["items"]
        .as_array()
        .map(Vec::len);
    for (body, ct, query, status, code, needle) in [
        (
            "title,colour\nx,y\n",
            "text/csv",
            "",
            422,
            "validation_failed",
            "colour",
        ),
        (
            "title,title\n",
            "text/csv",
            "",
            422,
            "validation_failed",
            "twice",
        ),
        ("", "text/csv", "", 422, "validation_failed", "empty"),
        (
            "title\nx\n",
            "text/plain",
            "",
            422,
            "validation_failed",
            "format",
        ),
        (
            "title\nx\n",
            "text/csv",
            "?mode=sometimes",
            422,
            "validation_failed",
            "skip_invalid",
        ),
        (
            "title\nx\n",
            "text/csv",
            "?format=xlsx",
            422,
            "validation_failed",
            "ndjson",
        ),
    ] {
        let r = upload(&site.admin, &format!("{path}{query}"), body, ct).await;
        assert_error(&r, status, code);
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
    }
    let missing = upload(
        &site.admin,
        "/api/v1/collections/nope/imports",
        "title\nx\n",
        "text/csv",
    )
    .await;
    assert_error(&missing, 404, "not_found");
    // Over jobs.import_max_mb (1 MiB here): announced, refused before the
    // body is read; not announced (chunked), refused when the byte after
    // the limit arrives.
    let limit = 1024 * 1024;
    let cookie = format!(
        "__Host-mogothrow77_session={}",
        site.admin.cookie.as_deref().expect("session")
    );
    let csrf = site.admin.csrf.clone().expect("csrf");
    let head = |framing: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: {cookie}\r\n\
             X-CSRF-Token: {csrf}\r\nContent-Type: text/csv\r\n{framing}\r\n"
        )
    };
    let announced = crate::harness::client::send_raw(
        site.addr,
        head(&format!("Content-Length: {}\r\n", limit + 1)).as_bytes(),
    )
    .await
    .expect("announced");
    assert_error(&announced, 413, "payload_too_large");
    assert!(
        announced.body.contains("jobs.import_max_mb"),
        "{}",
        announced.body
    );
    let mut chunked = head("Transfer-Encoding: chunked\r\n").into_bytes();
    let file = format!("title\n{}", "x".repeat(limit + 1 - 6));
    chunked.extend_from_slice(format!("{:x}\r\n{file}", file.len()).as_bytes());
    let streamed = crate::harness::client::send_raw(site.addr, &chunked)
        .await
        .expect("chunked");
    assert_error(&streamed, 413, "payload_too_large");
    assert_eq!(
        site.admin.get("/api/v1/jobs").await.json()["items"]
            .as_array()
            .map(Vec::len),
        jobs_before,
        "no import was queued"
    );
    // One upload at a time here: a second while a slow one arrives is 503
    // imports_busy; once the slow one is gone, uploads are taken again.
    let mut started = head("Transfer-Encoding: chunked\r\n").into_bytes();
    started.extend_from_slice(b"6\r\ntitle\n\r\n");
    let start_slow = || async {
        let mut slow = crate::harness::client::connect_tls(site.addr)
            .await
            .expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut slow, &started)
            .await
            .expect("send the start");
        tokio::io::AsyncWriteExt::flush(&mut slow)
            .await
            .expect("flush");
        slow
    };
    let mut slow = start_slow().await;
    // Until the slow one holds the only permit, the probe takes it and is
    // refused for its mode (422) without reading a byte or queueing a job.
    // A slow upload that arrived while a probe held the permit was itself
    // refused (it has an answer to read): it is started again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let probe = format!("{path}?mode=sometimes");
    loop {
        let r = upload(&site.admin, &probe, "title\nx\n", "text/csv").await;
        if r.status == 503 {
            assert_error(&r, 503, "imports_busy");
            assert_eq!(r.header("retry-after"), Some("10"));
            break;
        }
        assert_error(&r, 422, "validation_failed");
        assert!(Instant::now() < deadline, "never busy: {}", r.body);
        let mut answer = [0u8; 64];
        let answered = tokio::time::timeout(
            Duration::from_millis(20),
            tokio::io::AsyncReadExt::read(&mut slow, &mut answer),
        )
        .await;
        if matches!(answered, Ok(Ok(n)) if n > 0) {
            slow = start_slow().await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = upload(&site.admin, path, "title\nafter the slow one\n", "text/csv").await;
        if r.status == 202 {
            break;
        }
        assert_error(&r, 503, "imports_busy");
        assert!(
            Instant::now() < deadline,
            "the slow upload's permit was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Under it, but over http.body_limit_bytes: streamed, several chunks.
    let rows = 90_000;
    let mut csv = String::from("title,qty\n");
    for n in 0..rows {
        csv.push_str(&format!("row number {n},{n}\n"));
    }
    assert!(csv.len() > 1_000_000 && csv.len() < 1_048_576 * 2);
    let site2 = Site::start_with("[jobs]\nimport_max_mb = 2\n").await;
    collection(&site2, "stock").await;
    let done = import(&site2.admin, path, &csv, "text/csv").await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["rows_imported"], rows);
    let count = site2
        .admin
        .get("/api/v1/collections/stock/records?limit=1&count=exact")
        .await
        .json();
    assert_eq!(count["count"]["value"], rows, "{count}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_whose_worker_is_killed_runs_again_elsewhere_and_imports_each_row_once() {
    let lease = "[jobs]\nlease_secs = 2\n";
    let mut site = Site::start_with(lease).await;
    collection(&site, "stock").await;
    let (mut b, b_addr, _config_b) = crate::jobs::replica(&site, lease);
    let r = site
        .admin
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "imports", "permissions": ["records:write", "records:read", "jobs:manage"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.json()["token"].as_str().expect("token").to_string();
    let on_a = ApiClient::with_token(site.addr, &secret);
    let on_b = ApiClient::with_token(b_addr, &secret);

    // The row titled "slow" takes 3 s to insert: the worker is killed
    // while it waits, with the rows before it written but not committed.
    let sql = site.sql().await;
    let title: i64 = sql
        .query_one(
            "SELECT f.id FROM collection_fields f JOIN collections c ON c.id = f.collection_id \
             WHERE c.name = 'stock' AND f.name = 'title'",
            &[],
        )
        .await
        .expect("field")
        .get(0);
    let table: i64 = sql
        .query_one("SELECT id FROM collections WHERE name = 'stock'", &[])
        .await
        .expect("collection")
        .get(0);
    sql.batch_execute(&format!(
        "CREATE FUNCTION test_slow_row() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$; \
         CREATE TRIGGER test_slow_row BEFORE INSERT ON records.\"c_{table}\" FOR EACH ROW \
         WHEN (NEW.\"f_{title}\" = 'slow') EXECUTE FUNCTION test_slow_row();"
    ))
    .await
    .expect("slow trigger");
    let mut csv = String::from("title,qty,code\n");
    for n in 0..3000 {
        let t = if n == 2000 {
            "slow".to_string()
        } else {
            format!("row {n}")
        };
        csv.push_str(&format!("{t},{n},C{n}\n"));
    }
    let r = upload(&on_a, "/api/v1/collections/stock/imports", &csv, "text/csv").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_i64().expect("id");
    let job_id = r.json()["job_id"].as_i64().expect("job id");
    let started = Instant::now();
    let worker: String = loop {
        let row = sql
            .query_one(
                "SELECT worker, (SELECT count(*) FROM pg_stat_activity \
                                 WHERE wait_event = 'PgSleep' AND query LIKE 'INSERT INTO records.%') \
                 FROM jobs WHERE id = $1",
                &[&job_id],
            )
            .await
            .expect("job");
        if row.get::<_, i64>(1) > 0 {
            break row.get(0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the import never reached the slow row"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let pid: u32 = worker
        .split(':')
        .nth(1)
        .and_then(|p| p.split('#').next())
        .and_then(|p| p.parse().ok())
        .expect("worker pid");
    let (survivor, killed_a) = if pid == site.app.pid() {
        site.app.signal(nix::sys::signal::Signal::SIGKILL);
        (&on_b, true)
    } else {
        assert_eq!(pid, b.pid(), "the worker is one of the two replicas");
        b.signal(nix::sys::signal::Signal::SIGKILL);
        (&on_a, false)
    };
    let started = Instant::now();
    let done = loop {
        let i = survivor.get(&format!("/api/v1/imports/{id}")).await.json();
        if !matches!(i["state"].as_str(), Some("queued" | "running")) {
            break i;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{i}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["rows_imported"], 3000);
    let job = survivor.get(&format!("/api/v1/jobs/{job_id}")).await.json();
    let log = job["attempts_log"].as_array().expect("attempts").clone();
    assert_eq!(log.len(), 2, "{job}");
    assert_eq!(log[0]["outcome"], "lease_expired", "{job}");
    assert_eq!(log[1]["outcome"], "succeeded", "{job}");
    let counts = sql
        .query_one(
            &format!("SELECT count(*), count(DISTINCT \"f_{title}\") FROM records.\"c_{table}\""),
            &[],
        )
        .await
        .expect("count");
    assert_eq!(
        (counts.get::<_, i64>(0), counts.get::<_, i64>(1)),
        (3000, 3000),
        "each row once"
    );
    if killed_a {
        let _ = site.app.wait_exit(Duration::from_secs(5));
    } else {
        let _ = b.wait_exit(Duration::from_secs(5));
    }
}
