//! A scripted raw MQTT client for the broker's tests: every byte and every ordering is
//! checked, nothing is hidden by a client library.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::net::SocketAddr;
use std::time::Duration;

use fleet_mqtt::QoS;
use fleet_mqtt::codec::{decode, encode};
use fleet_mqtt::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, Publish, Subscribe, SubscribeReturn, Will,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// What the raw client received, owned.
#[derive(Debug, Clone, PartialEq)]
pub enum In {
    ConnAck(ConnectReturnCode),
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
    },
    PubAck(u16),
    SubAck(Vec<SubscribeReturn>),
    UnsubAck,
    PingResp,
}

pub struct Raw {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Raw {
    pub async fn open(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn connect(addr: SocketAddr, client_id: &str) -> Raw {
        Raw::connect_with(addr, client_id, 60, None).await
    }

    pub async fn connect_with(
        addr: SocketAddr,
        client_id: &str,
        keep_alive_s: u16,
        will: Option<Will<'_>>,
    ) -> Raw {
        let mut raw = Raw::open(addr).await;
        raw.send(&[Packet::Connect(Connect {
            client_id,
            keep_alive_s,
            clean_session: true,
            will,
            username: None,
            password: None,
        })])
        .await;
        assert_eq!(raw.recv().await, In::ConnAck(ConnectReturnCode::Accepted));
        raw
    }

    /// Sends CONNECT with a user name and password and returns the CONNACK's code (the
    /// connection stays open only if it was accepted).
    pub async fn connect_as(
        addr: SocketAddr,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> (Raw, ConnectReturnCode) {
        let mut raw = Raw::open(addr).await;
        raw.send(&[Packet::Connect(Connect {
            client_id,
            keep_alive_s: 60,
            clean_session: true,
            will: None,
            username,
            password,
        })])
        .await;
        let In::ConnAck(code) = raw.recv().await else {
            panic!("no CONNACK");
        };
        (raw, code)
    }

    /// Subscribes and returns the SUBACK's return codes.
    pub async fn subscribe_returns(&mut self, filters: &[(&str, QoS)]) -> Vec<SubscribeReturn> {
        self.send(&[Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: filters.to_vec(),
        })])
        .await;
        match self.recv().await {
            In::SubAck(returns) => returns,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub async fn send(&mut self, packets: &[Packet<'_>]) {
        let mut out = Vec::new();
        for p in packets {
            encode(p, &mut out).unwrap();
        }
        self.stream.write_all(&out).await.unwrap();
    }

    pub async fn publish(&mut self, topic: &str, payload: &[u8], pkid: Option<u16>) {
        let qos = if pkid.is_some() {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        self.send(&[Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic,
            pkid,
            payload,
        })])
        .await;
    }

    pub async fn subscribe(&mut self, filters: &[(&str, QoS)]) {
        self.send(&[Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: filters.to_vec(),
        })])
        .await;
        assert!(matches!(self.recv().await, In::SubAck(_)));
    }

    /// The next packet, or None if the broker closed the connection.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<In> {
        loop {
            if let Some((p, used)) = decode(&self.buf, usize::MAX).unwrap() {
                let owned = match p {
                    Packet::ConnAck(ConnAck { code, .. }) => In::ConnAck(code),
                    Packet::Publish(p) => In::Publish {
                        topic: p.topic.into(),
                        payload: p.payload.to_vec(),
                        qos: p.qos,
                    },
                    Packet::PubAck(id) => In::PubAck(id),
                    Packet::SubAck(s) => In::SubAck(s.returns),
                    Packet::UnsubAck(_) => In::UnsubAck,
                    Packet::PingResp => In::PingResp,
                    other => panic!("a broker never sends {}", other.name()),
                };
                self.buf.drain(..used);
                return Some(owned);
            }
            let mut chunk = [0u8; 4096];
            match timeout(wait, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("nothing received within {wait:?}"),
            }
        }
    }

    pub async fn recv(&mut self) -> In {
        self.try_recv(Duration::from_secs(5))
            .await
            .expect("connection closed")
    }

    /// Asserts nothing arrives for a while.
    pub async fn quiet(&mut self) {
        let mut chunk = [0u8; 64];
        if let Ok(r) = timeout(Duration::from_millis(150), self.stream.read(&mut chunk)).await {
            panic!("expected silence, got {r:?} {:?}", &chunk[..]);
        }
    }

    pub async fn closed(&mut self) -> bool {
        self.try_recv(Duration::from_secs(5)).await.is_none()
    }
}
