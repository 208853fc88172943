//! Fleet's local stack: one process with an embedded MQTT broker (TCP, WebSocket, mutual
//! TLS), the same worker, remediation and alarm logic as the Lambdas, a durable SQLite
//! store, the archive as NDJSON files, Prometheus metrics, and an HTTP server for the web
//! app. `fleet local` runs it; tests start it on free ports.
//!
//! # Layout
//! - [`stack`]: [`LocalConfig`] and [`LocalStack`]: start, addresses, shutdown.
//! - `ingest`: the thread that turns the broker's telemetry into committed batches, then
//!   acks, commands and alarms.
//! - [`store`]: [`SqliteStore`] (readings, device states, decisions) and [`LocalStore`].
//! - [`archive`]: [`FileArchive`], archive objects as files under S3-style keys;
//!   [`buffer`]: coalescing consecutive batches' objects into one file.
//! - [`auth`]: the credentials the stack issues ([`Keys`]) and who a client is
//!   ([`LocalAuthenticator`]); the rules are `fleet_core::access`.
//! - [`certs`]: the local CA and certificates for mutual TLS.
//! - [`metrics`]: Prometheus counters; [`emf`]: the EMF log files.
//! - `http`: the HTTP routes and who may use them; [`web_app`]: the built app, compressed
//!   and cached; [`page_config`]: what `/config.json` tells a page.
//!
//! # Key decision
//! A reading is acknowledged to its device only after the batch holding it is committed
//! (the broker's ingest acks, `fleet-broker`), and one thread owns the database, batching
//! whatever queued while it wrote the previous batch. So throughput comes from large
//! transactions, and `kill -9` at any moment loses no acknowledged reading: an
//! unacknowledged one is resent by its device and deduplicated by its key.

pub mod archive;
pub mod auth;
pub mod buffer;
pub mod certs;
pub mod emf;
mod http;
mod ingest;
pub mod metrics;
pub mod page_config;
pub mod stack;
pub mod store;
pub mod web_app;

pub use archive::FileArchive;
pub use auth::{Keys, LocalAuthenticator, Subject};
pub use certs::CertDir;
pub use ingest::Retention;
pub use page_config::{PageConfig, PageConfigError};
pub use stack::{LocalConfig, LocalStack, StartError};
pub use store::{LocalStore, SqliteStore};

/// Wall-clock time in ms since the Unix epoch: arrival times and the policy's clock, as
/// IoT Core's `timestamp()` would give them.
pub(crate) use fleet_clock::now_ms;
