//! The zip's framing must be exactly what the release tooling writes, so
//! that no byte of the file escapes what the signature covers: the entries
//! back to back from the first byte, then the central directory, then the
//! end record, and nothing after it; each entry's local name the same as
//! its central name; no data descriptors and no zip64 records; names in
//! ASCII that differ in more than letter case; no archive inside.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use zip::ZipArchive;

use crate::error::BundleError;

const LOCAL_HEADER: [u8; 4] = *b"PK\x03\x04";
const END_RECORD: [u8; 4] = *b"PK\x05\x06";
const ZIP64_LOCATOR: [u8; 4] = *b"PK\x06\x07";

fn framing(reason: impl Into<String>) -> BundleError {
    BundleError::Framing(reason.into())
}

fn read_at(file: &mut File, at: u64, buf: &mut [u8]) -> Result<(), BundleError> {
    file.seek(SeekFrom::Start(at))
        .and_then(|_| file.read_exact(buf))
        .map_err(|e| framing(format!("cannot read at byte {at}: {e}")))
}

fn u16_at(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

/// Checks the framing of the archive in `file` (`size` bytes).
pub fn check(
    file: &mut File,
    size: u64,
    archive: &mut ZipArchive<File>,
) -> Result<(), BundleError> {
    // The end record: the last one in the file, ending exactly at its end.
    let tail_len = size.min(22 + 65_535);
    let mut tail = vec![0u8; tail_len as usize];
    read_at(file, size - tail_len, &mut tail)?;
    let end = tail
        .windows(4)
        .rposition(|w| w == END_RECORD)
        .ok_or_else(|| framing("no end of central directory record"))?;
    if end + 22 > tail.len() {
        return Err(framing("a truncated end of central directory record"));
    }
    let end_at = size - tail_len + end as u64;
    let comment = u16_at(&tail, end + 20);
    if end_at + 22 + comment != size {
        return Err(framing(format!(
            "{} bytes after the end of the zip's central directory",
            size - (end_at + 22 + comment)
        )));
    }
    if end >= 20 && tail[end - 20..end - 16] == ZIP64_LOCATOR {
        return Err(framing(
            "zip64 records, which the release tooling never writes",
        ));
    }
    let directory_size = u32_at(&tail, end + 12);
    let directory_at = u32_at(&tail, end + 16);
    if directory_at + directory_size != end_at {
        return Err(framing(
            "bytes between the central directory and its end record",
        ));
    }
    if archive.offset() != 0 || archive.central_directory_start() != directory_at {
        return Err(framing("bytes before the first entry"));
    }

    // The entries, in file order, back to back up to the central directory.
    let mut spans = BTreeMap::new();
    let mut folded = BTreeMap::new();
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| BundleError::NotAZip(e.to_string()))?;
        let name = entry.name_raw().to_vec();
        let shown = String::from_utf8_lossy(&name).to_string();
        if !name.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            return Err(BundleError::UnsafePath {
                name: shown,
                reason: "names are ASCII",
            });
        }
        if let Some(other) = folded.insert(shown.to_ascii_lowercase(), shown.clone()) {
            return Err(framing(format!(
                "{other:?} and {shown:?} differ only in letter case"
            )));
        }
        let lower = shown.to_ascii_lowercase();
        if [".zip", ".jar", ".7z", ".rar"]
            .iter()
            .any(|x| lower.ends_with(x))
        {
            return Err(framing(format!(
                "{shown:?} is an archive inside the bundle"
            )));
        }
        let (start, compressed) = (entry.header_start(), entry.compressed_size());
        drop(entry);
        let mut header = [0u8; 30];
        read_at(file, start, &mut header)?;
        if header[..4] != LOCAL_HEADER {
            return Err(framing(format!(
                "{shown:?} has no local header where the directory says"
            )));
        }
        if u16_at(&header, 6) & 0x0008 != 0 {
            return Err(framing(format!("{shown:?} uses a data descriptor")));
        }
        let (name_len, extra_len) = (u16_at(&header, 26), u16_at(&header, 28));
        let mut local_name = vec![0u8; name_len as usize];
        read_at(file, start + 30, &mut local_name)?;
        if local_name != name {
            return Err(framing(format!(
                "{shown:?} is named {:?} in its local header",
                String::from_utf8_lossy(&local_name)
            )));
        }
        let end = start + 30 + name_len + extra_len + compressed;
        spans.insert(start, (end, shown));
    }
    let mut at = 0;
    for (start, (end, name)) in spans {
        if start != at {
            return Err(framing(format!(
                "{} bytes before {name:?} that belong to no entry (or entries overlap)",
                start.abs_diff(at)
            )));
        }
        at = end;
    }
    if at != directory_at {
        return Err(framing(
            "bytes between the last entry and the central directory",
        ));
    }
    // Nothing nested: an entry's content is never itself a zip.
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| BundleError::NotAZip(e.to_string()))?;
        let mut magic = [0u8; 4];
        let mut read = 0;
        while read < 4 {
            match entry.read(&mut magic[read..]) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) => {
                    return Err(BundleError::Corrupt {
                        name: String::from_utf8_lossy(entry.name_raw()).to_string(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        if read == 4 && magic == LOCAL_HEADER {
            return Err(framing(format!(
                "{:?} is a zip archive inside the bundle",
                String::from_utf8_lossy(entry.name_raw())
            )));
        }
    }
    Ok(())
}
