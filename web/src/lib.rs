//! Fleet's browser app: a Leptos single-page app (built by Trunk from the top-level
//! `Trunk.toml`) that runs a fleet of virtual devices and draws their remediation drift.
//!
//! # Layout
//! - `main.rs`: only mounts [`app::App`] (`leptos::mount::mount_to_body`).
//! - [`app`]: the Leptos components of the in-page mode (header controls, overview strip,
//!   device cards, cloud panel), the `requestAnimationFrame` loop that ticks the engine,
//!   and the query-string options (`autostart`, `devices`, `speed`, `warmup`).
//! - [`view_model`]: the [`view_model::Snapshot`] copied out of the engine a few times a
//!   second; the only thing the components read.
//! - [`chart`]: a device card's plotters chart on its canvas (temperature, dashed
//!   counterfactual, band edges, command marks).
//! - [`engine`]: the page's driver of the shared fleet engine (`fleet-engine`): stepped once
//!   per animation frame within a time budget, reporting its lag behind real time, through
//!   any transport (the in-page bus with the stack's worker, remediation and alarm logic,
//!   or MQTT per device or per gateway).
//! - [`series`]: what a device card draws (curves, counterfactual, command markers).
//! - [`identity`]: who the page is to a broker: its namespace of devices, client ids,
//!   credential and, on AWS, its one building (ARCHITECTURE §4.8).
//! - [`json`]: fields of `config.json` and Cognito's answers, read by path.
//! - `index.html`, `style.css`: Trunk's entry (built from the top-level `Trunk.toml`) and
//!   the plain CSS.
//!
//! Status: the in-page mode's UI is here; the local (WebSocket) mode and browser tests
//! (wasm-bindgen-test, end-to-end by `data-testid`) are the browser-fleet issue's next
//! steps.
//!
//! # Key decision
//! The simulation has no timer per device and no DOM in it: [`engine::Engine::advance`] is
//! called once per frame with the frame's clock and steps the devices that are due, as many
//! as the frame's budget allows (reporting the lag when that is not all). So a hundred
//! thousand devices cost one loop per frame, the same code runs under `cargo test`, and the
//! UI only reads what the engine holds.

pub mod app;
#[cfg(feature = "aws")]
pub mod aws;
pub mod aws_mode;
pub mod chart;
pub mod engine;
pub mod export;
pub mod identity;
pub mod json;
pub mod series;
pub mod settings;
pub mod transport;
pub mod view_model;

pub use engine::{Engine, EngineConfig, EngineStats};
pub use series::{Marker, Point, Series};
pub use view_model::Snapshot;
