//! HTTP transport: the TLS-terminating server and the middleware every
//! request passes through (request id, security headers, body limits,
//! metrics and access log), the error body, the rate limiter's buckets and
//! the `/metrics` access rule. It names no route and no handler state.

pub mod body_limit;
pub mod error;
pub mod headers;
pub mod host;
pub mod observe;
pub mod query_limit;
pub mod rate_limiter;
pub mod request_id;
pub mod scrape;
pub mod server;

/// Percent-encodes everything but RFC 3986's unreserved characters (a
/// query parameter's value, a label in a URI).
pub fn percent_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for byte in input.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
