//! Verifying and unpacking a bundle. Order matters: structure first, then
//! the signature, then (and only then) the manifest's claims, then every
//! byte against its digest. Nothing reaches the destination unless all of
//! it verified.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use minisign_verify::{PublicKey, Signature};
use zip::ZipArchive;

use crate::manifest::{check_path, hex};
use crate::{BundleError, Manifest, MANIFEST, SIGNATURE};

/// Bounds on what a bundle may unpack to.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_bundle_bytes: u64,
    pub max_entries: usize,
    pub max_entry_bytes: u64,
    pub max_total_bytes: u64,
    /// Highest accepted uncompressed:compressed ratio for entries larger
    /// than `ratio_applies_above` bytes.
    pub max_ratio: u64,
    pub ratio_applies_above: u64,
}

impl Default for Limits {
    fn default() -> Self {
        const GIB: u64 = 1 << 30;
        Limits {
            max_bundle_bytes: 8 * GIB,
            max_entries: 10_000,
            max_entry_bytes: 4 * GIB,
            max_total_bytes: 16 * GIB,
            max_ratio: 100,
            ratio_applies_above: 1 << 20,
        }
    }
}

const MAX_MANIFEST_BYTES: u64 = 4 << 20;
const MAX_SIGNATURE_BYTES: u64 = 8 << 10;

/// A bundle whose signature and every digest verified.
#[derive(Debug)]
pub struct VerifiedBundle {
    pub manifest: Manifest,
    /// Where the files were unpacked, if anywhere.
    pub root: Option<PathBuf>,
}

impl VerifiedBundle {
    /// The unpacked path of a file listed in the manifest.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        let root = self.root.as_ref()?;
        self.manifest
            .files
            .iter()
            .any(|f| f.path == name)
            .then(|| root.join(name))
    }
}

struct Entry {
    index: usize,
    size: u64,
}

/// Verifies `bundle` against the trusted `keys` and, when `dest` is given,
/// unpacks it there (`dest` must not exist, or be an empty directory).
pub fn open(
    bundle: &Path,
    keys: &[PublicKey],
    dest: Option<&Path>,
    limits: &Limits,
) -> Result<VerifiedBundle, BundleError> {
    let file = File::open(bundle).map_err(BundleError::io(bundle))?;
    let size = file.metadata().map_err(BundleError::io(bundle))?.len();
    if size > limits.max_bundle_bytes {
        return Err(BundleError::BundleTooLarge {
            size,
            limit: limits.max_bundle_bytes,
        });
    }
    let mut archive = ZipArchive::new(file).map_err(|e| BundleError::NotAZip(e.to_string()))?;
    let entries = inspect(&mut archive, bundle, limits)?;
    let mut raw = File::open(bundle).map_err(BundleError::io(bundle))?;
    crate::framing::check(&mut raw, size, &mut archive)?;

    // The signature, before anything the manifest says is believed.
    let manifest_entry = entries
        .get(MANIFEST)
        .ok_or(BundleError::MissingManifest(MANIFEST))?;
    let signature_entry = entries
        .get(SIGNATURE)
        .ok_or(BundleError::MissingSignature(SIGNATURE))?;
    let manifest_bytes = read_small(&mut archive, MANIFEST, manifest_entry, MAX_MANIFEST_BYTES)?;
    let signature_bytes = read_small(
        &mut archive,
        SIGNATURE,
        signature_entry,
        MAX_SIGNATURE_BYTES,
    )?;
    verify_signature(&manifest_bytes, &signature_bytes, keys)?;
    let manifest = Manifest::parse(&manifest_bytes)?;

    // The archive holds exactly what the manifest lists.
    let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    for name in entries.keys() {
        if name != MANIFEST && name != SIGNATURE && !listed.contains(name.as_str()) {
            return Err(BundleError::UnlistedFile(name.clone()));
        }
    }
    for file in &manifest.files {
        let entry = entries
            .get(&file.path)
            .ok_or_else(|| BundleError::MissingFile(file.path.clone()))?;
        if entry.size != file.size {
            return Err(BundleError::SizeMismatch {
                name: file.path.clone(),
                expected: file.size,
                actual: entry.size,
            });
        }
    }

    let staging = match dest {
        Some(dest) => Some(prepare_staging(dest)?),
        None => None,
    };
    let result = (|| {
        for file in &manifest.files {
            let entry = &entries[&file.path];
            let out = match &staging {
                Some(dir) => Some(create_file(dir, &file.path)?),
                None => None,
            };
            let digest = copy_hashing(&mut archive, &file.path, entry, out)?;
            if digest != file.sha256 {
                return Err(BundleError::DigestMismatch(file.path.clone()));
            }
        }
        Ok(())
    })();
    match (result, staging, dest) {
        (Ok(()), Some(staging), Some(dest)) => {
            if dest.exists() {
                fs::remove_dir(dest).map_err(BundleError::io(dest))?;
            }
            fs::rename(&staging, dest).map_err(BundleError::io(dest))?;
            Ok(VerifiedBundle {
                manifest,
                root: Some(dest.to_path_buf()),
            })
        }
        (Ok(()), _, _) => Ok(VerifiedBundle {
            manifest,
            root: None,
        }),
        (Err(e), staging, _) => {
            if let Some(dir) = staging {
                let _ = fs::remove_dir_all(dir);
            }
            Err(e)
        }
    }
}

/// Checks every entry's name, type and size from the central directory.
/// Verifies a bundle unpacked by hand (`unzip` keeps `manifest.json` and
/// its signature): the signature first, then every listed file — a regular
/// file reached without symbolic links, of the listed size and SHA-256.
/// Files the manifest does not list are never used, so they are ignored.
pub fn open_dir(dir: &Path, keys: &[PublicKey]) -> Result<VerifiedBundle, BundleError> {
    let read_limited = |name: &'static str, limit: u64, missing: BundleError| {
        let path = dir.join(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing),
            Err(e) => return Err(BundleError::io(&path)(e)),
        };
        if !meta.file_type().is_file() {
            return Err(BundleError::NotAFile(name.to_string()));
        }
        if meta.len() > limit {
            return Err(BundleError::EntryTooLarge {
                name: name.to_string(),
                size: meta.len(),
                limit,
            });
        }
        fs::read(&path).map_err(BundleError::io(&path))
    };
    let manifest_bytes = read_limited(
        MANIFEST,
        MAX_MANIFEST_BYTES,
        BundleError::MissingManifest(MANIFEST),
    )?;
    let signature_bytes = read_limited(
        SIGNATURE,
        MAX_SIGNATURE_BYTES,
        BundleError::MissingSignature(SIGNATURE),
    )?;
    verify_signature(&manifest_bytes, &signature_bytes, keys)?;
    let manifest = Manifest::parse(&manifest_bytes)?;
    for file in &manifest.files {
        // Every component must be a real directory or, last, a regular file.
        let mut path = dir.to_path_buf();
        let parts: Vec<&str> = file.path.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(BundleError::MissingFile(file.path.clone()))
                }
                Err(e) => return Err(BundleError::io(&path)(e)),
            };
            let last = i + 1 == parts.len();
            if meta.file_type().is_symlink() {
                return Err(BundleError::Symlink(file.path.clone()));
            }
            if (last && !meta.file_type().is_file()) || (!last && !meta.is_dir()) {
                return Err(BundleError::NotAFile(file.path.clone()));
            }
            if last && meta.len() != file.size {
                return Err(BundleError::SizeMismatch {
                    name: file.path.clone(),
                    expected: file.size,
                    actual: meta.len(),
                });
            }
        }
        let mut input = File::open(&path).map_err(BundleError::io(&path))?;
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buffer = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = input.read(&mut buffer).map_err(BundleError::io(&path))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > file.size {
                break;
            }
            context.update(&buffer[..n]);
        }
        if total != file.size || hex(&context.finish()) != file.sha256 {
            return Err(BundleError::DigestMismatch(file.path.clone()));
        }
    }
    Ok(VerifiedBundle {
        manifest,
        root: Some(dir.to_path_buf()),
    })
}

fn inspect(
    archive: &mut ZipArchive<File>,
    bundle: &Path,
    limits: &Limits,
) -> Result<BTreeMap<String, Entry>, BundleError> {
    if archive.len() > limits.max_entries {
        return Err(BundleError::TooManyEntries {
            count: archive.len(),
            limit: limits.max_entries,
        });
    }
    let mut entries = BTreeMap::new();
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| BundleError::NotAZip(e.to_string()))?;
        let name =
            String::from_utf8(entry.name_raw().to_vec()).map_err(|_| BundleError::UnsafePath {
                name: String::from_utf8_lossy(entry.name_raw()).to_string(),
                reason: "name is not UTF-8",
            })?;
        check_path(&name)?;
        if entry.is_symlink() {
            return Err(BundleError::Symlink(name));
        }
        if !entry.is_file() || entry.is_dir() {
            return Err(BundleError::NotAFile(name));
        }
        let size = entry.size();
        if size > limits.max_entry_bytes {
            return Err(BundleError::EntryTooLarge {
                name,
                size,
                limit: limits.max_entry_bytes,
            });
        }
        let compressed = entry.compressed_size().max(1);
        let ratio = size / compressed;
        if size > limits.ratio_applies_above && ratio > limits.max_ratio {
            return Err(BundleError::CompressionBomb {
                name,
                ratio,
                limit: limits.max_ratio,
            });
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(BundleError::TotalTooLarge {
                size: total,
                limit: limits.max_total_bytes,
            });
        }
        if entries
            .insert(name.clone(), Entry { index, size })
            .is_some()
        {
            return Err(BundleError::DuplicateName(name));
        }
    }
    if archive.has_duplicate_names() {
        // The zip reader folds duplicates into one index entry; name it.
        return Err(BundleError::DuplicateName(
            duplicate_name(bundle).unwrap_or_else(|| "(unknown)".to_string()),
        ));
    }
    Ok(entries)
}

/// Finds a duplicated name by scanning the central directory itself.
fn duplicate_name(bundle: &Path) -> Option<String> {
    let bytes = fs::read(bundle).ok()?;
    let mut seen = BTreeSet::new();
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(4).position(|w| w == b"PK\x01\x02") {
        let header = at + pos;
        let field = |offset: usize| -> Option<usize> {
            let b = bytes.get(header + offset..header + offset + 2)?;
            Some(u16::from_le_bytes([b[0], b[1]]) as usize)
        };
        let name_len = field(28)?;
        let name = bytes.get(header + 46..header + 46 + name_len)?;
        let name = String::from_utf8_lossy(name).to_string();
        if !seen.insert(name.clone()) {
            return Some(name);
        }
        at = header + 4;
    }
    None
}

fn read_small(
    archive: &mut ZipArchive<File>,
    name: &str,
    entry: &Entry,
    limit: u64,
) -> Result<Vec<u8>, BundleError> {
    if entry.size > limit {
        return Err(BundleError::EntryTooLarge {
            name: name.to_string(),
            size: entry.size,
            limit,
        });
    }
    let mut out = Vec::new();
    copy_checked(archive, name, entry, &mut out)?;
    Ok(out)
}

fn verify_signature(
    manifest: &[u8],
    signature: &[u8],
    keys: &[PublicKey],
) -> Result<(), BundleError> {
    let text = std::str::from_utf8(signature)
        .map_err(|_| BundleError::MalformedSignature("not UTF-8 text".to_string()))?;
    let signature =
        Signature::decode(text).map_err(|e| BundleError::MalformedSignature(e.to_string()))?;
    let mut key_id_matched = false;
    for key in keys {
        match key.verify(manifest, &signature, false) {
            Ok(()) => return Ok(()),
            Err(minisign_verify::Error::UnexpectedKeyId) => {}
            Err(_) => key_id_matched = true,
        }
    }
    if key_id_matched {
        Err(BundleError::BadSignature)
    } else {
        Err(BundleError::UntrustedKey {
            key_id: signature_key_id(text),
        })
    }
}

/// The key id of a minisign signature, as the CLI prints it (hex, upper case).
fn signature_key_id(text: &str) -> String {
    let Some(line) = text.lines().nth(1) else {
        return "(unknown)".to_string();
    };
    let decoded = base64_decode(line.trim());
    match decoded.get(2..10) {
        Some(id) => id.iter().rev().map(|b| format!("{b:02X}")).collect(),
        None => "(unknown)".to_string(),
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().take_while(|c| *c != b'=') {
        let Some(v) = TABLE.iter().position(|t| *t == c) else {
            break;
        };
        buffer = (buffer << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

fn prepare_staging(dest: &Path) -> Result<PathBuf, BundleError> {
    if dest.exists() {
        let empty = fs::read_dir(dest)
            .map_err(BundleError::io(dest))?
            .next()
            .is_none();
        if !empty {
            return Err(BundleError::DestinationNotEmpty(dest.display().to_string()));
        }
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "bundle".to_string());
    let staging = dest.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(BundleError::io(&staging))?;
    }
    fs::create_dir_all(&staging).map_err(BundleError::io(&staging))?;
    Ok(staging)
}

/// Creates `dir/name` (never following or replacing anything).
fn create_file(dir: &Path, name: &str) -> Result<File, BundleError> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(BundleError::io(parent))?;
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        // create_new (O_CREAT|O_EXCL) never follows or replaces an existing
        // name; the staging directory is new and holds only what we made.
        .mode(0o644)
        .open(&path)
        .map_err(BundleError::io(&path))
}

/// Copies an entry, refusing more bytes than the central directory declared.
fn copy_checked(
    archive: &mut ZipArchive<File>,
    name: &str,
    entry: &Entry,
    out: &mut dyn Write,
) -> Result<u64, BundleError> {
    let corrupt = |reason: String| BundleError::Corrupt {
        name: name.to_string(),
        reason,
    };
    let mut reader = archive
        .by_index(entry.index)
        .map_err(|e| corrupt(e.to_string()))?;
    let mut limited = (&mut reader).take(entry.size + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = limited.read(&mut buf).map_err(|e| corrupt(e.to_string()))?;
        if n == 0 {
            break;
        }
        written += n as u64;
        if written > entry.size {
            return Err(BundleError::SizeMismatch {
                name: name.to_string(),
                expected: entry.size,
                actual: written,
            });
        }
        out.write_all(&buf[..n])
            .map_err(|e| corrupt(format!("cannot write it out: {e}")))?;
    }
    if written != entry.size {
        return Err(BundleError::SizeMismatch {
            name: name.to_string(),
            expected: entry.size,
            actual: written,
        });
    }
    Ok(written)
}

struct HashingWriter<'a> {
    digest: ring::digest::Context,
    out: Option<&'a mut File>,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.digest.update(buf);
        if let Some(out) = self.out.as_mut() {
            out.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

fn copy_hashing(
    archive: &mut ZipArchive<File>,
    name: &str,
    entry: &Entry,
    mut out: Option<File>,
) -> Result<String, BundleError> {
    let mut writer = HashingWriter {
        digest: ring::digest::Context::new(&ring::digest::SHA256),
        out: out.as_mut(),
    };
    copy_checked(archive, name, entry, &mut writer)?;
    let digest = writer.digest.finish();
    if let Some(file) = out {
        file.sync_all().map_err(|e| BundleError::Corrupt {
            name: name.to_string(),
            reason: format!("cannot write it out: {e}"),
        })?;
    }
    Ok(hex(&digest))
}
