//! Build script:
//! - records the git commit the binary was built from (`APPLIANCE_GIT_COMMIT`);
//! - checks every migration is named `V<n>__<name>.sql` and declares its kind
//!   (`-- kind: expand` or `-- kind: contract`) on its first line, so a migration
//!   without a declaration can never ship.
use std::path::Path;
use std::process::Command;

fn main() {
    let commit = std::env::var("APPLIANCE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=APPLIANCE_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=APPLIANCE_GIT_COMMIT");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    println!("cargo:rerun-if-changed=../migrations");

    let dir = Path::new("../migrations");
    let mut problems = Vec::new();
    let mut level: u32 = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => panic!("cannot read ../migrations: {e}"),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.ends_with(".sql") {
            continue;
        }
        let valid_name = name
            .strip_prefix('V')
            .and_then(|rest| rest.split_once("__"))
            .is_some_and(|(v, _)| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()));
        if let Some(v) = name
            .strip_prefix('V')
            .and_then(|rest| rest.split_once("__"))
            .and_then(|(v, _)| v.parse::<u32>().ok())
        {
            level = level.max(v);
        }
        if !valid_name {
            problems.push(format!("{name}: expected a name like V2__add_widgets.sql"));
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let first = text.lines().next().unwrap_or_default().trim();
        if first != "-- kind: expand" && first != "-- kind: contract" {
            problems.push(format!(
                "{name}: the first line must be `-- kind: expand` or `-- kind: contract` (see migrations/README.md)"
            ));
        }
    }
    if !problems.is_empty() {
        panic!("invalid migrations:\n  {}", problems.join("\n  "));
    }

    // Upgrade-test fixtures only (docs/releasing.md): a later release built
    // from this source, with its own version and extra migrations, so the
    // upgrade tests have a real N+1 to upgrade to. Release builds never set
    // these.
    println!("cargo:rerun-if-env-changed=MOGOTHROW77_FIXTURE_VERSION");
    println!("cargo:rerun-if-env-changed=MOGOTHROW77_FIXTURE_MIGRATIONS");
    let version = std::env::var("MOGOTHROW77_FIXTURE_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| std::env::var("CARGO_PKG_VERSION").unwrap_or_default());
    println!("cargo:rustc-env=APPLIANCE_VERSION={version}");
    let mut files = migration_files(dir);
    if let Some(extra) =
        std::env::var_os("MOGOTHROW77_FIXTURE_MIGRATIONS").filter(|v| !v.is_empty())
    {
        let extra = Path::new(&extra);
        println!("cargo:rerun-if-changed={}", extra.display());
        files.extend(migration_files(extra));
    }
    files.sort_by_key(|(v, _, _)| *v);
    level = level.max(files.last().map(|(v, _, _)| *v).unwrap_or(0));
    println!("cargo:rustc-env=APPLIANCE_SCHEMA_LEVEL={level}");
    // The embedded migrations: (file stem, SQL), oldest first.
    let mut code = String::from("pub const EMBEDDED: &[(&str, &str)] = &[\n");
    for (_, stem, path) in &files {
        code.push_str(&format!("    ({stem:?}, include_str!({path:?})),\n"));
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("migrations.rs");
    if let Err(e) = std::fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }

    // The documentation served under /docs/: every Markdown file below
    // ../docs, by its path there, sorted (the same files the packages ship).
    println!("cargo:rerun-if-changed=../docs");
    let docs = match Path::new("../docs").canonicalize() {
        Ok(d) => d,
        Err(e) => panic!("cannot read ../docs: {e}"),
    };
    let mut pages = Vec::new();
    files_below(
        &docs,
        &docs,
        &|p| p.extension().is_some_and(|e| e == "md"),
        &mut pages,
    );
    pages.sort();
    let mut code = String::from("pub const PAGES: &[(&str, &str)] = &[\n");
    for (name, path) in &pages {
        code.push_str(&format!("    ({name:?}, include_str!({path:?})),\n"));
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("docs.rs");
    if let Err(e) = std::fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }

    console_assets();
}

/// The web console's files served under /assets/: every file below
/// console/ but the page itself (index.html), sorted, each with its
/// content type. A file of another kind stops the build, so nothing is
/// ever served with a guessed type.
fn console_assets() {
    println!("cargo:rerun-if-changed=console");
    let console = match Path::new("console").canonicalize() {
        Ok(d) => d,
        Err(e) => panic!("cannot read console/: {e}"),
    };
    let mut files = Vec::new();
    let page = console.join("index.html");
    files_below(&console, &console, &|p| p != page, &mut files);
    files.sort();
    let mut code = String::from(
        "/// (path under /assets/, content type, bytes), generated by build.rs.\n\
         pub const ASSETS: &[(&str, &str, &[u8])] = &[\n",
    );
    for (name, path) in &files {
        let content_type = match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            _ => panic!("console/{name}: only .js, .css and .svg files are served; add its content type in build.rs"),
        };
        let url = format!("/assets/{name}");
        code.push_str(&format!(
            "    ({url:?}, {content_type:?}, include_bytes!({path:?})),\n"
        ));
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("console_assets.rs");
    if let Err(e) = std::fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }
}

/// Files below `dir` that `keep` accepts: (path relative to `root` with
/// `/`, absolute path).
fn files_below(
    root: &Path,
    dir: &Path,
    keep: &dyn Fn(&Path) -> bool,
    out: &mut Vec<(String, String)>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => panic!("cannot read {}: {e}", dir.display()),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            files_below(root, &path, keep, out);
        } else if keep(&path) {
            let relative = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            out.push((relative, path.display().to_string()));
        }
    }
}

/// `V<n>__<name>.sql` files in `dir`: (n, file stem, absolute path).
fn migration_files(dir: &Path) -> Vec<(u32, String, String)> {
    let dir = match dir.canonicalize() {
        Ok(d) => d,
        Err(e) => panic!("cannot read {}: {e}", dir.display()),
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => panic!("cannot read {}: {e}", dir.display()),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".sql") else {
            continue;
        };
        if let Some(v) = stem
            .strip_prefix('V')
            .and_then(|rest| rest.split_once("__"))
            .and_then(|(v, _)| v.parse::<u32>().ok())
        {
            out.push((v, stem.to_string(), entry.path().display().to_string()));
        }
    }
    out
}
