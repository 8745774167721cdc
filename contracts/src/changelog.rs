//! Release notes: `CHANGELOG.md` (Keep a Changelog), compiled into the
//! server (the console's system page shows the running release's notes),
//! shipped in the packages and the bundle, where `mogothrow77-upgrade
//! check` prints the notes of every release it would cross.
//!
//! The file's shape, checked by this module's tests: `## [VERSION] - DATE`
//! per release, newest first; `### Title` sections, each a list of `- `
//! items (continuation lines indented); every release has the sections
//! [`REQUIRED`] and at least one of the change sections [`CHANGES`].

/// The repository's release notes.
pub const CHANGELOG: &str = include_str!("../../CHANGELOG.md");

/// Sections every release has (`None.` when there is nothing to say).
pub const REQUIRED: [&str; 3] = ["Might break", "Migrations", "Known issues"];

/// Keep a Changelog's change sections; a release has one at least.
pub const CHANGES: [&str; 6] = [
    "Added",
    "Changed",
    "Deprecated",
    "Removed",
    "Fixed",
    "Security",
];

/// One release's notes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Release {
    pub version: String,
    pub date: String,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Section {
    pub title: String,
    pub items: Vec<String>,
}

/// The releases of a changelog, in file order (newest first). Text
/// outside a release (the title, the preamble) is skipped.
pub fn parse(text: &str) -> Vec<Release> {
    let mut releases: Vec<Release> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            let (version, date) = match heading.split_once(" - ") {
                Some((v, d)) => (v, d.trim()),
                None => (heading, ""),
            };
            releases.push(Release {
                version: version.trim().trim_matches(['[', ']']).to_string(),
                date: date.to_string(),
                sections: Vec::new(),
            });
            continue;
        }
        let Some(release) = releases.last_mut() else {
            continue;
        };
        if let Some(title) = line.strip_prefix("### ") {
            release.sections.push(Section {
                title: title.trim().to_string(),
                items: Vec::new(),
            });
            continue;
        }
        let Some(section) = release.sections.last_mut() else {
            continue;
        };
        if let Some(item) = line.strip_prefix("- ") {
            section.items.push(item.trim().to_string());
        } else if line.starts_with("  ") && !line.trim().is_empty() {
            match section.items.last_mut() {
                Some(item) => {
                    item.push(' ');
                    item.push_str(line.trim());
                }
                None => section.items.push(line.trim().to_string()),
            }
        } else if !line.trim().is_empty() {
            section.items.push(line.trim().to_string());
        }
    }
    releases
}

/// `MAJOR.MINOR.PATCH` as numbers, for ordering.
fn numbers(version: &str) -> Option<(u64, u64, u64)> {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// The notes of `version`, when the changelog has them.
pub fn release<'a>(releases: &'a [Release], version: &str) -> Option<&'a Release> {
    releases.iter().find(|r| r.version == version)
}

/// The releases after `installed` up to and including `target`, oldest
/// first: what an upgrade between them crosses.
pub fn between<'a>(releases: &'a [Release], installed: &str, target: &str) -> Vec<&'a Release> {
    let (Some(from), Some(to)) = (numbers(installed), numbers(target)) else {
        return Vec::new();
    };
    let mut crossed: Vec<&Release> = releases
        .iter()
        .filter(|r| numbers(&r.version).is_some_and(|v| v > from && v <= to))
        .collect();
    crossed.sort_by_key(|r| numbers(&r.version));
    crossed
}

/// A release's notes as plain text lines, each indented by `indent`.
pub fn text(release: &Release, indent: &str) -> String {
    let mut out = format!("{indent}{} ({})\n", release.version, release.date);
    for section in &release.sections {
        out.push_str(&format!("{indent}  {}:\n", section.title));
        for item in &section.items {
            out.push_str(&format!("{indent}    - {item}\n"));
        }
    }
    out
}

/// What is wrong with a changelog's shape (empty when nothing).
pub fn problems(releases: &[Release]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in releases.iter().enumerate() {
        if numbers(&r.version).is_none() {
            out.push(format!("release {:?} is not MAJOR.MINOR.PATCH", r.version));
            continue;
        }
        if r.date.is_empty() {
            out.push(format!(
                "{}: no date (`## [{}] - YYYY-MM-DD`)",
                r.version, r.version
            ));
        }
        for required in REQUIRED {
            match r.sections.iter().find(|s| s.title == required) {
                None => out.push(format!("{}: no `### {required}` section", r.version)),
                Some(s) if s.items.is_empty() => out.push(format!(
                    "{}: `### {required}` is empty (write None.)",
                    r.version
                )),
                Some(_) => {}
            }
        }
        if !r
            .sections
            .iter()
            .any(|s| CHANGES.contains(&s.title.as_str()))
        {
            out.push(format!(
                "{}: none of the change sections {}",
                r.version,
                CHANGES.join(", ")
            ));
        }
        for s in &r.sections {
            if !REQUIRED.contains(&s.title.as_str()) && !CHANGES.contains(&s.title.as_str()) {
                out.push(format!("{}: unknown section `### {}`", r.version, s.title));
            }
        }
        if let Some(older) = releases.get(i + 1) {
            if numbers(&older.version) >= numbers(&r.version) {
                out.push(format!(
                    "{} is listed before {}: newest first",
                    r.version, older.version
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Changelog\n\nPreamble.\n\n\
        ## [0.2.0] - 2027-01-10\n### Added\n- Two things,\n  wrapped.\n- Three.\n\
        ### Might break\n- None.\n### Migrations\n- V11 (expand), seconds.\n\
        ### Known issues\n- None.\n\n\
        ## [0.1.1] - 2026-12-20\n### Fixed\n- A bug.\n### Might break\n- None.\n\
        ### Migrations\n- None.\n### Known issues\n- None.\n";

    #[test]
    fn releases_sections_and_wrapped_items_are_read() {
        let releases = parse(SAMPLE);
        assert_eq!(releases.len(), 2);
        assert_eq!(releases[0].version, "0.2.0");
        assert_eq!(releases[0].date, "2027-01-10");
        assert_eq!(releases[0].sections[0].title, "Added");
        assert_eq!(
            releases[0].sections[0].items,
            ["Two things, wrapped.", "Three."]
        );
        assert!(problems(&releases).is_empty(), "{:?}", problems(&releases));
        let text = text(&releases[1], "  ");
        assert!(
            text.starts_with("  0.1.1 (2026-12-20)\n    Fixed:\n      - A bug.\n"),
            "{text}"
        );
    }

    #[test]
    fn an_upgrade_crosses_the_releases_after_the_installed_one() {
        let releases = parse(SAMPLE);
        let crossed: Vec<&str> = between(&releases, "0.1.0", "0.2.0")
            .iter()
            .map(|r| r.version.as_str())
            .collect();
        assert_eq!(crossed, ["0.1.1", "0.2.0"]);
        assert!(between(&releases, "0.2.0", "0.2.0").is_empty());
        assert_eq!(between(&releases, "0.1.1", "0.1.10").len(), 0);
        assert!(release(&releases, "0.1.1").is_some());
    }

    #[test]
    fn a_release_missing_a_section_or_out_of_order_is_named() {
        let broken = "## [0.1.0] - 2026-01-01\n### Added\n- x\n### Might break\n- None.\n\
                      ## [0.2.0]\n### Oops\n- y\n";
        let problems = problems(&parse(broken));
        for expected in [
            "0.1.0: no `### Migrations` section",
            "0.1.0 is listed before 0.2.0: newest first",
            "0.2.0: no date",
            "0.2.0: unknown section `### Oops`",
            "0.2.0: none of the change sections",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{expected}: {problems:?}"
            );
        }
    }

    /// The repository's own changelog keeps the shape and starts with the
    /// release this workspace builds.
    #[test]
    fn the_changelog_is_well_formed_and_names_this_release_first() {
        let releases = parse(CHANGELOG);
        assert!(problems(&releases).is_empty(), "{:?}", problems(&releases));
        assert_eq!(
            releases.first().map(|r| r.version.as_str()),
            Some(env!("CARGO_PKG_VERSION")),
            "CHANGELOG.md's newest release is the workspace version"
        );
    }
}
