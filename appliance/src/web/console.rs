//! The web console: static assets compiled into the binary (no CDN, works
//! air-gapped), served same-origin under the strict CSP. Every console
//! path serves the same page; the script renders the view and talks to
//! `/api/v1` like any integrator.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::AppState;

const INDEX: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/app.js");
const STYLE: &str = include_str!("../../console/app.css");
const ICON: &str = include_str!("../../console/favicon.svg");

/// The console's pages (client-side routes).
pub const PAGES: [&str; 15] = [
    "/",
    "/login",
    "/setup",
    "/reset-password",
    "/users",
    "/account",
    "/audit",
    "/system",
    "/collections",
    "/collections/{name}",
    "/collections/{name}/schema",
    "/exports",
    "/jobs",
    "/webhooks",
    "/imports",
];

/// A response the binary carries: its content type, revalidated on use.
pub(super) fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Assets change with the binary; revalidate rather than cache blindly.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for page in PAGES {
        router = router.route(page, get(index));
    }
    router
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/assets/favicon.svg",
            get(|| async { asset("image/svg+xml", ICON) }),
        )
}
