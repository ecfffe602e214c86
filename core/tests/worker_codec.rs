//! Property tests of the worker codec: every request and reply round-trips
//! at every version from 1.21 to 1.38 it exists in, with and without the
//! features that gate its fields; every strict prefix of an encoding is
//! "need more"; resuming after any cut gives the same value; arbitrary bytes
//! never panic a decoder; hostile length prefixes are refused before
//! anything is allocated; and the gates sit where Nix puts them.

mod generators;

use generators::*;
use nixwire_core::conn::BodyKind;
use nixwire_core::store::{
    BasicDerivation, BuildResult, BuildStatus, DerivationOutput, DerivedPath, DrvOutput,
    MAX_NESTING, NarHash, OutputName, OutputsSpec, PathInfo, Realisation, Signature,
    SingleDerivedPath, StorePath,
};
use nixwire_core::wire::{
    Cx, Features, Limits, NixString, Reader, Version, Wire, Worker, encode_u64,
};
use nixwire_core::worker::messages::*;
use nixwire_core::worker::{
    Command, LATEST, MINIMUM, REMOVED, Reply, ReplyPartial, Request, RequestPartial, Unsayable,
    body_at, features,
};
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// Every worker minor version this crate speaks.
fn versions() -> impl Iterator<Item = Version> {
    (MINIMUM.minor..=LATEST.minor).map(|m| Version::new(1, m))
}

/// The features that change shapes or add operations.
const SHAPING: &[&str] = &[
    features::REALISATION_WITH_PATH_NOT_HASH,
    features::DELETE_DEAD_SPECIFIC_REFERRERS,
    features::SUBMIT_OUTPUT,
    features::ADD_TO_STORE_SCANNING,
    features::PROVENANCE,
    features::VERSIONED_ADD_TO_STORE_MULTIPLE,
    features::QUERY_ACTIVE_BUILDS,
    features::ADD_TEMP_ROOTS,
    features::QUERY_PATH_INFOS,
];

fn cx_with(version: Version, features: &[&str]) -> Cx<Worker> {
    let mut cx = Cx::<Worker>::new(version);
    cx.features = Features::new(features.iter().copied());
    cx
}

fn has(cx: &Cx<Worker>, feature: &str) -> bool {
    cx.features.has(feature)
}

// ---- generators of values valid at a context ----

fn provenance(g: &mut Gen, cx: &Cx<Worker>) -> Option<NixString> {
    (has(cx, features::PROVENANCE) && bool::arbitrary(g)).then(|| nonempty(g))
}

fn path_info(g: &mut Gen, cx: &Cx<Worker>) -> PathInfo {
    PathInfo {
        deriver: opt_path(g),
        nar_hash: Some(nar_hash(g)),
        references: paths(g),
        registration_time: u64::arbitrary(g),
        nar_size: u64::arbitrary(g),
        download_size: 0,
        ultimate: bool::arbitrary(g),
        sigs: sigs(g),
        ca: ca(g),
        provenance: provenance(g, cx),
    }
}

fn valid_path_info(g: &mut Gen, cx: &Cx<Worker>) -> ValidPathInfo {
    ValidPathInfo {
        path: path(g),
        info: path_info(g, cx),
    }
}

/// A derivation hash as Nix prints it: never the dummy, never with a `!`.
fn drv_hash(g: &mut Gen) -> NixString {
    format!(
        "sha256:{:016x}{:016x}",
        u64::arbitrary(g),
        u64::arbitrary(g)
    )
    .into()
}

/// A derivation output in the form the context speaks.
fn drv_output(g: &mut Gen, cx: &Cx<Worker>) -> DrvOutput {
    if has(cx, features::REALISATION_WITH_PATH_NOT_HASH) {
        DrvOutput::Path {
            drv_path: drv(g),
            output: output_name(g),
        }
    } else {
        DrvOutput::Hash {
            drv_hash: drv_hash(g),
            output: output_name(g),
        }
    }
}

fn micros(g: &mut Gen) -> Option<u64> {
    bool::arbitrary(g).then(|| u64::arbitrary(g) >> 1)
}

fn build_result(g: &mut Gen, cx: &Cx<Worker>) -> BuildResult {
    let at = |minor: u8| cx.version >= Version::new(1, minor);
    let structured = has(cx, features::REALISATION_WITH_PATH_NOT_HASH);
    let status = *g.choose(BuildStatus::ALL).unwrap_or(&BuildStatus::Built);
    let built_outputs = if at(28) || structured {
        (0..u8::arbitrary(g) % 3)
            .map(|_| {
                let name = output_name(g);
                // Structured outputs are named by name alone; JSON ones by
                // a real derivation hash, or by the dummy (no id), which
                // carries no signatures.
                let id = (!structured && bool::arbitrary(g)).then(|| DrvOutput::Hash {
                    drv_hash: drv_hash(g),
                    output: name.clone(),
                });
                let signatures = if structured || id.is_some() {
                    sigs(g)
                } else {
                    Vec::new()
                };
                let r = Realisation {
                    id,
                    out_path: path(g),
                    signatures,
                };
                (name, r)
            })
            .collect()
    } else {
        Vec::new()
    };
    BuildResult {
        status,
        error_msg: s(g),
        times_built: if at(29) { u64::arbitrary(g) } else { 0 },
        is_non_deterministic: at(29) && bool::arbitrary(g),
        start_time: if at(29) { u64::arbitrary(g) } else { 0 },
        stop_time: if at(29) { u64::arbitrary(g) } else { 0 },
        cpu_user: if at(37) { micros(g) } else { None },
        cpu_system: if at(37) { micros(g) } else { None },
        built_outputs,
    }
}

fn outputs_spec(g: &mut Gen) -> OutputsSpec {
    if bool::arbitrary(g) {
        OutputsSpec::All
    } else {
        OutputsSpec::Names(
            (0..u8::arbitrary(g) % 3 + 1)
                .map(|_| output_name(g))
                .collect(),
        )
    }
}

/// A derived path the context's text form can say.
fn derived_path(g: &mut Gen, cx: &Cx<Worker>) -> DerivedPath {
    if cx.version >= Version::new(1, 30) {
        match u8::arbitrary(g) % 4 {
            0 => DerivedPath::Opaque(path(g)),
            1 => DerivedPath::Opaque(drv(g)),
            2 => DerivedPath::built(drv(g), outputs_spec(g)),
            _ => DerivedPath::Built {
                drv_path: SingleDerivedPath::Built {
                    drv_path: Box::new(SingleDerivedPath::Opaque(drv(g))),
                    output: output_name(g),
                },
                outputs: outputs_spec(g),
            },
        }
    } else if bool::arbitrary(g) {
        DerivedPath::Opaque(path(g))
    } else {
        DerivedPath::built(drv(g), outputs_spec(g))
    }
}

fn derived_paths(g: &mut Gen, cx: &Cx<Worker>) -> Vec<DerivedPath> {
    (0..u8::arbitrary(g) % 4)
        .map(|_| derived_path(g, cx))
        .collect()
}

fn derivation(g: &mut Gen) -> BasicDerivation {
    BasicDerivation {
        outputs: (0..u8::arbitrary(g) % 3)
            .map(|_| DerivationOutput {
                name: output_name(g),
                path: opt_path(g),
                hash_algo: s(g),
                hash: s(g),
            })
            .collect(),
        input_srcs: paths(g),
        platform: s(g),
        builder: s(g),
        args: (0..u8::arbitrary(g) % 4).map(|_| s(g)).collect(),
        env: (0..u8::arbitrary(g) % 4).map(|_| (s(g), s(g))).collect(),
    }
}

fn mode(g: &mut Gen) -> BuildMode {
    *g.choose(BuildMode::ALL).unwrap_or(&BuildMode::Normal)
}

/// A realisation as the context's `QueryRealisation` reply carries it.
fn queried_realisation(g: &mut Gen, cx: &Cx<Worker>) -> Realisation {
    if has(cx, features::REALISATION_WITH_PATH_NOT_HASH) {
        Realisation {
            id: None,
            out_path: path(g),
            signatures: sigs(g),
        }
    } else if cx.version >= Version::new(1, 31) {
        Realisation {
            id: Some(drv_output(g, cx)),
            out_path: path(g),
            signatures: sigs(g),
        }
    } else {
        Realisation {
            id: None,
            out_path: path(g),
            signatures: Vec::new(),
        }
    }
}

/// A keyed realisation as `RegisterDrvOutput` carries it.
fn registered_realisation(g: &mut Gen, cx: &Cx<Worker>) -> Realisation {
    let with_sigs =
        has(cx, features::REALISATION_WITH_PATH_NOT_HASH) || cx.version >= Version::new(1, 31);
    Realisation {
        id: Some(drv_output(g, cx)),
        out_path: path(g),
        signatures: if with_sigs { sigs(g) } else { Vec::new() },
    }
}

fn add_to_store(g: &mut Gen, cx: &Cx<Worker>) -> AddToStore {
    if cx.version >= Version::new(1, 25) {
        AddToStore {
            name: s(g),
            method_algo: s(g),
            references: paths(g),
            repair: bool::arbitrary(g),
            provenance: provenance(g, cx),
            ..AddToStore::default()
        }
    } else {
        AddToStore {
            name: s(g),
            fixed: bool::arbitrary(g),
            recursive: bool::arbitrary(g),
            hash_algo: s(g),
            ..AddToStore::default()
        }
    }
}

fn set_options(g: &mut Gen) -> SetOptions {
    SetOptions {
        keep_failed: bool::arbitrary(g),
        keep_going: bool::arbitrary(g),
        try_fallback: bool::arbitrary(g),
        verbosity: u64::arbitrary(g),
        max_build_jobs: u64::arbitrary(g),
        max_silent_time: u64::arbitrary(g),
        obsolete_use_build_hook: u64::arbitrary(g),
        verbose_build: u64::arbitrary(g),
        obsolete_log_type: u64::arbitrary(g),
        obsolete_print_build_trace: u64::arbitrary(g),
        build_cores: u64::arbitrary(g),
        use_substitutes: bool::arbitrary(g),
        overrides: (0..u8::arbitrary(g) % 4).map(|_| (s(g), s(g))).collect(),
    }
}

/// A request for `command` and a reply to it, both valid at `cx`.
fn exchange(g: &mut Gen, command: Command, cx: &Cx<Worker>) -> (Request, Reply) {
    let v = cx.version;
    match command {
        Command::IsValidPath => (
            IsValidPath { path: path(g) }.into(),
            Reply::IsValidPath(bool::arbitrary(g)),
        ),
        Command::HasSubstitutes => (
            HasSubstitutes { path: path(g) }.into(),
            Reply::HasSubstitutes(bool::arbitrary(g)),
        ),
        Command::QueryPathHash => (
            QueryPathHash { path: path(g) }.into(),
            Reply::QueryPathHash(nar_hash(g)),
        ),
        Command::QueryReferences => (
            QueryReferences { path: path(g) }.into(),
            Reply::QueryReferences(paths(g)),
        ),
        Command::QueryReferrers => (
            QueryReferrers { path: path(g) }.into(),
            Reply::QueryReferrers(paths(g)),
        ),
        Command::AddToStore => (
            add_to_store(g, cx).into(),
            Reply::AddToStore(AddToStoreResult {
                path: path(g),
                info: if v >= Version::new(1, 25) {
                    path_info(g, cx)
                } else {
                    PathInfo::default()
                },
            }),
        ),
        Command::AddTextToStore => (
            AddTextToStore {
                name: s(g),
                text: s(g),
                references: paths(g),
            }
            .into(),
            Reply::AddTextToStore(path(g)),
        ),
        Command::BuildPaths => (
            BuildPaths {
                paths: derived_paths(g, cx),
                mode: mode(g),
            }
            .into(),
            Reply::BuildPaths(Ack),
        ),
        Command::EnsurePath => (EnsurePath { path: path(g) }.into(), Reply::EnsurePath(Ack)),
        Command::AddTempRoot => (
            AddTempRoot { path: path(g) }.into(),
            Reply::AddTempRoot(Ack),
        ),
        Command::SetOptions => (set_options(g).into(), Reply::SetOptions(Done)),
        Command::QueryPathInfo => (
            QueryPathInfo { path: path(g) }.into(),
            Reply::QueryPathInfo(bool::arbitrary(g).then(|| path_info(g, cx))),
        ),
        Command::QueryValidPaths => (
            QueryValidPaths {
                paths: paths(g),
                substitute: v >= Version::new(1, 27) && bool::arbitrary(g),
            }
            .into(),
            Reply::QueryValidPaths(paths(g)),
        ),
        Command::QueryValidDerivers => (
            QueryValidDerivers { path: path(g) }.into(),
            Reply::QueryValidDerivers(paths(g)),
        ),
        Command::BuildDerivation => (
            BuildDerivation {
                drv_path: drv(g),
                drv: derivation(g),
                mode: mode(g),
            }
            .into(),
            Reply::BuildDerivation(build_result(g, cx)),
        ),
        Command::AddSignatures => (
            AddSignatures {
                path: path(g),
                sigs: sigs(g),
            }
            .into(),
            Reply::AddSignatures(Ack),
        ),
        Command::NarFromPath => (
            NarFromPath { path: path(g) }.into(),
            Reply::NarFromPath(NarDone::default()),
        ),
        Command::AddToStoreNar => (
            AddToStoreNar {
                path: path(g),
                deriver: opt_path(g),
                nar_hash: nar_hash(g),
                references: paths(g),
                registration_time: u64::arbitrary(g),
                nar_size: u64::arbitrary(g),
                ultimate: bool::arbitrary(g),
                sigs: sigs(g),
                ca: ca(g),
                provenance: provenance(g, cx),
                repair: bool::arbitrary(g),
                dont_check_sigs: bool::arbitrary(g),
            }
            .into(),
            Reply::AddToStoreNar(Done),
        ),
        Command::QueryMissing => (
            QueryMissing {
                targets: derived_paths(g, cx),
            }
            .into(),
            Reply::QueryMissing(Missing {
                will_build: paths(g),
                will_substitute: paths(g),
                unknown: paths(g),
                download_size: u64::arbitrary(g),
                nar_size: u64::arbitrary(g),
            }),
        ),
        Command::QueryDerivationOutputMap => (
            QueryDerivationOutputMap { path: drv(g) }.into(),
            Reply::QueryDerivationOutputMap(
                (0..u8::arbitrary(g) % 4)
                    .map(|_| (output_name(g), opt_path(g)))
                    .collect(),
            ),
        ),
        Command::RegisterDrvOutput => (
            RegisterDrvOutput {
                realisation: registered_realisation(g, cx),
            }
            .into(),
            Reply::RegisterDrvOutput(Done),
        ),
        Command::QueryRealisation => (
            QueryRealisation {
                id: drv_output(g, cx),
            }
            .into(),
            Reply::QueryRealisation(bool::arbitrary(g).then(|| queried_realisation(g, cx))),
        ),
        Command::AddMultipleToStore => (
            AddMultipleToStore {
                repair: bool::arbitrary(g),
                dont_check_sigs: bool::arbitrary(g),
            }
            .into(),
            Reply::AddMultipleToStore(Done),
        ),
        Command::AddBuildLog => (
            AddBuildLog { drv_path: drv(g) }.into(),
            Reply::AddBuildLog(Ack),
        ),
        Command::BuildPathsWithResults => (
            BuildPathsWithResults {
                paths: derived_paths(g, cx),
                mode: mode(g),
            }
            .into(),
            Reply::BuildPathsWithResults(
                (0..u8::arbitrary(g) % 3)
                    .map(|_| KeyedBuildResult {
                        path: derived_path(g, cx),
                        result: build_result(g, cx),
                    })
                    .collect(),
            ),
        ),
        Command::QueryActiveBuilds => (QueryActiveBuilds.into(), Reply::QueryActiveBuilds(s(g))),
        Command::AddTempRoots => (
            AddTempRoots { paths: paths(g) }.into(),
            Reply::AddTempRoots(Ack),
        ),
        Command::AddIndirectRoot => (
            AddIndirectRoot { path: s(g) }.into(),
            Reply::AddIndirectRoot(Ack),
        ),
        Command::SyncWithGC => (SyncWithGC.into(), Reply::SyncWithGC(Ack)),
        Command::FindRoots => (
            FindRoots.into(),
            Reply::FindRoots((0..u8::arbitrary(g) % 4).map(|_| (s(g), path(g))).collect()),
        ),
        Command::QueryDeriver => (
            QueryDeriver { path: path(g) }.into(),
            Reply::QueryDeriver(opt_path(g)),
        ),
        Command::CollectGarbage => (
            collect_garbage(g, cx).into(),
            Reply::CollectGarbage(GcResults {
                paths: (0..u8::arbitrary(g) % 4).map(|_| s(g)).collect(),
                bytes_freed: u64::arbitrary(g),
                obsolete: u64::arbitrary(g),
            }),
        ),
        Command::QuerySubstitutablePathInfo => (
            QuerySubstitutablePathInfo { path: path(g) }.into(),
            Reply::QuerySubstitutablePathInfo(bool::arbitrary(g).then(|| substitutable(g))),
        ),
        Command::QueryDerivationOutputs => (
            QueryDerivationOutputs { path: drv(g) }.into(),
            Reply::QueryDerivationOutputs(paths(g)),
        ),
        Command::QueryAllValidPaths => (
            QueryAllValidPaths.into(),
            Reply::QueryAllValidPaths(paths(g)),
        ),
        Command::QueryDerivationOutputNames => (
            QueryDerivationOutputNames { path: drv(g) }.into(),
            Reply::QueryDerivationOutputNames(
                (0..u8::arbitrary(g) % 4).map(|_| output_name(g)).collect(),
            ),
        ),
        Command::QueryPathFromHashPart => (
            QueryPathFromHashPart { hash_part: s(g) }.into(),
            Reply::QueryPathFromHashPart(opt_path(g)),
        ),
        Command::QuerySubstitutablePathInfos => (
            if v >= Version::new(1, 22) {
                QuerySubstitutablePathInfos {
                    paths_with_ca: (0..u8::arbitrary(g) % 4)
                        .map(|_| (path(g), ca(g)))
                        .collect(),
                    ..QuerySubstitutablePathInfos::default()
                }
            } else {
                QuerySubstitutablePathInfos {
                    paths: paths(g),
                    ..QuerySubstitutablePathInfos::default()
                }
            }
            .into(),
            Reply::QuerySubstitutablePathInfos(
                (0..u8::arbitrary(g) % 3)
                    .map(|_| (path(g), substitutable(g)))
                    .collect(),
            ),
        ),
        Command::QuerySubstitutablePaths => (
            QuerySubstitutablePaths { paths: paths(g) }.into(),
            Reply::QuerySubstitutablePaths(paths(g)),
        ),
        Command::OptimiseStore => (OptimiseStore.into(), Reply::OptimiseStore(Ack)),
        Command::VerifyStore => (
            VerifyStore {
                check_contents: bool::arbitrary(g),
                repair: bool::arbitrary(g),
            }
            .into(),
            Reply::VerifyStore(bool::arbitrary(g)),
        ),
        Command::AddPermRoot => (
            AddPermRoot {
                path: path(g),
                gc_root: s(g),
            }
            .into(),
            Reply::AddPermRoot(s(g)),
        ),
        Command::SubmitOutput => (
            SubmitOutput {
                path: single_derived_path(g),
                output: output_name(g),
            }
            .into(),
            Reply::SubmitOutput(Ack),
        ),
        Command::AddToStoreScanning => (
            AddToStoreScanning {
                name: s(g),
                method_algo: s(g),
            }
            .into(),
            Reply::AddToStoreScanning(valid_path_info(g, cx)),
        ),
        Command::QueryPathInfos => (
            QueryPathInfos { paths: paths(g) }.into(),
            Reply::QueryPathInfos(
                (0..u8::arbitrary(g) % 3)
                    .map(|_| valid_path_info(g, cx))
                    .collect(),
            ),
        ),
    }
}

fn substitutable(g: &mut Gen) -> SubstitutablePathInfo {
    SubstitutablePathInfo {
        deriver: opt_path(g),
        references: paths(g),
        download_size: u64::arbitrary(g),
        nar_size: u64::arbitrary(g),
    }
}

fn single_derived_path(g: &mut Gen) -> SingleDerivedPath {
    let mut path = SingleDerivedPath::Opaque(drv(g));
    for _ in 0..u8::arbitrary(g) % 3 {
        path = SingleDerivedPath::Built {
            drv_path: Box::new(path),
            output: output_name(g),
        };
    }
    path
}

/// A `CollectGarbage` the context can say: without the feature, no
/// `delete_referrers`, and an empty set only for `DeleteSpecific`.
fn collect_garbage(g: &mut Gen, cx: &Cx<Worker>) -> CollectGarbage {
    let action = *g.choose(GcAction::ALL).unwrap_or(&GcAction::ReturnLive);
    let featured = has(cx, features::DELETE_DEAD_SPECIFIC_REFERRERS);
    let paths = if bool::arbitrary(g) && (featured || action != GcAction::DeleteSpecific) {
        GcPaths::WholeStore
    } else {
        let mut paths = paths(g);
        if paths.is_empty() && !featured && action != GcAction::DeleteSpecific {
            paths.push(path(g));
        }
        GcPaths::Specific {
            paths,
            delete_referrers: featured && bool::arbitrary(g),
        }
    };
    CollectGarbage {
        action,
        paths,
        ignore_liveness: bool::arbitrary(g),
        max_freed: u64::arbitrary(g),
        obsolete: [u64::arbitrary(g), u64::arbitrary(g), u64::arbitrary(g)],
    }
}

/// A context: any version, and at 1.38 any subset of the shaping features.
fn arbitrary_cx(g: &mut Gen) -> Cx<Worker> {
    let all: Vec<Version> = versions().collect();
    let version = *g.choose(&all).unwrap_or(&LATEST);
    let features: Vec<&str> = if version == LATEST {
        SHAPING
            .iter()
            .copied()
            .filter(|_| bool::arbitrary(g))
            .collect()
    } else {
        Vec::new()
    };
    cx_with(version, &features)
}

/// A request and a reply to it, both valid at `cx`, for an operation that
/// exists there.
#[derive(Debug, Clone)]
struct Exchange {
    cx: Cx<Worker>,
    request: Request,
    reply: Reply,
}

impl Arbitrary for Exchange {
    fn arbitrary(g: &mut Gen) -> Self {
        let cx = arbitrary_cx(g);
        let available: Vec<Command> = Command::ALL
            .iter()
            .copied()
            .filter(|c| c.available(&cx))
            .collect();
        let command = *g.choose(&available).unwrap_or(&Command::IsValidPath);
        let (request, reply) = exchange(g, command, &cx);
        Self { cx, request, reply }
    }
}

// ---- the properties ----

fn decode_request(cx: &Cx<Worker>, bytes: &[u8]) -> Result<Option<(Request, usize)>, String> {
    let mut r = Reader::new(bytes, &cx.limits);
    let decoded = Request::decode(cx, &mut RequestPartial::default(), &mut r);
    decoded
        .map(|v| v.map(|v| (v, r.position())))
        .map_err(|e| e.to_string())
}

fn decode_reply(
    command: Command,
    cx: &Cx<Worker>,
    bytes: &[u8],
) -> Result<Option<(Reply, usize)>, String> {
    let mut r = Reader::new(bytes, &cx.limits);
    let decoded = Reply::decode(command, cx, &mut ReplyPartial::default(), &mut r);
    decoded
        .map(|v| v.map(|v| (v, r.position())))
        .map_err(|e| e.to_string())
}

fn request_bytes(e: &Exchange) -> Vec<u8> {
    let mut bytes = Vec::new();
    e.request.encode(&e.cx, &mut bytes);
    bytes
}

fn reply_bytes(e: &Exchange) -> Vec<u8> {
    let mut bytes = Vec::new();
    e.reply.encode(&e.cx, &mut bytes);
    bytes
}

fn roundtrip_request(e: &Exchange) -> Result<(), String> {
    let bytes = request_bytes(e);
    match decode_request(&e.cx, &bytes)? {
        Some((r, n)) if n == bytes.len() && r == e.request => Ok(()),
        other => Err(format!("{:?} decoded to {other:?}", e.request)),
    }
}

fn roundtrip_reply(e: &Exchange) -> Result<(), String> {
    let bytes = reply_bytes(e);
    match decode_reply(e.reply.command(), &e.cx, &bytes)? {
        Some((r, n)) if n == bytes.len() && r == e.reply => Ok(()),
        other => Err(format!("{:?} decoded to {other:?}", e.reply)),
    }
}

/// Every strict prefix of an encoding is "need more bytes", never an error
/// and never a value: the streaming contract. (A reply that encodes to
/// nothing has no strict prefix.)
fn prefixes_are_incomplete(e: &Exchange) -> Result<(), String> {
    let bytes = request_bytes(e);
    for n in 0..bytes.len() {
        if !matches!(decode_request(&e.cx, &bytes[..n]), Ok(None)) {
            return Err(format!("request prefix of {n} bytes: not `need more`"));
        }
    }
    let bytes = reply_bytes(e);
    for n in 0..bytes.len() {
        if !matches!(
            decode_reply(e.reply.command(), &e.cx, &bytes[..n]),
            Ok(None)
        ) {
            return Err(format!("reply prefix of {n} bytes: not `need more`"));
        }
    }
    Ok(())
}

/// However an encoding is cut into pieces, resuming with the same partial
/// state after each piece gives the same value, consuming each byte once.
fn resuming_gives_the_same_value(e: &Exchange, step: usize) -> Result<(), String> {
    let bytes = reply_bytes(e);
    let mut partial = ReplyPartial::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    loop {
        let end = (fed + step).min(bytes.len());
        buf.extend_from_slice(&bytes[fed..end]);
        fed = end;
        let mut r = Reader::new(&buf, &e.cx.limits);
        let decoded = Reply::decode(e.reply.command(), &e.cx, &mut partial, &mut r);
        let used = r.position();
        buf.drain(..used);
        match decoded {
            Ok(Some(reply)) if reply == e.reply && buf.is_empty() && fed == bytes.len() => {
                return Ok(());
            }
            Ok(None) if fed < bytes.len() => continue,
            other => return Err(format!("resuming every {step} bytes: {other:?}")),
        }
    }
}

fn all_properties(e: &Exchange, step: usize) -> Result<(), String> {
    // What the generators make can be said; the checks agree.
    e.request.check(&e.cx).map_err(|why| why.to_string())?;
    e.reply.check(&e.cx).map_err(|why| why.to_string())?;
    roundtrip_request(e)?;
    roundtrip_reply(e)?;
    prefixes_are_incomplete(e)?;
    resuming_gives_the_same_value(e, step)?;
    Ok(())
}

#[test]
fn random_exchanges_roundtrip_and_stream() {
    fn property(e: Exchange, cut: u8) -> bool {
        match all_properties(&e, usize::from(cut % 16) + 1) {
            Ok(()) => true,
            Err(why) => {
                eprintln!("at {} {:?}: {why}", e.cx.version, e.cx.features);
                false
            }
        }
    }
    let mut qc = QuickCheck::new().tests(2000).rng(Gen::new(10));
    qc.quickcheck(property as fn(Exchange, u8) -> bool);
}

/// Every operation at every version it exists in, without features and,
/// at 1.38, with each shaping feature alone and with all of them: a few
/// random values each, every property.
#[test]
fn every_operation_roundtrips_at_every_version_and_feature_set() {
    let mut contexts: Vec<Cx<Worker>> = versions().map(|v| cx_with(v, &[])).collect();
    contexts.extend(SHAPING.iter().map(|f| cx_with(LATEST, &[f])));
    contexts.push(cx_with(LATEST, SHAPING));
    let mut g = Gen::new(8);
    let mut checked = 0;
    for cx in &contexts {
        for &command in Command::ALL {
            if !command.available(cx) {
                continue;
            }
            for round in 0..12 {
                let (request, reply) = exchange(&mut g, command, cx);
                let e = Exchange {
                    cx: cx.clone(),
                    request,
                    reply,
                };
                if let Err(why) = all_properties(&e, round % 7 + 1) {
                    panic!("{command} at {} {:?}: {why}", cx.version, cx.features);
                }
                checked += 1;
            }
        }
    }
    // 18 versions, the operations of each, and the feature sets at 1.38.
    assert!(checked > 18 * 22 * 12, "{checked}");
}

/// An operation exists from its version on, and with its feature.
#[test]
fn operations_exist_from_their_version_and_with_their_feature() {
    let at = |minor: u8, features: &[&str]| -> Vec<Command> {
        let cx = cx_with(Version::new(1, minor), features);
        Command::ALL
            .iter()
            .copied()
            .filter(|c| c.available(&cx))
            .collect()
    };
    let old = at(21, &[]);
    assert!(old.contains(&Command::AddTextToStore));
    assert!(!old.contains(&Command::QueryDerivationOutputMap));
    assert!(at(22, &[]).contains(&Command::QueryDerivationOutputMap));
    assert!(!at(26, &[]).contains(&Command::QueryRealisation));
    assert!(at(27, &[]).contains(&Command::RegisterDrvOutput));
    assert!(!at(31, &[]).contains(&Command::AddMultipleToStore));
    assert!(at(32, &[]).contains(&Command::AddBuildLog));
    assert!(!at(33, &[]).contains(&Command::BuildPathsWithResults));
    assert!(at(34, &[]).contains(&Command::BuildPathsWithResults));
    let latest = at(38, &[]);
    for c in [
        Command::QueryActiveBuilds,
        Command::AddTempRoots,
        Command::QueryPathInfos,
    ] {
        assert!(!latest.contains(&c), "{c} without its feature");
        let feature = c.feature().expect("a feature");
        assert!(at(38, &[feature]).contains(&c), "{c} with {feature}");
    }
    assert_eq!(Command::QueryPathInfos.code(), 50);
    assert_eq!(Command::AddTempRoots.code(), 49);
    assert_eq!(Command::QueryActiveBuilds.code(), 48);
    assert_eq!(
        Command::QueryPathInfos.feature(),
        Some(features::QUERY_PATH_INFOS)
    );
    assert_eq!(Command::IsValidPath.feature(), None);
}

#[test]
fn bodies_by_version() {
    let v = |minor| Version::new(1, minor);
    assert_eq!(body_at(Command::AddToStoreNar, v(21)), BodyKind::Pulled);
    assert_eq!(body_at(Command::AddToStoreNar, v(22)), BodyKind::Pulled);
    assert_eq!(body_at(Command::AddToStoreNar, v(23)), BodyKind::Framed);
    assert_eq!(body_at(Command::AddToStore, v(24)), BodyKind::BareNar);
    assert_eq!(body_at(Command::AddToStore, v(25)), BodyKind::Framed);
    assert_eq!(
        body_at(Command::AddMultipleToStore, v(38)),
        BodyKind::Framed
    );
    assert_eq!(body_at(Command::AddBuildLog, v(32)), BodyKind::Framed);
    for &c in Command::ALL {
        if !matches!(c, Command::AddToStore | Command::AddToStoreNar) {
            for version in versions() {
                assert_eq!(body_at(c, version), c.body(), "{c}");
            }
        }
    }
    let with_bodies: Vec<Command> = Command::ALL
        .iter()
        .copied()
        .filter(|c| c.body() != BodyKind::None)
        .collect();
    assert_eq!(
        with_bodies,
        vec![
            Command::AddToStore,
            Command::AddToStoreNar,
            Command::AddMultipleToStore,
            Command::AddBuildLog,
            Command::AddToStoreScanning,
        ]
    );
    assert_eq!(
        Command::NarFromPath.reply_kind(),
        nixwire_core::conn::ReplyKind::BareNar
    );
}

#[test]
fn removed_codes_are_not_operations() {
    for (code, why) in REMOVED {
        assert!(Command::from_code(*code).is_none(), "{code}");
        assert!(!why.is_empty());
        let mut bytes = Vec::new();
        encode_u64(*code, &mut bytes);
        let err = decode_request(&cx_with(LATEST, &[]), &bytes).expect_err("unknown code");
        assert!(err.contains("a worker operation"), "{err}");
    }
}

// ---- arbitrary bytes ----

fn small_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_string = 1 << 16;
    limits.max_items = 1 << 10;
    limits.max_message = 1 << 20;
    limits.max_decoded = 1 << 20;
    limits
}

/// Feeds arbitrary bytes to every decoder at a version, with or without
/// every feature: any answer is fine except a panic.
fn arbitrary_bytes_never_panic(bytes: Vec<u8>, minor: u8, featured: bool) -> bool {
    let version = Version::new(
        1,
        MINIMUM.minor + minor % (LATEST.minor - MINIMUM.minor + 1),
    );
    let features: &[&str] = if featured { SHAPING } else { &[] };
    let cx = cx_with(version, features).with_limits(small_limits());
    let _ = decode_request(&cx, &bytes);
    for &c in Command::ALL {
        let _ = decode_reply(c, &cx, &bytes);
    }
    let _ = PathInfo::decode_exact(&cx, &bytes);
    let _ = ValidPathInfo::decode_exact(&cx, &bytes);
    let _ = BuildResult::decode_exact(&cx, &bytes);
    let _ = KeyedBuildResult::decode_exact(&cx, &bytes);
    let _ = DerivedPath::decode_exact(&cx, &bytes);
    let _ = DrvOutput::decode_exact(&cx, &bytes);
    let _ = Realisation::decode_exact(&cx, &bytes);
    let _ = BasicDerivation::decode_exact(&cx, &bytes);
    let _ = SetOptions::decode_exact(&cx, &bytes);
    let _ = SingleDerivedPath::decode_exact(&cx, &bytes);
    let _ = CollectGarbage::decode_exact(&cx, &bytes);
    true
}

/// Arbitrary bytes behind a valid operation code reach the per-message
/// decoders.
fn arbitrary_payload_never_panics(code: u8, bytes: Vec<u8>, minor: u8, featured: bool) -> bool {
    let codes = Command::ALL;
    let command = codes[usize::from(code) % codes.len()];
    let mut input = Vec::new();
    encode_u64(command.code(), &mut input);
    input.extend_from_slice(&bytes);
    arbitrary_bytes_never_panic(input, minor, featured)
}

/// Valid encodings with one byte changed: closer to real input than noise.
fn mutated_exchange_never_panics(e: Exchange, at: usize, byte: u8) -> bool {
    let cx = e.cx.clone().with_limits(small_limits());
    for mut bytes in [request_bytes(&e), reply_bytes(&e)] {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] ^= byte | 1;
        }
        let _ = decode_request(&cx, &bytes);
        let _ = decode_reply(e.reply.command(), &cx, &bytes);
    }
    true
}

#[test]
fn arbitrary_bytes_never_panic_a_decoder() {
    let mut qc = QuickCheck::new().tests(3000).rng(Gen::new(64));
    qc.quickcheck(arbitrary_bytes_never_panic as fn(Vec<u8>, u8, bool) -> bool);
    qc.quickcheck(arbitrary_payload_never_panics as fn(u8, Vec<u8>, u8, bool) -> bool);
    let mut qc = QuickCheck::new().tests(3000).rng(Gen::new(8));
    qc.quickcheck(mutated_exchange_never_panics as fn(Exchange, usize, u8) -> bool);
}

#[test]
fn hostile_length_prefix_is_an_error_not_an_allocation() {
    let cx = cx_with(LATEST, &[]);
    let mut bytes = Vec::new();
    encode_u64(Command::IsValidPath.code(), &mut bytes);
    encode_u64(1 << 60, &mut bytes);
    let err = decode_request(&cx, &bytes).expect_err("too long");
    assert!(err.contains("exceeds the limit"), "{err}");

    let mut bytes = Vec::new();
    encode_u64(Command::QueryValidPaths.code(), &mut bytes);
    encode_u64(1 << 60, &mut bytes);
    let err = decode_request(&cx, &bytes).expect_err("too many");
    assert!(err.contains("item count"), "{err}");

    let mut bytes = Vec::new();
    encode_u64(1 << 60, &mut bytes);
    let err = decode_reply(Command::BuildPathsWithResults, &cx, &bytes).expect_err("too many");
    assert!(err.contains("item count"), "{err}");
}

// ---- gates where Nix puts them ----

fn words<T: Wire<Worker>>(value: &T, cx: &Cx<Worker>) -> usize {
    value.to_wire(cx).len() / 8
}

fn sample_path() -> StorePath {
    "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12"
        .parse()
        .expect("valid")
}

#[test]
fn path_info_fields_are_gated_as_nix_gates_them() {
    let info = PathInfo {
        nar_hash: Some(NarHash([7; 32])),
        ultimate: true,
        provenance: Some("{\"type\":\"copied\"}".into()),
        ..PathInfo::default()
    };
    let at = |minor, features: &[&str]| cx_with(Version::new(1, minor), features);
    // deriver, hash (64 bytes: 9 words), references, time, size.
    assert_eq!(words(&info, &at(15, &[])), 1 + 9 + 1 + 1 + 1);
    // + ultimate, signatures, content address.
    assert_eq!(words(&info, &at(16, &[])), 16);
    assert_eq!(words(&info, &at(38, &[])), 16);
    // + provenance: its length and 17 bytes.
    assert_eq!(words(&info, &at(38, &[features::PROVENANCE])), 16 + 1 + 3);
    let cx = at(38, &[features::PROVENANCE]);
    let (back, _) = PathInfo::decode_exact(&cx, &info.to_wire(&cx)).expect("decodes");
    assert_eq!(back, info);
    // Without the feature, provenance does not travel.
    let cx = at(38, &[]);
    let (back, _) = PathInfo::decode_exact(&cx, &info.to_wire(&cx)).expect("decodes");
    assert_eq!(back.provenance, None);
    // The hash is base 16 without a prefix.
    assert!(String::from_utf8_lossy(&info.to_wire(&cx)).contains(&"07".repeat(32)));
    let gates: Vec<_> = <PathInfo as Wire<Worker>>::FIELDS
        .iter()
        .filter(|f| f.on_wire)
        .map(|f| (f.name, f.since, f.feature))
        .collect();
    assert_eq!(
        gates,
        vec![
            ("deriver", None, None),
            ("nar_hash", None, None),
            ("references", None, None),
            ("registration_time", None, None),
            ("nar_size", None, None),
            ("ultimate", Some(Version::new(1, 16)), None),
            ("sigs", Some(Version::new(1, 16)), None),
            ("ca", Some(Version::new(1, 16)), None),
            ("provenance", None, Some("provenance")),
        ]
    );
}

#[test]
fn build_result_fields_are_gated_as_nix_gates_them() {
    let mut result = BuildResult::new(BuildStatus::Built, "");
    result.times_built = 1;
    result.cpu_user = Some(500_000_000);
    result.built_outputs = vec![(
        OutputName::out(),
        Realisation {
            id: None,
            out_path: sample_path(),
            signatures: vec![],
        },
    )];
    let at = |minor, features: &[&str]| cx_with(Version::new(1, minor), features);
    assert_eq!(words(&result, &at(27, &[])), 2);
    // 1.28: the JSON outputs.
    let json = result.to_wire(&at(28, &[]));
    assert!(String::from_utf8_lossy(&json).contains("\"outPath\":\"7h7qgvs4"));
    // 1.29: + timing.
    assert_eq!(
        words(&result, &at(29, &[])) - words(&result, &at(28, &[])),
        4
    );
    // 1.37: + two optional durations (tag and value, tag).
    assert_eq!(
        words(&result, &at(37, &[])) - words(&result, &at(36, &[])),
        3
    );
    // The path feature: structured outputs, a full store path.
    let cx = at(38, &[features::REALISATION_WITH_PATH_NOT_HASH]);
    let structured = result.to_wire(&cx);
    assert!(!String::from_utf8_lossy(&structured).contains("outPath"));
    assert!(String::from_utf8_lossy(&structured).contains("/nix/store/7h7qgvs4"));
    let (back, _) = BuildResult::decode_exact(&cx, &structured).expect("decodes");
    assert_eq!(back, result);
    // A CPU time Nix could not read is refused.
    let mut bytes = BuildResult::new(BuildStatus::Built, "").to_wire(&at(37, &[]));
    let tag_at = bytes.len() - 3 * 8;
    bytes.splice(tag_at..tag_at + 8, 1u64.to_le_bytes());
    bytes.splice(tag_at + 8..tag_at + 8, u64::MAX.to_le_bytes());
    let err = BuildResult::decode_exact(&at(37, &[]), &bytes).expect_err("too large");
    assert!(err.to_string().contains("2^63-1"), "{err}");
}

#[test]
fn requests_gated_by_version_and_feature() {
    let at = |minor, features: &[&str]| cx_with(Version::new(1, minor), features);
    let q = QueryValidPaths {
        paths: vec![],
        substitute: true,
    };
    assert_eq!(words(&q, &at(26, &[])), 1);
    assert_eq!(words(&q, &at(27, &[])), 2);

    let old = AddToStore {
        name: "x".into(),
        fixed: true,
        recursive: true,
        hash_algo: "sha256".into(),
        ..AddToStore::default()
    };
    // name, fixed, recursive, algorithm.
    assert_eq!(words(&old, &at(24, &[])), 2 + 1 + 1 + 2);
    let new = AddToStore {
        name: "x".into(),
        method_algo: "fixed:r:sha256".into(),
        references: vec![sample_path()],
        repair: false,
        provenance: Some("{}".into()),
        ..AddToStore::default()
    };
    // name, method, references (count, one path of 52 bytes), repair.
    assert_eq!(words(&new, &at(25, &[])), 2 + 3 + 1 + 8 + 1);
    assert_eq!(
        words(&new, &at(38, &[features::PROVENANCE])),
        2 + 3 + 1 + 8 + 1 + 2
    );
    // The two forms share only the name.
    let since: Vec<_> = <AddToStore as Wire<Worker>>::FIELDS
        .iter()
        .map(|f| (f.name, f.since, f.until))
        .collect();
    assert_eq!(since[0], ("name", None, None));
    assert!(since[1..4].iter().all(|f| f.2 == Some(Version::new(1, 25))));
    assert!(since[4..].iter().all(|f| f.1 == Some(Version::new(1, 25))));

    // AddToStore's reply before 1.25 is the path alone.
    let reply = AddToStoreResult {
        path: sample_path(),
        info: PathInfo::default(),
    };
    assert_eq!(words(&reply, &at(24, &[])), 8);

    // AddBuildLog sends the derivation's base name.
    let log = AddBuildLog {
        drv_path: sample_path(),
    };
    let bytes = log.to_wire(&at(38, &[]));
    assert!(!String::from_utf8_lossy(&bytes).contains("/nix/store"));
}

#[test]
fn derived_paths_take_the_text_form_of_the_version() {
    let drv: StorePath = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello.drv"
        .parse()
        .expect("valid");
    let text = |value: &DerivedPath, minor| {
        let bytes = value.to_wire(&cx_with(Version::new(1, minor), &[]));
        String::from_utf8_lossy(&bytes[8..])
            .trim_end_matches('\0')
            .to_owned()
    };
    let all = DerivedPath::built(drv.clone(), OutputsSpec::All);
    assert_eq!(text(&all, 29), format!("/nix/store/{drv}"));
    assert_eq!(text(&all, 30), format!("/nix/store/{drv}!*"));
    // Before 1.30 a derivation's path means its outputs.
    let cx29 = cx_with(Version::new(1, 29), &[]);
    let opaque = DerivedPath::Opaque(drv.clone());
    let (read, _) = DerivedPath::decode_exact(&cx29, &opaque.to_wire(&cx29)).expect("decodes");
    assert_eq!(read, all, "the old form cannot say the file itself");
    assert!(opaque.to_path_with_outputs(&cx29.store_dir).is_err());
}

#[test]
fn realisations_take_the_shape_of_the_version_and_feature() {
    let drv: StorePath = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello.drv"
        .parse()
        .expect("valid");
    let by_hash = DrvOutput::Hash {
        drv_hash: "sha256:15e3c560894cbb27085cf65b5a2ecb18488c999497f4531b6907a7581ce6d527".into(),
        output: OutputName::out(),
    };
    let by_path = DrvOutput::Path {
        drv_path: drv,
        output: OutputName::out(),
    };
    let register = |id: DrvOutput| RegisterDrvOutput {
        realisation: Realisation {
            id: Some(id),
            out_path: sample_path(),
            signatures: vec![Signature::new("k:c2ln")],
        },
    };
    let at = |minor, features: &[&str]| cx_with(Version::new(1, minor), features);
    // Before 1.31: the id and the path's base name.
    let old = register(by_hash.clone()).to_wire(&at(30, &[]));
    let text = String::from_utf8_lossy(&old);
    assert!(text.contains("!out") && !text.contains("/nix/store") && !text.contains("k:"));
    // From 1.31: one JSON string, as Nix 2.34 writes it.
    let json = register(by_hash).to_wire(&at(31, &[]));
    assert!(
        String::from_utf8_lossy(&json).contains(
            "{\"dependentRealisations\":{},\"id\":\"sha256:15e3c560894cbb27085cf65b5a2ecb18488c999497f4531b6907a7581ce6d527!out\",\"outPath\":\"7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12\",\"signatures\":[\"k:c2ln\"]}"
        )
    );
    // With the feature: drv path, output, out path, signatures.
    let cx = at(38, &[features::REALISATION_WITH_PATH_NOT_HASH]);
    let structured = register(by_path.clone());
    let bytes = structured.to_wire(&cx);
    assert_eq!(
        RegisterDrvOutput::decode_exact(&cx, &bytes)
            .expect("decodes")
            .0,
        structured
    );

    // QueryRealisation's reply: more than one realisation is refused.
    let mut bytes = Vec::new();
    encode_u64(2, &mut bytes);
    for _ in 0..2 {
        sample_path().encode(&at(30, &[]), &mut bytes);
    }
    let err = decode_reply(Command::QueryRealisation, &at(30, &[]), &bytes).expect_err("two");
    assert!(err.contains("at most one"), "{err}");
}

#[test]
fn add_multiple_to_store_items_are_encoded_at_1_16_unless_versioned() {
    let cx = cx_with(LATEST, &[features::PROVENANCE]);
    let item = AddMultipleToStore::item_cx(&cx);
    assert_eq!(item.version, Version::new(1, 16));
    assert!(!item.features.has(features::PROVENANCE));
    let cx = cx_with(
        LATEST,
        &[
            features::PROVENANCE,
            features::VERSIONED_ADD_TO_STORE_MULTIPLE,
        ],
    );
    let item = AddMultipleToStore::item_cx(&cx);
    assert_eq!(item, cx);
}

#[test]
fn set_options_default_is_what_nix_sends() {
    let options = SetOptions::default();
    let bytes = options.to_wire(&cx_with(LATEST, &[]));
    // Twelve integers and an empty map.
    assert_eq!(bytes.len(), 13 * 8);
    assert_eq!(options.verbose_build, 7);
    assert!(options.use_substitutes);
}

/// Nesting of outputs of outputs is bounded in both forms, so hostile
/// input cannot build a value deep enough to exhaust the stack.
#[test]
fn derived_path_nesting_is_bounded() {
    let cx = cx_with(LATEST, &[]);
    let drv = "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello.drv";
    let text = |levels: usize| format!("{drv}{}!*", "!out".repeat(levels));
    let decode = |text: String| {
        let mut bytes = Vec::new();
        NixString::from(text).encode(&cx, &mut bytes);
        DerivedPath::decode_exact(&cx, &bytes)
    };
    assert!(decode(text(MAX_NESTING - 1)).is_ok());
    let err = decode(text(100_000)).expect_err("too deep");
    assert!(err.to_string().contains("deep"), "{err}");

    let mut bytes = Vec::new();
    for _ in 0..100_000 {
        encode_u64(1, &mut bytes);
    }
    let err = SingleDerivedPath::decode_exact(&cx, &bytes).expect_err("too deep");
    assert!(err.to_string().contains("deep"), "{err}");
    let single = single_derived_path(&mut Gen::new(4));
    let (back, _) = SingleDerivedPath::decode_exact(&cx, &single.to_wire(&cx)).expect("decodes");
    assert_eq!(back, single);
}

#[test]
fn collect_garbage_paths_take_the_feature_shape() {
    let plain = cx_with(LATEST, &[]);
    let featured = cx_with(LATEST, &[features::DELETE_DEAD_SPECIFIC_REFERRERS]);
    let gc = |action, paths| CollectGarbage {
        action,
        paths,
        ignore_liveness: false,
        max_freed: 0,
        obsolete: [0; 3],
    };
    // Without the feature an empty set is the whole store, except for
    // DeleteSpecific.
    let whole = gc(GcAction::DeleteDead, GcPaths::WholeStore);
    assert_eq!(words(&whole, &plain), 1 + 1 + 5);
    assert_eq!(
        CollectGarbage::decode_exact(&plain, &whole.to_wire(&plain))
            .expect("decodes")
            .0,
        whole
    );
    let none = gc(
        GcAction::DeleteSpecific,
        GcPaths::Specific {
            paths: vec![],
            delete_referrers: false,
        },
    );
    assert_eq!(
        CollectGarbage::decode_exact(&plain, &none.to_wire(&plain))
            .expect("decodes")
            .0,
        none
    );
    // With it, a tag: 1 for the whole store; 0, the paths and the flag.
    assert_eq!(words(&whole, &featured), 1 + 1 + 5);
    let referrers = gc(
        GcAction::DeleteDead,
        GcPaths::Specific {
            paths: vec![sample_path()],
            delete_referrers: true,
        },
    );
    assert_eq!(words(&referrers, &featured), 1 + 1 + 1 + 8 + 1 + 5);
    assert_eq!(
        CollectGarbage::decode_exact(&featured, &referrers.to_wire(&featured))
            .expect("decodes")
            .0,
        referrers
    );
}

/// What cannot be said at a version is refused before sending, as Nix's
/// client refuses it.
#[test]
fn unsayable_requests_are_refused_before_sending() {
    let drv: StorePath = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello.drv"
        .parse()
        .expect("valid");
    let at = |minor, features: &[&str]| cx_with(Version::new(1, minor), features);
    let build = |path| -> Request {
        BuildPaths {
            paths: vec![path],
            mode: BuildMode::Normal,
        }
        .into()
    };
    // The derivation file itself before 1.30 (it would mean its outputs).
    let file = build(DerivedPath::Opaque(drv.clone()));
    assert!(matches!(
        file.check(&at(29, &[])),
        Err(Unsayable::DerivedPath { .. })
    ));
    assert_eq!(file.check(&at(30, &[])), Ok(()));
    // No outputs at all has no form in either.
    let none = build(DerivedPath::built(drv.clone(), OutputsSpec::Names(vec![])));
    assert!(none.check(&at(38, &[])).is_err());

    // An operation before its version, or without its feature.
    let log: Request = AddBuildLog {
        drv_path: drv.clone(),
    }
    .into();
    let err = log.check(&at(31, &[])).expect_err("too old");
    assert!(
        err.to_string().contains("needs worker protocol 1.32"),
        "{err}"
    );
    let roots: Request = AddTempRoots { paths: vec![] }.into();
    let err = roots.check(&at(38, &[])).expect_err("no feature");
    assert!(err.to_string().contains("addTempRoots"), "{err}");
    assert_eq!(roots.check(&at(38, &[features::ADD_TEMP_ROOTS])), Ok(()));

    // A derivation output in the other form.
    let by_path: Request = QueryRealisation {
        id: DrvOutput::Path {
            drv_path: drv.clone(),
            output: OutputName::out(),
        },
    }
    .into();
    assert!(matches!(
        by_path.check(&at(38, &[])),
        Err(Unsayable::DrvOutputForm { by_path: true, .. })
    ));
    assert_eq!(
        by_path.check(&at(38, &[features::REALISATION_WITH_PATH_NOT_HASH])),
        Ok(())
    );
    let no_id: Request = RegisterDrvOutput {
        realisation: Realisation {
            id: None,
            out_path: sample_path(),
            signatures: vec![],
        },
    }
    .into();
    assert!(matches!(
        no_id.check(&at(38, &[])),
        Err(Unsayable::NoRealisationId { .. })
    ));

    // Deleting referrers needs its feature.
    let gc: Request = CollectGarbage {
        action: GcAction::DeleteDead,
        paths: GcPaths::Specific {
            paths: vec![sample_path()],
            delete_referrers: true,
        },
        ignore_liveness: false,
        max_freed: 0,
        obsolete: [0; 3],
    }
    .into();
    assert!(matches!(gc.check(&at(38, &[])), Err(Unsayable::GcPaths(_))));
    assert_eq!(
        gc.check(&at(38, &[features::DELETE_DEAD_SPECIFIC_REFERRERS])),
        Ok(())
    );

    // Replies: a path info without its hash, a CPU time Nix cannot read.
    let no_hash = Reply::QueryPathInfo(Some(PathInfo::default()));
    assert!(matches!(
        no_hash.check(&at(38, &[])),
        Err(Unsayable::NoNarHash { .. })
    ));
    let mut result = BuildResult::new(BuildStatus::Built, "");
    result.cpu_user = Some(u64::MAX);
    let slow = Reply::BuildDerivation(result);
    assert!(matches!(
        slow.check(&at(37, &[])),
        Err(Unsayable::CpuTime { .. })
    ));
    assert_eq!(slow.check(&at(36, &[])), Ok(()));
}
