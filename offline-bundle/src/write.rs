//! Writing a bundle: sorted entries, one timestamp, fixed permissions, so the
//! same inputs always give the same bytes.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::manifest::{check_path, hex};
use crate::{BundleError, FileEntry, Manifest, FORMAT, MANIFEST, SIGNATURE};

/// A file to put in the bundle.
#[derive(Debug, Clone)]
pub struct BundleFile {
    /// Name in the archive, e.g. `packages/mogothrow77_0.1.0-1_amd64.deb`.
    pub path: String,
    pub source: PathBuf,
}

/// What the manifest says about the release.
#[derive(Debug, Clone)]
pub struct BundleInfo {
    pub product: String,
    pub version: String,
    pub commit: String,
    /// SOURCE_DATE_EPOCH: the commit time; also every entry's timestamp.
    pub created: u64,
}

/// Already-compressed formats are stored; everything else is deflated.
fn compression(path: &str) -> CompressionMethod {
    // An OCI archive is a tar of gzipped layers: storing it costs nothing.
    const PACKED: [&str; 9] = [
        ".deb", ".rpm", ".zip", ".gz", ".tgz", ".xz", ".zst", ".bz2", "-oci.tar",
    ];
    if PACKED.iter().any(|ext| path.ends_with(ext)) {
        CompressionMethod::Stored
    } else {
        CompressionMethod::Deflated
    }
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn zip_time(epoch: u64) -> Result<DateTime, BundleError> {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    let (y, m, d) = civil(days);
    // Zip timestamps cover 1980-2107.
    let year = y.clamp(1980, 2107) as u16;
    DateTime::from_date_and_time(
        year,
        m as u8,
        d as u8,
        (secs / 3600) as u8,
        ((secs % 3600) / 60) as u8,
        (secs % 60) as u8,
    )
    .map_err(|e| BundleError::Write(format!("timestamp: {e}")))
}

fn sha256_file(path: &Path) -> Result<(u64, String), BundleError> {
    let mut file = File::open(path).map_err(BundleError::io(path))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(BundleError::io(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        context.update(&buf[..n]);
    }
    Ok((size, hex(&context.finish())))
}

/// Writes the bundle to `out`. `sign` receives the manifest bytes and returns
/// the minisign signature file's text.
pub fn write_bundle(
    out: &Path,
    info: &BundleInfo,
    files: &[BundleFile],
    sign: &dyn Fn(&[u8]) -> Result<String, String>,
) -> Result<Manifest, BundleError> {
    let mut files = files.to_vec();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut entries = Vec::new();
    for (i, file) in files.iter().enumerate() {
        check_path(&file.path)?;
        if file.path == MANIFEST || file.path == SIGNATURE {
            return Err(BundleError::Write(format!("{} is reserved", file.path)));
        }
        if i > 0 && files[i - 1].path == file.path {
            return Err(BundleError::DuplicateName(file.path.clone()));
        }
        let (size, sha256) = sha256_file(&file.source)?;
        entries.push(FileEntry {
            path: file.path.clone(),
            size,
            sha256,
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        product: info.product.clone(),
        version: info.version.clone(),
        commit: info.commit.clone(),
        created: info.created,
        files: entries,
    };
    let manifest_bytes = manifest.to_json();
    let signature = sign(&manifest_bytes).map_err(BundleError::Sign)?;

    let time = zip_time(info.created)?;
    let options = |path: &str| {
        SimpleFileOptions::default()
            .compression_method(compression(path))
            .last_modified_time(time)
            .unix_permissions(0o644)
            .large_file(true)
    };
    let tmp = out.with_extension("zip.partial");
    let write_err =
        |e: &dyn std::fmt::Display| BundleError::Write(format!("{}: {e}", tmp.display()));
    let mut zip = ZipWriter::new(File::create(&tmp).map_err(BundleError::io(&tmp))?);
    for (name, bytes) in [
        (MANIFEST, &manifest_bytes[..]),
        (SIGNATURE, signature.as_bytes()),
    ] {
        zip.start_file(name, options(name))
            .map_err(|e| write_err(&e))?;
        zip.write_all(bytes).map_err(|e| write_err(&e))?;
    }
    for file in &files {
        zip.start_file(file.path.as_str(), options(&file.path))
            .map_err(|e| write_err(&e))?;
        let mut source = File::open(&file.source).map_err(BundleError::io(&file.source))?;
        std::io::copy(&mut source, &mut zip).map_err(|e| write_err(&e))?;
    }
    let written = zip.finish().map_err(|e| write_err(&e))?;
    written.sync_all().map_err(|e| write_err(&e))?;
    std::fs::rename(&tmp, out).map_err(BundleError::io(out))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::civil;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_454), (2026, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }
}
