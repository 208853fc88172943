//! The three byte pipes to a broker (TCP, TLS, WebSocket) behind one pair of enums.
//!
//! Every transport is split into a [`Reader`] and a [`Writer`] so the driver can wait for
//! input while a write is pending. Writing only between reads would deadlock as soon as
//! both peers fill each other's socket buffers (a client that publishes and receives a lot
//! through a broker that also writes before it reads).
//!
//! An enum rather than a trait object per transport: there are three, they are known, and
//! the WebSocket one is message-based while the others are byte streams, which an enum
//! handles with one `match` instead of an adapter.

mod error;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

use crate::url::{BrokerUrl, Scheme};

pub use error::TransportError;

type Ws = WebSocketStream<TcpStream>;

/// An open connection to the broker.
pub(crate) struct Transport {
    pub(crate) reader: Reader,
    pub(crate) writer: Writer,
}

/// Connects to `url`: TCP (from `bind` if given), then TLS or the WebSocket upgrade.
pub(crate) async fn open(
    url: BrokerUrl,
    tls: Option<Arc<rustls::ClientConfig>>,
    bind: Option<IpAddr>,
) -> Result<Transport, TransportError> {
    let addr = url.authority();
    let tcp = match bind {
        None => TcpStream::connect((url.host(), url.port())).await,
        Some(local) => connect_from(local, url.host(), url.port()).await,
    };
    let tcp = tcp.map_err(|source| match source.kind() {
        io::ErrorKind::ConnectionRefused => TransportError::Refused {
            addr: addr.clone(),
            source,
        },
        _ => TransportError::Connect {
            addr: addr.clone(),
            source,
        },
    })?;
    // MQTT packets are small and each one is written as soon as it is ready; Nagle's
    // algorithm would hold PUBACKs and PINGREQs back for up to 40 ms.
    tcp.set_nodelay(true)
        .map_err(|source| TransportError::Connect {
            addr: addr.clone(),
            source,
        })?;
    match url.scheme() {
        Scheme::Mqtt => {
            let (read, write) = tcp.into_split();
            Ok(Transport::stream(Box::new(read), Box::new(write)))
        }
        Scheme::Mqtts => {
            let config = tls.ok_or(TransportError::NoTlsConfig)?;
            let name = ServerName::try_from(url.host().to_owned())
                .map_err(|_| TransportError::ServerName(url.host().to_owned()))?;
            let stream = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|source| TransportError::TlsHandshake { addr, source })?;
            let (read, write) = tokio::io::split(stream);
            Ok(Transport::stream(Box::new(read), Box::new(write)))
        }
        Scheme::Ws => {
            let ws = websocket(&url, tcp).await?;
            let (sink, stream) = ws.split();
            Ok(Transport {
                reader: Reader::Ws(stream),
                writer: Writer::Ws { sink, dirty: false },
            })
        }
    }
}

/// A TCP connection to `host:port` from the local address `local` (a port the system
/// picks): each local address has its own ephemeral ports, so a process with several can
/// hold more than the ~28,000 connections one address allows to one broker.
async fn connect_from(local: IpAddr, host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for remote in tokio::net::lookup_host((host, port)).await? {
        if remote.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if local.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local, 0))?;
        match socket.connect(remote).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{host} has no address of the local address {local}'s family"),
        )
    }))
}

/// The WebSocket upgrade, asking for subprotocol `mqtt` (tungstenite then checks that the
/// broker agreed to it).
async fn websocket(url: &BrokerUrl, tcp: TcpStream) -> Result<Ws, TransportError> {
    let text = format!("ws://{}{}", url.authority(), url.path());
    let handshake = |source| TransportError::WsHandshake {
        url: text.clone(),
        source: Box::new(source),
    };
    let mut request = text.as_str().into_client_request().map_err(handshake)?;
    request
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("mqtt"));
    let (ws, _response) = client_async(request, tcp).await.map_err(handshake)?;
    Ok(ws)
}

impl Transport {
    fn stream(
        read: Box<dyn AsyncRead + Send + Unpin>,
        write: Box<dyn AsyncWrite + Send + Unpin>,
    ) -> Transport {
        Transport {
            reader: Reader::Stream(read),
            writer: Writer::Stream {
                io: write,
                dirty: false,
            },
        }
    }
}

/// What a read produced.
pub(crate) enum Received {
    /// Bytes were appended to the caller's buffer.
    Buffered,
    /// A whole WebSocket binary frame.
    Frame(Bytes),
    /// The broker closed the connection.
    Closed,
}

/// The receiving half.
pub(crate) enum Reader {
    Stream(Box<dyn AsyncRead + Send + Unpin>),
    Ws(SplitStream<Ws>),
}

impl Reader {
    /// Reads what is available. Cancel-safe: nothing is lost if the future is dropped.
    pub(crate) async fn read(&mut self, buf: &mut Vec<u8>) -> Result<Received, TransportError> {
        match self {
            Reader::Stream(io) => match io.read_buf(buf).await {
                Ok(0) => Ok(Received::Closed),
                Ok(_) => Ok(Received::Buffered),
                // A peer that closes without TLS close_notify (a killed broker) is a
                // closed connection; MQTT's own framing detects truncated packets.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Received::Closed),
                Err(e) => Err(e.into()),
            },
            Reader::Ws(stream) => loop {
                use tokio_tungstenite::tungstenite::Error as WsError;
                match stream.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(Received::Closed),
                    Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                        return Ok(Received::Closed);
                    }
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(Message::Binary(frame))) => return Ok(Received::Frame(frame)),
                    Some(Ok(Message::Text(_))) => return Err(TransportError::TextFrame),
                    // Pings are answered by tungstenite itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                }
            },
        }
    }
}

/// What a step of [`Writer::poll_progress`] did.
pub(crate) enum Progress {
    /// This many bytes of the data were taken.
    Wrote(usize),
    /// Everything taken earlier reached the socket.
    Flushed,
}

/// The sending half.
pub(crate) enum Writer {
    Stream {
        io: Box<dyn AsyncWrite + Send + Unpin>,
        /// Written since the last flush (TLS may hold records back until flushed).
        dirty: bool,
    },
    Ws {
        sink: SplitSink<Ws, Message>,
        /// Frames queued in tungstenite since the last flush.
        dirty: bool,
    },
}

impl Writer {
    /// Whether earlier writes still need a flush.
    pub(crate) fn is_dirty(&self) -> bool {
        match self {
            Writer::Stream { dirty, .. } | Writer::Ws { dirty, .. } => *dirty,
        }
    }

    /// Writes some of `data`, or flushes when `data` is empty. All state lives in `self`,
    /// so dropping the future between polls loses nothing (it runs inside `select!`).
    ///
    /// A WebSocket takes all of `data` as one binary frame: the driver passes the
    /// session's whole transmit buffer, so the packets of a tick share a frame (§6).
    pub(crate) fn poll_progress(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<Result<Progress, TransportError>> {
        if data.is_empty() {
            return self.poll_flush(cx).map_ok(|()| Progress::Flushed);
        }
        match self {
            Writer::Stream { io, dirty } => {
                let n = ready!(Pin::new(io).poll_write(cx, data))?;
                if n == 0 {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                }
                *dirty = true;
                Poll::Ready(Ok(Progress::Wrote(n)))
            }
            Writer::Ws { sink, dirty } => {
                ready!(Pin::new(&mut *sink).poll_ready(cx))?;
                let frame = Message::Binary(Bytes::copy_from_slice(data));
                Pin::new(sink).start_send(frame)?;
                *dirty = true;
                Poll::Ready(Ok(Progress::Wrote(data.len())))
            }
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        match self {
            Writer::Stream { io, dirty } => {
                if *dirty {
                    ready!(Pin::new(io).poll_flush(cx))?;
                    *dirty = false;
                }
            }
            Writer::Ws { sink, dirty } => {
                if *dirty {
                    ready!(Pin::new(sink).poll_flush(cx))?;
                    *dirty = false;
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `data` (as one frame), flushes and closes: TLS close_notify, WebSocket close.
    pub(crate) async fn close(&mut self, data: &[u8]) -> Result<(), TransportError> {
        match self {
            Writer::Stream { io, .. } => {
                io.write_all(data).await?;
                io.shutdown().await?;
            }
            Writer::Ws { sink, .. } => {
                if !data.is_empty() {
                    sink.feed(Message::Binary(Bytes::copy_from_slice(data)))
                        .await?;
                }
                sink.close().await?;
            }
        }
        Ok(())
    }
}
