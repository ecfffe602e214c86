//! Signatures on path infos, `<key-name>:<base64 signature>`.
//!
//! Nix sends them as strings and, until 2.33, kept them as plain strings
//! (a `StringSet`) without looking inside. Nix 2.34 and later parse each one
//! on the wire (`Signature::parse` in `src/libutil/signature/local-keys.cc`):
//! the key name is the text before the first `:` and must not be empty; the
//! rest is base64, read leniently (see the `hash` module), and must decode
//! to at least one byte. They then write it back re-encoded as
//! `<key-name>:<padded base64>`, and order a set of signatures by key name
//! and then signature bytes. No Nix checks the signature's length or
//! validity on the wire; that happens when a signature is verified.
//!
//! So [`Signature`] keeps the exact text that came, accepting any UTF-8
//! (what an old Nix may hold), and re-encodes it byte for byte. Its
//! accessors read it the way Nix 2.34 does; [`Signature::parse`] refuses
//! what Nix 2.34 would refuse. A list of signatures should be kept in the
//! order it came if the bytes must be reproduced: Nix's orders (the
//! strings', or key name then bytes) differ from each other.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use super::{base64, byte_repr};

/// Why a signature's text is not `<key-name>:<base64>` as Nix 2.34 reads it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// There is no `:`.
    #[error("signature '{text}' is corrupt: expected '<key-name>:<base64>', found no ':'")]
    NoColon {
        /// The signature's text.
        text: String,
    },
    /// The key name (before the first `:`) is empty.
    #[error("signature '{text}' is corrupt: expected a key name before the ':'")]
    EmptyKeyName {
        /// The signature's text.
        text: String,
    },
    /// The part after the `:` is not base64.
    #[error(
        "signature '{text}' is corrupt: {} at position {position} of the part after ':' is not base64",
        byte_repr(*found)
    )]
    InvalidBase64 {
        /// The signature's text.
        text: String,
        /// Byte offset in the part after the first `:`.
        position: usize,
        /// The byte found.
        found: u8,
    },
    /// The part after the `:` decodes to nothing.
    #[error("signature '{text}' is corrupt: expected signature bytes after the ':', found none")]
    Empty {
        /// The signature's text.
        text: String,
    },
    /// The bytes given for a signature are not UTF-8.
    #[error("a signature must be UTF-8 text, found {} at byte {position}", byte_repr(*found))]
    NotUtf8 {
        /// Offset of the first byte that is not UTF-8.
        position: usize,
        /// That byte.
        found: u8,
    },
}

/// A signature as Nix sends it, kept as its exact text.
///
/// Equality, ordering and hashing are the text's.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(String);

impl Signature {
    /// Keeps any text as a signature, unchecked (as Nix before 2.34 did).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Keeps UTF-8 bytes as a signature, unchecked otherwise.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SignatureError> {
        String::from_utf8(bytes).map(Self).map_err(|e| {
            let position = e.utf8_error().valid_up_to();
            SignatureError::NotUtf8 {
                position,
                found: e.as_bytes()[position],
            }
        })
    }

    /// Checks the text as Nix 2.34's `Signature::parse` does and keeps it as
    /// it is.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let sig = Self::new(text);
        sig.validate()?;
        Ok(sig)
    }

    /// `<key-name>:<padded base64 of bytes>`, as Nix writes a signature.
    pub fn from_parts(key_name: &str, bytes: &[u8]) -> Self {
        Self(format!("{key_name}:{}", base64::encode(bytes)))
    }

    /// The exact text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, consumed.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The key name: the text before the first `:`, if there is a `:` and
    /// the name is not empty.
    pub fn key_name(&self) -> Option<&str> {
        self.0
            .split_once(':')
            .map(|(name, _)| name)
            .filter(|n| !n.is_empty())
    }

    /// The text after the first `:`, if any (the base64 signature).
    pub fn encoded(&self) -> Option<&str> {
        self.0.split_once(':').map(|(_, sig)| sig)
    }

    /// The signature's bytes, decoded as Nix 2.34 decodes them; the error
    /// says why Nix 2.34 would refuse this signature.
    pub fn bytes(&self) -> Result<Vec<u8>, SignatureError> {
        let text = || self.0.clone();
        let (name, encoded) = self
            .0
            .split_once(':')
            .ok_or_else(|| SignatureError::NoColon { text: text() })?;
        if name.is_empty() {
            return Err(SignatureError::EmptyKeyName { text: text() });
        }
        let bytes = base64::decode_lenient(encoded.as_bytes()).map_err(|e| {
            SignatureError::InvalidBase64 {
                text: text(),
                position: e.position,
                found: e.found,
            }
        })?;
        if bytes.is_empty() {
            return Err(SignatureError::Empty { text: text() });
        }
        Ok(bytes)
    }

    /// Whether Nix 2.34 would accept this signature ([`bytes`](Self::bytes)
    /// succeeds).
    pub fn validate(&self) -> Result<(), SignatureError> {
        self.bytes().map(drop)
    }

    /// The text Nix 2.34 would send back after reading this one: the key
    /// name, `:`, and the decoded bytes re-encoded as padded base64.
    pub fn canonical(&self) -> Result<Self, SignatureError> {
        let bytes = self.bytes()?;
        let name = self.key_name().unwrap_or_default();
        Ok(Self::from_parts(name, &bytes))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Signature").field(&self.0).finish()
    }
}

impl AsRef<str> for Signature {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Signature {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for Signature {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl FromStr for Signature {
    type Err = std::convert::Infallible;

    /// Never fails: any text is kept (see [`Signature::parse`] for the check).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}
