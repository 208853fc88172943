//! The stack's HTTP side: the web app, its `/config.json`, `/healthz`, `/metrics`, and a
//! small read-only `/api/stats`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use fleet_broker::Publisher;
use fleet_core::topic::{ALARMS_TOPIC, COMMAND_FILTER, TELEMETRY_FILTER};
use serde_json::json;
use tower_http::services::{ServeDir, ServeFile};

use crate::metrics::Metrics;
use crate::store::SqliteStore;

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
}

/// The router: API routes, then the web app from `dist` (with `index.html` for every other
/// path, as a single-page app needs), or a page explaining how to build it.
pub(crate) fn router(state: AppState, dist: Option<PathBuf>) -> Router {
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/config.json", get(config))
        .route("/api/stats", get(stats))
        .with_state(state);
    match dist.filter(|d| d.join("index.html").is_file()) {
        Some(dist) => {
            let index = ServeFile::new(dist.join("index.html"));
            api.fallback_service(ServeDir::new(dist).fallback(index))
        }
        None => api.fallback(no_app),
    }
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
    let text = s.metrics.render(&s.broker.stats());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Tells the web app to use this stack's WebSocket broker. The host is the one the browser
/// used to reach this page, so the same answer works on loopback and, with
/// `--allow-remote`, from another machine.
async fn config(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some(ws) = s.ws else {
        return (StatusCode::NOT_FOUND, "the WebSocket listener is disabled").into_response();
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host).to_owned())
        .unwrap_or_else(|| ws.ip().to_string());
    let body = json!({
        "mode": "local",
        "mqtt": { "url": format!("ws://{host}:{}/mqtt", ws.port()) },
        "topics": {
            "telemetry": TELEMETRY_FILTER,
            "commands": COMMAND_FILTER,
            "alarms": ALARMS_TOPIC,
        },
        "band": { "min": s.band.0, "max": s.band.1 },
    });
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
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
