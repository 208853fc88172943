//! fleet-mqtt in the browser, for `bench/mqttjs-vs-fleet.sh`: one [`Session`] over the
//! browser's WebSocket (subprotocol `mqtt`, binary frames) that publishes as fast as the
//! session and the socket allow, so that its throughput and CPU per message can be compared
//! with MQTT.js's in the same headless Chromium, against the same broker.
//!
//! The driver is the one `web/src/transport/mqtt.rs` implements, minus the frame loop:
//! every packet the session produced since the last write leaves in one `send` (one
//! WebSocket message, split at 64 KiB: `fleet local` refuses messages over 132 KiB), and
//! the socket's callbacks feed the session directly (the app queues socket events and
//! drains them once per animation frame, which would cap a QoS 1 window of 100 at 100
//! messages per frame).
//!
//! - QoS 0: `batch` publishes, one `send`, again while `bufferedAmount` ≤ `hwm`, otherwise
//!   yield a task until it is; done when `bufferedAmount` is 0. Then one QoS 1 publish and
//!   its PUBACK ("acked"): the broker has read everything before it.
//! - QoS 1: the window (100, AWS IoT Core's limit and the session's default) is kept full
//!   from the PUBACK handler: each WebSocket message with acks tops the window up and sends
//!   the new publishes in one frame. Done at the last PUBACK.
//!
//! Payloads are telemetry JSON whose `seq` digits are rewritten in place per message (the
//! JS side builds `prefix + seq + suffix` strings, as an MQTT.js app would).

use std::cell::RefCell;
use std::rc::Rc;

use fleet_mqtt::{DisconnectReason, Event, Options, QoS, Session, TransportAction};
use js_sys::{ArrayBuffer, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

#[wasm_bindgen(inline_js = "
export function yieldTask() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => { channel.port1.close(); resolve(); };
    channel.port2.postMessage(0);
  });
}
export function nowMs() { return performance.now(); }
")]
extern "C" {
    /// Resolves in a new task (a `MessageChannel` message: no timer clamping), so the
    /// socket can report progress (`bufferedAmount`, incoming frames).
    #[wasm_bindgen(js_name = yieldTask)]
    fn yield_task() -> Promise;
    /// `performance.now()`.
    #[wasm_bindgen(js_name = nowMs)]
    fn now_ms() -> f64;
}

/// QoS 1 messages in flight: AWS IoT Core's limit, and the session's default window.
const WINDOW: u64 = fleet_mqtt::session::MAX_INFLIGHT as u64;
/// The largest WebSocket message we send. `fleet local` closes a connection whose message
/// exceeds 132 KiB (its payload limit plus 4 KiB), so a large batch is split.
const MAX_FRAME: usize = 64 * 1024;

fn now_u64() -> u64 {
    now_ms() as u64
}

fn js_err(text: impl std::fmt::Display) -> JsValue {
    JsValue::from(js_sys::Error::new(&text.to_string()))
}

/// A promise and its resolve and reject functions.
fn deferred() -> (Promise, Function, Function) {
    let mut slots = None;
    let promise = Promise::new(&mut |resolve, reject| slots = Some((resolve, reject)));
    match slots {
        Some((resolve, reject)) => (promise, resolve, reject),
        None => unreachable!("the Promise executor runs synchronously"),
    }
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

/// A QoS 1 run in progress, driven by the PUBACKs.
struct Pump {
    topic: String,
    payload: Payload,
    seq0: u64,
    count: u64,
    published: u64,
    acked: u64,
    max_inflight: u64,
    resolve: Function,
    reject: Function,
}

struct Conn {
    session: Session,
    ws: WebSocket,
    /// Reused for every incoming frame.
    rx: Vec<u8>,
    frames_out: u64,
    frames_in: u64,
    /// The connect promise, until CONNACK.
    connecting: Option<(Function, Function)>,
    pump: Option<Pump>,
    error: Option<String>,
    closing: bool,
}

impl Conn {
    /// Writes what the session holds in one WebSocket message, or in messages of at most
    /// [`MAX_FRAME`] bytes (MQTT allows any split of the stream).
    fn flush(&mut self) -> Result<(), JsValue> {
        let n = self.session.transmit().len();
        for chunk in self.session.transmit().chunks(MAX_FRAME) {
            self.ws.send_with_u8_array(chunk)?;
            self.frames_out += 1;
        }
        self.session.consume_transmit(n);
        Ok(())
    }

    fn on_open(&mut self) {
        let now = now_u64();
        self.session.transport_opened(now);
        self.after_io(now);
    }

    fn on_data(&mut self, data: &ArrayBuffer) {
        let view = Uint8Array::new(data);
        let len = view.length() as usize;
        let mut rx = std::mem::take(&mut self.rx);
        rx.resize(len, 0);
        view.copy_to(&mut rx);
        let now = now_u64();
        self.session.handle_input(now, &rx);
        self.rx = rx;
        self.frames_in += 1;
        self.after_io(now);
    }

    fn on_close(&mut self, code: u16, reason: String) {
        let now = now_u64();
        let why = (!self.closing).then(|| format!("WebSocket closed (code {code}) {reason}"));
        self.session.transport_closed(now, why);
        self.after_io(now);
    }

    /// Handles the session's events, tops the QoS 1 window up and writes.
    fn after_io(&mut self, now: u64) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Connected { .. } => {
                    if let Some((resolve, _)) = self.connecting.take() {
                        let _ = resolve.call0(&JsValue::NULL);
                    }
                }
                Event::Acked { .. } => {
                    if let Some(pump) = self.pump.as_mut() {
                        pump.acked += 1;
                    }
                }
                Event::Disconnected { reason, .. } if reason != DisconnectReason::Requested => {
                    self.fail(format!("disconnected: {reason}"));
                }
                _ => {}
            }
        }
        if let Some(pump) = self.pump.as_mut() {
            while pump.published < pump.count && pump.published - pump.acked < WINDOW {
                pump.payload.set_seq(pump.seq0 + pump.published);
                match self.session.publish(
                    now,
                    &pump.topic,
                    &pump.payload.bytes,
                    QoS::AtLeastOnce,
                    false,
                ) {
                    Ok(_) => {
                        pump.published += 1;
                        pump.max_inflight = pump.max_inflight.max(pump.published - pump.acked);
                    }
                    Err(e) => {
                        self.fail(format!("publish: {e}"));
                        return;
                    }
                }
            }
        }
        if let Err(e) = self.flush() {
            self.fail(format!("send: {e:?}"));
            return;
        }
        if self
            .pump
            .as_ref()
            .is_some_and(|pump| pump.acked == pump.count)
            && let Some(pump) = self.pump.take()
        {
            let max_inflight = JsValue::from_f64(pump.max_inflight as f64);
            let _ = pump.resolve.call1(&JsValue::NULL, &max_inflight);
        }
        // The session never asks to close here (no keep-alive timeouts in a few seconds),
        // but honour it if it does.
        if self.session.poll_transport(now) == TransportAction::Close {
            let _ = self.ws.close();
        }
    }

    fn fail(&mut self, why: String) {
        let error = js_err(&why);
        self.error.get_or_insert(why);
        if let Some((_, reject)) = self.connecting.take() {
            let _ = reject.call1(&JsValue::NULL, &error);
        }
        if let Some(pump) = self.pump.take() {
            let _ = pump.reject.call1(&JsValue::NULL, &error);
        }
    }
}

/// One MQTT connection to the broker under test.
#[wasm_bindgen]
pub struct Bench {
    conn: Rc<RefCell<Conn>>,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

/// Connects to `url` (`ws://HOST:PORT/mqtt`) with a clean session, and the user name and
/// password if given (`fleet local` needs a page credential: `fleet local token --page`);
/// resolves at CONNACK.
#[wasm_bindgen]
pub async fn connect(
    url: String,
    client_id: String,
    username: Option<String>,
    password: Option<String>,
) -> Result<Bench, JsValue> {
    let mut options = Options::new(client_id);
    options.keep_alive_s = 60;
    options.username = username;
    options.password = password.map(String::into_bytes);
    let mut session = Session::new(options, 1).map_err(js_err)?;
    if session.poll_transport(now_u64()) != TransportAction::Open {
        return Err(js_err("the session did not ask to connect"));
    }
    let ws = WebSocket::new_with_str(&url, "mqtt")?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let (connected, resolve, reject) = deferred();
    let conn = Rc::new(RefCell::new(Conn {
        session,
        ws: ws.clone(),
        rx: Vec::new(),
        frames_out: 0,
        frames_in: 0,
        connecting: Some((resolve, reject)),
        pump: None,
        error: None,
        closing: false,
    }));
    let c = Rc::clone(&conn);
    let on_open = Closure::<dyn FnMut()>::new(move || c.borrow_mut().on_open());
    let c = Rc::clone(&conn);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        if let Ok(buf) = ev.data().dyn_into::<ArrayBuffer>() {
            c.borrow_mut().on_data(&buf);
        }
    });
    let c = Rc::clone(&conn);
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
        c.borrow_mut().on_close(ev.code(), ev.reason());
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    let bench = Bench {
        conn,
        _on_open: on_open,
        _on_message: on_message,
        _on_close: on_close,
    };
    JsFuture::from(connected).await?;
    Ok(bench)
}

/// What one run is asked to do (read from a plain JS object).
struct Spec {
    qos: u8,
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
        let spec = Spec {
            qos: number(spec, "qos")? as u8,
            count: number(spec, "count")?,
            topic: text(spec, "topic")?,
            prefix: text(spec, "prefix")?,
            suffix: text(spec, "suffix")?,
            seq0: number(spec, "seq0")?,
            batch: number(spec, "batch")?.max(1),
            hwm: u32::try_from(number(spec, "hwm")?).unwrap_or(u32::MAX),
        };
        if spec.qos > 1 {
            return Err(js_err("qos must be 0 or 1"));
        }
        // The sentinel publish uses seq0 + count.
        if digits(spec.seq0) != digits(spec.seq0 + spec.count) {
            return Err(js_err(
                "seq0..=seq0+count must all have the same number of digits",
            ));
        }
        Ok(spec)
    }
}

#[wasm_bindgen]
impl Bench {
    /// Publishes `spec.count` messages (`{qos, count, topic, prefix, suffix, seq0, batch,
    /// hwm}`, see the crate docs) and resolves with `{elapsed_ms, acked_ms, published,
    /// frames_out, frames_in, max_inflight}`: `elapsed_ms` ends when `bufferedAmount` is 0 (QoS 0) or at
    /// the last PUBACK (QoS 1); `acked_ms` ends at the PUBACK of a QoS 1 publish sent after
    /// the run (QoS 0) or equals `elapsed_ms` (QoS 1).
    pub fn run(&self, spec: JsValue) -> Promise {
        let conn = Rc::clone(&self.conn);
        future_to_promise(async move {
            let spec = Spec::read(&spec)?;
            run(conn, spec).await
        })
    }

    /// Sends DISCONNECT and closes the socket.
    pub fn close(&self) {
        let mut c = self.conn.borrow_mut();
        c.closing = true;
        c.session.disconnect(now_u64());
        let _ = c.flush();
        let _ = c.ws.close();
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let ws = self.conn.borrow().ws.clone();
        ws.set_onopen(None);
        ws.set_onmessage(None);
        ws.set_onclose(None);
        let _ = ws.close();
    }
}

/// Publishes `count` QoS 1 messages through the window; resolves at the last PUBACK with
/// the most messages that were in flight at once.
async fn pump(
    conn: &Rc<RefCell<Conn>>,
    topic: &str,
    payload: Payload,
    seq0: u64,
    count: u64,
) -> Result<f64, JsValue> {
    let (done, resolve, reject) = deferred();
    {
        let mut c = conn.borrow_mut();
        if let Some(error) = &c.error {
            return Err(js_err(error));
        }
        c.pump = Some(Pump {
            topic: topic.to_owned(),
            payload,
            seq0,
            count,
            published: 0,
            acked: 0,
            max_inflight: 0,
            resolve,
            reject,
        });
        c.after_io(now_u64());
    }
    let max_inflight = JsFuture::from(done).await?;
    Ok(max_inflight.as_f64().unwrap_or(0.0))
}

async fn wait_buffered(ws: &WebSocket, conn: &Rc<RefCell<Conn>>, hwm: u32) -> Result<(), JsValue> {
    while ws.buffered_amount() > hwm {
        JsFuture::from(yield_task()).await?;
        if let Some(error) = &conn.borrow().error {
            return Err(js_err(error));
        }
    }
    Ok(())
}

async fn run(conn: Rc<RefCell<Conn>>, spec: Spec) -> Result<JsValue, JsValue> {
    let ws = conn.borrow().ws.clone();
    let (frames_out0, frames_in0) = {
        let c = conn.borrow();
        (c.frames_out, c.frames_in)
    };
    let start = now_ms();
    let elapsed;
    let mut max_inflight = 0.0;
    if spec.qos == 0 {
        let mut payload = Payload::new(&spec.prefix, spec.seq0, &spec.suffix);
        let mut seq = 0;
        while seq < spec.count {
            {
                let mut c = conn.borrow_mut();
                let now = now_u64();
                let end = (seq + spec.batch).min(spec.count);
                while seq < end {
                    payload.set_seq(spec.seq0 + seq);
                    c.session
                        .publish(now, &spec.topic, &payload.bytes, QoS::AtMostOnce, false)
                        .map_err(js_err)?;
                    seq += 1;
                }
                c.flush()?;
            }
            wait_buffered(&ws, &conn, spec.hwm).await?;
        }
        wait_buffered(&ws, &conn, 0).await?;
        elapsed = now_ms() - start;
        // One QoS 1 publish behind them all: its PUBACK means the broker read them all.
        let payload = Payload::new(&spec.prefix, spec.seq0, &spec.suffix);
        pump(&conn, &spec.topic, payload, spec.seq0 + spec.count, 1).await?;
    } else {
        let payload = Payload::new(&spec.prefix, spec.seq0, &spec.suffix);
        max_inflight = pump(&conn, &spec.topic, payload, spec.seq0, spec.count).await?;
        elapsed = now_ms() - start;
    }
    let acked = now_ms() - start;
    let c = conn.borrow();
    let out = Object::new();
    for (key, value) in [
        ("elapsed_ms", elapsed),
        ("acked_ms", acked),
        ("published", spec.count as f64),
        ("frames_out", (c.frames_out - frames_out0) as f64),
        ("frames_in", (c.frames_in - frames_in0) as f64),
        ("max_inflight", max_inflight),
    ] {
        Reflect::set(&out, &JsValue::from_str(key), &JsValue::from_f64(value))?;
    }
    Ok(out.into())
}

/// The telemetry payload `{"device","building","seq","ts","temperature","humidity"}`
/// (fleet-core's current shape) of `device` in building `1`, split around its `seq`, padded
/// to `len` bytes with trailing zeros of the humidity (still the same number) when `len` is
/// larger than the natural size.
pub fn telemetry_template(device: &str, len: usize, ts: u64, seq0: u64) -> (String, String) {
    let prefix = format!(r#"{{"device":"{device}","building":"1","seq":"#);
    let mut suffix = format!(r#","ts":{ts},"temperature":27.1,"humidity":60.2"#);
    let natural = prefix.len() + digits(seq0) + suffix.len() + 1;
    suffix.extend(std::iter::repeat_n('0', len.saturating_sub(natural)));
    suffix.push('}');
    (prefix, suffix)
}

/// Connects as a page of namespace `namespace` with its `password` (`fleet local token
/// --page NS`), publishes `count` telemetry messages of `payload_len` bytes (at least the
/// natural size) at `qos` for its device `{namespace}-0001` on its telemetry topic (the only
/// topics a page may publish: the stack stores each reading before its PUBACK),
/// disconnects, and resolves with the run's result (see [`Bench::run`]).
#[wasm_bindgen(js_name = run)]
pub async fn run_once(
    url: String,
    namespace: String,
    password: String,
    qos: u8,
    count: u32,
    payload_len: u32,
) -> Result<JsValue, JsValue> {
    let seq0 = 1_000_000_000;
    let device = format!("{namespace}-0001");
    let (prefix, suffix) = telemetry_template(
        &device,
        payload_len as usize,
        js_sys::Date::now() as u64,
        seq0,
    );
    let bench = connect(
        url,
        format!("{namespace}.bench-fleet-{}", now_u64()),
        Some(format!("page:{namespace}")),
        Some(password),
    )
    .await?;
    let spec = Spec {
        qos,
        count: u64::from(count),
        topic: format!("dt/monitoring/1/{device}/telemetry"),
        prefix,
        suffix,
        seq0,
        batch: 100,
        hwm: 256 * 1024,
    };
    let result = run(Rc::clone(&bench.conn), spec).await;
    bench.close();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_rewritten_in_place() {
        let (prefix, suffix) = telemetry_template("d-0001", 0, 1_790_000_000_000, 1_000_000_000);
        assert_eq!(prefix.len() + 10 + suffix.len(), 105, "the natural size");
        let (prefix, suffix) = telemetry_template("d-0001", 110, 1_790_000_000_000, 1_000_000_000);
        let mut p = Payload::new(&prefix, 1_000_000_000, &suffix);
        assert_eq!(p.bytes.len(), 110);
        p.set_seq(1_000_123_456);
        let text = String::from_utf8(p.bytes.clone()).unwrap();
        assert!(
            text.contains(r#""seq":1000123456,"ts":1790000000000,"#),
            "{text}"
        );
        assert!(text.ends_with("60.200000}"), "{text}");
    }

    #[test]
    fn digits_counts_decimal_digits() {
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
        assert_eq!(digits(1_000_000_000), 10);
    }
}
