//! Fleet's browser app: a Leptos single-page app (built by Trunk from the top-level
//! `Trunk.toml`) that runs a fleet of virtual devices and draws their remediation drift.
//!
//! # Layout
//! - [`engine`]: the in-page mode: a fleet on an in-page bus with the same worker,
//!   remediation and alarm logic as the stack, stepped once per animation frame.
//! - [`series`]: what a device card draws (curves, counterfactual, command markers).
//!
//! Status: the engine is here and tested natively; the Leptos UI, the canvases and the
//! local (WebSocket) mode are the browser-fleet issue's next steps.
//!
//! # Key decision
//! The simulation has no timer per device and no DOM in it: [`engine::Engine::tick`] is
//! called once per frame with the frame's clock and steps every device that is due. So a
//! thousand devices cost one loop per frame, the same code runs under `cargo test`, and the
//! UI only reads what the engine holds.

pub mod engine;
pub mod series;

pub use engine::{Engine, EngineConfig, EngineStats};
pub use series::{Marker, Point, Series};
