//! Copies off the host: the archive copied to a mounted directory and read
//! back against its SHA-256, and/or a site's hook run with its path.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ring::digest::{Context, SHA256};
use serde::Serialize;

/// How one copy went, as the backup's record keeps it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CopyOutcome {
    /// `copy_to` or `hook`.
    pub kind: &'static str,
    /// The copy's path, or the hook program.
    pub to: String,
    pub ok: bool,
    /// What happened, in words (the error when it failed).
    pub detail: String,
}

/// The SHA-256 of a file, hex.
pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut context = Context::new(&SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        context.update(&buf[..n]);
    }
    Ok(crate::audit::hex(context.finish().as_ref()))
}

/// Copies `archive` into `dir` under its own name (through a temporary
/// name, so the directory never shows a partial copy), then reads the copy
/// back and compares digests.
pub fn copy_to(archive: &Path, sha256: &str, dir: &Path) -> CopyOutcome {
    let name = archive
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let target = dir.join(&name);
    let outcome = |ok: bool, detail: String| CopyOutcome {
        kind: "copy_to",
        to: target.display().to_string(),
        ok,
        detail,
    };
    let partial = dir.join(format!("{}.partial", name.to_string_lossy()));
    let copied = (|| -> std::io::Result<()> {
        let mut from = std::fs::File::open(archive)?;
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        std::io::copy(&mut from, &mut to)?;
        to.flush()?;
        to.sync_all()?;
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return outcome(false, format!("cannot copy to {}: {e}", dir.display()));
    }
    match sha256_of(&partial) {
        Ok(read_back) if read_back == sha256 => {}
        Ok(read_back) => {
            let _ = std::fs::remove_file(&partial);
            return outcome(
                false,
                format!("the copy reads back with SHA-256 {read_back}, not {sha256}; removed"),
            );
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return outcome(false, format!("cannot read the copy back: {e}"));
        }
    }
    if let Err(e) = std::fs::rename(&partial, &target) {
        let _ = std::fs::remove_file(&partial);
        return outcome(
            false,
            format!("cannot name the copy {}: {e}", target.display()),
        );
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    outcome(true, format!("copied, SHA-256 verified ({sha256})"))
}

/// Runs `hook ARCHIVE` (no shell; stdin closed; a plain environment plus
/// `MOGOTHROW77_BACKUP_SHA256`), killed with what it started after
/// `timeout`.
pub fn run_hook(hook: &Path, archive: &Path, sha256: &str, timeout: Duration) -> CopyOutcome {
    let outcome = |ok: bool, detail: String| CopyOutcome {
        kind: "hook",
        to: hook.display().to_string(),
        ok,
        detail,
    };
    let child = Command::new(hook)
        .arg(archive)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("MOGOTHROW77_BACKUP_SHA256", sha256)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills whatever it started too.
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return outcome(false, format!("cannot run {}: {e}", hook.display())),
    };
    // The hook's last words, read beside it so a chatty hook never blocks.
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut s) = stderr {
            let _ = s.read_to_end(&mut text);
        }
        text
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() >= timeout => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "killed after {} s (backup.hook_timeout_secs)",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => break Err(e.to_string()),
        }
    };
    let text = reader.join().unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let tail: String = text
        .trim()
        .chars()
        .rev()
        .take(400)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let said = if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    };
    match status {
        Ok(status) if status.success() => outcome(
            true,
            format!("exited 0 after {:.1} s", started.elapsed().as_secs_f64()),
        ),
        Ok(status) => outcome(false, format!("{status}{said}")),
        Err(why) => outcome(false, format!("{why}{said}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_copy_is_verified_and_a_failing_hook_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join("a.dump");
        std::fs::write(&archive, b"archive bytes").expect("write");
        let sha = sha256_of(&archive).expect("digest");
        let copies = dir.path().join("copies");
        std::fs::create_dir(&copies).expect("mkdir");
        let done = copy_to(&archive, &sha, &copies);
        assert!(done.ok, "{done:?}");
        assert_eq!(
            std::fs::read(copies.join("a.dump")).expect("copy"),
            b"archive bytes"
        );
        assert!(!copies.join("a.dump.partial").exists());
        let wrong = copy_to(&archive, "00", &copies);
        assert!(
            !wrong.ok && wrong.detail.contains("reads back"),
            "{wrong:?}"
        );
        let gone = copy_to(&archive, &sha, &dir.path().join("missing"));
        assert!(!gone.ok && gone.detail.contains("cannot copy"), "{gone:?}");

        let hook = dir.path().join("hook.sh");
        std::fs::write(
            &hook,
            "#!/bin/sh\necho \"upload of $1 refused\" >&2\nexit 3\n",
        )
        .expect("hook");
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let failed = run_hook(&hook, &archive, &sha, Duration::from_secs(10));
        assert!(!failed.ok, "{failed:?}");
        assert!(failed.detail.contains("exit status: 3"), "{failed:?}");
        assert!(failed.detail.contains("refused"), "{failed:?}");

        let slow = dir.path().join("slow.sh");
        std::fs::write(&slow, "#!/bin/sh\nsleep 30\n").expect("hook");
        std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let killed = run_hook(&slow, &archive, &sha, Duration::from_millis(300));
        assert!(
            !killed.ok && killed.detail.contains("killed after"),
            "{killed:?}"
        );
    }
}
