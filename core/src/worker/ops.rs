//! TEMPORARY stand-in for the worker operation table (being written
//! separately): a few operations to build the connections against.

use super::messages::{AddToStoreNar, Done, IsValidPath, NarDone, NarFromPath, QueryValidPaths};
use crate::conn::{BodyKind, operations};
use crate::store::StorePath;
use crate::wire::{Version, Worker};

operations! {
    protocol Worker;
    /// The operation code at the start of every request.
    pub enum Command ("a worker operation");

    /// Whether a path is valid.
    1 IsValidPath(IsValidPath) -> bool,
        since (1, 0), body None, reply Message;
    /// Which of these paths are valid.
    31 QueryValidPaths(QueryValidPaths) -> Vec<StorePath>,
        since (1, 12), body None, reply Message;
    /// The NAR of a path.
    38 NarFromPath(NarFromPath) -> NarDone,
        since (1, 17), body None, reply BareNar;
    /// Add one path with its NAR.
    39 AddToStoreNar(AddToStoreNar) -> Done,
        since (1, 17), body Framed, reply Message;
}

/// The body an operation has at `version`.
pub fn body_at(command: Command, version: Version) -> BodyKind {
    match command {
        Command::AddToStoreNar if version < Version::new(1, 23) => BodyKind::Pulled,
        other => other.body(),
    }
}
