//! The `nixwire` command line tool.
//!
//! Each top-level subcommand lives in its own module; `main` only parses the
//! arguments and dispatches.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod copy_cmd;
mod machines_cmd;
mod path_info_cmd;
mod ping_cmd;
mod remote;

/// nixwire: Nix remote-build plumbing.
#[derive(Debug, Parser)]
#[command(name = "nixwire", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Copy the closure of paths to or from a store, like `nix copy`
    /// (signatures are not checked).
    Copy(copy_cmd::CopyArgs),
    /// Read machines files and choose build machines.
    Machines(machines_cmd::MachinesArgs),
    /// Open a store and say what it announced in the handshake.
    Ping(ping_cmd::PingArgs),
    /// What a store knows of paths, as `nix path-info` prints it.
    PathInfo(path_info_cmd::PathInfoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Copy(args) => copy_cmd::run(args),
        Command::Machines(args) => machines_cmd::run(args),
        Command::Ping(args) => ping_cmd::run(args),
        Command::PathInfo(args) => path_info_cmd::run(args),
    }
}
