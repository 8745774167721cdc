//! Asking a release's server binary its schema level.

use std::path::Path;

use crate::system;

/// The schema level a server binary reports (`mogothrow77 version`).
pub(super) fn schema_level(binary: &Path) -> Option<u32> {
    let out = system::run(std::process::Command::new(binary).arg("version")).ok()?;
    out.rsplit("schema level ")
        .next()?
        .trim_end_matches([')', '\n', ' '])
        .parse()
        .ok()
}
