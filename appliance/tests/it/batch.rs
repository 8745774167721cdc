//! Batch writes (`POST …/records/batch`): up to 1,000 creates, updates and
//! deletes applied together or not at all, every failed operation reported
//! with the error its single write would have answered, each change audited
//! and announced to webhooks like a single write, retried once with an
//! `Idempotency-Key`, and a body limit of their own.

use serde_json::{json, Value};

use crate::harness::api::{assert_error, ApiClient, Site};

const BATCH: &str = "/api/v1/collections/items/records/batch";

async fn items(site: &Site) {
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "items", "fields": [
                { "name": "name", "type": "text", "required": true },
                { "name": "qty", "type": "integer" },
                { "name": "code", "type": "text", "unique": true }
            ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn create(client: &ApiClient, data: Value) -> Value {
    let r = client
        .post("/api/v1/collections/items/records", json!({ "data": data }))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

/// Every record of `items`, as (id, version, name, qty), by id.
async fn all(client: &ApiClient) -> Vec<(i64, i64, String, Option<i64>)> {
    let r = client
        .get("/api/v1/collections/items/records?limit=200&sort=id")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["id"].as_i64().expect("id"),
                i["version"].as_i64().expect("version"),
                i["data"]["name"].as_str().unwrap_or_default().to_string(),
                i["data"]["qty"].as_i64(),
            )
        })
        .collect()
}

/// How many records `items` has.
async fn count(client: &ApiClient) -> i64 {
    let r = client
        .get("/api/v1/collections/items/records?limit=1&count=exact")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["count"]["value"].as_i64().expect("count")
}

/// Audit actions on records of `items`, oldest first.
async fn record_audit(site: &Site) -> Vec<(String, String)> {
    let sql = site.sql().await;
    sql.query(
        "SELECT action, target FROM audit_log WHERE target LIKE 'collection:items/record:%' \
         ORDER BY seq",
        &[],
    )
    .await
    .expect("audit")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_applies_every_operation_or_none_and_reports_each_failure() {
    let site = Site::start().await;
    items(&site).await;
    let (_, editor) = site.user("batcher", "editor").await;
    // A subscription, so every change queues a delivery.
    let r = site
        .admin
        .post(
            "/api/v1/webhooks",
            json!({ "url": "https://hooks.example.com/in", "collection": "items",
                    "events": ["record.created", "record.updated", "record.deleted"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let first = create(&editor, json!({ "name": "first", "qty": 1, "code": "A" })).await;
    let second = create(&editor, json!({ "name": "second", "qty": 2 })).await;
    let (id1, id2) = (
        first["id"].as_i64().expect("id"),
        second["id"].as_i64().expect("id"),
    );
    let audit_before = record_audit(&site).await.len();

    // Applied: two creates, an update naming the version it saw, a delete.
    let r = editor
        .post(
            BATCH,
            json!({ "operations": [
                { "op": "create", "data": { "name": "third", "qty": 3 } },
                { "op": "update", "id": id1, "version": 1, "data": { "qty": 10 } },
                { "op": "delete", "id": id2 },
                { "op": "create", "data": { "name": "fourth" } }
            ] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.json()["results"].as_array().expect("results").clone();
    let ops: Vec<&str> = results
        .iter()
        .map(|x| x["op"].as_str().expect("op"))
        .collect();
    assert_eq!(ops, ["create", "update", "delete", "create"]);
    let id3 = results[0]["record"]["id"].as_i64().expect("id");
    let id4 = results[3]["record"]["id"].as_i64().expect("id");
    assert_eq!(results[1]["record"]["version"], 2);
    assert_eq!(results[1]["record"]["data"]["qty"], 10);
    assert_eq!(results[2]["id"], id2);
    let after = all(&editor).await;
    assert_eq!(
        after,
        vec![
            (id1, 2, "first".to_string(), Some(10)),
            (id3, 1, "third".to_string(), Some(3)),
            (id4, 1, "fourth".to_string(), None),
        ]
    );
    // Audited one entry per record, as single writes are.
    let audit = record_audit(&site).await;
    assert_eq!(
        audit[audit_before..].to_vec(),
        vec![
            (
                "record.create".to_string(),
                format!("collection:items/record:{id3}")
            ),
            (
                "record.update".to_string(),
                format!("collection:items/record:{id1}")
            ),
            (
                "record.delete".to_string(),
                format!("collection:items/record:{id2}")
            ),
            (
                "record.create".to_string(),
                format!("collection:items/record:{id4}")
            ),
        ]
    );
    // Appended together, the entries still chain: the log verifies.
    let verified = site.config.run(&["audit", "verify"]);
    assert_eq!(verified.code(), Some(0), "{}", verified.all());
    let sql = site.sql().await;
    let events: Vec<String> = sql
        .query(
            "SELECT event FROM webhook_deliveries WHERE (payload->'data'->'record'->>'id')::bigint = ANY($1) \
             ORDER BY id",
            &[&vec![id1, id2, id3, id4]],
        )
        .await
        .expect("deliveries")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The two single creates before the batch, then the batch's four.
    assert_eq!(
        events[2..],
        [
            "record.created",
            "record.updated",
            "record.deleted",
            "record.created"
        ]
    );

    // Refused: an invalid value, a stale version, a missing record; the
    // valid create with them is not applied either.
    let audit_before = record_audit(&site).await.len();
    let r = editor
        .post(
            BATCH,
            json!({ "operations": [
                { "op": "create", "data": { "name": "bad", "qty": "many" } },
                { "op": "update", "id": id1, "version": 1, "data": { "qty": 11 } },
                { "op": "delete", "id": 999_999 },
                { "op": "create", "data": { "name": "would be fine" } }
            ] }),
        )
        .await;
    assert_error(&r, 422, "batch_failed");
    let body = r.json();
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .starts_with("3 of 4 operations failed"),
        "{body}"
    );
    let failed: Vec<(i64, String, String)> = body["details"]["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .map(|f| {
            (
                f["index"].as_i64().expect("index"),
                f["op"].as_str().expect("op").to_string(),
                f["code"].as_str().expect("code").to_string(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        vec![
            (0, "create".to_string(), "validation_failed".to_string()),
            (1, "update".to_string(), "precondition_failed".to_string()),
            (2, "delete".to_string(), "not_found".to_string()),
        ]
    );
    assert_eq!(
        body["details"]["operations"][0]["details"]["fields"][0]["field"],
        "qty"
    );
    assert_eq!(body["details"]["operations"][1]["id"], id1);
    assert_eq!(body["details"]["unchecked"], 0);
    assert_eq!(all(&editor).await, after, "nothing changed");
    assert_eq!(
        record_audit(&site).await.len(),
        audit_before,
        "nothing audited"
    );

    // A duplicate value ends the check: what follows is counted, not checked.
    let r = editor
        .post(
            BATCH,
            json!({ "operations": [
                { "op": "create", "data": { "name": "new" } },
                { "op": "create", "data": { "name": "copy", "code": "A" } },
                { "op": "create", "data": { "qty": 1 } },
                { "op": "delete", "id": id3 }
            ] }),
        )
        .await;
    assert_error(&r, 422, "batch_failed");
    let body = r.json();
    assert_eq!(body["details"]["operations"][0]["index"], 1, "{body}");
    assert_eq!(body["details"]["operations"][0]["code"], "duplicate_value");
    assert_eq!(body["details"]["unchecked"], 2);
    assert_eq!(all(&editor).await, after, "nothing changed");

    // Retried with the same Idempotency-Key: applied once.
    let keyed = editor.clone().header("Idempotency-Key", "batch-retry-1");
    let batch = json!({ "operations": [ { "op": "create", "data": { "name": "once" } } ] });
    let first = keyed.post(BATCH, batch.clone()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = keyed.post(BATCH, batch).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    let once = all(&editor).await.iter().filter(|r| r.2 == "once").count();
    assert_eq!(once, 1);

    // Malformed batches.
    let r = editor.post(BATCH, json!({ "operations": [] })).await;
    assert_error(&r, 422, "validation_failed");
    let r = editor
        .post(
            BATCH,
            json!({ "operations": [ { "op": "upsert", "data": {} } ] }),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    let r = editor
        .post(
            BATCH,
            json!({ "operations": [ { "op": "delete", "id": id3, "data": {} } ] }),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    let r = editor
        .call_raw(
            "POST",
            BATCH,
            Some("operations"),
            &[("Content-Type", "text/plain")],
        )
        .await;
    assert_error(&r, 415, "unsupported_media_type");
    let r = editor
        .post(
            "/api/v1/collections/no_such/records/batch",
            json!({ "operations": [ { "op": "create", "data": { "name": "x" } } ] }),
        )
        .await;
    assert_error(&r, 404, "not_found");
    let (_, viewer) = site.user("looker", "viewer").await;
    let r = viewer
        .post(
            BATCH,
            json!({ "operations": [ { "op": "delete", "id": id3 } ] }),
        )
        .await;
    assert_error(&r, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_operations_pass_the_general_body_limit_and_the_batch_limit_holds() {
    let site = Site::start_with("[api]\nbatch_body_limit_bytes = 2097152\n").await;
    items(&site).await;
    // 1,000 creates of about 1.2 KB each: over the 1 MiB general limit,
    // under the batch limit.
    let name = "n".repeat(1200);
    let ops: Vec<Value> = (0..1000)
        .map(|i| json!({ "op": "create", "data": { "name": name, "qty": i } }))
        .collect();
    let body = json!({ "operations": ops });
    assert!(body.to_string().len() > 1024 * 1024);
    // With an Idempotency-Key the body is kept to compare retries: still
    // under the batch limit, not the general one.
    let keyed = site.admin.clone().header("Idempotency-Key", "big-batch");
    let r = keyed.post(BATCH, body).await;
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(500)]);
    assert_eq!(r.json()["results"].as_array().expect("results").len(), 1000);
    assert_eq!(count(&site.admin).await, 1000);

    // 1,001 operations: refused, nothing written.
    let ops: Vec<Value> = (0..1001)
        .map(|_| json!({ "op": "create", "data": { "name": "x" } }))
        .collect();
    let r = site.admin.post(BATCH, json!({ "operations": ops })).await;
    assert_error(&r, 422, "validation_failed");
    assert!(r.body.contains("split it"), "{}", r.body);

    // Over the batch limit: 413 naming its key, announced or streamed,
    // before anything runs; a single write keeps the general limit.
    let limit = 2_097_152;
    let cookie = site.admin.cookie.clone().expect("cookie");
    let csrf = site.admin.csrf.clone().expect("csrf");
    let head = |framing: &str| {
        format!(
            "POST {BATCH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Cookie: __Host-mogothrow77_session={cookie}\r\nX-CSRF-Token: {csrf}\r\n\
             Content-Type: application/json\r\n{framing}\r\n"
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
        announced.body.contains("api.batch_body_limit_bytes"),
        "{}",
        announced.body
    );
    let ops: Vec<Value> = (0..1000)
        .map(|_| json!({ "op": "create", "data": { "name": "b".repeat(2100) } }))
        .collect();
    let body = json!({ "operations": ops }).to_string();
    assert!(body.len() > limit);
    let mut chunked = head("Transfer-Encoding: chunked\r\n").into_bytes();
    chunked.extend_from_slice(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes());
    let streamed = crate::harness::client::send_raw(site.addr, &chunked)
        .await
        .expect("chunked");
    assert_error(&streamed, 413, "payload_too_large");
    assert!(
        streamed.body.contains("api.batch_body_limit_bytes"),
        "{}",
        streamed.body
    );
    let r = site
        .admin
        .post(
            "/api/v1/collections/items/records",
            json!({ "data": { "name": "c".repeat(1_100_000) } }),
        )
        .await;
    assert_error(&r, 413, "payload_too_large");
    assert_eq!(count(&site.admin).await, 1000);
    // An import upload with a key is bound by the general limit (it is
    // kept in memory), as docs/api.md says.
    let csv = format!("name\n{}\n", "i".repeat(1_100_000));
    let r = site
        .admin
        .call_raw(
            "POST",
            "/api/v1/collections/items/imports",
            Some(&csv),
            &[
                ("Content-Type", "text/csv"),
                ("Idempotency-Key", "big-import"),
            ],
        )
        .await;
    assert_error(&r, 413, "payload_too_large");
    assert!(r.body.contains("http.body_limit_bytes"), "{}", r.body);

    // Past the bounded count's 10,000: it stops there and says so (9,000
    // more rows written straight into the collection's table).
    let sql = site.sql().await;
    let row = sql
        .query_one(
            "SELECT c.id, f.id FROM collections c JOIN collection_fields f \
             ON f.collection_id = c.id AND f.name = 'name' WHERE c.name = 'items'",
            &[],
        )
        .await
        .expect("the collection's table");
    let (table, name_column) = (
        format!("records.c_{}", row.get::<_, i64>(0)),
        format!("f_{}", row.get::<_, i64>(1)),
    );
    sql.batch_execute(&format!(
        "INSERT INTO {table} ({name_column}) SELECT 'f' FROM generate_series(1, 9000)"
    ))
    .await
    .expect("fill");
    let bounded =
        |filter: &str| format!("/api/v1/collections/items/records?limit=1&count=bounded{filter}");
    let r = site.admin.get(&bounded("")).await;
    assert_eq!(
        r.json()["count"],
        json!({ "value": 10000, "exact": true }),
        "exactly the bound: {}",
        r.body
    );
    let r = site
        .admin
        .post(
            BATCH,
            json!({ "operations": [ { "op": "create", "data": { "name": "one more" } } ] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = site.admin.get(&bounded("")).await;
    assert_eq!(
        r.json()["count"],
        json!({ "value": 10000, "exact": false, "more": true }),
        "{}",
        r.body
    );
    let one = crate::harness::api::encode(r#"{"field":"name","op":"eq","value":"one more"}"#);
    let r = site.admin.get(&bounded(&format!("&filter={one}"))).await;
    assert_eq!(
        r.json()["count"],
        json!({ "value": 1, "exact": true }),
        "{}",
        r.body
    );
}
