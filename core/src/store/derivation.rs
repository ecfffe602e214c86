//! Derivations as the protocols carry them.

use super::{OutputName, StorePath};
use crate::wire::NixString;

/// One output of a [`BasicDerivation`]. Input-addressed outputs have only a
/// path; content-addressed ones carry a method and algorithm (`r:sha256`)
/// and, when fixed, the expected hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivationOutput {
    /// The output name (`out`, `dev`, ...).
    pub name: OutputName,
    /// The output path, when known in advance.
    pub path: Option<StorePath>,
    /// Hashing method and algorithm of a content-addressed output, or empty.
    pub hash_algo: NixString,
    /// The expected hash (base 16) of a fixed output, `impure`, or empty.
    pub hash: NixString,
}

/// A derivation without its input derivations: the inputs already resolved
/// into `input_srcs`, as a builder is handed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicDerivation {
    /// Its outputs, in the order sent (sorted by name in Nix).
    pub outputs: Vec<DerivationOutput>,
    /// Input store paths.
    pub input_srcs: Vec<StorePath>,
    /// The system it builds on (`x86_64-linux`).
    pub platform: NixString,
    /// The builder executable.
    pub builder: NixString,
    /// The builder's arguments: bytes, as the expression made them.
    pub args: Vec<NixString>,
    /// The environment, as (name, value) pairs: bytes too.
    pub env: Vec<(NixString, NixString)>,
}
