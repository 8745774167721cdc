//! What the server (`mogothrow77`), the installer and the upgrade tool
//! agree on, written once (ADR 0019): the exit codes each reads from the
//! others ([`exit`]), the rehearsal report the server writes and the tool
//! reads and prints ([`rehearsal`]), the default locations and settings of
//! a packaged install ([`locations`]), the readiness probe that trusts
//! exactly the served certificate ([`probe`]), and the release notes the
//! server shows and the upgrade tool prints ([`changelog`]).

pub mod changelog;
pub mod exit;
pub mod locations;
pub mod probe;
pub mod rehearsal;
