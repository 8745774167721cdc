//! Secrets at rest (docs/security.md#secrets-at-rest): webhook secrets,
//! TOTP seeds and the CSRF and cursor keys sealed under the key file's
//! key; rows the previous release wrote sealed again at start;
//! `admin rotate-keys` (staged or not) seals everything under a new key
//! while old CSRF tokens and cursors keep working through the overlap;
//! a host whose file lacks the key in force refuses to start.

use std::path::Path;
use std::time::{Duration, Instant};

use mogothrow77::config::{KeyFile, KeyId};
use mogothrow77::secrets::seal;
use serde_json::json;

use crate::harness::api::{assert_error, ApiClient, Site};
use crate::harness::app::{new_key_file, AppConfig};
use crate::harness::pg::shared;

/// Every sealed column with its clear twin and place, as (place, clear, sealed).
async fn sealed_values(
    db: &tokio_postgres::Client,
) -> Vec<(String, Option<Vec<u8>>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for (table, key, columns) in [
        (
            "webhooks",
            "id",
            [
                ("secret", "convert_to(secret, 'UTF8')", "secret_sealed"),
                (
                    "previous_secret",
                    "convert_to(previous_secret, 'UTF8')",
                    "previous_secret_sealed",
                ),
            ],
        ),
        (
            "users",
            "id",
            [
                ("totp_secret", "totp_secret", "totp_secret_sealed"),
                (
                    "totp_pending_secret",
                    "totp_pending_secret",
                    "totp_pending_secret_sealed",
                ),
            ],
        ),
        (
            "server_keys",
            "name",
            [
                ("key", "key", "key_sealed"),
                ("previous_key", "previous_key", "previous_key_sealed"),
            ],
        ),
    ] {
        for (name, clear, sealed) in columns {
            for row in db
                .query(
                    &format!("SELECT {key}::text, {clear}, {sealed} FROM {table}"),
                    &[],
                )
                .await
                .expect("read")
            {
                let id: String = row.get(0);
                out.push((format!("{table}.{name}:{id}"), row.get(1), row.get(2)));
            }
        }
    }
    out
}

/// Asserts every secret value is sealed under `key_id`, opens to its
/// clear twin with the file's key, and holds no clear bytes; returns how
/// many are sealed.
async fn assert_all_sealed(db: &tokio_postgres::Client, file: &Path, key_id: &str) -> usize {
    let keys = KeyFile::read(file).expect("key file");
    let kek = keys
        .get(&KeyId::parse(key_id).expect("id"))
        .expect("the key in force is in the file")
        .clone();
    let mut sealed_count = 0;
    for (place, clear, sealed) in sealed_values(db).await {
        match (clear, sealed) {
            (None, None) => {}
            (Some(clear), Some(sealed)) => {
                assert_eq!(
                    seal::key_id(&sealed).as_ref().map(KeyId::as_str),
                    Some(key_id),
                    "{place}"
                );
                assert!(
                    !sealed
                        .windows(clear.len().min(8))
                        .any(|w| clear.starts_with(w)),
                    "{place}: clear bytes in the sealed value"
                );
                assert_eq!(
                    seal::open(&kek, &place, &sealed).as_ref(),
                    Ok(&clear),
                    "{place}"
                );
                // Bound to its place: it does not open as another row's.
                assert!(seal::open(&kek, &format!("{place}0"), &sealed).is_err());
                sealed_count += 1;
            }
            (clear, sealed) => panic!(
                "{place}: clear {} but sealed {}",
                clear.is_some(),
                sealed.is_some()
            ),
        }
    }
    sealed_count
}

async fn in_force(db: &tokio_postgres::Client) -> String {
    db.query_one("SELECT key_id FROM secrets_key", &[])
        .await
        .expect("secrets_key")
        .get(0)
}

fn restart(site: &mut Site) {
    site.app.stop();
    site.app = site.config.spawn();
    site.addr = site.app.wait_ready();
    site.admin.addr = site.addr;
}

/// A site on the shared cluster with a key file of its own.
async fn site_with_own_key_file() -> (Site, std::path::PathBuf) {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let file = config.path("keys").join("secrets.key");
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    crate::harness::give_to_service_user(file.parent().expect("dir"));
    new_key_file(&file);
    let config = config.env("MOGOTHROW77_SECRETS__KEY_FILE", &file.display().to_string());
    (Site::set_up(config, db).await, file)
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_sealed_resealed_at_start_and_rotated_without_breaking_sessions() {
    let (mut site, file) = site_with_own_key_file().await;
    let db = site.sql().await;
    let first_key = in_force(&db).await;
    assert_eq!(
        KeyFile::read(&file).expect("file").newest().id.as_str(),
        first_key
    );

    // A webhook (its secret), a TOTP enrolment (the pending seed), the
    // server keys: all sealed under the key in force.
    let r = site
        .admin
        .post(
            "/api/v1/webhooks",
            json!({ "url": "https://hooks.example/in", "events": ["record.created"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let webhook = r.json()["id"].as_i64().expect("id");
    let r = site
        .admin
        .post(
            &format!("/api/v1/webhooks/{webhook}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, editor) = site.user("erin", "editor").await;
    let r = editor.post("/api/v1/me/mfa/totp", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // webhook secret + previous, TOTP pending seed, csrf and cursor keys.
    assert_eq!(assert_all_sealed(&db, &file, &first_key).await, 5);

    // What the previous release does on this schema (it writes only the
    // clear columns): a changed secret, a row with no sealed twin, a
    // cleared seed. The next start seals them again.
    db.batch_execute(&format!(
        "UPDATE webhooks SET secret = 'whsec_written_by_the_previous_release' WHERE id = {webhook};
         UPDATE users SET totp_pending_secret = NULL WHERE username = 'erin';
         UPDATE server_keys SET key_sealed = NULL WHERE name = 'cursor';"
    ))
    .await
    .expect("previous release's writes");
    let d = site.config.run(&["diagnose"]);
    assert!(
        d.stdout.contains("secret value(s) not sealed yet"),
        "{}",
        d.stdout
    );
    restart(&mut site);
    assert_eq!(assert_all_sealed(&db, &file, &first_key).await, 4);
    let d = site.config.run(&["diagnose"]);
    let line = d
        .stdout
        .lines()
        .find(|l| l.contains("secrets at rest"))
        .expect("the check")
        .to_string();
    assert!(line.contains("PASS") || line.contains("pass"), "{line}");
    assert!(line.contains(&format!("4 under {first_key}")), "{line}");

    // A session's CSRF token and a cursor made before the rotation.
    let before = ApiClient::login(
        site.addr,
        crate::harness::api::ADMIN,
        crate::harness::api::PASSWORD,
    )
    .await;
    let page = before.get("/api/v1/audit?limit=1").await.json();
    let cursor = page["next_cursor"].as_str().expect("cursor").to_string();

    // Staged first (replicas with their own copy), then rotated.
    let staged = site.config.run(&["admin", "rotate-keys", "--stage"]);
    assert_eq!(staged.code(), Some(0), "{}", staged.all());
    let keys = KeyFile::read(&file).expect("file");
    assert_eq!(keys.keys.len(), 2);
    let staged_key = keys.newest().id.as_str().to_string();
    assert_eq!(in_force(&db).await, first_key, "a staged key seals nothing");
    let rotated = site
        .config
        .run(&["admin", "rotate-keys", "--overlap-hours", "2"]);
    assert_eq!(rotated.code(), Some(0), "{}", rotated.all());
    assert!(
        rotated
            .stdout
            .contains(&format!("{first_key} → {staged_key}")),
        "{}",
        rotated.stdout
    );
    assert_eq!(in_force(&db).await, staged_key);
    assert_eq!(
        KeyFile::read(&file).expect("file").keys.len(),
        2,
        "nothing added: the staged key was used"
    );
    // Four values, plus the previous CSRF and cursor keys now kept.
    assert_eq!(assert_all_sealed(&db, &file, &staged_key).await, 6);
    let audit: serde_json::Value = serde_json::from_str(
        db.query_one(
            "SELECT details FROM audit_log WHERE action = 'secrets.rotate'",
            &[],
        )
        .await
        .expect("audited")
        .get::<_, &str>(0),
    )
    .expect("details");
    assert_eq!(audit["key_id"]["to"], staged_key.as_str());
    assert_eq!(audit["staged_before"], true);
    assert_eq!(audit["overlap_hours"], 2);
    assert!(db
        .query_one(
            "SELECT 1 FROM audit_log WHERE action = 'secrets.key_stage'",
            &[]
        )
        .await
        .is_ok());

    // The running server: the old token and cursor still work; the new
    // keys sign once active (made so now), read within 30 s, and the old
    // ones still verify through the overlap.
    let csrf_before = before.csrf.clone().expect("csrf");
    let r = before
        .post("/api/v1/auth/logout-everywhere", json!({}))
        .await;
    assert!(r.status < 300, "old CSRF token accepted: {}", r.body);
    let before = ApiClient::login(
        site.addr,
        crate::harness::api::ADMIN,
        crate::harness::api::PASSWORD,
    )
    .await;
    let old_token = before.csrf.clone().expect("csrf");
    assert_eq!(
        before
            .get(&format!("/api/v1/audit?limit=1&cursor={cursor}"))
            .await
            .status,
        200
    );
    db.execute("UPDATE server_keys SET active_from = now()", &[])
        .await
        .expect("activate");
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let now = before.get("/api/v1/me").await.json()["csrf_token"]
            .as_str()
            .expect("csrf")
            .to_string();
        if now != old_token {
            break;
        }
        assert!(Instant::now() < deadline, "the new CSRF key never signed");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_ne!(csrf_before, old_token);
    let r = before
        .post(
            "/api/v1/webhooks",
            json!({ "url": "https://hooks.example/2", "events": ["record.created"] }),
        )
        .await;
    assert_eq!(
        r.status, 201,
        "the old token verifies through the overlap: {}",
        r.body
    );
    assert_eq!(
        before
            .get(&format!("/api/v1/audit?limit=1&cursor={cursor}"))
            .await
            .status,
        200
    );
    // The overlap over: the old token and cursor are refused.
    db.execute("UPDATE server_keys SET previous_until = now()", &[])
        .await
        .expect("end overlap");
    restart(&mut site);
    let mut stale = before.clone();
    stale.addr = site.addr;
    assert_error(
        &stale
            .post(
                "/api/v1/webhooks",
                json!({ "url": "https://hooks.example/3", "events": ["record.created"] }),
            )
            .await,
        403,
        "csrf_failed",
    );
    assert_error(
        &stale
            .get(&format!("/api/v1/audit?limit=1&cursor={cursor}"))
            .await,
        400,
        "invalid_cursor",
    );

    // A rotation with no staged key adds one.
    let again = site.config.run(&["admin", "rotate-keys"]);
    assert_eq!(again.code(), Some(0), "{}", again.all());
    let keys = KeyFile::read(&file).expect("file");
    assert_eq!(keys.keys.len(), 3);
    let third = keys.newest().id.as_str().to_string();
    assert_eq!(in_force(&db).await, third);
    assert_all_sealed(&db, &file, &third).await;
    site.app.stop();

    // A host whose copy lacks the key in force refuses to start (exit 2),
    // and says what to copy; diagnose fails its check.
    let old_copy = site.config.path("old-copy.key");
    std::fs::write(
        &old_copy,
        KeyFile {
            keys: keys.keys[1..].to_vec(),
        }
        .render(),
    )
    .expect("write");
    crate::harness::chmod(&old_copy, 0o600);
    crate::harness::give_to_service_user(&old_copy);
    let key_file_env = |path: &Path| {
        (
            "MOGOTHROW77_SECRETS__KEY_FILE".to_string(),
            path.display().to_string(),
        )
    };
    site.config.env.push(key_file_env(&old_copy));
    let out = site.config.run(&["serve"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.all().contains(&format!("lacks key {third}")),
        "{}",
        out.all()
    );
    let d = site.config.run(&["diagnose"]);
    assert!(
        d.stdout.contains(&format!("lacks key {third}")),
        "{}",
        d.stdout
    );
    site.config.env.pop();

    // A lost key file: a new one, then rotate-keys seals everything again
    // from the clear copies, and the server starts.
    let lost = site.config.path("keys").join("new.key");
    new_key_file(&lost);
    site.config.env.push(key_file_env(&lost));
    let out = site.config.run(&["admin", "rotate-keys"]);
    assert_eq!(out.code(), Some(0), "{}", out.all());
    let new_id = KeyFile::read(&lost)
        .expect("file")
        .newest()
        .id
        .as_str()
        .to_string();
    assert_eq!(in_force(&db).await, new_id);
    assert_all_sealed(&db, &lost, &new_id).await;
    site.app = site.config.spawn();
    site.app.wait_ready();
}

#[test]
fn an_external_database_needs_a_readable_key_file() {
    let mut config = AppConfig::new("[database]\nurl = \"host=/nonexistent user=x dbname=x\"\n");
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(out.stderr.contains("`secrets.key_file`"), "{}", out.stderr);
    assert!(out.stderr.contains("key-file new"), "{}", out.stderr);

    let file = config.path("secrets.key");
    new_key_file(&file);
    // Made once, never overwritten.
    let again = config.run(&["key-file", "new", &file.display().to_string()]);
    assert_eq!(again.code(), Some(2), "{}", again.all());
    crate::harness::chmod(&file, 0o644);
    config.env.push((
        "MOGOTHROW77_SECRETS__KEY_FILE".to_string(),
        file.display().to_string(),
    ));
    let open = config.run(&["check"]);
    assert_eq!(open.code(), Some(2), "{}", open.all());
    assert!(
        open.stderr.contains("`secrets.key_file`"),
        "{}",
        open.stderr
    );
    assert!(open.stderr.contains("mode 0644"), "{}", open.stderr);
    let key = std::fs::read_to_string(&file).expect("read");
    let key_b64 = key
        .lines()
        .last()
        .and_then(|l| l.split(' ').nth(1))
        .expect("key");
    std::fs::write(&file, "# nothing\nnot-hex AAAA\n").expect("write");
    crate::harness::chmod(&file, 0o600);
    let bad = config.run(&["check"]);
    assert_eq!(bad.code(), Some(2), "{}", bad.all());
    assert!(bad.stderr.contains("line 2"), "{}", bad.stderr);
    assert!(!bad.all().contains(key_b64));
}
