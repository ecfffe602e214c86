//! The store's domain types, validated once and shared by every protocol.
//!
//! Everything here is pure: values are parsed from and rendered to the
//! text forms Nix uses, with Nix's own rules (each module names the Nix
//! source it follows). Nothing here reads or writes the wire; the protocol
//! layers decode a string or byte string and hand it to these parsers, and
//! render these values back when encoding.
//!
//! How the pieces fit:
//!
//! - [`path`]: a [`StorePath`] is the base name of a store object,
//!   `<hash>-<name>`, with no store directory: the 32-character
//!   [`nix32`] hash part and a name. [`OutputName`] is a derivation output's
//!   name (`out`, `dev`), checked by the same name rules.
//! - [`dir`]: a [`StoreDir`] (`/nix/store` by default) turns full paths into
//!   [`StorePath`]s and back. A store path only becomes a full path through
//!   the store directory it belongs to.
//! - [`hash`]: [`Hash`](struct@Hash) is a digest with its [`HashAlgo`], readable and
//!   writable in each of Nix's text forms ([`HashFormat`]); [`NarHash`] is
//!   the sha256 of a NAR, the one hash every path info has.
//! - [`nix32`]: Nix's own base-32 encoding, used by hashes and by the hash
//!   part of store paths.
//! - [`content_address`]: a [`ContentAddress`] (`fixed:r:sha256:…`) is a
//!   [`ContentAddressMethod`] and a [`Hash`](struct@Hash); the method alone, with its
//!   prefixes, also appears in derivation outputs (`r:sha256`).
//! - [`signature`]: a [`Signature`] on a path info, `<key-name>:<base64>`,
//!   kept as the exact text that came so that it re-encodes byte for byte.
//!
//! - The types the protocols exchange about paths and builds, one each for
//!   both protocols: [`PathInfo`], [`BuildResult`] and [`BuildStatus`],
//!   [`BasicDerivation`], [`Realisation`] and [`DrvOutput`], and the
//!   worker protocol's [`DerivedPath`] (what a build request names, with
//!   its text forms). Each protocol declares its own layout of them
//!   (`serve::messages`, `worker::messages`).
//! - [`aterm`]: a [`Derivation`] is a store derivation, what a `.drv` file
//!   says, read from and written to Nix's ATerm text byte for byte, its
//!   store paths checked through a [`StoreDir`];
//!   [`Derivation::to_basic`] resolves its input derivations into the
//!   [`BasicDerivation`] a remote build is sent.
//!
//! Each module has its own error type, `#[non_exhaustive]`, whose messages
//! say what was expected and what came.

pub mod aterm;
pub mod content_address;
pub mod dir;
pub mod hash;
pub mod nix32;
pub mod path;
pub mod signature;

pub(crate) mod base64;

pub use aterm::{Derivation, DerivationError, DynamicInput, OutputAddressing};
pub use content_address::{ContentAddress, ContentAddressError, ContentAddressMethod};
pub use dir::{StoreDir, StoreDirError};
pub use hash::{Hash, HashAlgo, HashError, HashFormat, NarHash};
pub use path::{NameError, OutputName, StorePath, StorePathError};
pub use signature::{Signature, SignatureError};

/// A byte for an error message: `'c'` when printable ASCII, `0xNN` otherwise.
pub(crate) fn byte_repr(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", char::from(b))
    } else {
        format!("0x{b:02x}")
    }
}

/// Text for an error message from bytes that may not be UTF-8.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

mod build;
mod derivation;
mod derived_path;
mod path_info;
mod realisation;

pub use build::{BuildResult, BuildStatus};
pub use derivation::{BasicDerivation, DerivationOutput};
pub use derived_path::{
    DerivedPath, DerivedPathError, MAX_NESTING, OutputsSpec, SingleDerivedPath,
};
pub use path_info::PathInfo;
pub use realisation::{DrvOutput, Realisation};
