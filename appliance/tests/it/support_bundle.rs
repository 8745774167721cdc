//! `mogothrow77 support-bundle`: secrets planted everywhere one can hide —
//! the database password, the SMTP password, the metrics token, a webhook
//! secret, an API token and a session cookie in the logs, a TOTP seed, the
//! TLS private key, a password in a failed configuration line, the setup
//! link — and none of them in the bundle, byte for byte, nor Base64- or
//! URL-encoded. The zip is 0600, never overwritten; `--preview` writes
//! nothing; bad input is a one-line error.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::json;

use crate::harness::api::{setup_token, ApiClient, ADMIN, PASSWORD};
use crate::harness::app::AppConfig;
use crate::harness::pg::shared;
use crate::harness::{chmod, give_to_service_user};

const DB_PASSWORD: &str = "Pl4nted-DB-Passw0rd";
const SMTP_PASSWORD: &str = "Pl4nted-SMTP-Passw0rd";
const METRICS_TOKEN: &str = "Pl4nted-metrics-t0ken";
const WEBHOOK_SECRET: &str = "whsec_UGw0bnRlZC13ZWJob29rLXNlY3JldC0xMjM0NTY3OA==";
const FAILED_LINE_PASSWORD: &str = "Pl4nted-in-a-failed-line";
const TOTP_SEED: &[u8] = b"Pl4nted-TOTP-seed-20";
const EMAIL: &str = "alice.planted@corp.example.com";

fn url_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (String::new(), 0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Every entry of the zip, by name.
fn unpack(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let file = std::fs::File::open(path).expect("open bundle");
    let mut zip = zip::ZipArchive::new(file).expect("a zip");
    (0..zip.len())
        .map(|i| {
            let mut entry = zip.by_index(i).expect("entry");
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read entry");
            (entry.name().expect("entry name").to_string(), bytes)
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bundle_holds_no_planted_secret_in_any_encoding() {
    let db = shared().create_database().await;
    // Trust authentication ignores the password: it only sits in the URL.
    let url = format!("{} password={DB_PASSWORD}", shared().dsn(&db));
    let config = AppConfig::external(
        &url,
        "[smtp]\nhost = \"127.0.0.1\"\nport = 2525\nusername = \"relay\"\n\
         password_file = \"SMTP_FILE\"\n[metrics]\ntoken_file = \"METRICS_FILE\"\n",
    );
    let (smtp_file, metrics_file) = (config.path("smtp-password"), config.path("metrics-token"));
    for (path, value) in [(&smtp_file, SMTP_PASSWORD), (&metrics_file, METRICS_TOKEN)] {
        std::fs::write(path, format!("{value}\n")).expect("write secret");
        chmod(path, 0o600);
        give_to_service_user(path);
    }
    let toml = std::fs::read_to_string(&config.config_path)
        .expect("config")
        .replace("SMTP_FILE", &smtp_file.display().to_string())
        .replace("METRICS_FILE", &metrics_file.display().to_string());
    std::fs::write(&config.config_path, toml).expect("config");
    chmod(&config.config_path, 0o600);
    let port = free_port();
    let config = config.env("MOGOTHROW77_LISTEN", &format!("127.0.0.1:{port}"));

    let mut app = config.spawn();
    let addr = app.wait_ready();
    let setup = setup_token(&mut app);
    let mut admin = ApiClient::anonymous(addr);
    let r = admin
        .post(
            "/api/v1/setup",
            json!({ "token": setup, "username": ADMIN, "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    admin.adopt_session(&r);
    let cookie = admin.cookie.clone().expect("session cookie");
    let r = admin
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "planted", "permissions": ["audit:read"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let api_token = r.json()["token"].as_str().expect("token").to_string();

    let sql = shared().connect(&db).await;
    sql.execute(
        "INSERT INTO webhooks (url, events, secret) VALUES ('https://example.test/', \
         '{record.created}', $1)",
        &[&WEBHOOK_SECRET],
    )
    .await
    .expect("webhook");
    sql.execute(
        "UPDATE users SET totp_secret = $1 WHERE username = $2",
        &[&TOTP_SEED, &ADMIN],
    )
    .await
    .expect("totp seed");
    let tls_key = std::fs::read_to_string(config.state_dir().join("tls/key.pem")).expect("key");
    let key_body: String = tls_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();

    // The server's own log, and lines a careless component might have
    // written: every secret in it, as a site's log file would hold them.
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("now");
    let planted = [
        format!("Authorization: Bearer {api_token}"),
        format!("token {api_token} used"),
        format!("Cookie: __Host-mogothrow77_session={cookie}"),
        format!("session {cookie}"),
        format!("signing with {WEBHOOK_SECRET}"),
        format!("seed {}", base32(TOTP_SEED)),
        format!("key material {tls_key}"),
        format!(
            "mogothrow77: TOML parse error at line 3: url = \"postgres://app:{FAILED_LINE_PASSWORD}@db.example/x"
        ),
        format!("connecting with {url}"),
        format!("smtp auth {SMTP_PASSWORD} b64 {}", STANDARD.encode(SMTP_PASSWORD)),
        format!("scrape with {METRICS_TOKEN}"),
        format!("mail sent to {EMAIL}"),
    ];
    let mut log = app.output();
    for line in &planted {
        log.push_str(&json!({ "timestamp": now, "level": "INFO", "message": line }).to_string());
        log.push('\n');
    }
    let log_file = config.path("server.log");
    std::fs::write(&log_file, &log).expect("log file");

    let out_dir = tempfile::tempdir().expect("out dir");
    let bundle = out_dir.path().join("bundle.zip");
    let bundle_arg = bundle.to_str().expect("path");
    let log_arg = log_file.to_str().expect("path");

    // Preview: every file with its size, nothing written.
    let preview = config.run(&[
        "support-bundle",
        "--output",
        bundle_arg,
        "--log-file",
        log_arg,
        "--preview",
    ]);
    assert_eq!(preview.code(), Some(0), "{}", preview.all());
    for name in [
        "MANIFEST.txt",
        "diagnose.txt",
        "logs/log-file.txt",
        "metrics.txt",
    ] {
        assert!(preview.stdout.contains(name), "{name}: {}", preview.stdout);
    }
    assert!(!bundle.exists(), "--preview wrote the bundle");

    let made = config.run(&[
        "support-bundle",
        "--output",
        bundle_arg,
        "--log-file",
        log_arg,
    ]);
    assert_eq!(made.code(), Some(0), "{}", made.all());
    let mode = std::fs::metadata(&bundle)
        .expect("bundle")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let entries = unpack(&bundle);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "MANIFEST.txt",
        "certificate.txt",
        "configuration.toml",
        "database/connections.tsv",
        "database/jobs.tsv",
        "database/migrations.tsv",
        "database/settings.tsv",
        "diagnose.json",
        "diagnose.txt",
        "logs/log-file.txt",
        "metrics.txt",
        "versions.txt",
    ] {
        assert!(names.contains(&expected), "{expected}: {names:?}");
    }
    assert_eq!(names.len(), 12, "only the allowlist: {names:?}");
    let text = |name: &str| {
        String::from_utf8_lossy(&entries.iter().find(|(n, _)| n == name).expect(name).1)
            .into_owned()
    };
    assert!(
        text("metrics.txt").contains("mogothrow77_http_requests_total"),
        "a real scrape: {}",
        text("metrics.txt")
    );
    assert!(text("database/migrations.tsv").contains("backups"));
    assert!(text("configuration.toml").contains("<redacted>"));
    assert!(text("certificate.txt").contains("SHA-256:"));
    let logs = text("logs/log-file.txt");
    assert!(
        logs.contains("mail sent to <email>") && logs.contains("TOML parse error at line 3"),
        "the lines stay, their secrets go: {logs}"
    );

    let mut secrets: Vec<String> = vec![
        DB_PASSWORD.into(),
        SMTP_PASSWORD.into(),
        METRICS_TOKEN.into(),
        WEBHOOK_SECRET.into(),
        WEBHOOK_SECRET.trim_start_matches("whsec_").into(),
        FAILED_LINE_PASSWORD.into(),
        api_token.clone(),
        api_token.trim_start_matches("m77_").into(),
        cookie.clone(),
        setup.clone(),
        base32(TOTP_SEED),
        key_body.clone(),
        EMAIL.into(),
    ];
    secrets.extend(
        tls_key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_string),
    );
    for secret in &secrets {
        let forms = [
            secret.clone(),
            STANDARD.encode(secret),
            STANDARD_NO_PAD.encode(secret),
            URL_SAFE.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
            url_encoded(secret),
        ];
        for (name, bytes) in &entries {
            for form in &forms {
                assert!(
                    !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                    "{name} holds a planted secret ({form})"
                );
            }
        }
    }

    // Never overwritten; bad input is a one-line error.
    let again = config.run(&["support-bundle", "--output", bundle_arg]);
    assert_eq!(again.code(), Some(2), "{}", again.all());
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    let bad = config.run(&["support-bundle", "--since", "yesterday", "--preview"]);
    assert_eq!(bad.code(), Some(2), "{}", bad.all());
    assert_eq!(bad.stderr.trim().lines().count(), 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("--since"), "{}", bad.stderr);
    let missing = config.run(&[
        "support-bundle",
        "--log-file",
        "/nonexistent/log",
        "--preview",
    ]);
    assert_eq!(missing.code(), Some(2), "{}", missing.all());
    assert!(
        missing.stderr.contains("/nonexistent/log"),
        "{}",
        missing.stderr
    );
    app.stop();
}
