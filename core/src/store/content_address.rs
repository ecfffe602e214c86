//! Content addresses and content-addressing methods
//! (`src/libstore/content-address.cc`, `src/libutil/file-content-address.cc`).
//!
//! A content address is how a store object's path was computed from its
//! contents. Nix writes it as
//!
//! | method | content address |
//! |---|---|
//! | text (derivations, `builtins.toFile`) | `text:sha256:<nix32>` |
//! | flat file | `fixed:sha256:<nix32>` |
//! | NAR (recursive) | `fixed:r:sha256:<nix32>` |
//! | git (Nix 2.21 and later, `git-hashing` experimental feature) | `fixed:git:sha1:<nix32>` |
//!
//! and reads the hash after the last `:` in base16, nix32 or base64, told by
//! its length. Nix 2.8 required sha256 for `text:`; newer Nix reads any
//! algorithm there, and so does this module. The empty string means "no
//! content address" where one is optional ([`ContentAddress::parse_opt`]).
//!
//! The method alone has three more spellings:
//!
//! - its name, `text`, `flat`, `nar`, `git` ([`ContentAddressMethod::parse`]);
//! - with an algorithm, `text:sha256`, `fixed:sha256`, `fixed:r:sha256`,
//!   `fixed:git:sha1` ([`ContentAddressMethod::parse_with_algo`], used when
//!   adding to a store);
//! - the short prefix of a derivation output's hash algorithm field, `r:`,
//!   `git:`, `text:` or nothing for flat: `r:sha256`
//!   ([`ContentAddressMethod::parse_method_algo`]).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use super::hash::{Hash, HashAlgo, HashError, HashFormat};

/// Why a content address or method could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ContentAddressError {
    /// No `<prefix>:` at the start.
    #[error(
        "'{input}' is not a content address: expected '<prefix>:<rest>' with prefix 'text' or 'fixed'"
    )]
    NoPrefix {
        /// The text.
        input: String,
    },
    /// The prefix is neither `text` nor `fixed`.
    #[error("content address '{input}' has prefix '{prefix}': expected 'text' or 'fixed'")]
    UnknownPrefix {
        /// The text.
        input: String,
        /// The prefix found.
        prefix: String,
    },
    /// No `<algo>:` after the method.
    #[error("content address '{input}': expected '<algo>:<hash>' after the method")]
    NoHashAlgo {
        /// The text.
        input: String,
    },
    /// Text after the algorithm where only a method and an algorithm were
    /// expected (Nix ignores it; this refuses it).
    #[error("'{input}': expected only a method and an algorithm, found ':{rest}' after them")]
    Trailing {
        /// The text.
        input: String,
        /// What followed the algorithm.
        rest: String,
    },
    /// A method name other than `text`, `flat`, `nar` or `git`.
    #[error("unknown content-addressing method '{name}': expected 'text', 'flat', 'nar' or 'git'")]
    UnknownMethod {
        /// The name found.
        name: String,
    },
    /// The algorithm or the hash is wrong.
    #[error("content address '{input}': {source}")]
    Hash {
        /// The text.
        input: String,
        /// What is wrong with the hash.
        #[source]
        source: HashError,
    },
}

/// How a store object's contents are hashed for its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ContentAddressMethod {
    /// `text`: the flat contents, references allowed but no self-reference
    /// (derivations, `builtins.toFile`).
    Text,
    /// `flat`: a single file's contents.
    Flat,
    /// `nar`: the NAR serialisation (`r:`, "recursive").
    Nar,
    /// `git`: git's tree and blob hashing (`git:`).
    Git,
}

impl ContentAddressMethod {
    /// Every method, in the order above.
    pub const ALL: [Self; 4] = [Self::Text, Self::Flat, Self::Nar, Self::Git];

    /// Nix's name: `text`, `flat`, `nar`, `git`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Flat => "flat",
            Self::Nar => "nar",
            Self::Git => "git",
        }
    }

    /// The method with this name (`ContentAddressMethod::parse`).
    pub fn parse(name: &str) -> Result<Self, ContentAddressError> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| ContentAddressError::UnknownMethod {
                name: name.to_owned(),
            })
    }

    /// The short prefix (`renderPrefix`): `text:`, nothing for flat, `r:`,
    /// `git:`.
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Text => "text:",
            Self::Flat => "",
            Self::Nar => "r:",
            Self::Git => "git:",
        }
    }

    /// Takes a short prefix off `text` (`parsePrefix`): `r:`, `git:` or
    /// `text:`, and flat when there is none. Never fails.
    pub fn split_prefix(text: &str) -> (Self, &str) {
        [Self::Nar, Self::Git, Self::Text]
            .into_iter()
            .find_map(|m| text.strip_prefix(m.prefix()).map(|rest| (m, rest)))
            .unwrap_or((Self::Flat, text))
    }

    /// Reads a derivation output's hash algorithm field, the short prefix and
    /// an algorithm: `sha256`, `r:sha256`, `git:sha1`, `text:sha256`.
    pub fn parse_method_algo(text: &str) -> Result<(Self, HashAlgo), ContentAddressError> {
        let (method, algo) = Self::split_prefix(text);
        let algo = HashAlgo::parse(algo).map_err(|source| ContentAddressError::Hash {
            input: text.to_owned(),
            source,
        })?;
        Ok((method, algo))
    }

    /// The short prefix and the algorithm, `r:sha256` (Nix's
    /// `printMethodAlgo`, as in a derivation's outputs).
    pub fn render_method_algo(self, algo: HashAlgo) -> String {
        format!("{}{}", self.prefix(), algo.name())
    }

    /// The long prefix of a content address: `text:`, `fixed:`, `fixed:r:`,
    /// `fixed:git:`.
    pub const fn long_prefix(self) -> &'static str {
        match self {
            Self::Text => "text:",
            Self::Flat => "fixed:",
            Self::Nar => "fixed:r:",
            Self::Git => "fixed:git:",
        }
    }

    /// Reads a method with an algorithm, `fixed:r:sha256` or `text:sha256`
    /// (Nix's `ContentAddressMethod::parseWithAlgo`, which ignores anything
    /// after a further `:`; this refuses it with
    /// [`ContentAddressError::Trailing`]).
    pub fn parse_with_algo(text: &str) -> Result<(Self, HashAlgo), ContentAddressError> {
        let with_colon = format!("{text}:");
        let (method, algo, rest) = split_method_algo(&with_colon, text)?;
        if !rest.is_empty() {
            return Err(ContentAddressError::Trailing {
                input: text.to_owned(),
                rest: rest[..rest.len() - 1].to_owned(),
            });
        }
        Ok((method, algo))
    }

    /// The long prefix and the algorithm, `fixed:r:sha256` (Nix's
    /// `renderWithAlgo`).
    pub fn render_with_algo(self, algo: HashAlgo) -> String {
        format!("{}{}", self.long_prefix(), algo.name())
    }
}

impl fmt::Display for ContentAddressMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ContentAddressMethod {
    type Err = ContentAddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Nix's `parseContentAddressMethodPrefix`: `<text|fixed>:[r:|git:]<algo>:`,
/// returning what follows. `input` is the text to name in errors.
fn split_method_algo<'a>(
    text: &'a str,
    input: &str,
) -> Result<(ContentAddressMethod, HashAlgo, &'a str), ContentAddressError> {
    let (prefix, rest) = text
        .split_once(':')
        .ok_or_else(|| ContentAddressError::NoPrefix {
            input: input.to_owned(),
        })?;
    let (method, rest) = match prefix {
        "text" => (ContentAddressMethod::Text, rest),
        "fixed" => {
            if let Some(rest) = rest.strip_prefix("r:") {
                (ContentAddressMethod::Nar, rest)
            } else if let Some(rest) = rest.strip_prefix("git:") {
                (ContentAddressMethod::Git, rest)
            } else {
                (ContentAddressMethod::Flat, rest)
            }
        }
        _ => {
            return Err(ContentAddressError::UnknownPrefix {
                input: input.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
    };
    let (algo, rest) = rest
        .split_once(':')
        .ok_or_else(|| ContentAddressError::NoHashAlgo {
            input: input.to_owned(),
        })?;
    let algo = HashAlgo::parse(algo).map_err(|source| ContentAddressError::Hash {
        input: input.to_owned(),
        source,
    })?;
    Ok((method, algo, rest))
}

/// A content address: a method and a hash.
///
/// Any combination reads and renders; whether it can make a store path (git
/// needs sha1 or sha256, for one) is for the code that makes paths.
/// `Display` writes Nix's form, with the hash in nix32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentAddress {
    /// How the contents were hashed.
    pub method: ContentAddressMethod,
    /// The hash.
    pub hash: Hash,
}

impl ContentAddress {
    /// Reads `text:<algo>:<hash>` or `fixed:[r:|git:]<algo>:<hash>`
    /// (`ContentAddress::parse`), the hash in base16, nix32 or base64.
    pub fn parse(text: &str) -> Result<Self, ContentAddressError> {
        let (method, algo, hash) = split_method_algo(text, text)?;
        let hash =
            Hash::parse_unprefixed(hash, algo).map_err(|source| ContentAddressError::Hash {
                input: text.to_owned(),
                source,
            })?;
        Ok(Self { method, hash })
    }

    /// Like [`parse`](Self::parse), with the empty string meaning none (how
    /// the protocols send an optional content address).
    pub fn parse_opt(text: &str) -> Result<Option<Self>, ContentAddressError> {
        if text.is_empty() {
            Ok(None)
        } else {
            Self::parse(text).map(Some)
        }
    }

    /// The short prefix and the algorithm, `r:sha256` (`printMethodAlgo`).
    pub fn method_algo(&self) -> String {
        self.method.render_method_algo(self.hash.algo())
    }

    /// Nix's form, `fixed:r:sha256:<nix32>` (`ContentAddress::render`).
    pub fn render(&self) -> String {
        let mut s = String::from(self.method.long_prefix());
        self.hash.render_to(HashFormat::Nix32, true, &mut s);
        s
    }

    /// The rendering of an optional content address: empty for none.
    pub fn render_opt(ca: Option<&Self>) -> String {
        ca.map(Self::render).unwrap_or_default()
    }
}

impl fmt::Display for ContentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl FromStr for ContentAddress {
    type Err = ContentAddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
