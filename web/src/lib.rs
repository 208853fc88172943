//! Fleet's browser app: a Leptos single-page app (built by Trunk from the top-level
//! `Trunk.toml`) that runs a fleet of virtual devices over MQTT-over-WebSocket and draws
//! their remediation drift.
//!
//! Status: the app itself is the browser-fleet issue's work. Until then this crate only
//! links the shared crates (`fleet-core`, `fleet-mqtt`) into the web app's dependency graph,
//! so the test command's wasm32 build proves they stay portable to the browser.

pub use fleet_core as core;
pub use fleet_mqtt as mqtt;
