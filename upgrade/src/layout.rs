//! Where a release is installed on the host, and how one replaces another.
//!
//! - **package**: the .deb, installed by dpkg (`/usr/bin/mogothrow77`,
//!   the unit in `/usr/lib/systemd/system`). A release replaces another
//!   with `dpkg -i`; the previous one is kept as a package file.
//! - **rpm**: the .rpm, installed by rpm (the same paths). A release
//!   replaces another with `rpm -U` (`--oldpackage` going back); the
//!   previous one is kept as a package file, which the installer or an
//!   earlier upgrade put in the tool's releases directory (rpm cannot
//!   rebuild one from what it installed).
//! - **plain**: no package manager (docs/install.md#the-plain-layout).
//!   Each release is a directory `/opt/mogothrow77/releases/<version>/`
//!   (the bundle's `plain/` files); `/opt/mogothrow77/current` is a
//!   symlink to the one in use, which the unit runs
//!   (`ExecStart=/opt/mogothrow77/current/bin/mogothrow77 serve`). A
//!   release replaces another by a rename of a new symlink over `current`
//!   (atomic: any reader sees the old release or the new one, whole), and
//!   the previous release stays in its directory for rollback.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::release::Release;
use crate::system;

/// The plain layout's root.
pub const PLAIN_ROOT: &str = "/opt/mogothrow77";
/// Where the plain layout's unit goes (the admin's unit directory: no
/// package owns it).
pub const PLAIN_UNIT: &str = "/etc/systemd/system/mogothrow77.service";
/// The package layout's server binary.
pub const PACKAGE_BINARY: &str = "/usr/bin/mogothrow77";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// The .deb.
    #[default]
    Package,
    Rpm,
    Plain,
}

impl Layout {
    /// The layout mogothrow77 is installed in on this host, if it is: plain
    /// when its `current` symlink exists, rpm when rpm knows the package,
    /// the package layout when dpkg does.
    pub fn installed() -> Option<Layout> {
        if Plain::host().current().is_some() {
            Some(Layout::Plain)
        } else if system::installed_rpm_version().is_some() {
            Some(Layout::Rpm)
        } else if system::installed_package_version().is_some() {
            Some(Layout::Package)
        } else {
            None
        }
    }

    /// The installed layout; the package layout when nothing is installed
    /// (its binary is then missing, which callers report).
    pub fn detect() -> Layout {
        Layout::installed().unwrap_or_default()
    }

    /// The installed server binary.
    pub fn binary(self) -> PathBuf {
        match self {
            Layout::Package | Layout::Rpm => PathBuf::from(PACKAGE_BINARY),
            Layout::Plain => Plain::host().current_binary(),
        }
    }

    /// Where a release's programs are written (for the free-space check).
    pub fn programs_dir(self) -> &'static Path {
        match self {
            Layout::Package | Layout::Rpm => Path::new("/usr"),
            Layout::Plain => Path::new(PLAIN_ROOT),
        }
    }
}

/// The plain layout under a root directory (`/opt/mogothrow77` on hosts;
/// elsewhere in tests).
#[derive(Debug, Clone)]
pub struct Plain {
    pub root: PathBuf,
}

/// The files of a plain release: (name in the bundle under `plain/`, mode).
const FILES: [(&str, u32); 5] = [
    ("bin/mogothrow77", 0o755),
    ("bin/mogothrow77-upgrade", 0o755),
    ("mogothrow77.service", 0o644),
    ("sysusers.conf", 0o644),
    ("config.toml", 0o644),
];

fn io(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

impl Plain {
    pub fn host() -> Plain {
        Plain {
            root: PathBuf::from(PLAIN_ROOT),
        }
    }

    fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    pub fn release_dir(&self, version: &str) -> PathBuf {
        self.root.join("releases").join(version)
    }

    pub fn current_binary(&self) -> PathBuf {
        self.current_link().join("bin/mogothrow77")
    }

    /// The version `current` points to.
    pub fn current(&self) -> Option<String> {
        let target = fs::read_link(self.current_link()).ok()?;
        target.file_name().map(|n| n.to_string_lossy().to_string())
    }

    /// Writes the release's files into `releases/<version>` (through a
    /// temporary directory renamed into place, so a release directory is
    /// never half written) and returns it. The release in use is left as
    /// it is: its files are the ones running; an older release than the
    /// one in use is refused (it may be the one kept for rollback).
    pub fn stage(&self, release: &Release) -> Result<PathBuf, String> {
        let version = release.target.to_string();
        let dest = self.release_dir(&version);
        let current = self.current();
        if current.as_deref() == Some(version.as_str()) && dest.is_dir() {
            return Ok(dest);
        }
        if let Some(installed) = current.as_deref().and_then(compat::Version::parse) {
            if release.target < installed {
                return Err(format!(
                    "{version} is older than the installed {installed}: downgrades are not \
                     supported"
                ));
            }
        }
        // Every file is there before anything is removed.
        let sources = FILES
            .iter()
            .map(|(name, mode)| Ok((release.plain_file(name)?, *name, *mode)))
            .collect::<Result<Vec<_>, String>>()?;
        let releases = self.root.join("releases");
        fs::create_dir_all(&releases).map_err(io(&releases))?;
        let partial = releases.join(format!(".{version}.partial"));
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(io(&partial))?;
        }
        fs::create_dir_all(partial.join("bin")).map_err(io(&partial))?;
        let written = self.secure(&partial).and_then(|()| {
            for (source, name, mode) in &sources {
                let target = partial.join(name);
                fs::copy(source, &target).map_err(io(source))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(*mode))
                    .map_err(io(&target))?;
                fs::File::open(&target)
                    .and_then(|f| f.sync_all())
                    .map_err(io(&target))?;
            }
            for dir in [&partial, &partial.join("bin")] {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(io(dir))?;
            }
            sync_dir(&partial.join("bin"))?;
            sync_dir(&partial)
        });
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
        if dest.exists() {
            // A release staged earlier and not in use (an attempt that was
            // refused or rolled back).
            fs::remove_dir_all(&dest).map_err(io(&dest))?;
        }
        fs::rename(&partial, &dest).map_err(io(&dest))?;
        sync_dir(&releases)?;
        Ok(dest)
    }

    /// The root and `releases/` must belong to whoever writes the release
    /// (root, on hosts: root runs these binaries) and be writable by it
    /// alone; both are made 0755 so the service user can reach `current`
    /// whatever the umask was. `created` is a directory just created here,
    /// so its owner is this process's user.
    fn secure(&self, created: &Path) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let me = fs::metadata(created).map_err(io(created))?.uid();
        for dir in [self.root.clone(), self.root.join("releases")] {
            let meta = fs::metadata(&dir).map_err(io(&dir))?;
            if !meta.is_dir() || meta.uid() != me {
                return Err(format!(
                    "{} must be a directory owned by uid {me} (it is owned by uid {}): \
                     something else made it; move it away and run again",
                    dir.display(),
                    meta.uid()
                ));
            }
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io(&dir))?;
        }
        Ok(())
    }

    /// Points `current` at `releases/<version>`: a new symlink renamed over
    /// the old one, then the root directory synced.
    pub fn switch_to(&self, version: &str) -> Result<(), String> {
        let dir = self.release_dir(version);
        if !dir.join("bin/mogothrow77").is_file() {
            return Err(format!("{} holds no bin/mogothrow77", dir.display()));
        }
        let next = self.root.join(".current.next");
        let _ = fs::remove_file(&next);
        std::os::unix::fs::symlink(Path::new("releases").join(version), &next)
            .map_err(io(&next))?;
        fs::rename(&next, self.current_link()).map_err(io(&self.root))?;
        sync_dir(&self.root)
    }

    /// Installs the current release's unit as `unit` when it differs
    /// (written beside it and renamed). Returns whether it changed: then
    /// systemd must reload its units.
    pub fn install_unit(&self, unit: &Path) -> Result<bool, String> {
        let source = self.current_link().join("mogothrow77.service");
        let text = fs::read(&source).map_err(io(&source))?;
        if fs::read(unit).ok().as_deref() == Some(text.as_slice()) {
            return Ok(false);
        }
        let next = unit.with_extension("service.next");
        let mut file = fs::File::create(&next).map_err(io(&next))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(io(&next))?;
        fs::set_permissions(&next, fs::Permissions::from_mode(0o644)).map_err(io(&next))?;
        fs::rename(&next, unit).map_err(io(unit))?;
        if let Some(dir) = unit.parent() {
            sync_dir(dir)?;
        }
        Ok(true)
    }

    /// Removes release directories other than `current` and `keep` (the
    /// previous release, for rollback).
    pub fn prune(&self, keep: &str) -> Result<Vec<String>, String> {
        let releases = self.root.join("releases");
        let current = self.current().unwrap_or_default();
        let mut removed = Vec::new();
        let Ok(entries) = fs::read_dir(&releases) else {
            return Ok(removed);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name == current || name == keep {
                continue;
            }
            fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
            removed.push(name);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::Plain;
    use std::fs;

    fn fake_release(plain: &Plain, version: &str, unit: &str) {
        let dir = plain.release_dir(version);
        fs::create_dir_all(dir.join("bin")).expect("mkdir");
        fs::write(dir.join("bin/mogothrow77"), version).expect("write");
        fs::write(dir.join("mogothrow77.service"), unit).expect("write");
    }

    #[test]
    fn switching_flips_current_and_installs_the_unit_only_when_it_changed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plain = Plain {
            root: tmp.path().join("opt"),
        };
        assert_eq!(plain.current(), None);
        fake_release(&plain, "1.0.0", "unit one\n");
        fake_release(&plain, "1.1.0", "unit one\n");
        fake_release(&plain, "1.2.0", "unit two\n");
        plain.switch_to("1.0.0").expect("switch");
        assert_eq!(plain.current().as_deref(), Some("1.0.0"));
        assert_eq!(
            fs::read_to_string(plain.current_binary()).expect("read"),
            "1.0.0"
        );
        let unit = tmp.path().join("mogothrow77.service");
        assert!(plain.install_unit(&unit).expect("unit"));
        assert!(!plain.install_unit(&unit).expect("unit"), "unchanged");

        plain.switch_to("1.1.0").expect("switch");
        assert_eq!(plain.current().as_deref(), Some("1.1.0"));
        assert!(!plain.install_unit(&unit).expect("unit"), "same text");
        plain.switch_to("1.2.0").expect("switch");
        assert!(plain.install_unit(&unit).expect("unit"));
        assert_eq!(fs::read_to_string(&unit).expect("read"), "unit two\n");
        // The link is relative: the tree can be moved or inspected in a
        // mounted root.
        assert_eq!(
            fs::read_link(plain.root.join("current")).expect("link"),
            std::path::Path::new("releases/1.2.0")
        );

        let err = plain.switch_to("9.9.9").expect_err("no such release");
        assert!(err.contains("holds no bin/mogothrow77"), "{err}");
        assert_eq!(plain.current().as_deref(), Some("1.2.0"), "unchanged");

        assert_eq!(plain.prune("1.1.0").expect("prune"), ["1.0.0"]);
        assert!(plain.release_dir("1.1.0").is_dir());
        assert!(plain.release_dir("1.2.0").is_dir());
    }
}
