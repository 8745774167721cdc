//! Secrets never appear in logs, `check` output or error messages.

use crate::harness::app::AppConfig;
use crate::harness::client;
use crate::harness::pg::shared;
use crate::harness::{chmod, give_to_service_user};

const SECRET: &str = "Sup3r-s3cret-Passw0rd";
const FILE_SECRET: &str = "an0ther-s3cret-from-a-file";

#[tokio::test(flavor = "multi_thread")]
async fn secrets_stay_out_of_logs_and_check_output() {
    let db = shared().create_database().await;
    // Trust authentication ignores the password, so the secret is in the
    // configuration without breaking the connection.
    let url = format!("{} password={SECRET}", shared().dsn(&db));
    let config = AppConfig::external(&url, "");
    let secret_file = config.path("migration-url");
    std::fs::write(
        &secret_file,
        format!("{} password={FILE_SECRET}\n", shared().dsn(&db)),
    )
    .expect("write");
    chmod(&secret_file, 0o600);
    give_to_service_user(&secret_file);
    let config = config
        .env(
            "MOGOTHROW77_DATABASE__MIGRATION_URL_FILE",
            &secret_file.display().to_string(),
        )
        .env("MOGOTHROW77_LOG__LEVEL", "trace");

    // A password inline in a config file others can read is refused.
    let refused = config.run(&["check"]);
    assert_eq!(refused.code(), Some(2), "{}", refused.all());
    assert!(
        refused.stderr.contains("`database.url`"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("database.url_file"),
        "{}",
        refused.stderr
    );
    assert!(!refused.all().contains(SECRET), "{}", refused.all());
    chmod(&config.config_path, 0o600);

    let check = config.run(&["check"]);
    assert_eq!(check.code(), Some(0), "{}", check.all());
    assert!(check.stdout.contains("<redacted>"), "{}", check.stdout);
    assert!(
        check.stdout.contains("migration_url_file"),
        "{}",
        check.stdout
    );
    assert!(!check.all().contains(SECRET), "{}", check.all());
    assert!(!check.all().contains(FILE_SECRET), "{}", check.all());

    let migrate = config.run(&["migrate"]);
    assert_eq!(migrate.code(), Some(0), "{}", migrate.all());
    assert!(!migrate.all().contains(SECRET) && !migrate.all().contains(FILE_SECRET));

    let mut app = config.spawn();
    let addr = app.wait_ready();
    for path in ["/readyz", "/metrics", "/healthz", "/missing"] {
        client::get(addr, path).await.expect("request");
    }
    assert!(app.stop().success());
    let logs = app.output();
    assert!(
        logs.contains("\"message\":\"ready\""),
        "trace logs captured: {logs}"
    );
    assert!(!logs.contains(SECRET), "secret leaked into logs");
    assert!(!logs.contains(FILE_SECRET), "file secret leaked into logs");
}

#[test]
fn invalid_secret_url_error_does_not_echo_it() {
    let config = AppConfig::new(&format!(
        "[database]\nurl = \"postgresql://app:{SECRET}@db.example:notaport/x\"\n"
    ));
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(out.stderr.contains("`database.url`"), "{}", out.stderr);
    assert!(!out.all().contains(SECRET), "{}", out.all());
}

#[test]
fn secret_file_readable_by_others_is_refused() {
    let config = AppConfig::new("");
    let secret_file = config.path("url");
    std::fs::write(&secret_file, "host=/tmp user=x\n").expect("write");
    chmod(&secret_file, 0o644);
    let config = config.env(
        "MOGOTHROW77_DATABASE__URL_FILE",
        &secret_file.display().to_string(),
    );
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(out.stderr.contains("`database.url_file`"), "{}", out.stderr);
    assert!(out.stderr.contains("mode 0644"), "{}", out.stderr);
}
