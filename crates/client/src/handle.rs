//! The application's side of a running client: requests go to the driver task over a
//! channel; state comes back through a watch channel.

use fleet_mqtt::{PublishError, QoS, Stats, Status, SubscribeError};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::ClientError;

/// A message for the driver task to publish. Publishes have their own channel, which the
/// driver stops reading while the session's queue is full: that is the back-pressure that
/// makes a fast publisher wait instead of failing.
pub(crate) struct Publish {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    /// `None` for fire-and-forget: a refusal becomes a `PublishRejected` event.
    pub(crate) reply: Option<oneshot::Sender<Result<Option<u16>, PublishError>>>,
    /// The caller's tag, given back with the acknowledgement or the refusal.
    pub(crate) tag: Option<u64>,
}

/// Any other request; always read, even while publishes wait.
pub(crate) enum Control {
    Subscribe {
        filters: Vec<(String, QoS)>,
        reply: oneshot::Sender<Result<(), SubscribeError>>,
    },
    Unsubscribe {
        filters: Vec<String>,
        reply: oneshot::Sender<Result<(), SubscribeError>>,
    },
    /// Answered when the task has ended.
    Disconnect { reply: oneshot::Sender<()> },
}

/// The connection state the driver task last published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Connection state.
    pub status: Status,
    /// Counters since the client started.
    pub stats: Stats,
    /// QoS 1 messages sent and not yet acknowledged.
    pub inflight: usize,
    /// QoS 1 messages waiting for a window slot or a connection.
    pub queued: usize,
}

impl Snapshot {
    pub(crate) fn initial() -> Snapshot {
        Snapshot {
            status: Status::Waiting,
            stats: Stats::default(),
            inflight: 0,
            queued: 0,
        }
    }
}

/// Sends requests to a running client. Cheap to clone; all clones drive the same
/// connection. When the last clone is dropped the client disconnects and stops.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    publishes: mpsc::Sender<Publish>,
    controls: mpsc::Sender<Control>,
    state: watch::Receiver<Snapshot>,
}

impl ClientHandle {
    pub(crate) fn new(
        publishes: mpsc::Sender<Publish>,
        controls: mpsc::Sender<Control>,
        state: watch::Receiver<Snapshot>,
    ) -> Self {
        ClientHandle {
            publishes,
            controls,
            state,
        }
    }

    /// Publishes a message and returns once the session took it: `Some(pkid)` for QoS 1
    /// (reported again in [`ClientEvent::Acked`](crate::ClientEvent::Acked)), `None` for
    /// QoS 0. QoS 1 messages are queued while disconnected and sent after reconnecting.
    ///
    /// Waits while the session's QoS 1 queue is full (`Options::max_queued`) or, for QoS 0,
    /// while the socket is not keeping up, so a publisher runs at the broker's pace. QoS 0
    /// fails at once while disconnected.
    pub async fn publish(
        &self,
        topic: impl Into<String>,
        payload: impl Into<Vec<u8>>,
        qos: QoS,
    ) -> Result<Option<u16>, ClientError> {
        self.publish_with(topic.into(), payload.into(), qos, false)
            .await
    }

    /// Like [`ClientHandle::publish`], with the broker asked to retain the message.
    pub async fn publish_retained(
        &self,
        topic: impl Into<String>,
        payload: impl Into<Vec<u8>>,
        qos: QoS,
    ) -> Result<Option<u16>, ClientError> {
        self.publish_with(topic.into(), payload.into(), qos, true)
            .await
    }

    async fn publish_with(
        &self,
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
    ) -> Result<Option<u16>, ClientError> {
        let (reply, answer) = oneshot::channel();
        let publish = Publish {
            topic,
            payload,
            qos,
            retain,
            reply: Some(reply),
            tag: None,
        };
        self.publishes
            .send(publish)
            .await
            .map_err(|_| ClientError::Closed)?;
        Ok(answer.await.map_err(|_| ClientError::Closed)??)
    }

    /// Publishes without waiting for the session's answer: the fastest way to publish
    /// many messages, since they are batched into one write. A refusal (full queue, bad
    /// topic, QoS 0 while disconnected) arrives as
    /// [`ClientEvent::PublishRejected`](crate::ClientEvent::PublishRejected). Waits while
    /// the request channel is full, which it becomes while the session's queue is full.
    pub async fn publish_nowait(
        &self,
        topic: impl Into<String>,
        payload: impl Into<Vec<u8>>,
        qos: QoS,
    ) -> Result<(), ClientError> {
        self.send_publish(topic.into(), payload.into(), qos, None)
            .await
    }

    /// Like [`ClientHandle::publish_nowait`], with a tag of the caller's that comes back with
    /// the broker's acknowledgement ([`ClientEvent::Acked`](crate::ClientEvent::Acked)) or
    /// the refusal: a caller that publishes for many things (a fleet's readings) knows which
    /// one was acknowledged without waiting for each packet identifier.
    pub async fn publish_tagged(
        &self,
        topic: impl Into<String>,
        payload: impl Into<Vec<u8>>,
        qos: QoS,
        tag: u64,
    ) -> Result<(), ClientError> {
        self.send_publish(topic.into(), payload.into(), qos, Some(tag))
            .await
    }

    async fn send_publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        tag: Option<u64>,
    ) -> Result<(), ClientError> {
        let publish = Publish {
            topic,
            payload,
            qos,
            retain: false,
            reply: None,
            tag,
        };
        self.publishes
            .send(publish)
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Subscribes to topic filters. Returns once the session accepted the request; the
    /// broker's answer arrives as [`ClientEvent::Subscribed`](crate::ClientEvent::Subscribed).
    /// Subscriptions are renewed after reconnects when the broker lost the session.
    pub async fn subscribe(&self, filters: &[(&str, QoS)]) -> Result<(), ClientError> {
        let filters = filters.iter().map(|(f, q)| ((*f).to_owned(), *q)).collect();
        let (reply, answer) = oneshot::channel();
        self.send(Control::Subscribe { filters, reply }).await?;
        Ok(answer.await.map_err(|_| ClientError::Closed)??)
    }

    /// Unsubscribes from topic filters (now, or on the next connection).
    pub async fn unsubscribe(&self, filters: &[&str]) -> Result<(), ClientError> {
        let filters = filters.iter().map(|f| (*f).to_owned()).collect();
        let (reply, answer) = oneshot::channel();
        self.send(Control::Unsubscribe { filters, reply }).await?;
        Ok(answer.await.map_err(|_| ClientError::Closed)??)
    }

    /// Sends DISCONNECT if connected, closes the transport and waits until the client task
    /// has ended. Publishes made before it are handed to the session first, but QoS 1
    /// messages not yet acknowledged are dropped with the session. Calling it on a stopped
    /// client does nothing.
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        let (reply, done) = oneshot::channel();
        if self.send(Control::Disconnect { reply }).await.is_err() {
            return Ok(());
        }
        // An error here means the task ended without answering: it has stopped either way.
        let _ = done.await;
        Ok(())
    }

    /// Waits until the broker accepted the connection. Fails if the client stops first.
    pub async fn connected(&self) -> Result<(), ClientError> {
        let mut state = self.state.clone();
        state
            .wait_for(|s| s.status == Status::Connected)
            .await
            .map(|_| ())
            .map_err(|_| ClientError::Closed)
    }

    /// The latest published state.
    pub fn snapshot(&self) -> Snapshot {
        *self.state.borrow()
    }

    /// Counters since the client started.
    pub fn stats(&self) -> Stats {
        self.state.borrow().stats
    }

    /// Connection state.
    pub fn status(&self) -> Status {
        self.state.borrow().status
    }

    /// Whether the client task has ended.
    pub fn is_closed(&self) -> bool {
        self.controls.is_closed()
    }

    async fn send(&self, control: Control) -> Result<(), ClientError> {
        self.controls
            .send(control)
            .await
            .map_err(|_| ClientError::Closed)
    }
}
