//! The worker protocol (`nix-daemon`, the transport of `ssh-ng://`,
//! `unix://` and `daemon` stores), from 1.21 (Nix 2.3) to 1.38 with the
//! feature exchange.
//!
//! - [`handshake`]: the handshake's messages, declared like every other
//!   message.
//! - [`stderr`]: the STDERR stream every operation's answer starts with: log
//!   messages, activities and their results, pulled body requests, and the
//!   end (`LAST`, then the reply) or the failure (`ERROR`, and no reply).
//! - [`messages`]: the requests and replies, and this protocol's layouts of
//!   the shared store types. How each field travels depends on the
//!   negotiated version and features, both in the [`Cx`](crate::wire::Cx)
//!   every layout is used with.
//! - The operation table (`ops.rs`, re-exported here): one row per
//!   operation, from which [`Command`], [`Request`], [`Reply`], the typed
//!   [`Op`] and [`body_at`] come.
//! - [`features`]: the names of the features peers agree on at 1.38, and
//!   what each changes.
//! - [`Client`] and [`Server`]: the two ends, each a
//!   [`Connection`](crate::conn::Connection), of the same shape as the serve
//!   protocol's.
//!
//! # Differences from the serve protocol a driver sees
//! - Logs arrive in the stream itself, as [`ClientEvent::Log`] (with the
//!   request they belong to, like serve logs) and [`ClientEvent::Activity`].
//! - A daemon refuses one operation with `STDERR_ERROR`: that request's
//!   [`ClientEvent::Failed`], and the connection goes on.
//! - Bodies are framed (length-prefixed pieces ended by an empty one) from
//!   1.23; before, the daemon pulls them (`STDERR_READ`), so a
//!   [`ClientEvent::BodyWanted`] comes with the most the daemon wants now.
//!
//! # A worker client's run loop
//!
//! The loop is the one of every connection (see the [crate docs](crate));
//! here against the core's own server, which answers `IsValidPath` itself:
//!
//! ```
//! use std::time::Instant;
//! use nixwire_core::conn::Connection;
//! use nixwire_core::worker::messages::IsValidPath;
//! use nixwire_core::worker::{
//!     Client, ClientConfig, ClientEvent, Reply, Request, Server, ServerConfig, ServerEvent,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = Instant::now();
//! let mut client = Client::new(ClientConfig::default(), now);
//! let mut server = Server::new(ServerConfig::default(), now);
//! let path = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12".parse()?;
//! let id = client.request(now, IsValidPath { path })?;
//! let valid = 'run: loop {
//!     while let Some(bytes) = client.poll_transmit() {
//!         server.handle_input(now, bytes)?;
//!     }
//!     while let Some(event) = server.poll_event() {
//!         if let ServerEvent::Request { id, request: Request::IsValidPath(_) } = event {
//!             server.log(id, "checking\n")?;
//!             server.reply(id, &Reply::IsValidPath(true))?;
//!         }
//!     }
//!     while let Some(bytes) = server.poll_transmit() {
//!         client.handle_input(now, bytes)?;
//!     }
//!     while let Some(event) = client.poll_event() {
//!         match event {
//!             ClientEvent::Log(log) => assert_eq!(&log.text[..], b"checking\n"),
//!             ClientEvent::Reply { id: done, reply: Reply::IsValidPath(v) } if done == id => {
//!                 break 'run v;
//!             }
//!             ClientEvent::Failed { error, .. } => return Err(error.into()),
//!             _ => {}
//!         }
//!     }
//! };
//! assert!(valid);
//! # Ok(())
//! # }
//! ```

mod client;
pub mod handshake;
pub mod messages;
mod ops;
mod server;
pub mod stderr;

pub use client::{Client, ClientConfig, ClientEvent};
pub use ops::*;
pub use server::{Server, ServerConfig, ServerEvent};

use crate::wire::Version;

/// The newest worker protocol version this crate speaks (Nix 2.26 and
/// later). (Nix's `PROTOCOL_VERSION` macro says 1.39, but every Nix up to
/// 2.35 negotiates 1.38 and adds features instead.)
pub const LATEST: Version = Version::new(1, 38);

/// The oldest worker protocol version this crate speaks (Nix 2.3's).
pub const MINIMUM: Version = Version::new(1, 21);

/// The features peers may agree on in the 1.38 handshake (each side sends
/// its set; both use the intersection), and what each changes on the wire.
/// Features are not ordered; a field or an operation gated by one exists
/// only when both sides named it.
pub mod features {
    /// Upstream Nix (2.35+). Derivation outputs are named by the
    /// derivation's store path and the output name instead of
    /// `<drv hash>!<output>`: `DrvOutput` becomes two strings,
    /// `BuildResult`'s built outputs a map from output name to unkeyed
    /// realisation (instead of JSON), `RegisterDrvOutput` structured fields,
    /// and `QueryRealisation`'s reply an optional unkeyed realisation.
    /// Without it, newer Nix refuses `QueryRealisation` and
    /// `RegisterDrvOutput`.
    pub const REALISATION_WITH_PATH_NOT_HASH: &str = "realisation-with-path-not-hash";

    /// Upstream Nix (2.35+). `CollectGarbage` takes the paths to delete as
    /// a tag: "the whole store", or "these paths, and whether to delete
    /// their referrers" (without it, a set of paths, empty for the whole
    /// store).
    pub const DELETE_DEAD_SPECIFIC_REFERRERS: &str = "delete-dead-specific-referrers";

    /// Upstream Nix, inside builds with `builder-rpc-v0` or recursive Nix:
    /// the client sends no `SetOptions`.
    pub const DISABLE_SET_OPTIONS: &str = "disable-set-options";

    /// Upstream Nix, inside builds: operation 1001 (`AddToStoreScanning`)
    /// exists.
    pub const ADD_TO_STORE_SCANNING: &str = "add-to-store-scanning";

    /// Upstream Nix, inside builds with `builder-rpc-v0`: operation 1000
    /// (`SubmitOutput`) exists.
    pub const SUBMIT_OUTPUT: &str = "submit-output";

    /// Determinate Nix: operation 48 (`QueryActiveBuilds`) exists.
    pub const QUERY_ACTIVE_BUILDS: &str = "queryActiveBuilds";

    /// Determinate Nix, offered only with its experimental `provenance`
    /// feature on: every `UnkeyedValidPathInfo` ends with a JSON string
    /// (empty for none), and so do `AddToStoreNar`'s header (after the
    /// content address) and `AddToStore`'s 1.25 header (after `repair`).
    pub const PROVENANCE: &str = "provenance";

    /// Determinate Nix: the path infos inside `AddMultipleToStore`'s body
    /// are encoded at the negotiated version and features instead of at
    /// 1.16 (so with `provenance`, they carry it).
    pub const VERSIONED_ADD_TO_STORE_MULTIPLE: &str = "versionedAddToStoreMultiple";

    /// Determinate Nix: operation 49 (`AddTempRoots`) exists.
    pub const ADD_TEMP_ROOTS: &str = "addTempRoots";

    /// Determinate Nix: operation 50 (`QueryPathInfos`) exists.
    pub const QUERY_PATH_INFOS: &str = "queryPathInfos";

    /// Every feature named here.
    pub const ALL: &[&str] = &[
        REALISATION_WITH_PATH_NOT_HASH,
        DELETE_DEAD_SPECIFIC_REFERRERS,
        DISABLE_SET_OPTIONS,
        ADD_TO_STORE_SCANNING,
        SUBMIT_OUTPUT,
        QUERY_ACTIVE_BUILDS,
        PROVENANCE,
        VERSIONED_ADD_TO_STORE_MULTIPLE,
        ADD_TEMP_ROOTS,
        QUERY_PATH_INFOS,
    ];
}
