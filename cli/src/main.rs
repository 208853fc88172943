//! The `fleet` command: Fleet's native entry point.
//!
//! # Layout
//! - `args`: flags shared by subcommands (the original device's parameters).
//! - `aws`: device identities on AWS IoT Core (`fleet aws provision`/`deprovision`), and
//!   the web app on a stack's page hosting (`fleet aws publish-page`).
//! - `certs`: the per-device certificate directory `aws` writes and `sim` reads.
//! - `demo`: the whole monitoring → remediation loop in one process, on a simulated clock.
//! - `local`: the local stack (`fleet-local`) and its device certificates.
//! - `logging`: JSON or text logs, with the original CLI's levels.
//! - `sim`: a fleet of devices over real MQTT (`fleet-client`); `shard`: which part of a
//!   fleet one `sim` process runs; `metrics`: what it counts and measures, and its
//!   Prometheus endpoint; `report`: its JSON report and `fleet report merge`.
//! - `bench`: load through a `fleet local` process, measured in its database.
//!
//! # Key decision
//! One binary with subcommands, so a user installs one thing. Each subcommand is a thin
//! front over the library crates (`fleet-core`, `fleet-pipeline`, `fleet-mqtt`): parsing
//! flags, printing, and pacing; no rule lives here.

mod args;
mod aws;
mod bench;
mod certs;
mod demo;
mod links;
mod local;
mod logging;
mod metrics;
mod report;
mod shard;
mod sim;

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the ingest path makes many small short-lived
/// allocations (SQLite's page cache, the core's rows and strings) that glibc serves from
/// fragmented bins; profiling put 35–40% of the ingest thread in `malloc_consolidate` and
/// `unlink_chunk` under glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Fleet: a serverless IoT monitoring → remediation stack, in Rust.
///
/// Virtual devices publish temperature and humidity; a worker stores and measures every
/// reading; a remediation policy sends commands back; the devices' curves bend.
#[derive(Debug, Parser)]
#[command(name = "fleet", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole loop in one process on a simulated clock and print what happens.
    ///
    /// A seeded fleet publishes readings; the worker plan, the remediation policy and the
    /// alarms run exactly as in the local stack and the Lambdas, against in-memory stores;
    /// commands go back to the devices. Prints each command and alarm change, then a
    /// summary per device.
    Demo(Box<demo::DemoArgs>),
    /// Run the local stack: an MQTT broker (TCP, WebSocket, mutual TLS), the worker,
    /// remediation and alarms on a durable SQLite store, archive files, Prometheus metrics,
    /// and the web app over HTTP. Everything binds loopback unless --allow-remote.
    Local(Box<local::LocalArgs>),
    /// Run a fleet of virtual devices over MQTT: the original `monitoring` CLI (same flags,
    /// environment variables and defaults), grown to fleets, with QoS 1 telemetry, commands
    /// applied as they arrive, reconnects, and a summary at the end.
    Sim(Box<sim::SimArgs>),
    /// Benchmark the local stack: N devices at a total rate through `fleet local`; prints
    /// readings/s stored (counted in its database), the remediation round trip p50/p99,
    /// the stack's peak memory, and losses.
    Bench(Box<bench::BenchArgs>),
    /// Devices on AWS IoT Core: `provision` creates things with their own certificates
    /// and writes the files `fleet sim --cert-dir` loads; `deprovision` removes them.
    /// `publish-page` uploads the web app to a stack's page hosting.
    Aws(aws::AwsArgs),
    /// Reports of `fleet sim --report`: `merge` combines a fleet's shards' reports into
    /// one (counters summed, HDR histograms added exactly) and prints the summary.
    Report(report::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Local(args) => local::run(*args),
        Command::Sim(args) => sim::run(*args),
        Command::Bench(args) => bench::run(*args),
        Command::Aws(args) => aws::run(args),
        Command::Report(args) => report::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}
