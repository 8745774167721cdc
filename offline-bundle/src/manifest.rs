//! `manifest.json`: what the bundle holds, signed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{BundleError, FORMAT, MANIFEST, SIGNATURE};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub product: String,
    pub version: String,
    pub commit: String,
    /// Seconds since the epoch: the commit time (SOURCE_DATE_EPOCH).
    pub created: u64,
    /// Every file but the manifest and its signature, sorted by path.
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// Longest accepted entry name, in bytes.
const MAX_PATH: usize = 512;

/// Checks an archive entry name: relative, `/`-separated, no `.`/`..` or
/// empty components, no backslashes or control characters.
pub fn check_path(name: &str) -> Result<(), BundleError> {
    let unsafe_path = |reason| BundleError::UnsafePath {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(unsafe_path("empty name"));
    }
    if name.len() > MAX_PATH {
        return Err(unsafe_path("name too long"));
    }
    if name.starts_with('/') {
        return Err(unsafe_path("absolute path"));
    }
    if name.contains('\\') {
        return Err(unsafe_path("backslash in name"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(unsafe_path("control character in name"));
    }
    if name.len() >= 2 && name.as_bytes()[1] == b':' {
        return Err(unsafe_path("drive letter"));
    }
    for part in name.split('/') {
        match part {
            "" => return Err(unsafe_path("empty path component")),
            "." | ".." => return Err(unsafe_path("`.` or `..` component")),
            _ => {}
        }
    }
    Ok(())
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest, BundleError> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| BundleError::MalformedManifest(e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(BundleError::MalformedManifest(format!(
                "format {} is not supported (this tool reads format {FORMAT}); use a newer tool",
                manifest.format
            )));
        }
        let mut seen = BTreeSet::new();
        for file in &manifest.files {
            check_path(&file.path)?;
            if file.path == MANIFEST || file.path == SIGNATURE {
                return Err(BundleError::MalformedManifest(format!(
                    "it lists {}",
                    file.path
                )));
            }
            if !seen.insert(file.path.as_str()) {
                return Err(BundleError::MalformedManifest(format!(
                    "{} is listed twice",
                    file.path
                )));
            }
            if file.sha256.len() != 64
                || !file
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(BundleError::MalformedManifest(format!(
                    "{} has no valid SHA-256",
                    file.path
                )));
            }
        }
        Ok(manifest)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// Lower-case hex SHA-256 of a finished digest.
pub fn hex(digest: &ring::digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::check_path;

    #[test]
    fn paths() {
        for good in ["manifest.json", "packages/a.deb", "docs/x/y.md"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "C:x",
            "a/",
            "a\nb",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }
}
