//! The signed offline bundle: one zip an air-gapped site receives on
//! removable media.
//!
//! Layout: `manifest.json` lists every other file with its size and SHA-256;
//! `manifest.json.minisig` is a minisign signature of the manifest; every
//! other entry is a regular file listed in the manifest.
//!
//! The reading side ([`read::open`]) treats the bundle as hostile: it checks
//! the archive's structure (paths, entry types, duplicates, sizes,
//! compression ratios) and the signature against trusted public keys before
//! trusting anything the manifest says, then checks every file's digest while
//! extracting into a staging directory that only becomes the destination when
//! everything matched. The writing side ([`write::write_bundle`]) produces
//! byte-identical bundles from the same inputs; signing is passed in, so this
//! crate (which the installer and upgrade tool link) has no signing code.

pub mod error;
mod framing;
pub mod manifest;
pub mod read;
pub mod write;

pub use error::BundleError;
pub use manifest::{FileEntry, Manifest};
pub use read::{open, open_dir, Limits, VerifiedBundle};
pub use write::{write_bundle, BundleFile, BundleInfo};

/// Archive name of the manifest.
pub const MANIFEST: &str = "manifest.json";
/// Archive name of the manifest's minisign signature.
pub const SIGNATURE: &str = "manifest.json.minisig";
/// Version of the manifest format this crate reads and writes.
pub const FORMAT: u32 = 1;
