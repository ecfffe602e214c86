//! The checks every handshake makes, for either protocol.

use super::{Error, ErrorKind, Phase};
use crate::wire::{Protocol, Version};

/// Checks a peer's announced version: protocol `P`'s major, at least
/// `minimum`.
pub(crate) fn check_version<P: Protocol>(
    peer: &'static str,
    raw: u64,
    minimum: Version,
) -> Result<Version, Error> {
    let unsupported = |found: String| {
        Error::new(
            ErrorKind::UnsupportedVersion {
                protocol: P::NAME,
                peer,
                found,
                expected: format!("major version {} and at least {minimum}", P::MAJOR),
            },
            Phase::Handshake,
        )
    };
    let Some(version) = Version::from_wire(raw) else {
        return Err(unsupported(format!("{raw:#x}")));
    };
    if version.major != P::MAJOR || version < minimum {
        return Err(unsupported(version.to_string()));
    }
    Ok(version)
}

/// Checks the first 8 bytes a peer sent against protocol `P`'s magic:
/// `Ok(false)` while fewer than 8 have come, and the whole of what came in
/// the error, so that text printed by a login shell can be read there.
pub(crate) fn check_magic<P: Protocol>(
    peer: &'static str,
    expected: u64,
    pending: &[u8],
) -> Result<bool, Error> {
    match pending.get(..8) {
        None => Ok(false),
        Some(magic) if magic == expected.to_le_bytes() => Ok(true),
        Some(_) => Err(Error::new(
            ErrorKind::WrongMagic {
                protocol: P::NAME,
                peer,
                expected,
                found: crate::wire::show_bytes(pending),
            },
            Phase::Handshake,
        )),
    }
}
