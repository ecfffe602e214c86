//! Nix's strings, which are bytes.

use std::fmt;

use bytes::Bytes;

/// A string as Nix sends it: any bytes, most often but not always UTF-8.
///
/// Nix copies a builder's log tail into a failed build's error message, and
/// a derivation's environment and arguments are whatever the expression
/// produced, so a string that is not UTF-8 is ordinary input, never a
/// protocol error. Cloning is cheap (a reference-counted slice).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NixString(Bytes);

impl NixString {
    /// The empty string.
    pub const fn new() -> Self {
        Self(Bytes::new())
    }

    /// A string of a copy of `bytes`.
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        Self(Bytes::copy_from_slice(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as a shared slice.
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }

    /// The string as UTF-8 text, if it is.
    pub fn to_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// The string as text with invalid UTF-8 replaced (for people to read).
    pub fn to_string_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for NixString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_str() {
            Ok(s) => fmt::Debug::fmt(s, f),
            Err(_) => write!(f, "b\"{}\"", self.0.escape_ascii()),
        }
    }
}

/// Shows the text, with bytes that are not UTF-8 replaced.
impl fmt::Display for NixString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl From<&str> for NixString {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for NixString {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<&[u8]> for NixString {
    fn from(b: &[u8]) -> Self {
        Self(Bytes::copy_from_slice(b))
    }
}

impl From<Vec<u8>> for NixString {
    fn from(b: Vec<u8>) -> Self {
        Self(Bytes::from(b))
    }
}

impl From<Bytes> for NixString {
    fn from(b: Bytes) -> Self {
        Self(b)
    }
}

impl AsRef<[u8]> for NixString {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<str> for NixString {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for NixString {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}
