//! The host's side: the service user, the state directory, disk and inode
//! headroom, the open-file limit and the systemd unit.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use super::{Check, Runbooks};
use crate::config::Settings;
use crate::privileges;

/// The unit the packages install.
pub const UNIT: &str = "mogothrow77.service";

/// A share of free space or inodes below this fails; below `WARN_FREE`
/// warns (the `Mogothrow77DiskSpaceLow` alert's threshold).
const FAIL_FREE: f64 = 0.03;
const WARN_FREE: f64 = 0.10;

/// Below this many open files the server runs out of sockets under load
/// (the packaged unit sets 65536).
const MIN_OPEN_FILES: u64 = 4096;

/// Runs the remaining checks as the service user, as `serve` would: when
/// started as root, privileges are dropped (nothing is chowned).
pub fn service_user(settings: &Settings, runbooks: &Runbooks) -> Check {
    const NAME: &str = "service user";
    let service = &settings.config.service;
    if !privileges::is_root() {
        return Check::pass(
            NAME,
            format!(
                "running as {} (not root: the server runs as the user that starts it)",
                privileges::invoking_user()
            ),
        );
    }
    let dropped = privileges::lookup(&service.user, &service.group)
        .and_then(|account| privileges::drop_to(&account));
    match dropped {
        Ok(()) => Check::pass(
            NAME,
            format!(
                "{}:{} (the checks below run as it, as the server does)",
                service.user, service.group
            ),
        ),
        Err(e) => Check::fail(
            NAME,
            format!("{e}; the checks below run as root"),
            runbooks.fix(
                "create the account (the packages do: systemd-sysusers) or set service.user and \
                 service.group",
                "operations.md#running-as-root-privilege-drop",
            ),
        ),
    }
}

/// `state_dir`: present, a directory, writable by this user (which is the
/// service user after [`service_user`]).
pub fn state_dir(settings: &Settings, runbooks: &Runbooks) -> Check {
    const NAME: &str = "state directory";
    let dir = &settings.config.state_dir;
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::warn(
            NAME,
            format!("{shown} does not exist yet"),
            runbooks.fix(
                "`mogothrow77 serve` creates it at its first start",
                "operations.md#files-and-directories",
            ),
        ),
        Err(e) => Check::fail(
            NAME,
            format!("{shown}: {e}"),
            runbooks.fix(
                "make it readable by the service user",
                "operations.md#files-and-directories",
            ),
        ),
        Ok(meta) if !meta.is_dir() => Check::fail(
            NAME,
            format!("{shown} is not a directory"),
            runbooks.fix(
                "point state_dir at a directory",
                "operations.md#files-and-directories",
            ),
        ),
        Ok(_) => {
            let writable = nix::unistd::access(dir.as_path(), nix::unistd::AccessFlags::W_OK);
            match writable {
                Ok(()) => Check::pass(NAME, format!("{shown}, writable")),
                Err(e) => Check::fail(
                    NAME,
                    format!(
                        "{shown} is not writable by {}: {e}",
                        privileges::invoking_user()
                    ),
                    runbooks.fix(
                        "give it to the service user (chown -R mogothrow77:mogothrow77), or start \
                         the service as root once: it hands the directory over",
                        "operations.md#running-as-root-privilege-drop",
                    ),
                ),
            }
        }
    }
}

/// Free space and inodes of every directory the server writes.
pub fn storage(settings: &Settings, runbooks: &Runbooks) -> Vec<Check> {
    crate::startup::watched_dirs(settings)
        .into_iter()
        .map(|(dir, path)| headroom(dir, &path, runbooks))
        .collect()
}

fn headroom(dir: &str, path: &Path, runbooks: &Runbooks) -> Check {
    let name = format!("disk: {dir}");
    if !path.exists() {
        return Check::skip(name, format!("{} does not exist yet", path.display()));
    }
    let stat = match nix::sys::statvfs::statvfs(path) {
        Ok(stat) => stat,
        Err(e) => {
            return Check::fail(
                name,
                format!("{}: {e}", path.display()),
                runbooks.fix(
                    "make the directory readable by the service user",
                    "operations.md#files-and-directories",
                ),
            )
        }
    };
    let block = stat.fragment_size();
    let avail = stat.blocks_available() * block;
    let size = stat.blocks() * block;
    let space = share(avail, size);
    let inodes = share(stat.files_available(), stat.files());
    let inode_text = match stat.files() {
        0 => "no inode limit".to_string(),
        _ => format!("{:.0} % of the inodes free", inodes * 100.0),
    };
    let value = format!(
        "{}: {} free of {} ({:.0} %), {inode_text}",
        path.display(),
        bytes(avail),
        bytes(size),
        space * 100.0,
    );
    let worst = space.min(inodes);
    let fix = |what: &str| {
        runbooks.fix(
            &format!(
                "free {what} on that file system, or grow it: PostgreSQL stops writing when it is \
                 full"
            ),
            if space <= inodes {
                "runbooks/alerts.md#mogothrow77diskspacelow"
            } else {
                "runbooks/alerts.md#mogothrow77inodeslow"
            },
        )
    };
    let what = if space <= inodes { "space" } else { "inodes" };
    if worst < FAIL_FREE {
        Check::fail(name, value, fix(what))
    } else if worst < WARN_FREE {
        Check::warn(name, value, fix(what))
    } else {
        Check::pass(name, value)
    }
}

/// `part / whole`, 1.0 when there is no whole (no inode limit).
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

fn bytes(n: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    const MIB: f64 = 1024.0 * 1024.0;
    let n = n as f64;
    if n >= GIB {
        format!("{:.1} GiB", n / GIB)
    } else {
        format!("{:.0} MiB", n / MIB)
    }
}

/// The unit's properties, when this host runs systemd; `None` otherwise.
pub struct Unit {
    properties: HashMap<String, String>,
}

impl Unit {
    fn get(&self, key: &str) -> &str {
        self.properties.get(key).map(String::as_str).unwrap_or("")
    }

    pub fn loaded(&self) -> bool {
        self.get("LoadState") == "loaded"
    }
}

/// `systemctl show` of the unit; `None` when systemd is not running here.
pub fn unit() -> Option<Unit> {
    if !Path::new("/run/systemd/system").is_dir() {
        return None;
    }
    let out = Command::new("systemctl")
        .args([
            "show",
            UNIT,
            "--property=LoadState,ActiveState,SubState,UnitFileState,NRestarts,LimitNOFILESoft",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let properties = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(Unit { properties })
}

/// The unit's open-file limit, or this process's when there is no unit.
pub fn open_files(unit: &Option<Unit>, runbooks: &Runbooks) -> Check {
    const NAME: &str = "open-file limit";
    let (limit, whose) = match unit.as_ref().filter(|u| u.loaded()) {
        Some(u) => (
            u.get("LimitNOFILESoft").parse::<u64>().ok(),
            format!("{UNIT} (LimitNOFILE)"),
        ),
        None => (
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .ok()
                .map(|(soft, _)| soft),
            "this shell (no systemd unit): a server started from it gets the same".to_string(),
        ),
    };
    match limit {
        None => Check::skip(NAME, format!("cannot read the limit of {whose}")),
        Some(n) if n < MIN_OPEN_FILES => Check::warn(
            NAME,
            format!("{n} for {whose}"),
            runbooks.fix(
                &format!(
                    "raise it to at least {MIN_OPEN_FILES}: LimitNOFILE=65536 in the unit (the \
                     packaged unit has it) or `ulimit -n 65536` before starting"
                ),
                "operations.md#systemd",
            ),
        ),
        Some(n) => Check::pass(NAME, format!("{n} for {whose}")),
    }
}

/// The unit's state: skipped when not under systemd or not installed.
pub fn systemd(unit: &Option<Unit>, runbooks: &Runbooks) -> Check {
    const NAME: &str = "systemd unit";
    let Some(unit) = unit else {
        return Check::skip(NAME, "not under systemd");
    };
    if !unit.loaded() {
        return Check::skip(NAME, format!("no {UNIT} on this host"));
    }
    let restarts: u64 = unit.get("NRestarts").parse().unwrap_or(0);
    let value = format!(
        "{UNIT} {} ({}), {}, restarted {restarts} time(s) by systemd",
        unit.get("ActiveState"),
        unit.get("SubState"),
        unit.get("UnitFileState"),
    );
    let journal = "read `journalctl -u mogothrow77 -e` for the cause";
    match unit.get("ActiveState") {
        "active" if restarts == 0 => Check::pass(NAME, value),
        "active" => Check::warn(
            NAME,
            value,
            runbooks.fix(
                &format!("it crashed and was restarted: {journal}"),
                "operations.md#systemd",
            ),
        ),
        "failed" => Check::fail(
            NAME,
            value,
            runbooks.fix(
                &format!("{journal}, fix it, then `systemctl restart mogothrow77`"),
                "operations.md#systemd",
            ),
        ),
        _ => Check::warn(
            NAME,
            value,
            runbooks.fix(
                "start it: systemctl enable --now mogothrow77",
                "operations.md#systemd",
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_an_admin_writes_them() {
        assert_eq!(bytes(512 * 1024 * 1024), "512 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
        assert_eq!(share(1, 4), 0.25);
        assert_eq!(share(0, 0), 1.0);
    }
}
