//! The endpoints besides the API: `/healthz`, `/readyz` and `/metrics`
//! (health), the web console's files (console) and the documentation as
//! HTML under `/docs/` (docs).

pub mod console;
pub mod docs;
pub mod health;
