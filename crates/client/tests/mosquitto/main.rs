//! The client against a real mosquitto broker on loopback ports: TCP, WebSocket and
//! mutual TLS, broker restarts, and the errors a user sees.
//!
//! Needs Debian's `mosquitto` package (scripts/setup.sh installs it); without it every
//! test fails and says so.

#![allow(clippy::unwrap_used)]

mod errors;
mod reconnect;
mod roundtrip;
mod support;
mod timers;
mod tls;
