//! Store paths as base names (`<hash>-<name>`), and output names.
//!
//! The rules are Nix's (`src/libstore/path.cc`, `checkName` and
//! `StorePath::StorePath`):
//!
//! - the hash part is exactly [`HASH_PART_LEN`] (32) characters of the
//!   [`nix32`] alphabet `0123456789abcdfghijklmnpqrsvwxyz`;
//! - a `-` follows it (Nix only checks this since a 2026 commit; older Nix
//!   accepted any byte there, but no Nix ever made such a path);
//! - the name is 1 to [`MAX_NAME_LEN`] (211) bytes of `[A-Za-z0-9+-._?=]`;
//! - the name is not `.` or `..`, and does not start with `.-` or `..-`
//!   (its first dash-separated component is not `.` or `..`; Nix 2.21 and
//!   later). Other leading dots are fine: `.gitignore`, `...`, `...-`.
//!
//! Output names (`out`, `dev`) are checked by the same name rules where Nix
//! checks them (`OutputsSpec::parse` calls `checkName` on each).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;

use super::{byte_repr, lossy, nix32};

/// Length of a store path's hash part, in Nix32 characters (160 bits).
pub const HASH_PART_LEN: usize = 32;

/// The longest name a store path may have, in bytes (`StorePath::MaxPathLen`).
pub const MAX_NAME_LEN: usize = 211;

/// The suffix of a derivation's store path name.
pub const DRV_EXTENSION: &str = ".drv";

/// Why a name (of a store path or an output) is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("the name is empty: expected 1 to {MAX_NAME_LEN} bytes")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("name '{name}' is {len} bytes long: expected at most {MAX_NAME_LEN}")]
    TooLong {
        /// The name (lossily decoded).
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name is `.` or `..`.
    #[error("name '{name}' is not valid: '.' and '..' are not names")]
    DotOrDotDot {
        /// The name.
        name: String,
    },
    /// The name starts with `.-` or `..-`.
    #[error(
        "name '{name}' is not valid: its first dash-separated component must not be '{component}'"
    )]
    DotComponent {
        /// The name (lossily decoded).
        name: String,
        /// `.` or `..`.
        component: &'static str,
    },
    /// A byte outside `[A-Za-z0-9+-._?=]`.
    #[error(
        "name '{name}' contains {} at byte {position}: expected only letters, digits and '+-._?='",
        byte_repr(*found)
    )]
    InvalidChar {
        /// The name (lossily decoded).
        name: String,
        /// Byte offset of the offending byte in the name.
        position: usize,
        /// The offending byte.
        found: u8,
    },
}

/// Whether `c` may appear in a store path name.
pub const fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.' | b'_' | b'?' | b'=')
}

/// Checks a name by Nix's `checkName` rules, in Nix's order: empty, too long,
/// the leading-dot rules, then each byte.
pub fn check_name(name: &[u8]) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            name: lossy(name),
            len: name.len(),
        });
    }
    match name {
        b"." | b".." => {
            return Err(NameError::DotOrDotDot { name: lossy(name) });
        }
        [b'.', b'-', ..] => {
            return Err(NameError::DotComponent {
                name: lossy(name),
                component: ".",
            });
        }
        [b'.', b'.', b'-', ..] => {
            return Err(NameError::DotComponent {
                name: lossy(name),
                component: "..",
            });
        }
        _ => {}
    }
    if let Some(position) = name.iter().position(|&c| !is_name_char(c)) {
        return Err(NameError::InvalidChar {
            name: lossy(name),
            position,
            found: name[position],
        });
    }
    Ok(())
}

/// Why a base name is not a valid store path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StorePathError {
    /// Shorter than a hash part and a dash.
    #[error(
        "'{base_name}' is too short to be a store path ({len} bytes): expected a {HASH_PART_LEN}-character hash, '-' and a name"
    )]
    TooShort {
        /// The base name (lossily decoded).
        base_name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The byte after the hash part is not `-`.
    #[error(
        "'{base_name}' is not a store path: expected '-' after the {HASH_PART_LEN}-character hash part, found {}",
        byte_repr(*found)
    )]
    MissingDash {
        /// The base name (lossily decoded).
        base_name: String,
        /// The byte found where the dash should be.
        found: u8,
    },
    /// A byte of the hash part is not a Nix32 digit.
    #[error(
        "store path '{base_name}' has {} at byte {position} of its hash part: expected one of `0123456789abcdfghijklmnpqrsvwxyz`",
        byte_repr(*found)
    )]
    InvalidHashChar {
        /// The base name (lossily decoded).
        base_name: String,
        /// Byte offset of the offending byte.
        position: usize,
        /// The offending byte.
        found: u8,
    },
    /// The name part breaks a name rule.
    #[error("'{base_name}' is not a valid store path: {source}")]
    InvalidName {
        /// The base name (lossily decoded).
        base_name: String,
        /// Which rule the name breaks.
        #[source]
        source: NameError,
    },
}

/// A validated store path base name, `<hash>-<name>`, without the store
/// directory (see [`StoreDir`](super::StoreDir) for full paths).
///
/// Cloning is cheap (a reference count). Ordering, equality and hashing are
/// those of the base name's bytes, as in Nix. `Display` writes the base name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath {
    base_name: Arc<str>,
}

impl StorePath {
    /// Validates a base name such as `7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12`.
    pub fn from_base_name(base_name: &[u8]) -> Result<Self, StorePathError> {
        if base_name.len() < HASH_PART_LEN + 1 {
            return Err(StorePathError::TooShort {
                base_name: lossy(base_name),
                len: base_name.len(),
            });
        }
        if base_name[HASH_PART_LEN] != b'-' {
            return Err(StorePathError::MissingDash {
                base_name: lossy(base_name),
                found: base_name[HASH_PART_LEN],
            });
        }
        let hash = &base_name[..HASH_PART_LEN];
        if let Some(position) = hash.iter().position(|&c| !nix32::is_digit(c)) {
            return Err(StorePathError::InvalidHashChar {
                base_name: lossy(base_name),
                position,
                found: hash[position],
            });
        }
        check_name(&base_name[HASH_PART_LEN + 1..]).map_err(|source| {
            StorePathError::InvalidName {
                base_name: lossy(base_name),
                source,
            }
        })?;
        // Every byte checked above is ASCII, so this borrows and never replaces.
        Ok(Self {
            base_name: Arc::from(&*String::from_utf8_lossy(base_name)),
        })
    }

    /// The store path with a hash part made from a 20-byte digest (Nix's
    /// `StorePath(Hash, name)`; the digest is normally a compressed sha256).
    pub fn from_digest(digest: &[u8; 20], name: &str) -> Result<Self, StorePathError> {
        let mut base_name = String::with_capacity(HASH_PART_LEN + 1 + name.len());
        nix32::encode_to(digest, &mut base_name);
        base_name.push('-');
        base_name.push_str(name);
        Self::from_base_name(base_name.as_bytes())
    }

    /// The 32-character hash part.
    pub fn hash_part(&self) -> &str {
        &self.base_name[..HASH_PART_LEN]
    }

    /// The 20 bytes the hash part encodes.
    pub fn digest(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        // 32 valid digits decode to exactly 20 bytes: 160 bits, none spare.
        if let Ok(bytes) = nix32::decode(self.hash_part().as_bytes()) {
            for (o, b) in out.iter_mut().zip(bytes) {
                *o = b;
            }
        }
        out
    }

    /// The name, after the hash part and its dash.
    pub fn name(&self) -> &str {
        &self.base_name[HASH_PART_LEN + 1..]
    }

    /// The whole base name, `<hash>-<name>`.
    pub fn base_name(&self) -> &str {
        &self.base_name
    }

    /// Whether the name ends with [`DRV_EXTENSION`].
    pub fn is_derivation(&self) -> bool {
        self.name().ends_with(DRV_EXTENSION)
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base_name)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StorePath").field(&&*self.base_name).finish()
    }
}

impl AsRef<str> for StorePath {
    fn as_ref(&self) -> &str {
        &self.base_name
    }
}

impl FromStr for StorePath {
    type Err = StorePathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base_name(s.as_bytes())
    }
}

impl TryFrom<&str> for StorePath {
    type Error = StorePathError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::from_base_name(s.as_bytes())
    }
}

impl TryFrom<&[u8]> for StorePath {
    type Error = StorePathError;

    fn try_from(s: &[u8]) -> Result<Self, Self::Error> {
        Self::from_base_name(s)
    }
}

/// The name of a derivation output, such as `out` or `dev`, checked by the
/// store path name rules ([`check_name`]).
///
/// Nix checks output names this way when it parses an outputs spec
/// (`OutputsSpec::parse`); a derivation's outputs are held to the same
/// characters indirectly, since each output's path name is
/// `<drv name>-<output name>` (or just `<drv name>` for `out`).
///
/// Cloning is cheap; `Display` writes the name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutputName(Arc<str>);

impl OutputName {
    /// Validates an output name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        check_name(name.as_bytes())?;
        Ok(Self(Arc::from(name)))
    }

    /// Validates an output name given as bytes.
    pub fn from_bytes(name: &[u8]) -> Result<Self, NameError> {
        check_name(name)?;
        // Every byte checked above is ASCII, so this borrows and never replaces.
        Ok(Self(Arc::from(&*String::from_utf8_lossy(name))))
    }

    /// `out`, the default output.
    pub fn out() -> Self {
        Self(Arc::from("out"))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OutputName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OutputName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OutputName").field(&&*self.0).finish()
    }
}

impl AsRef<str> for OutputName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for OutputName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}
