//! Serving the built web app (`dist/`): compressed, cached, revalidated.
//!
//! - **Compression**: `scripts/build-web.sh` writes `NAME.br` (brotli) and `NAME.gz` (gzip)
//!   beside each asset, at the highest levels, once per build. The request's
//!   `Accept-Encoding` picks one (`content-encoding`, `Vary: Accept-Encoding`); a client
//!   that accepts neither gets the file as it is. Precompressed, not compressed per request:
//!   the build can afford brotli 11 and gzip 9, which a per-request compressor cannot.
//! - **Caching**: Trunk names every asset after its content (`fleet-web-<hash>_bg.wasm`), so
//!   those are `immutable` for a year; anything else (`index.html`, the client-side routes
//!   that get it) is `no-cache`: always revalidated, so a new build shows at once.
//! - **Revalidation**: every file carries `ETag` and `Last-Modified`, so a conditional
//!   request (`If-None-Match`, `If-Modified-Since`) of an unchanged file gets `304`.
//!
//! `fleet aws publish-page` uploads with the same [`cache_control`].
//!
//! A missing path without an extension gets `index.html` (a single-page app's route); a
//! missing file with one (an asset of an older build) gets `404`, never `index.html` under a
//! year-long cache.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::services::{ServeDir, ServeFile};

/// `Cache-Control` of a file whose name carries its content's hash.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of everything else: kept, but revalidated before each use.
pub const NO_CACHE: &str = "no-cache";

/// The web app in `dist` (which holds an `index.html`), as a service for the router's
/// fallback.
pub(crate) fn service(dist: &Path) -> Router {
    let index = ServeFile::new(dist.join("index.html"))
        .precompressed_br()
        .precompressed_gzip();
    let routes = Router::new().fallback(spa_route).with_state(index);
    let files = ServeDir::new(dist)
        .precompressed_br()
        .precompressed_gzip()
        .fallback(routes);
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(set_cache_control))
}

/// A path with no file behind it: `index.html` for a client-side route, `404` for a file.
async fn spa_route(State(mut index): State<ServeFile>, request: Request) -> Response {
    let last = request.uri().path().rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return StatusCode::NOT_FOUND.into_response();
    }
    match index.try_call(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Sets `Cache-Control` on what was found (`200`, `206`, `304`): see the module doc.
async fn set_cache_control(request: Request, next: Next) -> Response {
    let policy = cache_control(request.uri().path());
    let mut response = next.run(request).await;
    let found = matches!(
        response.status(),
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
    );
    if found {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    response
}

/// The `Cache-Control` of a file, by its path (a request path or an object key): the same
/// rule wherever the app is served (`fleet local`, `fleet aws publish-page`).
pub fn cache_control(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or_default();
    if content_hashed(name) {
        IMMUTABLE
    } else {
        NO_CACHE
    }
}

/// Whether a file name carries a content hash as Trunk writes it: `STEM-HASH.EXT` or
/// `STEM-HASH_bg.wasm`, `HASH` a 64-bit hash in lowercase hex without leading zeros (so up
/// to 16 digits; 8 at least, which all but one in 4 billion have). `scripts/build-web.sh`
/// names the loader it moves out of `index.html` the same way (`boot-HASH.js`).
fn content_hashed(name: &str) -> bool {
    let Some((stem, _ext)) = name.split_once('.') else {
        return false;
    };
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(base, hash)| {
        !base.is_empty()
            && (8..=16).contains(&hash.len())
            && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_hashed_names_are_immutable() {
        for hashed in [
            "/fleet-web-3f2a9c0d11e4b7a5_bg.wasm",
            "/fleet-web-3f2a9c0d11e4b7a5.js",
            "/style-9a0b1c2d3e4f5a6b.css",
            "/sub/path/style-0123abcd.css",
            "/boot-0123456789abcdef.js",
            "fleet/fleet-web-24f6d5f47fe1aae_bg.wasm",
        ] {
            assert_eq!(cache_control(hashed), IMMUTABLE, "{hashed}");
        }
        for plain in [
            "/",
            "/index.html",
            "/config.json",
            "/fleet-web.js",
            "/devices/d-0001",
            "/style-XYZ0123456789ab.css",
            "/style-abc.css",
            "/-0123456789abcdef.js",
            "/fleet-web-3f2a9c0d11e4b7a5",
        ] {
            assert_eq!(cache_control(plain), NO_CACHE, "{plain}");
        }
    }
}
