//! The serve protocol (`nix-store --serve`, the transport of `ssh://` stores
//! and of Hydra's queue runner).
//!
//! - [`messages`]: the requests and replies, and this protocol's layouts of
//!   the shared store types.
//! - The operation table below: one row per command, from which [`Command`],
//!   [`Request`], [`Reply`] and the typed [`Op`] come.
//! - [`Client`] and [`Server`]: the two ends, each a
//!   [`Connection`](crate::conn::Connection).
//!
//! # The conversation
//! The client sends its magic and version; the server answers with its magic
//! and version; both then speak min(client, server). After that the client
//! sends commands and the server answers each, in order, with no framing: a
//! reply is known by the request it answers. `DumpStorePath`'s reply is a
//! bare NAR, found to end by [`NarFramer`](crate::nar::NarFramer). Build logs
//! do not travel in this stream at all: the server writes them to its
//! stderr, which a client takes through `handle_stderr`.

mod client;
pub mod messages;
mod server;

pub use client::{Client, ClientConfig, ClientEvent};
pub use messages::ImportPaths;
pub use server::{Server, ServerConfig, ServerEvent};

use crate::conn::operations;
use crate::store::{BuildResult, StorePath};
use crate::wire::Serve;
use messages::{
    Ack, AddToStoreNar, BuildDerivation, BuildPaths, BuildPathsResult, DumpStorePath, NarDone,
    PathInfos, QueryClosure, QueryPathInfos, QueryValidPaths,
};

operations! {
    protocol Serve;
    /// The command code at the start of every request. Code 5 (ExportPaths)
    /// was removed from Nix and is refused.
    pub enum Command ("a serve command");

    /// Which of these paths are valid on the server.
    1 QueryValidPaths(QueryValidPaths) -> Vec<StorePath>,
        since (2, 0), body None, reply Message;
    /// Metadata of these paths.
    2 QueryPathInfos(QueryPathInfos) -> PathInfos,
        since (2, 0), body None, reply Message;
    /// The NAR of one path.
    3 DumpStorePath(DumpStorePath) -> NarDone,
        since (2, 0), body None, reply BareNar;
    /// Add paths in the export format (kept for Hydra).
    4 ImportPaths(ImportPaths) -> Ack,
        since (2, 0), body Export, reply Message;
    /// Build derivations or outputs named by path.
    6 BuildPaths(BuildPaths) -> BuildPathsResult,
        since (2, 0), body None, reply Message;
    /// The closure of these paths.
    7 QueryClosure(QueryClosure) -> Vec<StorePath>,
        since (2, 0), body None, reply Message;
    /// Build a derivation sent in its wire form.
    8 BuildDerivation(BuildDerivation) -> BuildResult,
        since (2, 0), body None, reply Message;
    /// Add one path with its metadata and NAR.
    9 AddToStoreNar(AddToStoreNar) -> Ack,
        since (2, 5), body SizedNar, reply Message;
}

pub use crate::conn::RequestId;
