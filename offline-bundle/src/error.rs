//! Every way a bundle is refused, each a distinct variant so tools and tests
//! can tell them apart. Messages say what was wrong and what to do.

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("not a readable zip archive: {0}; get a new copy of the bundle")]
    NotAZip(String),
    #[error("the bundle is {size} bytes, over the {limit}-byte limit")]
    BundleTooLarge { size: u64, limit: u64 },
    #[error("the bundle has {count} entries, over the {limit}-entry limit")]
    TooManyEntries { count: usize, limit: usize },
    #[error(
        "entry name {name:?} is unsafe ({reason}); the bundle was not made by the release tooling"
    )]
    UnsafePath { name: String, reason: &'static str },
    #[error("the zip's framing is not the release tooling's: {0}; get a new copy of the bundle")]
    Framing(String),
    #[error("entry {0:?} is a symbolic link; bundles hold regular files only")]
    Symlink(String),
    #[error("entry {0:?} is not a regular file; bundles hold regular files only")]
    NotAFile(String),
    #[error("entry name {0:?} appears more than once")]
    DuplicateName(String),
    #[error("entry {name:?} unpacks to {size} bytes, over the {limit}-byte limit")]
    EntryTooLarge { name: String, size: u64, limit: u64 },
    #[error("the entries unpack to {size} bytes in all, over the {limit}-byte limit")]
    TotalTooLarge { size: u64, limit: u64 },
    #[error("entry {name:?} is compressed {ratio}:1, over the {limit}:1 limit (a zip bomb?)")]
    CompressionBomb {
        name: String,
        ratio: u64,
        limit: u64,
    },
    #[error("the bundle has no {0}; it is incomplete or was not made by the release tooling")]
    MissingManifest(&'static str),
    #[error("the bundle has no signature ({0}); refusing to trust an unsigned bundle")]
    MissingSignature(&'static str),
    #[error("the signature is malformed: {0}")]
    MalformedSignature(String),
    #[error(
        "the bundle is signed by key {key_id}, which is not a trusted key; \
         get the bundle from your vendor's release channel or add their public key"
    )]
    UntrustedKey { key_id: String },
    #[error("the manifest's signature does not verify: the bundle was modified after signing")]
    BadSignature,
    #[error("the manifest is malformed: {0}")]
    MalformedManifest(String),
    #[error("{0:?} is in the archive but not in the signed manifest")]
    UnlistedFile(String),
    #[error("{0:?} is in the signed manifest but missing from the archive")]
    MissingFile(String),
    #[error("{name:?} is {actual} bytes, the signed manifest says {expected}")]
    SizeMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("{0:?} does not match its SHA-256 in the signed manifest: the file was modified")]
    DigestMismatch(String),
    #[error("entry {name:?} is corrupt: {reason}")]
    Corrupt { name: String, reason: String },
    #[error("the destination {0} already exists and is not empty")]
    DestinationNotEmpty(String),
    #[error("cannot sign the manifest: {0}")]
    Sign(String),
    #[error("cannot write the bundle: {0}")]
    Write(String),
}

impl BundleError {
    pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> BundleError + '_ {
        move |e| BundleError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}
