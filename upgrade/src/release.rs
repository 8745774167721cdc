//! A release as its signed offline bundle delivers it: verified, unpacked,
//! with its compatibility data and its package.

use std::path::{Path, PathBuf};

use compat::{CompatData, Version};
use minisign_verify::PublicKey;
use offline_bundle::{Limits, Manifest};

pub struct Release {
    pub target: Version,
    pub data: CompatData,
    pub manifest: Manifest,
    /// Where the bundle was unpacked.
    pub dir: PathBuf,
}

#[derive(Debug)]
pub enum OpenError {
    /// A trusted key could not be read (a usage error).
    Key(String),
    /// The bundle is refused: nothing else may happen.
    Refused(String),
}

pub fn read_keys(paths: &[PathBuf]) -> Result<Vec<PublicKey>, OpenError> {
    paths
        .iter()
        .map(|p| {
            PublicKey::from_file(p).map_err(|e| {
                OpenError::Key(format!(
                    "cannot read the trusted public key {}: {e}",
                    p.display()
                ))
            })
        })
        .collect()
}

/// Verifies the bundle (signature, then every file's digest) and unpacks
/// it into `dest`, which must not exist yet.
pub fn open(bundle: &Path, keys: &[PathBuf], dest: &Path) -> Result<Release, OpenError> {
    let keys = read_keys(keys)?;
    let verified = offline_bundle::open(bundle, &keys, Some(dest), &Limits::default())
        .map_err(|e| OpenError::Refused(format!("bundle {}: {e}", bundle.display())))?;
    Release::new(verified.manifest, dest)
}

/// Verifies a bundle that is either the zip (unpacked into `dest`) or a
/// directory it was unpacked into by hand (verified where it lies).
pub fn open_any(bundle: &Path, keys: &[PathBuf], dest: &Path) -> Result<Release, OpenError> {
    if !bundle.is_dir() {
        return open(bundle, keys, dest);
    }
    let keys = read_keys(keys)?;
    let verified = offline_bundle::open_dir(bundle, &keys)
        .map_err(|e| OpenError::Refused(format!("bundle {}: {e}", bundle.display())))?;
    Release::new(verified.manifest, bundle)
}

impl Release {
    /// A verified bundle's release: its version and compatibility data.
    fn new(manifest: Manifest, dir: &Path) -> Result<Release, OpenError> {
        let refused = |e: String| OpenError::Refused(e);
        let target = Version::parse(&manifest.version).ok_or_else(|| {
            refused(format!(
                "the bundle's version {:?} is not MAJOR.MINOR.PATCH",
                manifest.version
            ))
        })?;
        let data = CompatData::load(&dir.join("compat.toml"))
            .map_err(|e| refused(format!("the bundle's compatibility data: {e}")))?;
        Ok(Release {
            target,
            data,
            manifest,
            dir: dir.to_path_buf(),
        })
    }

    /// A listed file whose path starts with `prefix` and ends with `suffix`.
    pub fn listed(&self, prefix: &str, suffix: &str) -> Vec<PathBuf> {
        self.manifest
            .files
            .iter()
            .filter(|f| f.path.starts_with(prefix) && f.path.ends_with(suffix))
            .map(|f| self.dir.join(&f.path))
            .collect()
    }

    /// A file of the plain-layout release (`plain/<name>` in the bundle).
    pub fn plain_file(&self, name: &str) -> Result<PathBuf, String> {
        let path = format!("plain/{name}");
        if self.manifest.files.iter().any(|f| f.path == path) {
            Ok(self.dir.join(path))
        } else {
            Err(format!(
                "the bundle of mogothrow77 {} holds no {path}: it was built before the plain \
                 layout existed; use a bundle of a newer build",
                self.target
            ))
        }
    }

    /// The target's server binary, copied into `dir` as an executable, to
    /// ask it about the database before it is installed; unpacked from the
    /// .deb when the bundle predates `plain/`.
    pub fn server_binary(&self, dir: &Path) -> Result<PathBuf, String> {
        let Ok(source) = self.plain_file("bin/mogothrow77") else {
            return crate::system::unpack_package(&self.deb()?, &dir.join("root"));
        };
        let binary = dir.join("mogothrow77");
        std::fs::copy(&source, &binary).map_err(|e| format!("{}: {e}", binary.display()))?;
        std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        Ok(binary)
    }

    /// The appliance's Debian package for the target release.
    pub fn deb(&self) -> Result<PathBuf, String> {
        self.one_package(
            "packages/debian12/mogothrow77_",
            "_amd64.deb",
            "Debian package",
        )
    }

    /// The appliance's .rpm for the target release (RHEL-family hosts).
    pub fn rpm(&self) -> Result<PathBuf, String> {
        self.one_package("packages/el8/mogothrow77-", ".x86_64.rpm", ".rpm")
    }

    /// The one listed package `<prefix><target>-<revision><suffix>`.
    fn one_package(&self, prefix: &str, suffix: &str, what: &str) -> Result<PathBuf, String> {
        let prefix = format!("{prefix}{}-", self.target);
        let mut found = self.listed(&prefix, suffix).into_iter();
        match (found.next(), found.next()) {
            (Some(path), None) => Ok(path),
            (None, _) => Err(format!(
                "the bundle holds no {what} of mogothrow77 {}",
                self.target
            )),
            (Some(_), Some(_)) => Err(format!(
                "the bundle holds more than one {what} of mogothrow77 {}",
                self.target
            )),
        }
    }
}
