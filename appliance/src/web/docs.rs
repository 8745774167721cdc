//! `/docs/`: the documentation compiled into the binary, as HTML pages
//! (`/docs/operations.md`, `/docs/runbooks/alerts.md`, … — the paths of
//! `docs/`, so links between pages work unchanged) and an index. Public,
//! like the console's assets; same strict CSP (one stylesheet, no script).

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::AppState;
use crate::docs;
use crate::http::error::{ErrorBody, ErrorCode};

const STYLE: &str = include_str!("../../console/docs.css");

fn html_page(title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · Mogothrow77 documentation</title>\n\
         <link rel=\"stylesheet\" href=\"/docs/docs.css\">\n\
         <link rel=\"icon\" href=\"/assets/favicon.svg\" type=\"image/svg+xml\">\n</head>\n<body>\n\
         <header><a href=\"/docs/\">Mogothrow77 documentation</a> · <a href=\"/\">console</a> · \
         version {}</header>\n<main>\n{body}</main>\n</body>\n</html>\n",
        docs::escape(title),
        env!("APPLIANCE_VERSION"),
    );
    super::console::asset("text/html; charset=utf-8", page)
}

async fn index() -> Response {
    let mut body = String::from("<h1>Mogothrow77 documentation</h1>\n<ul class=\"index\">\n");
    for (name, text) in docs::pages() {
        let title = docs::title(text);
        body.push_str(&format!(
            "<li><a href=\"/docs/{0}\">{1}</a> <span class=\"path\">{0}</span></li>\n",
            docs::escape(name),
            docs::escape(&title),
        ));
    }
    body.push_str("</ul>\n");
    html_page("Contents", &body)
}

async fn page(Path(path): Path<String>) -> Response {
    if path == "docs.css" {
        return super::console::asset("text/css; charset=utf-8", STYLE);
    }
    match docs::page(&path) {
        Some(markdown) => {
            let rendered = docs::render(markdown);
            html_page(&rendered.title, &rendered.html)
        }
        None => ErrorBody::new(
            ErrorCode::NotFound,
            "no such page in the documentation; the list is at /docs/",
        )
        .into_response(),
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/docs",
            get(|| async { axum::response::Redirect::permanent("/docs/") }),
        )
        .route("/docs/", get(index))
        .route("/docs/{*path}", get(page))
}
