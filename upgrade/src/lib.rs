//! The upgrade tool's parts, shared with the installer
//! (`mogothrow77-install`): verified releases from offline bundles, the
//! host's service and package manager, the health probe, and the journaled
//! upgrade itself. The binaries are `src/main.rs` and `installer/`.

pub mod apply;
pub mod check;
pub mod faults;
pub mod host;
pub mod journal;
pub mod layout;
pub mod probe;
pub mod rehearse;
pub mod release;
pub mod settings;
pub mod system;

/// Exit codes shared by the upgrade tool and the installer (product
/// contract, docs/upgrade.md and docs/install.md).
pub use contracts::exit::ToolExit as Exit;
