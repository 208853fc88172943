//! The seam between the simulated devices and a cloud: the [`Transport`] trait.
//!
//! The [`Engine`](crate::engine::Engine) steps devices and hands their readings to a
//! transport; whatever comes back (commands, alarm notices) it takes as `(topic, payload)`
//! messages, exactly as a device subscribed on a broker would. So the engine does not know
//! where the cloud is:
//! - [`in_page::InPage`]: the cloud runs in this tab (`fleet-pipeline` on a memory store);
//! - [`mqtt::MqttTransport`]: one MQTT session per device (plus one that watches the alarm
//!   topic) over any [`mqtt::Connector`]: the browser's WebSocket ([`websocket`], `local`
//!   mode) in the page, plain TCP in native tests. The AWS mode is the same transport with a
//!   presigned URL; a gateway transport would be another implementation of this trait.

pub mod in_page;
pub mod mqtt;
pub mod websocket;

/// A device's connection, as its card shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not started yet (the ramp-up has not reached it) or stopped.
    Idle,
    /// Opening the connection or waiting for the broker's answer.
    Connecting,
    /// Connected.
    Up,
    /// Lost; retrying after a backoff.
    Retrying,
}

impl LinkState {
    /// A short word for the UI (also the CSS class).
    pub fn label(self) -> &'static str {
        match self {
            LinkState::Idle => "idle",
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Retrying => "retrying",
        }
    }
}

/// A message for a device or the page, as a broker delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
}

/// What happened to a reading handed to [`Transport::publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// On its way (or queued until the device's connection is back).
    Queued,
    /// Dropped, with the reason in plain words (for instance a full queue).
    Dropped(String),
}

/// Connection counters for the cloud panel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Readings the cloud acknowledged (QoS 1 PUBACK, or stored in page).
    pub acked: u64,
    /// Readings sent or queued and not acknowledged yet.
    pub unacked: u64,
    /// Readings dropped before leaving the page.
    pub dropped: u64,
    /// Connections that came back after a loss.
    pub reconnects: u64,
    /// Links currently up.
    pub links_up: u64,
}

/// A cloud the engine's devices talk to. All methods take the caller's clock, so the same
/// code runs in the page and under `cargo test`.
pub trait Transport {
    /// Starts device `device`'s connection (the ramp-up calls this once per device).
    fn open(&mut self, now_ms: u64, device: usize);

    /// Hands over one reading of `device`.
    fn publish(&mut self, now_ms: u64, device: usize, topic: &str, payload: &[u8]) -> Sent;

    /// Does the I/O and timers due at `now_ms` and appends the messages that arrived
    /// (commands for the devices, alarm notices for the page); the engine routes them by
    /// topic.
    fn poll(&mut self, now_ms: u64, inbound: &mut Vec<Inbound>);

    /// Device `device`'s connection state.
    fn link(&self, device: usize) -> LinkState;

    /// Counters.
    fn stats(&self) -> TransportStats;

    /// The latest connection problem in plain words, cleared when every started link is up.
    fn problem(&self) -> Option<String>;

    /// Closes every connection (Stop): at once, without waiting for acknowledgements.
    fn close(&mut self, now_ms: u64);
}
