//! Starting and stopping the whole local stack.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_broker::{BindError, Broker, BrokerConfig, BrokerHandle, IngestConfig, ListenerKind};
use fleet_core::topic::{LEGACY_FILTER, TELEMETRY_FILTER};
use fleet_pipeline::{Pipeline, PipelineConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::auth::{AuthError, Keys, LocalAuthenticator};
use crate::certs::{CertDir, CertError};
use crate::emf::EmfLog;
use crate::http::{self, AppState};
use crate::ingest::{IngestThread, Retention};
use crate::metrics::Metrics;
use crate::page_config::{PageConfig, PageConfigError};
use crate::store::{Checkpointer, LocalStore, OpenError, SqliteStore};

/// Settings of `fleet local`.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Holds the database, the archive, the EMF logs and the certificates.
    pub data_dir: PathBuf,
    /// MQTT over TCP (`None`: off).
    pub mqtt: Option<SocketAddr>,
    /// MQTT over WebSocket at `/mqtt` (`None`: off).
    pub ws: Option<SocketAddr>,
    /// MQTT over mutual TLS (`None`: off).
    pub mqtts: Option<SocketAddr>,
    /// HTTP: web app, `/config.json`, `/healthz`, `/metrics` (`None`: off).
    pub http: Option<SocketAddr>,
    /// Names (DNS or IP) the TLS server certificate is issued for.
    pub tls_names: Vec<String>,
    /// Plain TCP lets clients on loopback in without a credential, their client id taken as
    /// their identity (the development mode of ARCHITECTURE §4.8). Off: every client needs
    /// a credential (`fleet local token`) or, on the TLS listener, a certificate.
    pub development_mode: bool,
    /// Web origins (`http://host:port`) whose pages may use the WebSocket listener and this
    /// stack's HTTP names, besides the stack's own HTTP origin (`--allow-origin`).
    pub allowed_origins: Vec<String>,
    /// The built web app (`dist/`), served when it holds an `index.html`.
    pub dist: Option<PathBuf>,
    /// Worker, remediation and alarm settings.
    pub pipeline: PipelineConfig,
    /// Largest batch written in one transaction.
    pub batch_max: usize,
    /// Telemetry messages queued for the database before devices are slowed down.
    pub ingest_queue: usize,
    /// What is kept, and for how long.
    pub retention: Retention,
}

impl LocalConfig {
    /// The defaults: every listener on loopback at its usual port, data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> LocalConfig {
        let local = |port| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        LocalConfig {
            data_dir: data_dir.into(),
            mqtt: local(1883),
            ws: local(8083),
            mqtts: local(8883),
            http: local(8080),
            tls_names: vec![String::from("localhost"), String::from("127.0.0.1")],
            development_mode: true,
            allowed_origins: Vec::new(),
            dist: None,
            pipeline: PipelineConfig::default(),
            batch_max: 2_000,
            ingest_queue: 50_000,
            retention: Retention::default(),
        }
    }

    /// The same, with every listener on a free loopback port: for tests.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> LocalConfig {
        let any = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        LocalConfig {
            mqtt: any,
            ws: any,
            mqtts: any,
            http: any,
            ..LocalConfig::new(data_dir)
        }
    }
}

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory is unusable.
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another `fleet local` uses the same data directory.
    #[error("another fleet local is using {} (stop it, or choose another --data)", .0.display())]
    Locked(PathBuf),
    /// The database could not be opened.
    #[error(transparent)]
    Database(#[from] OpenError),
    /// The TLS certificates could not be made or loaded.
    #[error("TLS: {0}")]
    Certificates(#[from] CertError),
    /// The stack's secret (credentials) could not be made or loaded.
    #[error("credentials: {0}")]
    Auth(#[from] AuthError),
    /// An `--allow-origin` is not an origin.
    #[error("{0:?} is not a web origin like http://host:8080 (scheme, host and port only)")]
    Origin(String),
    /// A broker listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The HTTP listener could not be bound.
    #[error("HTTP listener: cannot listen on {addr}: {source}")]
    Http {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A bug: an invariant of the stack did not hold.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// The remediation settings are invalid.
    #[error("remediation settings: {0}")]
    Policy(#[from] fleet_core::policy::PolicyConfigError),
    /// The web app's `config.json` cannot be served.
    #[error("web app config.json: {0}")]
    PageConfig(#[from] PageConfigError),
}

/// Checkpoints the WAL every 200 ms until told to stop, then once more.
fn run_checkpoints(checkpointer: &Checkpointer, stop: &AtomicBool) {
    loop {
        let stopping = stop.load(Relaxed);
        if let Err(e) = checkpointer.checkpoint() {
            warn!(error = %e, "WAL checkpoint failed; the writer will checkpoint by itself");
        }
        if stopping {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The web origins whose pages may reach the stack: its own HTTP origin under the names a
/// browser on this machine uses for it (and its address, when it listens on one address
/// beyond loopback), plus the `extra` ones, checked and normalized (no trailing `/`).
pub(crate) fn allowed_origins(
    http: Option<SocketAddr>,
    extra: &[String],
) -> Result<Vec<String>, StartError> {
    let mut origins = Vec::new();
    if let Some(addr) = http {
        let port = addr.port();
        if addr.ip().is_loopback() || addr.ip().is_unspecified() {
            for host in ["127.0.0.1", "localhost", "[::1]"] {
                origins.push(format!("http://{host}:{port}"));
            }
        }
        if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
            origins.push(format!("http://{addr}"));
        }
    }
    for origin in extra {
        let trimmed = origin.trim_end_matches('/');
        let valid = ["http://", "https://"].iter().any(|scheme| {
            trimmed.strip_prefix(scheme).is_some_and(|authority| {
                !authority.is_empty() && !authority.contains(['/', '?', '#', '@', ' '])
            })
        });
        if !valid {
            return Err(StartError::Origin(origin.clone()));
        }
        origins.push(trimmed.to_ascii_lowercase());
    }
    Ok(origins)
}

/// A running local stack.
#[derive(Debug)]
pub struct LocalStack {
    broker: BrokerHandle,
    http: Option<(SocketAddr, oneshot::Sender<()>, JoinHandle<()>)>,
    keys: Arc<Keys>,
    ingest: Option<std::thread::JoinHandle<()>>,
    checkpoints: Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>,
    /// Closed when the ingest thread ends.
    running: tokio::sync::watch::Receiver<()>,
    data_dir: PathBuf,
    page_config: Arc<PageConfig>,
    /// Held for the stack's lifetime: the lock on the data directory.
    _lock: File,
}

impl LocalStack {
    /// Opens the data, binds every listener, and starts serving. Fails fast, with the
    /// reason in plain words, if anything is in the way.
    pub async fn start(config: LocalConfig) -> Result<LocalStack, StartError> {
        // The app is served when it is built; its config.json is checked before anything
        // else, so a file that cannot be served fails the start at once.
        let dist = config.dist.filter(|d| d.join("index.html").is_file());
        let page_config = Arc::new(match &dist {
            Some(dist) => PageConfig::load(dist)?,
            None => PageConfig::Issued,
        });
        match page_config.as_ref() {
            PageConfig::File(file) => info!(
                file = %file.path.display(),
                mode = %file.mode,
                "serving this file as the pages' config.json, instead of a namespace and \
                 credential for each page: pages get none from this stack"
            ),
            PageConfig::Issued => {
                if let Some(default) = dist
                    .as_ref()
                    .map(|d| d.join("config.json"))
                    .filter(|f| f.is_file())
                {
                    info!(
                        file = %default.display(),
                        "the build's default config.json is replaced by this stack's own"
                    );
                }
            }
        }
        let data = &config.data_dir;
        let data_err = |source| StartError::DataDir {
            path: data.clone(),
            source,
        };
        fs::create_dir_all(data).map_err(data_err)?;
        let lock = File::create(data.join("fleet.lock")).map_err(data_err)?;
        if lock.try_lock().is_err() {
            return Err(StartError::Locked(data.clone()));
        }
        let pipeline = Pipeline::new(config.pipeline.clone())?;
        let store = LocalStore::open(data)?;
        let reader = SqliteStore::open(&data.join(LocalStore::DB_FILE))?;
        let checkpointer = store.db.hand_off_checkpoints()?;
        let checkpoints_stop = Arc::new(AtomicBool::new(false));
        let checkpoints = {
            let stop = checkpoints_stop.clone();
            std::thread::Builder::new()
                .name(String::from("fleet-checkpoint"))
                .spawn(move || run_checkpoints(&checkpointer, &stop))
                .map_err(data_err)?
        };

        let tls = match config.mqtts {
            Some(addr) => {
                let certs = CertDir::new(data.join("certs"));
                if certs.ensure_server(&config.tls_names)? {
                    info!(dir = %data.join("certs").display(), names = ?config.tls_names, "created TLS certificates");
                }
                Some((addr, certs.server_config()?))
            }
            None => None,
        };
        let keys = Arc::new(Keys::open(&data.join("auth"))?);
        // HTTP is bound before the broker starts, so a busy port fails the start cleanly,
        // and the broker knows the page origin it serves.
        let http_listener = match config.http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Http { addr, source })?,
            ),
            None => None,
        };
        let http_addr = match &http_listener {
            Some(l) => Some(l.local_addr().map_err(|source| {
                StartError::Http {
                    addr: config
                        .http
                        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
                    source,
                }
            })?),
            None => None,
        };
        let origins = allowed_origins(http_addr, &config.allowed_origins)?;
        let broker_config = BrokerConfig {
            tcp: config.mqtt,
            ws: config.ws,
            tls,
            ingest: Some(IngestConfig {
                filters: vec![TELEMETRY_FILTER.to_owned(), LEGACY_FILTER.to_owned()],
                queue: config.ingest_queue,
            }),
            authenticator: Some(Arc::new(LocalAuthenticator::new(
                keys.clone(),
                config.development_mode,
            ))),
            allowed_origins: Some(origins.clone().into()),
            ..BrokerConfig::default()
        };
        let (broker, Some(rx)) = Broker::start(broker_config).await? else {
            return Err(StartError::Internal(
                "the broker started without its ingest stream",
            ));
        };

        let metrics = Arc::new(Metrics::new());
        let (running_tx, running) = tokio::sync::watch::channel(());
        let alive = Arc::new(AtomicBool::new(true));
        let band = (
            config.pipeline.policy.band_min,
            config.pipeline.policy.band_max,
        );
        let thread = IngestThread {
            rx,
            store,
            pipeline,
            publisher: broker.publisher(),
            metrics: metrics.clone(),
            emf: EmfLog::new(data.join("logs")),
            batch_max: config.batch_max.max(1),
            retention: config.retention,
            alive: alive.clone(),
            _running: running_tx,
            runtime: tokio::runtime::Handle::current(),
        };
        let ingest = std::thread::Builder::new()
            .name(String::from("fleet-ingest"))
            .spawn(move || thread.run())
            .map_err(data_err)?;

        let http = match (http_listener, http_addr) {
            (Some(listener), Some(addr)) => {
                let state = AppState {
                    metrics: metrics.clone(),
                    broker: broker.publisher(),
                    ws: broker.local_addr(ListenerKind::WebSocket),
                    db: Some(Arc::new(Mutex::new(reader))),
                    pipeline_alive: alive,
                    band,
                    keys: keys.clone(),
                    page_config: page_config.clone(),
                };
                let access = http::Access::new(keys.clone(), metrics.clone(), &origins);
                let app = http::router(state, access, dist.as_deref());
                let (stop_tx, stop_rx) = oneshot::channel::<()>();
                let task = tokio::spawn(async move {
                    let app = app.into_make_service_with_connect_info::<SocketAddr>();
                    let server = axum::serve(listener, app).with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    });
                    if let Err(e) = server.await {
                        warn!(error = %e, "HTTP server stopped");
                    }
                });
                info!(%addr, "HTTP listening");
                Some((addr, stop_tx, task))
            }
            _ => None,
        };
        info!(origins = ?origins, development_mode = config.development_mode, "access");
        Ok(LocalStack {
            broker,
            http,
            keys,
            ingest: Some(ingest),
            checkpoints: Some((checkpoints, checkpoints_stop)),
            running,
            data_dir: data.clone(),
            page_config,
            _lock: lock,
        })
    }

    /// Resolves if the ingest thread ends while the stack runs (it crashed): the stack can
    /// no longer store readings and should be stopped.
    pub async fn failed(&self) {
        let mut running = self.running.clone();
        while running.changed().await.is_ok() {}
    }

    /// Where the MQTT/TCP listener is bound.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.broker.local_addr(ListenerKind::Tcp)
    }

    /// Where the MQTT/WebSocket listener is bound.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.broker.local_addr(ListenerKind::WebSocket)
    }

    /// Where the MQTT/TLS listener is bound.
    pub fn mqtts_addr(&self) -> Option<SocketAddr> {
        self.broker.local_addr(ListenerKind::Tls)
    }

    /// Where the HTTP listener is bound.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(addr, _, _)| *addr)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The stack's credentials.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// What `/config.json` answers pages.
    pub fn page_config(&self) -> &PageConfig {
        &self.page_config
    }

    /// The broker's counters.
    pub fn broker_stats(&self) -> fleet_broker::BrokerStats {
        self.broker.stats()
    }

    /// Stops cleanly: no new connections, every queued reading stored, the database closed.
    pub async fn shutdown(mut self) {
        if let Some((_, stop, task)) = self.http.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
        self.broker.shutdown(Duration::from_secs(5)).await;
        if let Some(ingest) = self.ingest.take() {
            // The ingest stream has ended; the thread stores what is left and exits.
            let _ = tokio::task::spawn_blocking(move || ingest.join()).await;
        }
        if let Some((thread, stop)) = self.checkpoints.take() {
            stop.store(true, Relaxed);
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        info!("local stack stopped");
    }
}
