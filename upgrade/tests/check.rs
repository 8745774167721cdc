//! `mogothrow77-upgrade check` against real signed bundles (minisign CLI
//! keys), a stand-in installed binary and an os-release file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use offline_bundle::{write_bundle, BundleFile, BundleInfo};

const COMPAT: &str = r#"
[[release]]
version = "1.0.0"
schema_level = 1
upgrade_from = []
required_stops = []
postgresql = [15]
os = ["debian-12"]
kubernetes = { min = "1.27", max = "1.30" }

[[release]]
version = "1.1.0"
schema_level = 2
upgrade_from = ["1.0.0"]
required_stops = []
postgresql = [15]
os = ["debian-12"]
kubernetes = { min = "1.27", max = "1.30" }

[[release]]
version = "1.2.0"
schema_level = 3
upgrade_from = ["1.0.0", "1.1.0"]
required_stops = [{ from = "1.0.0", via = ["1.1.0"] }]
postgresql = [15]
os = ["debian-12"]
kubernetes = { min = "1.27", max = "1.30" }
"#;

struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new(installed: &str) -> Host {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("minisign")
            .args(["-G", "-W", "-p"])
            .arg(dir.path().join("vendor.pub"))
            .arg("-s")
            .arg(dir.path().join("vendor.sec"))
            .output()
            .expect("the minisign CLI is installed");
        assert!(out.status.success());
        let bin = dir.path().join("mogothrow77");
        fs::write(
            &bin,
            format!(
                "#!/bin/sh\necho 'mogothrow77 {installed} (commit 0123456789ab, schema level 1)'\n"
            ),
        )
        .expect("write");
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(
            dir.path().join("os-release"),
            "ID=debian\nVERSION_ID=\"12\"\n",
        )
        .expect("write");
        Host { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A bundle of release `version`, signed with the key in `key_dir`.
    fn bundle(&self, version: &str, key_dir: &Path) -> PathBuf {
        let src = self.path(&format!("src-{version}"));
        fs::create_dir_all(&src).expect("mkdir");
        fs::write(src.join("compat.toml"), COMPAT).expect("write");
        fs::write(src.join("app.deb"), format!("package {version}")).expect("write");
        let out = self.path(&format!("mogothrow77-{version}-offline.zip"));
        let sign = |manifest: &[u8]| -> Result<String, String> {
            let file = src.join("manifest.json");
            fs::write(&file, manifest).map_err(|e| e.to_string())?;
            let status = Command::new("minisign")
                .arg("-S")
                .arg("-s")
                .arg(key_dir.join("vendor.sec"))
                .arg("-m")
                .arg(&file)
                .output()
                .map_err(|e| e.to_string())?;
            if !status.status.success() {
                return Err(String::from_utf8_lossy(&status.stderr).to_string());
            }
            fs::read_to_string(src.join("manifest.json.minisig")).map_err(|e| e.to_string())
        };
        write_bundle(
            &out,
            &BundleInfo {
                product: "mogothrow77".to_string(),
                version: version.to_string(),
                commit: "0123456789ab".to_string(),
                created: 1_795_000_000,
            },
            &[
                BundleFile {
                    path: "compat.toml".to_string(),
                    source: src.join("compat.toml"),
                },
                BundleFile {
                    path: "packages/debian12/app.deb".to_string(),
                    source: src.join("app.deb"),
                },
            ],
            &sign,
        )
        .expect("write bundle");
        out
    }

    fn check(&self, bundle: &Path) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_mogothrow77-upgrade"))
            .arg("check")
            .arg(bundle)
            .arg("--public-key")
            .arg(self.path("vendor.pub"))
            .arg("--installed")
            .arg(self.path("mogothrow77"))
            .arg("--os-release")
            .arg(self.path("os-release"))
            .output()
            .expect("run mogothrow77-upgrade");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

#[test]
fn the_next_release_is_planned() {
    let host = Host::new("1.0.0");
    let bundle = host.bundle("1.1.0", host.dir.path());
    let (code, out) = host.check(&bundle);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("installed: 1.0.0; target: 1.1.0"), "{out}");
    assert!(
        out.contains("signature and 2 file digests verified"),
        "{out}"
    );
    assert!(
        out.contains("plan (") && out.contains("forward-only migrations"),
        "{out}"
    );
}

#[test]
fn skipping_a_required_stop_is_refused_with_the_stop_named() {
    let host = Host::new("1.0.0");
    let bundle = host.bundle("1.2.0", host.dir.path());
    let (code, out) = host.check(&bundle);
    assert_eq!(code, Some(10), "{out}");
    assert!(out.contains("must stop at 1.1.0 first"), "{out}");
    assert!(out.contains("nothing was changed"), "{out}");
}

#[test]
fn a_downgrade_is_refused() {
    let host = Host::new("1.1.0");
    let bundle = host.bundle("1.0.0", host.dir.path());
    let (code, out) = host.check(&bundle);
    assert_eq!(code, Some(10), "{out}");
    assert!(out.contains("older than the installed 1.1.0"), "{out}");
}

#[test]
fn a_bundle_signed_by_another_key_or_modified_is_refused_first() {
    let host = Host::new("1.0.0");
    let stranger = Host::new("1.0.0");
    let forged = host.bundle("1.1.0", stranger.dir.path());
    let (code, out) = host.check(&forged);
    assert_eq!(code, Some(10), "{out}");
    assert!(out.contains("not a trusted key"), "{out}");
    assert!(!out.contains("plan ("), "{out}");

    let good = host.bundle("1.1.0", host.dir.path());
    let mut bytes = fs::read(&good).expect("read");
    let at = bytes
        .windows(13)
        .position(|w| w == b"package 1.1.0")
        .expect("stored content");
    bytes[at] ^= 0x01;
    let tampered = host.path("tampered.zip");
    fs::write(&tampered, bytes).expect("write");
    let (code, out) = host.check(&tampered);
    assert_eq!(code, Some(10), "{out}");
    assert!(out.contains("REFUSED  bundle"), "{out}");
}
