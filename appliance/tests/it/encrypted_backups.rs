//! Encrypted backups (`backup.age_recipients_file`): archives in the age
//! format that Debian's `age` opens, restored with `--identity`; files
//! Debian's `age` wrote open here too; a missing or wrong key is refused
//! before anything changes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::app::AppConfig;
use crate::harness::files::{names_in, sha256_hex, wait_for};
use crate::harness::{chmod, open_tempdir};

/// Debian's `age` programs (scripts/test installs them).
fn age(program: &str) -> Command {
    let path = PathBuf::from("/usr/bin").join(program);
    assert!(
        path.is_file(),
        "{} is missing: apt-get install age (scripts/test installs it)",
        path.display()
    );
    Command::new(path)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A key made by `age-keygen` (root's, 0600) and its public key.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    run(age("age-keygen").arg("-o").arg(&key));
    chmod(&key, 0o600);
    let public = run(age("age-keygen").arg("-y").arg(&key))
        .trim()
        .to_string();
    (key, public)
}

fn starts_as_age(path: &Path) -> bool {
    std::fs::read(path)
        .map(|b| b.starts_with(b"age-encryption.org/v1\n"))
        .unwrap_or(false)
}

fn work_files(config: &AppConfig) -> Vec<String> {
    names_in(&config.state_dir().join("backups/work"))
}

#[test]
fn an_encrypted_backup_opens_with_debians_age_and_restores_with_its_key_only() {
    let keys = open_tempdir();
    let (key, public) = keygen(keys.path(), "key.txt");
    let (other_key, _) = keygen(keys.path(), "other.txt");
    let recipients = keys.path().join("recipients.txt");
    std::fs::write(&recipients, format!("# backup key\n{public}\n")).expect("recipients");
    let config = AppConfig::new(&format!(
        "[backup]\nage_recipients_file = \"{}\"\n",
        recipients.display()
    ));
    // Running, as backups usually are taken (audit verify reads it too).
    let mut app = config.spawn();
    app.wait_ready();

    let archive = config.state_dir().join("enc.dump.age");
    let path = archive.to_str().expect("path");
    let written = config.run(&["backup", "--out", path, "--test-restore"]);
    assert_eq!(written.code(), Some(0), "{}", written.all());
    assert!(
        written
            .stdout
            .contains("encrypted with age for 1 recipient"),
        "{}",
        written.stdout
    );
    assert!(starts_as_age(&archive), "the archive is age-encrypted");
    assert_eq!(
        work_files(&config),
        Vec::<String>::new(),
        "no plaintext left"
    );
    let before = crate::backup::audit_entries(&config);

    // Debian's age opens it: a pg_dump archive inside.
    let plain = keys.path().join("plain.dump");
    run(age("age")
        .args(["-d", "-i"])
        .arg(&key)
        .arg("-o")
        .arg(&plain)
        .arg(&archive));
    assert!(std::fs::read(&plain).expect("plain").starts_with(b"PGDMP"));
    let listed = Command::new(crate::harness::pg::shared().program("pg_restore"))
        .arg("--list")
        .arg(&plain)
        .output()
        .expect("pg_restore");
    assert!(listed.status.success());

    // A change after the backup.
    assert_eq!(config.run(&["admin", "setup-token"]).code(), Some(0));
    assert_ne!(crate::backup::audit_entries(&config), before);
    app.stop();

    let restore = |from: &Path, key: Option<&Path>| {
        let mut args = vec!["restore", "--from", from.to_str().expect("path")];
        if let Some(key) = key {
            args.extend(["--identity", key.to_str().expect("path")]);
        }
        config.run(&args)
    };
    let missing = restore(&archive, None);
    assert_eq!(missing.code(), Some(1), "{}", missing.all());
    assert!(
        missing.stderr.contains("is encrypted (age)") && missing.stderr.contains("--identity"),
        "{}",
        missing.stderr
    );
    let wrong = restore(&archive, Some(&other_key));
    assert_eq!(wrong.code(), Some(1), "{}", wrong.all());
    assert!(
        wrong.stderr.contains("encrypted for other keys"),
        "{}",
        wrong.stderr
    );
    let not_a_key = restore(&archive, Some(&recipients));
    assert_eq!(not_a_key.code(), Some(1), "{}", not_a_key.all());
    assert!(not_a_key.stderr.contains("line 2"), "{}", not_a_key.stderr);

    // Damaged: refused, nothing left behind.
    let mut bytes = std::fs::read(&archive).expect("archive");
    let at = bytes.len() - 10;
    bytes[at] ^= 0x55;
    let damaged = keys.path().join("damaged.age");
    std::fs::write(&damaged, bytes).expect("write");
    chmod(&damaged, 0o644);
    let refused = restore(&damaged, Some(&key));
    assert_eq!(refused.code(), Some(1), "{}", refused.all());
    assert!(
        refused.stderr.contains("damaged or was altered"),
        "{}",
        refused.stderr
    );
    assert_eq!(work_files(&config), Vec::<String>::new());

    // A file Debian's age encrypted opens here (the key is root's 0600
    // file: read before the restore drops to the service user).
    let theirs = keys.path().join("theirs.age");
    run(age("age")
        .args(["-r", &public, "-o"])
        .arg(&theirs)
        .arg(&plain));
    chmod(&theirs, 0o644);
    let restored = restore(&theirs, Some(&key));
    assert_eq!(restored.code(), Some(0), "{}", restored.all());
    assert_eq!(
        work_files(&config),
        Vec::<String>::new(),
        "the decrypted copy is gone"
    );
    let mut app = config.spawn();
    app.wait_ready();
    // The change after the backup is gone.
    assert_eq!(crate::backup::audit_entries(&config), before);
    app.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_backups_are_encrypted_and_never_leave_plaintext() {
    let keys = open_tempdir();
    let (key, public) = keygen(keys.path(), "key.txt");
    let recipients = keys.path().join("recipients.txt");
    std::fs::write(&recipients, format!("{public}\n")).expect("recipients");
    let site = crate::harness::api::Site::start_with(&format!(
        "[backup]\nschedule = \"every 1h\"\nage_recipients_file = \"{}\"\n",
        recipients.display()
    ))
    .await;
    let sql = site.sql().await;
    let (archive, sha): (String, String) = wait_for(
        "the scheduled backup",
        Duration::from_secs(60),
        async || {
            sql.query_opt(
                "SELECT archive, sha256 FROM backups WHERE scheduled_for IS NOT NULL",
                &[],
            )
            .await
            .expect("backups")
            .map(|row| (row.get(0), row.get(1)))
        },
    )
    .await;
    let archive = PathBuf::from(archive);
    assert!(
        archive.to_string_lossy().ends_with(".dump.age"),
        "{}",
        archive.display()
    );
    assert!(starts_as_age(&archive));
    assert_eq!(
        sha256_hex(&archive),
        sha,
        "the recorded digest is the sealed file's"
    );
    let names = names_in(archive.parent().expect("dir"));
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(work_files(&site.config), Vec::<String>::new());
    let plain = keys.path().join("plain.dump");
    run(age("age")
        .args(["-d", "-i"])
        .arg(&key)
        .arg("-o")
        .arg(&plain)
        .arg(&archive));
    assert!(std::fs::read(&plain).expect("plain").starts_with(b"PGDMP"));

    // A drill of the encrypted backup needs its key, and passes with it.
    let refused = site.config.run(&["backup", "drill"]);
    assert_eq!(refused.code(), Some(1), "{}", refused.all());
    assert!(refused.stderr.contains("--identity"), "{}", refused.stderr);
    let drilled = site
        .config
        .run(&["backup", "drill", "--identity", key.to_str().expect("path")]);
    assert_eq!(drilled.code(), Some(0), "{}", drilled.all());
    assert!(
        drilled.stdout.contains(", encrypted") && drilled.stdout.contains("drill passed"),
        "{}",
        drilled.stdout
    );
    assert_eq!(
        work_files(&site.config),
        Vec::<String>::new(),
        "the decrypted copy is gone"
    );
}
