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
    println!("cargo:rustc-env=APPLIANCE_SCHEMA_LEVEL={level}");
    if !problems.is_empty() {
        panic!("invalid migrations:\n  {}", problems.join("\n  "));
    }
}
