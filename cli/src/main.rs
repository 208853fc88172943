//! The `fleet` command: Fleet's native entry point.
//!
//! # Layout
//! - `args`: flags shared by subcommands (the original device's parameters).
//! - `demo`: the whole monitoring → remediation loop in one process, on a simulated clock.
//!
//! # Key decision
//! One binary with subcommands, so a user installs one thing. Each subcommand is a thin
//! front over the library crates (`fleet-core`, `fleet-pipeline`, `fleet-mqtt`): parsing
//! flags, printing, and pacing; no rule lives here.

mod args;
mod demo;

use std::process::ExitCode;

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
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}
