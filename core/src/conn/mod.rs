//! What every connection shares, whichever the protocol and the side: the
//! [`Connection`] contract a runtime drives, request ids, errors and their
//! classes, outgoing bytes as a queue of [`Bytes`], and the kinds of request
//! bodies and replies an operation table names.
//!
//! # Three kinds of error
//! - A **caller's mistake** (a body for a request that takes none, a reply
//!   out of order, a request on a closed connection) is returned from the
//!   call and changes nothing: the connection goes on.
//! - A **remote's refusal of one request** is that request's failed reply
//!   (an event naming the request); the connection goes on.
//! - A **broken connection** (bytes that do not decode, the peer gone, a
//!   deadline passed) poisons it: it is reported once as an event, and
//!   every later call returns the same error.
//!
//! Every [`Error`] carries a [`ErrorClass`] a host can act on without
//! matching strings, and typed context: the request, its operation, the
//! phase, how long it had been waiting.

mod book;
mod endpoint;
mod error;
mod handshake;
mod ops;
mod outbox;

use std::time::Instant;

use bytes::Bytes;

pub(crate) use book::{Book, Incoming, OpCode, OpRequest, decode_in};
pub(crate) use endpoint::{Deadline, Endpoint};
pub use error::{Error, ErrorClass, ErrorKind, Phase};
pub(crate) use handshake::{check_magic, check_version};
pub(crate) use ops::{feature_of, operations};
pub use outbox::Outbox;

/// Names a request on one connection, in the order requests were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A piece of log, from either protocol, with the request it belongs to, so
/// that a host handles the logs of `ssh://` and `ssh-ng://` builds alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// The request under way when it came, if one was.
    pub request: Option<RequestId>,
    /// Where it came from.
    pub source: LogSource,
    /// The text, as it came (bytes: a builder may print anything).
    pub text: Bytes,
}

/// Where a [`Log`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogSource {
    /// The peer's stderr (the serve protocol's build logs).
    Stderr,
    /// A log message of the worker protocol (`STDERR_NEXT`).
    Message,
    /// A line of a build's output (a worker `BuildLogLine` result).
    Build {
        /// The build's activity.
        activity: u64,
    },
    /// A line of the post-build hook's output.
    PostBuild {
        /// The hook's activity.
        activity: u64,
    },
}

/// What follows a request's header on the wire, as an operation table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyKind {
    /// Nothing.
    None,
    /// A NAR of exactly the size its header states (serve `AddToStoreNar`).
    SizedNar,
    /// NARs each followed by their metadata, in the export format (serve
    /// `ImportPaths`).
    Export,
    /// A NAR with no length in front, found to end by its grammar.
    BareNar,
    /// Data in length-prefixed frames ended by an empty frame (worker ≥ 1.23).
    Framed,
    /// Data the server pulls in pieces it asks for (worker `STDERR_READ`).
    Pulled,
}

/// How a reply travels, as an operation table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyKind {
    /// A message decoded by its layout.
    Message,
    /// A NAR with no length in front, streamed out as chunks.
    BareNar,
}

/// The contract between a connection and the runtime that drives it: bytes
/// and time in, bytes, events and deadlines out. Every client and server
/// implements it, so a runtime writes one driver loop (see the
/// [crate documentation](crate) for that loop).
pub trait Connection {
    /// What the connection reports.
    type Event;

    /// Takes bytes the peer sent. Buffering without producing anything
    /// ("need more bytes") is normal. An error means the connection broke
    /// (or had already broken).
    fn handle_input(&mut self, now: Instant, data: Bytes) -> Result<(), Error>;

    /// Takes bytes the peer wrote to its stderr (logs; for the serve
    /// protocol, build logs). Logs are passed on even after an error: they
    /// are often what explains it.
    fn handle_stderr(&mut self, now: Instant, data: Bytes);

    /// The peer's output has ended. Fine when nothing is owed; the
    /// connection breaks otherwise.
    fn handle_eof(&mut self, now: Instant) -> Result<(), Error>;

    /// The runtime wrote `n` bytes of what [`poll_transmit`](Self::poll_transmit)
    /// gave to the peer. A peer taking bytes is progress: a long upload
    /// (a NAR sent over a slow link, with nothing coming back until it
    /// ends) must not trip a stall deadline while it moves, and a peer
    /// that stops taking them must. Default: nothing.
    fn handle_sent(&mut self, now: Instant, n: usize) {
        let _ = (now, n);
    }

    /// Checks the deadlines against `now`.
    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error>;

    /// The next bytes to send, if any: write them all, then ask again.
    #[must_use]
    fn poll_transmit(&mut self) -> Option<Bytes>;

    /// The next event, if any.
    #[must_use]
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if
    /// a deadline is running.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;
}
