//! Process exit codes: part of the product's contract (docs/operations.md,
//! docs/upgrade.md, docs/install.md). The tools read the server's; packages
//! and operators read both.

use std::process::ExitCode;

/// The server's (`mogothrow77`) exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerExit {
    /// 0: success.
    Ok,
    /// 1: failure (including `migrate --check` with pending migrations).
    Failure,
    /// 2: usage or configuration error.
    Config,
    /// 3: schema incompatible: it needs a newer binary, or migrations are
    /// pending with auto-migrate off.
    SchemaIncompatible,
    /// 4: database unreachable at start.
    DatabaseUnreachable,
    /// 5: a required system component is missing (e.g. PostgreSQL binaries).
    MissingComponent,
    /// 6: `diagnose` found warnings and no failure.
    Warnings,
}

impl ServerExit {
    pub const fn code(self) -> u8 {
        match self {
            ServerExit::Ok => 0,
            ServerExit::Failure => 1,
            ServerExit::Config => 2,
            ServerExit::SchemaIncompatible => 3,
            ServerExit::DatabaseUnreachable => 4,
            ServerExit::MissingComponent => 5,
            ServerExit::Warnings => 6,
        }
    }

    /// The exit an exit code stands for, when it is one of the server's.
    pub fn from_code(code: i32) -> Option<ServerExit> {
        [
            ServerExit::Ok,
            ServerExit::Failure,
            ServerExit::Config,
            ServerExit::SchemaIncompatible,
            ServerExit::DatabaseUnreachable,
            ServerExit::MissingComponent,
            ServerExit::Warnings,
        ]
        .into_iter()
        .find(|e| i32::from(e.code()) == code)
    }
}

impl From<ServerExit> for ExitCode {
    fn from(e: ServerExit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// The installer's and the upgrade tool's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ToolExit {
    /// 0: done.
    Done = 0,
    /// 1: failed, and the previous state was brought back (a rolled-back
    /// upgrade, a failed rehearsal).
    Failed = 1,
    /// 2: usage error.
    Usage = 2,
    /// 10: refused before changing anything.
    Refused = 10,
    /// 11: stopped after changes began; an admin must act (the message
    /// names the runbook section).
    NeedsAdmin = 11,
}

impl From<ToolExit> for ExitCode {
    fn from(e: ToolExit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        assert_eq!(ServerExit::SchemaIncompatible.code(), 3);
        assert_eq!(
            ServerExit::from_code(3),
            Some(ServerExit::SchemaIncompatible)
        );
        assert_eq!(ServerExit::from_code(10), None);
        assert_eq!(ToolExit::Refused as u8, 10);
        assert_eq!(ToolExit::NeedsAdmin as u8, 11);
    }
}
