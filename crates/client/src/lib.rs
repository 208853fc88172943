//! The native MQTT client of Fleet: it drives a [`fleet_mqtt::Session`] over a real
//! connection to a broker (the local stack's embedded broker, mosquitto, AWS IoT Core),
//! from a tokio task, over plain TCP, TLS with a client certificate (mutual TLS, as IoT
//! Core requires on port 8883) or a WebSocket.
//!
//! ```text
//!  ClientHandle ──publishes (mpsc)──▶ driver task ◀──bytes──▶ transport (TCP | TLS | WS)
//!  (clone it)   ──controls  (mpsc)──▶  owns the Session
//!               ◀──state    (watch)──
//!  Receiver     ◀──ClientEvent (mpsc)─
//! ```
//!
//! # Layout
//! - [`url`]: [`BrokerUrl`], `mqtt://`, `mqtts://` and `ws://` addresses.
//! - [`tls`]: [`TlsFiles`], the CA, certificate and key PEM files, read once at start.
//! - `transport`: opening the three transports, split into reader and writer halves.
//! - `client`: [`Client`], settings and start-up.
//! - `handle`: [`ClientHandle`], the application's side.
//! - `driver`: the task that owns the session and the socket.
//! - `event`: [`ClientEvent`].
//!
//! # Key decision: one task owns everything, the session decides
//! The protocol lives in the sans-IO session; this crate only moves bytes and time. One
//! task owns the session and the transport, so there is no lock around either: handles
//! send requests over a channel and read counters from a watch channel. The task writes
//! the session's whole transmit buffer at once after taking every waiting request, so a
//! burst of publishes costs one write (one WebSocket frame) instead of one per message.
//! Reconnect backoff and connect timeouts are the session's deadlines; the task only
//! sleeps until the next one, on tokio's monotonic clock.
//!
//! Publishes have a channel of their own, which the task stops reading while the
//! session's QoS 1 queue is full: a fast publisher waits (back-pressure) instead of
//! getting "queue full" errors, while subscribe and disconnect requests still get through.

mod client;
mod driver;
mod error;
mod event;
mod handle;
pub mod tls;
mod transport;
pub mod url;

pub use client::{Client, DEFAULT_EVENT_CAPACITY, DEFAULT_PUBLISH_CAPACITY};
pub use error::ClientError;
pub use event::ClientEvent;
pub use fleet_mqtt::{
    Backoff, DisconnectReason, Message, Options, PublishError, QoS, Stats, Status, SubscribeError,
    SubscribeReturn,
};
pub use handle::{ClientHandle, Snapshot};
pub use tls::{Identity, TlsError, TlsFiles};
pub use transport::TransportError;
pub use url::{BrokerUrl, Scheme, UrlError};
