//! The tools' messages name a section of a document as the package
//! installs it (`/usr/share/doc/mogothrow77/upgrade.md.gz, section
//! a-migration-failed`): every such section must exist in that document
//! (`docs/upgrade.md` has a heading `a-migration-failed`), and the document
//! is shipped (the packages and the bundle carry all of `docs/`).

use std::fs;
use std::path::{Path, PathBuf};

const PREFIX: &str = "/usr/share/doc/mogothrow77/";

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(document, section)` pairs named in `text`.
fn references(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices(PREFIX) {
        let rest = &text[at + PREFIX.len()..];
        let Some((doc, after)) = rest.split_once(".md.gz, section ") else {
            continue;
        };
        if doc.contains(char::is_whitespace) {
            continue;
        }
        let section: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '{' || *c == '}')
            .collect();
        found.push((format!("{doc}.md"), section));
    }
    found
}

/// A heading's anchor as GitHub (and the server's /docs/) makes it.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_section_a_message_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["upgrade/src", "installer/src", "appliance/src"] {
        sources(&root.join(dir), &mut files);
    }
    let mut checked = 0;
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (doc, section) in references(&text) {
            if section == "{section}" {
                continue; // formatted from a named section, each checked where it is named
            }
            let path = root.join("docs").join(&doc);
            let markdown = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{} names {doc}: {e}", file.display()));
            assert!(
                markdown
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .any(|l| slug(l.trim_start_matches('#').trim()) == section),
                "{} names section {section} of {doc}, which has no such heading",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} references found: the scan is broken"
    );
}

#[test]
fn references_are_read_as_written() {
    let text = "x (/usr/share/doc/mogothrow77/upgrade.md.gz, section a-migration-failed)\" y";
    assert_eq!(
        references(text),
        [("upgrade.md".to_string(), "a-migration-failed".to_string())]
    );
}
