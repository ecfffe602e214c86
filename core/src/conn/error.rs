//! Connection errors: what went wrong, its class, and where.

use std::fmt;
use std::time::Duration;

use super::RequestId;
use crate::nar::NarError;
use crate::wire::{DecodeError, NixString};

/// What a host does about an error, without matching its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The caller used the connection wrongly; nothing changed. Fix the
    /// caller; the machine is fine.
    Usage,
    /// The transport failed: the peer went away or the connection was
    /// already closed. Retry elsewhere; back the machine off.
    Transport,
    /// The peer sent what the protocol does not allow. Retry elsewhere; back
    /// the machine off.
    Protocol,
    /// A deadline passed. Retry elsewhere; back the machine off.
    Timeout,
    /// The peer refused one request (or does not have the operation); the
    /// connection goes on. Never a reason to back the machine off.
    Refused,
    /// The host gave up on a request half-way, so the connection had to be
    /// dropped. The machine is fine.
    Cancelled,
}

/// Where in a connection's life an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Before the handshake completed.
    Handshake,
    /// Sending a request or its body.
    Sending,
    /// Waiting for or reading a reply.
    Receiving,
    /// With no request under way.
    Idle,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Handshake => "handshake",
            Self::Sending => "sending",
            Self::Receiving => "receiving",
            Self::Idle => "idle",
        })
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The peer's first bytes were not the protocol's magic. When the remote
    /// login shell prints something (an rc file's `echo`, a banner), that
    /// text shows up here.
    #[error(
        "expected the {protocol} protocol's magic {expected:#x} from the {peer}, found {found} \
         (if this is text, the remote shell printed it before Nix started)"
    )]
    WrongMagic {
        /// `"serve"` or `"worker"`.
        protocol: &'static str,
        /// `"server"` or `"client"`.
        peer: &'static str,
        /// The magic that should have come.
        expected: u64,
        /// The first bytes received, as text where printable.
        found: String,
    },
    /// The peer announced a version this side will not speak.
    #[error("the {peer} announced {protocol} protocol {found}; expected {expected}")]
    UnsupportedVersion {
        /// `"serve"` or `"worker"`.
        protocol: &'static str,
        /// `"server"` or `"client"`.
        peer: &'static str,
        /// What it announced (`major.minor`, or the raw number).
        found: String,
        /// What would have been accepted.
        expected: String,
    },
    /// Bytes that do not decode as what was expected at this point.
    #[error("decoding {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The decoder's account.
        source: DecodeError,
    },
    /// A NAR that breaks the format.
    #[error("{what}: {source}")]
    Nar {
        /// Whose NAR.
        what: String,
        /// The framer's account.
        source: NarError,
    },
    /// The peer sent bytes when nothing was owed.
    #[error("the {peer} sent {count} bytes while nothing was owed: {bytes}")]
    UnexpectedBytes {
        /// `"server"` or `"client"`.
        peer: &'static str,
        /// How many bytes are waiting.
        count: usize,
        /// The first of them.
        bytes: String,
    },
    /// A request body that does not fit its request, after part of it was
    /// sent: the stream can no longer be followed.
    #[error("{why}")]
    Body {
        /// What is wrong.
        why: String,
    },
    /// The peer closed the stream while something was still owed.
    #[error("the connection closed {during}")]
    Closed {
        /// What was still owed.
        during: String,
    },
    /// The connection is closed (the peer ended it cleanly, or it broke
    /// before); nothing more can be asked of it.
    #[error("the connection is closed")]
    NotOpen,
    /// A deadline passed.
    #[error("timed out after {:.1}s {during}", after.as_secs_f64())]
    TimedOut {
        /// What was being waited for.
        during: String,
        /// The limit that passed.
        after: Duration,
    },
    /// A request was abandoned after it had started; the stream can no
    /// longer be followed.
    #[error("abandoned half-way; the connection cannot be reused")]
    Abandoned,
    /// The negotiated version does not have the operation.
    #[error("{op} needs {protocol} protocol {needs}, and {version} was negotiated")]
    Unsupported {
        /// `"serve"` or `"worker"`.
        protocol: &'static str,
        /// The operation.
        op: &'static str,
        /// The version range it needs.
        needs: String,
        /// The negotiated version.
        version: String,
    },
    /// The peer refused the request, with its message.
    #[error("the remote refused it: {message}")]
    Remote {
        /// The peer's message, as it sent it.
        message: NixString,
    },
    /// The caller used the connection wrongly; nothing changed.
    #[error("{0}")]
    Misuse(String),
}

/// An error with its context: which request, which operation, in which
/// phase, after how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// What went wrong (boxed: errors travel through every `Result` of a
    /// connection, and most of them are `Ok`).
    pub kind: Box<ErrorKind>,
    /// The request it concerns, if one.
    pub request: Option<RequestId>,
    /// That request's operation, as Nix names it.
    pub op: Option<&'static str>,
    /// Where in the connection's life.
    pub phase: Phase,
    /// How long the request had been under way, when known.
    pub elapsed: Option<Duration>,
    /// What the peer wrote on its stderr before the handshake completed
    /// (ssh's own complaints, a login shell's noise), when the connection
    /// broke before it did: usually the real reason.
    pub peer_said: Option<String>,
}

impl Error {
    /// An error of `kind` in `phase`, about no request yet.
    pub fn new(kind: ErrorKind, phase: Phase) -> Self {
        Self {
            kind: Box::new(kind),
            request: None,
            op: None,
            phase,
            elapsed: None,
            peer_said: None,
        }
    }

    /// A caller's mistake.
    pub fn misuse(why: impl Into<String>) -> Self {
        Self::new(ErrorKind::Misuse(why.into()), Phase::Idle)
    }

    /// The refusal of an operation the negotiated version does not have.
    pub fn unsupported<P: crate::wire::Protocol>(
        op: &'static str,
        since: crate::wire::Version,
        version: crate::wire::Version,
    ) -> Self {
        let kind = ErrorKind::Unsupported {
            protocol: P::NAME,
            op,
            needs: format!("{since} or later"),
            version: version.to_string(),
        };
        Self::new(kind, Phase::Sending)
    }

    /// The same error, about request `id` of operation `op`.
    #[must_use]
    pub fn about(mut self, id: RequestId, op: &'static str) -> Self {
        self.request = Some(id);
        self.op = Some(op);
        self
    }

    /// The same error, with how long its request had been under way.
    #[must_use]
    pub fn after(mut self, elapsed: Duration) -> Self {
        self.elapsed = Some(elapsed);
        self
    }

    /// The same error, with what the peer wrote on its stderr before the
    /// handshake (ignored when that is only whitespace).
    #[must_use]
    pub fn with_peer_said(mut self, text: &str) -> Self {
        let text = text.trim();
        if !text.is_empty() {
            self.peer_said = Some(text.to_owned());
        }
        self
    }

    /// What a host does about it.
    pub fn class(&self) -> ErrorClass {
        match &*self.kind {
            ErrorKind::Misuse(_) => ErrorClass::Usage,
            ErrorKind::Abandoned => ErrorClass::Cancelled,
            ErrorKind::Closed { .. } | ErrorKind::NotOpen => ErrorClass::Transport,
            ErrorKind::TimedOut { .. } => ErrorClass::Timeout,
            ErrorKind::Unsupported { .. } | ErrorKind::Remote { .. } => ErrorClass::Refused,
            ErrorKind::WrongMagic { .. }
            | ErrorKind::UnsupportedVersion { .. }
            | ErrorKind::Decode { .. }
            | ErrorKind::Nar { .. }
            | ErrorKind::UnexpectedBytes { .. }
            | ErrorKind::Body { .. } => ErrorClass::Protocol,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(id), Some(op)) = (self.request, self.op) {
            write!(f, "request {id} ({op}): ")?;
        }
        write!(f, "{}", self.kind)?;
        if let Some(said) = &self.peer_said {
            write!(f, "; the remote said: {said}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            ErrorKind::Decode { source, .. } => Some(source),
            ErrorKind::Nar { source, .. } => Some(source),
            _ => None,
        }
    }
}
