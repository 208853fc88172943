//! Devices on their own MQTT connections: one `fleet-mqtt` [`Session`] per device, plus one
//! that watches the alarm topic, driven over any [`Connector`] (the browser's WebSocket in
//! the page, TCP in native tests).
//!
//! Each device's session subscribes to its command topic, publishes its readings at QoS 1
//! (queued while its connection is down, so an outage loses nothing the queue can hold),
//! and reconnects by itself with jittered backoff. The sockets report what happens through
//! [`Connector::events`], tagged with the link and a generation, so an event from a socket
//! that was already replaced is ignored rather than confusing the new one.

use fleet_core::topic::ALARMS_TOPIC;
use fleet_core::{DeviceId, Topic};
use fleet_mqtt::{
    Backoff, DisconnectReason, Event, Options, OptionsError, PublishError, QoS, Session, Status,
};

use super::{Inbound, LinkState, Sent, Transport, TransportStats};

/// Which socket an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkKey {
    /// Link index: device index, or the number of devices for the alarm watcher.
    pub index: usize,
    /// Bumped at every open, so late events of a closed socket are recognised.
    pub generation: u32,
}

/// What a socket reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEvent {
    /// The connection is open.
    Opened,
    /// Bytes arrived (any split of the MQTT stream).
    Data(Vec<u8>),
    /// The connection closed or could not open; the text says why, in plain words.
    Closed(Option<String>),
}

/// An open (or opening) connection. Dropping it closes it.
pub trait Socket {
    /// Sends bytes as one message (one WebSocket frame).
    fn send(&mut self, data: &[u8]) -> Result<(), String>;
}

/// Opens sockets and collects what they report.
pub trait Connector {
    /// The socket type.
    type Socket: Socket;

    /// Starts opening a connection to `url`; its events carry `key`.
    fn open(&mut self, url: &str, key: LinkKey) -> Result<Self::Socket, String>;

    /// Moves the events reported since the last call into `out`, in order.
    fn events(&mut self, out: &mut Vec<(LinkKey, SocketEvent)>);
}

/// Settings of the MQTT transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// Broker URL (`ws://host:port/mqtt` in the page).
    pub url: String,
    /// Prepended to each device id to make its client id; distinct per tab, so two tabs
    /// running the same fleet do not take over each other's connections.
    pub client_prefix: String,
    /// Keep-alive, seconds.
    pub keep_alive_s: u16,
    /// Readings a device holds while its connection is down.
    pub queue_per_device: usize,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Seed of the reconnect jitter.
    pub seed: u64,
}

impl MqttConfig {
    /// Defaults for a broker at `url`.
    pub fn new(url: impl Into<String>, client_prefix: impl Into<String>) -> MqttConfig {
        MqttConfig {
            url: url.into(),
            client_prefix: client_prefix.into(),
            keep_alive_s: 30,
            queue_per_device: 1000,
            // IoT Core accepts one CONNECT per second per client id: never retry faster.
            backoff: Backoff {
                initial_ms: 1000,
                max_ms: 10_000,
            },
            seed: 1,
        }
    }
}

struct Link<S> {
    session: Session,
    socket: Option<S>,
    generation: u32,
    /// What to subscribe to on each new connection (the session resubscribes by itself;
    /// this is for the first one).
    started: bool,
    lost: bool,
}

/// One MQTT session per device and one for the alarm topic.
pub struct MqttTransport<C: Connector> {
    config: MqttConfig,
    connector: C,
    links: Vec<Link<C::Socket>>,
    /// Each device's command topic.
    command_topics: Vec<String>,
    events: Vec<(LinkKey, SocketEvent)>,
    acked: u64,
    dropped: u64,
    problem: Option<String>,
}

impl<C: Connector> std::fmt::Debug for MqttTransport<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttTransport")
            .field("url", &self.config.url)
            .field("links", &self.links.len())
            .finish_non_exhaustive()
    }
}

impl<C: Connector> MqttTransport<C> {
    /// A transport for `devices`, given as `(building, device)`, through `connector`. The
    /// alarm watcher connects at once; devices connect when [`Transport::open`]ed.
    pub fn new(
        config: MqttConfig,
        connector: C,
        devices: &[(fleet_core::BuildingId, DeviceId)],
        now_ms: u64,
    ) -> Result<MqttTransport<C>, OptionsError> {
        let mut links = Vec::with_capacity(devices.len() + 1);
        let mut command_topics = Vec::with_capacity(devices.len());
        for (i, (building, device)) in devices.iter().enumerate() {
            let options = options(&config, format!("{}{device}", config.client_prefix));
            links.push(Link {
                session: Session::new(options, config.seed ^ (i as u64 + 1))?,
                socket: None,
                generation: 0,
                started: false,
                lost: false,
            });
            command_topics.push(Topic::command(building.clone(), device.clone()).to_string());
        }
        let watcher = options(&config, format!("{}alarms", config.client_prefix));
        let mut watcher = Session::new(watcher, config.seed)?;
        // Cannot fail: a constant, valid filter.
        let _ = watcher.subscribe(now_ms, &[(ALARMS_TOPIC, QoS::AtLeastOnce)]);
        links.push(Link {
            session: watcher,
            socket: None,
            generation: 0,
            started: true,
            lost: false,
        });
        Ok(MqttTransport {
            config,
            connector,
            links,
            command_topics,
            events: Vec::new(),
            acked: 0,
            dropped: 0,
            problem: None,
        })
    }

    /// The broker URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// Opens or closes sockets and sends what each session holds.
    fn drive(&mut self, index: usize, now_ms: u64) {
        let url = &self.config.url;
        let link = &mut self.links[index];
        if !link.started {
            return;
        }
        if link.session.poll_timeout().is_some_and(|at| at <= now_ms) {
            link.session.handle_timeout(now_ms);
        }
        loop {
            match link.session.poll_transport(now_ms) {
                fleet_mqtt::TransportAction::None => break,
                fleet_mqtt::TransportAction::Open => {
                    link.generation = link.generation.wrapping_add(1);
                    let key = LinkKey {
                        index,
                        generation: link.generation,
                    };
                    match self.connector.open(url, key) {
                        Ok(socket) => link.socket = Some(socket),
                        Err(e) => link.session.transport_closed(now_ms, Some(e)),
                    }
                }
                fleet_mqtt::TransportAction::Close => {
                    let pending = link.session.transmit().len();
                    if let Some(mut socket) = link.socket.take().filter(|_| pending > 0) {
                        // Best effort (a DISCONNECT): the socket closes either way.
                        let _ = socket.send(link.session.transmit());
                    }
                    link.session.consume_transmit(pending);
                }
            }
        }
        let pending = link.session.transmit().len();
        if let Some(socket) = link.socket.as_mut().filter(|_| pending > 0) {
            match socket.send(link.session.transmit()) {
                Ok(()) => link.session.consume_transmit(pending),
                Err(e) => {
                    link.socket = None;
                    link.session.transport_closed(now_ms, Some(e));
                }
            }
        }
    }

    fn handle_socket_events(&mut self, now_ms: u64) {
        let mut events = std::mem::take(&mut self.events);
        self.connector.events(&mut events);
        for (key, event) in events.drain(..) {
            let Some(link) = self.links.get_mut(key.index) else {
                continue;
            };
            if key.generation != link.generation || link.socket.is_none() {
                continue;
            }
            match event {
                SocketEvent::Opened => link.session.transport_opened(now_ms),
                SocketEvent::Data(bytes) => link.session.handle_input(now_ms, &bytes),
                SocketEvent::Closed(reason) => {
                    link.socket = None;
                    link.session.transport_closed(now_ms, reason);
                }
            }
        }
        self.events = events;
    }

    fn handle_session_events(&mut self, index: usize, inbound: &mut Vec<Inbound>) {
        let link = &mut self.links[index];
        while let Some(event) = link.session.poll_event() {
            match event {
                Event::Acked { .. } => self.acked += 1,
                Event::Message(m) => inbound.push(Inbound {
                    topic: m.topic,
                    payload: m.payload,
                }),
                Event::Connected { .. } => link.lost = false,
                Event::Disconnected { reason, .. } => {
                    if reason != DisconnectReason::Requested {
                        link.lost = true;
                        self.problem = Some(plain_words(&self.config.url, &reason));
                    }
                }
                Event::Subscribed { results } => {
                    if let Some((filter, _)) = results
                        .iter()
                        .find(|(_, r)| *r == fleet_mqtt::SubscribeReturn::Failure)
                    {
                        self.problem =
                            Some(format!("the broker refused the subscription to {filter}"));
                    }
                }
                Event::Unsubscribed { .. } => {}
            }
        }
    }
}

fn options(config: &MqttConfig, client_id: String) -> Options {
    let mut options = Options::new(client_id);
    options.keep_alive_s = config.keep_alive_s;
    options.max_queued = config.queue_per_device;
    options.backoff = config.backoff;
    options
}

/// A disconnect reason as the page says it.
fn plain_words(url: &str, reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::Refused(code) => {
            format!("the broker at {url} refused the connection: {code}")
        }
        DisconnectReason::ConnectTimeout => format!("no answer from the broker at {url}"),
        DisconnectReason::PingTimeout => format!("the broker at {url} stopped answering"),
        DisconnectReason::TransportClosed => format!("the broker at {url} closed the connection"),
        DisconnectReason::TransportError(e) => e.clone(),
        other => format!("connection to {url}: {other}"),
    }
}

impl<C: Connector> Transport for MqttTransport<C> {
    fn open(&mut self, now_ms: u64, device: usize) {
        let Some(topic) = self.command_topics.get(device) else {
            return;
        };
        let link = &mut self.links[device];
        if link.started {
            return;
        }
        link.started = true;
        // Cannot fail: the topic was built from valid ids.
        let _ = link.session.subscribe(now_ms, &[(topic, QoS::AtLeastOnce)]);
        self.drive(device, now_ms);
    }

    fn publish(&mut self, now_ms: u64, device: usize, topic: &str, payload: &[u8]) -> Sent {
        let Some(link) = self.links.get_mut(device).filter(|l| l.started) else {
            self.dropped += 1;
            return Sent::Dropped(format!("device {device} is not started"));
        };
        match link
            .session
            .publish(now_ms, topic, payload, QoS::AtLeastOnce, false)
        {
            Ok(_) => Sent::Queued,
            Err(e @ PublishError::QueueFull(_)) => {
                self.dropped += 1;
                Sent::Dropped(format!("the device's queue is full ({e})"))
            }
            Err(e) => {
                self.dropped += 1;
                Sent::Dropped(e.to_string())
            }
        }
    }

    fn poll(&mut self, now_ms: u64, inbound: &mut Vec<Inbound>) {
        self.handle_socket_events(now_ms);
        for index in 0..self.links.len() {
            self.drive(index, now_ms);
            self.handle_session_events(index, inbound);
        }
        // The problem stays on screen until every started link is back.
        if self.problem.is_some()
            && self
                .links
                .iter()
                .filter(|l| l.started)
                .all(|l| l.session.status() == Status::Connected)
        {
            self.problem = None;
        }
    }

    fn link(&self, device: usize) -> LinkState {
        let Some(link) = self.links.get(device).filter(|l| l.started) else {
            return LinkState::Idle;
        };
        match link.session.status() {
            Status::Connected => LinkState::Up,
            Status::Waiting if link.lost => LinkState::Retrying,
            Status::Waiting | Status::Connecting => LinkState::Connecting,
            Status::Closing | Status::Stopped => LinkState::Idle,
        }
    }

    fn stats(&self) -> TransportStats {
        let devices = &self.links[..self.command_topics.len()];
        TransportStats {
            acked: self.acked,
            unacked: devices
                .iter()
                .map(|l| (l.session.inflight() + l.session.queued()) as u64)
                .sum(),
            dropped: self.dropped,
            reconnects: self
                .links
                .iter()
                .map(|l| l.session.stats().reconnects)
                .sum(),
            links_up: devices
                .iter()
                .filter(|l| l.session.status() == Status::Connected)
                .count() as u64,
        }
    }

    fn problem(&self) -> Option<String> {
        self.problem.clone()
    }

    fn close(&mut self, now_ms: u64) {
        for index in 0..self.links.len() {
            self.links[index].session.disconnect(now_ms);
            self.drive(index, now_ms);
            // Whatever was still queued is given up: Stop means stop.
            self.links[index].socket = None;
            self.links[index].started = false;
        }
    }
}
