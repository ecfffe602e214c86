//! The worker protocol's operation table: one row per operation, from which
//! [`Command`], [`Request`], [`Reply`], the typed [`Op`] and each
//! operation's version, feature, body and reply kind come.
//!
//! `since` is the first version a client may use the operation at; for
//! operations older than the oldest version this crate speaks (1.21) it is
//! 1.21. Daemons do not check versions per operation: a client that uses
//! one too early is answered with an error, or misread.
//!
//! A row's body kind is the body at the newest version; [`body_at`] gives
//! it at any version (two operations changed how their data travels).

use crate::conn::{BodyKind, operations};
use crate::store::{
    BuildResult, DerivedPath, DerivedPathError, DrvOutput, NarHash, OutputName, PathInfo,
    Realisation, StorePath,
};
use crate::wire::{Cx, NixString, Version, Worker};

use super::messages::{AddToStoreScanning, GcAction, GcPaths, SubmitOutput};

use super::messages::{
    Ack, AddBuildLog, AddIndirectRoot, AddMultipleToStore, AddPermRoot, AddSignatures, AddTempRoot,
    AddTempRoots, AddTextToStore, AddToStore, AddToStoreNar, AddToStoreResult, BuildDerivation,
    BuildPaths, BuildPathsWithResults, CollectGarbage, Done, EnsurePath, FindRoots, GcResults,
    HasSubstitutes, IsValidPath, KeyedBuildResult, Missing, NarDone, NarFromPath, OptimiseStore,
    QueryActiveBuilds, QueryAllValidPaths, QueryDerivationOutputMap, QueryDerivationOutputNames,
    QueryDerivationOutputs, QueryDeriver, QueryMissing, QueryPathFromHashPart, QueryPathHash,
    QueryPathInfo, QueryPathInfos, QueryRealisation, QueryReferences, QueryReferrers,
    QuerySubstitutablePathInfo, QuerySubstitutablePathInfos, QuerySubstitutablePaths,
    QueryValidDerivers, QueryValidPaths, RegisterDrvOutput, SetOptions, SubstitutablePathInfo,
    SyncWithGC, ValidPathInfo, VerifyStore,
};

operations! {
    protocol Worker;
    /// The operation code at the start of every request: every operation
    /// upstream Nix (2.3 to 2.35) and Determinate Nix answer. Codes no
    /// daemon this crate speaks to answers are in [`REMOVED`]; an unknown
    /// code does not decode.
    pub enum Command ("a worker operation");

    /// Whether a path is valid.
    1 IsValidPath(IsValidPath) -> bool,
        since (1, 21), body None, reply Message;
    /// Whether a substitute exists (refused by daemons from Nix 2.34).
    3 HasSubstitutes(HasSubstitutes) -> bool,
        since (1, 21), body None, reply Message;
    /// A path's NAR hash (refused by daemons from Nix 2.34).
    4 QueryPathHash(QueryPathHash) -> NarHash,
        since (1, 21), body None, reply Message;
    /// A path's references (refused by daemons from Nix 2.34).
    5 QueryReferences(QueryReferences) -> Vec<StorePath>,
        since (1, 21), body None, reply Message;
    /// The paths referring to a path.
    6 QueryReferrers(QueryReferrers) -> Vec<StorePath>,
        since (1, 21), body None, reply Message;
    /// Add a path from data, named by its content (two forms; see
    /// [`AddToStore`] and [`body_at`]).
    7 AddToStore(AddToStore) -> AddToStoreResult,
        since (1, 21), body Framed, reply Message;
    /// Add a text file (obsolete since 1.25; Nix 2.3's client uses it).
    8 AddTextToStore(AddTextToStore) -> StorePath,
        since (1, 21), body None, reply Message;
    /// Build or substitute derived paths.
    9 BuildPaths(BuildPaths) -> Ack,
        since (1, 21), body None, reply Message;
    /// Make a path valid, substituting it if needed.
    10 EnsurePath(EnsurePath) -> Ack,
        since (1, 21), body None, reply Message;
    /// Protect a path from garbage collection for the connection's life.
    11 AddTempRoot(AddTempRoot) -> Ack,
        since (1, 21), body None, reply Message;
    /// Make a path outside the store an indirect root.
    12 AddIndirectRoot(AddIndirectRoot) -> Ack,
        since (1, 21), body None, reply Message;
    /// Obsolete; answered at once.
    13 SyncWithGC(SyncWithGC) -> Ack,
        since (1, 21), body None, reply Message;
    /// The garbage collector's roots: (link, path) pairs.
    14 FindRoots(FindRoots) -> Vec<(NixString, StorePath)>,
        since (1, 21), body None, reply Message;
    /// A path's deriver (obsolete).
    18 QueryDeriver(QueryDeriver) -> Option<StorePath>,
        since (1, 21), body None, reply Message;
    /// The client's settings.
    19 SetOptions(SetOptions) -> Done,
        since (1, 21), body None, reply Message;
    /// Collect garbage.
    20 CollectGarbage(CollectGarbage) -> GcResults,
        since (1, 21), body None, reply Message;
    /// What substituters know of a path.
    21 QuerySubstitutablePathInfo(QuerySubstitutablePathInfo) -> Option<SubstitutablePathInfo>,
        since (1, 21), body None, reply Message;
    /// A derivation's output paths (obsolete).
    22 QueryDerivationOutputs(QueryDerivationOutputs) -> Vec<StorePath>,
        since (1, 21), body None, reply Message;
    /// Every valid path.
    23 QueryAllValidPaths(QueryAllValidPaths) -> Vec<StorePath>,
        since (1, 21), body None, reply Message;
    /// A path's metadata, if it is valid.
    26 QueryPathInfo(QueryPathInfo) -> Option<PathInfo>,
        since (1, 21), body None, reply Message;
    /// A derivation's output names (obsolete).
    28 QueryDerivationOutputNames(QueryDerivationOutputNames) -> Vec<OutputName>,
        since (1, 21), body None, reply Message;
    /// The valid path with a hash part.
    29 QueryPathFromHashPart(QueryPathFromHashPart) -> Option<StorePath>,
        since (1, 21), body None, reply Message;
    /// What substituters know of many paths.
    30 QuerySubstitutablePathInfos(QuerySubstitutablePathInfos) -> Vec<(StorePath, SubstitutablePathInfo)>,
        since (1, 21), body None, reply Message;
    /// Which paths are valid.
    31 QueryValidPaths(QueryValidPaths) -> Vec<StorePath>,
        since (1, 21), body None, reply Message;
    /// Which paths some substituter has.
    32 QuerySubstitutablePaths(QuerySubstitutablePaths) -> Vec<StorePath>,
        since (1, 21), body None, reply Message;
    /// The derivations known to produce a path.
    33 QueryValidDerivers(QueryValidDerivers) -> Vec<StorePath>,
        since (1, 21), body None, reply Message;
    /// Deduplicate the store's files.
    34 OptimiseStore(OptimiseStore) -> Ack,
        since (1, 21), body None, reply Message;
    /// Check the store's consistency.
    35 VerifyStore(VerifyStore) -> bool,
        since (1, 21), body None, reply Message;
    /// Build a derivation sent inline.
    36 BuildDerivation(BuildDerivation) -> BuildResult,
        since (1, 21), body None, reply Message;
    /// Add signatures to a path.
    37 AddSignatures(AddSignatures) -> Ack,
        since (1, 21), body None, reply Message;
    /// A path's NAR, after the log stream.
    38 NarFromPath(NarFromPath) -> NarDone,
        since (1, 21), body None, reply BareNar;
    /// Add a path with its metadata and NAR (pulled before 1.23, framed
    /// from 1.23; see [`body_at`]).
    39 AddToStoreNar(AddToStoreNar) -> Done,
        since (1, 21), body Framed, reply Message;
    /// What realising derived paths would do.
    40 QueryMissing(QueryMissing) -> Missing,
        since (1, 21), body None, reply Message;
    /// A derivation's outputs and their paths where known.
    41 QueryDerivationOutputMap(QueryDerivationOutputMap) -> Vec<(OutputName, Option<StorePath>)>,
        since (1, 22), body None, reply Message;
    /// Record a derivation output's realisation.
    42 RegisterDrvOutput(RegisterDrvOutput) -> Done,
        since (1, 27), body None, reply Message;
    /// A derivation output's realisation, if known.
    43 QueryRealisation(QueryRealisation) -> Option<Realisation>,
        since (1, 27), body None, reply Message;
    /// Add many paths in one framed body.
    44 AddMultipleToStore(AddMultipleToStore) -> Done,
        since (1, 32), body Framed, reply Message;
    /// Store a derivation's build log, sent framed.
    45 AddBuildLog(AddBuildLog) -> Ack,
        since (1, 32), body Framed, reply Message;
    /// Build derived paths, with a result for each.
    46 BuildPathsWithResults(BuildPathsWithResults) -> Vec<KeyedBuildResult>,
        since (1, 34), body None, reply Message;
    /// Make a permanent garbage-collector root.
    47 AddPermRoot(AddPermRoot) -> NixString,
        since (1, 36), body None, reply Message;
    /// The builds under way (Determinate Nix).
    48 QueryActiveBuilds(QueryActiveBuilds) -> NixString,
        since (1, 38), feature "queryActiveBuilds", body None, reply Message;
    /// Protect many paths from garbage collection (Determinate Nix).
    49 AddTempRoots(AddTempRoots) -> Ack,
        since (1, 38), feature "addTempRoots", body None, reply Message;
    /// Metadata of many paths (Determinate Nix).
    50 QueryPathInfos(QueryPathInfos) -> Vec<ValidPathInfo>,
        since (1, 38), feature "queryPathInfos", body None, reply Message;
    /// Declare a build's output (inside builds, upstream's `builder-rpc-v0`).
    1000 SubmitOutput(SubmitOutput) -> Ack,
        since (1, 38), feature "submit-output", body None, reply Message;
    /// Add data, references found by scanning (inside builds).
    1001 AddToStoreScanning(AddToStoreScanning) -> ValidPathInfo,
        since (1, 38), feature "add-to-store-scanning", body Framed, reply Message;
}

/// What follows `command`'s request header at `version`:
/// - `AddToStoreNar`: before 1.23 [`BodyKind::Pulled`] (the daemon asks for
///   the NAR piece by piece with `STDERR_READ`), from 1.23
///   [`BodyKind::Framed`];
/// - `AddToStore`: before 1.25 [`BodyKind::BareNar`] (the NAR with no
///   length in front, right after the header), from 1.25
///   [`BodyKind::Framed`];
/// - `AddMultipleToStore`, `AddBuildLog` and `AddToStoreScanning`:
///   [`BodyKind::Framed`];
/// - every other operation: what its row says ([`Command::body`]).
pub fn body_at(command: Command, version: Version) -> BodyKind {
    match command {
        Command::AddToStoreNar if version < Version::new(1, 23) => BodyKind::Pulled,
        Command::AddToStore if version < Version::new(1, 25) => BodyKind::BareNar,
        other => other.body(),
    }
}

/// What a request's body holds, which decides how it is checked and when it
/// ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyContent {
    /// A NAR, checked as it passes and ended by its grammar (and by the
    /// size the request states, when it states one).
    Nar {
        /// The NAR's size, when the request states it.
        size: Option<u64>,
    },
    /// Data the core does not look into (a log, a flat file, the path
    /// infos and NARs of `AddMultipleToStore`): the host says where it
    /// ends (`finish_body`).
    Data,
}

/// What the body of `request` holds at `version`: a NAR for
/// `AddToStoreNar`, for `AddToStore` before 1.25 (Nix sends even a flat
/// file as a NAR then) and from 1.25 for the NAR and git methods; data for
/// everything else.
pub fn body_content(request: &Request, version: Version) -> BodyContent {
    match request {
        Request::AddToStoreNar(m) => BodyContent::Nar {
            size: Some(m.nar_size),
        },
        Request::AddToStore(_) if version < Version::new(1, 25) => BodyContent::Nar { size: None },
        Request::AddToStore(m)
            if m.method_algo.as_bytes().starts_with(b"fixed:r:")
                || m.method_algo.as_bytes().starts_with(b"fixed:git:") =>
        {
            BodyContent::Nar { size: None }
        }
        _ => BodyContent::Data,
    }
}

/// Operation codes that are not in the table, with why. A request with one
/// of these codes does not decode.
pub const REMOVED: &[(u64, &str)] = &[
    (2, "never assigned (a gap since the protocol's beginning)"),
    (
        16,
        "ExportPath: removed from Nix after 2.3; its data travelled as STDERR_WRITE messages in the log stream",
    ),
    (
        24,
        "QueryFailedPaths: no daemon from Nix 2.3 on answers it (the failed-paths cache is gone)",
    ),
    (
        25,
        "ClearFailedPaths: no daemon from Nix 2.3 on answers it (the failed-paths cache is gone)",
    ),
    (
        27,
        "ImportPaths: removed from Nix after 2.3 (AddMultipleToStore replaced it); its data was pulled with STDERR_READ in the export format",
    ),
];

/// Why a request or reply cannot be said at a connection's version and
/// features. Encoding never fails: what cannot be said is written in a
/// form the peer refuses or, worse, misreads (a derivation's path before
/// 1.30 means its outputs), so a sender checks first with
/// [`Request::check`] or [`Reply::check`], as Nix's client refuses to send
/// such requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsayable {
    /// The operation does not exist at the version, or without its feature.
    #[error(
        "{op} needs worker protocol {since}{}, but {version} was negotiated{}",
        feature.map(|f| format!(" and the feature {f:?}")).unwrap_or_default(),
        if *feature_agreed { "" } else { " without that feature" }
    )]
    NotAvailable {
        /// The operation.
        op: Command,
        /// Its first version.
        since: Version,
        /// The feature it needs, if any.
        feature: Option<&'static str>,
        /// The negotiated version.
        version: Version,
        /// Whether the feature (if any) was agreed.
        feature_agreed: bool,
    },
    /// A derived path has no text form at the version.
    #[error("{op}: {source}")]
    DerivedPath {
        /// The operation.
        op: Command,
        /// Why.
        source: DerivedPathError,
    },
    /// A derivation output named by hash where the peers agreed to name
    /// them by path, or the other way round.
    #[error(
        "{op}: a derivation output named by {} cannot be sent {} the feature {:?}",
        if *by_path { "path" } else { "hash" },
        if *by_path { "without" } else { "with" },
        super::features::REALISATION_WITH_PATH_NOT_HASH
    )]
    DrvOutputForm {
        /// The operation.
        op: Command,
        /// Whether the output was named by path.
        by_path: bool,
    },
    /// A realisation that must say which output it is has no id.
    #[error("{op}: the realisation of {out_path} has no id (which output it is)")]
    NoRealisationId {
        /// The operation.
        op: Command,
        /// The realisation's path.
        out_path: StorePath,
    },
    /// A path info without the NAR hash this protocol always sends.
    #[error("{op}: the path info has no NAR hash")]
    NoNarHash {
        /// The operation.
        op: Command,
    },
    /// A CPU time above what Nix reads (a signed 64-bit count of
    /// microseconds).
    #[error("{op}: a CPU time of {micros} µs is more than Nix reads (2^63-1)")]
    CpuTime {
        /// The operation.
        op: Command,
        /// The time.
        micros: u64,
    },
    /// Garbage-collection paths the form without
    /// `delete-dead-specific-referrers` cannot say.
    #[error(
        "CollectGarbage: {0} cannot be said without the feature \"delete-dead-specific-referrers\""
    )]
    GcPaths(&'static str),
}

fn derived(op: Command, cx: &Cx<Worker>, paths: &[DerivedPath]) -> Result<(), Unsayable> {
    for path in paths {
        let checked = if cx.since(1, 30) {
            path.check_legacy(&cx.store_dir)
        } else {
            path.to_path_with_outputs(&cx.store_dir).map(drop)
        };
        checked.map_err(|source| Unsayable::DerivedPath { op, source })?;
    }
    Ok(())
}

fn by_path(cx: &Cx<Worker>) -> bool {
    cx.features
        .has(super::features::REALISATION_WITH_PATH_NOT_HASH)
}

fn drv_output(op: Command, cx: &Cx<Worker>, id: &DrvOutput) -> Result<(), Unsayable> {
    let is_path = matches!(id, DrvOutput::Path { .. });
    if is_path == by_path(cx) {
        Ok(())
    } else {
        Err(Unsayable::DrvOutputForm {
            op,
            by_path: is_path,
        })
    }
}

fn path_info(op: Command, info: &PathInfo) -> Result<(), Unsayable> {
    match info.nar_hash {
        Some(_) => Ok(()),
        None => Err(Unsayable::NoNarHash { op }),
    }
}

fn build_result(op: Command, cx: &Cx<Worker>, result: &BuildResult) -> Result<(), Unsayable> {
    if cx.since(1, 37) {
        for micros in [result.cpu_user, result.cpu_system].into_iter().flatten() {
            if i64::try_from(micros).is_err() {
                return Err(Unsayable::CpuTime { op, micros });
            }
        }
    }
    Ok(())
}

impl Request {
    /// Whether this request can be said at `cx`: the operation exists
    /// there, and every value has a form at its version and features (see
    /// [`Unsayable`]). Fields a version does not have are simply not sent,
    /// as in Nix; they are not checked here.
    pub fn check(&self, cx: &Cx<Worker>) -> Result<(), Unsayable> {
        let op = self.command();
        if !op.available(cx) {
            return Err(Unsayable::NotAvailable {
                op,
                since: op.since(),
                feature: op.feature(),
                version: cx.version,
                feature_agreed: op.feature().is_none_or(|f| cx.features.has(f)),
            });
        }
        match self {
            Self::BuildPaths(r) => derived(op, cx, &r.paths),
            Self::BuildPathsWithResults(r) => derived(op, cx, &r.paths),
            Self::QueryMissing(r) => derived(op, cx, &r.targets),
            Self::QueryRealisation(r) => drv_output(op, cx, &r.id),
            Self::RegisterDrvOutput(r) => match &r.realisation.id {
                Some(id) => drv_output(op, cx, id),
                None => Err(Unsayable::NoRealisationId {
                    op,
                    out_path: r.realisation.out_path.clone(),
                }),
            },
            Self::CollectGarbage(r)
                if !cx
                    .features
                    .has(super::features::DELETE_DEAD_SPECIFIC_REFERRERS) =>
            {
                match &r.paths {
                    GcPaths::Specific {
                        delete_referrers: true,
                        ..
                    } => Err(Unsayable::GcPaths("deleting referrers")),
                    GcPaths::Specific { paths, .. }
                        if paths.is_empty() && r.action != GcAction::DeleteSpecific =>
                    {
                        Err(Unsayable::GcPaths(
                            "an empty set of paths (it means the whole store)",
                        ))
                    }
                    GcPaths::WholeStore if r.action == GcAction::DeleteSpecific => {
                        Err(Unsayable::GcPaths(
                            "the whole store for DeleteSpecific (an empty set means no paths)",
                        ))
                    }
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

impl Reply {
    /// Whether this reply can be said at `cx` (see [`Unsayable`]).
    pub fn check(&self, cx: &Cx<Worker>) -> Result<(), Unsayable> {
        let op = self.command();
        match self {
            Self::QueryPathInfo(Some(info)) => path_info(op, info),
            Self::AddToStore(r) if cx.since(1, 25) => path_info(op, &r.info),
            Self::QueryPathInfos(infos) => infos.iter().try_for_each(|i| path_info(op, &i.info)),
            Self::AddToStoreScanning(i) => path_info(op, &i.info),
            Self::BuildDerivation(result) => build_result(op, cx, result),
            Self::BuildPathsWithResults(results) => {
                for keyed in results {
                    derived(op, cx, std::slice::from_ref(&keyed.path))?;
                    build_result(op, cx, &keyed.result)?;
                }
                Ok(())
            }
            // From 1.31 without the feature, a realisation travels as JSON
            // with its id.
            Self::QueryRealisation(Some(r)) if !by_path(cx) && cx.since(1, 31) => match &r.id {
                Some(id) => drv_output(op, cx, id),
                None => Err(Unsayable::NoRealisationId {
                    op,
                    out_path: r.out_path.clone(),
                }),
            },
            _ => Ok(()),
        }
    }
}
