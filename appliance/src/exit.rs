//! Process exit codes. Operators, packages and the upgrade tool rely on them;
//! they are part of the product's contract (docs/operations.md), written
//! once in `contracts::exit`.

pub use contracts::exit::ServerExit as Exit;
