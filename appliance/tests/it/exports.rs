//! CSV exports streamed in the response: the file parses back (with a
//! reader written here, not the server's encoder) to what PostgreSQL's own
//! `COPY … TO STDOUT (FORMAT csv)` gives for the same filter and sort, apart
//! from the documented neutralisation of formulas; permissions and audit.

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::harness::api::{assert_error, encode, ApiClient, Site};

type Table = Vec<Vec<Option<String>>>;

/// RFC 4180 reader: records end with `record_end`; a field is `None` when
/// empty and unquoted (a missing value), else its text.
fn parse_csv(text: &str, record_end: &str) -> Table {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut i = 0;
            let bytes = quoted.as_bytes();
            loop {
                assert!(i < bytes.len(), "unterminated quoted field in {text:?}");
                if bytes[i] == b'"' {
                    if bytes.get(i + 1) == Some(&b'"') {
                        out.push('"');
                        i += 2;
                        continue;
                    }
                    break;
                }
                let ch = quoted[i..].chars().next().expect("char");
                out.push(ch);
                i += ch.len_utf8();
            }
            value = Some(out);
            rest = &quoted[i + 1..];
        } else {
            let end = rest.find([',', '\r', '\n']).unwrap_or(rest.len());
            let raw = &rest[..end];
            assert!(!raw.contains('"'), "a quote in an unquoted field: {raw:?}");
            value = (!raw.is_empty()).then(|| raw.to_string());
            rest = &rest[end..];
        }
        record.push(value);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if let Some(after) = rest.strip_prefix(record_end) {
            records.push(std::mem::take(&mut record));
            rest = after;
        } else {
            assert!(
                rest.is_empty(),
                "expected ',' or {record_end:?} at {:?}",
                &rest[..rest.len().min(20)]
            );
            records.push(std::mem::take(&mut record));
        }
    }
    records
}

/// The documented neutralisation, applied to PostgreSQL's values.
fn neutralised(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|v| {
        if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{v}")
        } else {
            v.clone()
        }
    })
}

async fn inventory(site: &Site) -> Vec<Value> {
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "inv", "fields": [
                { "name": "name", "type": "text" },
                { "name": "qty", "type": "integer" },
                { "name": "price", "type": "decimal" },
                { "name": "ok", "type": "boolean" },
                { "name": "day", "type": "date" },
                { "name": "at", "type": "timestamp" },
                { "name": "kind", "type": "enum", "enum_values": ["a", "=b"] },
                { "name": "meta", "type": "json" }
            ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let rows = [
        json!({ "name": "plain", "qty": 1, "price": "1.50", "ok": true, "day": "2026-11-27",
                "at": "2026-11-27T10:00:00.5+01:00", "kind": "a", "meta": { "k": "v, \"q\"" } }),
        json!({ "name": "comma, here", "qty": -5, "price": "-0.001", "ok": false }),
        json!({ "name": "quote \"inside\"", "qty": 0, "kind": "=b" }),
        json!({ "name": "multi\nline\r\nwith crlf", "meta": "=not a formula in json" }),
        json!({ "name": "ünïcödé 😀 ✓", "qty": 7 }),
        json!({ "name": "", "meta": [1, "two", null] }),
        json!({ "name": "=SUM(A1:A2)", "qty": -1 }),
        json!({ "name": "+1" }),
        json!({ "name": "-2", "qty": 1 }),
        json!({ "name": "@cmd" }),
        json!({ "name": "\tTAB", "qty": -3 }),
        json!({ "name": "\rCR" }),
        json!({ "qty": 0 }),
    ];
    let mut out = Vec::new();
    for data in rows {
        let r = site
            .admin
            .post("/api/v1/collections/inv/records", json!({ "data": data }))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        out.push(r.json());
    }
    out
}

/// `COPY` of the same rows: the filter and sort written by hand in SQL.
async fn copy_reference(site: &Site) -> Table {
    let sql = site.sql().await;
    let columns: Vec<(String, i64)> = sql
        .query(
            "SELECT f.name, f.id FROM collection_fields f JOIN collections c ON c.id = f.collection_id \
             WHERE c.name = 'inv' ORDER BY f.position, f.id",
            &[],
        )
        .await
        .expect("fields")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let table_id: i64 = sql
        .query_one("SELECT id FROM collections WHERE name = 'inv'", &[])
        .await
        .expect("collection")
        .get(0);
    let col = |name: &str| {
        let id = columns.iter().find(|(n, _)| n == name).expect("field").1;
        format!("\"f_{id}\"")
    };
    let select: Vec<String> = std::iter::once("id::text AS id".to_string())
        .chain(
            columns
                .iter()
                .map(|(name, id)| format!("\"f_{id}\"::text AS \"{name}\"")),
        )
        .collect();
    sql.batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
        .await
        .expect("session");
    let copy = format!(
        "COPY (SELECT {} FROM records.\"c_{table_id}\" t WHERE {qty} <= 1 OR {qty} IS NULL \
         ORDER BY t.{qty} DESC NULLS LAST, t.id) TO STDOUT (FORMAT csv, HEADER)",
        select.join(", "),
        qty = col("qty"),
    );
    let stream = sql.copy_out(&copy).await.expect("copy");
    futures_util::pin_mut!(stream);
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("copy data"));
    }
    parse_csv(&String::from_utf8(bytes).expect("utf-8"), "\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_export_is_copy_of_the_same_rows_with_formulas_neutralised() {
    let site = Site::start().await;
    inventory(&site).await;
    let filter = json!({ "or": [
        { "field": "qty", "op": "lte", "value": 1 },
        { "field": "qty", "op": "is_null", "value": true }
    ] })
    .to_string();
    let path = format!(
        "/api/v1/collections/inv/export.csv?sort=-qty&filter={}",
        encode(&filter)
    );
    let r = site.admin.get(&path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("text/csv; charset=utf-8; header=present")
    );
    let disposition = r.header("content-disposition").unwrap_or("");
    assert!(
        disposition.starts_with("attachment; filename=\"inv-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    // RFC 4180 record ends; a bare LF only inside a quoted value.
    assert!(r.body.ends_with("\r\n"), "{:?}", r.body);
    let ours = parse_csv(&r.body, "\r\n");
    let reference = copy_reference(&site).await;
    assert_eq!(ours[0], reference[0], "header");
    assert_eq!(
        reference[0].iter().flatten().cloned().collect::<Vec<_>>(),
        ["id", "name", "qty", "price", "ok", "day", "at", "kind", "meta"]
    );
    assert_eq!(ours.len(), reference.len());
    assert_eq!(ours.len(), 1 + 12, "every record but the one with qty 7");
    // Text, enum and json columns (1, 7, 8) are neutralised; numbers,
    // booleans, dates and times are not (a minus there is a sign).
    let text_columns = [1, 7, 8];
    for (got, copy) in ours.iter().zip(&reference).skip(1) {
        let expected: Vec<Option<String>> = copy
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if text_columns.contains(&i) {
                    neutralised(v)
                } else {
                    v.clone()
                }
            })
            .collect();
        assert_eq!(got, &expected, "\nours: {ours:?}\ncopy: {reference:?}");
    }
    // Spot checks of what the file holds.
    let by_name = |name: &str| {
        ours.iter()
            .find(|r| r[1].as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{name:?} not exported: {ours:?}"))
            .clone()
    };
    assert_eq!(by_name("'=SUM(A1:A2)")[2].as_deref(), Some("-1"));
    assert_eq!(by_name("comma, here")[3].as_deref(), Some("-0.001"));
    assert_eq!(by_name("comma, here")[4].as_deref(), Some("false"));
    let plain = by_name("plain");
    assert_eq!(plain[5].as_deref(), Some("2026-11-27"));
    assert_eq!(plain[6].as_deref(), Some("2026-11-27 09:00:00.5+00"));
    assert_eq!(plain[8].as_deref(), Some(r#"{"k": "v, \"q\""}"#));
    assert!(ours
        .iter()
        .any(|r| r[1].as_deref() == Some("multi\nline\r\nwith crlf")));
    assert!(ours.iter().any(|r| r[1].as_deref() == Some("'\tTAB")));
    assert!(ours.iter().any(|r| r[1].as_deref() == Some("'\rCR")));
    assert!(
        ours.iter().any(|r| r[1].as_deref() == Some("")),
        "empty text"
    );
    assert!(ours.iter().any(|r| r[1].is_none()), "missing text");
    assert_eq!(
        ours.iter()
            .filter(|r| r[7].as_deref() == Some("'=b"))
            .count(),
        1
    );

    // formulas=keep: exactly COPY's values.
    let r = site.admin.get(&format!("{path}&formulas=keep")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(parse_csv(&r.body, "\r\n"), reference);

    // Field selection, and the whole collection without a filter.
    let r = site
        .admin
        .get("/api/v1/collections/inv/export.csv?fields=qty,name")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let all = parse_csv(&r.body, "\r\n");
    assert_eq!(all.len(), 1 + 13);
    assert_eq!(
        all[0],
        vec![Some("id".into()), Some("qty".into()), Some("name".into())]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_need_the_export_permission_are_audited_and_refuse_bad_requests() {
    let site = Site::start().await;
    let records = inventory(&site).await;
    let (_, viewer) = site.user("vic", "viewer").await;
    let (_, editor) = site.user("eddie", "editor").await;
    let path = "/api/v1/collections/inv/export.csv";
    assert_error(&viewer.get(path).await, 403, "forbidden");
    assert_error(
        &ApiClient::anonymous(site.addr).get(path).await,
        401,
        "unauthenticated",
    );
    let r = editor
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "read only", "permissions": ["records:read"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let reader = ApiClient::with_token(site.addr, r.json()["token"].as_str().expect("token"));
    assert_error(&reader.get(path).await, 403, "forbidden");

    let filter = r#"{"field":"qty","op":"gte","value":0}"#;
    let r = editor
        .get(&format!("{path}?filter={}&fields=name", encode(filter)))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = parse_csv(&r.body, "\r\n").len() - 1;
    let expected = records
        .iter()
        .filter(|r| r["data"]["qty"].as_i64().is_some_and(|q| q >= 0))
        .count();
    assert_eq!(rows, expected);

    // Bad requests are refused before anything streams, as JSON errors.
    assert_error(
        &editor.get(&format!("{path}?filter=%7B")).await,
        400,
        "invalid_filter",
    );
    assert_error(
        &editor.get(&format!("{path}?fields=nope")).await,
        400,
        "invalid_sort",
    );
    assert_error(
        &editor.get(&format!("{path}?fields=name,name")).await,
        400,
        "invalid_sort",
    );
    assert_error(
        &editor.get(&format!("{path}?formulas=maybe")).await,
        422,
        "validation_failed",
    );
    assert_error(
        &editor.get(&format!("{path}?limit=5")).await,
        400,
        "invalid_request",
    );
    assert_error(
        &editor.get("/api/v1/collections/nope/export.csv").await,
        404,
        "not_found",
    );

    // Who exported what, with the exact filter, and how many rows.
    let started = site
        .admin
        .get("/api/v1/audit?action=record.export")
        .await
        .json();
    let entry = &started["items"][0];
    assert_eq!(entry["actor"], "eddie", "{started}");
    assert_eq!(entry["details"]["filter"], filter);
    assert_eq!(entry["details"]["fields"], json!(["name"]));
    let mut done = json!(null);
    for _ in 0..100 {
        done = site
            .admin
            .get("/api/v1/audit?action=record.export.done")
            .await
            .json();
        if done["items"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let entry = &done["items"][0];
    assert_eq!(entry["details"]["rows"], json!(expected), "{done}");
    assert_eq!(entry["details"]["complete"], json!(true));
    assert_eq!(entry["outcome"], "success");
}
