//! The page the gateway serves at `/`: pick a view, watch a row's groups
//! update live, page through a group, see the view's status; in dev mode, a
//! form that places an order. One file, no external fetch, embedded here.

use axum::http::header;
use axum::response::IntoResponse;

pub const INDEX_HTML: &str = include_str!("index.html");

pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Everything the page needs is in it: forbid loading anything else.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        INDEX_HTML,
    )
}
