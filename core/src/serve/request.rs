//! Requests and replies: a [`Command`] code followed by that command's message,
//! and the reply each command owns.

use super::messages::{
    Ack, AddToStoreNar, BuildDerivation, BuildPaths, BuildPathsResult, BuildResult, Command,
    DumpStorePath, ExportTrailer, PathInfos, QueryClosure, QueryPathInfos, QueryValidPaths,
    StorePath,
};
use crate::wire::{Cx, Wire, WireResult};

/// The `ImportPaths` request as a client sends it: the paths' metadata, in the
/// order their NARs will follow. On the wire each NAR comes *before* its
/// metadata, so a server learns the paths one by one
/// ([`ServerEvent::ImportedPath`](super::ServerEvent::ImportedPath)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportPaths {
    /// One trailer per NAR the client will stream.
    pub paths: Vec<ExportTrailer>,
}

/// A request: one of the eight serve commands with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Command 1.
    QueryValidPaths(QueryValidPaths),
    /// Command 2.
    QueryPathInfos(QueryPathInfos),
    /// Command 3; the reply is a NAR stream.
    DumpStorePath(DumpStorePath),
    /// Command 4; the client streams one NAR per path after it.
    ImportPaths(ImportPaths),
    /// Command 6.
    BuildPaths(BuildPaths),
    /// Command 7.
    QueryClosure(QueryClosure),
    /// Command 8.
    BuildDerivation(BuildDerivation),
    /// Command 9; the client streams `nar_size` bytes of NAR after it.
    AddToStoreNar(AddToStoreNar),
}

impl Request {
    /// The command code.
    pub fn command(&self) -> Command {
        match self {
            Self::QueryValidPaths(_) => Command::QueryValidPaths,
            Self::QueryPathInfos(_) => Command::QueryPathInfos,
            Self::DumpStorePath(_) => Command::DumpStorePath,
            Self::ImportPaths(_) => Command::ImportPaths,
            Self::BuildPaths(_) => Command::BuildPaths,
            Self::QueryClosure(_) => Command::QueryClosure,
            Self::BuildDerivation(_) => Command::BuildDerivation,
            Self::AddToStoreNar(_) => Command::AddToStoreNar,
        }
    }

    /// Appends the command code and the request's message. For `ImportPaths`
    /// that is the code alone: the paths travel with their NARs.
    pub fn encode_header(&self, cx: &Cx, out: &mut Vec<u8>) {
        self.command().encode(cx, out);
        match self {
            Self::QueryValidPaths(m) => m.encode(cx, out),
            Self::QueryPathInfos(m) => m.encode(cx, out),
            Self::DumpStorePath(m) => m.encode(cx, out),
            Self::ImportPaths(_) => {}
            Self::BuildPaths(m) => m.encode(cx, out),
            Self::QueryClosure(m) => m.encode(cx, out),
            Self::BuildDerivation(m) => m.encode(cx, out),
            Self::AddToStoreNar(m) => m.encode(cx, out),
        }
    }

    /// Decodes a command code and its message. An `ImportPaths` decodes with
    /// no paths: they follow, each after its NAR.
    pub fn decode_header<'a>(cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        let (rest, command) = Command::decode(cx, input)?;
        Ok(match command {
            Command::QueryValidPaths => wrap(Self::QueryValidPaths, cx, rest)?,
            Command::QueryPathInfos => wrap(Self::QueryPathInfos, cx, rest)?,
            Command::DumpStorePath => wrap(Self::DumpStorePath, cx, rest)?,
            Command::ImportPaths => (rest, Self::ImportPaths(ImportPaths::default())),
            Command::BuildPaths => wrap(Self::BuildPaths, cx, rest)?,
            Command::QueryClosure => wrap(Self::QueryClosure, cx, rest)?,
            Command::BuildDerivation => wrap(Self::BuildDerivation, cx, rest)?,
            Command::AddToStoreNar => wrap(Self::AddToStoreNar, cx, rest)?,
        })
    }
}

fn wrap<'a, M: Wire, T>(f: impl FnOnce(M) -> T, cx: &Cx, input: &'a [u8]) -> WireResult<'a, T> {
    let (rest, m) = M::decode(cx, input)?;
    Ok((rest, f(m)))
}

/// A reply, the answer owned by one request. The serve protocol's replies are
/// not self-describing: which one comes is known from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The valid paths among those asked.
    QueryValidPaths(Vec<StorePath>),
    /// Metadata of the valid paths among those asked.
    QueryPathInfos(PathInfos),
    /// The NAR has ended; its bytes came as chunks before this.
    DumpStorePath {
        /// The NAR's length in bytes.
        nar_size: u64,
    },
    /// The server imported every path.
    ImportPaths,
    /// The outcome of `BuildPaths`.
    BuildPaths(BuildPathsResult),
    /// The closure.
    QueryClosure(Vec<StorePath>),
    /// The outcome of `BuildDerivation`.
    BuildDerivation(BuildResult),
    /// The server added the path.
    AddToStoreNar,
}

impl Reply {
    /// The command this reply answers.
    pub fn command(&self) -> Command {
        match self {
            Self::QueryValidPaths(_) => Command::QueryValidPaths,
            Self::QueryPathInfos(_) => Command::QueryPathInfos,
            Self::DumpStorePath { .. } => Command::DumpStorePath,
            Self::ImportPaths => Command::ImportPaths,
            Self::BuildPaths(_) => Command::BuildPaths,
            Self::QueryClosure(_) => Command::QueryClosure,
            Self::BuildDerivation(_) => Command::BuildDerivation,
            Self::AddToStoreNar => Command::AddToStoreNar,
        }
    }

    /// Appends the reply's bytes. `DumpStorePath`'s reply is the NAR itself,
    /// which a server streams instead, so nothing is written for it here.
    pub fn encode(&self, cx: &Cx, out: &mut Vec<u8>) {
        match self {
            Self::QueryValidPaths(m) | Self::QueryClosure(m) => m.encode(cx, out),
            Self::QueryPathInfos(m) => m.encode(cx, out),
            Self::DumpStorePath { .. } => {}
            Self::ImportPaths | Self::AddToStoreNar => Ack.encode(cx, out),
            Self::BuildPaths(m) => m.encode(cx, out),
            Self::BuildDerivation(m) => m.encode(cx, out),
        }
    }

    /// Decodes the reply to `command`. Not for `DumpStorePath`, whose reply is
    /// framed by [`NarFramer`](crate::nar::NarFramer).
    pub fn decode<'a>(command: Command, cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        let within = |e: nom::Err<crate::wire::DecodeError>| {
            e.map(|e| e.within(command_name(command)).within("reply"))
        };
        Ok(match command {
            Command::QueryValidPaths => wrap(Self::QueryValidPaths, cx, input).map_err(within)?,
            Command::QueryPathInfos => wrap(Self::QueryPathInfos, cx, input).map_err(within)?,
            Command::DumpStorePath => (input, Self::DumpStorePath { nar_size: 0 }),
            Command::ImportPaths => wrap(|Ack| Self::ImportPaths, cx, input).map_err(within)?,
            Command::BuildPaths => wrap(Self::BuildPaths, cx, input).map_err(within)?,
            Command::QueryClosure => wrap(Self::QueryClosure, cx, input).map_err(within)?,
            Command::BuildDerivation => wrap(Self::BuildDerivation, cx, input).map_err(within)?,
            Command::AddToStoreNar => wrap(|Ack| Self::AddToStoreNar, cx, input).map_err(within)?,
        })
    }
}

/// The command's name as Nix spells it, for messages.
pub fn command_name(command: Command) -> &'static str {
    match command {
        Command::QueryValidPaths => "QueryValidPaths",
        Command::QueryPathInfos => "QueryPathInfos",
        Command::DumpStorePath => "DumpStorePath",
        Command::ImportPaths => "ImportPaths",
        Command::BuildPaths => "BuildPaths",
        Command::QueryClosure => "QueryClosure",
        Command::BuildDerivation => "BuildDerivation",
        Command::AddToStoreNar => "AddToStoreNar",
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(command_name(*self))
    }
}
