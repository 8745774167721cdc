//! Test harness: throwaway PostgreSQL clusters, the real `mogothrow77`
//! binary as a child process, and a small HTTPS client that reports the
//! server's certificate.

pub mod api;
pub mod app;
pub mod browser;
pub mod client;
pub mod files;
pub mod pg;
pub mod pgbouncer;
pub mod pki;
pub mod prometheus;
pub mod receiver;
pub mod smtp;
pub mod syslog;

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// True when the tests run as root (as CI does): the server then drops to
/// the `mogothrow77` service user, and files handed to it must be its own.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// uid and gid of the service user, when running as root.
pub fn service_account() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("mogothrow77")
        .ok()
        .flatten()
        .expect("running as root: the mogothrow77 user must exist (scripts/test creates it)");
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// Makes `path` owned by the user the server will run as.
pub fn give_to_service_user(path: &Path) {
    if let Some((uid, gid)) = service_account() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    }
}

pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A temporary directory others may traverse (the server drops privileges
/// and must reach its state directory inside it).
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("m77-")
        .tempdir()
        .expect("tempdir");
    chmod(dir.path(), 0o755);
    dir
}

/// The newest migration's number in `migrations/`: the schema level this
/// build knows.
pub fn newest_migration() -> u64 {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .expect("migrations")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix('V')?
                .split_once("__")?
                .0
                .parse::<u64>()
                .ok()
        })
        .max()
        .expect("a migration")
}

/// The address this host would use toward other hosts (no packet is sent:
/// a UDP socket's connect only picks a route), if it has one.
pub fn non_loopback_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Writes a secret file as packages lay them out: `0640 root:mogothrow77`
/// when the server drops to the service user (it re-reads some on SIGHUP as
/// that user), else `0600`.
pub fn secret_file(path: &Path, contents: &str) {
    std::fs::write(path, contents).expect("write secret file");
    match service_account() {
        Some((_, gid)) => {
            std::os::unix::fs::chown(path, None, Some(gid)).expect("chown");
            chmod(path, 0o640);
        }
        None => chmod(path, 0o600),
    }
}
