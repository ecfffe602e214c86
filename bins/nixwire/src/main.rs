//! The `nixwire` command line tool.
//!
//! Each top-level subcommand lives in its own module; `main` only parses the
//! arguments and dispatches.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `eprintln!` that never panics: a host that closes nixwire's stderr (a
/// queue runner that stopped reading) must not kill a copy or a build half
/// way, so what cannot be written is dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod build_cmd;
mod copy_cmd;
mod decode_cmd;
mod local_nar;
mod machines_cmd;
mod path_info_cmd;
mod ping_cmd;
mod record_cmd;
mod remote;
mod serve_cmd;

/// nixwire: Nix remote-build plumbing.
#[derive(Debug, Parser)]
#[command(name = "nixwire", version, about)]
struct Cli {
    /// More detail on stderr: -v the steps of each job (connections,
    /// phases, timings), -vv every request, -vvv everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build derivations and their missing inputs on build machines, and
    /// copy the outputs here, like `nix-build -j0 --builders`.
    Build(build_cmd::BuildArgs),
    /// Copy the closure of paths to or from a store, like `nix copy`
    /// (signatures are not checked).
    Copy(copy_cmd::CopyArgs),
    /// Print a captured session (a conformance transcript) as an annotated
    /// conversation, decoded by the core's state machines.
    Decode(decode_cmd::DecodeArgs),
    /// Read machines files and choose build machines.
    Machines(machines_cmd::MachinesArgs),
    /// Open a store and say what it announced in the handshake.
    Ping(ping_cmd::PingArgs),
    /// What a store knows of paths, as `nix path-info` prints it.
    PathInfo(path_info_cmd::PathInfoArgs),
    /// Answer the serve protocol on stdin and stdout through the local
    /// store: a drop-in for `nix-store --serve [--write]`.
    Serve(serve_cmd::ServeArgs),
    /// Run a Nix remote program (`nix-store --serve`, `nix-daemon --stdio`)
    /// and record its session into a transcript, passing it through.
    Record(record_cmd::RecordArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Build(args) => build_cmd::run(args),
        Command::Copy(args) => copy_cmd::run(args),
        Command::Decode(args) => decode_cmd::run(args),
        Command::Machines(args) => machines_cmd::run(args),
        Command::Ping(args) => ping_cmd::run(args),
        Command::PathInfo(args) => path_info_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Record(args) => record_cmd::run(args),
    }
}
