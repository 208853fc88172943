//! TCP, TLS and WebSocket connections behind one read/write interface.

use std::io;
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tracing::warn;

use crate::auth::{Refusals, origin_allowed};

/// A byte stream: TCP or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One client's transport.
pub(crate) enum Transport {
    /// MQTT bytes straight on the stream.
    Stream(Box<dyn Io>),
    /// MQTT bytes in binary WebSocket frames (MQTT 3.1.1 §6): a frame may hold part of a
    /// packet or several packets.
    Ws(Box<WebSocketStream<TcpStream>>),
}

impl Transport {
    /// Appends what arrives to `buf`. `Ok(0)` means the peer closed the connection. Cancel
    /// safe: nothing is lost if the future is dropped before it completes.
    pub(crate) async fn read(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Transport::Stream(s) => {
                buf.reserve(16 * 1024);
                s.read_buf(buf).await
            }
            Transport::Ws(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(0),
                    Some(Ok(Message::Binary(data))) if !data.is_empty() => {
                        buf.extend_from_slice(&data);
                        return Ok(data.len());
                    }
                    // Pings are answered by tungstenite on the next write or flush.
                    Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Text(_))) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "text frame on an MQTT WebSocket (MQTT needs binary frames)",
                        ));
                    }
                    Some(Ok(Message::Frame(_))) => {}
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            },
        }
    }

    /// Writes `data`: on a WebSocket as one binary frame.
    pub(crate) async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Transport::Stream(s) => {
                s.write_all(data).await?;
                // TLS buffers records until flushed.
                s.flush().await
            }
            Transport::Ws(ws) => ws
                .send(Message::binary(data.to_vec()))
                .await
                .map_err(io::Error::other),
        }
    }

    /// Closes the connection politely, ignoring errors (the peer may be gone already).
    pub(crate) async fn close(&mut self) {
        match self {
            Transport::Stream(s) => {
                let _ = s.shutdown().await;
            }
            Transport::Ws(ws) => {
                // Sends a Close frame and flushes it.
                let _ = SinkExt::close(&mut **ws).await;
            }
        }
    }
}

/// The WebSocket handshake check: only `/mqtt`, only from an allowed page origin (when
/// `origins` is set), and the `mqtt` subprotocol when offered.
#[allow(clippy::result_large_err)] // The signature is tungstenite's callback type.
pub(crate) fn ws_handshake(
    req: &Request,
    mut resp: Response,
    origins: Option<&[String]>,
    refusals: &Refusals,
    peer: SocketAddr,
) -> Result<Response, ErrorResponse> {
    if req.uri().path() != "/mqtt" {
        let mut err = ErrorResponse::new(Some(String::from("MQTT is served at /mqtt")));
        *err.status_mut() = StatusCode::NOT_FOUND;
        return Err(err);
    }
    if let Some(origins) = origins {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .map(|o| o.to_str().unwrap_or("?"));
        if !origin_allowed(origin, origins) {
            let reason = fleet_core::access::Reason::OriginNotAllowed;
            refusals.count(reason);
            warn!(%peer, origin = origin.unwrap_or(""), reason = reason.code(), "refused: WebSocket from a page whose origin is not allowed");
            let mut err = ErrorResponse::new(Some(format!(
                "pages from {} may not connect here (fleet local --allow-origin adds an origin)",
                origin.unwrap_or("?")
            )));
            *err.status_mut() = StatusCode::FORBIDDEN;
            return Err(err);
        }
    }
    let offers_mqtt = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("mqtt"));
    // MQTT 3.1.1 §6: the client offers "mqtt" and the server selects it. Clients that offer
    // nothing are accepted too; answering a protocol they did not offer would fail them.
    if offers_mqtt {
        resp.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
    }
    Ok(resp)
}
