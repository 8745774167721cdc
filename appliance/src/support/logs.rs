//! The server's recent logs, read by the invoking user: the unit's journal,
//! or a log file the admin names (a server whose output goes to a file).
//! Bounded; scrubbed later by the collector, never written as read.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The most of a log that goes into a bundle (its newest part).
const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// The logs and where they came from.
pub struct Logs {
    /// The file name in the bundle, e.g. `logs/journal.txt`.
    pub name: String,
    pub text: String,
}

/// The logs of the last `since`: from `log_file` when given (an unreadable
/// one is an error), else the unit's journal, else a note saying why none.
pub fn read(log_file: Option<&Path>, since: Duration) -> Result<Logs, String> {
    if let Some(path) = log_file {
        let text = tail(path).map_err(|e| format!("--log-file {}: {e}", path.display()))?;
        return Ok(Logs {
            name: "logs/log-file.txt".to_string(),
            text: recent(&text, since),
        });
    }
    let under_systemd = crate::diagnose::unit().is_some_and(|u| u.loaded());
    if !under_systemd {
        return Ok(Logs {
            name: "logs/none.txt".to_string(),
            text: "No logs: this host has no mogothrow77.service under systemd, and no \
                   --log-file was given.\n"
                .to_string(),
        });
    }
    let out = Command::new("journalctl")
        .args([
            "--unit",
            crate::diagnose::UNIT,
            "--no-pager",
            "--output",
            "short-iso-precise",
            &format!("--since=-{}s", since.as_secs()),
        ])
        .output();
    let text = match out {
        Ok(out) if out.status.success() => {
            let bytes = &out.stdout;
            let start = bytes.len().saturating_sub(MAX_BYTES as usize);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Ok(out) => format!(
            "journalctl failed ({}): {}\nRun support-bundle as root (or a member of the \
             systemd-journal group) to include the journal.\n",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("cannot run journalctl: {e}\n"),
    };
    Ok(Logs {
        name: "logs/journal.txt".to_string(),
        text,
    })
}

/// The newest [`MAX_BYTES`] of a file, from a line start.
fn tail(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(MAX_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(match (start, text.find('\n')) {
        (0, _) | (_, None) => text,
        (_, Some(i)) => text[i + 1..].to_string(),
    })
}

/// Lines of a JSON log newer than `since` (by their `timestamp`); lines
/// without one (text format, a panic message) are kept.
fn recent(text: &str, since: Duration) -> String {
    let cutoff = time::OffsetDateTime::now_utc() - since;
    text.lines()
        .filter(|line| {
            let stamp = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["timestamp"].as_str().map(str::to_string))
                .and_then(|s| {
                    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                        .ok()
                });
            stamp.is_none_or(|t| t >= cutoff)
        })
        .flat_map(|line| [line, "\n"])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_json_lines_are_left_out_and_others_kept() {
        let now = time::OffsetDateTime::now_utc();
        let format = &time::format_description::well_known::Rfc3339;
        let old = (now - Duration::from_secs(7200))
            .format(format)
            .expect("old");
        let new = now.format(format).expect("new");
        let text = format!(
            "{{\"timestamp\":\"{old}\",\"message\":\"old\"}}\n\
             {{\"timestamp\":\"{new}\",\"message\":\"new\"}}\n\
             thread 'main' panicked\n"
        );
        let kept = recent(&text, Duration::from_secs(3600));
        assert!(!kept.contains("\"old\""), "{kept}");
        assert!(
            kept.contains("\"new\"") && kept.contains("panicked"),
            "{kept}"
        );
    }
}
