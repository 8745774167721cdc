//! Generative: the API's JSON bodies and the filter parameter, mutated
//! from valid requests, against a real server. Every answer is below 500,
//! and every refusal is the one error shape with a stable code and a
//! message (GENERATIVE_CASES / 10 requests per operation).

use serde_json::json;

use crate::harness::api::{encode, ApiClient, Site};

const DICTIONARY: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"9223372036854775808",
    b"\\u0000",
    b"\\ud800",
    b"\"op\"",
    b"\"data\"",
    b"\"id\"",
    b"\"version\"",
    b"\"create\"",
    b"\"update\"",
    b"\"delete\"",
    b"\"field\"",
    b"\"value\"",
    b"\"events\"",
    b"\"role\"",
    b"\"admin\"",
    b"\"2026-02-30\"",
    b"\"\xc3\xa9\"",
];

fn check_answer(what: &str, body: &[u8], r: &crate::harness::client::Response) {
    assert!(
        r.status < 500,
        "{what} with {:?}: {} {}",
        String::from_utf8_lossy(body),
        r.status,
        r.body
    );
    if r.status >= 400 {
        let e = r.json();
        assert!(
            e["code"].as_str().is_some_and(|c| !c.is_empty())
                && e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what} with {:?}: {} {}",
            String::from_utf8_lossy(body),
            r.status,
            r.body
        );
    }
}

/// Sends mutated `corpus` bodies to `method path`; every answer checked.
fn fuzz(client: &ApiClient, method: &'static str, path: &str, corpus: &[&[u8]]) {
    let handle = tokio::runtime::Handle::current();
    let cases = (generative::cases() / 10).max(20);
    generative::run_cases(path, cases, corpus, DICTIONARY, |_, body| {
        let text = String::from_utf8_lossy(body);
        let r = tokio::task::block_in_place(|| {
            handle.block_on(client.call_raw(method, path, Some(&text), &[]))
        });
        check_answer(&format!("{method} {path}"), body, &r);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn generative_request_bodies_never_get_a_server_error() {
    let site = Site::start().await;
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "things", "fields": [
                { "name": "title", "type": "text", "required": true },
                { "name": "n", "type": "integer" },
                { "name": "price", "type": "decimal" },
                { "name": "due", "type": "date" },
                { "name": "at", "type": "timestamp" },
                { "name": "state", "type": "enum", "enum_values": ["a", "b"] },
                { "name": "meta", "type": "json" },
                { "name": "ref", "type": "text", "unique": true }
            ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = site
        .admin
        .post(
            "/api/v1/collections/things/records",
            json!({ "data": { "title": "first", "n": 1 } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_i64().expect("id");
    let admin = &site.admin;

    fuzz(
        admin,
        "POST",
        "/api/v1/collections/things/records",
        &[br#"{"data": {"title": "t", "n": 2, "price": "1.50", "due": "2026-12-08", "at": "2026-12-08T10:00:00Z", "state": "a", "meta": {"k": [1]}, "ref": "r1"}}"#],
    );
    fuzz(
        admin,
        "PATCH",
        &format!("/api/v1/collections/things/records/{id}"),
        &[br#"{"data": {"n": 3, "title": "x"}}"#],
    );
    fuzz(
        admin,
        "POST",
        "/api/v1/collections/things/records/batch",
        &[format!(
            r#"{{"operations": [{{"op": "create", "data": {{"title": "b"}}}}, {{"op": "update", "id": {id}, "version": 1, "data": {{"n": 4}}}}, {{"op": "delete", "id": 999999}}]}}"#
        )
        .as_bytes()],
    );
    fuzz(
        admin,
        "POST",
        "/api/v1/collections",
        &[br#"{"name": "other", "fields": [{"name": "a", "type": "text", "indexed": true}, {"name": "s", "type": "enum", "enum_values": ["x"], "default": "x"}]}"#],
    );
    fuzz(
        admin,
        "POST",
        "/api/v1/webhooks",
        &[br#"{"url": "https://hooks.example/in", "events": ["record.created"], "collection": "things", "description": "d"}"#],
    );
    fuzz(
        admin,
        "POST",
        "/api/v1/users",
        &[br#"{"username": "u1", "role": "viewer", "password": "a long enough passphrase 7", "email": "u1@example.com"}"#],
    );
    fuzz(
        &ApiClient::anonymous(site.addr),
        "POST",
        "/api/v1/auth/login",
        &[br#"{"username": "admin", "password": "wrong", "totp_code": "123456"}"#],
    );

    // The filter parameter, URL-encoded as a client sends it.
    let handle = tokio::runtime::Handle::current();
    let cases = (generative::cases() / 10).max(20);
    generative::run_cases(
        "filter parameter",
        cases,
        &[br#"{"and": [{"field": "n", "op": "in", "value": [1, 2]}, {"not": {"field": "meta", "op": "contains", "value": {"k": [1]}}}, {"field": "title", "op": "prefix", "value": "f"}]}"#],
        DICTIONARY,
        |_, filter| {
            let path = format!(
                "/api/v1/collections/things/records?filter={}&sort=-n",
                encode(&String::from_utf8_lossy(filter))
            );
            let r = tokio::task::block_in_place(|| handle.block_on(admin.get(&path)));
            check_answer("GET records?filter", filter, &r);
        },
    );
}
