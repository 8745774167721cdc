//! Bad configuration stops start-up with exit 2 (or 5 for missing system
//! components) and a message naming the key, its source and what is expected.

use crate::harness::app::AppConfig;
use crate::harness::chmod;

#[test]
fn unknown_key_in_file_names_key_and_line() {
    let config = AppConfig::new("[tls]\nhostnames = [\"localhost\"]\ncert_fiel = \"/x\"\n");
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(out.stderr.contains("`tls.cert_fiel`"), "{}", out.stderr);
    assert!(out.stderr.contains("unknown key"), "{}", out.stderr);
    // listen, state_dir, [tls], hostnames, cert_fiel: line 5.
    let location = format!("{}:5", config.config_path.display());
    assert!(out.stderr.contains(&location), "{}", out.stderr);
    assert!(
        out.stderr.contains("cert_file"),
        "lists the expected keys: {}",
        out.stderr
    );
}

#[test]
fn unknown_environment_variable_is_named() {
    let config = AppConfig::new("").env("MOGOTHROW77_DATABASE__POOL_SIZ", "3");
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(out.stderr.contains("`database.pool_siz`"), "{}", out.stderr);
}

#[test]
fn bad_port_from_environment_names_the_variable() {
    let config = AppConfig::new("").env("MOGOTHROW77_LISTEN", "0.0.0.0:99999");
    let out = config.run(&["serve"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(out.stderr.contains("`listen`"), "{}", out.stderr);
    assert!(out.stderr.contains("MOGOTHROW77_LISTEN"), "{}", out.stderr);
    assert!(out.stderr.contains("up to 65535"), "{}", out.stderr);
}

#[test]
fn bad_value_type_is_explained() {
    let config = AppConfig::new("[database]\npool_size = \"many\"\n");
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("`database.pool_size`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(":4)"), "names the line: {}", out.stderr);
}

#[test]
fn world_readable_key_file_is_refused() {
    let config = AppConfig::new("");
    let (cert, key) = (config.path("cert.pem"), config.path("key.pem"));
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    std::fs::write(&cert, generated.cert.pem()).expect("write");
    std::fs::write(&key, generated.key_pair.serialize_pem()).expect("write");
    chmod(&key, 0o644);
    let config = config
        .env("MOGOTHROW77_TLS__CERT_FILE", &cert.display().to_string())
        .env("MOGOTHROW77_TLS__KEY_FILE", &key.display().to_string());
    let out = config.run(&["serve"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(out.stderr.contains("`tls.key_file`"), "{}", out.stderr);
    assert!(out.stderr.contains("mode 0644"), "{}", out.stderr);
    assert!(
        out.stderr.contains("chmod 600"),
        "says what to do: {}",
        out.stderr
    );
}

#[test]
fn missing_postgres_binaries_exit_5_with_install_hint() {
    let config = AppConfig::new("");
    let empty = config.path("no-postgres-here");
    std::fs::create_dir(&empty).expect("mkdir");
    let config = config.env(
        "MOGOTHROW77_DATABASE__POSTGRES_BIN_DIR",
        &empty.display().to_string(),
    );
    let out = config.run(&["serve"]);
    assert_eq!(out.code(), Some(5), "{}", out.all());
    assert!(
        out.stderr.contains("apt-get install postgresql"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_config_file_is_a_usage_error() {
    let config = AppConfig::new("");
    let out = std::process::Command::new(crate::harness::app::BIN)
        .args(["--config", "/nonexistent/config.toml", "check"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/config.toml"));
    drop(config);
}

#[test]
fn version_prints_commit_and_schema_level() {
    let out = std::process::Command::new(crate::harness::app::BIN)
        .arg("--version")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(text.contains("commit "), "{text}");
    assert!(text.contains("schema level "), "{text}");
    let sub = std::process::Command::new(crate::harness::app::BIN)
        .arg("version")
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&sub.stdout), format!("{text}"));
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let config = AppConfig::new("").with_mismatched_tls_key();
    let out = config.run(&["serve"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("does not belong to the certificate"),
        "{}",
        out.stderr
    );
}

/// `log.format = "text"` into a pipe (the journal, a file): no colour codes.
#[test]
fn text_logs_carry_no_colour_codes_when_not_at_a_terminal() {
    let config = AppConfig::new("").env("MOGOTHROW77_LOG__FORMAT", "text");
    // Starts the managed cluster for its run: its lines are logged.
    let out = config.run(&["migrate"]);
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(
        out.stderr.contains(" INFO "),
        "text log lines: {}",
        out.stderr
    );
    assert!(!out.all().contains('\u{1b}'), "{:?}", out.all());
}

#[test]
fn a_backup_schedule_or_retention_that_cannot_be_used_is_refused() {
    let config = AppConfig::new("[backup]\nschedule = \"nightly\"\n");
    let out = config.run(&["serve"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(out.stderr.contains("`backup.schedule`"), "{}", out.stderr);
    assert!(out.stderr.contains("daily HH:MM"), "{}", out.stderr);

    let config = AppConfig::new(
        "[backup]\nschedule = \"every 6h\"\nkeep = 0\nkeep_days = 0\nhook = \"/nonexistent/upload\"\n",
    );
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(out.stderr.contains("`backup.keep`"), "{}", out.stderr);
    assert!(out.stderr.contains("`backup.hook`"), "{}", out.stderr);
}

#[test]
fn point_in_time_recovery_needs_the_managed_database_a_schedule_and_sane_numbers() {
    let config = AppConfig::new("[backup]\npitr = true\narchive_timeout_secs = 1\n");
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("`backup.pitr`") && out.stderr.contains("backup.schedule"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("`backup.archive_timeout_secs`"),
        "{}",
        out.stderr
    );

    let config = AppConfig::external(
        "postgres://app@127.0.0.1:1/db",
        "[backup]\nschedule = \"daily 02:30\"\npitr = true\n",
    );
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("`backup.pitr`") && out.stderr.contains("owns it"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_backup_recipients_file_without_usable_keys_is_refused() {
    let config = AppConfig::new("");
    let recipients = config.path("recipients.txt");
    std::fs::write(&recipients, "# keys\nssh-ed25519 AAAAC3Nza ops@example\n").expect("write");
    let config = AppConfig::new(&format!(
        "[backup]\nage_recipients_file = \"{}\"\n",
        recipients.display()
    ));
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("`backup.age_recipients_file`") && out.stderr.contains("line 2"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("SSH keys are not supported"),
        "{}",
        out.stderr
    );
}

#[test]
fn scheduled_drills_of_encrypted_backups_need_a_matching_private_key() {
    let keys = AppConfig::new("");
    let mut public = Vec::new();
    let mut secret = Vec::new();
    for _ in 0..2 {
        let id = mogothrow77::age::Identity::generate().expect("key");
        public.push(id.recipient().to_string());
        secret.push(id.to_secret_string().to_string());
    }
    let recipients = keys.path("recipients.txt");
    std::fs::write(&recipients, format!("{}\n", public[0])).expect("write");
    let config = AppConfig::new(&format!(
        "[backup]\nage_recipients_file = \"{}\"\ndrill_schedule = \"daily 03:00\"\n",
        recipients.display()
    ));
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("`backup.drill_schedule`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("backup.age_identity_file"),
        "{}",
        out.stderr
    );

    // A key that opens nothing the appliance writes.
    let other = keys.path("other-key.txt");
    std::fs::write(&other, format!("{}\n", secret[1])).expect("write");
    chmod(&other, 0o600);
    let config = AppConfig::new(&format!(
        "[backup]\nage_recipients_file = \"{}\"\ndrill_schedule = \"daily 03:00\"\nage_identity_file = \"{}\"\n",
        recipients.display(),
        other.display()
    ));
    let out = config.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(
        out.stderr.contains("`backup.age_identity_file`")
            && out.stderr.contains("none of its keys"),
        "{}",
        out.stderr
    );
}
