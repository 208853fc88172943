//! What the native tests of the MQTT transport share: a TCP [`Connector`] (the page uses
//! the browser's WebSocket; the MQTT above it is the same), a local stack on a port, and
//! a page identity the stack issued (as its `config.json` does).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;

use fleet_core::access::Namespace;
use fleet_local::{LocalConfig, LocalStack, Subject};
use fleet_web::identity::{Login, PageIdentity};
use fleet_web::transport::mqtt::{Connector, LinkKey, Socket, SocketEvent};

/// Plain TCP sockets, read without blocking whenever the transport asks for events.
#[derive(Default)]
pub struct TcpConnector {
    open: HashMap<usize, (u32, TcpStream)>,
    events: Vec<(LinkKey, SocketEvent)>,
}

pub struct TcpSocket(TcpStream);

impl Socket for TcpSocket {
    fn send(&mut self, data: &[u8]) -> Result<(), String> {
        // Test traffic is small: a blocking write is fine here.
        self.0.set_nonblocking(false).map_err(|e| e.to_string())?;
        let r = self.0.write_all(data).map_err(|e| e.to_string());
        let _ = self.0.set_nonblocking(true);
        r
    }
}

impl Drop for TcpSocket {
    fn drop(&mut self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

impl Connector for TcpConnector {
    type Socket = TcpSocket;

    fn open(&mut self, url: &str, key: LinkKey) -> Result<TcpSocket, String> {
        let addr = url.trim_start_matches("tcp://");
        match TcpStream::connect(addr) {
            Ok(stream) => {
                stream.set_nonblocking(true).unwrap();
                self.open
                    .insert(key.index, (key.generation, stream.try_clone().unwrap()));
                self.events.push((key, SocketEvent::Opened));
                Ok(TcpSocket(stream))
            }
            Err(e) => Err(format!("the broker at {addr} is unreachable: {e}")),
        }
    }

    fn events(&mut self, out: &mut Vec<(LinkKey, SocketEvent)>) {
        out.append(&mut self.events);
        let mut closed = Vec::new();
        for (&index, (generation, stream)) in &mut self.open {
            let key = LinkKey {
                index,
                generation: *generation,
            };
            let mut buf = [0_u8; 16 * 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        out.push((key, SocketEvent::Closed(None)));
                        closed.push(index);
                        break;
                    }
                    Ok(n) => out.push((key, SocketEvent::Data(buf[..n].to_vec()))),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        out.push((key, SocketEvent::Closed(Some(e.to_string()))));
                        closed.push(index);
                        break;
                    }
                }
            }
        }
        for index in closed {
            self.open.remove(&index);
        }
    }
}

/// A free loopback address: bound, then released, so a stack can take it (and take it
/// again after a restart).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A local stack with only its MQTT TCP listener, on `mqtt`.
pub fn start_stack(rt: &tokio::runtime::Runtime, dir: &Path, mqtt: SocketAddr) -> LocalStack {
    let config = LocalConfig {
        mqtt: Some(mqtt),
        ws: None,
        mqtts: None,
        http: None,
        ..LocalConfig::ephemeral(dir)
    };
    rt.block_on(LocalStack::start(config)).unwrap()
}

/// A page of namespace `ns` with the credential `stack` issues it (what its `config.json`
/// hands a page): the stack lets a client speak only for its own namespace's devices.
pub fn page_of(stack: &LocalStack, ns: &str) -> PageIdentity {
    let namespace = Namespace::new(ns).unwrap();
    let subject = Subject::Page(namespace);
    let login = Login {
        username: subject.name(),
        password: stack.keys().token(&subject),
    };
    PageIdentity::issued(ns, Some(login)).unwrap()
}
