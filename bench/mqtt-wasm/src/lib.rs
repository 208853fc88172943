//! The browser side of `bench/mqttjs-vs-fleet.sh`: our MQTT client as the web app ships it,
//! and the floor under any client, so that both can be compared with MQTT.js in the same
//! headless Chromium against the same broker.
//!
//! - [`Shipped`] is the app's own transport, `fleet_web::transport::mqtt::MqttTransport`
//!   over `fleet_web::transport::websocket::WsConnector`: one gateway connection (plus the
//!   alarm watcher every transport opens), publishing through `Transport::publish` and
//!   driven by `Transport::poll`, exactly the calls the page's engine makes. What differs
//!   from the page is only who calls `poll` and when: the page polls once per animation
//!   frame; this polls once per task while it publishes (QoS 0) and once per incoming
//!   WebSocket message while it waits for acknowledgements (QoS 1), so that the frame
//!   rate does not cap the measurement. The connector is wrapped only to read the sockets'
//!   `bufferedAmount` (the backpressure signal: a WebSocket has no "drained" event).
//! - [`Raw`] is the limit: the same bytes, already encoded by fleet-mqtt before the clock
//!   starts, handed to `WebSocket.send` in batches the size the shipped transport sends
//!   (QoS 0: 16 KiB, its `SEND_BYTES`; QoS 1: a window of 100 publishes), with the same
//!   backpressure. No MQTT state, no copying, no per-message work at all.
//!
//! Payloads are telemetry JSON whose `seq` digits are rewritten in place per message; the
//! MQTT.js page sends one unchanged `Uint8Array` (its best case).
//!
//! All three wait the same way: a task (a `MessageChannel` message) after each batch, and a
//! 1 ms timer while `bufferedAmount` is over `hwm` or the last bytes drain, so that a
//! broker slower than the client shows as time, not as CPU spent polling.
//!
//! Spec of a run, from a plain JS object: `{qos, count, topic, prefix, suffix, seq0, batch,
//! hwm}`: `batch` publishes per task, `hwm` the most bytes left in `bufferedAmount` before
//! publishing more. Both resolve with `{elapsed_ms, published, frames_out, frames_in}`:
//! QoS 0 ends when nothing is left to send (`bufferedAmount` 0), QoS 1 at the last
//! PUBACK. Throughput is not taken from here but from what the broker delivered to a
//! native subscriber (the driver's `count` process).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use fleet_core::{BuildingId, DeviceId};
use fleet_mqtt::QoS;
use fleet_mqtt::codec::{encode, encode_publish};
use fleet_mqtt::packet::{Connect, Packet, Publish};
use fleet_web::identity::Login;
use fleet_web::transport::mqtt::{
    Connections, Connector, LinkKey, MqttConfig, MqttTransport, SEND_BYTES, Socket, SocketEvent,
};
use fleet_web::transport::websocket::{MAX_MESSAGE, WsConnector, WsSocket};
use fleet_web::transport::{Sent, Transport};
use js_sys::{ArrayBuffer, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, MessageEvent, WebSocket};

#[wasm_bindgen(inline_js = "
export function yieldTask() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => { channel.port1.close(); resolve(); };
    channel.port2.postMessage(0);
  });
}
export function nextMessage(sockets, ms) {
  return new Promise((resolve) => {
    let timer = null;
    const done = () => {
      for (const s of sockets) s.removeEventListener('message', done);
      if (timer !== null) clearTimeout(timer);
      resolve();
    };
    for (const s of sockets) s.addEventListener('message', done);
    if (ms > 0) timer = setTimeout(done, ms);
  });
}
export function sleep() { return new Promise((resolve) => setTimeout(resolve, 1)); }
export function nowMs() { return performance.now(); }
")]
extern "C" {
    /// Resolves in a new task (a `MessageChannel` message: no timer clamping), so the
    /// socket can report progress (`bufferedAmount`, incoming frames).
    #[wasm_bindgen(js_name = yieldTask)]
    fn yield_task() -> Promise;
    /// Resolves at the next WebSocket message on any of `sockets` (after the socket's own
    /// `onmessage`, which queues the data for the transport), or after `ms` if `ms` > 0.
    #[wasm_bindgen(js_name = nextMessage)]
    fn next_message(sockets: &js_sys::Array, ms: u32) -> Promise;
    /// Resolves after a 1 ms timer (4 ms once nested): how every page waits while the
    /// browser still holds more than `hwm` bytes, so that waiting costs next to no CPU.
    fn sleep() -> Promise;
    /// `performance.now()`.
    #[wasm_bindgen(js_name = nowMs)]
    fn now_ms() -> f64;
}

/// QoS 1 messages in flight: AWS IoT Core's limit, and the session's window.
const WINDOW: u64 = fleet_mqtt::session::MAX_INFLIGHT as u64;

fn js_err(text: impl std::fmt::Display) -> JsValue {
    JsValue::from(js_sys::Error::new(&text.to_string()))
}

/// The wall clock, ms, for the transport's timers.
fn wall_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// A telemetry payload with a fixed-width decimal `seq` that is rewritten in place.
struct Payload {
    bytes: Vec<u8>,
    seq_at: usize,
    seq_len: usize,
}

impl Payload {
    fn new(prefix: &str, seq0: u64, suffix: &str) -> Payload {
        let digits = seq0.to_string();
        let mut bytes = Vec::with_capacity(prefix.len() + digits.len() + suffix.len());
        bytes.extend_from_slice(prefix.as_bytes());
        bytes.extend_from_slice(digits.as_bytes());
        bytes.extend_from_slice(suffix.as_bytes());
        Payload {
            bytes,
            seq_at: prefix.len(),
            seq_len: digits.len(),
        }
    }

    /// Writes `seq`, which must have as many digits as the first one.
    fn set_seq(&mut self, mut seq: u64) {
        for b in self.bytes[self.seq_at..self.seq_at + self.seq_len]
            .iter_mut()
            .rev()
        {
            *b = b'0' + (seq % 10) as u8;
            seq /= 10;
        }
    }
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// What one run is asked to do (read from a plain JS object).
struct Spec {
    qos: QoS,
    count: u64,
    topic: String,
    prefix: String,
    suffix: String,
    seq0: u64,
    batch: u64,
    hwm: u32,
}

fn field(spec: &JsValue, name: &str) -> Result<JsValue, JsValue> {
    let value = Reflect::get(spec, &JsValue::from_str(name))?;
    if value.is_undefined() {
        return Err(js_err(format!("spec.{name} is missing")));
    }
    Ok(value)
}

fn number(spec: &JsValue, name: &str) -> Result<u64, JsValue> {
    field(spec, name)?
        .as_f64()
        .filter(|n| *n >= 0.0 && n.fract() == 0.0)
        .map(|n| n as u64)
        .ok_or_else(|| js_err(format!("spec.{name} must be a whole number")))
}

fn text(spec: &JsValue, name: &str) -> Result<String, JsValue> {
    field(spec, name)?
        .as_string()
        .ok_or_else(|| js_err(format!("spec.{name} must be a string")))
}

impl Spec {
    fn read(spec: &JsValue) -> Result<Spec, JsValue> {
        let qos = match number(spec, "qos")? {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => return Err(js_err("spec.qos must be 0 or 1")),
        };
        let spec = Spec {
            qos,
            count: number(spec, "count")?,
            topic: text(spec, "topic")?,
            prefix: text(spec, "prefix")?,
            suffix: text(spec, "suffix")?,
            seq0: number(spec, "seq0")?,
            batch: number(spec, "batch")?.max(1),
            hwm: u32::try_from(number(spec, "hwm")?).unwrap_or(u32::MAX),
        };
        if digits(spec.seq0) != digits(spec.seq0 + spec.count) {
            return Err(js_err(
                "seq0..=seq0+count must all have the same number of digits",
            ));
        }
        Ok(spec)
    }
}

/// The result object of a run.
fn outcome(elapsed_ms: f64, published: u64, frames_out: u64, frames_in: u64) -> JsValue {
    let out = js_sys::Object::new();
    for (name, value) in [
        ("elapsed_ms", elapsed_ms),
        ("published", published as f64),
        ("frames_out", frames_out as f64),
        ("frames_in", frames_in as f64),
    ] {
        let _ = Reflect::set(&out, &JsValue::from_str(name), &JsValue::from_f64(value));
    }
    out.into()
}

/// The app's WebSocket connector, and the sockets it opened (for `bufferedAmount`) with
/// a count of the WebSocket messages they sent.
struct Observed {
    inner: WsConnector,
    sockets: Rc<RefCell<Vec<WebSocket>>>,
    frames_out: Rc<Cell<u64>>,
}

/// The app's socket, counting the WebSocket messages a send makes.
struct Counted {
    inner: WsSocket,
    frames_out: Rc<Cell<u64>>,
}

impl Socket for Counted {
    fn send(&mut self, data: &[u8]) -> Result<(), String> {
        self.inner.send(data)?;
        let messages = data.len().div_ceil(MAX_MESSAGE) as u64;
        self.frames_out.set(self.frames_out.get() + messages);
        Ok(())
    }
}

impl Connector for Observed {
    type Socket = Counted;

    fn open(&mut self, url: &str, key: LinkKey) -> Result<Counted, String> {
        let inner = self.inner.open(url, key)?;
        self.sockets.borrow_mut().push(inner.web_socket().clone());
        Ok(Counted {
            inner,
            frames_out: Rc::clone(&self.frames_out),
        })
    }

    fn events(&mut self, out: &mut Vec<(LinkKey, SocketEvent)>) {
        self.inner.events(out);
    }
}

/// The app's MQTT transport with one gateway connection.
#[wasm_bindgen]
pub struct Shipped {
    transport: MqttTransport<Observed>,
    sockets: Rc<RefCell<Vec<WebSocket>>>,
    frames_out: Rc<Cell<u64>>,
    inbound: Vec<fleet_web::transport::Inbound>,
}

/// Connects the app's transport to `url` for one device, `{client_base}.gateway-0` (and
/// `{client_base}.alarms`, which every transport opens), with `username`/`password` if
/// given, publishing at `qos`; resolves once the gateway is connected.
#[wasm_bindgen(js_name = connectShipped)]
pub async fn connect_shipped(
    url: String,
    client_base: String,
    device: String,
    qos: u8,
    username: Option<String>,
    password: Option<String>,
) -> Result<Shipped, JsValue> {
    let mut config = MqttConfig::new(url, client_base);
    config.connections = Connections::Gateways(1);
    config.keep_alive_s = 60;
    config.qos = if qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    if let (Some(username), Some(password)) = (username, password) {
        config.login = Some(Login { username, password });
    }
    let building = BuildingId::try_from("1").map_err(js_err)?;
    let device = DeviceId::try_from(device.as_str()).map_err(js_err)?;
    let sockets = Rc::new(RefCell::new(Vec::new()));
    let frames_out = Rc::new(Cell::new(0));
    let connector = Observed {
        inner: WsConnector::new(),
        sockets: Rc::clone(&sockets),
        frames_out: Rc::clone(&frames_out),
    };
    let mut transport =
        MqttTransport::new(config, connector, &[(building, device)], wall_ms()).map_err(js_err)?;
    transport.open(wall_ms(), 0);
    let mut shipped = Shipped {
        transport,
        sockets,
        frames_out,
        inbound: Vec::new(),
    };
    let started = now_ms();
    while shipped.transport.stats().links_up == 0 {
        if let Some(problem) = shipped.transport.problem() {
            return Err(js_err(problem));
        }
        if now_ms() - started > 10_000.0 {
            return Err(js_err("not connected after 10 s"));
        }
        JsFuture::from(yield_task()).await?;
        shipped.poll();
    }
    Ok(shipped)
}

impl Shipped {
    fn poll(&mut self) {
        self.transport.poll(wall_ms(), &mut self.inbound);
        self.inbound.clear();
    }

    fn buffered(&self) -> u32 {
        self.sockets
            .borrow()
            .iter()
            .map(WebSocket::buffered_amount)
            .sum()
    }

    fn check(&self) -> Result<(), JsValue> {
        match self.transport.problem() {
            Some(problem) => Err(js_err(problem)),
            None => Ok(()),
        }
    }
}

#[wasm_bindgen]
impl Shipped {
    /// Publishes `spec.count` readings through the transport (see the crate docs).
    pub async fn run(&mut self, spec: JsValue) -> Result<JsValue, JsValue> {
        let spec = Spec::read(&spec)?;
        let mut payload = Payload::new(&spec.prefix, spec.seq0, &spec.suffix);
        let acked0 = self.transport.stats().acked;
        let sockets = js_sys::Array::new();
        for s in self.sockets.borrow().iter() {
            sockets.push(s);
        }
        let frames_out0 = self.frames_out.get();
        let start = now_ms();
        let mut published = 0_u64;
        loop {
            let stats = self.transport.stats();
            // QoS 0: a batch per task while the browser keeps up. QoS 1: keep two windows
            // queued, so an acknowledged window is refilled at once.
            let room = match spec.qos {
                QoS::AtMostOnce if self.buffered() <= spec.hwm => spec.batch,
                QoS::AtMostOnce => 0,
                _ => (2 * WINDOW).saturating_sub(stats.unacked),
            };
            let until = (published + room).min(spec.count);
            while published < until {
                payload.set_seq(spec.seq0 + published);
                let sent = self
                    .transport
                    .publish(wall_ms(), 0, &spec.topic, &payload.bytes);
                if let Sent::Dropped(why) = sent {
                    return Err(js_err(format!("reading {published} dropped: {why}")));
                }
                published += 1;
            }
            self.poll();
            self.check()?;
            let done = match spec.qos {
                QoS::AtMostOnce => {
                    published == spec.count
                        && self.transport.unsent_bytes() == 0
                        && self.buffered() == 0
                }
                _ => self.transport.stats().acked - acked0 >= spec.count,
            };
            if done {
                break;
            }
            if spec.qos == QoS::AtLeastOnce && published == until {
                // Nothing more fits: the next thing to do comes with the acks, or, for bytes
                // the transport holds back (less than half a window new), with its send
                // timer (`SEND_EVERY_MS`), checked every 10 ms.
                JsFuture::from(next_message(&sockets, 10)).await?;
            } else if spec.qos == QoS::AtMostOnce
                && (room == 0 || published == spec.count)
                && self.transport.unsent_bytes() == 0
            {
                // Over hwm, or all handed over: the browser drains.
                JsFuture::from(sleep()).await?;
            } else {
                JsFuture::from(yield_task()).await?;
            }
        }
        let elapsed = now_ms() - start;
        let frames_out = self.frames_out.get() - frames_out0;
        Ok(outcome(elapsed, published, frames_out, 0))
    }

    /// Closes every connection (Stop).
    pub fn close(&mut self) {
        self.transport.close(wall_ms());
    }
}

/// A bare WebSocket that sends pre-encoded MQTT bytes.
#[wasm_bindgen]
pub struct Raw {
    ws: WebSocket,
    /// Bytes received since the last reset (a PUBACK is 4 bytes, and so is a CONNACK).
    received: Rc<Cell<u64>>,
    frames_in: Rc<Cell<u64>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        let _ = self.ws.close();
    }
}

/// Opens a WebSocket to `url`, sends a CONNECT (`client_id`, clean session, the login if
/// given) and resolves at the broker's answer.
#[wasm_bindgen(js_name = connectRaw)]
pub async fn connect_raw(
    url: String,
    client_id: String,
    username: Option<String>,
    password: Option<String>,
) -> Result<Raw, JsValue> {
    let ws = WebSocket::new_with_str(&url, "mqtt")?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let received = Rc::new(Cell::new(0_u64));
    let frames_in = Rc::new(Cell::new(0_u64));
    let (r, f) = (Rc::clone(&received), Rc::clone(&frames_in));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        if let Ok(buf) = ev.data().dyn_into::<ArrayBuffer>() {
            r.set(r.get() + u64::from(buf.byte_length()));
            f.set(f.get() + 1);
        }
    });
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    let raw = Raw {
        ws,
        received,
        frames_in,
        _on_message: on_message,
    };
    let started = now_ms();
    while raw.ws.ready_state() == WebSocket::CONNECTING {
        if now_ms() - started > 10_000.0 {
            return Err(js_err("the WebSocket did not open in 10 s"));
        }
        JsFuture::from(yield_task()).await?;
    }
    if raw.ws.ready_state() != WebSocket::OPEN {
        return Err(js_err(format!("could not open {url}")));
    }
    let mut connect = Vec::new();
    let packet = Packet::Connect(Connect {
        client_id: &client_id,
        keep_alive_s: 60,
        clean_session: true,
        will: None,
        username: username.as_deref(),
        password: password.as_deref().map(str::as_bytes),
    });
    encode(&packet, &mut connect).map_err(js_err)?;
    raw.ws.send_with_u8_array(&connect)?;
    while raw.received.get() < 4 {
        if now_ms() - started > 10_000.0 || raw.ws.ready_state() != WebSocket::OPEN {
            return Err(js_err("no CONNACK"));
        }
        JsFuture::from(yield_task()).await?;
    }
    Ok(raw)
}

#[wasm_bindgen]
impl Raw {
    /// Encodes `spec.count` publishes, then sends them (see the crate docs).
    pub async fn run(&mut self, spec: JsValue) -> Result<JsValue, JsValue> {
        let spec = Spec::read(&spec)?;
        let mut payload = Payload::new(&spec.prefix, spec.seq0, &spec.suffix);
        // Before the clock: every batch, encoded, end to end, and where each ends.
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        let mut in_batch = 0_u64;
        for i in 0..spec.count {
            payload.set_seq(spec.seq0 + i);
            let publish = Publish {
                dup: false,
                qos: spec.qos,
                retain: false,
                topic: &spec.topic,
                pkid: (spec.qos == QoS::AtLeastOnce).then_some((i % WINDOW) as u16 + 1),
                payload: &payload.bytes,
            };
            encode_publish(&mut bytes, &publish).map_err(js_err)?;
            in_batch += 1;
            let full = match spec.qos {
                QoS::AtMostOnce => bytes.len() - ends.last().copied().unwrap_or(0) >= SEND_BYTES,
                _ => in_batch == WINDOW,
            };
            if full || i + 1 == spec.count {
                ends.push(bytes.len());
                in_batch = 0;
            }
        }
        let sockets = js_sys::Array::of1(&self.ws);
        self.received.set(0);
        let frames_in0 = self.frames_in.get();
        let start = now_ms();
        let mut from = 0;
        let mut sent_messages = 0_u64;
        for (n, &end) in ends.iter().enumerate() {
            match spec.qos {
                QoS::AtMostOnce => {
                    while self.ws.buffered_amount() > spec.hwm {
                        JsFuture::from(sleep()).await?;
                    }
                }
                _ => {
                    // The previous window acknowledged before the next one goes.
                    while self.received.get() / 4 < sent_messages {
                        JsFuture::from(next_message(&sockets, 0)).await?;
                    }
                }
            }
            if self.ws.ready_state() != WebSocket::OPEN {
                return Err(js_err("the WebSocket closed"));
            }
            self.ws.send_with_u8_array(&bytes[from..end])?;
            sent_messages = ((n as u64 + 1) * WINDOW).min(spec.count);
            from = end;
            if spec.qos == QoS::AtMostOnce {
                // One batch per task, as the shipped transport sends about one per task.
                JsFuture::from(yield_task()).await?;
            }
        }
        match spec.qos {
            QoS::AtMostOnce => {
                while self.ws.buffered_amount() > 0 {
                    JsFuture::from(sleep()).await?;
                }
            }
            _ => {
                while self.received.get() / 4 < spec.count {
                    JsFuture::from(next_message(&sockets, 0)).await?;
                }
            }
        }
        let elapsed = now_ms() - start;
        let frames_in = self.frames_in.get() - frames_in0;
        Ok(outcome(elapsed, spec.count, ends.len() as u64, frames_in))
    }

    /// Closes the socket.
    pub fn close(&self) {
        let _ = self.ws.close();
    }
}
