//! The serve protocol's connection errors.

use crate::nar::NarError;
use crate::wire::{DecodeError, Version};

/// Why a serve connection failed. After any of these the connection is
/// poisoned: every later call returns the same error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer's first bytes were not the protocol's magic. When the remote
    /// login shell prints something (an rc file's `echo`, a banner), that text
    /// shows up here.
    #[error(
        "expected the serve protocol's magic {expected:#x} from the {peer}, found {found} \
         (if this is text, the remote shell printed it before nix-store started)"
    )]
    WrongMagic {
        /// `"server"` or `"client"`.
        peer: &'static str,
        /// The magic that should have come.
        expected: u64,
        /// The first bytes received, as text where printable.
        found: String,
    },
    /// The peer announced a version this side will not speak.
    #[error("the {peer} announced serve protocol {found}; expected {expected}")]
    UnsupportedVersion {
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
        /// What was being decoded ("the reply to QueryPathInfos (request 3)").
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
    /// The server sent bytes when no request was waiting for a reply.
    #[error("the server sent {count} bytes while no request was waiting for a reply: {bytes}")]
    UnexpectedBytes {
        /// How many bytes are waiting.
        count: usize,
        /// The first of them.
        bytes: String,
    },
    /// The peer closed the stream while something was still owed.
    #[error("the connection closed {during}")]
    Closed {
        /// What was still owed.
        during: String,
    },
    /// A deadline from [`ClientConfig`](super::ClientConfig) passed.
    #[error("timed out after {seconds:.1}s {during}")]
    TimedOut {
        /// What was being waited for.
        during: String,
        /// How long.
        seconds: f64,
    },
    /// A request was abandoned after it had started; the stream can no longer be
    /// followed.
    #[error("request {id} ({command}) was abandoned half-way; the connection cannot be reused")]
    Abandoned {
        /// The request.
        id: u64,
        /// Its command.
        command: &'static str,
    },
    /// A stream body (NAR) given for a request does not fit it.
    #[error("request {id}: {why}")]
    Body {
        /// The request.
        id: u64,
        /// What is wrong.
        why: String,
    },
    /// The caller used the connection out of order (replying to a request that
    /// is not next, streaming for a request that takes no stream).
    #[error("{0}")]
    Misuse(String),
}

impl Error {
    /// A decode error with what was being decoded.
    pub(crate) fn decode(what: impl Into<String>, source: DecodeError) -> Self {
        Self::Decode {
            what: what.into(),
            source,
        }
    }
}

/// Checks a peer's announced version: major 2, at least `minimum`.
pub(crate) fn check_version(
    peer: &'static str,
    raw: u64,
    minimum: Version,
) -> Result<Version, Error> {
    let expected = || format!("major version 2 and at least {minimum}");
    let Some(version) = Version::from_wire(raw) else {
        return Err(Error::UnsupportedVersion {
            peer,
            found: format!("{raw:#x}"),
            expected: expected(),
        });
    };
    if version.major != super::messages::MAJOR || version < minimum {
        return Err(Error::UnsupportedVersion {
            peer,
            found: version.to_string(),
            expected: expected(),
        });
    }
    Ok(version)
}

/// Checks the first 8 bytes a peer sent against its magic: `Ok(false)` while
/// fewer than 8 have come, and the whole of what came in the error, so that
/// text printed by a login shell can be read there.
pub(crate) fn check_magic(
    peer: &'static str,
    expected: u64,
    pending: &[u8],
) -> Result<bool, Error> {
    match pending.get(..8) {
        None => Ok(false),
        Some(magic) if magic == expected.to_le_bytes() => Ok(true),
        Some(_) => Err(Error::WrongMagic {
            peer,
            expected,
            found: crate::wire::show_bytes(pending),
        }),
    }
}
