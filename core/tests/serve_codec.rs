//! Property tests of the serve codec: every message round-trips at every
//! version it exists in; arbitrary bytes never panic a decoder; hostile length
//! prefixes are refused before anything is allocated.

mod generators;

use generators::*;
use nixwire_core::serve::messages::*;
use nixwire_core::serve::{Command, ImportPaths, Reply, ReplyPartial, Request, RequestPartial};
use nixwire_core::store::{
    BasicDerivation, BuildResult, BuildStatus, DerivationOutput, DrvOutput, OutputName, PathInfo,
    Realisation, StorePath,
};
use nixwire_core::wire::{
    Cx, DecodeErrorKind, Limits, NixString, Reader, Serve, Version, Wire, encode_u64,
};
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// Every serve minor version from 2.0 to the newest.
fn versions() -> impl Iterator<Item = Version> {
    (0..=LATEST.minor).map(|m| Version::new(2, m))
}

fn cx(version: Version) -> Cx<Serve> {
    Cx::new(version)
}

fn options(g: &mut Gen, v: Version) -> BuildOptions {
    // Fields absent at `v` hold the value the layout says they decode to,
    // since they cannot travel.
    let gated = |since: u8, g: &mut Gen| v.minor >= since && bool::arbitrary(g);
    BuildOptions {
        max_silent_time: u64::arbitrary(g),
        build_timeout: u64::arbitrary(g),
        max_log_size: if v.minor >= 2 { u64::arbitrary(g) } else { 0 },
        nr_repeats: if v.minor >= 3 { u64::arbitrary(g) } else { 0 },
        enforce_determinism: gated(3, g),
        keep_failed: gated(7, g),
    }
}

fn build_result(g: &mut Gen, v: Version) -> BuildResult {
    let at = |since: u8| v.minor >= since;
    let status = *g.choose(BuildStatus::ALL).unwrap_or(&BuildStatus::Built);
    let built_outputs = if at(6) {
        (0..u8::arbitrary(g) % 3)
            .map(|_| {
                let name = output_name(g);
                // 2.6 and 2.7 name outputs by derivation hash; 2.8 does not.
                let id = (!at(8)).then(|| DrvOutput::Hash {
                    drv_hash: format!("sha256:{}", u64::arbitrary(g)).into(),
                    output: name.clone(),
                });
                let r = Realisation {
                    id,
                    out_path: path(g),
                    signatures: sigs(g),
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
        times_built: if at(3) { u64::arbitrary(g) } else { 0 },
        is_non_deterministic: at(3) && bool::arbitrary(g),
        start_time: if at(3) { u64::arbitrary(g) } else { 0 },
        stop_time: if at(3) { u64::arbitrary(g) } else { 0 },
        cpu_user: None,
        cpu_system: None,
        built_outputs,
    }
}

fn path_info(g: &mut Gen, v: Version) -> PathInfo {
    let new = v.minor >= 4;
    PathInfo {
        deriver: opt_path(g),
        references: paths(g),
        download_size: u64::arbitrary(g),
        nar_size: u64::arbitrary(g),
        nar_hash: if new { Some(nar_hash(g)) } else { None },
        ca: if new { ca(g) } else { None },
        sigs: if new { sigs(g) } else { Vec::new() },
        registration_time: 0,
        ultimate: false,
        provenance: None,
    }
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
        args: strings(g),
        env: (0..u8::arbitrary(g) % 4).map(|_| (s(g), s(g))).collect(),
    }
}

fn trailer(g: &mut Gen) -> ExportTrailer {
    ExportTrailer {
        magic: ExportMagic,
        path: path(g),
        references: paths(g),
        deriver: opt_path(g),
        legacy_signature: LegacySignature(bool::arbitrary(g).then(|| s(g))),
    }
}

/// A request and a reply to it, both valid at `version`.
#[derive(Debug, Clone)]
struct Exchange {
    version: Version,
    request: Request,
    reply: Reply,
}

impl Arbitrary for Exchange {
    fn arbitrary(g: &mut Gen) -> Self {
        let all: Vec<Version> = versions().collect();
        let version = *g.choose(&all).unwrap_or(&LATEST);
        let (request, reply) = match u8::arbitrary(g) % 8 {
            0 => (
                Request::QueryValidPaths(QueryValidPaths {
                    lock: bool::arbitrary(g),
                    substitute: bool::arbitrary(g),
                    paths: paths(g),
                }),
                Reply::QueryValidPaths(paths(g)),
            ),
            1 => (
                Request::QueryPathInfos(QueryPathInfos { paths: paths(g) }),
                Reply::QueryPathInfos(PathInfos(
                    (0..u8::arbitrary(g) % 4)
                        .map(|_| (path(g), path_info(g, version)))
                        .collect(),
                )),
            ),
            2 => (
                Request::DumpStorePath(DumpStorePath { path: path(g) }),
                Reply::DumpStorePath(NarDone::default()),
            ),
            3 => (
                Request::BuildPaths(BuildPaths {
                    paths: strings(g),
                    options: options(g, version),
                }),
                Reply::BuildPaths(match u64::arbitrary(g) {
                    0 => BuildPathsResult::default(),
                    status => BuildPathsResult {
                        status,
                        error_msg: s(g),
                    },
                }),
            ),
            4 => (
                Request::QueryClosure(QueryClosure {
                    include_outputs: bool::arbitrary(g),
                    paths: paths(g),
                }),
                Reply::QueryClosure(paths(g)),
            ),
            5 => (
                Request::BuildDerivation(BuildDerivation {
                    drv_path: path(g),
                    drv: derivation(g),
                    options: options(g, version),
                }),
                Reply::BuildDerivation(build_result(g, version)),
            ),
            6 => (
                Request::AddToStoreNar(AddToStoreNar {
                    path: path(g),
                    deriver: opt_path(g),
                    nar_hash: nar_hash(g),
                    references: paths(g),
                    registration_time: u64::arbitrary(g),
                    nar_size: u64::arbitrary(g),
                    ultimate: bool::arbitrary(g),
                    sigs: sigs(g),
                    ca: ca(g),
                }),
                Reply::AddToStoreNar(Ack),
            ),
            _ => (
                Request::ImportPaths(ImportPaths::default()),
                Reply::ImportPaths(Ack),
            ),
        };
        Self {
            version,
            request,
            reply,
        }
    }
}

fn decode_request(cx: &Cx<Serve>, bytes: &[u8]) -> Result<Option<(Request, usize)>, String> {
    let mut r = Reader::new(bytes, &cx.limits);
    let decoded = Request::decode(cx, &mut RequestPartial::default(), &mut r);
    decoded
        .map(|v| v.map(|v| (v, r.position())))
        .map_err(|e| e.to_string())
}

fn decode_reply(
    command: Command,
    cx: &Cx<Serve>,
    bytes: &[u8],
) -> Result<Option<(Reply, usize)>, String> {
    let mut r = Reader::new(bytes, &cx.limits);
    let decoded = Reply::decode(command, cx, &mut ReplyPartial::default(), &mut r);
    decoded
        .map(|v| v.map(|v| (v, r.position())))
        .map_err(|e| e.to_string())
}

fn roundtrip_request(e: Exchange) -> bool {
    let cx = cx(e.version);
    let mut bytes = Vec::new();
    e.request.encode(&cx, &mut bytes);
    matches!(decode_request(&cx, &bytes), Ok(Some((r, n))) if n == bytes.len() && r == e.request)
}

fn roundtrip_reply(e: Exchange) -> bool {
    let cx = cx(e.version);
    let mut bytes = Vec::new();
    e.reply.encode(&cx, &mut bytes);
    let command = e.reply.command();
    matches!(decode_reply(command, &cx, &bytes), Ok(Some((r, n))) if n == bytes.len() && r == e.reply)
}

/// Every strict prefix of an encoding is "need more bytes", never an error and
/// never a value: the streaming contract.
fn prefixes_are_incomplete(e: Exchange) -> bool {
    let cx = cx(e.version);
    let mut bytes = Vec::new();
    e.request.encode(&cx, &mut bytes);
    (0..bytes.len()).all(|n| matches!(decode_request(&cx, &bytes[..n]), Ok(None)))
}

/// However an encoding is cut into pieces, resuming with the same partial
/// state after each piece gives the same value, and consumes each byte once.
fn resuming_gives_the_same_value(e: Exchange, cut: u8) -> bool {
    let cx = cx(e.version);
    let mut bytes = Vec::new();
    e.reply.encode(&cx, &mut bytes);
    let step = usize::from(cut % 16) + 1;
    let mut partial = ReplyPartial::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    loop {
        let end = (fed + step).min(bytes.len());
        buf.extend_from_slice(&bytes[fed..end]);
        fed = end;
        let mut r = Reader::new(&buf, &cx.limits);
        let decoded = Reply::decode(e.reply.command(), &cx, &mut partial, &mut r);
        let used = r.position();
        buf.drain(..used);
        match decoded {
            Ok(Some(reply)) => return reply == e.reply && buf.is_empty() && fed == bytes.len(),
            Ok(None) if fed < bytes.len() => continue,
            _ => return false,
        }
    }
}

fn trailer_roundtrip(seed: u8) -> bool {
    let mut g = Gen::new(usize::from(seed % 20) + 1);
    let t = trailer(&mut g);
    let cx = cx(LATEST);
    let bytes = t.to_wire(&cx);
    matches!(ExportTrailer::decode_exact(&cx, &bytes), Ok((d, n)) if n == bytes.len() && d == t)
}

#[test]
fn every_message_roundtrips_at_every_version() {
    // Small generators keep messages short enough that thousands of cases run
    // in seconds; the shapes, not the sizes, are what varies between versions.
    let mut qc = QuickCheck::new().tests(1000).rng(Gen::new(12));
    qc.quickcheck(roundtrip_request as fn(Exchange) -> bool);
    qc.quickcheck(roundtrip_reply as fn(Exchange) -> bool);
    qc.quickcheck(trailer_roundtrip as fn(u8) -> bool);
    let mut qc = QuickCheck::new().tests(200).rng(Gen::new(6));
    qc.quickcheck(prefixes_are_incomplete as fn(Exchange) -> bool);
    qc.quickcheck(resuming_gives_the_same_value as fn(Exchange, u8) -> bool);
}

/// Feeds arbitrary bytes to every decoder at every version: any answer is
/// fine except a panic (which fails the test).
fn arbitrary_bytes_never_panic(bytes: Vec<u8>, minor: u8) -> bool {
    let mut limits = Limits::default();
    limits.max_string = 1 << 16;
    limits.max_items = 1 << 10;
    limits.max_message = 1 << 20;
    limits.max_decoded = 1 << 20;
    let cx = cx(Version::new(2, minor % 9)).with_limits(limits);
    let _ = decode_request(&cx, &bytes);
    for &c in Command::ALL {
        let _ = decode_reply(c, &cx, &bytes);
    }
    let _ = ExportTrailer::decode_exact(&cx, &bytes);
    let _ = BuildResult::decode_exact(&cx, &bytes);
    true
}

/// Arbitrary bytes behind a valid command code reach the per-message decoders.
fn arbitrary_payload_never_panics(code: u8, bytes: Vec<u8>, minor: u8) -> bool {
    let mut input = Vec::new();
    encode_u64(u64::from(code % 10), &mut input);
    input.extend_from_slice(&bytes);
    arbitrary_bytes_never_panic(input, minor)
}

#[test]
fn arbitrary_bytes_never_panic_a_decoder() {
    let mut qc = QuickCheck::new().tests(3000).rng(Gen::new(64));
    qc.quickcheck(arbitrary_bytes_never_panic as fn(Vec<u8>, u8) -> bool);
    qc.quickcheck(arbitrary_payload_never_panics as fn(u8, Vec<u8>, u8) -> bool);
}

fn decode_error(cx: &Cx<Serve>, bytes: &[u8]) -> nixwire_core::wire::DecodeError {
    let mut r = Reader::new(bytes, &cx.limits);
    match Request::decode(cx, &mut RequestPartial::default(), &mut r) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn hostile_length_prefix_is_an_error_not_an_allocation() {
    let cx = cx(LATEST);
    // A string of 2^60 bytes.
    let mut bytes = Vec::new();
    encode_u64(Command::DumpStorePath.code(), &mut bytes);
    encode_u64(1 << 60, &mut bytes);
    let err = decode_error(&cx, &bytes);
    assert!(
        matches!(err.kind, DecodeErrorKind::TooLarge { found, .. } if found == 1 << 60),
        "{err}"
    );
    assert!(err.to_string().contains("exceeds the limit"), "{err}");

    // A list of 2^60 paths.
    let mut bytes = Vec::new();
    encode_u64(Command::QueryClosure.code(), &mut bytes);
    encode_u64(0, &mut bytes);
    encode_u64(1 << 60, &mut bytes);
    let err = decode_error(&cx, &bytes);
    assert!(matches!(
        err.kind,
        DecodeErrorKind::TooLarge {
            what: "item count",
            ..
        }
    ));
}

#[test]
fn the_allocation_limit_is_configurable() {
    let mut limits = Limits::default();
    limits.max_string = 16;
    let tight = cx(LATEST).with_limits(limits);
    let bytes = DumpStorePath {
        path: "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-a-path-longer-than-sixteen"
            .parse()
            .expect("valid"),
    }
    .to_wire(&tight);
    let err = DumpStorePath::decode_exact(&tight, &bytes).expect_err("over the limit");
    assert!(
        matches!(err.kind, DecodeErrorKind::TooLarge { limit: 16, .. }),
        "{err}"
    );
    assert!(DumpStorePath::decode_exact(&cx(LATEST), &bytes).is_ok());
}

#[test]
fn fields_are_gated_by_the_version_that_introduced_them() {
    let options = BuildOptions {
        max_silent_time: 1,
        build_timeout: 2,
        max_log_size: 3,
        nr_repeats: 4,
        enforce_determinism: true,
        keep_failed: true,
    };
    let len = |minor| options.to_wire(&cx(Version::new(2, minor))).len() / 8;
    assert_eq!([len(1), len(2), len(3), len(6), len(7)], [2, 3, 5, 5, 6]);
    assert_eq!(
        BuildOptions::FIELDS
            .iter()
            .filter(|f| f.since.is_some())
            .count(),
        4
    );
    // Absent fields decode to what the layout says, not to a default of
    // the type: at 2.2 a build result has no timing.
    let result = BuildResult::new(BuildStatus::PermanentFailure, "failed");
    let old = cx(Version::new(2, 2));
    let (decoded, _) = BuildResult::decode_exact(&old, &result.to_wire(&old)).expect("decodes");
    assert_eq!(decoded, result);
    assert!(
        <BuildResult as Wire<Serve>>::FIELDS
            .iter()
            .any(|f| f.name == "cpu_user" && !f.on_wire)
    );
}

#[test]
#[should_panic(expected = "needs major version 2")]
fn a_serve_context_at_a_worker_version_is_refused() {
    // A serve layout can never be gated by a worker version: the context
    // itself cannot be made (and `Cx<Worker>` does not encode serve types).
    let _ = Cx::<Serve>::new(Version::new(1, 38));
}

#[test]
fn non_zero_padding_and_bad_booleans_are_refused() {
    let cx = cx(LATEST);
    let mut bytes = Vec::new();
    encode_u64(1, &mut bytes);
    bytes.extend_from_slice(b"ab\0\0\0\0\0\0");
    let err = NixString::decode_exact(&cx, &bytes).expect_err("bad padding");
    assert!(err.to_string().contains("zero padding"), "{err}");

    let mut bytes = Vec::new();
    encode_u64(2, &mut bytes);
    let err = bool::decode_exact(&cx, &bytes).expect_err("not a boolean");
    assert!(err.to_string().contains("a boolean (0 or 1)"), "{err}");
}

#[test]
fn built_outputs_travel_as_json_before_2_8_and_structured_from_2_8() {
    let out = OutputName::new("out").expect("valid");
    let path: StorePath = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-x-out"
        .parse()
        .expect("valid");
    let mut result = BuildResult::new(BuildStatus::Built, "");
    result.built_outputs = vec![(
        out.clone(),
        Realisation {
            id: None,
            out_path: path.clone(),
            signatures: vec![],
        },
    )];
    let v27 = cx(Version::new(2, 7));
    let bytes = result.to_wire(&v27);
    // As Nix writes it for old clients: a dummy derivation hash, the base name.
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("!out"), "{text}");
    assert!(
        text.contains("\"outPath\":\"7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-x-out\""),
        "{text}"
    );
    let (decoded, _) = BuildResult::decode_exact(&v27, &bytes).expect("decodes");
    assert_eq!(decoded.built_outputs[0].0, out);
    assert_eq!(decoded.built_outputs[0].1.out_path, path);

    // The base name is joined onto the connection's store directory.
    let gnu = v27
        .clone()
        .with_store_dir(nixwire_core::store::StoreDir::new("/gnu/store").expect("a store dir"));
    let (decoded, _) = BuildResult::decode_exact(&gnu, &bytes).expect("decodes");
    assert_eq!(
        gnu.store_dir
            .display_path(&decoded.built_outputs[0].1.out_path),
        "/gnu/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-x-out"
    );

    let v28 = cx(LATEST);
    let (decoded, _) = BuildResult::decode_exact(&v28, &result.to_wire(&v28)).expect("decodes");
    assert_eq!(decoded, result);
}

/// A layout of the worker protocol, to exercise the gates serve messages do
/// not use: `until` and `feature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gated {
    /// On the wire in every version.
    pub always: u64,
    /// Only before 1.30.
    pub old: u64,
    /// Only from 1.38 on, with the `provenance` feature.
    pub featured: u64,
}

nixwire_core::wire_layout! {
    impl Wire<nixwire_core::wire::Worker> for Gated {
        always,
        #[until(1, 30)]
        old = 7,
        #[since(1, 38)]
        #[feature("provenance")]
        featured = 9,
    }
}

#[test]
fn until_and_feature_gates() {
    use nixwire_core::wire::{Features, Worker};
    let value = Gated {
        always: 1,
        old: 2,
        featured: 3,
    };
    let at = |minor: u8, features: &[&str]| {
        let mut cx = Cx::<Worker>::new(Version::new(1, minor));
        cx.features = Features::new(features.iter().copied());
        let bytes = value.to_wire(&cx);
        let (decoded, _) = Gated::decode_exact(&cx, &bytes).expect("decodes");
        (bytes.len() / 8, decoded)
    };
    assert_eq!(
        at(21, &[]),
        (
            2,
            Gated {
                featured: 9,
                ..value.clone()
            }
        )
    );
    assert_eq!(
        at(30, &[]),
        (
            1,
            Gated {
                old: 7,
                featured: 9,
                ..value.clone()
            }
        )
    );
    assert_eq!(
        at(38, &[]),
        (
            1,
            Gated {
                old: 7,
                featured: 9,
                ..value.clone()
            }
        )
    );
    assert_eq!(
        at(38, &["provenance"]),
        (
            2,
            Gated {
                old: 7,
                ..value.clone()
            }
        )
    );
    let gates: Vec<_> = Gated::FIELDS
        .iter()
        .map(|f| (f.name, f.until, f.feature))
        .collect();
    assert_eq!(
        gates,
        vec![
            ("always", None, None),
            ("old", Some(Version::new(1, 30)), None),
            ("featured", None, Some("provenance")),
        ]
    );
}
