//! What a store knows about a valid path.

use super::{ContentAddress, NarHash, Signature, StorePath};
use crate::wire::NixString;

/// Metadata of a valid path, without the path itself: one type for both
/// protocols, each carrying a different subset of it. The default is the
/// empty value: no hash, no references, nothing known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathInfo {
    /// The derivation that produced it, if known.
    pub deriver: Option<StorePath>,
    /// The SHA-256 of its NAR; `None` only from serve servers before 2.4,
    /// which do not send it.
    pub nar_hash: Option<NarHash>,
    /// The paths it refers to.
    pub references: Vec<StorePath>,
    /// When it was registered, seconds since the epoch (0: not sent).
    pub registration_time: u64,
    /// The NAR's size in bytes.
    pub nar_size: u64,
    /// The serve protocol's download size (servers send the NAR size
    /// again); 0 where not sent.
    pub download_size: u64,
    /// Whether it was built locally (trusted without signatures).
    pub ultimate: bool,
    /// Signatures.
    pub sigs: Vec<Signature>,
    /// Its content address, if it is content-addressed.
    pub ca: Option<ContentAddress>,
    /// Where it came from, as JSON text (Determinate Nix's worker feature
    /// `provenance`); `None` where not sent or empty. Kept as the bytes
    /// that came: nothing here reads it.
    pub provenance: Option<NixString>,
}
