//! The worker protocol (`nix-daemon`, the transport of `ssh-ng://`,
//! `unix://` and `daemon` stores), from 1.21 (Nix 2.3) to 1.38 with the
//! feature exchange.
//!
//! - [`handshake`]: the handshake's messages, declared like every other
//!   message.
//! - [`stderr`]: the STDERR stream every operation's answer starts with: log
//!   messages, activities and their results, pulled body requests, and the
//!   end (`LAST`, then the reply) or the failure (`ERROR`, and no reply).
//! - [`messages`] and the operation table below: every operation's request
//!   and reply.
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
/// later).
pub const LATEST: Version = Version::new(1, 38);

/// The oldest worker protocol version this crate speaks (Nix 2.3's).
pub const MINIMUM: Version = Version::new(1, 21);
