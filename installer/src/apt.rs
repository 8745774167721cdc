//! apt with the bundle's Debian packages as its only source: the same
//! request simulated (`apt-get -s`, for the checks) and then made. apt's
//! lists and caches go to a directory of the installer's own, so the host's
//! apt configuration and state are left as they were; the host's package
//! database and preferences are read as apt always reads them.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bundle as an apt source, with apt's lists in a private directory.
pub struct BundleSource {
    sources: PathBuf,
    lists: PathBuf,
}

#[derive(Debug)]
pub enum AptError {
    /// apt could not be run, or its source not prepared.
    Setup(String),
    /// apt refused the request; `missing` names what the host lacks that
    /// the bundle does not carry (when apt said so).
    Refused {
        missing: Vec<String>,
        lines: Vec<String>,
    },
}

impl fmt::Display for AptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AptError::Setup(e) => f.write_str(e),
            AptError::Refused { missing, lines } => {
                if missing.is_empty() {
                    f.write_str("apt refused the request")?;
                } else {
                    write!(
                        f,
                        "apt cannot install {} (the bundle does not carry it and the host \
                         does not offer it)",
                        missing.join(", ")
                    )?;
                }
                for line in lines {
                    write!(f, "\n      apt: {line}")?;
                }
                Ok(())
            }
        }
    }
}

impl BundleSource {
    /// Writes the source list for the bundle's `packages/debian12/` into
    /// `dir` and has apt read its index (`apt-get update`).
    pub fn prepare(bundle_dir: &Path, dir: &Path) -> Result<BundleSource, AptError> {
        let packages = bundle_dir.join("packages/debian12");
        if !packages.join("Packages").is_file() {
            return Err(AptError::Setup(format!(
                "the bundle has no apt index in {}",
                packages.display()
            )));
        }
        let setup = |p: &Path, e: std::io::Error| AptError::Setup(format!("{}: {e}", p.display()));
        let lists = dir.join("lists");
        fs::create_dir_all(lists.join("partial")).map_err(|e| setup(&lists, e))?;
        let sources = dir.join("sources.list");
        // trusted=yes: every file of the bundle was verified against the
        // vendor's signature before apt sees it.
        fs::write(
            &sources,
            format!("deb [trusted=yes] file:{} ./\n", packages.display()),
        )
        .map_err(|e| setup(&sources, e))?;
        let source = BundleSource { sources, lists };
        source.apt(&["update", "-q"])?;
        Ok(source)
    }

    /// What `install` would do, without doing it: the number of packages
    /// apt would install or upgrade.
    pub fn simulate(&self, packages: &[String]) -> Result<usize, AptError> {
        let mut args = vec!["-s", "install", "--no-install-recommends"];
        args.extend(packages.iter().map(String::as_str));
        let out = self.apt(&args)?;
        Ok(out.lines().filter(|l| l.starts_with("Inst ")).count())
    }

    /// Installs `packages` (and what they depend on, Recommends excluded:
    /// the bundle was computed the same way) from the bundle. The
    /// maintainer scripts are told not to start the service; conffiles an
    /// admin changed are kept.
    pub fn install(&self, packages: &[String]) -> Result<(), AptError> {
        let mut args = vec![
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
        ];
        args.extend(packages.iter().map(String::as_str));
        self.apt(&args).map(drop)
    }

    fn apt(&self, args: &[&str]) -> Result<String, AptError> {
        let out = Command::new("apt-get")
            .arg("-o")
            .arg(format!("Dir::Etc::SourceList={}", self.sources.display()))
            .args(["-o", "Dir::Etc::SourceParts=-"])
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", self.lists.display()))
            // No package cache files: /var/cache/apt is the host's.
            .args([
                "-o",
                "Dir::Cache::pkgcache=",
                "-o",
                "Dir::Cache::srcpkgcache=",
            ])
            .args(["-o", "APT::Get::List-Cleanup=0"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("MOGOTHROW77_NO_START", "1")
            .output()
            .map_err(|e| AptError::Setup(format!("cannot run apt-get: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(refused(&stdout, &stderr))
    }
}

/// apt's own lines that say why (its errors go partly to stdout: the
/// unmet-dependency report), and the packages it names as missing.
fn refused(stdout: &str, stderr: &str) -> AptError {
    let mut lines = Vec::new();
    let mut in_report = false;
    for line in stdout.lines() {
        if line.starts_with("The following packages have unmet dependencies") {
            in_report = true;
        } else if in_report && !line.starts_with(' ') {
            in_report = false;
        }
        if in_report || line.starts_with("E: ") {
            lines.push(line.trim_end().to_string());
        }
    }
    lines.extend(
        stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("W: "))
            .map(|l| l.trim_end().to_string()),
    );
    if lines.is_empty() {
        lines.extend(
            stdout
                .lines()
                .rev()
                .take(10)
                .map(str::to_string)
                .collect::<Vec<_>>()
                .into_iter()
                .rev(),
        );
    }
    let mut missing = Vec::new();
    for line in &lines {
        let named = if let Some(rest) = line.split_once("Depends: ").map(|(_, r)| r) {
            rest.split_once(" but ")
                .filter(|(_, why)| why.contains("not installable") || why.contains("not going"))
                .map(|(what, _)| what)
        } else {
            line.strip_prefix("E: Unable to locate package ")
        };
        if let Some(name) = named {
            let name = name.trim().to_string();
            if !missing.contains(&name) {
                missing.push(name);
            }
        }
    }
    AptError::Refused { missing, lines }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unmet_dependency_is_named_with_apts_own_lines() {
        let stdout = "Reading package lists...\nBuilding dependency tree...\n\
            Some packages could not be installed. This may mean that you have\n\
            requested an impossible situation.\n\n\
            The following information may help to resolve the situation:\n\n\
            The following packages have unmet dependencies:\n \
            mogothrow77 : Depends: procps but it is not installable\n \
            postgresql-common : Depends: ssl-cert but it is not going to be installed\n\
            E: Unable to correct problems, you have held broken packages.\n";
        let AptError::Refused { missing, lines } = refused(stdout, "") else {
            panic!("not refused");
        };
        assert_eq!(missing, ["procps", "ssl-cert"]);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[1].contains("mogothrow77 : Depends: procps"));
        let text = AptError::Refused { missing, lines }.to_string();
        assert!(
            text.starts_with("apt cannot install procps, ssl-cert"),
            "{text}"
        );
        assert!(
            text.contains("\n      apt: E: Unable to correct problems"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_package_and_other_errors_keep_apts_words() {
        let AptError::Refused { missing, lines } =
            refused("", "E: Unable to locate package postgresql-15\n")
        else {
            panic!("not refused");
        };
        assert_eq!(missing, ["postgresql-15"]);
        assert_eq!(lines, ["E: Unable to locate package postgresql-15"]);
        let AptError::Refused { missing, lines } = refused(
            "",
            "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem.\n",
        ) else {
            panic!("not refused");
        };
        assert!(missing.is_empty());
        assert_eq!(lines.len(), 1);
    }
}
