//! Fleet's in-process pipeline: the worker → table → change feed → remediation → alarms loop
//! of the architecture (§4.4–§4.6), for the places that run it in one process: the local
//! stack (with a durable store), the browser's in-page mode and the headless demo (with
//! [`MemoryStore`]).
//!
//! # Layout
//! - [`store`]: the narrow store traits the pipeline needs ([`ReadingStore`],
//!   [`RemediationStore`], [`ArchiveStore`], and [`Batch`] for atomic batches) and their
//!   error type.
//! - [`memory`]: an in-memory store implementing all three, bounded per device.
//! - [`pipeline`]: [`Pipeline::ingest`], which executes one batch end to end.
//!
//! # Key decision
//! The core decides, this crate only executes: it runs [`fleet_core::plan()`] and
//! [`fleet_core::decide`] and writes their outputs through the store traits, the way a
//! Lambda adapter writes them to DynamoDB and S3. Only readings that were *newly* stored
//! reach remediation, as only new items reach a DynamoDB stream, so a redelivered message
//! never causes a second command. The code is synchronous: SQLite and in-memory stores do
//! not block for long, and the browser has one thread anyway.

pub mod memory;
pub mod pipeline;
pub mod store;

pub use memory::{Limits, MemoryStore};
pub use pipeline::{Outcome, Pipeline, PipelineConfig};
pub use store::{ArchiveStore, Batch, ReadingStore, RemediationStore, StoreError};
