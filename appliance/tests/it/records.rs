//! Collections and records through the API: typed fields, online schema
//! changes that never lose data, validation, optimistic concurrency,
//! filters, sorts and cursor walks under concurrent writes, hostile input.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::harness::api::{assert_error, encode, ApiClient, Site};

async fn tickets(site: &Site) -> Value {
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({
                "name": "tickets",
                "title": "Support tickets",
                "fields": [
                    { "name": "title", "type": "text", "required": true, "indexed": true },
                    { "name": "priority", "type": "integer", "indexed": true },
                    { "name": "amount", "type": "decimal" },
                    { "name": "open", "type": "boolean", "default": true },
                    { "name": "due", "type": "date" },
                    { "name": "seen_at", "type": "timestamp" },
                    { "name": "status", "type": "enum", "enum_values": ["new", "open", "closed"], "default": "new" },
                    { "name": "meta", "type": "json" },
                    { "name": "ref", "type": "text", "unique": true },
                    { "name": "secret", "type": "text", "sensitive": true }
                ]
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

async fn create(client: &ApiClient, data: Value) -> Value {
    let r = client
        .post(
            "/api/v1/collections/tickets/records",
            json!({ "data": data }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_records_validate_round_trip_and_use_optimistic_concurrency() {
    let site = Site::start().await;
    let c = tickets(&site).await;
    assert_eq!(c["fields"].as_array().expect("fields").len(), 10);
    let (_, editor) = site.user("ed", "editor").await;

    let r = editor
        .post(
            "/api/v1/collections/tickets/records",
            json!({ "data": {
                "title": "Printer on fire", "priority": 1, "amount": "1234.50",
                "due": "2026-12-01", "seen_at": "2026-11-27T10:00:00+01:00",
                "meta": { "floor": 3 }, "ref": "T-1", "secret": "hunter2"
            } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("etag"), Some("\"1\""));
    let rec = r.json();
    let id = rec["id"].as_i64().expect("id");
    assert_eq!(rec["version"], 1);
    assert_eq!(rec["data"]["amount"], "1234.5");
    assert_eq!(rec["data"]["open"], true, "default applied");
    assert_eq!(rec["data"]["status"], "new");
    assert_eq!(rec["data"]["seen_at"], "2026-11-27T09:00:00Z");
    assert_eq!(rec["data"]["meta"], json!({ "floor": 3 }));
    assert!(rec["created_by"].is_i64());

    // Every invalid field is listed with its rule.
    let r = editor
        .post(
            "/api/v1/collections/tickets/records",
            json!({ "data": {
                "priority": 1.5, "amount": "12,5", "due": "tomorrow", "status": "lost",
                "open": "yes", "nope": 1
            } }),
        )
        .await;
    assert_error(&r, 422, "validation_failed");
    let fields: BTreeSet<String> = r.json()["details"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["field"].as_str().expect("field").to_string())
        .collect();
    let expected: BTreeSet<String> = [
        "title", "priority", "amount", "due", "status", "open", "nope",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(fields, expected, "{}", r.body);

    // Unique.
    let r = editor
        .post(
            "/api/v1/collections/tickets/records",
            json!({ "data": { "title": "dup", "ref": "T-1" } }),
        )
        .await;
    assert_error(&r, 409, "duplicate_value");

    // Update with the right version, then a stale one.
    let path = format!("/api/v1/collections/tickets/records/{id}");
    let r = editor
        .call_raw(
            "PATCH",
            &path,
            Some(&json!({ "data": { "priority": 2 } }).to_string()),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(
        r.json()["data"]["title"],
        "Printer on fire",
        "PATCH keeps unsent fields"
    );
    let r = editor
        .call_raw(
            "PATCH",
            &path,
            Some(&json!({ "data": { "priority": 3 } }).to_string()),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_error(&r, 412, "precondition_failed");
    assert_eq!(r.json()["details"]["current"]["version"], 2);
    assert_eq!(r.json()["details"]["current"]["data"]["priority"], 2);
    let r = editor
        .call_raw("DELETE", &path, None, &[("If-Match", "\"1\"")])
        .await;
    assert_error(&r, 412, "precondition_failed");

    // The audit log names the fields written, never their values.
    let audit = site.admin.get("/api/v1/audit?action=record.update").await;
    assert!(audit.body.contains("\"priority\""), "{}", audit.body);
    let history = site
        .admin
        .get(&format!(
            "/api/v1/audit?target=collection:tickets/record:{id}"
        ))
        .await
        .json();
    let actions: Vec<&str> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["record.update", "record.create"]);
    let all = site.admin.get("/api/v1/audit?limit=200").await;
    assert!(
        !all.body.contains("hunter2"),
        "a value reached the audit log"
    );
    assert!(!all.body.contains("Printer on fire"));

    // Viewers read but cannot write; deletes need records:write.
    let (_, viewer) = site.user("vic", "viewer").await;
    assert_eq!(viewer.get(&path).await.status, 200);
    assert_error(
        &viewer
            .post(
                "/api/v1/collections/tickets/records",
                json!({ "data": { "title": "x" } }),
            )
            .await,
        403,
        "forbidden",
    );
    assert_eq!(editor.delete(&path).await.status, 204);
    assert_error(&editor.get(&path).await, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_changes_are_online_and_never_lose_data() {
    let site = Site::start().await;
    tickets(&site).await;
    let admin = &site.admin;
    let a = create(admin, json!({ "title": "a", "ref": "R1" })).await;
    let b = create(admin, json!({ "title": "b", "ref": "R2" })).await;

    // A new required field needs a default on a non-empty collection.
    let r = admin
        .post(
            "/api/v1/collections/tickets/fields",
            json!({ "name": "team", "type": "text", "required": true }),
        )
        .await;
    assert_error(&r, 409, "schema_conflict");
    let r = admin
        .post(
            "/api/v1/collections/tickets/fields",
            json!({ "name": "team", "type": "text", "required": true, "default": "ops", "indexed": true }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let got = admin
        .get(&format!("/api/v1/collections/tickets/records/{}", a["id"]))
        .await
        .json();
    assert_eq!(got["data"]["team"], "ops");

    // Rename is metadata only: values stay.
    let r = admin
        .patch(
            "/api/v1/collections/tickets/fields/title",
            json!({ "name": "subject" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = admin
        .get(&format!("/api/v1/collections/tickets/records/{}", b["id"]))
        .await
        .json();
    assert_eq!(got["data"]["subject"], "b");
    assert!(got["data"].get("title").is_none());

    // Unique with duplicates is refused, naming the records.
    for (rec, amount) in [(&b, "5"), (&a, "5.0")] {
        let r = admin
            .patch(
                &format!("/api/v1/collections/tickets/records/{}", rec["id"]),
                json!({ "data": { "amount": amount } }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = admin
        .patch(
            "/api/v1/collections/tickets/fields/amount",
            json!({ "unique": true }),
        )
        .await;
    assert_error(&r, 409, "schema_conflict");
    let ids = r.json()["details"]["record_ids"].clone();
    assert_eq!(ids, json!([a["id"], b["id"]]), "{}", r.body);
    // Making a field required while some records lack it: refused with ids.
    let r = admin
        .patch(
            "/api/v1/collections/tickets/fields/due",
            json!({ "required": true }),
        )
        .await;
    assert_error(&r, 409, "schema_conflict");
    assert_eq!(r.json()["details"]["record_ids"], json!([a["id"], b["id"]]));
    // Indexed concurrently: the index exists afterwards.
    let r = admin
        .patch(
            "/api/v1/collections/tickets/fields/due",
            json!({ "indexed": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sql = site.sql().await;
    let indexes: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'records'",
            &[],
        )
        .await
        .expect("indexes")
        .get(0);
    assert!(indexes >= 4, "{indexes}");

    // Hiding removes a field from the API at once; the data stays until
    // purged.
    assert_eq!(
        admin
            .delete("/api/v1/collections/tickets/fields/ref")
            .await
            .status,
        204
    );
    let got = admin
        .get(&format!("/api/v1/collections/tickets/records/{}", a["id"]))
        .await
        .json();
    assert!(got["data"].get("ref").is_none());
    let kept: i64 = sql
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'records'",
            &[],
        )
        .await
        .expect("columns")
        .get(0);
    let r = admin
        .post("/api/v1/collections/tickets/purge-hidden-fields", json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["purged"], json!(["ref"]));
    let after: i64 = sql
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'records'",
            &[],
        )
        .await
        .expect("columns")
        .get(0);
    assert_eq!(after, kept - 1);

    // Deleting a collection needs its name repeated.
    assert_error(
        &admin.delete("/api/v1/collections/tickets").await,
        422,
        "validation_failed",
    );
    assert_eq!(
        admin
            .delete("/api/v1/collections/tickets?confirm=tickets")
            .await
            .status,
        204
    );
    assert_error(
        &admin.get("/api/v1/collections/tickets").await,
        404,
        "not_found",
    );
    let actions = site.admin.get("/api/v1/audit?limit=200").await.body;
    for action in [
        "collection.create",
        "field.add",
        "field.update",
        "field.hide",
        "field.purge",
        "collection.delete",
    ] {
        assert!(
            actions.contains(action),
            "{action} missing from the audit log"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_filters_and_sorts_are_harmless() {
    let site = Site::start().await;
    tickets(&site).await;
    let admin = &site.admin;
    create(
        admin,
        json!({ "title": "x'); DROP TABLE users; --", "priority": 1 }),
    )
    .await;
    for body in [
        json!({ "name": "x\"; DROP TABLE users; --", "fields": [] }),
        json!({ "name": "Tickets", "fields": [] }),
        json!({ "name": "ok_name", "fields": [{ "name": "a b", "type": "text" }] }),
        json!({ "name": "ok_name", "fields": [{ "name": "id", "type": "text" }] }),
        json!({ "name": "ok_name", "fields": [{ "name": "x", "type": "varchar(10)" }] }),
    ] {
        let r = admin.post("/api/v1/collections", body).await;
        assert!(matches!(r.status, 400 | 422), "{}", r.body);
    }
    assert_error(
        &admin
            .post(
                "/api/v1/collections",
                json!({ "name": "tickets", "fields": [] }),
            )
            .await,
        409,
        "conflict",
    );
    let hostile = [
        r#"{"field": "title\"; DROP TABLE users; --", "op": "eq", "value": 1}"#,
        r#"{"field": "title", "op": "eq; DROP", "value": "x"}"#,
        r#"{"field": "priority", "op": "eq", "value": "1 OR 1=1"}"#,
        r#"{"and": []}"#,
        r#"not json"#,
    ];
    for f in hostile {
        let r = admin
            .get(&format!(
                "/api/v1/collections/tickets/records?filter={}",
                encode(f)
            ))
            .await;
        assert_error(&r, 400, "invalid_filter");
    }
    let deep = (0..20).fold(
        r#"{"field": "priority", "op": "is_null", "value": true}"#.to_string(),
        |acc, _| format!(r#"{{"not": {acc}}}"#),
    );
    assert_error(
        &admin
            .get(&format!(
                "/api/v1/collections/tickets/records?filter={}",
                encode(&deep)
            ))
            .await,
        400,
        "invalid_filter",
    );
    let many: Vec<i64> = (0..500).collect();
    let big_in = json!({ "field": "priority", "op": "in", "value": many }).to_string();
    assert_error(
        &admin
            .get(&format!(
                "/api/v1/collections/tickets/records?filter={}",
                encode(&big_in)
            ))
            .await,
        400,
        "invalid_filter",
    );
    for sort in ["title;drop", "nope", "-meta", "title,title", "a,b,c,d"] {
        assert_error(
            &admin
                .get(&format!(
                    "/api/v1/collections/tickets/records?sort={}",
                    encode(sort)
                ))
                .await,
            400,
            "invalid_sort",
        );
    }
    assert_error(
        &admin
            .get("/api/v1/collections/tickets/records?limit=1000")
            .await,
        422,
        "validation_failed",
    );
    assert_error(
        &admin
            .get("/api/v1/collections/x%22%3B%20DROP/records")
            .await,
        404,
        "not_found",
    );
    // A value that looks like SQL is just a value.
    let f =
        json!({ "field": "title", "op": "eq", "value": "x'); DROP TABLE users; --" }).to_string();
    let r = admin
        .get(&format!(
            "/api/v1/collections/tickets/records?filter={}",
            encode(&f)
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["items"].as_array().expect("items").len(), 1);
    assert_eq!(
        admin.get("/api/v1/users").await.status,
        200,
        "users table intact"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cursors_walk_every_record_once_under_concurrent_writes_and_reject_tampering() {
    let site = Site::start().await;
    tickets(&site).await;
    let admin = site.admin.clone();
    let mut originals = BTreeSet::new();
    for i in 0..120 {
        // Many equal and null priorities: the id tiebreaker matters.
        let priority = if i % 7 == 0 {
            Value::Null
        } else {
            json!(i % 5)
        };
        let rec = create(
            &admin,
            json!({ "title": format!("t{i:03}"), "priority": priority }),
        )
        .await;
        originals.insert(rec["id"].as_i64().expect("id"));
    }
    // Counts: exact on request, or the planner's cheap estimate.
    let nulls = r#"{"field":"priority","op":"is_null","value":true}"#;
    let r = admin
        .get(&format!(
            "/api/v1/collections/tickets/records?limit=1&count=exact&filter={}",
            encode(nulls)
        ))
        .await;
    assert_eq!(
        r.json()["count"],
        json!({ "value": 18, "exact": true }),
        "{}",
        r.body
    );
    let r = admin
        .get(&format!(
            "/api/v1/collections/tickets/records?limit=1&count=bounded&filter={}",
            encode(nulls)
        ))
        .await;
    assert_eq!(
        r.json()["count"],
        json!({ "value": 18, "exact": true }),
        "under the bound a bounded count is exact: {}",
        r.body
    );
    let r = admin
        .get("/api/v1/collections/tickets/records?limit=1&count=estimate")
        .await;
    assert_eq!(r.json()["count"]["exact"], false, "{}", r.body);
    assert!(r.json()["count"]["value"].as_i64().is_some(), "{}", r.body);
    assert!(admin
        .get("/api/v1/collections/tickets/records?limit=1")
        .await
        .json()
        .get("count")
        .is_none());
    assert_error(
        &admin
            .get("/api/v1/collections/tickets/records?count=lots")
            .await,
        422,
        "validation_failed",
    );

    // While the walk runs: inserts and deletes of other records.
    let writer = {
        let admin = admin.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                let rec = admin
                    .post(
                        "/api/v1/collections/tickets/records",
                        json!({ "data": { "title": format!("new{i}"), "priority": i % 5 } }),
                    )
                    .await
                    .json();
                if i % 2 == 0 {
                    admin
                        .delete(&format!(
                            "/api/v1/collections/tickets/records/{}",
                            rec["id"]
                        ))
                        .await;
                }
            }
        })
    };
    for sort in ["-priority,title", "priority", "-created_at"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "/api/v1/collections/tickets/records?limit=7&sort={}",
                encode(sort)
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", encode(c)));
            }
            let page = admin.get(&path).await;
            assert_eq!(page.status, 200, "{}", page.body);
            let page = page.json();
            for r in page["items"].as_array().expect("items") {
                seen.push(r["id"].as_i64().expect("id"));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let unique: BTreeSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: a record came twice");
        assert!(originals.is_subset(&unique), "{sort}: a record was skipped");
    }
    writer.await.expect("writer");

    // A cursor only continues its own listing.
    let first = admin
        .get("/api/v1/collections/tickets/records?limit=2&sort=priority")
        .await
        .json();
    let cursor = first["next_cursor"].as_str().expect("cursor").to_string();
    for path in [
        format!(
            "/api/v1/collections/tickets/records?limit=2&sort=-priority&cursor={}",
            encode(&cursor)
        ),
        format!(
            "/api/v1/collections/tickets/records?limit=2&sort=priority&filter={}&cursor={}",
            encode(r#"{"field":"priority","op":"gt","value":1}"#),
            encode(&cursor)
        ),
        format!(
            "/api/v1/collections/tickets/records?limit=2&sort=priority&cursor={}x",
            encode(&cursor)
        ),
    ] {
        assert_error(&admin.get(&path).await, 400, "invalid_cursor");
    }
    site.admin
        .post(
            "/api/v1/collections",
            json!({ "name": "other", "fields": [{ "name": "priority", "type": "integer" }] }),
        )
        .await;
    assert_error(
        &admin
            .get(&format!(
                "/api/v1/collections/other/records?limit=2&sort=priority&cursor={}",
                encode(&cursor)
            ))
            .await,
        400,
        "invalid_cursor",
    );
    // The sort field removed: the listing is refused, naming the field.
    admin
        .delete("/api/v1/collections/tickets/fields/priority")
        .await;
    let r = admin
        .get(&format!(
            "/api/v1/collections/tickets/records?limit=2&sort=priority&cursor={}",
            encode(&cursor)
        ))
        .await;
    assert_error(&r, 400, "invalid_sort");
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_changes_while_reads_and_writes_run_lose_nothing() {
    let site = Site::start_with("[api]\nrate_limit_per_minute = 100000\n").await;
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "load", "fields": [
                { "name": "title", "type": "text" },
                { "name": "n", "type": "integer" }
            ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Writers: every created record's id and n are remembered.
    let mut writers = Vec::new();
    for w in 0..3i64 {
        let client = site.admin.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut written = Vec::new();
            let mut i = 0i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let n = w * 1_000_000 + i;
                let r = client
                    .post(
                        "/api/v1/collections/load/records",
                        json!({ "data": { "n": n } }),
                    )
                    .await;
                // Documented: a write may meet a schema change's lock
                // only as 503 collection_busy; nothing else may fail.
                match r.status {
                    201 => written.push((r.json()["id"].as_i64().expect("id"), n)),
                    503 => {}
                    other => panic!("write failed with {other}: {}", r.body),
                }
                i += 1;
            }
            written
        }));
    }
    let reader = {
        let client = site.admin.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = client
                    .get("/api/v1/collections/load/records?limit=50&sort=-n")
                    .await;
                assert!(
                    matches!(r.status, 200 | 503),
                    "read failed: {} {}",
                    r.status,
                    r.body
                );
                reads += 1;
            }
            reads
        })
    };
    let admin = &site.admin;
    let changes = [
        (
            "POST",
            "/api/v1/collections/load/fields",
            json!({ "name": "extra", "type": "text", "default": "x" }),
        ),
        (
            "PATCH",
            "/api/v1/collections/load/fields/n",
            json!({ "indexed": true }),
        ),
        (
            "PATCH",
            "/api/v1/collections/load/fields/title",
            json!({ "name": "subject" }),
        ),
        (
            "PATCH",
            "/api/v1/collections/load/fields/n",
            json!({ "unique": true }),
        ),
        (
            "DELETE",
            "/api/v1/collections/load/fields/extra",
            json!(null),
        ),
        (
            "POST",
            "/api/v1/collections/load/purge-hidden-fields",
            json!({}),
        ),
    ];
    for (method, path, body) in changes {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let body = (!body.is_null()).then_some(body);
        let r = admin.call(method, path, body.as_ref()).await;
        assert!(
            matches!(r.status, 200 | 201 | 204),
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.expect("writer"));
    }
    let reads = reader.await.expect("reader");
    assert!(
        written.len() > 20 && reads > 5,
        "{} writes, {reads} reads",
        written.len()
    );
    // Every acknowledged write is there with its value.
    for (id, n) in written {
        let r = admin
            .get(&format!("/api/v1/collections/load/records/{id}"))
            .await;
        assert_eq!(r.status, 200, "record {id} lost: {}", r.body);
        assert_eq!(r.json()["data"]["n"], n, "record {id} changed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_field_changes_type_only_when_every_value_converts() {
    let site = Site::start().await;
    let admin = &site.admin;
    let r = admin
        .post(
            "/api/v1/collections",
            json!({ "name": "parts", "fields": [
                { "name": "size", "type": "text", "indexed": true },
                { "name": "price", "type": "decimal" },
                { "name": "day", "type": "date" },
                { "name": "qty", "type": "integer", "default": 5 }
            ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut ids = Vec::new();
    for (size, price, day) in [
        ("10", "2.5", "2026-01-02"),
        ("x", "3", "2026-03-04"),
        ("-7", "4", "2026-05-06"),
    ] {
        let r = admin
            .post(
                "/api/v1/collections/parts/records",
                json!({ "data": { "size": size, "price": price, "day": day } }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.json()["id"].as_i64().expect("id"));
    }
    let change = |field: &str, body: Value| {
        let path = format!("/api/v1/collections/parts/fields/{field}");
        async move { admin.patch(&path, body).await }
    };
    // "x" is not an integer: refused, naming the record; nothing changed.
    let r = change("size", json!({ "type": "integer" })).await;
    assert_error(&r, 409, "schema_conflict");
    assert_eq!(r.json()["details"]["record_ids"], json!([ids[1]]));
    // 2.5 is not a whole number.
    let r = change("price", json!({ "type": "integer" })).await;
    assert_error(&r, 409, "schema_conflict");
    assert_eq!(r.json()["details"]["record_ids"], json!([ids[0]]));
    // Pairs that are never offered.
    assert_error(
        &change("day", json!({ "type": "boolean" })).await,
        422,
        "validation_failed",
    );

    admin
        .patch(
            &format!("/api/v1/collections/parts/records/{}", ids[1]),
            json!({ "data": { "size": "11" } }),
        )
        .await;
    let r = change("size", json!({ "type": "integer" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = change("day", json!({ "type": "timestamp" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Values converted, the index rebuilt for the new type, filters typed.
    let f = json!({ "field": "size", "op": "gt", "value": 9 }).to_string();
    let page = admin
        .get(&format!(
            "/api/v1/collections/parts/records?sort=size&filter={}",
            encode(&f)
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let items = page.json()["items"].clone();
    let sizes: Vec<i64> = items
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["data"]["size"].as_i64().expect("integer"))
        .collect();
    assert_eq!(sizes, [10, 11]);
    assert_eq!(items[0]["data"]["day"], "2026-01-02T00:00:00Z");
    let sql = site.sql().await;
    let indexed: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'records' AND indexname LIKE 'i_%'",
            &[],
        )
        .await
        .expect("indexes")
        .get(0);
    assert_eq!(indexed, 1);
    // And back to text, losing nothing.
    let r = change("size", json!({ "type": "text" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = admin
        .get(&format!("/api/v1/collections/parts/records/{}", ids[2]))
        .await
        .json();
    assert_eq!(got["data"]["size"], "-7");

    // A field with a default: the default converts with the values.
    let r = change("qty", json!({ "type": "text" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new = |data: Value| async move {
        let r = admin
            .post("/api/v1/collections/parts/records", json!({ "data": data }))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()
    };
    assert_eq!(new(json!({ "size": "1" })).await["data"]["qty"], "5");
    assert_eq!(got["data"]["qty"], 5);
    let got = admin
        .get(&format!("/api/v1/collections/parts/records/{}", ids[2]))
        .await
        .json();
    assert_eq!(got["data"]["qty"], "5");
    // "5" is no boolean: the default is named, nothing changes.
    let r = change("qty", json!({ "type": "boolean" })).await;
    assert_error(&r, 422, "validation_failed");
    assert!(r.body.contains("default"), "{}", r.body);
    let r = change("qty", json!({ "type": "integer" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(new(json!({ "size": "2" })).await["data"]["qty"], 5);
    let fields = admin.get("/api/v1/collections/parts").await.json()["fields"].clone();
    let qty = fields
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "qty")
        .expect("qty")
        .clone();
    assert_eq!(qty["default"], 5, "{qty}");
    assert_eq!(qty["type"], "integer", "{qty}");

    let audit = admin.get("/api/v1/audit?action=field.update").await.body;
    assert!(audit.contains("\"type\""), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_held_up_past_the_timeout_answers_query_timeout_and_changes_nothing() {
    let site = Site::start_with("[api]\nquery_timeout_ms = 300\n").await;
    let admin = &site.admin;
    let r = admin
        .post(
            "/api/v1/collections",
            json!({ "name": "held", "fields": [{ "name": "title", "type": "text" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = admin
        .post(
            "/api/v1/collections/held/records",
            json!({ "data": { "title": "kept" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].clone();

    // Another session holds the table (as a long schema change or a
    // maintenance job might): reads and writes wait, and give up at the
    // statement timeout with a clear, retryable error.
    let sql = site.sql().await;
    let collection_id: i64 = sql
        .query_one("SELECT id FROM collections WHERE name = 'held'", &[])
        .await
        .expect("collection")
        .get(0);
    let table = format!("records.\"c_{collection_id}\"");
    sql.batch_execute(&format!(
        "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;"
    ))
    .await
    .expect("lock");
    let started = std::time::Instant::now();
    let list = admin.get("/api/v1/collections/held/records").await;
    assert_error(&list, 503, "query_timeout");
    assert!(list.header("retry-after").is_some(), "{:?}", list.headers);
    let one = admin
        .get(&format!("/api/v1/collections/held/records/{id}"))
        .await;
    assert_error(&one, 503, "query_timeout");
    let write = admin
        .post(
            "/api/v1/collections/held/records",
            json!({ "data": { "title": "not written" } }),
        )
        .await;
    assert_error(&write, 503, "query_timeout");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "three statements under a 300 ms timeout took {:?}",
        started.elapsed()
    );
    sql.batch_execute("ROLLBACK").await.expect("release");

    let list = admin.get("/api/v1/collections/held/records").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let titles: Vec<Value> = list.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["data"]["title"].clone())
        .collect();
    assert_eq!(titles, vec![json!("kept")]);
}
