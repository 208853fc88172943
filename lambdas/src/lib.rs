//! Fleet's AWS Lambdas (ARCHITECTURE §4.4–§4.6): the `worker`, `remediation` and `notifier`
//! functions, as testable handler logic over narrow ports, with AWS adapters beside them.
//!
//! # Layout
//! - [`config`]: each function's settings, read from the environment once at init.
//! - [`envelope`]: the IoT Rule's `{"payload","topic","received_at"}` envelope.
//! - [`ports`]: the narrow traits the handlers need ([`ports::ReadingTable`],
//!   [`ports::Archive`], [`ports::DecisionTable`], [`ports::Publisher`],
//!   [`ports::MetricLog`]), with fleet-pipeline's [`StoreError`](fleet_pipeline::StoreError)
//!   as their error.
//! - [`worker`], [`remediation`], [`notifier`]: the handlers: AWS event types in, the
//!   partial-batch response out.
//! - [`aws`]: the adapters: DynamoDB, S3, the IoT data plane, stdout for EMF, and an SDK
//!   interceptor counting API calls. SDK types never leave this module.
//! - [`memory`]: the ports over fleet-pipeline's in-memory store, for tests and local runs.
//! - [`logging`]: JSON logs for CloudWatch.
//! - [`cost`]: the cost per million readings, from the calls counted against moto.
//!
//! The binaries (`src/bin/{worker,remediation,notifier}.rs`) only read the config, build the
//! SDK clients once and hand the handler to `lambda_runtime`.
//!
//! # Key decision
//! The Lambdas run the *same* core plans as the local stack: the worker calls
//! [`fleet_core::plan()`] and writes its rows, archive objects and EMF lines; remediation
//! calls [`fleet_core::decide`] per stored reading and publishes
//! [`fleet_core::Decision::publication`]. Only the I/O differs, so the local stack's tests
//! speak for the cloud path's logic too. Failures are per record: a bad message is rejected
//! (logged, counted, archived) and acknowledged, because a retry would reject it again;
//! only a failed AWS write fails the records it affects, which Lambda then redelivers.
//! Keys make every redelivery idempotent.

/// The allocator of every binary linking this crate (the three functions, their tests and
/// the bench): mimalloc. With glibc's malloc, allocating and freeing was about a third of
/// the worker's CPU per reading (the SDK's requests and DynamoDB items are maps of many
/// small strings); mimalloc took the worker from 12.5 to 8–9.6 µs per reading, SDK included
/// (BENCHMARKS.md, Lambdas).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod aws;
pub mod config;
pub mod cost;
pub mod envelope;
pub mod logging;
pub mod memory;
pub mod notifier;
pub mod ports;
pub mod remediation;
pub mod worker;

/// Wall-clock time in ms since the Unix epoch: the policy's clock and arrival fallbacks.
pub use fleet_clock::now_ms;
