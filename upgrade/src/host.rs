//! What is installed on this host: the server's version and the OS.

use std::path::Path;
use std::process::Command;

use compat::Version;

/// The installed server's version, from `mogothrow77 version`
/// ("mogothrow77 0.1.0 (commit …, schema level N)"). `None` when it is not
/// installed.
pub fn installed_version(binary: &Path) -> Result<Option<Version>, String> {
    if !binary.exists() {
        return Ok(None);
    }
    let out = Command::new(binary)
        .arg("version")
        .output()
        .map_err(|e| format!("cannot run {} version: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .and_then(Version::parse)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "{} version printed {:?}, not a version",
                binary.display(),
                text.trim()
            )
        })
}

/// The OS as compat.toml names it: `ID-VERSION_ID` from os-release, with
/// RHEL-family versions shortened to the major (`rhel-9`).
pub fn os_name(os_release: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(os_release)
        .map_err(|e| format!("cannot read {}: {e}", os_release.display()))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('"').to_string())
    };
    let id = field("ID").ok_or_else(|| format!("{} has no ID", os_release.display()))?;
    let version = field("VERSION_ID").unwrap_or_default();
    let like = field("ID_LIKE").unwrap_or_default();
    let rhel_family = id == "rhel" || like.split_whitespace().any(|l| l == "rhel");
    Ok(if rhel_family {
        format!("rhel-{}", version.split('.').next().unwrap_or_default())
    } else {
        format!("{id}-{version}")
    })
}

#[cfg(test)]
mod tests {
    use super::os_name;

    #[test]
    fn os_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (text, expected) in [
            ("ID=debian\nVERSION_ID=\"12\"\n", "debian-12"),
            ("ID=ubuntu\nVERSION_ID=\"22.04\"\n", "ubuntu-22.04"),
            (
                "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n",
                "rhel-9",
            ),
        ] {
            let path = dir.path().join("os-release");
            std::fs::write(&path, text).expect("write");
            assert_eq!(os_name(&path).expect("parse"), expected);
        }
    }
}
