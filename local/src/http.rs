//! The stack's HTTP side: the web app (`web_app`: compressed and cached), its `/config.json`
//! (`page_config`), `/healthz`, `/metrics`, and a small read-only `/api/stats`.
//!
//! # Who may ask (ARCHITECTURE §4.8)
//! `/config.json` hands each page a credential for its own namespace of devices. It has no
//! CORS headers, so only a page of this stack's own origin can read it; the WebSocket
//! listener refuses pages of other origins. Two more guards, on every request:
//! - the `Host` must be one of the stack's names (loopback names, its address, the hosts
//!   of `--allow-origin`): a page whose own name resolves to 127.0.0.1 (DNS rebinding) is
//!   same-origin with itself, not with this stack, and is refused;
//! - a browser on another machine (with `--allow-remote`) needs the stack's access key
//!   once, `/?key=…` as the banner prints it, which becomes a `SameSite=Strict` cookie.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use fleet_broker::Publisher;
use fleet_core::topic::{ALARMS_TOPIC, COMMAND_FILTER, TELEMETRY_FILTER};
use serde_json::json;
use tracing::warn;

use crate::auth::{Keys, Subject};
use crate::metrics::Metrics;
use crate::page_config::{PageConfig, ServedFile};
use crate::store::SqliteStore;
use crate::web_app;

/// What the HTTP handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) broker: Publisher,
    /// The WebSocket listener, for `/config.json`.
    pub(crate) ws: Option<SocketAddr>,
    /// A read-only view of the database for `/api/stats` (WAL lets it read while the
    /// pipeline writes).
    pub(crate) db: Option<Arc<Mutex<SqliteStore>>>,
    pub(crate) pipeline_alive: Arc<AtomicBool>,
    pub(crate) band: (f64, f64),
    /// Issues the pages' credentials.
    pub(crate) keys: Arc<Keys>,
    /// What `/config.json` answers.
    pub(crate) page_config: Arc<PageConfig>,
}

/// Who may send requests at all (see the module doc).
#[derive(Debug)]
pub(crate) struct Access {
    keys: Arc<Keys>,
    metrics: Arc<Metrics>,
    /// Host names that name this stack (`127.0.0.1`, `localhost`, …), lowercase, without
    /// port: a rebinding page's host differs by name, and a port forward may change ports.
    hosts: Vec<String>,
}

/// The cookie that carries the access key of a remote browser.
const KEY_COOKIE: &str = "fleet_key";

impl Access {
    /// The guard for a stack whose pages come from `origins` (`http://host:port`).
    pub(crate) fn new(keys: Arc<Keys>, metrics: Arc<Metrics>, origins: &[String]) -> Access {
        let hosts = origins
            .iter()
            .filter_map(|o| o.split_once("://"))
            .map(|(_, authority)| host_name(authority).to_ascii_lowercase())
            .collect();
        Access {
            keys,
            metrics,
            hosts,
        }
    }

    fn key_ok(&self, key: &str) -> bool {
        self.keys.verify(&Subject::Http, key.as_bytes())
    }
}

/// The router: API routes, then the web app from `dist` (`web_app`: with `index.html` for
/// client-side routes, as a single-page app needs), or a page explaining how to build it;
/// every request passes the [`Access`] guard first.
pub(crate) fn router(state: AppState, access: Access, dist: Option<&Path>) -> Router {
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/config.json", get(config))
        .route("/api/stats", get(stats))
        .with_state(state);
    let app = match dist {
        Some(dist) => api.fallback_service(web_app::service(dist)),
        None => api.fallback(no_app),
    };
    app.layer(middleware::from_fn_with_state(Arc::new(access), guard))
}

/// The host name of an authority (`host:port`, `[::1]:port`, or just the host).
fn host_name(authority: &str) -> &str {
    match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(authority, |(ip, _)| ip),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    }
}

/// The [`Access`] guard: this stack's names only; remote browsers with the access key.
async fn guard(
    State(access): State<Arc<Access>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !access.hosts.iter().any(|h| h == host_name(&host)) {
        access.metrics.record_http_refusal("host");
        warn!(%peer, %host, "refused: HTTP request for a name that is not this stack's");
        let text = format!(
            "{host:?} is not one of this stack's names; if you reach it under that name, start \
             fleet local with --allow-origin http://{host}\n"
        );
        return (StatusCode::MISDIRECTED_REQUEST, text).into_response();
    }
    if peer.ip().is_loopback() {
        return next.run(request).await;
    }
    // A browser on another machine: the key once in the URL, then the cookie.
    let query_key = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("key="))
            .map(str::to_owned)
    });
    if let Some(key) = query_key {
        if !access.key_ok(&key) {
            access.metrics.record_http_refusal("access_key");
            warn!(%peer, "refused: a wrong access key");
            return (StatusCode::UNAUTHORIZED, "wrong access key\n").into_response();
        }
        let rest: Vec<&str> = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.starts_with("key=") && !pair.is_empty())
            .collect();
        let location = match rest.as_slice() {
            [] => request.uri().path().to_owned(),
            rest => format!("{}?{}", request.uri().path(), rest.join("&")),
        };
        let cookie = format!("{KEY_COOKIE}={key}; HttpOnly; SameSite=Strict; Path=/");
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let (Ok(location), Ok(cookie)) = (
            HeaderValue::from_str(&location),
            HeaderValue::from_str(&cookie),
        ) {
            response.headers_mut().insert(header::LOCATION, location);
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        return response;
    }
    let cookie_key = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(KEY_COOKIE)?
                .strip_prefix('=')
                .map(str::to_owned)
        });
    if cookie_key.is_some_and(|key| access.key_ok(&key)) {
        return next.run(request).await;
    }
    access.metrics.record_http_refusal("access_key");
    warn!(%peer, path = request.uri().path(), "refused: a remote browser without the access key");
    (
        StatusCode::UNAUTHORIZED,
        "this stack needs its access key from other machines: open the URL that fleet local \
         printed (http://…/?key=…), or run `fleet local token --http` on its machine\n",
    )
        .into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    let alive = s.pipeline_alive.load(Relaxed);
    let body = json!({
        "status": if alive { "ok" } else { "pipeline stopped" },
        "mqtt_clients": s.broker.stats().connected,
    });
    let code = if alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    let text = s.metrics.render(&s.broker.stats(), &s.broker.refusals());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Tells the web app to use this stack's WebSocket broker, with a credential for a fresh
/// namespace of devices (`page:w…`, ARCHITECTURE §4.8: the page then speaks only for the
/// devices `w…-…`). The host is the one the browser used to reach this page, so the same
/// answer works on loopback and, with `--allow-remote`, from another machine. The answer is
/// never stored (`no-store`): it holds a credential, and every page gets its own. A user's
/// `dist/config.json` replaces all of it ([`PageConfig`]).
async fn config(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let PageConfig::File(file) = s.page_config.as_ref() {
        return served_config(file, &headers);
    }
    let Some(ws) = s.ws else {
        return (StatusCode::NOT_FOUND, "the WebSocket listener is disabled").into_response();
    };
    let namespace = match s.keys.new_namespace() {
        Ok(ns) => ns,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let subject = Subject::Page(namespace.clone());
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host).to_owned())
        .unwrap_or_else(|| ws.ip().to_string());
    let body = json!({
        "mode": "local",
        "mqtt": {
            "url": format!("ws://{host}:{}/mqtt", ws.port()),
            "username": subject.name(),
            "password": s.keys.token(&subject),
        },
        "namespace": namespace.as_str(),
        "topics": {
            "telemetry": TELEMETRY_FILTER,
            "commands": COMMAND_FILTER,
            "alarms": ALARMS_TOPIC,
        },
        "band": { "min": s.band.0, "max": s.band.1 },
    });
    (
        [(header::CACHE_CONTROL, "no-cache, no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// A user's `config.json`, as it is: revalidated before each use (`no-cache`), `304` when the
/// page already holds these bytes.
fn served_config(file: &ServedFile, headers: &HeaderMap) -> Response {
    let etag = HeaderValue::from_str(&file.etag).ok();
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == file.etag);
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            file.body.clone(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(web_app::NO_CACHE),
    );
    if let Some(etag) = etag {
        headers.insert(header::ETAG, etag);
    }
    response
}

async fn stats(State(s): State<AppState>) -> Response {
    let Some(db) = s.db.clone() else {
        return (StatusCode::NOT_FOUND, "no database").into_response();
    };
    let counts = tokio::task::spawn_blocking(move || {
        let db = db.lock().unwrap_or_else(PoisonError::into_inner);
        Ok::<_, fleet_pipeline::StoreError>((db.reading_count()?, db.decision_count()?))
    })
    .await;
    match counts {
        Ok(Ok((readings, decisions))) => {
            let t = s.metrics.totals();
            axum::Json(json!({
                // Rows in the database (one per stored reading, batched or not).
                "readings": readings,
                "decisions": decisions,
                "mqtt": {
                    "connected": s.broker.stats().connected,
                    "received": s.broker.stats().received,
                },
                // Since this start. `messages` are the telemetry publishes handled (and
                // acknowledged); the `readings` they carried are `stored + duplicates +
                // rejected`, more than `messages` when devices send batches.
                "ingest": {
                    "messages": t.messages,
                    "batch_messages": t.batch_messages,
                    "readings": t.readings,
                    "stored": t.stored,
                    "duplicates": t.duplicates,
                    "rejected": t.rejected,
                },
            }))
            .into_response()
        }
        .into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn no_app() -> Response {
    let page = "<!doctype html><meta charset=utf-8><title>Fleet</title>\
        <h1>Fleet local stack</h1>\
        <p>The web app is not built. Run <code>./scripts/run.sh</code>, which builds it, or \
        start <code>fleet local --dist DIR</code> with a built app.</p>\
        <p>This stack serves <a href=/metrics>/metrics</a>, <a href=/healthz>/healthz</a>, \
        <a href=/config.json>/config.json</a> and <a href=/api/stats>/api/stats</a>.</p>";
    (StatusCode::NOT_FOUND, Html(page)).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    /// A one-route app behind the guard, and the stack's keys.
    fn guarded() -> (Router, Arc<Keys>, Arc<Metrics>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(Keys::open(dir.path()).unwrap());
        let metrics = Arc::new(Metrics::new());
        let origins = [
            String::from("http://127.0.0.1:8080"),
            String::from("http://localhost:8080"),
        ];
        let access = Access::new(keys.clone(), metrics.clone(), &origins);
        let app = Router::new()
            .route("/x", get(|| async { "ok" }))
            .layer(middleware::from_fn_with_state(Arc::new(access), guard));
        (app, keys, metrics, dir)
    }

    async fn get_as(
        app: &Router,
        peer: &str,
        host: &str,
        uri: &str,
        cookie: Option<&str>,
    ) -> Response {
        let mut request = Request::builder().uri(uri).header(header::HOST, host);
        if let Some(c) = cookie {
            request = request.header(header::COOKIE, c);
        }
        let mut request = request.body(Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        app.clone().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn only_the_stacks_own_names_are_served() {
        let (app, _, metrics, _dir) = guarded();
        let ok = get_as(&app, "127.0.0.1:5000", "127.0.0.1:8080", "/x", None).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let ok = get_as(&app, "127.0.0.1:5000", "localhost:8080", "/x", None).await;
        assert_eq!(ok.status(), StatusCode::OK);
        // DNS rebinding: the browser sends the attacker's name, from loopback.
        let rebound = get_as(&app, "127.0.0.1:5000", "evil.example:8080", "/x", None).await;
        assert_eq!(rebound.status(), StatusCode::MISDIRECTED_REQUEST);
        let text = metrics.render(&fleet_broker::BrokerStats::default(), &[]);
        assert!(
            text.contains(r#"fleet_http_refusals_total{reason="host"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_remote_browser_needs_the_access_key_once_then_its_cookie() {
        let (app, keys, metrics, _dir) = guarded();
        let remote = "192.0.2.7:5000";
        let host = "127.0.0.1:8080";
        let denied = get_as(&app, remote, host, "/x", None).await;
        assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
        let wrong = get_as(&app, remote, host, "/x?key=nope", None).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let key = keys.token(&Subject::Http);
        // Another stack's key does not open this one.
        assert_ne!(
            key,
            Keys::open(tempfile::tempdir().unwrap().path())
                .unwrap()
                .token(&Subject::Http)
        );
        let granted = get_as(&app, remote, host, &format!("/x?a=1&key={key}"), None).await;
        assert_eq!(granted.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            granted.headers()[header::LOCATION],
            "/x?a=1",
            "the key leaves the URL"
        );
        let cookie = granted.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let pair = cookie.split(';').next().unwrap();
        let ok = get_as(&app, remote, host, "/x", Some(pair)).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let forged = get_as(&app, remote, host, "/x", Some("fleet_key=forged")).await;
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
        let text = metrics.render(&fleet_broker::BrokerStats::default(), &[]);
        assert!(
            text.contains(r#"fleet_http_refusals_total{reason="access_key"} 3"#),
            "{text}"
        );
    }

    #[test]
    fn host_names_drop_the_port() {
        assert_eq!(host_name("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_name("localhost"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
    }
}
