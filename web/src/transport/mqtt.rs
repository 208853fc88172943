//! Devices over MQTT: `fleet-mqtt` [`Session`]s, plus one that watches the alarm topic,
//! driven over any [`Connector`] (the browser's WebSocket in the page, TCP in native tests).
//!
//! Two strategies ([`Connections`]):
//! - **per device**: one session per device, with the device's client id, subscribed to its
//!   own command topic;
//! - **gateways**: a few sessions publish for many devices each (what a browser does past
//!   its ~255 WebSockets). A building's devices share a gateway, which subscribes to the
//!   building's command wildcard (`cmd/monitoring/{building}/+/remediation`): one filter per
//!   building rather than one per device, within IoT Core's 50 subscriptions per connection.
//!
//! Either way readings go out at QoS 1 ([`MqttConfig::qos`]; queued while the connection is down, so an outage
//! loses nothing the queue can hold), all the packets of a frame leave in one WebSocket
//! frame (MQTT 3.1.1 §6 allows any split), and sessions reconnect by themselves with
//! jittered backoff. The sockets report what happens through
//! [`Connector::events`], tagged with the link and a generation, so an event from a socket
//! that was already replaced is ignored rather than confusing the new one.

use fleet_core::topic::ALARMS_TOPIC;
use fleet_core::{DeviceId, Topic};
use fleet_mqtt::{
    Backoff, DisconnectReason, Event, Options, OptionsError, PublishError, QoS, Session, Status,
};

use super::{Inbound, LinkState, Sent, Transport, TransportStats};
use crate::identity::Login;

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

/// How devices share connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// One connection per device.
    PerDevice,
    /// This many connections, each publishing for the buildings assigned to it.
    Gateways(usize),
}

/// Settings of the MQTT transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// Connection strategy.
    pub connections: Connections,
    /// Broker URL (`ws://host:port/mqtt` in the page).
    pub url: String,
    /// Client ids are `{client_base}.{device}`, `{client_base}.gateway-{n}` and
    /// `{client_base}.alarms`: brokers bind a page's client ids to its namespace (or, on
    /// AWS, to its Cognito identity id), and a base of its own per tab keeps two tabs from
    /// taking over each other's connections (see `identity.rs`).
    pub client_base: String,
    /// Sent in every CONNECT (`fleet local` issues one per page in `config.json`).
    pub login: Option<Login>,
    /// Keep-alive, seconds.
    pub keep_alive_s: u16,
    /// Readings a device holds while its connection is down (a gateway holds this many
    /// per device it serves, up to the session's limit).
    pub queue_per_device: usize,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Seed of the reconnect jitter.
    pub seed: u64,
    /// Reconnects a link connected this long (IoT Core closes WebSockets after 24 h; a
    /// planned reconnect before that is also a fresh signature). `None`: never.
    pub max_connection_ms: Option<u64>,
    /// The QoS readings go out at: 1 (acknowledged, and queued while the connection is
    /// down) unless set otherwise; the browser benchmark also measures 0.
    pub qos: QoS,
}

/// Gives the URL of each new connection at that moment: how the AWS mode presigns a fresh
/// URL for every connect and reconnect. A closure `FnMut(now_ms) -> Result<url, why>` is
/// one.
pub trait ConnectUrl {
    /// The URL to connect to at `now_ms`, or why there is none (shown as the connection's
    /// problem).
    fn url(&mut self, now_ms: u64) -> Result<String, String>;

    /// A connection to a URL it gave closed before it opened: refused or unreachable, which
    /// a browser does not tell apart (a refused WebSocket upgrade shows no status).
    /// `socket_said` is the socket's own words; the source may know better (a presigned
    /// URL whose time was off). Returns what the page says.
    fn refused(&mut self, now_ms: u64, socket_said: String) -> String {
        let _ = now_ms;
        socket_said
    }
}

impl<F: FnMut(u64) -> Result<String, String>> ConnectUrl for F {
    fn url(&mut self, now_ms: u64) -> Result<String, String> {
        self(now_ms)
    }
}

/// A transport's URL source (see [`ConnectUrl`]).
pub type UrlSource = Box<dyn ConnectUrl>;

impl MqttConfig {
    /// Defaults for a broker at `url`, with client ids `{client_base}.…` and no credential.
    pub fn new(url: impl Into<String>, client_base: impl Into<String>) -> MqttConfig {
        MqttConfig {
            connections: Connections::PerDevice,
            url: url.into(),
            client_base: client_base.into(),
            login: None,
            keep_alive_s: 30,
            queue_per_device: 1000,
            // IoT Core accepts one CONNECT per second per client id: never retry faster.
            backoff: Backoff {
                initial_ms: 1000,
                max_ms: 10_000,
            },
            seed: 1,
            max_connection_ms: None,
            qos: QoS::AtLeastOnce,
        }
    }
}

impl MqttConfig {
    /// The client id `{client_base}.{suffix}`.
    pub fn client_id(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.client_base)
    }
}

struct Link<S> {
    session: Session,
    socket: Option<S>,
    generation: u32,
    /// Whether the current socket opened (a close before that is a refusal or no route).
    opened: bool,
    /// Whether the link was asked to connect (the ramp-up reached one of its devices).
    started: bool,
    /// Filters to subscribe to when it starts.
    filters: Vec<String>,
    lost: bool,
    connected_at_ms: u64,
    /// When it last sent (see [`SEND_EVERY_MS`]).
    sent_at_ms: u64,
    /// PUBLISH packets the session had written when the link last sent.
    written_at_send: u64,
}

/// A link sends at most this often, ms, unless [`SEND_BYTES`] are waiting: 250 busy
/// gateways then make ~5,000 WebSocket sends a second rather than one each per frame
/// (15,000), which cost the page long tasks at 25,000 devices. A link that was quiet for
/// this long (a device's own connection at one reading a second) sends at once.
pub const SEND_EVERY_MS: u64 = 50;

/// See [`SEND_EVERY_MS`].
pub const SEND_BYTES: usize = 16 * 1024;

/// MQTT sessions for a fleet, and one for the alarm topic.
pub struct MqttTransport<C: Connector> {
    config: MqttConfig,
    connector: C,
    /// The device links (one per device, or the gateways), then the alarm watcher.
    links: Vec<Link<C::Socket>>,
    /// Each device's link.
    device_link: Vec<usize>,
    events: Vec<(LinkKey, SocketEvent)>,
    acked: u64,
    dropped: u64,
    problem: Option<String>,
    url_source: Option<UrlSource>,
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
    /// alarm watcher connects at once; a device's link connects when the device is
    /// [`Transport::open`]ed.
    pub fn new(
        config: MqttConfig,
        connector: C,
        devices: &[(fleet_core::BuildingId, DeviceId)],
        now_ms: u64,
    ) -> Result<MqttTransport<C>, OptionsError> {
        let mut links = Vec::new();
        let mut device_link = Vec::with_capacity(devices.len());
        match config.connections {
            Connections::PerDevice => {
                for (i, (building, device)) in devices.iter().enumerate() {
                    let options = options(
                        &config,
                        config.client_id(device.as_str()),
                        config.queue_per_device,
                    );
                    let filter = Topic::command(building.clone(), device.clone()).to_string();
                    links.push(Link::new(
                        Session::new(options, config.seed ^ (i as u64 + 1))?,
                        vec![filter],
                    ));
                    device_link.push(i);
                }
            }
            Connections::Gateways(n) => {
                // Buildings in order of first appearance, dealt round-robin to the gateways.
                let n = n.clamp(1, devices.len().max(1));
                let mut buildings: Vec<&fleet_core::BuildingId> = Vec::new();
                let mut served = vec![0_usize; n];
                for (building, _) in devices {
                    let b = match buildings.iter().position(|known| *known == building) {
                        Some(b) => b,
                        None => {
                            buildings.push(building);
                            buildings.len() - 1
                        }
                    };
                    device_link.push(b % n);
                    served[b % n] += 1;
                }
                for (g, count) in served.iter().enumerate() {
                    let filters = buildings
                        .iter()
                        .enumerate()
                        .filter(|(b, _)| b % n == g)
                        .map(|(_, building)| format!("cmd/monitoring/{building}/+/remediation"))
                        .collect();
                    let queue = config.queue_per_device.saturating_mul((*count).max(1)).min(
                        fleet_mqtt::session::MAX_QUEUED
                            - usize::from(fleet_mqtt::session::MAX_INFLIGHT),
                    );
                    let options =
                        options(&config, config.client_id(&format!("gateway-{g}")), queue);
                    links.push(Link::new(
                        Session::new(options, config.seed ^ (g as u64 + 1))?,
                        filters,
                    ));
                }
            }
        }
        let watcher = options(&config, config.client_id("alarms"), config.queue_per_device);
        let mut watcher = Link::new(
            Session::new(watcher, config.seed)?,
            vec![ALARMS_TOPIC.to_owned()],
        );
        watcher.start(now_ms);
        links.push(watcher);
        Ok(MqttTransport {
            config,
            connector,
            links,
            device_link,
            events: Vec::new(),
            acked: 0,
            dropped: 0,
            problem: None,
            url_source: None,
        })
    }

    /// Takes each connection's URL from `source` rather than the fixed
    /// [`MqttConfig::url`], which then only names the broker in messages (so a presigned
    /// URL's signature and token never reach the screen).
    pub fn with_url_source(mut self, source: UrlSource) -> MqttTransport<C> {
        self.url_source = Some(source);
        self
    }

    /// Bytes the sessions hold that no socket has been handed yet (a link sends every
    /// [`SEND_EVERY_MS`], or at once past [`SEND_BYTES`] or with a full window).
    pub fn unsent_bytes(&self) -> usize {
        self.links.iter().map(|l| l.session.transmit().len()).sum()
    }

    /// How many connections the devices use (not counting the alarm watcher).
    pub fn connections(&self) -> usize {
        self.links.len() - 1
    }

    /// The broker URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// Opens or closes sockets and sends what each session holds.
    fn drive(&mut self, index: usize, now_ms: u64) {
        let link = &mut self.links[index];
        if !link.started {
            return;
        }
        if link.session.poll_timeout().is_some_and(|at| at <= now_ms) {
            link.session.handle_timeout(now_ms);
        }
        if link.session.status() != Status::Connected {
            link.connected_at_ms = 0;
        } else if link.connected_at_ms == 0 {
            link.connected_at_ms = now_ms;
        } else if self
            .config
            .max_connection_ms
            .is_some_and(|max| now_ms.saturating_sub(link.connected_at_ms) >= max)
        {
            // A planned reconnect: queued and unacknowledged readings go out again on the
            // new connection.
            link.session.disconnect(now_ms);
            link.session.reconnect(now_ms);
            link.connected_at_ms = 0;
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
                    link.opened = false;
                    let url = match self.url_source.as_mut() {
                        Some(source) => source.url(now_ms),
                        None => Ok(self.config.url.clone()),
                    };
                    match url.and_then(|url| self.connector.open(&url, key)) {
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
        // A full window goes once half of it is new: nothing joins it until the broker
        // acknowledges, so waiting for the timer would only idle the link (at one window
        // per SEND_EVERY_MS, a link could carry no more than 2,000 readings a second), but
        // sending each acknowledgement's one refill by itself would make a WebSocket
        // message per reading.
        let stats = link.session.stats();
        let written = stats.published + stats.resent;
        let window = fleet_mqtt::session::MAX_INFLIGHT;
        let fresh = written.saturating_sub(link.written_at_send);
        // Cheapest tests first: `inflight()` walks the window, and this runs for every link
        // at every poll.
        let due = pending >= SEND_BYTES
            || now_ms >= link.sent_at_ms.saturating_add(SEND_EVERY_MS)
            || (fresh >= u64::from(window / 2) && link.session.inflight() >= usize::from(window));
        if let Some(socket) = link.socket.as_mut().filter(|_| pending > 0 && due) {
            match socket.send(link.session.transmit()) {
                Ok(()) => {
                    link.session.consume_transmit(pending);
                    link.sent_at_ms = now_ms;
                    link.written_at_send = written;
                }
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
                SocketEvent::Opened => {
                    link.opened = true;
                    link.session.transport_opened(now_ms);
                }
                SocketEvent::Data(bytes) => link.session.handle_input(now_ms, &bytes),
                SocketEvent::Closed(mut reason) => {
                    link.socket = None;
                    if let (false, Some(source)) = (link.opened, self.url_source.as_mut()) {
                        reason = reason.map(|said| source.refused(now_ms, said));
                    }
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
                        self.problem = Some(plain_words(
                            &self.config.url,
                            self.config.login.is_some(),
                            &reason,
                        ));
                    }
                }
                Event::Subscribed { results } => {
                    if let Some((filter, _)) = results
                        .iter()
                        .find(|(_, r)| *r == fleet_mqtt::SubscribeReturn::Failure)
                    {
                        self.problem = Some(format!(
                            "the broker refused the subscription to {filter} (not one of \
                             this page's topics)"
                        ));
                    }
                }
                Event::Unsubscribed { .. } => {}
            }
        }
    }
}

impl<S> Link<S> {
    fn new(session: Session, filters: Vec<String>) -> Link<S> {
        Link {
            session,
            socket: None,
            generation: 0,
            opened: false,
            started: false,
            filters,
            lost: false,
            connected_at_ms: 0,
            sent_at_ms: 0,
            written_at_send: 0,
        }
    }

    /// Asks the session to connect, subscribed to the link's filters (at most 8 per
    /// SUBSCRIBE, as IoT Core accepts).
    fn start(&mut self, now_ms: u64) {
        if self.started {
            return;
        }
        self.started = true;
        for chunk in self.filters.chunks(8) {
            let filters: Vec<(&str, QoS)> = chunk
                .iter()
                .map(|f| (f.as_str(), QoS::AtLeastOnce))
                .collect();
            // Cannot fail: the filters were built from valid ids.
            let _ = self.session.subscribe(now_ms, &filters);
        }
    }
}

fn options(config: &MqttConfig, client_id: String, max_queued: usize) -> Options {
    let mut options = Options::new(client_id);
    if let Some(login) = &config.login {
        options.username = Some(login.username.clone());
        options.password = Some(login.password.clone().into_bytes());
    }
    options.keep_alive_s = config.keep_alive_s;
    options.max_queued = max_queued;
    options.backoff = config.backoff;
    options
}

/// A disconnect reason as the page says it. `login`: whether the page sent a credential.
fn plain_words(url: &str, login: bool, reason: &DisconnectReason) -> String {
    use fleet_mqtt::ConnectReturnCode::{BadUserNameOrPassword, NotAuthorized};
    match reason {
        // What `fleet local` answers a page without its credential, or with one it did not
        // issue (another stack's, or its secret was deleted).
        DisconnectReason::Refused(NotAuthorized | BadUserNameOrPassword) if login => format!(
            "the broker at {url} refused this page's credentials (not authorized): reload \
             the page for new ones"
        ),
        DisconnectReason::Refused(NotAuthorized | BadUserNameOrPassword) => format!(
            "the broker at {url} refused this page: it needs credentials, which a page gets \
             only from the stack that serves it (open the page `fleet local` serves)"
        ),
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
        let Some(&l) = self.device_link.get(device) else {
            return;
        };
        if !self.links[l].started {
            self.links[l].start(now_ms);
            self.drive(l, now_ms);
        }
    }

    fn publish(&mut self, now_ms: u64, device: usize, topic: &str, payload: &[u8]) -> Sent {
        let qos = self.config.qos;
        let Some(link) = self
            .device_link
            .get(device)
            .map(|&l| &mut self.links[l])
            .filter(|l| l.started)
        else {
            self.dropped += 1;
            return Sent::Dropped(format!("device {device} is not started"));
        };
        match link.session.publish(now_ms, topic, payload, qos, false) {
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
        let Some(link) = self
            .device_link
            .get(device)
            .map(|&l| &self.links[l])
            .filter(|l| l.started)
        else {
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
        let device_links = &self.links[..self.links.len() - 1];
        TransportStats {
            acked: self.acked,
            unacked: device_links
                .iter()
                .map(|l| (l.session.inflight() + l.session.queued()) as u64)
                .sum(),
            dropped: self.dropped,
            reconnects: self
                .links
                .iter()
                .map(|l| l.session.stats().reconnects)
                .sum(),
            // Devices whose link is up, so "connected" reads the same in both strategies.
            links_up: self
                .device_link
                .iter()
                .filter(|&&l| {
                    self.links[l].started && self.links[l].session.status() == Status::Connected
                })
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use fleet_core::BuildingId;

    use super::*;

    /// Counts sends; reports the socket open and the broker's CONNACK.
    #[derive(Default)]
    struct Fake {
        sends: Rc<RefCell<Vec<u64>>>,
        key: Option<LinkKey>,
        reported: bool,
        now: Rc<RefCell<u64>>,
    }

    struct FakeSocket(Rc<RefCell<Vec<u64>>>, Rc<RefCell<u64>>);

    impl Socket for FakeSocket {
        fn send(&mut self, _: &[u8]) -> Result<(), String> {
            self.0.borrow_mut().push(*self.1.borrow());
            Ok(())
        }
    }

    impl Connector for Fake {
        type Socket = FakeSocket;
        fn open(&mut self, _: &str, key: LinkKey) -> Result<FakeSocket, String> {
            self.key = Some(key);
            Ok(FakeSocket(self.sends.clone(), self.now.clone()))
        }
        fn events(&mut self, out: &mut Vec<(LinkKey, SocketEvent)>) {
            if let (Some(key), false) = (self.key, self.reported) {
                self.reported = true;
                out.push((key, SocketEvent::Opened));
                out.push((key, SocketEvent::Data(vec![0x20, 0x02, 0x00, 0x00])));
            }
        }
    }

    #[test]
    fn a_busy_gateway_sends_at_most_every_50_ms() {
        let fake = Fake::default();
        let (sends, now) = (fake.sends.clone(), fake.now.clone());
        let building = BuildingId::try_from("b").unwrap();
        let devices: Vec<_> = (0..100)
            .map(|i| {
                let id = DeviceId::try_from(format!("d-{i}").as_str()).unwrap();
                (building.clone(), id)
            })
            .collect();
        let mut config = MqttConfig::new("ws://broker/mqtt", "t");
        config.connections = Connections::Gateways(1);
        let mut t = MqttTransport::new(config, fake, &devices, 0).unwrap();
        for d in 0..100 {
            t.open(0, d);
        }
        let mut inbound = Vec::new();
        // One second at 60 frames a second, 100 readings a second: under two a frame.
        for frame in 0..60_u64 {
            let at = 1_000 + frame * 1000 / 60;
            *now.borrow_mut() = at;
            if frame % 3 != 0 {
                t.publish(at, (frame % 100) as usize, "dt/x", b"{}");
                t.publish(at, (frame % 100) as usize, "dt/x", b"{}");
            }
            t.poll(at, &mut inbound);
        }
        let sends = sends.borrow();
        // The alarm watcher's link sends its CONNECT and SUBSCRIBE too: a few more.
        assert!(sends.len() <= 26, "{} sends: {sends:?}", sends.len());
        let gateway: Vec<u64> = sends.iter().copied().filter(|&at| at >= 1_000).collect();
        assert!(gateway.len() >= 15, "{gateway:?}");
        assert!(t.stats().links_up == 100);
    }

    /// Every send: when, and the bytes.
    type Timed = Rc<RefCell<Vec<(u64, Vec<u8>)>>>;

    /// Sends (time, bytes) of one gateway whose broker acknowledges what the test says.
    struct Acking {
        sent: Timed,
        now: Rc<RefCell<u64>>,
        inbox: Rc<RefCell<Vec<(LinkKey, SocketEvent)>>>,
    }

    struct AckingSocket(Timed, Rc<RefCell<u64>>);

    impl Socket for AckingSocket {
        fn send(&mut self, data: &[u8]) -> Result<(), String> {
            self.0.borrow_mut().push((*self.1.borrow(), data.to_vec()));
            Ok(())
        }
    }

    impl Connector for Acking {
        type Socket = AckingSocket;
        fn open(&mut self, _: &str, key: LinkKey) -> Result<AckingSocket, String> {
            let mut inbox = self.inbox.borrow_mut();
            inbox.push((key, SocketEvent::Opened));
            inbox.push((key, SocketEvent::Data(vec![0x20, 0x02, 0x00, 0x00])));
            Ok(AckingSocket(self.sent.clone(), self.now.clone()))
        }
        fn events(&mut self, out: &mut Vec<(LinkKey, SocketEvent)>) {
            out.append(&mut self.inbox.borrow_mut());
        }
    }

    #[test]
    fn a_full_window_goes_at_once_so_a_link_is_not_held_to_one_window_per_50_ms() {
        use fleet_mqtt::codec::decode;
        use fleet_mqtt::packet::Packet;
        let sent = Rc::new(RefCell::new(Vec::new()));
        let now = Rc::new(RefCell::new(0_u64));
        let inbox = Rc::new(RefCell::new(Vec::new()));
        let acking = Acking {
            sent: sent.clone(),
            now: now.clone(),
            inbox: inbox.clone(),
        };
        let building = BuildingId::try_from("b").unwrap();
        let devices = [(building, DeviceId::try_from("d-1").unwrap())];
        let mut config = MqttConfig::new("ws://broker/mqtt", "t");
        config.connections = Connections::Gateways(1);
        let mut t = MqttTransport::new(config, acking, &devices, 0).unwrap();
        t.open(0, 0);
        let mut inbound = Vec::new();
        t.poll(0, &mut inbound);
        let gateway_key = LinkKey {
            index: 0,
            generation: 1,
        };
        // 300 small readings at once, then 3 ms in which the broker acknowledges
        // everything it got, a millisecond later each time.
        for _ in 0..300 {
            assert_eq!(t.publish(1_000, 0, "dt/x", b"{}"), Sent::Queued);
        }
        let mut publishes_at = Vec::new();
        for at in 1_000..1_004 {
            *now.borrow_mut() = at;
            t.poll(at, &mut inbound);
            let mut acks = Vec::new();
            for (when, bytes) in sent.borrow().iter().filter(|(when, _)| *when == at) {
                let mut from = 0;
                while let Some((packet, used)) = decode(&bytes[from..], 1 << 20).unwrap() {
                    if let Packet::Publish(p) = packet {
                        publishes_at.push(*when);
                        let id = p.pkid.unwrap();
                        acks.extend([0x40, 0x02, (id >> 8) as u8, id as u8]);
                    }
                    from += used;
                }
            }
            if !acks.is_empty() {
                inbox
                    .borrow_mut()
                    .push((gateway_key, SocketEvent::Data(acks)));
            }
        }
        // A window of 100 each millisecond: all 300 out within 3 ms, not 100 ms.
        let count = |at| publishes_at.iter().filter(|&&w| w == at).count();
        assert_eq!([count(1_000), count(1_001), count(1_002)], [100, 100, 100]);
        t.poll(1_004, &mut inbound);
        assert_eq!(t.stats().acked, 300);
        assert_eq!(t.stats().unacked, 0);

        // Acknowledgements one by one (a broker that answers each publish in a message of
        // its own): refills go out half a window at a time, not one reading per send.
        for _ in 0..300 {
            t.publish(2_000, 0, "dt/x", b"{}");
        }
        // All in one millisecond, so the 50 ms timer never sends: only the window does.
        *now.borrow_mut() = 2_000;
        let sends_before = sent.borrow().len();
        let mut seen = sends_before;
        let mut unacked = std::collections::VecDeque::new();
        for _ in 0..1_000 {
            t.poll(2_000, &mut inbound);
            for (_, bytes) in &sent.borrow()[seen..] {
                let mut from = 0;
                while let Some((packet, used)) = decode(&bytes[from..], 1 << 20).unwrap() {
                    if let Packet::Publish(p) = packet {
                        unacked.push_back(p.pkid.unwrap());
                    }
                    from += used;
                }
            }
            seen = sent.borrow().len();
            // One acknowledgement per poll.
            if let Some(id) = unacked.pop_front() {
                let ack = vec![0x40, 0x02, (id >> 8) as u8, id as u8];
                inbox
                    .borrow_mut()
                    .push((gateway_key, SocketEvent::Data(ack)));
            }
        }
        assert_eq!(t.stats().acked, 600);
        let sends = sent.borrow().len() - sends_before;
        assert!((4..=8).contains(&sends), "{sends} sends for 300 readings");
    }

    #[test]
    fn readings_go_at_the_configured_qos() {
        use fleet_mqtt::codec::decode;
        use fleet_mqtt::packet::Packet;
        let mut config = MqttConfig::new("ws://broker/mqtt", "t");
        config.qos = QoS::AtMostOnce;
        let ids = devices("d", "1", 1);
        let (mut t, sent) = run(config, 0, &ids);
        assert_eq!(t.publish(300, 0, "dt/x", b"{}"), Sent::Queued);
        t.poll(400, &mut Vec::new());
        let qos: Vec<QoS> = sent
            .borrow()
            .iter()
            .flat_map(|(_, bytes)| {
                let mut out = Vec::new();
                let mut from = 0;
                while let Some((packet, used)) = decode(&bytes[from..], 1 << 20).unwrap() {
                    if let Packet::Publish(p) = packet {
                        out.push(p.qos);
                    }
                    from += used;
                }
                out
            })
            .collect();
        assert_eq!(qos, [QoS::AtMostOnce]);
        assert_eq!(t.stats().unacked, 0);
    }

    /// Every send: the link's index and the bytes.
    type Sends = Rc<RefCell<Vec<(usize, Vec<u8>)>>>;

    /// A CONNECT as sent: client id, user name, password.
    type Connect = (String, Option<String>, Option<String>);

    /// Records every send per link; reports each socket open with a CONNACK `code`.
    struct Wire {
        sent: Sends,
        pending: Vec<LinkKey>,
        code: u8,
    }

    struct WireSocket(usize, Sends);

    impl Socket for WireSocket {
        fn send(&mut self, data: &[u8]) -> Result<(), String> {
            self.1.borrow_mut().push((self.0, data.to_vec()));
            Ok(())
        }
    }

    impl Connector for Wire {
        type Socket = WireSocket;
        fn open(&mut self, _: &str, key: LinkKey) -> Result<WireSocket, String> {
            self.pending.push(key);
            Ok(WireSocket(key.index, self.sent.clone()))
        }
        fn events(&mut self, out: &mut Vec<(LinkKey, SocketEvent)>) {
            for key in self.pending.drain(..) {
                out.push((key, SocketEvent::Opened));
                out.push((key, SocketEvent::Data(vec![0x20, 0x02, 0x00, self.code])));
            }
        }
    }

    /// The CONNECTs (client id, user name, password) and subscription filters sent.
    fn on_the_wire(sent: &[(usize, Vec<u8>)]) -> (Vec<Connect>, Vec<String>) {
        use fleet_mqtt::codec::decode;
        use fleet_mqtt::packet::Packet;
        let (mut connects, mut filters) = (Vec::new(), Vec::new());
        for (_, bytes) in sent {
            let mut at = 0;
            while let Some((packet, used)) = decode(&bytes[at..], 1 << 20).unwrap() {
                match packet {
                    Packet::Connect(c) => connects.push((
                        c.client_id.to_owned(),
                        c.username.map(str::to_owned),
                        c.password.map(|p| String::from_utf8(p.to_vec()).unwrap()),
                    )),
                    Packet::Subscribe(s) => {
                        filters.extend(s.filters.iter().map(|(f, _)| (*f).to_owned()))
                    }
                    _ => {}
                }
                at += used;
            }
        }
        connects.sort();
        filters.sort();
        (connects, filters)
    }

    fn devices(ns: &str, building: &str, n: usize) -> Vec<(BuildingId, DeviceId)> {
        (1..=n)
            .map(|i| {
                let id = DeviceId::try_from(format!("{ns}-{i:04}").as_str()).unwrap();
                (BuildingId::try_from(building).unwrap(), id)
            })
            .collect()
    }

    fn run(
        config: MqttConfig,
        code: u8,
        ids: &[(BuildingId, DeviceId)],
    ) -> (MqttTransport<Wire>, Sends) {
        let sent = Rc::new(RefCell::new(Vec::new()));
        let wire = Wire {
            sent: sent.clone(),
            pending: Vec::new(),
            code,
        };
        let mut t = MqttTransport::new(config, wire, ids, 0).unwrap();
        for d in 0..ids.len() {
            t.open(0, d);
        }
        let mut inbound = Vec::new();
        for at in [0, 100, 200] {
            t.poll(at, &mut inbound);
        }
        (t, sent)
    }

    #[test]
    fn client_ids_are_the_base_a_dot_and_a_suffix_and_every_connect_carries_the_login() {
        let login = Login {
            username: "page:w0a1b2c3d4".into(),
            password: "token".into(),
        };
        let ids = devices("w0a1b2c3d4", "1", 2);
        let mut config = MqttConfig::new("ws://broker/mqtt", "w0a1b2c3d4");
        config.login = Some(login.clone());
        let (t, sent) = run(config.clone(), 0, &ids);
        let (connects, filters) = on_the_wire(&sent.borrow());
        let with_login = |id: &str| {
            (
                id.to_owned(),
                Some(login.username.clone()),
                Some(login.password.clone()),
            )
        };
        assert_eq!(
            connects,
            [
                with_login("w0a1b2c3d4.alarms"),
                with_login("w0a1b2c3d4.w0a1b2c3d4-0001"),
                with_login("w0a1b2c3d4.w0a1b2c3d4-0002"),
            ]
        );
        // Each device its own command topic; the alarm watcher the alarms.
        assert_eq!(
            filters,
            [
                "cmd/monitoring/1/w0a1b2c3d4-0001/remediation",
                "cmd/monitoring/1/w0a1b2c3d4-0002/remediation",
                "dt/monitoring/alarms",
            ]
        );
        assert_eq!(t.stats().links_up, 2);

        // Gateways: `{base}.gateway-{n}`, subscribed to their building's command wildcard.
        config.connections = Connections::Gateways(1);
        let (_, sent) = run(config, 0, &ids);
        let (connects, filters) = on_the_wire(&sent.borrow());
        assert_eq!(
            connects,
            [
                with_login("w0a1b2c3d4.alarms"),
                with_login("w0a1b2c3d4.gateway-0")
            ]
        );
        assert_eq!(
            filters,
            ["cmd/monitoring/1/+/remediation", "dt/monitoring/alarms"]
        );

        // A Cognito guest: its identity id is the base, and no login (the URL is signed).
        let guest = "us-east-1:7d7c5d4e-0a1b-4c2d-8e3f-1234567890ab";
        let ids = devices("g7d7c5d4e0a1b4c2d8e3f1234567890ab", "browser", 1);
        let (_, sent) = run(MqttConfig::new("wss://iot/mqtt", guest), 0, &ids);
        let (connects, _) = on_the_wire(&sent.borrow());
        assert_eq!(
            connects[1],
            (
                format!("{guest}.g7d7c5d4e0a1b4c2d8e3f1234567890ab-0001"),
                None,
                None
            )
        );
    }

    /// Every socket closes without opening (a refused upgrade), or after opening.
    struct Refusing {
        pending: Vec<LinkKey>,
        open_first: bool,
    }

    impl Connector for Refusing {
        type Socket = FakeSocket;
        fn open(&mut self, _: &str, key: LinkKey) -> Result<FakeSocket, String> {
            self.pending.push(key);
            Ok(FakeSocket(Rc::default(), Rc::default()))
        }
        fn events(&mut self, out: &mut Vec<(LinkKey, SocketEvent)>) {
            for key in self.pending.drain(..) {
                if self.open_first {
                    out.push((key, SocketEvent::Opened));
                }
                out.push((
                    key,
                    SocketEvent::Closed(Some("the socket's words".to_owned())),
                ));
            }
        }
    }

    /// A URL source that says what it knows about a refusal.
    struct Explaining(Rc<RefCell<Vec<String>>>);

    impl ConnectUrl for Explaining {
        fn url(&mut self, _: u64) -> Result<String, String> {
            Ok("wss://iot/mqtt?X-Amz-Signature=s".to_owned())
        }
        fn refused(&mut self, _: u64, socket_said: String) -> String {
            self.0.borrow_mut().push(socket_said);
            "the clock is 20 minutes fast".to_owned()
        }
    }

    #[test]
    fn the_url_source_words_a_connection_that_closed_before_it_opened() {
        let ids = devices("w1", "1", 1);
        for open_first in [false, true] {
            let asked = Rc::new(RefCell::new(Vec::new()));
            let connector = Refusing {
                pending: Vec::new(),
                open_first,
            };
            let mut t =
                MqttTransport::new(MqttConfig::new("wss://iot/mqtt", "w1"), connector, &ids, 0)
                    .unwrap()
                    .with_url_source(Box::new(Explaining(asked.clone())));
            t.open(0, 0);
            t.poll(0, &mut Vec::new());
            t.poll(1, &mut Vec::new());
            if open_first {
                // It opened: the URL was accepted, whatever closed it then.
                assert!(asked.borrow().is_empty());
                assert_eq!(t.problem().as_deref(), Some("the socket's words"));
            } else {
                assert!(asked.borrow().iter().all(|s| s == "the socket's words"));
                assert!(!asked.borrow().is_empty());
                assert_eq!(t.problem().as_deref(), Some("the clock is 20 minutes fast"));
            }
        }
    }

    #[test]
    fn a_refused_page_is_told_whether_its_credentials_or_their_absence_is_why() {
        let ids = devices("w1", "1", 1);
        let mut config = MqttConfig::new("ws://127.0.0.1:8083/mqtt", "w1");
        // CONNACK 5 without a credential: the page is not the one the stack serves.
        let (t, _) = run(config.clone(), 5, &ids);
        let problem = t.problem().unwrap();
        assert!(
            problem.starts_with(
                "the broker at ws://127.0.0.1:8083/mqtt refused this page: it needs credentials"
            ),
            "{problem}"
        );
        assert_ne!(t.link(0), LinkState::Up);
        // With one: it was not accepted.
        config.login = Some(Login {
            username: "page:w1".into(),
            password: "stale".into(),
        });
        let (t, _) = run(config, 5, &ids);
        let problem = t.problem().unwrap();
        assert!(
            problem.contains("refused this page's credentials"),
            "{problem}"
        );
        assert!(!problem.contains("stale"), "{problem}");
        // Another refusal keeps the broker's own words.
        assert!(
            plain_words(
                "ws://h/mqtt",
                false,
                &DisconnectReason::Refused(fleet_mqtt::ConnectReturnCode::ServerUnavailable)
            )
            .ends_with("the broker's MQTT service is unavailable")
        );
    }
}
