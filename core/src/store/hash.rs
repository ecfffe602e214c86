//! Hashes and their text forms, as Nix reads and writes them
//! (`src/libutil/hash.cc`, `src/libutil/base-n.cc`,
//! `src/libutil/base-nix-32.cc`).
//!
//! A [`Hash`](struct@Hash) is an algorithm and a digest of that algorithm's size. Its text
//! forms ([`HashFormat`]):
//!
//! | form | sha256 of `hello` |
//! |---|---|
//! | base16 | `2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824` |
//! | nix32 | `094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic` |
//! | base64 | `LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=` |
//! | SRI | `sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=` |
//!
//! and each of the first three with an `<algo>:` prefix
//! (`sha256:094qif…`). Nix writes base16 in lowercase and base64 padded.
//!
//! Reading follows Nix exactly:
//!
//! - `<algo>:<text>` (the first `:` splits) or, with no `:`, `<algo>-<text>`
//!   (SRI; the first `-` splits). Algorithm names are lowercase.
//! - Without SRI, the format is told by the length of the text for the
//!   algorithm: base16, then nix32, then base64 (the three lengths never
//!   coincide). Any other length is an error.
//! - base16 accepts upper and lower case.
//! - nix32's first digit may not carry bits above the digest's size.
//! - base64 (and SRI, whose text may have any length) is decoded with Nix's
//!   lenient decoder: it stops at the first `=`, skips `\n`, does not need
//!   padding and ignores leftover bits; the decoded size must be the
//!   algorithm's.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use super::{base64, byte_repr, nix32};

/// A hash algorithm Nix knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum HashAlgo {
    /// MD5, 16 bytes.
    Md5,
    /// SHA-1, 20 bytes.
    Sha1,
    /// SHA-256, 32 bytes.
    Sha256,
    /// SHA-512, 64 bytes.
    Sha512,
    /// BLAKE3, 32 bytes. Nix 2.27 and later, behind the `blake3-hashes`
    /// experimental feature.
    Blake3,
}

impl HashAlgo {
    /// Every algorithm, in the order above.
    pub const ALL: [Self; 5] = [
        Self::Md5,
        Self::Sha1,
        Self::Sha256,
        Self::Sha512,
        Self::Blake3,
    ];

    /// The digest size in bytes.
    pub const fn size(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 | Self::Blake3 => 32,
            Self::Sha512 => 64,
        }
    }

    /// Nix's name for it: `md5`, `sha1`, `sha256`, `sha512`, `blake3`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
            Self::Blake3 => "blake3",
        }
    }

    /// The algorithm with this name (lowercase only, as in Nix).
    pub fn parse(name: &str) -> Result<Self, HashError> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| HashError::UnknownAlgo {
                name: name.to_owned(),
            })
    }

    /// The length of a digest of this algorithm in `format` (without any
    /// prefix). For SRI this is the base64 length.
    pub const fn encoded_len(self, format: HashFormat) -> usize {
        let size = self.size();
        match format {
            HashFormat::Base16 => size * 2,
            HashFormat::Nix32 => nix32::encoded_len(size),
            HashFormat::Base64 | HashFormat::Sri => size.div_ceil(3) * 4,
        }
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgo {
    type Err = HashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A text form of a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HashFormat {
    /// Lowercase hexadecimal (upper case is accepted when reading).
    Base16,
    /// Nix's own base-32 ([`nix32`]).
    Nix32,
    /// Standard base64, padded.
    Base64,
    /// Subresource Integrity: `<algo>-<base64>`.
    Sri,
}

impl HashFormat {
    /// Nix's name for it: `base16`, `nix32`, `base64`, `sri`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Base16 => "base16",
            Self::Nix32 => "nix32",
            Self::Base64 => "base64",
            Self::Sri => "sri",
        }
    }
}

impl fmt::Display for HashFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a hash could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HashError {
    /// The algorithm name is not one Nix knows.
    #[error(
        "unknown hash algorithm '{name}': expected 'md5', 'sha1', 'sha256', 'sha512' or 'blake3'"
    )]
    UnknownAlgo {
        /// The name found.
        name: String,
    },
    /// The text has no `<algo>:` or `<algo>-` prefix and the algorithm is
    /// not otherwise known.
    #[error(
        "hash '{input}' does not say its algorithm: expected '<algo>:<hash>' or '<algo>-<base64>'"
    )]
    MissingAlgo {
        /// The text.
        input: String,
    },
    /// The text has no `<algo>-` prefix where SRI was required.
    #[error("hash '{input}' is not SRI: expected '<algo>-<base64>'")]
    NotSri {
        /// The text.
        input: String,
    },
    /// The algorithm is not the one required here.
    #[error("hash '{input}' has algorithm '{found}': expected '{expected}'")]
    AlgoMismatch {
        /// The text (or a description of the hash).
        input: String,
        /// The algorithm required.
        expected: HashAlgo,
        /// The algorithm found.
        found: HashAlgo,
    },
    /// The text's length is none of the algorithm's encoded lengths.
    #[error(
        "hash '{input}' is {len} characters long: a {algo} hash takes {} (base16), {} (nix32) or {} (base64)",
        algo.encoded_len(HashFormat::Base16),
        algo.encoded_len(HashFormat::Nix32),
        algo.encoded_len(HashFormat::Base64)
    )]
    WrongLength {
        /// The text, without any prefix.
        input: String,
        /// The algorithm.
        algo: HashAlgo,
        /// Its length.
        len: usize,
    },
    /// A character that does not belong to the format.
    #[error("invalid {format} hash '{input}': {} at position {position} is not a {format} digit", byte_repr(*found))]
    InvalidChar {
        /// The text, without any prefix.
        input: String,
        /// The format it was read as.
        format: HashFormat,
        /// Byte offset of the character in `input`.
        position: usize,
        /// The byte found.
        found: u8,
    },
    /// The nix32 text has the right length but its first digit carries bits
    /// beyond the digest's size.
    #[error(
        "invalid nix32 hash '{input}': its first digit is too large for a {}-byte {algo} digest",
        algo.size()
    )]
    Nix32Overflow {
        /// The text, without any prefix.
        input: String,
        /// The algorithm.
        algo: HashAlgo,
    },
    /// The text decodes to the wrong number of bytes for the algorithm.
    #[error(
        "invalid {format} hash '{input}': it decodes to {found} bytes, expected {expected} for {algo}"
    )]
    WrongSize {
        /// The text, without any prefix.
        input: String,
        /// The format it was read as.
        format: HashFormat,
        /// The algorithm.
        algo: HashAlgo,
        /// The algorithm's digest size.
        expected: usize,
        /// The decoded size.
        found: usize,
    },
}

/// Longest digest: sha512.
const MAX_SIZE: usize = 64;

/// A digest together with its algorithm.
///
/// `Copy`, no allocation. `Display` writes SRI (`sha256-…`), Nix's default
/// in its newer commands and JSON; every other form is a method away.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash {
    algo: HashAlgo,
    /// The digest in the first `algo.size()` bytes, zeros after.
    bytes: [u8; MAX_SIZE],
}

impl Hash {
    /// A hash from its digest, which must have the algorithm's size.
    pub fn new(algo: HashAlgo, digest: &[u8]) -> Result<Self, HashError> {
        if digest.len() != algo.size() {
            return Err(HashError::WrongSize {
                input: base64::encode(digest),
                format: HashFormat::Base64,
                algo,
                expected: algo.size(),
                found: digest.len(),
            });
        }
        let mut bytes = [0u8; MAX_SIZE];
        bytes[..digest.len()].copy_from_slice(digest);
        Ok(Self { algo, bytes })
    }

    /// The algorithm.
    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    /// The digest, `algo().size()` bytes.
    pub fn digest(&self) -> &[u8] {
        &self.bytes[..self.algo.size()]
    }

    // ---- reading ----

    /// Reads any form Nix's `Hash::parseAny` reads: prefixed (`sha256:…` in
    /// base16, nix32 or base64), SRI (`sha256-…`), or, when `algo` is given,
    /// unprefixed base16, nix32 or base64. A prefix must agree with `algo`
    /// when both are present.
    pub fn parse_any(text: &str, algo: Option<HashAlgo>) -> Result<Self, HashError> {
        Self::parse_any_with_format(text, algo).map(|(h, _)| h)
    }

    /// Like [`parse_any`](Self::parse_any), also telling which form the text
    /// was in (Nix's `parseAnyReturningFormat`).
    pub fn parse_any_with_format(
        text: &str,
        algo: Option<HashAlgo>,
    ) -> Result<(Self, HashFormat), HashError> {
        let (prefix, rest) = split_algo(text);
        let found = prefix.map(|(name, _)| HashAlgo::parse(name)).transpose()?;
        let algo = match (found, algo) {
            (None, None) => {
                return Err(HashError::MissingAlgo {
                    input: text.to_owned(),
                });
            }
            (Some(found), Some(expected)) if found != expected => {
                return Err(HashError::AlgoMismatch {
                    input: text.to_owned(),
                    expected,
                    found,
                });
            }
            (Some(a), _) | (None, Some(a)) => a,
        };
        if matches!(prefix, Some((_, Separator::Dash))) {
            Self::decode(rest, algo, HashFormat::Sri).map(|h| (h, HashFormat::Sri))
        } else {
            let format = format_from_len(rest, algo)?;
            Self::decode(rest, algo, format).map(|h| (h, format))
        }
    }

    /// Reads a hash that names its own algorithm, `<algo>:…` or SRI (Nix's
    /// `Hash::parseAnyPrefixed`). This is also [`FromStr`].
    pub fn parse_prefixed(text: &str) -> Result<Self, HashError> {
        if split_algo(text).0.is_none() {
            return Err(HashError::MissingAlgo {
                input: text.to_owned(),
            });
        }
        Self::parse_any(text, None)
    }

    /// Reads SRI only, `<algo>-<base64>` (Nix's `Hash::parseSRI`).
    pub fn parse_sri(text: &str) -> Result<Self, HashError> {
        let (name, rest) = text.split_once('-').ok_or_else(|| HashError::NotSri {
            input: text.to_owned(),
        })?;
        Self::decode(rest, HashAlgo::parse(name)?, HashFormat::Sri)
    }

    /// Reads an unprefixed base16, nix32 or base64 digest of `algo`, the
    /// form told by its length (Nix's `Hash::parseNonSRIUnprefixed`; content
    /// addresses and derivation outputs hold hashes this way).
    pub fn parse_unprefixed(text: &str, algo: HashAlgo) -> Result<Self, HashError> {
        let format = format_from_len(text, algo)?;
        Self::decode(text, algo, format)
    }

    /// Reads an unprefixed digest of `algo` in the given form (Nix's
    /// `Hash::parseExplicitFormatUnprefixed`). [`HashFormat::Sri`] here means
    /// base64 text without the `<algo>-`.
    pub fn parse_explicit(
        text: &str,
        algo: HashAlgo,
        format: HashFormat,
    ) -> Result<Self, HashError> {
        Self::decode(text, algo, format)
    }

    fn decode(text: &str, algo: HashAlgo, format: HashFormat) -> Result<Self, HashError> {
        let input = || text.to_owned();
        let bytes = text.as_bytes();
        let decoded = match format {
            HashFormat::Base16 => {
                if !bytes.len().is_multiple_of(2) {
                    return Err(HashError::WrongSize {
                        input: input(),
                        format,
                        algo,
                        expected: algo.size(),
                        found: bytes.len() / 2,
                    });
                }
                data_encoding::HEXLOWER_PERMISSIVE
                    .decode(bytes)
                    .map_err(|e| HashError::InvalidChar {
                        input: input(),
                        format,
                        position: e.position,
                        found: bytes.get(e.position).copied().unwrap_or(0),
                    })?
            }
            HashFormat::Nix32 => nix32::decode(bytes).map_err(|e| match e {
                nix32::Nix32Error::InvalidChar { position, found } => HashError::InvalidChar {
                    input: input(),
                    format,
                    position,
                    found,
                },
            })?,
            HashFormat::Base64 | HashFormat::Sri => {
                base64::decode_lenient(bytes).map_err(|e| HashError::InvalidChar {
                    input: input(),
                    format,
                    position: e.position,
                    found: e.found,
                })?
            }
        };
        if format == HashFormat::Nix32
            && decoded.len() == algo.size() + 1
            && bytes.len() == algo.encoded_len(format)
        {
            return Err(HashError::Nix32Overflow {
                input: input(),
                algo,
            });
        }
        if decoded.len() != algo.size() {
            return Err(HashError::WrongSize {
                input: input(),
                format,
                algo,
                expected: algo.size(),
                found: decoded.len(),
            });
        }
        Self::new(algo, &decoded)
    }

    // ---- writing ----

    /// Lowercase base16, unprefixed.
    pub fn to_base16(&self) -> String {
        data_encoding::HEXLOWER.encode(self.digest())
    }

    /// Nix32, unprefixed.
    pub fn to_nix32(&self) -> String {
        nix32::encode(self.digest())
    }

    /// Padded base64, unprefixed.
    pub fn to_base64(&self) -> String {
        base64::encode(self.digest())
    }

    /// SRI: `<algo>-<base64>`.
    pub fn to_sri(&self) -> String {
        self.render(HashFormat::Sri, true)
    }

    /// The hash in `format`, with the `<algo>:` prefix when `with_algo`
    /// (Nix's `Hash::to_string`). SRI always has its `<algo>-` prefix.
    pub fn render(&self, format: HashFormat, with_algo: bool) -> String {
        let mut s = String::new();
        self.render_to(format, with_algo, &mut s);
        s
    }

    /// [`render`](Self::render), appending to `out`.
    pub fn render_to(&self, format: HashFormat, with_algo: bool, out: &mut String) {
        if format == HashFormat::Sri || with_algo {
            out.push_str(self.algo.name());
            out.push(if format == HashFormat::Sri { '-' } else { ':' });
        }
        match format {
            HashFormat::Base16 => data_encoding::HEXLOWER.encode_append(self.digest(), out),
            HashFormat::Nix32 => nix32::encode_to(self.digest(), out),
            HashFormat::Base64 | HashFormat::Sri => {
                data_encoding::BASE64.encode_append(self.digest(), out);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Separator {
    Colon,
    Dash,
}

/// Nix's prefix split: at the first `:` if there is one, otherwise at the
/// first `-` (SRI).
fn split_algo(text: &str) -> (Option<(&str, Separator)>, &str) {
    if let Some((name, rest)) = text.split_once(':') {
        (Some((name, Separator::Colon)), rest)
    } else if let Some((name, rest)) = text.split_once('-') {
        (Some((name, Separator::Dash)), rest)
    } else {
        (None, text)
    }
}

/// Nix's `baseFromSize`.
fn format_from_len(text: &str, algo: HashAlgo) -> Result<HashFormat, HashError> {
    [HashFormat::Base16, HashFormat::Nix32, HashFormat::Base64]
        .into_iter()
        .find(|&f| text.len() == algo.encoded_len(f))
        .ok_or_else(|| HashError::WrongLength {
            input: text.to_owned(),
            algo,
            len: text.len(),
        })
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sri())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.render(HashFormat::Nix32, true))
    }
}

impl FromStr for Hash {
    type Err = HashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_prefixed(s)
    }
}

/// The sha256 of a NAR, which every path info carries.
///
/// Any 32 bytes are one. `Display` writes SRI, like [`Hash`](struct@Hash).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NarHash(pub [u8; 32]);

impl NarHash {
    /// The NAR hash with this digest.
    pub const fn new(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// As a general [`Hash`](struct@Hash) (algorithm sha256).
    pub fn to_hash(&self) -> Hash {
        let mut bytes = [0u8; MAX_SIZE];
        bytes[..32].copy_from_slice(&self.0);
        Hash {
            algo: HashAlgo::Sha256,
            bytes,
        }
    }

    /// Reads what Nix's `Hash::parseAny(text, sha256)` reads: a prefix, if
    /// any, must say sha256; without one, base16, nix32 or base64 by length.
    pub fn parse(text: &str) -> Result<Self, HashError> {
        Hash::parse_any(text, Some(HashAlgo::Sha256)).and_then(Self::try_from)
    }

    /// Lowercase base16, unprefixed (how the worker protocol sends it).
    pub fn to_base16(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    /// Nix32, unprefixed.
    pub fn to_nix32(&self) -> String {
        nix32::encode(&self.0)
    }

    /// SRI: `sha256-<base64>`.
    pub fn to_sri(&self) -> String {
        self.to_hash().to_sri()
    }

    /// See [`Hash::render`].
    pub fn render(&self, format: HashFormat, with_algo: bool) -> String {
        self.to_hash().render(format, with_algo)
    }
}

impl From<NarHash> for Hash {
    fn from(h: NarHash) -> Self {
        h.to_hash()
    }
}

impl TryFrom<Hash> for NarHash {
    type Error = HashError;

    fn try_from(h: Hash) -> Result<Self, Self::Error> {
        if h.algo != HashAlgo::Sha256 {
            return Err(HashError::AlgoMismatch {
                input: h.to_sri(),
                expected: HashAlgo::Sha256,
                found: h.algo,
            });
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(h.digest());
        Ok(Self(digest))
    }
}

impl fmt::Display for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sri())
    }
}

impl fmt::Debug for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NarHash(sha256:{})", self.to_nix32())
    }
}

impl FromStr for NarHash {
    type Err = HashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
