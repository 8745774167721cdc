//! The bundle reader against real signatures (the minisign CLI) and against
//! hostile archives generated here.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use minisign_verify::PublicKey;
use offline_bundle::{open, open_dir, write_bundle, BundleError, BundleFile, BundleInfo, Limits};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// A throwaway minisign key pair made by the minisign CLI.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn generate() -> Keys {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("minisign")
            .args(["-G", "-W", "-p"])
            .arg(dir.path().join("key.pub"))
            .arg("-s")
            .arg(dir.path().join("key.sec"))
            .output()
            .expect("the minisign CLI is installed (apt-get install minisign)");
        assert!(status.status.success(), "{status:?}");
        Keys { dir }
    }

    fn public(&self) -> PublicKey {
        PublicKey::from_file(self.dir.path().join("key.pub")).expect("public key")
    }

    /// Signs with the CLI, as a release manager would.
    fn sign(&self, data: &[u8]) -> Result<String, String> {
        let file = self.dir.path().join("to-sign");
        fs::write(&file, data).map_err(|e| e.to_string())?;
        let out = Command::new("minisign")
            .arg("-S")
            .arg("-s")
            .arg(self.dir.path().join("key.sec"))
            .arg("-m")
            .arg(&file)
            .args(["-t", "mogothrow77 test bundle"])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).to_string());
        }
        fs::read_to_string(file.with_extension("minisig")).map_err(|e| e.to_string())
    }
}

fn info() -> BundleInfo {
    BundleInfo {
        product: "mogothrow77".to_string(),
        version: "0.1.0".to_string(),
        commit: "0123456789ab".to_string(),
        created: 1_795_000_000,
    }
}

/// Source files for a small bundle.
fn sources(dir: &Path) -> Vec<BundleFile> {
    let mut files = Vec::new();
    for (name, content) in [
        ("packages/app.deb", b"pretend this is a package".repeat(100)),
        ("docs/install.md", b"# Install\n".to_vec()),
        ("compat.toml", b"[release]\n".to_vec()),
    ] {
        let source = dir.join(name.replace('/', "_"));
        fs::write(&source, content).expect("write");
        files.push(BundleFile {
            path: name.to_string(),
            source,
        });
    }
    files
}

fn good_bundle(keys: &Keys, dir: &Path) -> PathBuf {
    let out = dir.join("bundle.zip");
    write_bundle(&out, &info(), &sources(dir), &|m| keys.sign(m)).expect("write bundle");
    out
}

#[test]
fn a_signed_bundle_verifies_and_unpacks() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = good_bundle(&keys, dir.path());
    let dest = dir.path().join("unpacked");
    let verified =
        open(&bundle, &[keys.public()], Some(&dest), &Limits::default()).expect("verifies");
    assert_eq!(verified.manifest.files.len(), 3);
    assert_eq!(verified.manifest.version, "0.1.0");
    let deb = verified.path("packages/app.deb").expect("listed");
    assert_eq!(
        fs::read(deb).expect("unpacked"),
        b"pretend this is a package".repeat(100)
    );
    // Verification without unpacking.
    let checked = open(&bundle, &[keys.public()], None, &Limits::default()).expect("verifies");
    assert!(checked.root.is_none());
}

/// A bundle unpacked by hand (as `unzip` does: manifest and signature too).
fn unzipped(bundle: &Path, dest: &Path) {
    let mut archive = zip::ZipArchive::new(fs::File::open(bundle).expect("open")).expect("zip");
    archive.extract(dest).expect("extract");
}

#[test]
fn an_unpacked_directory_verifies_and_its_changes_are_refused() {
    let keys = Keys::generate();
    let stranger = Keys::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = good_bundle(&keys, dir.path());
    let root = dir.path().join("by-hand");
    unzipped(&bundle, &root);
    let verified = open_dir(&root, &[keys.public()]).expect("verifies");
    assert_eq!(verified.manifest.files.len(), 3);
    assert_eq!(verified.path("compat.toml"), Some(root.join("compat.toml")));
    // A file nobody listed is never used, so it does not matter.
    fs::write(root.join("notes.txt"), b"mine").expect("write");
    assert!(open_dir(&root, &[keys.public()]).is_ok());

    assert!(matches!(
        open_dir(&root, &[stranger.public()]),
        Err(BundleError::UntrustedKey { .. })
    ));
    let deb = root.join("packages/app.deb");
    let original = fs::read(&deb).expect("read");
    let mut changed = original.clone();
    changed[10] ^= 1;
    fs::write(&deb, &changed).expect("write");
    assert!(matches!(
        open_dir(&root, &[keys.public()]),
        Err(BundleError::DigestMismatch(name)) if name == "packages/app.deb"
    ));
    fs::write(&deb, [original.as_slice(), b"x"].concat()).expect("write");
    assert!(matches!(
        open_dir(&root, &[keys.public()]),
        Err(BundleError::SizeMismatch { .. })
    ));
    // The right bytes behind a symbolic link are still refused.
    let elsewhere = dir.path().join("elsewhere.deb");
    fs::write(&elsewhere, &original).expect("write");
    fs::remove_file(&deb).expect("remove");
    std::os::unix::fs::symlink(&elsewhere, &deb).expect("symlink");
    assert!(matches!(
        open_dir(&root, &[keys.public()]),
        Err(BundleError::Symlink(_))
    ));
    fs::remove_file(&deb).expect("remove");
    assert!(matches!(
        open_dir(&root, &[keys.public()]),
        Err(BundleError::MissingFile(_))
    ));
    fs::write(&deb, &original).expect("write");
    fs::remove_file(root.join("manifest.json.minisig")).expect("remove");
    assert!(matches!(
        open_dir(&root, &[keys.public()]),
        Err(BundleError::MissingSignature(_))
    ));
}

#[test]
fn same_inputs_give_the_same_bytes() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = sources(dir.path());
    let (a, b) = (dir.path().join("a.zip"), dir.path().join("b.zip"));
    // Signatures are deterministic (Ed25519), so whole bundles are too.
    write_bundle(&a, &info(), &files, &|m| keys.sign(m)).expect("a");
    write_bundle(&b, &info(), &files, &|m| keys.sign(m)).expect("b");
    assert_eq!(fs::read(a).expect("a"), fs::read(b).expect("b"));
}

#[test]
fn the_cli_verifies_the_manifest_signature_in_a_bundle() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = good_bundle(&keys, dir.path());
    let mut archive = zip::ZipArchive::new(fs::File::open(&bundle).expect("open")).expect("zip");
    for name in ["manifest.json", "manifest.json.minisig"] {
        let mut entry = archive.by_name(name).expect(name);
        let mut out = fs::File::create(dir.path().join(name)).expect("create");
        std::io::copy(&mut entry, &mut out).expect("copy");
    }
    let status = Command::new("minisign")
        .arg("-V")
        .arg("-p")
        .arg(keys.dir.path().join("key.pub"))
        .arg("-m")
        .arg(dir.path().join("manifest.json"))
        .output()
        .expect("minisign -V");
    assert!(status.status.success(), "{status:?}");
}

fn expect_refused(bundle: &Path, keys: &[PublicKey], limits: &Limits) -> BundleError {
    let dest = bundle.with_extension("out");
    let err = open(bundle, keys, Some(&dest), limits).expect_err("must be refused");
    assert!(!dest.exists(), "nothing unpacked from a refused bundle");
    err
}

#[test]
fn a_wrong_key_a_missing_signature_and_a_modified_manifest_are_refused() {
    let keys = Keys::generate();
    let stranger = Keys::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = good_bundle(&keys, dir.path());
    let err = expect_refused(&bundle, &[stranger.public()], &Limits::default());
    assert!(matches!(err, BundleError::UntrustedKey { .. }), "{err}");

    // Signed by an attacker's key, manifest otherwise valid.
    let forged = dir.path().join("forged.zip");
    write_bundle(&forged, &info(), &sources(dir.path()), &|m| {
        stranger.sign(m)
    })
    .expect("forged");
    let err = expect_refused(&forged, &[keys.public()], &Limits::default());
    assert!(matches!(err, BundleError::UntrustedKey { .. }), "{err}");

    // No signature at all.
    let unsigned = rewrite(&bundle, dir.path(), "unsigned.zip", |name, _| {
        (name == "manifest.json.minisig").then_some(None)
    });
    let err = expect_refused(&unsigned, &[keys.public()], &Limits::default());
    assert!(matches!(err, BundleError::MissingSignature(_)), "{err}");

    // The manifest changed after signing.
    let tampered = rewrite(&bundle, dir.path(), "tampered.zip", |name, bytes| {
        (name == "manifest.json").then(|| {
            let text = String::from_utf8_lossy(bytes);
            assert!(text.contains("\"version\": \"0.1.0\""));
            Some(
                text.replace("\"version\": \"0.1.0\"", "\"version\": \"9.9.9\"")
                    .into_bytes(),
            )
        })
    });
    let err = expect_refused(&tampered, &[keys.public()], &Limits::default());
    assert!(matches!(err, BundleError::BadSignature), "{err}");
}

#[test]
fn a_flipped_byte_in_any_file_is_refused() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = good_bundle(&keys, dir.path());
    for target in ["packages/app.deb", "docs/install.md", "compat.toml"] {
        let changed = rewrite(&bundle, dir.path(), "flipped.zip", |name, bytes| {
            (name == target).then(|| {
                let mut bytes = bytes.to_vec();
                bytes[0] ^= 0x01;
                Some(bytes)
            })
        });
        let err = expect_refused(&changed, &[keys.public()], &Limits::default());
        assert!(
            matches!(&err, BundleError::DigestMismatch(name) if name == target),
            "{target}: {err}"
        );
    }
    // A byte flipped in the archive itself (stored .deb data): the zip
    // checksum or the digest catches it.
    let mut raw = fs::read(&bundle).expect("read");
    let at = raw
        .windows(25)
        .position(|w| w == b"pretend this is a package")
        .expect("stored data");
    raw[at + 3] ^= 0x20;
    let corrupt = dir.path().join("corrupt.zip");
    fs::write(&corrupt, raw).expect("write");
    let err = expect_refused(&corrupt, &[keys.public()], &Limits::default());
    assert!(
        matches!(
            err,
            BundleError::Corrupt { .. } | BundleError::DigestMismatch(_)
        ),
        "{err}"
    );
}

#[test]
fn unlisted_and_missing_files_are_refused() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = good_bundle(&keys, dir.path());
    let extra = rewrite_with_extra(
        &bundle,
        dir.path(),
        "extra.zip",
        "bin/backdoor",
        b"#!/bin/sh\n",
    );
    let err = expect_refused(&extra, &[keys.public()], &Limits::default());
    assert!(
        matches!(&err, BundleError::UnlistedFile(n) if n == "bin/backdoor"),
        "{err}"
    );

    let missing = rewrite(&bundle, dir.path(), "missing.zip", |name, _| {
        (name == "compat.toml").then_some(None)
    });
    let err = expect_refused(&missing, &[keys.public()], &Limits::default());
    assert!(
        matches!(&err, BundleError::MissingFile(n) if n == "compat.toml"),
        "{err}"
    );
}

/// A raw archive with the given entries, for structural attacks (these are
/// refused before the signature is even looked at).
fn raw_zip(path: &Path, build: impl FnOnce(&mut ZipWriter<fs::File>)) {
    let mut zip = ZipWriter::new(fs::File::create(path).expect("create"));
    build(&mut zip);
    zip.finish().expect("finish");
}

fn stored() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Stored)
}

#[test]
fn hostile_archives_are_refused_with_distinct_errors() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let trusted = [keys.public()];

    for (name, reason) in [
        ("../../etc/cron.d/evil", "`.` or `..` component"),
        ("/etc/passwd", "absolute path"),
        ("docs\\..\\evil", "backslash in name"),
    ] {
        let path = dir.path().join("slip.zip");
        raw_zip(&path, |zip| {
            zip.start_file(name, stored()).expect("start");
            zip.write_all(b"x").expect("write");
        });
        let err = expect_refused(&path, &trusted, &Limits::default());
        assert!(
            matches!(&err, BundleError::UnsafePath { reason: r, .. } if *r == reason),
            "{name}: {err}"
        );
    }

    let link = dir.path().join("symlink.zip");
    raw_zip(&link, |zip| {
        zip.add_symlink("docs/link", "/etc/shadow", stored())
            .expect("symlink");
    });
    let err = expect_refused(&link, &trusted, &Limits::default());
    assert!(
        matches!(&err, BundleError::Symlink(n) if n == "docs/link"),
        "{err}"
    );

    // Two entries with one name: written as a.txt and b.txt, then renamed.
    let dup = dir.path().join("dup.zip");
    raw_zip(&dup, |zip| {
        for name in ["a.txt", "b.txt"] {
            zip.start_file(name, stored()).expect("start");
            zip.write_all(name.as_bytes()).expect("write");
        }
    });
    let mut raw = fs::read(&dup).expect("read");
    while let Some(at) = raw.windows(5).position(|w| w == b"b.txt") {
        raw[at] = b'a';
    }
    fs::write(&dup, raw).expect("write");
    let err = expect_refused(&dup, &trusted, &Limits::default());
    assert!(
        matches!(&err, BundleError::DuplicateName(n) if n == "a.txt"),
        "{err}"
    );

    // A zip bomb: 8 MiB of zeros deflate to a few KiB.
    let bomb = dir.path().join("bomb.zip");
    raw_zip(&bomb, |zip| {
        zip.start_file(
            "zeros.bin",
            SimpleFileOptions::default().compression_method(CompressionMethod::Deflated),
        )
        .expect("start");
        zip.write_all(&vec![0u8; 8 << 20]).expect("write");
    });
    let err = expect_refused(&bomb, &trusted, &Limits::default());
    assert!(
        matches!(&err, BundleError::CompressionBomb { name, .. } if name == "zeros.bin"),
        "{err}"
    );

    // Oversized entries and too many entries, against tighter limits.
    let big = dir.path().join("big.zip");
    raw_zip(&big, |zip| {
        zip.start_file("big.bin", stored()).expect("start");
        zip.write_all(&vec![7u8; 4096]).expect("write");
    });
    let tight = Limits {
        max_entry_bytes: 1024,
        ..Limits::default()
    };
    let err = expect_refused(&big, &trusted, &tight);
    assert!(
        matches!(err, BundleError::EntryTooLarge { size: 4096, .. }),
        "{err}"
    );
    let few = Limits {
        max_entries: 1,
        ..Limits::default()
    };
    let two = dir.path().join("two.zip");
    raw_zip(&two, |zip| {
        for name in ["a.txt", "b.txt"] {
            zip.start_file(name, stored()).expect("start");
            zip.write_all(b"x").expect("write");
        }
    });
    let err = expect_refused(&two, &trusted, &few);
    assert!(matches!(err, BundleError::TooManyEntries { .. }), "{err}");

    // Not a zip at all.
    let junk = dir.path().join("junk.zip");
    fs::write(&junk, b"this is not an archive").expect("write");
    let err = expect_refused(&junk, &trusted, &Limits::default());
    assert!(matches!(err, BundleError::NotAZip(_)), "{err}");
}

#[test]
fn an_entry_that_inflates_beyond_its_declared_size_is_refused() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = good_bundle(&keys, dir.path());
    // Shrink the declared size of an entry (central directory and local
    // header) below what it really unpacks to. The signed manifest still
    // says the true size, so the archive and the manifest disagree.
    let mut raw = fs::read(&bundle).expect("read");
    let name = b"docs/install.md";
    let mut patched = 0;
    let mut at = 0;
    while let Some(pos) = raw[at..].windows(name.len()).position(|w| w == name) {
        let name_at = at + pos;
        // Central directory header: name at +46, uncompressed size at +24.
        if name_at >= 46 && raw[name_at - 46..name_at - 42] == *b"PK\x01\x02" {
            let size_at = name_at - 46 + 24;
            raw[size_at..size_at + 4].copy_from_slice(&2u32.to_le_bytes());
            patched += 1;
        }
        // Local header: name at +30, uncompressed size at +22.
        if name_at >= 30 && raw[name_at - 30..name_at - 26] == *b"PK\x03\x04" {
            let size_at = name_at - 30 + 22;
            raw[size_at..size_at + 4].copy_from_slice(&2u32.to_le_bytes());
            patched += 1;
        }
        at = name_at + 1;
    }
    assert_eq!(patched, 2, "patched the local and central headers");
    let lying = dir.path().join("lying.zip");
    fs::write(&lying, raw).expect("write");
    let err = expect_refused(&lying, &[keys.public()], &Limits::default());
    assert!(
        matches!(&err, BundleError::SizeMismatch { name, .. } if name == "docs/install.md")
            || matches!(&err, BundleError::Corrupt { .. })
            || matches!(&err, BundleError::Framing(_)),
        "{err}"
    );
}

/// Copies `bundle` entry by entry; `change(name, bytes)` returns None to
/// keep, Some(None) to drop, Some(Some(bytes)) to replace the content.
fn rewrite(
    bundle: &Path,
    dir: &Path,
    out_name: &str,
    change: impl Fn(&str, &[u8]) -> Option<Option<Vec<u8>>>,
) -> PathBuf {
    let out = dir.join(out_name);
    let mut archive = zip::ZipArchive::new(fs::File::open(bundle).expect("open")).expect("zip");
    raw_zip(&out, |zip| {
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).expect("entry");
            let name = entry.name().expect("name").to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
            let bytes = match change(&name, &bytes) {
                None => bytes,
                Some(None) => continue,
                Some(Some(new)) => new,
            };
            zip.start_file(name.as_str(), stored()).expect("start");
            zip.write_all(&bytes).expect("write");
        }
    });
    out
}

fn rewrite_with_extra(
    bundle: &Path,
    dir: &Path,
    out_name: &str,
    name: &str,
    content: &[u8],
) -> PathBuf {
    let copy = rewrite(bundle, dir, "copy.zip", |_, _| None);
    let out = dir.join(out_name);
    let mut archive = zip::ZipArchive::new(fs::File::open(&copy).expect("open")).expect("zip");
    raw_zip(&out, |zip| {
        for i in 0..archive.len() {
            let entry = archive.by_index_raw(i).expect("entry");
            zip.raw_copy_file(entry).expect("copy");
        }
        zip.start_file(name, stored()).expect("start");
        zip.write_all(content).expect("write");
    });
    out
}

/// Framing the signature does not cover: bytes after the end record,
/// before the first entry or between entries; a local name that differs
/// from the central one; names that differ only in case; a zip inside.
#[test]
fn framing_outside_the_signature_is_refused() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = good_bundle(&keys, dir.path());
    let good = fs::read(&bundle).expect("read");
    let refused = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        fs::write(&path, bytes).expect("write");
        let err = expect_refused(&path, &[keys.public()], &Limits::default());
        assert!(matches!(err, BundleError::Framing(_)), "{name}: {err}");
        err.to_string()
    };

    let mut appended = good.clone();
    appended.extend_from_slice(b"smuggled after the end record");
    let why = refused("appended.zip", appended);
    assert!(why.contains("bytes after the end"), "{why}");

    let mut prefixed = b"#!/bin/sh\nexit 0\n".to_vec();
    prefixed.extend_from_slice(&good);
    refused("prefixed.zip", prefixed);

    // The local header of docs/install.md renamed (same length): the
    // central directory still says docs/install.md.
    let mut renamed = good.clone();
    let name = b"docs/install.md";
    let at = renamed
        .windows(name.len())
        .position(|w| w == name)
        .expect("local name");
    assert_eq!(
        &renamed[at - 30..at - 26],
        b"PK\x03\x04",
        "the first hit is the local header"
    );
    renamed[at..at + name.len()].copy_from_slice(b"docs/INSTALL.md");
    let why = refused("renamed.zip", renamed);
    assert!(why.contains("in its local header"), "{why}");

    let cased = rewrite_with_extra(&bundle, dir.path(), "cased.zip", "Compat.toml", b"x");
    let err = expect_refused(&cased, &[keys.public()], &Limits::default());
    assert!(err.to_string().contains("only in letter case"), "{err}");

    let inner = dir.path().join("inner.zip");
    raw_zip(&inner, |zip| {
        zip.start_file("a.txt", stored()).expect("start");
        zip.write_all(b"a").expect("write");
    });
    let nested = rewrite_with_extra(
        &bundle,
        dir.path(),
        "nested.zip",
        "packages/more.bin",
        &fs::read(&inner).expect("inner"),
    );
    let err = expect_refused(&nested, &[keys.public()], &Limits::default());
    assert!(err.to_string().contains("zip archive inside"), "{err}");
}

/// Generative: a bundle with bytes flipped, dropped, repeated or inserted
/// anywhere is refused, leaving nothing unpacked — or, when the change is
/// outside everything signed and framed, unpacks exactly the signed files.
/// Never a panic (the reader is fed by whoever carries the bundle in).
#[test]
fn generative_a_mutated_bundle_is_refused_or_unpacks_exactly_what_was_signed() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = good_bundle(&keys, dir.path());
    let original = fs::read(&bundle).expect("read");
    let candidate = dir.path().join("candidate.zip");
    let public = [keys.public()];
    let case = std::cell::Cell::new(0u32);
    generative::run(
        "bundle",
        &[&original],
        &[
            b"PK\x03\x04",
            b"PK\x01\x02",
            b"PK\x05\x06",
            b"../",
            b"\0",
            b"\xff\xff\xff\xff",
        ],
        |_, bytes| {
            case.set(case.get() + 1);
            fs::write(&candidate, bytes).expect("write");
            let dest = dir.path().join(format!("out-{}", case.get()));
            match open(&candidate, &public, Some(&dest), &Limits::default()) {
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    assert!(
                        !dest.exists(),
                        "nothing unpacked from a refused bundle: {e}"
                    );
                }
                Ok(verified) => {
                    for (name, content) in [
                        ("packages/app.deb", b"pretend this is a package".repeat(100)),
                        ("docs/install.md", b"# Install\n".to_vec()),
                        ("compat.toml", b"[release]\n".to_vec()),
                    ] {
                        let path = verified.path(name).expect("listed");
                        assert_eq!(fs::read(path).expect("unpacked"), content, "{name}");
                    }
                    fs::remove_dir_all(&dest).expect("clean");
                }
            }
        },
    );
}
