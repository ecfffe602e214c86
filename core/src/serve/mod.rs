//! The serve protocol (`nix-store --serve`, the transport of `ssh://` stores
//! and of Hydra's queue runner until 2026).
//!
//! - [`messages`]: every message, declared once with its version gates.
//! - [`request`]: requests (a command code and its message) and the replies
//!   they own.
//! - [`Client`] and [`Server`]: the two ends as state machines of the same
//!   shape: bytes in with `handle_input`, bytes out with `poll_transmit`, what
//!   happened with `poll_event`.
//!
//! # The conversation
//! The client sends its magic and version; the server answers with its magic
//! and version; both then speak min(client, server). After that the client
//! sends commands and the server answers each, in order, with no framing: a
//! reply is known by the request it answers. `DumpStorePath`'s reply is a bare
//! NAR, found to end by [`NarFramer`](crate::nar::NarFramer). Build logs do not
//! travel in this stream at all: the server writes them to its stderr, which a
//! client takes through [`Client::handle_stderr`].

mod client;
mod endpoint;
mod error;
pub mod messages;
pub mod request;
mod server;

pub use client::{Client, ClientConfig, ClientEvent};
pub use error::Error;
pub use request::{ImportPaths, Reply, Request};
pub use server::{Server, ServerConfig, ServerEvent};

/// Names a request on one connection, in the order requests were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);
