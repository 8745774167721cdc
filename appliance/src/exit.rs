//! Process exit codes. Operators, packages and the upgrade tool rely on them;
//! they are part of the product's contract (docs/operations.md).

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
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
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Config => 2,
            Exit::SchemaIncompatible => 3,
            Exit::DatabaseUnreachable => 4,
            Exit::MissingComponent => 5,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}
