//! Requests announcing a body over `http.body_limit_bytes` are refused with
//! 413 before any of it is read; bodies without a length are bounded by
//! axum's `DefaultBodyLimit` when extracted. Import uploads (`POST
//! /api/v1/collections/{c}/imports`) are streamed to the database by their
//! handler and have their own limit, `jobs.import_max_mb`; batch writes
//! (`POST /api/v1/collections/{c}/records/batch`) theirs,
//! `api.batch_body_limit_bytes`.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ErrorBody, ErrorCode};

/// The largest request bodies, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    /// Every request but the two below (`http.body_limit_bytes`).
    pub general: usize,
    /// An import upload, streamed to the database (`jobs.import_max_mb`).
    pub import: usize,
    /// A batch write (`api.batch_body_limit_bytes`).
    pub batch: usize,
}

/// Whether `path` is `/api/v1/collections/<name><suffix>`.
fn is_collection_route(path: &str, suffix: &str) -> bool {
    path.strip_prefix("/api/v1/collections/")
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// The three kinds of request body, by their limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    General,
    Import,
    Batch,
}

fn kind(method: &axum::http::Method, path: &str) -> Kind {
    if method != axum::http::Method::POST {
        Kind::General
    } else if is_collection_route(path, "/imports") {
        Kind::Import
    } else if is_collection_route(path, "/records/batch") {
        Kind::Batch
    } else {
        Kind::General
    }
}

impl BodyLimit {
    fn limit(&self, kind: Kind) -> (usize, &'static str) {
        match kind {
            Kind::General => (self.general, "http.body_limit_bytes"),
            Kind::Import => (self.import, "jobs.import_max_mb"),
            Kind::Batch => (self.batch, "api.batch_body_limit_bytes"),
        }
    }

    /// The limit of a request and the key that sets it.
    pub fn of(&self, method: &axum::http::Method, path: &str) -> (usize, &'static str) {
        self.limit(kind(method, path))
    }

    /// The limit of a body read whole into memory (to compare retries of
    /// an idempotent request): a batch write's own; an import upload,
    /// which otherwise streams, is then bound by the general limit.
    pub fn buffered(&self, method: &axum::http::Method, path: &str) -> (usize, &'static str) {
        match kind(method, path) {
            Kind::Import => self.limit(Kind::General),
            other => self.limit(other),
        }
    }
}

pub async fn middleware(State(limit): State<BodyLimit>, request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (limit, key) = limit.of(request.method(), request.uri().path());
    if announced.is_some_and(|len| len > limit as u64) {
        return ErrorBody::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body is larger than the {limit} byte limit; send less data \
                 (the limit is {key})"
            ),
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn each_request_has_its_limit_and_imports_buffer_under_the_general_one() {
        let limits = BodyLimit {
            general: 1,
            import: 2,
            batch: 3,
        };
        let of = |m: &Method, p: &str| limits.of(m, p).0;
        assert_eq!(of(&Method::POST, "/api/v1/collections/c/records"), 1);
        assert_eq!(of(&Method::POST, "/api/v1/collections/c/imports"), 2);
        assert_eq!(of(&Method::POST, "/api/v1/collections/c/records/batch"), 3);
        assert_eq!(of(&Method::PATCH, "/api/v1/collections/c/records/batch"), 1);
        assert_eq!(of(&Method::POST, "/api/v1/collections/a/b/imports"), 1);
        assert_eq!(of(&Method::POST, "/api/v1/collections//imports"), 1);
        let buffered = |p: &str| limits.buffered(&Method::POST, p);
        assert_eq!(
            buffered("/api/v1/collections/c/imports"),
            (1, "http.body_limit_bytes")
        );
        assert_eq!(
            buffered("/api/v1/collections/c/records/batch"),
            (3, "api.batch_body_limit_bytes")
        );
    }
}
