//! `mogothrow77 support-bundle`: one zip of evidence for the vendor, made
//! from an allowlist of files, every one scrubbed of secrets.
//!
//! Two processes: this one, the invoking user's, reads the logs (the
//! journal needs root or the `systemd-journal` group) and writes the zip
//! where that user asked; a child (`support-bundle --collect`, this same
//! binary) drops to the service user as `serve` does, gathers everything
//! else, scrubs it all — the logs it was handed included — and returns the
//! files as JSON. Nothing unscrubbed reaches the zip.

mod collect;
mod logs;
pub mod scrub;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::exit::Exit;

pub use collect::collect;

/// One file of the bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct File {
    pub name: String,
    pub content: String,
}

/// What the command was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub output: Option<PathBuf>,
    pub since: String,
    pub preview: bool,
    pub log_file: Option<PathBuf>,
    pub include_emails: bool,
}

/// `--since`: `90m`, `24h`, `7d` (also `s`).
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let bad = || format!("--since {text:?}: expected a number and a unit, such as 90m, 24h or 7d");
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (number, unit) = (text.get(..split).ok_or_else(bad)?, text.get(split..));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        Some("s") => 1,
        Some("m") => 60,
        Some("h") => 3600,
        Some("d") => 86_400,
        _ => return Err(bad()),
    };
    if n == 0 || n > 366 * 86_400 / unit {
        return Err(bad());
    }
    Ok(Duration::from_secs(n * unit))
}

/// `support-bundle`: the logs, then the child's files, then the zip.
pub fn run(settings: &Settings, options: &Options) -> Exit {
    match build(settings, options) {
        Ok(exit) => exit,
        Err(Failure::Usage(e)) => {
            eprintln!("mogothrow77 support-bundle: {e}");
            Exit::Config
        }
        Err(Failure::Failed(e)) => {
            eprintln!("mogothrow77 support-bundle: {e}; no bundle was written");
            Exit::Failure
        }
    }
}

enum Failure {
    Usage(String),
    Failed(String),
}

fn build(settings: &Settings, options: &Options) -> Result<Exit, Failure> {
    let since = parse_since(&options.since).map_err(Failure::Usage)?;
    let output = match &options.output {
        Some(path) => path.clone(),
        None => default_output(),
    };
    if !options.preview && output.symlink_metadata().is_ok() {
        return Err(Failure::Usage(format!(
            "{} already exists; choose a new file (bundles are never overwritten)",
            output.display()
        )));
    }
    let logs = logs::read(options.log_file.as_deref(), since).map_err(Failure::Usage)?;
    let mut files = run_collector(settings, options, since, &logs)?;
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let zip = zip(&files).map_err(Failure::Failed)?;
    if options.preview {
        println!(
            "the bundle would hold {} files ({} bytes zipped); nothing was written:",
            files.len(),
            zip.len()
        );
        for f in &files {
            println!("  {:>10}  {}", f.content.len(), f.name);
        }
        return Ok(Exit::Ok);
    }
    write_new(&output, &zip).map_err(Failure::Failed)?;
    println!(
        "support bundle written: {} ({} bytes, {} files); read MANIFEST.txt in it before you send it",
        output.display(),
        zip.len(),
        files.len()
    );
    Ok(Exit::Ok)
}

/// `./mogothrow77-support-<host>-<UTC time>.zip`.
fn default_output() -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let host: String = crate::privileges::host_name()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .collect();
    PathBuf::from(format!("mogothrow77-support-{host}-{stamp}.zip"))
}

/// Runs `support-bundle --collect` with the logs on its standard input.
fn run_collector(
    settings: &Settings,
    options: &Options,
    since: Duration,
    logs: &logs::Logs,
) -> Result<Vec<File>, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Failed(format!("cannot find this program: {e}")))?;
    let mut command = Command::new(exe);
    if let Some(file) = &settings.file {
        command.arg("--config").arg(file);
    }
    command
        .args([
            "support-bundle",
            "--collect",
            "--since",
            &format!("{}s", since.as_secs()),
            "--log-name",
            &logs.name,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if options.include_emails {
        command.arg("--include-emails");
    }
    let mut child = command
        .spawn()
        .map_err(|e| Failure::Failed(format!("cannot run the collector: {e}")))?;
    let stdin = child.stdin.take();
    let text = logs.text.clone();
    let feeder = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(text.as_bytes());
        }
    });
    let out = child
        .wait_with_output()
        .map_err(|e| Failure::Failed(format!("the collector failed: {e}")))?;
    let _ = feeder.join();
    if !out.status.success() {
        return Err(Failure::Failed(format!(
            "the collector exited with {} (its message is above)",
            out.status
        )));
    }
    serde_json::from_slice::<Vec<File>>(&out.stdout)
        .map_err(|e| Failure::Failed(format!("the collector's answer is unreadable: {e}")))
}

fn zip(files: &[File]) -> Result<Vec<u8>, String> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o600);
    for f in files {
        writer
            .start_file(f.name.as_str(), options)
            .and_then(|()| writer.write_all(f.content.as_bytes()).map_err(Into::into))
            .map_err(|e| format!("cannot build the zip: {e}"))?;
    }
    writer
        .finish()
        .map(|cursor| cursor.into_inner())
        .map_err(|e| format!("cannot build the zip: {e}"))
}

/// Writes `bytes` to a new file `path` (mode 0600) whole or not at all: a
/// temporary file beside it, linked into place (never over another file).
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} names no file", path.display()))?;
    let temporary = dir.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::hard_link(&temporary, path)
    })();
    let _ = std::fs::remove_file(&temporary);
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_number_and_a_unit() {
        assert_eq!(parse_since("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_since("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_since("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "h", "24", "0h", "-1h", "1w", "24 h", "9999d", "é"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bundle_is_never_written_over_a_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("b.zip");
        write_new(&path, b"one").expect("first");
        assert!(write_new(&path, b"two").is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"one");
        let leftovers = std::fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(leftovers, 1, "no temporary file left");
    }
}
