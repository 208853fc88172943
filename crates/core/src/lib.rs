//! Fleet's core: the device model, topics, payloads, remediation policy and worker plan,
//! shared by the AWS Lambdas, the local stack and the in-browser app.
//!
//! # Key decision
//!
//! Pure values in, values out. Nothing here does I/O, reads a clock or draws randomness:
//! time (`now_ms`) and seeds are arguments, and results are plain values — a [`Sample`] to
//! publish, a [`Decision`] to record, a [`Plan`] of rows, archive objects and metric lines
//! to write. Adapters (Lambda, SQLite, in-page) execute those plans with their own I/O. So
//! the same code runs natively and on `wasm32-unknown-unknown`, and every rule is tested
//! without mocks.
//!
//! # Layout
//!
//! - [`access`]: who may say what (§4.8): identities, grants, [`Publisher`] checks.
//! - [`id`]: validated [`DeviceId`] and [`BuildingId`] (`[A-Za-z0-9_-]{1,64}`).
//! - [`topic`]: MQTT topic names and subscription filters (§4.2).
//! - [`device`]: the virtual device's curve, remediation and a seeded [`Fleet`] (§4.1).
//! - [`payload`]: JSON telemetry (one reading, or a batch of up to [`MAX_BATCH`]) and
//!   commands, current and legacy shapes, and the [`Rejection`] reasons for bad input (§4.3).
//! - [`policy`]: the per-device remediation state machine, [`decide`] (§4.5).
//! - [`mod@plan`]: what the worker does with a batch of messages, [`plan()`] (§4.4).
//! - [`alarm`]: band and fleet alarms evaluated reading by reading, [`Alarms`] (§4.6).
//! - [`number`]: decimal numbers from text, the same on every target ([`number::parse_f64`]).

#![warn(missing_docs)]

pub mod access;
pub mod alarm;
pub mod device;
pub mod id;
pub mod number;
pub mod payload;
pub mod plan;
pub mod policy;
pub mod topic;

pub use access::{Buildings, Identity, Namespace, Publisher};
pub use alarm::{AlarmConfig, AlarmKind, AlarmNotice, AlarmState, Alarms};
pub use device::{Device, DeviceModel, DeviceParams, Fleet, FleetVariation, Sample};
pub use id::{BuildingId, DeviceId, IdError};
pub use payload::{
    Action, Command, LegacyCommand, MAX_BATCH, ParseContext, Rejection, Shape, Telemetry,
    TelemetryMessage, encode_command, encode_telemetry, encode_telemetry_batch, parse_command,
    parse_telemetry, parse_telemetry_batch,
};
pub use plan::{
    ArchiveObject, Incoming, Plan, PlanSummary, ReadingRow, Rejected, WorkerConfig, plan,
};
pub use policy::{Decision, DeviceState, PolicyConfig, Publication, Reading, Reason, decide};
pub use topic::{Topic, TopicError};
