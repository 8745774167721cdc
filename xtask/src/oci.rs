//! The OCI image, assembled without a container engine: one layer holding
//! the server binary and only the runtime files it needs (glibc's loader and
//! libraries, CA certificates, time zones, a non-root user), written as an
//! OCI image layout in one tar archive (`podman load -i`, `skopeo copy
//! oci-archive:…`).
//!
//! Reproducible: entries are sorted, every time is `SOURCE_DATE_EPOCH` (or
//! the commit time), owners are numeric, gzip stores no name or time. The
//! Debian packages are inputs too: they are downloaded once into the cache
//! directory and reused; delete it to pick up Debian updates.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use tar::{EntryType, Header};

use crate::paths::{io, workspace};
use crate::reproducible::{gzip, rfc3339, run, run_capture, sha256_hex, source_date_epoch, Result};

const NAME: &str = "mogothrow77";
const USER_ID: u32 = 10001;
const STATE_DIR: &str = "/var/lib/mogothrow77";
/// Debian 12 packages the layer's runtime files come from (gcc-12-base
/// holds libgcc-s1's copyright file).
const DEBIAN_PACKAGES: [&str; 5] = [
    "libc6",
    "libgcc-s1",
    "gcc-12-base",
    "ca-certificates",
    "tzdata",
];
const MULTIARCH_LIB: &str = "lib/x86_64-linux-gnu";
const LOADER: &str = "ld-linux-x86-64.so.2";
const LIBGCC: &str = "libgcc_s.so.1";

const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// One entry of a tar archive, keyed by its path without a leading `/`.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Dir { mode: u32, owner: u32 },
    File { mode: u32, bytes: Vec<u8> },
    Symlink { target: String },
}

/// The files of a tar archive, sorted by path; parents are added as
/// root-owned 0755 directories unless given.
#[derive(Debug, Default)]
struct Tree(BTreeMap<String, Node>);

impl Tree {
    fn insert(&mut self, path: &str, node: Node) {
        let path = path.trim_matches('/');
        for (end, _) in path.match_indices('/') {
            self.0.entry(path[..end].to_string()).or_insert(Node::Dir {
                mode: 0o755,
                owner: 0,
            });
        }
        self.0.insert(path.to_string(), node);
    }

    fn file(&mut self, path: &str, mode: u32, bytes: Vec<u8>) {
        self.insert(path, Node::File { mode, bytes });
    }

    fn copy(&mut self, from: &Path, to: &str, mode: u32) -> Result<()> {
        let bytes = fs::read(from).map_err(io(from))?;
        self.file(to, mode, bytes);
        Ok(())
    }

    /// Adds `from` (a directory extracted from a package) as `to`, keeping
    /// symlinks; modes are normalised to 0755 (dirs) and 0644 (files).
    fn copy_tree(&mut self, from: &Path, to: &str) -> Result<()> {
        self.insert(
            to,
            Node::Dir {
                mode: 0o755,
                owner: 0,
            },
        );
        let mut entries: Vec<_> = fs::read_dir(from)
            .map_err(io(from))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .map_err(io(from))?;
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let dest = format!("{to}/{name}");
            let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).map_err(io(&path))?;
                let target = target.to_string_lossy().to_string();
                self.insert(&dest, Node::Symlink { target });
            } else if meta.is_dir() {
                self.copy_tree(&path, &dest)?;
            } else {
                self.copy(&path, &dest, 0o644)?;
            }
        }
        Ok(())
    }

    /// The uncompressed tar: ustar headers, numeric owners, one mtime.
    fn to_tar(&self, epoch: u64) -> Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, node) in &self.0 {
            append(&mut builder, path, node, epoch).map_err(|e| format!("tar {path}: {e}"))?;
        }
        builder.into_inner().map_err(|e| format!("tar: {e}"))
    }

    fn size(&self) -> u64 {
        self.0
            .values()
            .map(|n| match n {
                Node::File { bytes, .. } => bytes.len() as u64,
                _ => 0,
            })
            .sum()
    }
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    node: &Node,
    epoch: u64,
) -> std::io::Result<()> {
    let mut header = Header::new_ustar();
    header.set_mtime(epoch);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(0);
    match node {
        Node::Dir { mode, owner } => {
            header.set_entry_type(EntryType::Directory);
            header.set_mode(*mode);
            header.set_uid((*owner).into());
            header.set_gid((*owner).into());
            builder.append_data(&mut header, format!("{path}/"), std::io::empty())
        }
        Node::File { mode, bytes } => {
            header.set_entry_type(EntryType::Regular);
            header.set_mode(*mode);
            header.set_size(bytes.len() as u64);
            builder.append_data(&mut header, path, bytes.as_slice())
        }
        Node::Symlink { target } => {
            header.set_entry_type(EntryType::Symlink);
            header.set_mode(0o777);
            builder.append_link(&mut header, path, target)
        }
    }
}

/// The Debian packages, from `cache` (downloaded with `apt-get download`
/// when missing); one `.deb` per package.
fn debian_packages(cache: &Path) -> Result<BTreeMap<&'static str, PathBuf>> {
    fs::create_dir_all(cache).map_err(io(cache))?;
    let mut debs = BTreeMap::new();
    for package in DEBIAN_PACKAGES {
        if cached_deb(cache, package)?.is_none() {
            run(Command::new("apt-get")
                .args(["-q", "-o", "APT::Sandbox::User=root", "download", package])
                .current_dir(cache)
                .stdout(Stdio::from(std::io::stderr())))?;
        }
        let deb = cached_deb(cache, package)?.ok_or_else(|| {
            format!(
                "apt-get download {package} left no .deb in {}",
                cache.display()
            )
        })?;
        debs.insert(package, deb);
    }
    Ok(debs)
}

fn cached_deb(cache: &Path, package: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{package}_");
    let mut found: Vec<PathBuf> = fs::read_dir(cache)
        .map_err(io(cache))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".deb")
        })
        .collect();
    found.sort();
    match found.len() {
        0 | 1 => Ok(found.pop()),
        _ => Err(format!(
            "several {package} packages in {}: {found:?}; keep one (or empty the directory to download the current ones)",
            cache.display()
        )),
    }
}

/// Unpacks every package into `dir` (one tree, as dpkg would install them).
fn extract(debs: &BTreeMap<&str, PathBuf>, dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    for deb in debs.values() {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir))?;
    }
    Ok(())
}

/// The `NEEDED` sonames of an ELF file.
fn needed(elf: &Path) -> Result<Vec<String>> {
    let out = run_capture(Command::new("readelf").arg("-d").arg(elf))?;
    Ok(out
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .map(str::to_string)
        .collect())
}

fn interpreter(elf: &Path) -> Result<Option<String>> {
    let out = run_capture(Command::new("readelf").arg("-l").arg(elf))?;
    Ok(out
        .lines()
        .find_map(|l| l.split("program interpreter: ").nth(1))
        .map(|s| s.trim_end_matches(']').to_string()))
}

/// The loader and every library the binary links, directly or through
/// another library, found in the extracted packages. libgcc_s is only
/// there when linked: a `panic = "abort"` build made by cargo-zigbuild does
/// not need it, and glibc dlopens it only for pthread_cancel/pthread_exit,
/// which Rust does not call.
fn libraries(binary: &Path, root: &Path) -> Result<BTreeSet<String>> {
    let libdir = root.join(MULTIARCH_LIB);
    let mut todo = needed(binary)?;
    todo.push(LOADER.to_string());
    let mut found = BTreeSet::new();
    while let Some(soname) = todo.pop() {
        if found.contains(&soname) {
            continue;
        }
        let path = libdir.join(&soname);
        if !path.is_file() {
            return Err(format!(
                "{} needs {soname}, which none of {DEBIAN_PACKAGES:?} ships in /{MULTIARCH_LIB}",
                binary.display()
            ));
        }
        todo.extend(needed(&path)?);
        found.insert(soname);
    }
    Ok(found)
}

/// Debian's `/etc/ssl/certs/ca-certificates.crt`, rebuilt the way
/// `update-ca-certificates` does: every certificate the package ships,
/// concatenated (here in byte order of their paths, not the host's state).
fn ca_bundle(root: &Path) -> Result<Vec<u8>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in fs::read_dir(dir).map_err(io(dir))?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "crt") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut certs = Vec::new();
    walk(&root.join("usr/share/ca-certificates"), &mut certs)?;
    certs.sort();
    let mut bundle = Vec::new();
    for cert in &certs {
        let mut pem = fs::read(cert).map_err(io(cert))?;
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        bundle.extend(pem);
    }
    if certs.is_empty() {
        return Err("ca-certificates ships no certificates".to_string());
    }
    Ok(bundle)
}

const PASSWD: &str = "root:x:0:0:root:/root:/usr/sbin/nologin\n\
                      mogothrow77:x:10001:10001:Mogothrow77:/var/lib/mogothrow77:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nmogothrow77:x:10001:\n";
/// glibc 2.34+ has `files` and `dns` built in: no libnss_* needed.
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n";

/// Every file of the image's single layer.
fn layer(binary: &Path, root: &Path) -> Result<Tree> {
    let mut tree = Tree::default();
    tree.copy(binary, "usr/bin/mogothrow77", 0o755)?;
    for lib in libraries(binary, root)? {
        let mode = if lib == LOADER || lib == "libc.so.6" {
            0o755
        } else {
            0o644
        };
        tree.copy(
            &root.join(MULTIARCH_LIB).join(&lib),
            &format!("{MULTIARCH_LIB}/{lib}"),
            mode,
        )?;
    }
    tree.insert(
        &format!("lib64/{LOADER}"),
        Node::Symlink {
            target: format!("/{MULTIARCH_LIB}/{LOADER}"),
        },
    );
    tree.file("etc/ssl/certs/ca-certificates.crt", 0o644, ca_bundle(root)?);
    tree.copy_tree(&root.join("usr/share/zoneinfo"), "usr/share/zoneinfo")?;
    let libgcc = tree.0.contains_key(&format!("{MULTIARCH_LIB}/{LIBGCC}"));
    for package in ["libc6", "ca-certificates", "tzdata"]
        .into_iter()
        .chain(libgcc.then_some("libgcc-s1"))
    {
        // The licence of every package whose files the layer holds.
        let copyright = format!("usr/share/doc/{package}/copyright");
        tree.copy(&root.join(&copyright), &copyright, 0o644)?;
    }
    tree.file("etc/passwd", 0o644, PASSWD.into());
    tree.file("etc/group", 0o644, GROUP.into());
    tree.file("etc/nsswitch.conf", 0o644, NSSWITCH.into());
    tree.insert(
        STATE_DIR,
        Node::Dir {
            mode: 0o750,
            owner: USER_ID,
        },
    );
    tree.insert(
        "tmp",
        Node::Dir {
            mode: 0o1777,
            owner: 0,
        },
    );
    Ok(tree)
}

/// The image's identity, shared by the config labels and the manifest.
fn annotations(version: &str, revision: &str, created: &str) -> Value {
    json!({
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.licenses": env!("CARGO_PKG_LICENSE"),
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.title": NAME,
        "org.opencontainers.image.version": version,
    })
}

fn image_config(labels: &Value, created: &str, diff_id: &str) -> Value {
    let user = format!("{USER_ID}:{USER_ID}");
    json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": user,
            "Entrypoint": ["/usr/bin/mogothrow77"],
            "Cmd": ["serve"],
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                format!("MOGOTHROW77_STATE_DIR={STATE_DIR}"),
                "MOGOTHROW77_LOG__FORMAT=json",
            ],
            "ExposedPorts": { "8443/tcp": {} },
            "WorkingDir": "/",
            "StopSignal": "SIGTERM",
            "Labels": labels,
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
        "history": [{ "created": created, "created_by": "cargo xtask oci" }],
    })
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": format!("sha256:{}", sha256_hex(bytes)),
        "size": bytes.len(),
    })
}

fn to_json(value: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| format!("json: {e}"))
}

/// The OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`).
fn image_layout(layer_tar: &[u8], version: &str, revision: &str, epoch: u64) -> Result<Tree> {
    let created = rfc3339(epoch);
    let labels = annotations(version, revision, &created);
    let layer_gz = gzip(layer_tar)?;
    let config = to_json(&image_config(&labels, &created, &sha256_hex(layer_tar)))?;
    let manifest = to_json(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": descriptor(MEDIA_CONFIG, &config),
        "layers": [descriptor(MEDIA_LAYER, &layer_gz)],
        "annotations": labels,
    }))?;
    let mut manifest_descriptor = descriptor(MEDIA_MANIFEST, &manifest);
    manifest_descriptor["platform"] = json!({ "architecture": "amd64", "os": "linux" });
    manifest_descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": version });
    let index = to_json(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [manifest_descriptor],
    }))?;

    let mut tree = Tree::default();
    for blob in [layer_gz, config, manifest] {
        tree.file(&format!("blobs/sha256/{}", sha256_hex(&blob)), 0o644, blob);
    }
    tree.file("index.json", 0o644, index);
    tree.file(
        "oci-layout",
        0o644,
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    Ok(tree)
}

fn check_binary(binary: &Path) -> Result<()> {
    let expected = format!("/lib64/{LOADER}");
    match interpreter(binary)? {
        Some(interp) if interp == expected => Ok(()),
        other => Err(format!(
            "{}: program interpreter {other:?}, expected {expected} (a dynamically linked x86-64 glibc binary)",
            binary.display()
        )),
    }
}

/// The labels name the checked-out commit; say so when the binary was built
/// from another one (or another version).
fn warn_if_built_elsewhere(binary: &Path, version: &str, revision: &str) {
    let expected = format!(
        "{version} (commit {}",
        revision.get(..12).unwrap_or(revision)
    );
    match run_capture(Command::new(binary).arg("version")) {
        Ok(out) if out.contains(&expected) => {}
        Ok(out) => eprintln!(
            "warning: {} reports `{}`, but the image is labelled {version} at {revision}",
            binary.display(),
            out.trim()
        ),
        Err(e) => eprintln!("warning: {e}"),
    }
}

fn revision() -> Result<String> {
    Ok(
        run_capture(Command::new("git").args(["rev-parse", "HEAD"]))?
            .trim()
            .to_string(),
    )
}

/// Builds `mogothrow77-<version>-oci.tar` in `out`; Debian packages are
/// kept in `deb_cache` (default `target/oci-debs`).
pub fn build(binary: &Path, out: &Path, deb_cache: Option<&Path>) -> Result<PathBuf> {
    let version = env!("CARGO_PKG_VERSION");
    let epoch = source_date_epoch()?;
    check_binary(binary)?;
    let cache = deb_cache.map_or_else(|| workspace().join("target/oci-debs"), Path::to_path_buf);
    let debs = debian_packages(&cache)?;

    fs::create_dir_all(out).map_err(io(out))?;
    let root = out.join(format!("{NAME}-oci-stage"));
    extract(&debs, &root)?;
    let layer = layer(binary, &root)?;
    fs::remove_dir_all(&root).map_err(io(&root))?;

    let revision = revision()?;
    warn_if_built_elsewhere(binary, version, &revision);
    let layer_tar = layer.to_tar(epoch)?;
    let layout = image_layout(&layer_tar, version, &revision, epoch)?;
    let archive = out.join(format!("{NAME}-{version}-oci.tar"));
    let bytes = layout.to_tar(epoch)?;
    fs::write(&archive, &bytes).map_err(io(&archive))?;
    eprintln!(
        "image size: {} bytes unpacked ({} files), archive {} bytes",
        layer.size(),
        layer.0.len(),
        bytes.len()
    );
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_adds_parents_and_sorts() {
        let mut tree = Tree::default();
        tree.file("usr/bin/x", 0o755, b"x".to_vec());
        tree.file("etc/passwd", 0o644, Vec::new());
        let paths: Vec<&str> = tree.0.keys().map(String::as_str).collect();
        assert_eq!(paths, ["etc", "etc/passwd", "usr", "usr/bin", "usr/bin/x"]);
    }

    #[test]
    fn tar_and_gzip_are_deterministic() -> Result<()> {
        let mut tree = Tree::default();
        tree.file("a/b", 0o644, b"hello".to_vec());
        tree.insert("a/c", Node::Symlink { target: "b".into() });
        let (one, two) = (tree.to_tar(42)?, tree.to_tar(42)?);
        assert_eq!(one, two);
        assert_eq!(gzip(&one)?, gzip(&two)?);
        let gz = gzip(&one)?;
        // Header: magic, deflate, no flags (no name), mtime 0.
        assert_eq!(&gz[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        let mut archive = tar::Archive::new(one.as_slice());
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let header = entry.map_err(|e| e.to_string())?.header().clone();
            assert_eq!(header.mtime().map_err(|e| e.to_string())?, 42);
            assert_eq!(header.uid().map_err(|e| e.to_string())?, 0);
        }
        Ok(())
    }
}
