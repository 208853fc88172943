//! Starting a client: check the settings, then spawn the driver task.

use std::net::IpAddr;

use fleet_mqtt::{Options, Session};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::driver::{Driver, Endpoint, EventSink};
use crate::error::ClientError;
use crate::event::ClientEvent;
use crate::handle::{ClientHandle, Snapshot};
use crate::tls::TlsFiles;
use crate::url::{BrokerUrl, Scheme};

/// Default capacity of the event channel.
pub const DEFAULT_EVENT_CAPACITY: usize = 4096;
/// Default capacity of the request channel.
pub const DEFAULT_PUBLISH_CAPACITY: usize = 4096;

/// Settings for one client connection; [`Client::start`] runs it.
///
/// ```no_run
/// # async fn demo() -> Result<(), fleet_client::ClientError> {
/// use fleet_client::{BrokerUrl, Client, QoS, TlsFiles};
///
/// let url = BrokerUrl::parse("mqtts://example-ats.iot.eu-west-1.amazonaws.com")?;
/// let tls = TlsFiles::new("certs/AmazonRootCA1.pem")
///     .with_identity("certs/device.cert.pem", "certs/device.private.key");
/// let options = fleet_client::Options::new("monitoring-device");
/// let (client, mut events) = Client::new(options, url).tls(tls).start()?;
/// client.publish("dt/monitoring/1/d-1/telemetry", b"{}".to_vec(), QoS::AtLeastOnce).await?;
/// while let Some(event) = events.recv().await {
///     println!("{event:?}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    options: Options,
    url: BrokerUrl,
    tls: Option<TlsFiles>,
    bind: Option<IpAddr>,
    seed: u64,
    event_capacity: usize,
    publish_capacity: usize,
}

impl Client {
    /// A client for `url` with these MQTT options, no TLS files, jitter seed 0.
    pub fn new(options: Options, url: BrokerUrl) -> Client {
        Client {
            options,
            url,
            tls: None,
            bind: None,
            seed: 0,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            publish_capacity: DEFAULT_PUBLISH_CAPACITY,
        }
    }

    /// Shorthand for `Client::new(options, url)` with TLS files and a seed, then
    /// [`Client::start`].
    pub fn spawn(
        options: Options,
        url: BrokerUrl,
        tls: Option<TlsFiles>,
        seed: u64,
    ) -> Result<(ClientHandle, mpsc::Receiver<ClientEvent>), ClientError> {
        let mut client = Client::new(options, url).seed(seed);
        client.tls = tls;
        client.start()
    }

    /// TLS files, required for `mqtts://`.
    pub fn tls(mut self, files: TlsFiles) -> Client {
        self.tls = Some(files);
        self
    }

    /// Connect from this local address (each reconnect too), e.g. one of several loopback
    /// addresses `127.0.0.2`, `127.0.0.3`, … so that a process can hold more connections to
    /// one broker than one address has ephemeral ports (about 28,000 on Linux). Without
    /// it, the system picks.
    pub fn bind(mut self, local: IpAddr) -> Client {
        self.bind = Some(local);
        self
    }

    /// Seed of the reconnect jitter; give each client of a fleet its own, so they do not
    /// all reconnect in the same instant after a broker restart.
    pub fn seed(mut self, seed: u64) -> Client {
        self.seed = seed;
        self
    }

    /// How many events may wait for the application (default 4096). When the channel is
    /// full the client stops reading from the broker until there is room, so a slow
    /// application slows the broker down instead of losing messages. Drain the receiver
    /// (or drop it to ignore events).
    pub fn event_capacity(mut self, capacity: usize) -> Client {
        self.event_capacity = capacity.max(1);
        self
    }

    /// How many publishes may wait for the client task (default 4096) before
    /// [`ClientHandle::publish_nowait`] waits.
    pub fn publish_capacity(mut self, capacity: usize) -> Client {
        self.publish_capacity = capacity.max(1);
        self
    }

    /// Checks the settings, reads the TLS files and spawns the task that owns the
    /// connection. Connecting happens in the background: watch the events (or
    /// [`ClientHandle::connected`]) to know when it is up.
    pub fn start(self) -> Result<(ClientHandle, mpsc::Receiver<ClientEvent>), ClientError> {
        let (event_tx, event_rx) = mpsc::channel(self.event_capacity);
        let handle = self.launch(EventSink::Own(event_tx))?;
        Ok((handle, event_rx))
    }

    /// As [`start`](Client::start), but the connection's events go to `events`, a channel
    /// shared by many connections, each event with `tag` (the connection's name for the
    /// application). For applications that run thousands of connections: one channel
    /// instead of one per connection saves its buffer (a few KiB per connection) and lets
    /// one receiver wait on all of them. The shared channel's capacity replaces
    /// [`event_capacity`](Client::event_capacity).
    pub fn start_shared(
        self,
        tag: usize,
        events: mpsc::Sender<(usize, ClientEvent)>,
    ) -> Result<ClientHandle, ClientError> {
        self.launch(EventSink::Shared { tag, tx: events })
    }

    fn launch(self, events: EventSink) -> Result<ClientHandle, ClientError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
        let tls = match (self.url.scheme(), &self.tls) {
            (Scheme::Mqtts, Some(files)) => Some(files.load()?),
            (Scheme::Mqtts, None) => return Err(ClientError::TlsRequired(self.url.to_string())),
            (_, Some(_)) => return Err(ClientError::TlsNotUsed(self.url.to_string())),
            (_, None) => None,
        };
        let client_id = self.options.client_id.clone();
        let url = self.url.to_string();
        let session = Session::new(self.options, self.seed)?;
        let (publish_tx, publish_rx) = mpsc::channel(self.publish_capacity);
        // Few control requests are ever in flight; a small channel is plenty.
        let (control_tx, control_rx) = mpsc::channel(16);
        let (state_tx, state_rx) = watch::channel(Snapshot::initial());
        let endpoint = Endpoint {
            url: self.url,
            tls,
            bind: self.bind,
        };
        let driver = Driver::new(session, endpoint, publish_rx, control_rx, events, state_tx);
        let span = tracing::info_span!("mqtt_client", client_id = %client_id, url = %url);
        runtime.spawn(driver.run().instrument(span));
        Ok(ClientHandle::new(publish_tx, control_tx, state_rx))
    }
}
