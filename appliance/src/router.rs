//! The whole application's router: the API (`api`), the other endpoints
//! (`web`: health, metrics, console, docs) and the middleware every request
//! passes through (`http`). The one module that names both.

use axum::extract::DefaultBodyLimit;
use axum::Router;

use crate::app::AppState;
use crate::http::body_limit;
use crate::http::{error, headers, host, observe, request_id};

/// The whole application: every route, then the middleware every request
/// passes through (outermost last): body limit, the Host check, metrics
/// and access log, security headers, request id.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let hosts = state.allowed_hosts.clone();
    let limits = state.body_limits;
    let routes = Router::new()
        .merge(crate::web::health::router())
        .merge(crate::api::router(state.clone()))
        .merge(crate::web::console::router())
        .merge(crate::web::docs::router())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(limits.general))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            body_limit::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            hosts,
            host::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            observe::middleware,
        ));
    headers::apply(routes).layer(axum::middleware::from_fn(request_id::middleware))
}
