//! The serve handshake's checks, shared by both ends.

use crate::conn::{Error, ErrorKind, Phase};
use crate::wire::{Protocol, Serve, Version};

/// Checks a peer's announced version: this protocol's major, at least
/// `minimum`.
pub(crate) fn check_version(
    peer: &'static str,
    raw: u64,
    minimum: Version,
) -> Result<Version, Error> {
    let unsupported = |found: String| {
        Error::new(
            ErrorKind::UnsupportedVersion {
                protocol: Serve::NAME,
                peer,
                found,
                expected: format!("major version {} and at least {minimum}", Serve::MAJOR),
            },
            Phase::Handshake,
        )
    };
    let Some(version) = Version::from_wire(raw) else {
        return Err(unsupported(format!("{raw:#x}")));
    };
    if version.major != Serve::MAJOR || version < minimum {
        return Err(unsupported(version.to_string()));
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
        Some(_) => Err(Error::new(
            ErrorKind::WrongMagic {
                protocol: Serve::NAME,
                peer,
                expected,
                found: crate::wire::show_bytes(pending),
            },
            Phase::Handshake,
        )),
    }
}
