//! E-mail notifications through a test relay (`harness/smtp.rs`): a
//! stored export that becomes ready is mailed to its requester over
//! STARTTLS with AUTH PLAIN, retried after a 451; people without an
//! address get nothing; SMTP settings that would leak the password are a
//! configuration error.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::api::{assert_error, ApiClient, Site, PASSWORD};
use crate::harness::app::AppConfig;
use crate::harness::open_tempdir;
use crate::harness::smtp::Relay;

async fn export_ready(client: &ApiClient) -> i64 {
    let r = client
        .post("/api/v1/collections/notes/exports", json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_i64().expect("id");
    let started = Instant::now();
    loop {
        let e = client.get(&format!("/api/v1/exports/{id}")).await.json();
        if e["state"] == "ready" {
            return id;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ready_export_is_mailed_to_its_requester_over_starttls_and_retried() {
    let relay = Relay::start(1).await;
    let dir = open_tempdir();
    let site = Site::start_with(&relay.settings(
        dir.path(),
        "username = \"mailer\"\npassword = \"s3cret pass\"\n",
    ))
    .await;
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "notes", "fields": [{ "name": "title", "type": "text" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for t in ["one", "two", "three"] {
        let r = site
            .admin
            .post(
                "/api/v1/collections/notes/records",
                json!({ "data": { "title": t } }),
            )
            .await;
        assert_eq!(r.status, 201);
    }

    // Addresses are checked; admins set them.
    for bad in [
        "not an address",
        "a@b\r\nRCPT TO:<x@y>",
        "<eddie@example.com>",
    ] {
        let r = site
            .admin
            .post(
                "/api/v1/users",
                json!({ "username": "eddie", "role": "editor", "password": PASSWORD, "email": bad }),
            )
            .await;
        assert_error(&r, 422, "validation_failed");
        assert!(r.body.contains("email"), "{}", r.body);
    }
    let r = site
        .admin
        .post(
            "/api/v1/users",
            json!({ "username": "eddie", "role": "editor", "password": PASSWORD, "email": " eddie@example.com " }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["email"], "eddie@example.com");
    let eddie = ApiClient::login(site.addr, "eddie", PASSWORD).await;

    let id = export_ready(&eddie).await;
    let started = Instant::now();
    while relay.mails().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "no mail after 45 s ({} RCPT seen)",
            relay.rcpt_seen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mail = relay.mails()[0].clone();
    assert!(mail.tls, "STARTTLS before anything else");
    assert_eq!(mail.auth.as_deref(), Some("mailer:s3cret pass"));
    assert_eq!(mail.from, "records@example.com");
    assert_eq!(mail.to, vec!["eddie@example.com".to_string()]);
    assert_eq!(
        mail.header("Subject"),
        Some("Your export of notes is ready")
    );
    assert_eq!(mail.header("To"), Some("<eddie@example.com>"));
    let text = mail.text();
    assert!(text.contains(&format!("#{id}")), "{text}");
    assert!(text.contains("3 rows"), "{text}");
    assert!(
        text.contains(&format!(
            "https://localhost:{}/exports?started={id}",
            site.addr.port()
        )),
        "{text}"
    );
    // The first attempt met a 451 and was retried.
    assert_eq!(relay.rcpt_seen(), 2);
    let jobs = site.admin.get("/api/v1/jobs?limit=50").await.json();
    let email_job = jobs["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|j| j["kind"] == "email")
        .expect("an email job")
        .clone();
    assert_eq!(email_job["state"], "succeeded", "{email_job}");
    let job = site
        .admin
        .get(&format!("/api/v1/jobs/{}", email_job["id"]))
        .await
        .json();
    let log = job["attempts_log"].as_array().expect("attempts");
    assert_eq!(log.len(), 2, "{job}");
    assert!(
        log[0]["error"].as_str().unwrap_or("").contains("451"),
        "{job}"
    );
    // The password appears nowhere the API or the log shows.
    assert!(!job.to_string().contains("s3cret"));
    assert!(
        !site.app.output().contains("s3cret"),
        "the server log holds the password"
    );

    // Nobody is mailed without an address (the admin has none); clearing
    // an address stops the mails.
    export_ready(&site.admin).await;
    let r = site
        .admin
        .patch(
            &format!("/api/v1/users/{}", r.json()["id"]),
            json!({ "email": null }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["email"].is_null());
    export_ready(&eddie).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(relay.mails().len(), 1);
    let jobs = site.admin.get("/api/v1/jobs?limit=50").await.json();
    let emails = jobs["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|j| j["kind"] == "email")
        .count();
    assert_eq!(emails, 1);
}

#[test]
fn smtp_settings_that_would_send_the_password_in_clear_are_refused() {
    for (toml, key, needle) in [
        (
            "[smtp]\nhost = \"relay.example\"\nsecurity = \"none\"\nusername = \"u\"\npassword = \"p\"\n",
            "`smtp.security`",
            "in clear",
        ),
        (
            "[smtp]\nhost = \"relay.example\"\nusername = \"u\"\n",
            "`smtp.password`",
            "missing",
        ),
        (
            "[smtp]\nhost = \"relay.example\"\nsecurity = \"ssl\"\n",
            "`smtp.security`",
            "starttls, tls, none",
        ),
        (
            "[smtp]\nhost = \"relay.example\"\nfrom = \"nobody\"\n",
            "`smtp.from`",
            "not an e-mail address",
        ),
    ] {
        let config = AppConfig::new(toml);
        let out = config.run(&["check"]);
        assert_eq!(out.code(), Some(2), "{toml}: {}", out.all());
        assert!(out.stderr.contains(key), "{toml}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{toml}: {}", out.stderr);
        assert!(!out.all().contains("password = \"p\""), "{}", out.all());
    }
}
