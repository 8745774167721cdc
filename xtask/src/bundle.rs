//! The offline bundle: the .deb, the Debian packages PostgreSQL needs on a
//! minimal Debian 12 (with an apt index, so `apt-get install` works with no
//! network), docs, and a CycloneDX SBOM; signed with minisign.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use offline_bundle::{write_bundle, BundleFile, BundleInfo, Limits};
use serde_json::{json, Value};

use crate::paths::{io, workspace};
use crate::reproducible::{rfc3339, run_capture, sha256_hex, source_date_epoch, Result};

/// One Debian package's control fields we need.
struct DebInfo {
    package: String,
    version: String,
    architecture: String,
    control: String,
}

fn deb_info(path: &Path) -> Result<DebInfo> {
    let control = run_capture(Command::new("dpkg-deb").arg("-f").arg(path))?;
    let field = |name: &str| {
        control
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_string)
            .ok_or_else(|| format!("{}: no {name} field", path.display()))
    };
    Ok(DebInfo {
        package: field("Package")?,
        version: field("Version")?,
        architecture: field("Architecture")?,
        control,
    })
}

/// An apt `Packages` index for the bundled packages, so an air-gapped host can
/// `apt-get install` from the unpacked bundle with dependencies resolved.
fn packages_index(debs: &[(String, PathBuf, DebInfo)]) -> Result<String> {
    let mut out = String::new();
    for (name, path, info) in debs {
        let bytes = fs::read(path).map_err(io(path))?;
        let filename = name.rsplit('/').next().unwrap_or(name);
        out.push_str(info.control.trim_end());
        out.push_str(&format!(
            "\nFilename: ./{filename}\nSize: {}\nSHA256: {}\n\n",
            bytes.len(),
            sha256_hex(&bytes)
        ));
    }
    Ok(out)
}

/// CycloneDX 1.5: the Rust crates compiled into the binaries and the
/// bundled Debian packages.
fn sbom(version: &str, epoch: u64, debs: &[(&DebInfo, &str)]) -> Result<String> {
    let metadata = run_capture(
        Command::new("cargo")
            .args([
                "metadata",
                "--locked",
                "--format-version",
                "1",
                "--filter-platform",
                "x86_64-unknown-linux-gnu",
            ])
            .current_dir(workspace()),
    )?;
    let metadata: Value =
        serde_json::from_str(&metadata).map_err(|e| format!("cargo metadata: {e}"))?;
    // Only what the shipped binary links: resolve from the mogothrow77 package.
    let mut wanted = BTreeMap::new();
    let packages: BTreeMap<String, &Value> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?.to_string(), p)))
        .collect();
    let nodes: BTreeMap<String, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((n["id"].as_str()?.to_string(), n)))
        .collect();
    let root = packages
        .iter()
        .find(|(_, p)| p["name"] == "mogothrow77")
        .map(|(id, _)| id.clone())
        .ok_or("cargo metadata has no mogothrow77 package")?;
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if wanted.insert(id.clone(), ()).is_some() {
            continue;
        }
        for dep in nodes
            .get(&id)
            .and_then(|n| n["deps"].as_array())
            .into_iter()
            .flatten()
        {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if normal {
                if let Some(pkg) = dep["pkg"].as_str() {
                    stack.push(pkg.to_string());
                }
            }
        }
    }
    let mut components: Vec<Value> = Vec::new();
    for id in wanted.keys() {
        let Some(p) = packages.get(id) else { continue };
        let (name, ver) = (
            p["name"].as_str().unwrap_or(""),
            p["version"].as_str().unwrap_or(""),
        );
        if name == "mogothrow77" {
            continue;
        }
        let mut c = json!({
            "type": "library",
            "bom-ref": format!("pkg:cargo/{name}@{ver}"),
            "name": name,
            "version": ver,
            "purl": format!("pkg:cargo/{name}@{ver}"),
        });
        if let Some(license) = p["license"].as_str() {
            c["licenses"] = json!([{ "expression": license }]);
        }
        components.push(c);
    }
    for (info, shipped_in) in debs {
        let purl = format!(
            "pkg:deb/debian/{}@{}?arch={}&distro=debian-12",
            info.package, info.version, info.architecture
        );
        components.push(json!({
            "type": "application",
            "bom-ref": format!("{purl}#{shipped_in}"),
            "name": info.package,
            "version": info.version,
            "purl": purl,
            "properties": [{ "name": "mogothrow77:shipped-in", "value": shipped_in }],
        }));
    }
    let sbom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(epoch),
            "component": {
                "type": "application",
                "bom-ref": format!("pkg:generic/mogothrow77@{version}"),
                "name": "mogothrow77",
                "version": version,
            },
        },
        "components": components,
    });
    serde_json::to_string_pretty(&sbom).map_err(|e| e.to_string())
}

fn rfc2822(epoch: u64) -> String {
    run_capture(Command::new("date").args(["-u", "-R", "-d", &format!("@{epoch}")]))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Signs with the minisign CLI and a secret key file (never in git: from
/// the release machine's secret store, or a throwaway key in tests).
fn minisign_sign(key: &Path, comment: &str, data: &[u8]) -> std::result::Result<String, String> {
    let dir = std::env::temp_dir().join(format!("m77-sign-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("manifest.json");
    fs::write(&file, data).map_err(|e| e.to_string())?;
    let result = minisign_sign_file(key, comment, &file).and_then(|signature| {
        fs::read_to_string(&signature).map_err(|e| format!("{}: {e}", signature.display()))
    });
    let _ = fs::remove_dir_all(&dir);
    result
}

/// Signs `file` into `file.minisig` beside it (the layout `minisign -V`
/// expects); returns the signature's path.
fn minisign_sign_file(
    key: &Path,
    comment: &str,
    file: &Path,
) -> std::result::Result<PathBuf, String> {
    let out = Command::new("minisign")
        .arg("-S")
        .arg("-s")
        .arg(key)
        .arg("-m")
        .arg(file)
        .args(["-t", comment])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run minisign (apt-get install minisign): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "minisign -S failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut signature = file.as_os_str().to_owned();
    signature.push(".minisig");
    Ok(PathBuf::from(signature))
}

/// Where the plain layout's unit runs the server from (`current` is the
/// symlink the upgrade tool flips between release directories).
const PLAIN_EXEC: &str = "/opt/mogothrow77/current/bin/mogothrow77";

/// The plain layout's files, out of the appliance's package: both
/// binaries, the configuration the package installs, the sysusers.d entry
/// and the systemd unit with its `ExecStart` moved to [`PLAIN_EXEC`].
fn plain_files(deb: &Path, staging: &Path) -> Result<Vec<BundleFile>> {
    let unpacked = staging.join("plain-deb");
    run_capture(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked))?;
    let unit_path = unpacked.join("usr/lib/systemd/system/mogothrow77.service");
    let unit = fs::read_to_string(&unit_path).map_err(io(&unit_path))?;
    let exec = "ExecStart=/usr/bin/mogothrow77 ";
    if unit.matches(exec).count() != 1 {
        return Err(format!(
            "{}: expected one line starting {exec:?}",
            unit_path.display()
        ));
    }
    let unit: String = unit
        .replace(exec, &format!("ExecStart={PLAIN_EXEC} "))
        .lines()
        .filter(|l| !l.starts_with("Documentation="))
        .map(|l| format!("{l}\n"))
        .collect();
    let plain_unit = staging.join("plain-mogothrow77.service");
    fs::write(&plain_unit, unit).map_err(io(&plain_unit))?;
    Ok([
        (
            "plain/bin/mogothrow77",
            unpacked.join("usr/bin/mogothrow77"),
        ),
        (
            "plain/bin/mogothrow77-upgrade",
            unpacked.join("usr/bin/mogothrow77-upgrade"),
        ),
        (
            "plain/config.toml",
            unpacked.join("etc/mogothrow77/config.toml"),
        ),
        (
            "plain/sysusers.conf",
            unpacked.join("usr/lib/sysusers.d/mogothrow77.conf"),
        ),
        ("plain/mogothrow77.service", plain_unit),
    ]
    .into_iter()
    .map(|(path, source)| BundleFile {
        path: path.to_string(),
        source,
    })
    .collect())
}

/// The chart's files, minus its tests (what `.helmignore` leaves out).
fn chart_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name == "tests" || name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            out.extend(chart_files(&path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

pub struct BundleArgs<'a> {
    /// The Debian packages the OCI image's layer was made from (for the SBOM).
    pub oci_debs: Option<&'a Path>,
    pub deb: &'a Path,
    pub rpm: Option<&'a Path>,
    pub oci: Option<&'a Path>,
    pub debian_packages: Option<&'a Path>,
    pub key: &'a Path,
    pub out: &'a Path,
    pub compat: Option<&'a Path>,
    pub changelog: Option<&'a Path>,
    pub installer: Option<&'a Path>,
}

/// Builds `mogothrow77-<version>-offline.zip` in `out`.
pub fn build(args: BundleArgs<'_>) -> Result<PathBuf> {
    // The release is the one its package carries (`0.1.0-1` → `0.1.0`).
    let package_version = deb_info(args.deb)?.version;
    let version = package_version
        .split_once('-')
        .map_or(package_version.as_str(), |(v, _)| v);
    let epoch = source_date_epoch()?;
    let commit = run_capture(Command::new("git").args(["rev-parse", "--short=12", "HEAD"]))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    let staging = args.out.join("bundle-stage");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    fs::create_dir_all(&staging).map_err(io(&staging))?;

    // packages/debian12/: the appliance's package, the Debian packages
    // PostgreSQL needs on a minimal Debian 12, and an apt index over them, so
    // `apt-get install mogothrow77` works from the unpacked bundle offline.
    let mut debs: Vec<PathBuf> = vec![args.deb.to_path_buf()];
    if let Some(dir) = args.debian_packages {
        let mut more: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(io(dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        more.sort();
        debs.extend(more);
    }
    let mut indexed = Vec::new();
    for deb in debs {
        let file_name = deb
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .ok_or_else(|| format!("{} has no file name", deb.display()))?;
        let info = deb_info(&deb)?;
        indexed.push((format!("packages/debian12/{file_name}"), deb, info));
    }
    let index_text = packages_index(&indexed)?;
    let index = staging.join("Packages");
    fs::write(&index, &index_text).map_err(io(&index))?;
    // A flat repository's Release file. It is unsigned: the bundle's own
    // signature covers it, and hosts add the source with [trusted=yes].
    let release = staging.join("Release");
    fs::write(
        &release,
        format!(
            "Origin: mogothrow77\nLabel: mogothrow77 {version} offline bundle\n\
             Date: {}\nSHA256:\n {} {} Packages\n",
            rfc2822(epoch),
            sha256_hex(index_text.as_bytes()),
            index_text.len()
        ),
    )
    .map_err(io(&release))?;
    let mut files = vec![
        BundleFile {
            path: "packages/debian12/Packages".to_string(),
            source: index,
        },
        BundleFile {
            path: "packages/debian12/Release".to_string(),
            source: release,
        },
    ];
    for (name, path, _) in &indexed {
        files.push(BundleFile {
            path: name.clone(),
            source: path.clone(),
        });
    }
    let debian: Vec<_> = indexed.into_iter().skip(1).collect();
    // packages/el8/: the .rpm for RHEL-family hosts (8 and newer);
    // images/: the OCI image archive (load with skopeo or podman).
    for (dir, artifact) in [("packages/el8", args.rpm), ("images", args.oci)] {
        let Some(artifact) = artifact else { continue };
        let name = artifact
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .ok_or_else(|| format!("{} has no file name", artifact.display()))?;
        files.push(BundleFile {
            path: format!("{dir}/{name}"),
            source: artifact.to_path_buf(),
        });
    }

    // plain/: the release for the plain-binary layout (hosts installed
    // without a package manager, docs/install.md#the-plain-layout), taken
    // from the .deb so both carry the same bytes.
    files.extend(plain_files(args.deb, &staging)?);

    // mogothrow77-install: the installer, at the top (docs/install.md).
    if let Some(installer) = args.installer {
        files.push(BundleFile {
            path: "mogothrow77-install".to_string(),
            source: installer.to_path_buf(),
        });
    }

    // helm/mogothrow77/: the chart, as `helm install` takes a directory.
    let chart = workspace().join("helm-chart");
    for file in chart_files(&chart)? {
        let rel = file
            .strip_prefix(&chart)
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .to_string();
        files.push(BundleFile {
            path: format!("helm/mogothrow77/{rel}"),
            source: file,
        });
    }

    let mut image_debs = Vec::new();
    if let Some(dir) = args.oci_debs {
        let mut debs: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(io(dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        debs.sort();
        for deb in debs {
            image_debs.push(deb_info(&deb)?);
        }
    }
    let mut listed: Vec<(&DebInfo, &str)> = debian
        .iter()
        .map(|(_, _, info)| (info, "packages/debian12"))
        .collect();
    listed.extend(image_debs.iter().map(|info| (info, "images")));
    let sbom_path = staging.join("sbom.cdx.json");
    fs::write(&sbom_path, sbom(version, epoch, &listed)?).map_err(io(&sbom_path))?;
    files.push(BundleFile {
        path: "sbom.cdx.json".to_string(),
        source: sbom_path,
    });
    // The compatibility data the upgrade tool and installer read.
    let compat = args
        .compat
        .map_or_else(|| workspace().join("compat.toml"), Path::to_path_buf);
    files.push(BundleFile {
        path: "compat.toml".to_string(),
        source: compat,
    });
    files.push(BundleFile {
        path: "compat-matrix.md".to_string(),
        source: workspace().join("compat-matrix.md"),
    });
    // The release notes `mogothrow77-upgrade check` prints.
    files.push(BundleFile {
        path: "CHANGELOG.md".to_string(),
        source: args
            .changelog
            .map_or_else(|| workspace().join("CHANGELOG.md"), Path::to_path_buf),
    });
    for doc in crate::deb::shipped_docs()? {
        files.push(BundleFile {
            path: format!("docs/{doc}"),
            source: workspace().join("docs").join(doc),
        });
    }
    for name in crate::deb::MONITORING_FILES {
        files.push(BundleFile {
            path: format!("monitoring/{name}"),
            source: workspace().join("monitoring").join(name),
        });
    }

    let out = args.out.join(format!("mogothrow77-{version}-offline.zip"));
    let comment = format!("mogothrow77 {version} offline bundle, commit {commit}");
    let info = BundleInfo {
        product: "mogothrow77".to_string(),
        version: version.to_string(),
        commit,
        created: epoch,
    };
    write_bundle(&out, &info, &files, &|m| {
        minisign_sign(args.key, &comment, m)
    })
    .map_err(|e| e.to_string())?;
    fs::remove_dir_all(&staging).map_err(io(&staging))?;
    if let Some(installer) = args.installer {
        installer_beside(installer, args.key, version, &info.commit, args.out)?;
    }
    Ok(out)
}

/// The installer also goes beside the zip, with its own minisign
/// signature, so that a host with neither unzip nor minisign can start
/// from it: the transfer machine checks `mogothrow77-install.minisig`, the
/// offline host needs only a shell (docs/install.md).
fn installer_beside(
    installer: &Path,
    key: &Path,
    version: &str,
    commit: &str,
    out: &Path,
) -> Result<()> {
    let beside = out.join("mogothrow77-install");
    fs::copy(installer, &beside).map_err(io(&beside))?;
    fs::set_permissions(&beside, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(io(&beside))?;
    minisign_sign_file(
        key,
        &format!("mogothrow77-install {version}, commit {commit}"),
        &beside,
    )?;
    Ok(())
}

/// Verifies a bundle with the reader the installer uses, unpacking it to
/// `dest` when given.
pub fn verify(bundle: &Path, public_key: &Path, dest: Option<&Path>) -> Result<String> {
    let key = minisign_verify::PublicKey::from_file(public_key)
        .map_err(|e| format!("{}: {e}", public_key.display()))?;
    let verified = offline_bundle::open(bundle, &[key], dest, &Limits::default())
        .map_err(|e| e.to_string())?;
    let total: u64 = verified.manifest.files.iter().map(|f| f.size).sum();
    Ok(format!(
        "verified {} {}: {} files, {total} bytes",
        verified.manifest.product,
        verified.manifest.version,
        verified.manifest.files.len()
    ))
}
