//! The OpenAPI 3.1 document, served at `/api/v1/openapi.json`. It is kept
//! by hand next to the code (`openapi.json`) and checked against the
//! registered routes by a test: a route missing from the document, a
//! documented route that does not exist, or a wrong `x-access` fails it.

use axum::http::header;
use axum::response::IntoResponse;

use super::{Api, Method};
use crate::authz::Access;

pub const DOCUMENT: &str = include_str!("openapi.json");

pub fn routes(api: Api) -> Api {
    api.route(
        Method::Get,
        "/api/v1/openapi.json",
        Access::Public,
        document,
    )
}

async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use crate::http::error::ErrorCode;

    fn document() -> Value {
        serde_json::from_str(super::DOCUMENT).expect("openapi.json is valid JSON")
    }

    #[test]
    fn it_is_openapi_3_1() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["info"]["title"].is_string());
    }

    #[test]
    fn every_route_is_documented_with_its_access_and_nothing_else_is() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let mut registered = BTreeSet::new();
        for spec in crate::api::routes() {
            let method = spec.method.as_str().to_lowercase();
            registered.insert((spec.path.to_string(), method.clone()));
            let operation = &paths
                .get(spec.path)
                .unwrap_or_else(|| panic!("{} is missing from openapi.json", spec.path))[&method];
            assert!(
                operation.is_object(),
                "{} {} is missing from openapi.json",
                spec.method.as_str(),
                spec.path
            );
            assert_eq!(
                operation["x-access"],
                spec.access.to_string(),
                "x-access of {} {}",
                spec.method.as_str(),
                spec.path
            );
            assert!(
                operation["operationId"].is_string() && operation["summary"].is_string(),
                "{} {} needs an operationId and a summary",
                spec.method.as_str(),
                spec.path
            );
        }
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    assert!(
                        registered.contains(&(path.clone(), method.clone())),
                        "openapi.json documents {method} {path}, which the server does not have"
                    );
                }
            }
        }
    }

    #[test]
    fn every_error_code_is_documented() {
        let doc = document();
        let documented: BTreeSet<String> = doc["components"]["schemas"]["Error"]["properties"]
            ["code"]["enum"]
            .as_array()
            .expect("Error.code enum")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let actual: BTreeSet<String> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(documented, actual);
    }
}
