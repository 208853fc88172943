//! An embeddable MQTT 3.1.1 broker for Fleet's local stack: TCP, WebSocket (`/mqtt`,
//! subprotocol `mqtt`) and mutual-TLS listeners in one tokio runtime, built on
//! `fleet-mqtt`'s codec.
//!
//! # Key decision: acks after commit
//! A broker acknowledges a QoS 1 PUBLISH once it owns the message. For telemetry, the local
//! stack owns a reading only once it is committed to its database. So publishes whose topic
//! matches an *ingest filter* are handed to the application as [`Ingested`] values carrying
//! an [`Ack`], and the device gets its PUBACK only when the application completes that ack,
//! after its commit. If the application drops the ack (its store failed), the connection is
//! closed, so the device reconnects and sends the message again: a reading acked is a reading
//! stored, even across `kill -9`. rumqttd, the obvious embeddable broker, acks on receipt and
//! has no hook for this; it also cannot bind port 0, has no shutdown, delivers overlapping
//! subscriptions twice and reports a busy port only in its log. This broker does all four
//! the other way.
//!
//! # Authorization
//! With an [`Authenticator`] (the local stack always has one), every CONNECT is identified
//! and decided by `fleet_core::access` (ARCHITECTURE §4.8): a client refused answers
//! CONNACK 5, a subscription refused SUBACK 0x80, a publish refused closes the connection
//! before anyone sees it, a WebSocket from a page of another origin gets HTTP 403; each
//! refusal is logged with its reason and counted ([`Publisher::refusals`]).
//!
//! Scope, deliberately small: clean sessions only (a CONNACK never claims a stored session,
//! and subscriptions end with the connection), no retained messages, QoS 0 and 1 (QoS 2 is
//! refused, as AWS IoT Core does), will messages, keep-alive enforcement at 1.5×, one
//! delivery per subscriber even when its filters overlap, and client-id takeover.
//!
//! # Layout
//! - [`auth`]: the [`Authenticator`] port, refusal counts, origin and certificate checks.
//! - [`config`]: listeners and limits.
//! - [`broker`]: binding, accept loops, the [`BrokerHandle`] and shutdown.
//! - `connection`: one client connection: handshake, packets, keep-alive, ordered acks.
//! - `router`: subscriptions and fan-out.
//! - `transport`: TCP, TLS and WebSocket behind one read/write interface.
//! - [`ingest`]: the [`Ingested`] messages and their [`Ack`]s.

pub mod auth;
pub mod broker;
pub mod config;
mod connection;
pub mod ingest;
mod router;
mod transport;

pub use auth::{Authenticator, ConnectRequest};
pub use broker::{BindError, Broker, BrokerHandle, BrokerStats, ListenerKind, Publisher};
pub use config::{BrokerConfig, IngestConfig};
pub use ingest::{Ack, Ingested};
