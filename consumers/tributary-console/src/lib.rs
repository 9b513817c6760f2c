//! The operators' console: a React app (`web/`) built by npm and embedded
//! in the binary by `build.rs`, served at `/console/`. The app calls the
//! HTTP API of the same process with the key a person signs in with.
//!
//! `cargo build` works without npm: the console is then a page saying how
//! to build it.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Whether the built console is in this binary.
pub fn built() -> bool {
    !assets::ASSETS.is_empty()
}

/// `/` and `/console` lead to `/console/`, which serves the app (or the
/// page saying how to build it); `/console/{file}` serves its files.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(index))
        .route("/console/{*file}", get(file))
}

async fn index() -> Response {
    match asset("index.html") {
        Some((kind, bytes)) => (
            [
                (header::CONTENT_TYPE, kind),
                // A new build's index names new asset files.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        None => Html(NOT_BUILT).into_response(),
    }
}

async fn file(Path(name): Path<String>) -> Response {
    match asset(&name) {
        Some((kind, bytes)) => (
            [
                (header::CONTENT_TYPE, kind),
                // Vite names built assets by their content's hash.
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no console file {name:?}")).into_response(),
    }
}

fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    assets::ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, kind, bytes)| (*kind, *bytes))
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tributary console: not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>The console is not built into this binary</h1>
<p>This <code>tributary</code> was built without the console's files. Build them, then build the binary again:</p>
<pre>cd consumers/tributary-console/web
npm ci
npm run build
cd -
cargo build --release -p tributary</pre>
<p>The README's run command (<code>infra/scripts/up.sh</code>) does all of this. The HTTP API works without the console:
see <a href="/openapi.json">/openapi.json</a>.</p>
</body></html>
"#;
