//! HTTP transport: the TLS-terminating server and the middleware every
//! request passes through (request id, security headers, body limits,
//! metrics and access log), the error body, the rate limiter's buckets and
//! the `/metrics` access rule. It names no route and no handler state.

pub mod body_limit;
pub mod error;
pub mod headers;
pub mod observe;
pub mod rate_limiter;
pub mod request_id;
pub mod scrape;
pub mod server;
