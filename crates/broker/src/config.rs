//! Broker settings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authenticator;

/// Where to listen and how much to accept.
#[derive(Clone)]
pub struct BrokerConfig {
    /// MQTT over TCP (e.g. `127.0.0.1:1883`); port 0 picks a free port.
    pub tcp: Option<SocketAddr>,
    /// MQTT over WebSocket (e.g. `127.0.0.1:8083`), served at `/mqtt`.
    pub ws: Option<SocketAddr>,
    /// MQTT over TLS (e.g. `127.0.0.1:8883`), with the server configuration to use. Mutual
    /// TLS is a property of that configuration (a client-certificate verifier).
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// Largest PUBLISH payload accepted, bytes (AWS IoT Core: 128 KiB).
    pub max_payload_size: usize,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
    /// Messages waiting for one subscriber. When its queue is full, a further QoS 0
    /// message to it is dropped (and counted), and a QoS 1 message disconnects it (and is
    /// counted), as mosquitto's `max_queued_messages` does: a slow subscriber must not
    /// stall everyone else, and a QoS 1 message is never dropped silently.
    pub outbound_queue: usize,
    /// Telemetry that the application stores before it is acknowledged.
    pub ingest: Option<IngestConfig>,
    /// Who clients are; `fleet_core::access` then decides what they may do. `None` lets
    /// every client do anything: for embedding in tests only (the local stack always sets
    /// one).
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// The web origins (`http://127.0.0.1:8080`) whose pages may open the WebSocket
    /// listener; an upgrade without an `Origin` is not from a page and is let through to
    /// its credential check. `None`: any origin (tests only).
    pub allowed_origins: Option<Arc<[String]>>,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("tcp", &self.tcp)
            .field("ws", &self.ws)
            .field("tls", &self.tls.as_ref().map(|(addr, _)| addr))
            .field("max_payload_size", &self.max_payload_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("outbound_queue", &self.outbound_queue)
            .field("ingest", &self.ingest)
            .field("authenticator", &self.authenticator.is_some())
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            tcp: None,
            ws: None,
            tls: None,
            max_payload_size: 128 * 1024,
            connect_timeout: Duration::from_secs(10),
            outbound_queue: 10_000,
            ingest: None,
            authenticator: None,
            allowed_origins: None,
        }
    }
}

/// Which publishes go to the application before they are acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Topic filters, e.g. `dt/monitoring/+/+/telemetry` and `monitoring-device/+`.
    pub filters: Vec<String>,
    /// Messages queued for the application before connections stop reading (backpressure
    /// all the way to the devices' TCP windows, instead of memory growth).
    pub queue: usize,
}
