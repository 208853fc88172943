//! The task that owns the session and the transport: the only place with sockets and
//! timers (rumqttc's event loop, to the session's state).
//!
//! Each turn of the loop gives the session the time, carries out its transport action,
//! forwards its events, then waits for whichever comes first: bytes from the broker, room
//! to write, a request from a handle, the transport finishing opening, or the session's
//! next deadline. Connect timeouts and reconnect backoff are the session's deadlines, so
//! the driver keeps no timers of its own.

use std::collections::HashMap;
use std::future::{Future, pending, poll_fn};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use fleet_mqtt::{Event, Session, Status, TransportAction};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

use crate::event::ClientEvent;
use crate::handle::{Control, Publish, Snapshot};
use crate::transport::{self, Progress, Received, Transport, TransportError};
use crate::url::BrokerUrl;

/// Publishes taken in one turn before the loop writes: enough for many to share one write
/// (and one WebSocket frame), few enough that reads are not starved.
const PUBLISH_BATCH: usize = 1024;
/// The read buffer's first size. Most connections (one per simulated device) only ever read
/// a few acknowledgements and commands at a time, and a buffer is held per connection: at
/// 64 KiB from the start, 2,000 devices had allocated 131 MB of read buffers at their peak
/// (heaptrack, issue 16), the most of any one thing. One read takes at most the buffer's size; a connection whose reads fill it (a
/// gateway's acknowledgements) has it doubled, up to [`READ_BUFFER_MAX`].
const READ_BUFFER_MIN: usize = 2 * 1024;
/// The most a read buffer grows to.
const READ_BUFFER_MAX: usize = 64 * 1024;
/// How long a close may take to send DISCONNECT and the TLS or WebSocket goodbye.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a connection's events go: a channel of its own, or one shared by many connections,
/// each event tagged with its connection.
pub(crate) enum EventSink {
    /// [`Client::start`](crate::Client::start)'s own receiver.
    Own(mpsc::Sender<ClientEvent>),
    /// [`Client::start_shared`](crate::Client::start_shared)'s channel and this
    /// connection's tag.
    Shared {
        /// The connection's tag.
        tag: usize,
        /// The channel every connection of the application sends to.
        tx: mpsc::Sender<(usize, ClientEvent)>,
    },
}

impl EventSink {
    /// Sends `event`, waiting for room (so a slow application slows the broker down rather
    /// than lose events); dropped when the receiver is gone.
    async fn send(&self, event: ClientEvent) {
        match self {
            EventSink::Own(tx) if !tx.is_closed() => {
                let _ = tx.send(event).await;
            }
            EventSink::Shared { tag, tx } if !tx.is_closed() => {
                let _ = tx.send((*tag, event)).await;
            }
            _ => {}
        }
    }
}

type Opening = Pin<Box<dyn Future<Output = Result<Transport, TransportError>> + Send>>;

/// What ended a wait.
enum Wake {
    Read(Result<Received, TransportError>),
    Wrote(Result<Progress, TransportError>),
    Opened(Result<Transport, TransportError>),
    Publish(Option<Publish>),
    Control(Option<Control>),
    Timer,
}

/// Where and how the driver connects, each time it (re)connects.
pub(crate) struct Endpoint {
    pub(crate) url: BrokerUrl,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// The local address to connect from, if not the system's choice.
    pub(crate) bind: Option<IpAddr>,
}

pub(crate) struct Driver {
    session: Session,
    endpoint: Endpoint,
    publishes: mpsc::Receiver<Publish>,
    controls: mpsc::Receiver<Control>,
    /// False once every handle is gone.
    handles_alive: bool,
    events: EventSink,
    /// Events made by the driver itself (refused fire-and-forget publishes).
    rejected: Vec<ClientEvent>,
    /// The tags of tagged QoS 1 publishes waiting for their acknowledgement, by packet id.
    tags: HashMap<u16, u64>,
    state: watch::Sender<Snapshot>,
    /// The session's clock starts here. Monotonic, and tokio's, so tests may pause time.
    origin: Instant,
    opening: Option<Opening>,
    transport: Option<Transport>,
    read_buf: Vec<u8>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<u64>,
    /// Handles waiting in `disconnect` for the task to end.
    stopping: Vec<oneshot::Sender<()>>,
}

impl Driver {
    pub(crate) fn new(
        session: Session,
        endpoint: Endpoint,
        publishes: mpsc::Receiver<Publish>,
        controls: mpsc::Receiver<Control>,
        events: EventSink,
        state: watch::Sender<Snapshot>,
    ) -> Driver {
        let origin = Instant::now();
        Driver {
            session,
            endpoint,
            publishes,
            controls,
            handles_alive: true,
            events,
            rejected: Vec::new(),
            tags: HashMap::new(),
            state,
            origin,
            opening: None,
            transport: None,
            read_buf: Vec::with_capacity(READ_BUFFER_MIN),
            timer: Box::pin(tokio::time::sleep_until(origin)),
            timer_at: None,
            stopping: Vec::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs until the session is stopped and the transport closed.
    pub(crate) async fn run(mut self) {
        loop {
            let now = self.now_ms();
            if self.session.poll_timeout().is_some_and(|at| at <= now) {
                self.session.handle_timeout(now);
            }
            self.carry_out_transport_actions(now).await;
            self.forward_events(now).await;
            self.publish_state();
            if self.session.status() == Status::Stopped
                && self.transport.is_none()
                && self.opening.is_none()
            {
                break;
            }
            let wake = self.wait().await;
            self.handle(wake);
        }
        // Publishes that raced the disconnect are refused out loud, not dropped unseen.
        self.publishes.close();
        self.controls.close();
        let now = self.now_ms();
        while let Ok(publish) = self.publishes.try_recv() {
            self.publish(now, publish);
        }
        self.forward_events(now).await;
        debug!("client stopped");
        for done in self.stopping.drain(..) {
            let _ = done.send(());
        }
    }

    async fn carry_out_transport_actions(&mut self, now: u64) {
        loop {
            match self.session.poll_transport(now) {
                TransportAction::None => return,
                TransportAction::Open => {
                    debug!("opening transport");
                    self.opening = Some(Box::pin(transport::open(
                        self.endpoint.url.clone(),
                        self.endpoint.tls.clone(),
                        self.endpoint.bind,
                    )));
                }
                TransportAction::Close => {
                    self.opening = None;
                    let pending = self.session.transmit().len();
                    if let Some(mut transport) = self.transport.take() {
                        let data = self.session.transmit();
                        match tokio::time::timeout(CLOSE_TIMEOUT, transport.writer.close(data))
                            .await
                        {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => debug!("closing the transport: {e}"),
                            Err(_) => debug!("closing the transport timed out"),
                        }
                    }
                    // Whatever was not sent died with the connection.
                    self.session.consume_transmit(pending);
                }
            }
        }
    }

    async fn forward_events(&mut self, now: u64) {
        for event in std::mem::take(&mut self.rejected) {
            self.emit(event).await;
        }
        while let Some(event) = self.session.poll_event() {
            let tag = match &event {
                Event::Acked { pkid } => self.tags.remove(pkid),
                _ => None,
            };
            self.emit(ClientEvent::from_session(event, now, tag)).await;
        }
    }

    async fn emit(&mut self, event: ClientEvent) {
        match &event {
            ClientEvent::Connected { .. } => info!("connected"),
            ClientEvent::Disconnected {
                reason,
                reconnect_in: Some(delay),
            } => warn!("disconnected: {reason}; retrying in {delay:?}"),
            ClientEvent::Disconnected { reason, .. } => info!("disconnected: {reason}"),
            _ => {}
        }
        // A closed receiver means the application does not want events; the connection
        // keeps running for its publishes.
        self.events.send(event).await;
    }

    fn publish_state(&self) {
        let now = Snapshot {
            status: self.session.status(),
            stats: self.session.stats(),
            inflight: self.session.inflight(),
            queued: self.session.queued(),
        };
        self.state.send_if_modified(|state| {
            let changed = *state != now;
            *state = now;
            changed
        });
    }

    /// Waits for the next thing to do. Every branch is cancel-safe, so whichever loses
    /// the race loses nothing.
    async fn wait(&mut self) -> Wake {
        self.arm_timer();
        let timer_armed = self.timer_at.is_some();
        let transmit = self.session.transmit();
        let (reader, writer) = match &mut self.transport {
            Some(t) => (Some(&mut t.reader), Some(&mut t.writer)),
            None => (None, None),
        };
        let connected = reader.is_some();
        let wants_write = writer
            .as_ref()
            .is_some_and(|w| !transmit.is_empty() || w.is_dirty());
        let read_buf = &mut self.read_buf;
        let read = async move {
            match reader {
                Some(reader) => reader.read(read_buf).await,
                None => pending().await,
            }
        };
        let write = async move {
            match writer {
                Some(writer) => poll_fn(|cx| writer.poll_progress(cx, transmit)).await,
                None => pending().await,
            }
        };
        let opening = self.opening.as_mut();
        let is_opening = opening.is_some();
        let open = async move {
            match opening {
                Some(opening) => opening.await,
                None => pending().await,
            }
        };
        let take_publishes = self.handles_alive && has_room(&self.session);
        tokio::select! {
            result = read, if connected => Wake::Read(result),
            result = write, if wants_write => Wake::Wrote(result),
            result = open, if is_opening => Wake::Opened(result),
            publish = self.publishes.recv(), if take_publishes => Wake::Publish(publish),
            control = self.controls.recv(), if self.handles_alive => Wake::Control(control),
            () = self.timer.as_mut(), if timer_armed => Wake::Timer,
        }
    }

    /// Points the timer at the session's next deadline; resetting only on change keeps
    /// the timer wheel out of the hot path.
    fn arm_timer(&mut self) {
        let at = self.session.poll_timeout();
        if at != self.timer_at {
            if let Some(at) = at {
                let deadline = self.origin + Duration::from_millis(at);
                self.timer.as_mut().reset(deadline);
            }
            self.timer_at = at;
        }
    }

    fn handle(&mut self, wake: Wake) {
        let now = self.now_ms();
        match wake {
            Wake::Read(Ok(Received::Buffered)) => {
                self.session.handle_input(now, &self.read_buf);
                let filled = self.read_buf.len() >= self.read_buf.capacity();
                self.read_buf.clear();
                if filled && self.read_buf.capacity() < READ_BUFFER_MAX {
                    // More was waiting than fitted: read more at a time from now on.
                    self.read_buf.reserve_exact(self.read_buf.capacity() * 2);
                }
            }
            Wake::Read(Ok(Received::Frame(frame))) => self.session.handle_input(now, &frame),
            Wake::Read(Ok(Received::Closed)) => self.lost(now, None),
            Wake::Read(Err(e)) | Wake::Wrote(Err(e)) => self.lost(now, Some(e)),
            Wake::Wrote(Ok(Progress::Wrote(n))) => self.session.consume_transmit(n),
            Wake::Wrote(Ok(Progress::Flushed)) => {}
            Wake::Opened(Ok(transport)) => {
                debug!("transport open");
                self.opening = None;
                self.transport = Some(transport);
                self.session.transport_opened(now);
            }
            Wake::Opened(Err(e)) => {
                self.opening = None;
                self.session.transport_closed(now, Some(e.to_string()));
            }
            Wake::Publish(Some(publish)) => {
                self.publish(now, publish);
                // Take what else is waiting, so a burst of publishes shares one write.
                for _ in 1..PUBLISH_BATCH {
                    if !has_room(&self.session) {
                        break;
                    }
                    match self.publishes.try_recv() {
                        Ok(publish) => self.publish(now, publish),
                        Err(_) => break,
                    }
                }
            }
            Wake::Control(Some(control)) => self.control(now, control),
            // Every handle is gone: nobody can publish or disconnect any more.
            Wake::Publish(None) | Wake::Control(None) => {
                self.handles_alive = false;
                self.session.disconnect(now);
            }
            // The deadline is handled at the top of the loop.
            Wake::Timer => self.timer_at = None,
        }
    }

    fn lost(&mut self, now: u64, error: Option<TransportError>) {
        self.transport = None;
        self.read_buf.clear();
        self.session
            .transport_closed(now, error.map(|e| e.to_string()));
    }

    fn publish(&mut self, now: u64, publish: Publish) {
        let Publish {
            topic,
            payload,
            qos,
            retain,
            reply,
            tag,
        } = publish;
        let result = self.session.publish(now, &topic, &payload, qos, retain);
        match (reply, result) {
            (Some(reply), result) => {
                let _ = reply.send(result);
            }
            (None, Err(error)) => {
                self.rejected
                    .push(ClientEvent::PublishRejected { topic, error, tag })
            }
            (None, Ok(Some(pkid))) => {
                if let Some(tag) = tag {
                    self.tags.insert(pkid, tag);
                }
            }
            (None, Ok(None)) => {}
        }
    }

    fn control(&mut self, now: u64, control: Control) {
        match control {
            Control::Subscribe { filters, reply } => {
                let filters: Vec<(&str, _)> =
                    filters.iter().map(|(f, q)| (f.as_str(), *q)).collect();
                let _ = reply.send(self.session.subscribe(now, &filters));
            }
            Control::Unsubscribe { filters, reply } => {
                let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
                let _ = reply.send(self.session.unsubscribe(now, &filters));
            }
            Control::Disconnect { reply } => {
                // Publishes sent before the disconnect go first, as the caller expects;
                // what no longer fits in the queue is refused, not silently dropped.
                while let Ok(publish) = self.publishes.try_recv() {
                    self.publish(now, publish);
                }
                self.session.disconnect(now);
                self.stopping.push(reply);
            }
        }
    }
}

/// Whether the session can take another publish without refusing it as `QueueFull` or
/// `WouldBlock`. `queued` excludes the messages in flight, so below `max_queued` the
/// outbox (in flight plus queued, at most `max_inflight + max_queued`) has room.
fn has_room(session: &Session) -> bool {
    let options = session.options();
    session.queued() < options.max_queued.max(1)
        && session.transmit().len() <= options.max_transmit_buffer
}
