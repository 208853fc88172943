//! One client connection: CONNECT handshake, packets, keep-alive and ordered acks.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use fleet_core::access::{self, Grant, Publisher, Reason, Receive};
use fleet_mqtt::QoS;
use fleet_mqtt::codec::{self, CodecError};
use fleet_mqtt::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, Publish, SubAck, SubscribeReturn,
};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{debug, info, warn};

use crate::auth::ConnectRequest;
use crate::broker::{ListenerKind, Shared};
use crate::ingest::{Ack, AckResult, IngestSink, Ingested};
use crate::router::{ClientIdInUse, ConnId, Mailbox, Outbound};
use crate::transport::Transport;

/// Why a connection ended, for the log.
#[derive(Debug)]
enum End {
    Disconnect,
    PeerClosed,
    Io(std::io::Error),
    Malformed(CodecError),
    Protocol(&'static str),
    KeepAlive,
    TakenOver,
    StoreFailed,
    Shutdown,
    /// A publish the client may not make (§4.8): the connection is closed, as IoT Core
    /// does (MQTT 3.1.1 has no negative PUBACK).
    Refused {
        reason: Reason,
        topic: String,
    },
    /// Its queue was full when a QoS 1 message for it arrived.
    SlowConsumer,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Disconnect => f.write_str("client sent DISCONNECT"),
            End::PeerClosed => f.write_str("client closed the connection"),
            End::Io(e) => write!(f, "connection error: {e}"),
            End::Malformed(e) => write!(f, "malformed packet: {e}"),
            End::Protocol(what) => write!(f, "protocol violation: {what}"),
            End::KeepAlive => f.write_str("nothing received for 1.5 × keep-alive"),
            End::TakenOver => f.write_str("another connection took over the client id"),
            End::StoreFailed => {
                f.write_str("a message could not be stored; the client will resend it")
            }
            End::Shutdown => f.write_str("broker shutting down"),
            End::Refused { reason, topic } => {
                write!(
                    f,
                    "publish to {topic:?} refused ({}): {reason}",
                    reason.code()
                )
            }
            End::SlowConsumer => {
                f.write_str("too slow: its queue was full when a QoS 1 message arrived for it")
            }
        }
    }
}

impl End {
    /// Whether the broker publishes the client's will (MQTT 3.1.1 §3.1.2.5: on any end but
    /// a DISCONNECT).
    fn publishes_will(&self) -> bool {
        !matches!(self, End::Disconnect)
    }
}

/// The will message of a connected client, owned.
struct WillMessage {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
}

/// Per-connection state (the receive buffer lives apart so packets can borrow it).
struct Conn {
    shared: Arc<Shared>,
    /// Where telemetry goes: this connection's own sender to the application.
    ingest: Option<IngestSink>,
    id: ConnId,
    client_id: Arc<str>,
    /// What the client may do (`None`: the broker has no authenticator).
    grant: Option<Arc<Grant>>,
    /// Whose readings it publishes, handed to the application with each one.
    publisher: Arc<Publisher>,
    tx: Vec<u8>,
    /// QoS 1 publishes from the client, in order, with "may be acked now". PUBACKs must
    /// leave in publish order (§4.6), and ingested ones wait for the application.
    pending_acks: VecDeque<(u16, bool)>,
    ack_tx: mpsc::UnboundedSender<AckResult>,
    next_out_pkid: u16,
    received: u64,
}

/// Serves one accepted connection until it ends. `certificate_name`: on the TLS listener,
/// the verified client certificate's common name.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    kind: ListenerKind,
    mut transport: Transport,
    peer: SocketAddr,
    certificate_name: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let id = shared.next_conn.fetch_add(1, Relaxed);
    let mut rx = Vec::with_capacity(16 * 1024);
    let max_packet = shared.config.max_payload_size + 1024;

    let connect = match timeout(
        shared.config.connect_timeout,
        read_connect(&mut transport, &mut rx, max_packet),
    )
    .await
    {
        Ok(Ok(Some((connect, used)))) => {
            rx.drain(..used);
            connect
        }
        Ok(Ok(None)) => {
            transport.close().await;
            return;
        }
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "connection refused before CONNECT");
            if matches!(
                e,
                HandshakeError::Codec(CodecError::UnsupportedProtocol { .. })
            ) {
                // §3.1.2.2: answer a protocol level we do not speak with return code 1.
                let _ = refuse(
                    &mut transport,
                    ConnectReturnCode::UnacceptableProtocolVersion,
                )
                .await;
            }
            transport.close().await;
            return;
        }
        Err(_) => {
            debug!(%peer, "no CONNECT in time");
            transport.close().await;
            return;
        }
    };
    let OwnedConnect {
        client_id,
        clean_session,
        keep_alive_s,
        will,
        username,
        password,
    } = connect;
    let client_id: Arc<str> = if client_id.is_empty() {
        if !clean_session {
            // §3.1.3-8: a persistent session needs a client id.
            let _ = refuse(&mut transport, ConnectReturnCode::IdentifierRejected).await;
            transport.close().await;
            return;
        }
        Arc::from(format!("auto-{}-{id}", shared.start_ms))
    } else {
        Arc::from(client_id)
    };

    let request = ConnectRequest {
        listener: kind,
        peer,
        client_id: &client_id,
        username: username.as_deref(),
        password: password.as_deref(),
        certificate_name: certificate_name.as_deref(),
    };
    let will_topic = will.as_ref().map(|w| w.topic.as_str());
    let grant = match authorize(&shared, &request, will_topic) {
        Ok(grant) => grant,
        Err(reason) => {
            refused_connect(&shared, &request, reason);
            let _ = refuse(&mut transport, ConnectReturnCode::NotAuthorized).await;
            transport.close().await;
            return;
        }
    };
    let publisher = Arc::new(
        grant
            .as_ref()
            .map_or(Publisher::Unbound, |g| g.publisher().clone()),
    );

    let Ok(ingest) = shared.ingest() else {
        // Shutting down: telemetry could no longer be stored, so it must not be acked.
        let _ = refuse(&mut transport, ConnectReturnCode::ServerUnavailable).await;
        transport.close().await;
        return;
    };
    let (out_tx, mut out_rx) = mpsc::channel(shared.config.outbound_queue.max(1));
    let kick = Arc::new(Notify::new());
    let mailbox = Mailbox {
        tx: out_tx,
        kick: kick.clone(),
    };
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let taken_over = shared
        .router()
        .connect(id, client_id.clone(), mailbox, grant.clone());
    match taken_over {
        Ok(Some(old)) => {
            let _ = old.tx.try_send(Outbound::TakenOver);
        }
        Ok(None) => {}
        Err(ClientIdInUse) => {
            refused_connect(&shared, &request, Reason::ClientIdInUse);
            let _ = refuse(&mut transport, ConnectReturnCode::NotAuthorized).await;
            transport.close().await;
            return;
        }
    }
    shared.stats.connections.fetch_add(1, Relaxed);
    shared.stats.connected.fetch_add(1, Relaxed);
    info!(%peer, %kind, client_id = %client_id, publisher = %publisher, keep_alive_s, "client connected");

    let mut conn = Conn {
        shared: shared.clone(),
        ingest,
        id,
        grant,
        publisher,
        client_id: client_id.clone(),
        tx: Vec::with_capacity(4096),
        pending_acks: VecDeque::new(),
        ack_tx,
        next_out_pkid: 1,
        received: 0,
    };
    // Clean sessions only: never claim a stored one.
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ConnectReturnCode::Accepted,
    });
    conn.write(&connack);

    let keep_alive =
        (keep_alive_s > 0).then(|| Duration::from_millis(u64::from(keep_alive_s) * 1500));
    let mut last_rx = Instant::now();
    let end = loop {
        if !conn.tx.is_empty() {
            // A peer that stops reading blocks this write once its TCP window is full; the
            // kick (its queue overflowed) and shutdown must still end the connection.
            let written = tokio::select! {
                written = transport.write_all(&conn.tx) => written,
                () = kick.notified() => break End::SlowConsumer,
                _ = shutdown.changed() => break End::Shutdown,
            };
            if let Err(e) = written {
                break End::Io(e);
            }
            conn.tx.clear();
        }
        // Packets already buffered (e.g. sent right behind CONNECT) go first.
        match conn.process(&mut rx, max_packet).await {
            Ok(()) => {}
            Err(end) => break end,
        }
        if !conn.tx.is_empty() {
            continue;
        }
        let deadline = keep_alive.map(|k| last_rx + k);
        tokio::select! {
            biased;
            _ = shutdown.changed() => break End::Shutdown,
            Some(first) = ack_rx.recv() => {
                // Drain what else is ready, so a committed batch's acks leave in one write.
                let mut next = Some(first);
                let mut result = Ok(());
                while let (Some(ack), Ok(())) = (next.take(), &result) {
                    result = conn.on_ack(ack);
                    next = ack_rx.try_recv().ok();
                }
                if let Err(end) = result {
                    break end;
                }
            }
            Some(first) = out_rx.recv() => {
                let mut next = Some(first);
                let mut result = Ok(());
                let mut burst = 0;
                while let (Some(out), Ok(())) = (next.take(), &result) {
                    result = conn.on_outbound(out);
                    burst += 1;
                    next = if burst < 256 { out_rx.try_recv().ok() } else { None };
                }
                if let Err(end) = result {
                    break end;
                }
            }
            read = transport.read(&mut rx) => match read {
                Ok(0) => break End::PeerClosed,
                Ok(_) => last_rx = Instant::now(),
                Err(e) => break End::Io(e),
            },
            _ = sleep_or_never(deadline) => break End::KeepAlive,
            () = kick.notified() => break End::SlowConsumer,
        }
    };

    shared.router().disconnect(id);
    shared.stats.connected.fetch_sub(1, Relaxed);
    if let Some(will) = will.filter(|_| end.publishes_will()) {
        shared.publish(&will.topic, &will.payload, will.qos);
    }
    // Last words (acks, the takeover's notice) for a peer that still reads; a stalled one
    // gets a second at most, and so does the close handshake.
    let farewell = Duration::from_secs(1);
    if !conn.tx.is_empty() && matches!(end, End::Shutdown | End::TakenOver) {
        let _ = timeout(farewell, transport.write_all(&conn.tx)).await;
    }
    let _ = timeout(farewell, transport.close()).await;
    match &end {
        End::Disconnect | End::PeerClosed | End::Shutdown => {
            info!(%peer, client_id = %client_id, reason = %end, received = conn.received, "client disconnected")
        }
        End::Refused { reason, topic } => {
            warn!(%peer, %kind, client_id = %client_id, publisher = %conn.publisher, %topic, reason = reason.code(), "refused: publish not allowed, connection closed")
        }
        End::SlowConsumer => {
            shared.stats.slow_consumers.fetch_add(1, Relaxed);
            warn!(%peer, client_id = %client_id, reason = %end, "slow subscriber disconnected")
        }
        _ => {
            shared.stats.errors.fetch_add(1, Relaxed);
            warn!(%peer, client_id = %client_id, reason = %end, received = conn.received, "client connection ended")
        }
    }
}

/// Identifies the client and decides its CONNECT: `Ok(None)` when the broker has no
/// authenticator.
fn authorize(
    shared: &Shared,
    request: &ConnectRequest<'_>,
    will_topic: Option<&str>,
) -> Result<Option<Arc<Grant>>, Reason> {
    let Some(authenticator) = &shared.config.authenticator else {
        return Ok(None);
    };
    let identity = authenticator.identify(request)?;
    let grant = access::connect(&identity, request.client_id, will_topic)?;
    Ok(Some(Arc::new(grant)))
}

/// Counts and logs a refused CONNECT (answered with CONNACK 5).
fn refused_connect(shared: &Shared, request: &ConnectRequest<'_>, reason: Reason) {
    shared.refusals.count(reason);
    warn!(
        peer = %request.peer,
        listener = %request.listener,
        client_id = %request.client_id,
        username = request.username.unwrap_or(""),
        certificate = request.certificate_name.unwrap_or(""),
        reason = reason.code(),
        "refused: {reason}"
    );
}

async fn sleep_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Codec(#[from] CodecError),
    #[error("first packet is {0}, not CONNECT")]
    NotConnect(&'static str),
}

struct OwnedConnect {
    client_id: String,
    clean_session: bool,
    keep_alive_s: u16,
    will: Option<WillMessage>,
    username: Option<String>,
    password: Option<Vec<u8>>,
}

impl From<&Connect<'_>> for OwnedConnect {
    fn from(c: &Connect<'_>) -> Self {
        OwnedConnect {
            client_id: c.client_id.to_owned(),
            clean_session: c.clean_session,
            keep_alive_s: c.keep_alive_s,
            will: c.will.as_ref().map(|w| WillMessage {
                topic: w.topic.to_owned(),
                payload: w.payload.to_vec(),
                qos: w.qos.min(QoS::AtLeastOnce),
            }),
            username: c.username.map(str::to_owned),
            password: c.password.map(<[u8]>::to_vec),
        }
    }
}

/// Reads until one whole packet arrived; it must be CONNECT (§3.1.0-1).
async fn read_connect(
    transport: &mut Transport,
    rx: &mut Vec<u8>,
    max_packet: usize,
) -> Result<Option<(OwnedConnect, usize)>, HandshakeError> {
    loop {
        if let Some((packet, used)) = codec::decode(rx, max_packet)? {
            return match packet {
                Packet::Connect(c) => Ok(Some((OwnedConnect::from(&c), used))),
                other => Err(HandshakeError::NotConnect(other.name())),
            };
        }
        if transport.read(rx).await? == 0 {
            return Ok(None);
        }
    }
}

async fn refuse(transport: &mut Transport, code: ConnectReturnCode) -> std::io::Result<()> {
    let mut out = Vec::new();
    let _ = codec::encode(
        &Packet::ConnAck(ConnAck {
            session_present: false,
            code,
        }),
        &mut out,
    );
    transport.write_all(&out).await
}

impl Conn {
    /// Encodes a packet the broker built; its fields are valid by construction.
    fn write(&mut self, packet: &Packet<'_>) {
        if let Err(e) = codec::encode(packet, &mut self.tx) {
            warn!(error = %e, packet = packet.name(), "could not encode a packet");
        }
    }

    /// Handles every complete packet in `rx` and removes them from it.
    async fn process(&mut self, rx: &mut Vec<u8>, max_packet: usize) -> Result<(), End> {
        let mut used = 0;
        let result = loop {
            match codec::decode(&rx[used..], max_packet) {
                Ok(Some((packet, n))) => {
                    used += n;
                    if let Err(end) = self.on_packet(packet).await {
                        break Err(end);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(End::Malformed(e)),
            }
        };
        rx.drain(..used);
        result
    }

    async fn on_packet(&mut self, packet: Packet<'_>) -> Result<(), End> {
        match packet {
            Packet::Publish(p) => self.on_publish(p).await,
            Packet::PubAck(_) => Ok(()), // Our QoS 1 deliveries: nothing is resent, so nothing to track.
            Packet::Subscribe(s) => {
                let decisions: Vec<Result<Receive, Reason>> = s
                    .filters
                    .iter()
                    .map(|(filter, _)| {
                        self.grant
                            .as_ref()
                            .map_or(Ok(Receive::All), |g| g.subscribe(filter))
                    })
                    .collect();
                let returns = {
                    let mut router = self.shared.router();
                    s.filters
                        .iter()
                        .zip(&decisions)
                        .map(|((filter, qos), decision)| match decision {
                            Ok(receive) => SubscribeReturn::Success(router.subscribe(
                                self.id,
                                filter,
                                *qos,
                                *receive == Receive::Checked,
                            )),
                            Err(_) => SubscribeReturn::Failure,
                        })
                        .collect()
                };
                for ((filter, _), decision) in s.filters.iter().zip(&decisions) {
                    if let Err(reason) = decision {
                        self.shared.refusals.count(*reason);
                        warn!(client_id = %self.client_id, publisher = %self.publisher, %filter, reason = reason.code(), "refused: subscription not allowed (SUBACK 0x80)");
                    }
                }
                debug!(client_id = %self.client_id, filters = ?s.filters, "subscribed");
                self.write(&Packet::SubAck(SubAck {
                    pkid: s.pkid,
                    returns,
                }));
                Ok(())
            }
            Packet::Unsubscribe(u) => {
                {
                    let mut router = self.shared.router();
                    for filter in &u.filters {
                        router.unsubscribe(self.id, filter);
                    }
                }
                self.write(&Packet::UnsubAck(u.pkid));
                Ok(())
            }
            Packet::PingReq => {
                self.write(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect => Err(End::Disconnect),
            Packet::Connect(_) => Err(End::Protocol("a second CONNECT")),
            Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {
                Err(End::Protocol("QoS 2 is not supported"))
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(End::Protocol("a packet only a server sends"))
            }
        }
    }

    async fn on_publish(&mut self, p: Publish<'_>) -> Result<(), End> {
        if p.qos == QoS::ExactlyOnce {
            return Err(End::Protocol("QoS 2 PUBLISH (not supported)"));
        }
        self.received += 1;
        self.shared.stats.received.fetch_add(1, Relaxed);
        // Refused before anything else sees it: no subscriber, no store.
        if let Some(Err(reason)) = self.grant.as_ref().map(|g| g.publish(p.topic)) {
            self.shared.refusals.count(reason);
            return Err(End::Refused {
                reason,
                topic: p.topic.to_owned(),
            });
        }
        self.shared.publish(p.topic, p.payload, p.qos);

        let Some(sink) = self.ingest.as_ref().filter(|sink| sink.wants(p.topic)) else {
            if let Some(pkid) = p.pkid {
                self.pending_acks.push_back((pkid, true));
                self.flush_acks();
            }
            return Ok(());
        };
        let ack = p.pkid.map(|pkid| {
            self.pending_acks.push_back((pkid, false));
            Ack::new(pkid, self.ack_tx.clone())
        });
        let message = Ingested {
            topic: p.topic.to_owned(),
            payload: p.payload.to_vec(),
            received_ms: fleet_clock::now_ms(),
            source_id: format!("{}-{}-{}", self.shared.start_ms, self.id, self.received),
            client_id: self.client_id.clone(),
            publisher: self.publisher.clone(),
            ack,
        };
        self.shared.stats.ingested.fetch_add(1, Relaxed);
        // Waiting here stops this connection's reads: backpressure reaches the device.
        sink.tx.send(message).await.map_err(|_| End::StoreFailed)
    }

    fn on_ack(&mut self, result: AckResult) -> Result<(), End> {
        match result {
            AckResult::Done(pkid) => {
                if let Some(entry) = self
                    .pending_acks
                    .iter_mut()
                    .find(|(id, ready)| *id == pkid && !ready)
                {
                    entry.1 = true;
                }
                self.flush_acks();
                Ok(())
            }
            AckResult::Failed => Err(End::StoreFailed),
        }
    }

    fn flush_acks(&mut self) {
        while let Some(&(pkid, true)) = self.pending_acks.front() {
            self.pending_acks.pop_front();
            self.write(&Packet::PubAck(pkid));
        }
    }

    fn on_outbound(&mut self, out: Outbound) -> Result<(), End> {
        match out {
            Outbound::Publish {
                topic,
                payload,
                qos,
            } => {
                let pkid = (qos == QoS::AtLeastOnce).then(|| {
                    let id = self.next_out_pkid;
                    self.next_out_pkid = self.next_out_pkid.checked_add(1).unwrap_or(1);
                    id
                });
                let publish = Publish {
                    dup: false,
                    qos,
                    retain: false,
                    topic: &topic,
                    pkid,
                    payload: &payload,
                };
                if let Err(e) = codec::encode_publish(&mut self.tx, &publish) {
                    warn!(error = %e, "could not encode a delivery");
                }
                self.shared.stats.sent.fetch_add(1, Relaxed);
                Ok(())
            }
            Outbound::TakenOver => Err(End::TakenOver),
        }
    }
}
