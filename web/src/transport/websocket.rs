//! The browser's WebSocket as a [`Connector`]: subprotocol `mqtt`, binary frames, one MQTT
//! transmit buffer per frame.
//!
//! The socket callbacks only push events into a shared queue; the frame loop drains it in
//! [`Connector::events`]. So no MQTT state is touched from inside a JavaScript callback, and
//! the order of events per socket is kept.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::mqtt::{Connector, LinkKey, Socket, SocketEvent};

type Queue = Rc<RefCell<Vec<(LinkKey, SocketEvent)>>>;

/// Opens browser WebSockets.
#[derive(Debug, Default)]
pub struct WsConnector {
    queue: Queue,
}

impl WsConnector {
    /// A connector with an empty event queue.
    pub fn new() -> WsConnector {
        WsConnector::default()
    }
}

/// One browser WebSocket and the callbacks it holds. Dropping it detaches the callbacks
/// (so none runs after its closure is freed) and closes the socket.
pub struct WsSocket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for WsSocket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }
}

/// The largest WebSocket message sent: brokers cap messages (ours at 132 KiB, like IoT
/// Core's 128 KiB payloads plus headers), and a gateway's window of 100 publishes can be
/// bigger than that; MQTT allows any split of its stream over messages.
pub const MAX_MESSAGE: usize = 64 * 1024;

impl WsSocket {
    /// The browser's socket (its `bufferedAmount` tells how much the page has handed over
    /// and the browser has not sent yet).
    pub fn web_socket(&self) -> &WebSocket {
        &self.ws
    }
}

impl Socket for WsSocket {
    fn send(&mut self, data: &[u8]) -> Result<(), String> {
        for chunk in data.chunks(MAX_MESSAGE) {
            self.ws
                .send_with_u8_array(chunk)
                .map_err(|e| format!("could not send on the WebSocket: {}", js_text(&e)))?;
        }
        Ok(())
    }
}

impl Connector for WsConnector {
    type Socket = WsSocket;

    fn open(&mut self, url: &str, key: LinkKey) -> Result<WsSocket, String> {
        let ws = WebSocket::new_with_str(url, "mqtt").map_err(|e| {
            let shown = url.split('?').next().unwrap_or(url);
            format!("bad broker URL {shown:?}: {}", js_text(&e))
        })?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let opened = Rc::new(Cell::new(false));

        let queue = Rc::clone(&self.queue);
        let was_opened = Rc::clone(&opened);
        let on_open = Closure::<dyn FnMut()>::new(move || {
            was_opened.set(true);
            queue.borrow_mut().push((key, SocketEvent::Opened));
        });
        let queue = Rc::clone(&self.queue);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            if let Ok(buf) = ev.data().dyn_into::<js_sys::ArrayBuffer>() {
                let bytes = js_sys::Uint8Array::new(&buf).to_vec();
                queue.borrow_mut().push((key, SocketEvent::Data(bytes)));
            }
        });
        let queue = Rc::clone(&self.queue);
        // Without the query: a presigned URL's signature and token never reach the screen.
        let target = url.split('?').next().unwrap_or(url).to_owned();
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
            let why = close_reason(&target, opened.get(), ev.code(), &ev.reason());
            queue.borrow_mut().push((key, SocketEvent::Closed(why)));
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(WsSocket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    fn events(&mut self, out: &mut Vec<(LinkKey, SocketEvent)>) {
        out.append(&mut self.queue.borrow_mut());
    }
}

/// Why a WebSocket closed, in plain words. Browsers hide the cause of a failed connection
/// (code 1006, no reason) on purpose, so "unreachable" is as precise as a page can be.
pub fn close_reason(url: &str, opened: bool, code: u16, reason: &str) -> Option<String> {
    match (opened, code) {
        // Browsers report a refused upgrade (IoT Core's answer to a bad signature or a
        // policy that denies the client) exactly like an unreachable host.
        #[cfg(feature = "aws")]
        (false, _) if url.starts_with("wss://") => Some(format!(
            "the broker at {url} is unreachable or refused the connection (check the endpoint, \
             and that the credentials may connect)"
        )),
        // `fleet local` answers a page of an origin it does not allow with HTTP 403, which
        // the page cannot tell from a closed port either.
        (false, _) => Some(format!(
            "the broker at {url} is unreachable or refused this page (is `fleet local` \
             running, and does it allow pages from this address? `--allow-origin`)"
        )),
        (true, 1000) => None,
        (true, _) if !reason.is_empty() => Some(format!(
            "the connection to {url} closed: {reason} (code {code})"
        )),
        (true, _) => Some(format!("the connection to {url} was lost (code {code})")),
    }
}

fn js_text(value: &wasm_bindgen::JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_that_never_opened_may_have_been_refused_and_the_page_says_so() {
        let why = close_reason("ws://127.0.0.1:8083/mqtt", false, 1006, "").unwrap();
        assert!(
            why.contains("unreachable or refused this page") && why.contains("--allow-origin"),
            "{why}"
        );
        #[cfg(feature = "aws")]
        assert!(
            close_reason(
                "wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt",
                false,
                1006,
                ""
            )
            .unwrap()
            .contains("check the endpoint")
        );
        assert_eq!(close_reason("ws://h/mqtt", true, 1000, ""), None);
        assert_eq!(
            close_reason("ws://h/mqtt", true, 1011, "").as_deref(),
            Some("the connection to ws://h/mqtt was lost (code 1011)")
        );
    }
}
