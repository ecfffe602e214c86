//! TEMPORARY stand-in for the worker messages (being written separately).

use crate::store::{NarHash, StorePath};
use crate::wire::{Base16Hash, Cx, Decoded, Reader, Wire, Worker};
use crate::wire_message;

wire_message! {
    /// IsValidPath.
    pub struct IsValidPath in Worker {
        /// The path.
        pub path: StorePath,
    }
}

wire_message! {
    /// QueryValidPaths.
    pub struct QueryValidPaths in Worker {
        /// The paths.
        pub paths: Vec<StorePath>,
        /// Substitute.
        #[since(1, 27)]
        pub substitute: bool = false,
    }
}

wire_message! {
    /// NarFromPath.
    pub struct NarFromPath in Worker {
        /// The path.
        pub path: StorePath,
    }
}

wire_message! {
    /// AddToStoreNar.
    pub struct AddToStoreNar in Worker {
        /// The path.
        pub path: StorePath,
        /// Deriver.
        pub deriver: Option<StorePath>,
        /// Hash.
        #[with(Base16Hash)]
        pub nar_hash: NarHash,
        /// Refs.
        pub references: Vec<StorePath>,
        /// Time.
        pub registration_time: u64,
        /// Size.
        pub nar_size: u64,
        /// Ultimate.
        pub ultimate: bool,
        /// Sigs.
        pub sigs: Vec<crate::store::Signature>,
        /// CA.
        pub ca: Option<crate::store::ContentAddress>,
        /// Repair.
        pub repair: bool,
        /// Don't check sigs.
        pub dont_check_sigs: bool,
    }
}

/// No reply beyond the end of the STDERR stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Done;

impl Wire<Worker> for Done {
    type Partial = ();
    fn encode(&self, _cx: &Cx<Worker>, _out: &mut Vec<u8>) {}
    fn decode(_cx: &Cx<Worker>, _partial: &mut (), _r: &mut Reader<'_>) -> Decoded<Self> {
        Ok(Some(Self))
    }
}

/// The end of a NarFromPath reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NarDone {
    /// The NAR's size.
    pub nar_size: u64,
}

impl Wire<Worker> for NarDone {
    type Partial = ();
    fn encode(&self, _cx: &Cx<Worker>, _out: &mut Vec<u8>) {}
    fn decode(_cx: &Cx<Worker>, _partial: &mut (), _r: &mut Reader<'_>) -> Decoded<Self> {
        Ok(Some(Self::default()))
    }
}
