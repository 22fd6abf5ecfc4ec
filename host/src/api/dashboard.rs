//! The operator dashboard: static files from `host/dashboard/`, compiled into the binary, served
//! at `/` beside the API. They hold no data: the page asks the API for everything, with the
//! admin token the operator pastes at sign-in, so serving them needs no token.
//!
//! Every response carries a Content-Security-Policy that allows only this origin's own scripts,
//! styles and connections (no inline script, no inline style, no framing): a value from the API
//! that slipped into the page as markup still could not run. Files are revalidated on every load
//! (`Cache-Control: no-cache` with an `ETag` of their SHA-256), so an upgraded host never serves
//! a page half old and half new, and an unchanged file costs a 304.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

use crate::error::{Error, ErrorCode};

#[derive(Embed)]
#[folder = "dashboard/"]
#[exclude = "*.md"]
struct Assets;

/// What the dashboard's pages may load and connect to: their own origin, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Serves a dashboard file for `GET`/`HEAD` of its path (`/` is `index.html`); anything else is
/// the API's 404, so unknown API routes keep their problem+json answer.
pub async fn serve_or_not_found(request: Request) -> Response {
    let path = request.uri().path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    match Assets::get(path).filter(|_| readable && !path.starts_with("api/")) {
        Some(file) => respond(&file, request.headers()),
        None => Error::new(ErrorCode::RouteNotFound, "no such route").into_response(),
    }
}

fn respond(file: &rust_embed::EmbeddedFile, request: &HeaderMap) -> Response {
    let etag: String = file
        .metadata
        .sha256_hash()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let etag = HeaderValue::from_str(&format!("\"{etag}\"")).expect("hex is a header value");
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::ETAG, etag.clone());
    let unchanged = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*");
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime.ends_with("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).expect("a MIME type is a header value"),
    );
    (headers, file.data.to_vec()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_are_embedded_and_reference_no_inline_script_or_style() {
        let index = Assets::get("index.html").expect("index.html is embedded");
        let html = std::str::from_utf8(&index.data).unwrap();
        assert!(html.contains("<script type=\"module\" src=\"/js/app.js\">"));
        for file in Assets::iter() {
            let text = String::from_utf8(Assets::get(&file).unwrap().data.to_vec()).unwrap();
            for forbidden in ["<script>", "style=\"", " onclick=", "innerHTML", "eval("] {
                assert!(!text.contains(forbidden), "{file} contains {forbidden}");
            }
        }
        assert!(Assets::get("README.md").is_none(), "docs are not served");
    }
}
