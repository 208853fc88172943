//! Binding, accept loops, the handle, and shutdown.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use fleet_mqtt::QoS;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{debug, info};

use crate::auth::{self, Refusals};
use crate::config::BrokerConfig;
use crate::connection;
use crate::ingest::{IngestSink, Ingested, ShuttingDown};
use crate::router::Router;
use crate::transport::{Transport, ws_handshake};

/// The three kinds of listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// MQTT over TCP.
    Tcp,
    /// MQTT over WebSocket.
    WebSocket,
    /// MQTT over TLS.
    Tls,
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenerKind::Tcp => "MQTT/TCP",
            ListenerKind::WebSocket => "MQTT/WebSocket",
            ListenerKind::Tls => "MQTT/TLS",
        })
    }
}

/// A listener could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Something else listens there already.
    #[error("{kind} listener: {addr} is already in use (is another broker running?)")]
    InUse {
        /// Which listener.
        kind: ListenerKind,
        /// Where.
        addr: SocketAddr,
    },
    /// Any other failure to bind.
    #[error("{kind} listener: cannot listen on {addr}: {source}")]
    Io {
        /// Which listener.
        kind: ListenerKind,
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Connections accepted (CONNACK sent).
    pub connections: u64,
    /// Connections open now.
    pub connected: u64,
    /// PUBLISH packets received from clients.
    pub received: u64,
    /// Of those, handed to the application for storing.
    pub ingested: u64,
    /// Deliveries queued to subscribers.
    pub delivered: u64,
    /// PUBLISH packets written to subscribers.
    pub sent: u64,
    /// QoS 0 deliveries dropped because a subscriber's queue was full.
    pub dropped: u64,
    /// Subscribers disconnected because a QoS 1 delivery found their queue full.
    pub slow_consumers: u64,
    /// Connections that ended on an error (malformed data, protocol, keep-alive, I/O).
    pub errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) connected: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) ingested: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// State shared by all connections.
pub(crate) struct Shared {
    router: Mutex<Router>,
    pub(crate) config: BrokerConfig,
    /// Ingest filters and the channel to the application. Each connection takes its own
    /// clone of the sender when it starts; shutdown takes this one, so once the last
    /// connection ends the application's receiver sees the end of the stream.
    ingest: Mutex<Option<IngestSink>>,
    pub(crate) stats: Counters,
    /// Refused connects, publishes and subscriptions, per reason.
    pub(crate) refusals: Refusals,
    /// Start time, ms: makes source ids unique across restarts.
    pub(crate) start_ms: u64,
    pub(crate) next_conn: AtomicU64,
}

impl Shared {
    /// The router. A panic while holding the lock cannot leave it inconsistent in a way
    /// worse than losing one delivery, so a poisoned lock is used as is.
    pub(crate) fn router(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ingest filters and a sender, for a new connection. `Err` while shutting down.
    pub(crate) fn ingest(&self) -> Result<Option<IngestSink>, ShuttingDown> {
        let guard = self.ingest.lock().unwrap_or_else(PoisonError::into_inner);
        match (&*guard, self.config.ingest.is_some()) {
            (Some(sink), _) => Ok(Some(sink.clone())),
            (None, true) => Err(ShuttingDown),
            (None, false) => Ok(None),
        }
    }

    pub(crate) fn publish(&self, topic: &str, payload: &[u8], qos: QoS) -> u64 {
        let delivery = self.router().route(topic, payload, qos);
        self.stats.delivered.fetch_add(delivery.delivered, Relaxed);
        self.stats.dropped.fetch_add(delivery.dropped, Relaxed);
        // The disconnected subscribers count themselves as they leave (`slow_consumers`).
        delivery.delivered
    }
}

/// Starts brokers.
#[derive(Debug)]
pub struct Broker;

impl Broker {
    /// Binds every configured listener (failing fast and clearly if one cannot be bound)
    /// and starts accepting. Returns the handle and, if ingest is configured, the stream of
    /// messages to store.
    pub async fn start(
        config: BrokerConfig,
    ) -> Result<(BrokerHandle, Option<mpsc::Receiver<Ingested>>), BindError> {
        let mut listeners = Vec::new();
        if let Some(addr) = config.tcp {
            listeners.push((
                ListenerKind::Tcp,
                bind(ListenerKind::Tcp, addr).await?,
                None,
            ));
        }
        if let Some(addr) = config.ws {
            listeners.push((
                ListenerKind::WebSocket,
                bind(ListenerKind::WebSocket, addr).await?,
                None,
            ));
        }
        if let Some((addr, tls)) = &config.tls {
            let acceptor = TlsAcceptor::from(tls.clone());
            listeners.push((
                ListenerKind::Tls,
                bind(ListenerKind::Tls, *addr).await?,
                Some(acceptor),
            ));
        }
        let (ingest, ingest_rx) = match &config.ingest {
            Some(ic) => {
                let (tx, rx) = mpsc::channel(ic.queue.max(1));
                (
                    Some(IngestSink {
                        filters: Arc::from(ic.filters.clone()),
                        tx,
                    }),
                    Some(rx),
                )
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            router: Mutex::new(Router::default()),
            config,
            ingest: Mutex::new(ingest),
            stats: Counters::default(),
            refusals: Refusals::default(),
            start_ms: fleet_clock::now_ms(),
            next_conn: AtomicU64::new(1),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        for (kind, listener, tls) in listeners {
            let addr = listener.local_addr().map_err(|source| BindError::Io {
                kind,
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })?;
            info!(%kind, %addr, "listening");
            addrs.push((kind, addr));
            tasks.push(tokio::spawn(accept_loop(
                kind,
                listener,
                tls,
                shared.clone(),
                shutdown_rx.clone(),
            )));
        }
        Ok((
            BrokerHandle {
                shared,
                addrs,
                shutdown_tx,
                tasks,
            },
            ingest_rx,
        ))
    }
}

async fn bind(kind: ListenerKind, addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => BindError::InUse { kind, addr },
            _ => BindError::Io { kind, addr, source },
        })
}

async fn accept_loop(
    kind: ListenerKind,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, do not spin.
                    debug!(%kind, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let timeout = shared.config.connect_timeout;
            let (transport, certificate_name) =
                match tokio::time::timeout(timeout, upgrade(kind, tcp, peer, tls, &shared)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        debug!(%kind, %peer, error = %e, "handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!(%kind, %peer, "handshake timed out");
                        return;
                    }
                };
            connection::serve(shared, kind, transport, peer, certificate_name, shutdown).await;
        });
    }
}

/// Turns an accepted TCP connection into the listener's transport, with the verified client
/// certificate's common name on the TLS listener.
async fn upgrade(
    kind: ListenerKind,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: &Shared,
) -> std::io::Result<(Transport, Option<String>)> {
    match (kind, tls) {
        (ListenerKind::Tls, Some(acceptor)) => {
            let stream = acceptor.accept(tcp).await?;
            // The handshake verified the chain against the CA; its leaf names the device.
            let name = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| auth::common_name(leaf));
            Ok((Transport::Stream(Box::new(stream)), name))
        }
        (ListenerKind::WebSocket, _) => {
            let mut ws_config = WebSocketConfig::default();
            ws_config.max_message_size = Some(shared.config.max_payload_size + 4096);
            ws_config.max_frame_size = Some(shared.config.max_payload_size + 4096);
            let origins = shared.config.allowed_origins.clone();
            // The signature is tungstenite's callback type.
            #[allow(clippy::result_large_err)]
            let check =
                |req: &_, resp| ws_handshake(req, resp, origins.as_deref(), &shared.refusals, peer);
            let ws = tokio_tungstenite::accept_hdr_async_with_config(tcp, check, Some(ws_config))
                .await
                .map_err(std::io::Error::other)?;
            Ok((Transport::Ws(Box::new(ws)), None))
        }
        _ => Ok((Transport::Stream(Box::new(tcp)), None)),
    }
}

/// Controls a running broker.
pub struct BrokerHandle {
    shared: Arc<Shared>,
    addrs: Vec<(ListenerKind, SocketAddr)>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for BrokerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerHandle")
            .field("addrs", &self.addrs)
            .finish()
    }
}

impl BrokerHandle {
    /// The address a listener is bound to (with the real port when 0 was asked).
    pub fn local_addr(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.addrs.iter().find(|(k, _)| *k == kind).map(|(_, a)| *a)
    }

    /// Publishes a message from the application (commands, alarms) to the subscribers.
    /// Returns how many subscribers it was queued for.
    pub fn publish(&self, topic: &str, payload: &[u8], qos: QoS) -> u64 {
        self.shared.publish(topic, payload, qos)
    }

    /// A cheap handle to publish and read counters from other threads or tasks.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            shared: self.shared.clone(),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> BrokerStats {
        self.publisher().stats()
    }

    /// Connected clients.
    pub fn client_count(&self) -> usize {
        self.shared.router().client_count()
    }

    /// Stops accepting, closes every connection, and waits (up to `grace`) for them to end.
    /// Then the ingest stream ends, after the messages already queued, so the application
    /// can store them and stop.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown_tx.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.shared.stats.connected.load(Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.shared
            .ingest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        info!("broker stopped");
    }
}

/// Publishes application messages and reads counters; cloneable, usable from any thread.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Publisher")
    }
}

impl Publisher {
    /// Publishes to the subscribers; returns how many it was queued for.
    pub fn publish(&self, topic: &str, payload: &[u8], qos: QoS) -> u64 {
        self.shared.publish(topic, payload, qos)
    }

    /// Counters since start.
    pub fn stats(&self) -> BrokerStats {
        let c = &self.shared.stats;
        BrokerStats {
            connections: c.connections.load(Relaxed),
            connected: c.connected.load(Relaxed),
            received: c.received.load(Relaxed),
            ingested: c.ingested.load(Relaxed),
            delivered: c.delivered.load(Relaxed),
            sent: c.sent.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            slow_consumers: c.slow_consumers.load(Relaxed),
            errors: c.errors.load(Relaxed),
        }
    }

    /// Refusals since start: `(action, reason, count)` for every reason, zeros included.
    pub fn refusals(&self) -> Vec<(fleet_core::access::Action, fleet_core::access::Reason, u64)> {
        self.shared.refusals.snapshot()
    }
}
