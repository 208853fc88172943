//! Messages handed to the application before they are acknowledged.

use tokio::sync::mpsc;

/// What a connection hears back about one ingested message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckResult {
    /// Stored: send the PUBACK.
    Done(u16),
    /// Not stored: close the connection so the client sends it again.
    Failed,
}

/// Where a connection sends the publishes that match the ingest filters.
#[derive(Debug, Clone)]
pub(crate) struct IngestSink {
    pub(crate) filters: std::sync::Arc<[String]>,
    pub(crate) tx: mpsc::Sender<Ingested>,
}

impl IngestSink {
    /// Whether a topic goes to the application.
    pub(crate) fn wants(&self, topic: &str) -> bool {
        self.filters
            .iter()
            .any(|f| fleet_mqtt::topic::matches(f, topic))
    }
}

/// The broker is shutting down and takes no new connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShuttingDown;

/// A publish whose topic matched an ingest filter.
#[derive(Debug)]
pub struct Ingested {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// Arrival time, ms since the Unix epoch (as IoT Core's `timestamp()`).
    pub received_ms: u64,
    /// Unique within this broker's lifetime and across restarts: `{start_ms}-{conn}-{n}`.
    pub source_id: String,
    /// The publisher's client id.
    pub client_id: std::sync::Arc<str>,
    /// Whose readings the publisher may send (`fleet_core::access`): each reading's device
    /// is checked against it. [`fleet_core::Publisher::Unbound`] without an authenticator.
    pub publisher: std::sync::Arc<fleet_core::Publisher>,
    /// For QoS 1: complete it once the message is stored; dropping it closes the client's
    /// connection instead, so the client resends.
    pub ack: Option<Ack>,
}

/// The pending PUBACK of one QoS 1 message.
#[derive(Debug)]
pub struct Ack {
    pkid: u16,
    done: bool,
    tx: mpsc::UnboundedSender<AckResult>,
}

impl Ack {
    pub(crate) fn new(pkid: u16, tx: mpsc::UnboundedSender<AckResult>) -> Ack {
        Ack {
            pkid,
            done: false,
            tx,
        }
    }

    /// The message is stored: the client gets its PUBACK (in its publish order).
    pub fn complete(mut self) {
        self.done = true;
        // The connection may be gone; then there is nobody left to ack.
        let _ = self.tx.send(AckResult::Done(self.pkid));
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.tx.send(AckResult::Failed);
        }
    }
}
