//! The readiness probe (`contracts::probe`: `/readyz` trusting exactly the
//! served certificate), with the version of releases that did not report
//! it there read from the installed binary.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::host;
use crate::layout::Layout;

/// What a ready server reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub version: String,
    pub schema_level: u64,
}

/// Polls `/readyz` until it answers ready or `limit` passes.
pub fn wait_ready(addr: SocketAddr, cert_file: &Path, limit: Duration) -> Result<Ready, String> {
    let ready = contracts::probe::wait_ready(addr, cert_file, limit)?;
    let version = match ready.version {
        Some(v) => v,
        None => host::installed_version(&Layout::detect().binary())?
            .map(|v| v.to_string())
            .unwrap_or_default(),
    };
    Ok(Ready {
        version,
        schema_level: ready.schema_level,
    })
}
