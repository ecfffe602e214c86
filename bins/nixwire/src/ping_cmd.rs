//! `nixwire ping STORE`: opens a store, completes the handshake and says
//! what the peer announced.

use std::process::ExitCode;

use clap::Args;
use nixwire_core::session::Protocol;

use crate::remote::{Remote, Runtime, one_line, options};

/// Arguments of `nixwire ping`.
#[derive(Debug, Args)]
pub(crate) struct PingArgs {
    /// The store: `ssh://HOST`, `ssh-ng://HOST`, `unix:///PATH`, `daemon`,
    /// `local`, `auto` or a chroot store's path.
    store: String,
    /// The runtime that drives the connection.
    #[arg(long, value_enum, default_value = "tokio")]
    runtime: Runtime,
}

/// Runs `nixwire ping`: exit 0 when the handshake succeeds, 1 when it does
/// not (the reason on stderr, one line).
pub(crate) fn run(args: PingArgs) -> ExitCode {
    let outcome = options().and_then(|options| {
        let remote = Remote::open(args.runtime, &args.store, &options).map_err(|e| one_line(&e))?;
        let info = remote.info().clone();
        // The handshake is what was asked; a failure to end cleanly after
        // it is said but does not change the answer.
        if let Err(e) = remote.close() {
            say!("nixwire: closing {}: {}", args.store, one_line(&e));
        }
        Ok(info)
    });
    let info = match outcome {
        Ok(info) => info,
        Err(e) => {
            say!("nixwire: cannot ping {}: {e}", args.store);
            return ExitCode::FAILURE;
        }
    };
    let protocol = match info.protocol {
        Protocol::Serve => "serve",
        Protocol::Worker => "worker",
    };
    println!("store: {}", args.store);
    println!(
        "protocol: {protocol} {} (the store announced {})",
        info.version, info.server_version
    );
    if let Some(version) = &info.daemon_version {
        println!("nix: {version}");
    }
    let trusted = match info.trusted {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not said",
    };
    println!("trusted: {trusted}");
    let features = if info.features.is_empty() {
        "none".to_owned()
    } else {
        info.features.join(" ")
    };
    println!("features: {features}");
    ExitCode::SUCCESS
}
