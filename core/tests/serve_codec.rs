//! Property tests of the serve codec: every message round-trips at every
//! version it exists in; arbitrary bytes never panic a decoder; hostile length
//! prefixes are refused before anything is allocated.

use nixwire_core::serve::messages::*;
use nixwire_core::serve::{ImportPaths, Reply, Request};
use nixwire_core::wire::{Cx, DecodeErrorKind, Limits, Version, Wire, encode_u64};
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// Every serve minor version from 2.0 to the newest.
fn versions() -> impl Iterator<Item = Version> {
    (0..=LATEST.minor).map(|m| Version::new(2, m))
}

fn s(g: &mut Gen) -> String {
    String::arbitrary(g)
}

fn strings(g: &mut Gen) -> Vec<String> {
    Vec::<String>::arbitrary(g)
}

fn options(g: &mut Gen, v: Version) -> BuildOptions {
    // Fields absent at `v` stay at their default, since they cannot travel.
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
    let built_outputs = if v.minor >= 8 {
        BuiltOutputs::Structured(
            (0..u8::arbitrary(g) % 3)
                .map(|_| {
                    let r = Realisation {
                        out_path: s(g),
                        signatures: strings(g),
                    };
                    (s(g), r)
                })
                .collect(),
        )
    } else if v.minor >= 6 {
        BuiltOutputs::Json(Vec::<(String, String)>::arbitrary(g))
    } else {
        BuiltOutputs::default()
    };
    BuildResult {
        status,
        error_msg: s(g),
        times_built: if at(3) { u64::arbitrary(g) } else { 0 },
        is_non_deterministic: at(3) && bool::arbitrary(g),
        start_time: if at(3) { u64::arbitrary(g) } else { 0 },
        stop_time: if at(3) { u64::arbitrary(g) } else { 0 },
        built_outputs,
    }
}

fn path_info(g: &mut Gen, v: Version) -> UnkeyedValidPathInfo {
    let new = v.minor >= 4;
    UnkeyedValidPathInfo {
        deriver: s(g),
        references: strings(g),
        download_size: u64::arbitrary(g),
        nar_size: u64::arbitrary(g),
        nar_hash: if new { s(g) } else { String::new() },
        ca: if new { s(g) } else { String::new() },
        sigs: if new { strings(g) } else { Vec::new() },
    }
}

fn derivation(g: &mut Gen) -> BasicDerivation {
    BasicDerivation {
        outputs: (0..u8::arbitrary(g) % 3)
            .map(|_| DerivationOutput {
                name: s(g),
                path: s(g),
                hash_algo: s(g),
                hash: s(g),
            })
            .collect(),
        input_srcs: strings(g),
        platform: s(g),
        builder: s(g),
        args: strings(g),
        env: Vec::<(String, String)>::arbitrary(g),
    }
}

fn trailer(g: &mut Gen) -> ExportTrailer {
    ExportTrailer {
        magic: ExportMagic,
        path: s(g),
        references: strings(g),
        deriver: s(g),
        legacy_signature: LegacySignature(Option::<String>::arbitrary(g)),
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
                    paths: strings(g),
                }),
                Reply::QueryValidPaths(strings(g)),
            ),
            1 => (
                Request::QueryPathInfos(QueryPathInfos { paths: strings(g) }),
                Reply::QueryPathInfos(PathInfos(
                    (0..u8::arbitrary(g) % 4)
                        .map(|i| (format!("/nix/store/p{i}{}", s(g)), path_info(g, version)))
                        .collect(),
                )),
            ),
            2 => (
                Request::DumpStorePath(DumpStorePath { path: s(g) }),
                Reply::DumpStorePath { nar_size: 0 },
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
                    paths: strings(g),
                }),
                Reply::QueryClosure(strings(g)),
            ),
            5 => (
                Request::BuildDerivation(BuildDerivation {
                    drv_path: s(g),
                    drv: derivation(g),
                    options: options(g, version),
                }),
                Reply::BuildDerivation(build_result(g, version)),
            ),
            6 => (
                Request::AddToStoreNar(AddToStoreNar {
                    path: s(g),
                    deriver: s(g),
                    nar_hash: s(g),
                    references: strings(g),
                    registration_time: u64::arbitrary(g),
                    nar_size: u64::arbitrary(g),
                    ultimate: bool::arbitrary(g),
                    sigs: strings(g),
                    ca: s(g),
                }),
                Reply::AddToStoreNar,
            ),
            _ => (
                Request::ImportPaths(ImportPaths::default()),
                Reply::ImportPaths,
            ),
        };
        Self {
            version,
            request,
            reply,
        }
    }
}

fn roundtrip_request(e: Exchange) -> bool {
    let cx = Cx::new(e.version);
    let mut bytes = Vec::new();
    e.request.encode_header(&cx, &mut bytes);
    matches!(Request::decode_header(&cx, &bytes), Ok((rest, r)) if rest.is_empty() && r == e.request)
}

fn roundtrip_reply(e: Exchange) -> bool {
    let cx = Cx::new(e.version);
    let mut bytes = Vec::new();
    e.reply.encode(&cx, &mut bytes);
    let command = e.reply.command();
    matches!(Reply::decode(command, &cx, &bytes), Ok((rest, r)) if rest.is_empty() && r == e.reply)
}

/// Every strict prefix of an encoding is "need more bytes", never an error and
/// never a value: the streaming contract.
fn prefixes_are_incomplete(e: Exchange) -> bool {
    let cx = Cx::new(e.version);
    let mut bytes = Vec::new();
    e.request.encode_header(&cx, &mut bytes);
    (0..bytes.len()).all(|n| {
        matches!(
            Request::decode_header(&cx, &bytes[..n]),
            Err(nom::Err::Incomplete(_))
        )
    })
}

fn trailer_roundtrip(seed: u8) -> bool {
    let mut g = Gen::new(usize::from(seed % 20) + 1);
    let t = trailer(&mut g);
    let cx = Cx::new(LATEST);
    let mut bytes = Vec::new();
    t.encode(&cx, &mut bytes);
    matches!(ExportTrailer::decode(&cx, &bytes), Ok((rest, d)) if rest.is_empty() && d == t)
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
}

/// Feeds arbitrary bytes to every decoder at every version: any answer is
/// fine except a panic (which fails the test).
fn arbitrary_bytes_never_panic(bytes: Vec<u8>, minor: u8) -> bool {
    let cx = Cx {
        version: Version::new(2, minor % 9),
        limits: Limits {
            max_string: 1 << 16,
            max_items: 1 << 10,
            max_message: 1 << 20,
        },
    };
    let _ = Request::decode_header(&cx, &bytes);
    for &c in Command::ALL {
        let _ = Reply::decode(c, &cx, &bytes);
    }
    let _ = ExportTrailer::decode(&cx, &bytes);
    let _ = BuildResult::decode(&cx, &bytes);
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

#[test]
fn hostile_length_prefix_is_an_error_not_an_allocation() {
    let cx = Cx::new(LATEST);
    // A string of 2^60 bytes.
    let mut bytes = Vec::new();
    encode_u64(Command::DumpStorePath.code(), &mut bytes);
    encode_u64(1 << 60, &mut bytes);
    let err = match Request::decode_header(&cx, &bytes) {
        Err(nom::Err::Failure(e)) => e,
        other => panic!("expected a failure, got {other:?}"),
    };
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
    let err = match Request::decode_header(&cx, &bytes) {
        Err(nom::Err::Failure(e)) => e,
        other => panic!("expected a failure, got {other:?}"),
    };
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
    let tight = Cx {
        version: LATEST,
        limits: Limits {
            max_string: 16,
            ..Limits::default()
        },
    };
    let mut bytes = Vec::new();
    DumpStorePath {
        path: "/nix/store/a-path-longer-than-sixteen".into(),
    }
    .encode(&tight, &mut bytes);
    assert!(matches!(
        DumpStorePath::decode(&tight, &bytes),
        Err(nom::Err::Failure(e)) if matches!(e.kind, DecodeErrorKind::TooLarge { limit: 16, .. })
    ));
    assert!(DumpStorePath::decode(&Cx::new(LATEST), &bytes).is_ok());
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
    let len = |minor| {
        let mut out = Vec::new();
        options.encode(&Cx::new(Version::new(2, minor)), &mut out);
        out.len() / 8
    };
    assert_eq!([len(1), len(2), len(3), len(6), len(7)], [2, 3, 5, 5, 6]);
    assert_eq!(
        BuildOptions::FIELDS
            .iter()
            .filter(|(_, since)| since.is_some())
            .count(),
        4
    );
}

#[test]
fn non_zero_padding_and_bad_booleans_are_refused() {
    let cx = Cx::new(LATEST);
    let mut bytes = Vec::new();
    encode_u64(1, &mut bytes);
    bytes.extend_from_slice(b"ab\0\0\0\0\0\0");
    let err = String::decode(&cx, &bytes).map(|_| ()).unwrap_err();
    assert!(format!("{err:?}").contains("zero padding"));

    let mut bytes = Vec::new();
    encode_u64(2, &mut bytes);
    let err = bool::decode(&cx, &bytes).map(|_| ()).unwrap_err();
    assert!(format!("{err:?}").contains("a boolean (0 or 1)"));
}

#[test]
fn built_outputs_convert_between_encodings() {
    let structured = BuiltOutputs::Structured(vec![(
        "out".into(),
        Realisation {
            out_path: "/nix/store/x-out".into(),
            signatures: vec![],
        },
    )]);
    let json = structured.for_version(Version::new(2, 7), DEFAULT_STORE_DIR);
    // As Nix writes it: the base name only.
    assert!(
        matches!(&json, BuiltOutputs::Json(e) if e.len() == 1 && e[0].0.ends_with("!out") && e[0].1.contains("\"outPath\":\"x-out\""))
    );
    assert_eq!(
        json.paths("/nix/store").ok(),
        Some(vec![("out".to_owned(), "/nix/store/x-out".to_owned())])
    );
    assert_eq!(json.for_version(LATEST, DEFAULT_STORE_DIR), structured);
    let bad = BuiltOutputs::Json(vec![("no-bang".into(), "{}".into())]);
    assert!(bad.paths(DEFAULT_STORE_DIR).is_err());
    // An unusable JSON entry is dropped rather than sent wrong.
    assert_eq!(
        bad.for_version(LATEST, DEFAULT_STORE_DIR),
        BuiltOutputs::Structured(vec![])
    );
}
