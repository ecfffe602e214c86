//! The `nixwire` command line tool.
//!
//! Each top-level subcommand lives in its own module; `main` only parses the
//! arguments and dispatches.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod machines_cmd;

/// nixwire: Nix remote-build plumbing.
#[derive(Debug, Parser)]
#[command(name = "nixwire", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read machines files and choose build machines.
    Machines(machines_cmd::MachinesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Machines(args) => machines_cmd::run(args),
    }
}
