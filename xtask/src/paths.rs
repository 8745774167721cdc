//! Where things are: the workspace, the packaging files, and one way to
//! turn an I/O error into a message that names the path.

use std::path::{Path, PathBuf};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn packaging() -> PathBuf {
    workspace().join("appliance/packaging")
}

/// `map_err(io(path))`: an I/O error as "PATH: reason".
pub fn io(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}
