//! The fleet engine: every simulated device's loop — step, encode, publish; command, apply —
//! written once, sans IO, for every front end.
//!
//! Like `fleet-mqtt`'s session, which is one state machine for every transport, the engine
//! is one state machine for every way of running a fleet. It never touches a socket, a
//! timer or a clock: time goes in, messages and the next deadline come out.
//!
//! ```text
//!            tick(now_us) ──▶ ┌────────────┐ ──▶ readings(), messages(): topic, payload, QoS,
//!  front end                  │   Engine   │      device, seqs (publish them)
//!  (clock + I/O)  receive(…) ─▶└────────────┘ ──▶ Applied { device, action, round trip }
//!                                   │
//!                          next_deadline(): tick again then
//! ```
//!
//! # Who drives it
//! - **`fleet demo`** on a simulated clock: it ticks once per period, hands the messages to
//!   the in-process pipeline and feeds the commands back through
//!   [`receive`](Engine::receive) at the same instant.
//! - **`fleet sim`** per timer: one task sleeps until [`next_deadline`](Engine::next_deadline),
//!   ticks, opens a connection for each device the ramp-up started, and publishes each
//!   message on its device's connection; commands arrive through each device's subscription
//!   ([`Via::Device`]). At stop, [`flush`](Engine::flush) sends what batches hold.
//! - **`fleet bench`** per timer too, with [`CatchUp::Burst`] so the offered load stays the
//!   rate asked for.
//! - **The page** per animation frame: it ticks (in steps, to catch up after a warm-up, and
//!   [`tick_at_most`](Engine::tick_at_most) a budget of readings at a time, reporting
//!   [`lag_us`](Engine::lag_us) when the frame's time runs out),
//!   draws the [`readings`](Engine::readings), and gives its transport the messages.
//!
//! # Layout
//! - `config`: [`EngineConfig`], [`DeviceSpec`] (ids come from the caller), [`Start`],
//!   [`CatchUp`], [`EngineError`].
//! - `roster`: ids, buildings and shapes in flat tables; lookups by id; topics.
//! - `schedule`: the ramp-up and a heap of deadlines.
//! - `engine`: [`Engine`]: ticks, batches, commands, round trips.
//!
//! # Key decision: one array per concern, no object per device
//! Per-device state lives in flat arrays, struct-of-arrays by concern: the ids in one
//! string, buildings interned, the device model's plain-data state
//! ([`fleet_core::DeviceModel`], the same state machine as [`fleet_core::Device`], without
//! the ids) in one `Vec`, deadlines in one heap, the send times of recent readings (for the
//! round trip) in one ring array, batches in one buffer. Nothing per device is a heap
//! object of its own, so a process can hold a hundred thousand devices, and a tick encodes
//! every message into one reused buffer. Legacy devices (the original stack's
//! `monitoring-device/building-{n}` topics and `{"body":…}` payloads, ARCHITECTURE
//! §4.2–4.3) are handled here, once, by their [`Shape`](fleet_core::Shape).
//!
//! Time is µs since the Unix epoch (`fleet-clock` reads it): readings carry ms, and round
//! trips of about a millisecond need better than that.
//!
//! # Why a crate of its own
//! `fleet-core` holds the rules and the device model as pure values, and is linked by the
//! Lambdas and the local stack, which run no devices. The engine holds a fleet's running
//! state and depends on the MQTT session's types (QoS); the page and the CLI need it, the
//! cloud side does not. It builds for `wasm32-unknown-unknown`.

mod config;
mod engine;
mod roster;
mod schedule;

pub use config::{CatchUp, DeviceSpec, EngineConfig, EngineError, Start};
pub use engine::{Applied, Engine, EngineStats, Message, Reading, Received, Tick, Via};
