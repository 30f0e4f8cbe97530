//! The console the gateway serves at `/`: every view with its health, one
//! view's figures and charts, its row changes live, a group's rows, a row,
//! its dead letters and revisions; in dev mode, a form that places an order.
//! Embedded here, nothing fetched from elsewhere, and a strict content
//! security policy: scripts and styles come from these files only.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use matview_api::problem::Problem;

/// Everything the page needs is here: forbid loading anything else, and
/// any inline script or style (a payload shown as text can never run).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub const INDEX_HTML: &str = include_str!("console/index.html");

/// The console's files: name, content type, text.
const ASSETS: [(&str, &str, &str); 9] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("console/app.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("console/live.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("console/charts.js"),
    ),
    (
        "rollout.js",
        "text/javascript; charset=utf-8",
        include_str!("console/rollout.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("console/api.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("console/views.js"),
    ),
    (
        "deadletters.js",
        "text/javascript; charset=utf-8",
        include_str!("console/deadletters.js"),
    ),
    (
        "orders.js",
        "text/javascript; charset=utf-8",
        include_str!("console/orders.js"),
    ),
];

pub async fn index() -> impl IntoResponse {
    page("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, text)) => page(content_type, text).into_response(),
        None => Problem::new(
            StatusCode::NOT_FOUND,
            "not found",
            format!("the console has no file {file}"),
        )
        .into_response(),
    }
}

fn page(content_type: &'static str, text: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
}
