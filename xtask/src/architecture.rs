//! `cargo xtask architecture`: the layering rule of docs/ARCHITECTURE.md
//! and ADR 0019, checked on the source (also a test, so `scripts/test`
//! fails when it breaks):
//! - every top-level module of the server (`appliance/src/X.rs` or
//!   `X/`) sits in one layer of [`LAYERS`] and imports (`crate::X`) only
//!   modules of its own layer or below — never above;
//! - the modules import one another without a cycle;
//! - no Rust source file of the workspace is longer than [`MAX_LINES`]
//!   lines, its `#[cfg(test)] mod tests` excluded (and unit tests in a
//!   file of their own, `tests.rs`), unless [`LONG_FILES`] lists it (then
//!   it may not grow).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::paths::{io, workspace};
use crate::reproducible::Result;

/// The server's layers, bottom first. A module may import its own layer
/// and those below it.
pub const LAYERS: [(&str, &[&str]); 7] = [
    (
        "foundation",
        &[
            "age",
            "authz",
            "cache",
            "cli",
            "config",
            "docs",
            "exit",
            "logging",
            "metrics",
            "monitoring",
            "privileges",
            "systemd",
            "tls",
        ],
    ),
    (
        "platform",
        &[
            "audit",
            "db",
            "forwarding",
            "http",
            "listen",
            "outbound",
            "secrets",
            "telemetry",
        ],
    ),
    (
        "domain",
        &[
            "backups", "identity", "mail", "queue", "records", "webhooks",
        ],
    ),
    ("jobs", &["jobs"]),
    ("state", &["app"]),
    ("endpoints", &["api", "web"]),
    (
        "assembly",
        &[
            "admin", "commands", "demo", "diagnose", "router", "serve", "smoke", "startup",
            "support",
        ],
    ),
];

/// Longest a source file may be, its unit tests excluded.
pub const MAX_LINES: usize = 800;

/// Files over [`MAX_LINES`] still to be split, with the length they may
/// not exceed. Empty, and it stays so: a file that grows past the limit is
/// split by what its parts do.
pub const LONG_FILES: [(&str, usize); 0] = [];

/// The crates whose sources the length rule covers.
const CRATES: [&str; 8] = [
    "appliance",
    "contracts",
    "generative",
    "upgrade",
    "installer",
    "compat",
    "offline-bundle",
    "xtask",
];

/// The top-level modules each top-level module imports.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The part of a file before its unit tests (`#[cfg(test)]` then
/// `mod tests`), without comment lines.
fn code_of(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod tests"))
        .unwrap_or(lines.len());
    lines[..end].to_vec()
}

/// Top-level module names a line refers to as `crate::name`, also inside
/// `use crate::{a, b::c}`.
fn referenced(line: &str, modules: &BTreeSet<String>, out: &mut BTreeSet<String>) {
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            for item in inner.split(',') {
                let name = item.trim().split("::").next().unwrap_or_default().trim();
                if modules.contains(name) {
                    out.insert(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) {
                out.insert(name);
            }
        }
    }
}

/// The server's module graph, read from `appliance/src`.
pub fn graph(src: &Path) -> Result<Graph> {
    let mut modules = BTreeSet::new();
    for entry in fs::read_dir(src).map_err(io(src))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path
            .file_stem()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if path.is_dir()
            || (path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main")
        {
            modules.insert(name);
        }
    }
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for file in files {
        let rel = file.strip_prefix(src).map_err(|e| e.to_string())?;
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .unwrap_or_default();
        let module = first.strip_suffix(".rs").unwrap_or(&first).to_string();
        if !modules.contains(&module) {
            continue;
        }
        let text = fs::read_to_string(&file).map_err(io(&file))?;
        let mut refs = BTreeSet::new();
        for line in code_of(&text) {
            if !line.trim_start().starts_with("//") {
                referenced(line, &modules, &mut refs);
            }
        }
        refs.remove(&module);
        graph.entry(module).or_default().extend(refs);
    }
    Ok(graph)
}

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, members))| members.contains(&module))
        .map(|(i, (name, _))| (i, *name))
}

/// The import cycles (strongly connected components of more than one module).
pub fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found
}

/// Every break of the rules, each a sentence saying what to do.
pub fn violations(root: &Path) -> Result<Vec<String>> {
    let graph = graph(&root.join("appliance/src"))?;
    let mut found = Vec::new();
    for (module, imports) in &graph {
        let Some((layer, layer_name)) = layer_of(module) else {
            found.push(format!(
                "appliance/src/{module}: a top-level module in no layer; add it to \
                 xtask/src/architecture.rs LAYERS (and docs/ARCHITECTURE.md)"
            ));
            continue;
        };
        for import in imports {
            if let Some((above, above_name)) = layer_of(import) {
                if above > layer {
                    found.push(format!(
                        "{module} ({layer_name}) imports {import} ({above_name}), a layer above it: \
                         move what it needs down, or pass it in from above"
                    ));
                }
            }
        }
    }
    for cycle in cycles(&graph) {
        found.push(format!(
            "an import cycle between {}: break it (docs/decisions/0019-layers-without-cycles.md)",
            cycle.join(", ")
        ));
    }
    for krate in CRATES {
        let mut files = Vec::new();
        rust_files(&root.join(krate).join("src"), &mut files)?;
        for file in files {
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let rel = file
                .strip_prefix(root)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .to_string();
            let text = fs::read_to_string(&file).map_err(io(&file))?;
            let lines = code_of(&text).len();
            let allowed = LONG_FILES
                .iter()
                .find(|(path, _)| *path == rel)
                .map_or(MAX_LINES, |(_, n)| *n);
            if lines > allowed {
                found.push(format!(
                    "{rel} has {lines} lines besides its unit tests, over {allowed}: split it by \
                     what its parts do (unit tests may go to their own tests.rs)"
                ));
            }
        }
    }
    Ok(found)
}

/// Prints the layers with each module's imports; fails on a violation.
pub fn check() -> Result<()> {
    let root = workspace();
    let graph = graph(&root.join("appliance/src"))?;
    for (name, members) in LAYERS.iter().rev() {
        println!("{name}:");
        for m in *members {
            let imports: Vec<&str> = graph
                .get(*m)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            println!("  {m} → {}", imports.join(", "));
        }
    }
    let found = violations(&root)?;
    if found.is_empty() {
        println!("no import cycle, no upward import, no source file over {MAX_LINES} lines");
        return Ok(());
    }
    Err(found.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_keeps_its_layers() {
        let found = violations(&workspace()).expect("read the sources");
        assert!(found.is_empty(), "{}", found.join("\n"));
    }

    #[test]
    fn references_and_cycles_are_found() {
        let modules: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let mut refs = BTreeSet::new();
        referenced(
            "use crate::{a::X, b}; let y = crate::c::f(); crate::zz::g();",
            &modules,
            &mut refs,
        );
        assert_eq!(refs, modules);
        let graph: Graph = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec!["a"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(cycles(&graph), [vec!["a", "b", "c"]]);
        let text = "fn x() {}\n// crate::b\n#[cfg(test)]\nmod tests {\n    use crate::c;\n}\n";
        assert_eq!(code_of(text).len(), 2);
    }
}
