//! The committed pre-commit hook (`scripts/hooks/`), installed in a
//! throwaway repository as `scripts/hooks/install` does, blocks a badly
//! formatted commit, and a console module that does not parse, with the
//! reason, and lets the mended ones through.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("MOGOTHROW77_SKIP_HOOKS")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(dir: &Path, program: &str, args: &[&str]) {
    let out = run(dir, program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes the directory when the test ends, however it ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_hook_blocks_a_badly_formatted_commit() {
    let scratch = Scratch(std::env::temp_dir().join(format!("m77-hook-{}", std::process::id())));
    let dir = scratch.0.as_path();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("scripts/hooks")).expect("dir");
    ok(dir, "git", &["init", "-q"]);
    ok(dir, "git", &["config", "user.email", "dev@example.com"]);
    ok(dir, "git", &["config", "user.name", "Dev"]);
    ok(
        dir,
        "cargo",
        &["init", "-q", "--lib", "--vcs", "none", "--name", "hooktest"],
    );
    ok(dir, "cargo", &["generate-lockfile", "-q"]);
    for name in ["pre-commit", "install"] {
        std::fs::copy(
            workspace().join("scripts/hooks").join(name),
            dir.join("scripts/hooks").join(name),
        )
        .expect("copy the hook");
    }
    ok(dir, "scripts/hooks/install", &[]);
    std::fs::write(dir.join(".gitignore"), "/target\n").expect("gitignore");

    std::fs::write(dir.join("src/lib.rs"), "pub fn  add(a:u8,b:u8)->u8{a+b}\n").expect("write");
    ok(dir, "git", &["add", "-A"]);
    let blocked = run(dir, "git", &["commit", "-q", "-m", "badly formatted"]);
    assert!(!blocked.status.success(), "the commit was blocked");
    let why = String::from_utf8_lossy(&blocked.stderr);
    assert!(why.contains("formatting: run cargo fmt --all"), "{why}");
    assert!(why.contains("--no-verify"), "says how to skip: {why}");

    ok(dir, "cargo", &["fmt", "--all"]);
    ok(dir, "git", &["add", "-A"]);
    let passed = run(dir, "git", &["commit", "-q", "-m", "formatted"]);
    assert!(
        passed.status.success(),
        "{}",
        String::from_utf8_lossy(&passed.stderr)
    );
    let log = run(dir, "git", &["log", "--oneline"]);
    assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 1);

    // Every console module must parse as an ES module (with node here, as
    // scripts/test installs it).
    if !Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("node is not installed: the console check is not tested");
        return;
    }
    let pages = dir.join("appliance/console/pages");
    std::fs::create_dir_all(&pages).expect("dir");
    std::fs::write(
        dir.join("appliance/console/app.js"),
        "import { a } from './pages/a.js';\nconsole.log(a);\n",
    )
    .expect("write");
    std::fs::write(pages.join("a.js"), "export const a = ;\n").expect("write");
    ok(dir, "git", &["add", "-A"]);
    let blocked = run(dir, "git", &["commit", "-q", "-m", "a broken module"]);
    assert!(!blocked.status.success(), "the commit was blocked");
    let why = String::from_utf8_lossy(&blocked.stderr);
    assert!(
        why.contains("does not parse: appliance/console/pages/a.js"),
        "{why}"
    );
    std::fs::write(pages.join("a.js"), "export const a = 1;\n").expect("write");
    ok(dir, "git", &["add", "-A"]);
    let passed = run(dir, "git", &["commit", "-q", "-m", "modules"]);
    assert!(
        passed.status.success(),
        "{}",
        String::from_utf8_lossy(&passed.stderr)
    );
}
