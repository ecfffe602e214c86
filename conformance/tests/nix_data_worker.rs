//! Nix's own characterization data for the worker protocol and the types it
//! shares with the serve protocol (`conformance/nix-data/worker-protocol/`
//! and `common-protocol/`, copied from Nix's `src/libstore-tests/data/`;
//! see the README there).
//!
//! Each file holds one or more values of one type, encoded back to back at
//! one protocol version and feature set. For every file whose type nixwire
//! has, [`WORKER`] and [`COMMON`] say the version, the features and the
//! values Nix's C++ test (`worker-protocol.cc`, `common-protocol.cc`)
//! states; the test decodes the file with nixwire's worker layouts, compares
//! the values, re-encodes what it decoded and compares the bytes, and
//! (where the bytes are what Nix writes) encodes the stated values and
//! compares those bytes. The files nixwire does not decode are in
//! [`NOT_DECODED`], each with the reason; a file in neither list fails the
//! test, so new data from Nix is noticed.
//!
//! The expectations are nixwire's typed values built by small helpers
//! ([`path`], [`sig`], [`ca`], ...) from the inputs Nix's test states,
//! never by parsing the text on the wire.

mod nix_data_support;

use nix_data_support::*;
use nixwire_core::store::{
    BuildResult, BuildStatus, ContentAddress, ContentAddressMethod, DerivedPath, DrvOutput, Hash,
    HashAlgo, OutputsSpec, PathInfo, Realisation, Signature, StorePath,
};
use nixwire_core::wire::{Cx, Features, NixString, Version, Wire, Worker};
use nixwire_core::worker::features::REALISATION_WITH_PATH_NOT_HASH;
use nixwire_core::worker::handshake::{HandshakeInfo, SERVER_MAGIC, ServerHello, Trust};
use nixwire_core::worker::messages::{
    BuildMode, KeyedBuildResult, RegisterDrvOutput, ValidPathInfo,
};
use sha2::{Digest, Sha256};

/// One expected value, of one of the types the files hold.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// A string (bytes).
    Str(NixString),
    /// A store path, which travels as its full path.
    Path(StorePath),
    /// An optional store path (empty for none).
    OptPath(Option<StorePath>),
    /// A content address. nixwire has a layout only for the optional one
    /// (empty for none); one that must be there decodes through it and
    /// refuses the empty string.
    Ca(ContentAddress),
    /// An optional content address (empty for none).
    OptCa(Option<ContentAddress>),
    /// A list or set of strings (a set is sent sorted).
    Strs(Vec<NixString>),
    /// A list or set of lists or sets of strings.
    StrsList(Vec<Vec<NixString>>),
    BuildMode(BuildMode),
    DerivedPath(DerivedPath),
    /// Nix's `DrvOutput`, by hash or by path as the feature says.
    DrvOutput(DrvOutput),
    /// Nix's `UnkeyedRealisation`.
    Realisation(Realisation),
    /// Nix's (keyed) `Realisation`: exactly `RegisterDrvOutput`'s request.
    KeyedRealisation(RegisterDrvOutput),
    BuildResult(BuildResult),
    KeyedBuildResult(KeyedBuildResult),
    /// Nix's `UnkeyedValidPathInfo`.
    PathInfo(PathInfo),
    ValidPathInfo(ValidPathInfo),
    /// What Nix's server writes in the handshake: its magic and version
    /// (and, from 1.38 only, its features).
    ServerHello(ServerHello),
    /// Nix's `ClientHandshakeInfo`: what the daemon says about itself.
    HandshakeInfo(HandshakeInfo),
    /// Nix's `std::optional<TrustedFlag>` (none is `Unknown`).
    Trust(Trust),
}

impl DataValue<Worker> for Value {
    /// Decodes a value of the same type as `self` from the front of `input`,
    /// and says how many bytes it took.
    fn decode_like(&self, cx: &Cx<Worker>, input: &[u8]) -> Result<(Self, usize), String> {
        fn go<T: Wire<Worker>>(
            cx: &Cx<Worker>,
            input: &[u8],
            wrap: fn(T) -> Value,
        ) -> Result<(Value, usize), String> {
            T::decode_exact(cx, input)
                .map(|(v, used)| (wrap(v), used))
                .map_err(|e| e.to_string())
        }
        match self {
            Self::Str(_) => go(cx, input, Self::Str),
            Self::Path(_) => go(cx, input, Self::Path),
            Self::OptPath(_) => go(cx, input, Self::OptPath),
            Self::Ca(_) => match go(cx, input, Self::OptCa)? {
                (Self::OptCa(Some(ca)), used) => Ok((Self::Ca(ca), used)),
                _ => Err("the empty string (no content address) where one must be".into()),
            },
            Self::OptCa(_) => go(cx, input, Self::OptCa),
            Self::Strs(_) => go(cx, input, Self::Strs),
            Self::StrsList(_) => go(cx, input, Self::StrsList),
            Self::BuildMode(_) => go(cx, input, Self::BuildMode),
            Self::DerivedPath(_) => go(cx, input, Self::DerivedPath),
            Self::DrvOutput(_) => go(cx, input, Self::DrvOutput),
            Self::Realisation(_) => go(cx, input, Self::Realisation),
            Self::KeyedRealisation(_) => go(cx, input, Self::KeyedRealisation),
            Self::BuildResult(_) => go(cx, input, Self::BuildResult),
            Self::KeyedBuildResult(_) => go(cx, input, Self::KeyedBuildResult),
            Self::PathInfo(_) => go(cx, input, Self::PathInfo),
            Self::ValidPathInfo(_) => go(cx, input, Self::ValidPathInfo),
            Self::ServerHello(_) => go(cx, input, Self::ServerHello),
            Self::HandshakeInfo(_) => go(cx, input, Self::HandshakeInfo),
            Self::Trust(_) => go(cx, input, Self::Trust),
        }
    }

    fn encode(&self, cx: &Cx<Worker>, out: &mut Vec<u8>) {
        match self {
            Self::Str(v) => v.encode(cx, out),
            Self::Path(v) => v.encode(cx, out),
            Self::OptPath(v) => v.encode(cx, out),
            Self::Ca(v) => Some(*v).encode(cx, out),
            Self::OptCa(v) => v.encode(cx, out),
            Self::Strs(v) => v.encode(cx, out),
            Self::StrsList(v) => v.encode(cx, out),
            Self::BuildMode(v) => v.encode(cx, out),
            Self::DerivedPath(v) => v.encode(cx, out),
            Self::DrvOutput(v) => v.encode(cx, out),
            Self::Realisation(v) => v.encode(cx, out),
            Self::KeyedRealisation(v) => v.encode(cx, out),
            Self::BuildResult(v) => v.encode(cx, out),
            Self::KeyedBuildResult(v) => v.encode(cx, out),
            Self::PathInfo(v) => v.encode(cx, out),
            Self::ValidPathInfo(v) => v.encode(cx, out),
            Self::ServerHello(v) => v.encode(cx, out),
            Self::HandshakeInfo(v) => v.encode(cx, out),
            Self::Trust(v) => v.encode(cx, out),
        }
    }

    /// The value as compared with the C++ test's statement. Nix reads the
    /// JSON `builtOutputs` (a map from `<drv hash>!<output>` to a JSON
    /// realisation) as output name and path only, and states them that way;
    /// so both sides are compared without the realisations' ids, which
    /// [`check_ids`] checks on their own.
    fn normalised(&self) -> Self {
        let strip = |r: &BuildResult| BuildResult {
            built_outputs: r
                .built_outputs
                .iter()
                .map(|(name, realisation)| {
                    let realisation = Realisation {
                        id: None,
                        ..realisation.clone()
                    };
                    (name.clone(), realisation)
                })
                .collect(),
            ..r.clone()
        };
        match self {
            Self::BuildResult(r) => Self::BuildResult(strip(r)),
            Self::KeyedBuildResult(k) => Self::KeyedBuildResult(KeyedBuildResult {
                path: k.path.clone(),
                result: strip(&k.result),
            }),
            other => other.clone(),
        }
    }

    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl Value {
    fn build_result(&self) -> Option<&BuildResult> {
        match self {
            Self::BuildResult(r) => Some(r),
            Self::KeyedBuildResult(k) => Some(&k.result),
            _ => None,
        }
    }
}

/// One file of a table.
struct Case {
    file: &'static str,
    /// The protocol version the values are encoded at.
    version: Version,
    /// Whether `realisation-with-path-not-hash` was agreed (the only feature
    /// Nix's data uses).
    path_feature: bool,
    /// The values the C++ test states, in file order.
    values: fn() -> Vec<Value>,
    /// Whether the stated values encode to exactly the file's bytes, as
    /// Nix writes them (Nix's "characterization tests"); `false` for a
    /// read-only test, whose file an older Nix wrote.
    write: bool,
    /// The derivation hash in the ids of the JSON `builtOutputs`
    /// (`sha256:<base16>`), if the file's ids name a real derivation;
    /// checked by [`check_ids`].
    legacy_drv_hash: Option<&'static str>,
}

const fn v(minor: u8) -> Version {
    Version::new(1, minor)
}

/// The version `worker-protocol.cc` uses for types without a version gate
/// (its oldest).
const DEFAULT: Version = v(10);

/// The derivation hash the older Nix that wrote the read-only build result
/// files used in their output ids.
const OLD_DRV_HASH: &str =
    "sha256:6f869f9ea2823bda165e06076fd0de4366dead2c0e8d2dbbad277d4f15c373f5";

const fn case(file: &'static str, version: Version, values: fn() -> Vec<Value>) -> Case {
    Case {
        file,
        version,
        path_feature: false,
        values,
        write: true,
        legacy_drv_hash: None,
    }
}

/// Every worker-protocol file nixwire decodes, with what Nix's test says is
/// in it.
const WORKER: &[Case] = &[
    case("string.bin", DEFAULT, strings_of_the_test),
    case("store-path.bin", DEFAULT, store_paths),
    case("content-address.bin", DEFAULT, content_addresses),
    case("optional-store-path.bin", DEFAULT, optional_store_paths),
    case(
        "optional-content-address.bin",
        DEFAULT,
        optional_content_addresses,
    ),
    case("vector.bin", DEFAULT, vectors),
    case("set.bin", DEFAULT, sets),
    case("build-mode.bin", DEFAULT, || {
        BuildMode::ALL
            .iter()
            .map(|m| Value::BuildMode(*m))
            .collect()
    }),
    case("derived-path-1.29.bin", v(29), || {
        vec![
            Value::DerivedPath(DerivedPath::Opaque(path("-foo"))),
            Value::DerivedPath(DerivedPath::built(path("-bar.drv"), OutputsSpec::All)),
            Value::DerivedPath(DerivedPath::built(
                path("-bar.drv"),
                OutputsSpec::Names(vec![output("x"), output("y")]),
            )),
        ]
    }),
    case("derived-path-1.30.bin", v(30), || {
        vec![
            Value::DerivedPath(DerivedPath::Opaque(path("-foo"))),
            Value::DerivedPath(DerivedPath::Opaque(path("-foo.drv"))),
            Value::DerivedPath(DerivedPath::built(path("-bar.drv"), OutputsSpec::All)),
            Value::DerivedPath(DerivedPath::built(
                path("-bar.drv"),
                OutputsSpec::Names(vec![output("x"), output("y")]),
            )),
        ]
    }),
    Case {
        path_feature: true,
        ..case(
            "drv-output-realisation-with-path-not-hash.bin",
            v(38),
            || {
                vec![
                    Value::DrvOutput(by_path("-foo.drv", "baz")),
                    Value::DrvOutput(by_path("-foo.drv", "quux")),
                ]
            },
        )
    },
    Case {
        path_feature: true,
        ..case(
            "unkeyed-realisation-realisation-with-path-not-hash.bin",
            v(38),
            || vec![Value::Realisation(foo_realisation(None))],
        )
    },
    Case {
        path_feature: true,
        ..case(
            "realisation-realisation-with-path-not-hash.bin",
            v(38),
            || {
                vec![Value::KeyedRealisation(RegisterDrvOutput {
                    realisation: foo_realisation(Some(by_path("-foo.drv", "baz"))),
                })]
            },
        )
    },
    // Before 1.28 only the status and the message travel.
    case("build-result-1.27.bin", v(27), || {
        vec![
            failure(BuildStatus::OutputRejected, 0, false, 0, 0),
            failure(BuildStatus::NotDeterministic, 0, false, 0, 0),
            success(0, 0, 0, None, &[]),
        ]
    }),
    // Read-only in Nix: an older Nix wrote the outputs under the
    // derivation's real hash, in four-field JSON; nixwire keeps each id, so
    // what it decoded re-encodes to these bytes.
    Case {
        write: false,
        legacy_drv_hash: Some(OLD_DRV_HASH),
        ..case("build-result-1.28.bin", v(28), || {
            vec![
                failure(BuildStatus::OutputRejected, 0, false, 0, 0),
                failure(BuildStatus::NotDeterministic, 0, false, 0, 0),
                success(0, 0, 0, None, &[("bar", "-bar"), ("foo", "-foo")]),
            ]
        })
    },
    Case {
        write: false,
        legacy_drv_hash: Some(OLD_DRV_HASH),
        ..case("build-result-1.29.bin", v(29), three_build_results)
    },
    // What Nix writes now for a client without the feature: the dummy hash
    // (no id) and only `id` and `outPath`.
    case("build-result-1.29-compat.bin", v(29), three_build_results),
    Case {
        write: false,
        legacy_drv_hash: Some(OLD_DRV_HASH),
        ..case("build-result-1.37.bin", v(37), three_build_results_with_cpu)
    },
    Case {
        path_feature: true,
        ..case(
            "build-result-realisation-with-path-not-hash.bin",
            v(38),
            three_build_results_with_cpu,
        )
    },
    case("keyed-build-result-1.29.bin", v(29), || {
        let keyed = |path, result: Value| match result {
            Value::BuildResult(result) => {
                Value::KeyedBuildResult(KeyedBuildResult { path, result })
            }
            other => other,
        };
        vec![
            keyed(
                DerivedPath::Opaque(path("-xxx")),
                failure(BuildStatus::OutputRejected, 0, false, 0, 0),
            ),
            keyed(
                DerivedPath::built(path("-bar.drv"), OutputsSpec::Names(vec![output("out")])),
                failure(BuildStatus::NotDeterministic, 3, true, 30, 50),
            ),
        ]
    }),
    // Before 1.16 no `ultimate`, signatures or content address travel.
    case("unkeyed-valid-path-info-1.15.bin", v(15), || {
        vec![
            Value::PathInfo(path_info(None, vec![], false, vec![], None)),
            Value::PathInfo(path_info(
                Some(path("-bar.drv")),
                vec![path_with(OTHER_HASH_PART, "-foo.drv")],
                false,
                vec![],
                None,
            )),
        ]
    }),
    case("valid-path-info-1.15.bin", v(15), || {
        vec![
            valid(path("-bar"), path_info(None, vec![], false, vec![], None)),
            valid(
                path("-bar"),
                path_info(
                    Some(path("-bar.drv")),
                    // A set: sent sorted ("…hy3q-bar" before "…hyyyy…").
                    vec![path("-bar"), path_with(OTHER_HASH_PART, "-foo")],
                    false,
                    vec![],
                    None,
                ),
            ),
        ]
    }),
    case("valid-path-info-1.16.bin", v(16), || {
        vec![
            valid(path("-bar"), path_info(None, vec![], true, vec![], None)),
            valid(
                path("-bar"),
                path_info(
                    Some(path("-bar.drv")),
                    vec![path("-bar"), path_with(OTHER_HASH_PART, "-foo")],
                    false,
                    vec![sig("fake-sig-1"), sig("fake-sig-2")],
                    None,
                ),
            ),
            // `ValidPathInfo::makeFromCA` of "foo", NAR-hashed, referring
            // to `H-bar` and to itself: the path Nix computes for it is
            // n5wkd9… (as the JSON beside the file says).
            valid(
                path_with(SELF_HASH_PART, "-foo"),
                path_info(
                    None,
                    vec![path("-bar"), path_with(SELF_HASH_PART, "-foo")],
                    false,
                    vec![],
                    Some(ca(
                        ContentAddressMethod::Nar,
                        HashAlgo::Sha256,
                        &sha256(b"(...)"),
                    )),
                ),
            ),
        ]
    }),
    // Nix's `handshake_log`: everything the server sends a client in
    // `BasicServerConnection::handshake` when both speak 1.10, which is the
    // magic and the version only (the feature lists follow only from
    // 1.38; the options, the handshake info and STDERR_LAST come after
    // `handshake`, so they are not in the file).
    case("handshake-to-client.bin", DEFAULT, || {
        vec![Value::ServerHello(ServerHello {
            magic: SERVER_MAGIC,
            version: DEFAULT.to_wire(),
        })]
    }),
    // `ClientHandshakeInfo{}` at 1.30: nothing travels before 1.33, so the
    // file is empty (Nix's none for both fields is nixwire's empty version
    // and `Trust::Unknown`).
    case("client-handshake-info_1_30.bin", v(30), || {
        vec![Value::HandshakeInfo(HandshakeInfo::default())]
    }),
    // At 1.33 the daemon's version travels; the trust does not (none).
    case("client-handshake-info_1_33.bin", v(33), || {
        vec![
            handshake_info("foo", Trust::Unknown),
            handshake_info("bar", Trust::Unknown),
        ]
    }),
    case("client-handshake-info_1_35.bin", v(35), || {
        vec![
            handshake_info("foo", Trust::NotTrusted),
            handshake_info("bar", Trust::Trusted),
        ]
    }),
    // None, `Trusted`, `NotTrusted`: 0, 1, 2, each a word.
    case("optional-trusted-flag.bin", DEFAULT, || {
        vec![
            Value::Trust(Trust::Unknown),
            Value::Trust(Trust::Trusted),
            Value::Trust(Trust::NotTrusted),
        ]
    }),
    // Left over (no test reads it at this commit): the derivation output
    // as Nix sends it without the path feature (Nix 2.34 writes the same).
    case("drv-output.bin", DEFAULT, || {
        vec![
            Value::DrvOutput(by_hash(DRV_HASH_BAZ, "baz")),
            Value::DrvOutput(by_hash(OLD_DRV_HASH, "quux")),
        ]
    }),
];

/// Every common-protocol file nixwire decodes: the layouts both protocols
/// share, here through the worker's (they are the same in the serve
/// protocol, whose own copies of these files `nix_data.rs` checks).
const COMMON: &[Case] = &[
    case("string.bin", DEFAULT, strings_of_the_test),
    case("store-path.bin", DEFAULT, store_paths),
    case("content-address.bin", DEFAULT, content_addresses),
    case("optional-store-path.bin", DEFAULT, optional_store_paths),
    case(
        "optional-content-address.bin",
        DEFAULT,
        optional_content_addresses,
    ),
    case("vector.bin", DEFAULT, vectors),
    case("set.bin", DEFAULT, sets),
    // Left over, as in worker-protocol.
    case("drv-output.bin", DEFAULT, || {
        vec![
            Value::DrvOutput(by_hash(DRV_HASH_BAZ, "baz")),
            Value::DrvOutput(by_hash(OLD_DRV_HASH, "quux")),
        ]
    }),
];

/// Files nixwire does not decode here, each with the reason.
const NOT_DECODED: &[(&str, &str)] = &[
    (
        "worker-protocol/realisation.bin",
        "left over in Nix's tree (no test reads it at this commit): JSON realisations whose \
         second value has signatures as JSON objects, a form no released Nix sent (2.34 sends \
         them as strings, which RegisterDrvOutput and QueryRealisation read from 1.31)",
    ),
    (
        "worker-protocol/realisation-with-deps.bin",
        "left over in Nix's tree: a JSON realisation with a dependent realisation; nixwire \
         reads dependentRealisations and drops them (Nix 2.34 and later always send none), \
         so this value would not re-encode to the same bytes",
    ),
    (
        "common-protocol/realisation.bin",
        "left over in Nix's tree: the same bytes as worker-protocol/realisation.bin",
    ),
    (
        "common-protocol/realisation-with-deps.bin",
        "left over in Nix's tree: the same bytes as worker-protocol/realisation-with-deps.bin",
    ),
];

// ---- helpers that build expected values ----

/// The other hash part Nix's path-info tests use.
const OTHER_HASH_PART: &str = "g1w7hyyyy1w7hy3qg1w7hy3qgqqqqy3q";

/// The hash part of the content-addressed path in valid-path-info-1.16.
const SELF_HASH_PART: &str = "n5wkd9frr45pa74if5gpz9j7mifg27fh";

/// The derivation hash of the `baz` output in the left-over DrvOutput data.
const DRV_HASH_BAZ: &str =
    "sha256:15e3c560894cbb27085cf65b5a2ecb18488c999497f4531b6907a7581ce6d527";

fn text(items: &[&str]) -> Vec<NixString> {
    items.iter().map(|s| NixString::from(*s)).collect()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// `hashString(SHA1, "blob blob...")`, computed with `sha1sum`; Nix's JSON
/// of the same value says `sha1-gGemBoenViNZM3hiwqns/Fgzqwo=`.
fn sha1_blob() -> Vec<u8> {
    hex::decode("8067a60687a7562359337862c2a9ecfc5833ab0a").expect("hex")
}

fn ca(method: ContentAddressMethod, algo: HashAlgo, digest: &[u8]) -> ContentAddress {
    ContentAddress {
        method,
        hash: Hash::new(algo, digest).expect("a digest of the algorithm's size"),
    }
}

fn by_path(drv: &str, name: &str) -> DrvOutput {
    DrvOutput::Path {
        drv_path: path(drv),
        output: output(name),
    }
}

fn by_hash(drv_hash: &str, name: &str) -> DrvOutput {
    DrvOutput::Hash {
        drv_hash: drv_hash.into(),
        output: output(name),
    }
}

/// `H-foo`, signed by `asdf` and `qwer`.
fn foo_realisation(id: Option<DrvOutput>) -> Realisation {
    Realisation {
        id,
        out_path: path("-foo"),
        signatures: vec![sig("asdf"), sig("qwer")],
    }
}

fn strings_of_the_test() -> Vec<Value> {
    // The C++ literal "oh no \0\0\0 what was that!" becomes a std::string
    // through `const char *`, which stops at the first NUL.
    ["", "hi", "white rabbit", "大白兔", "oh no "]
        .into_iter()
        .map(|s| Value::Str(s.into()))
        .collect()
}

fn store_paths() -> Vec<Value> {
    vec![Value::Path(path("-foo")), Value::Path(path("-foo-bar"))]
}

fn content_addresses() -> Vec<Value> {
    vec![
        Value::Ca(ca(
            ContentAddressMethod::Text,
            HashAlgo::Sha256,
            &sha256(b"Derive(...)"),
        )),
        Value::Ca(ca(ContentAddressMethod::Flat, HashAlgo::Sha1, &sha1_blob())),
        Value::Ca(ca(
            ContentAddressMethod::Nar,
            HashAlgo::Sha256,
            &sha256(b"(...)"),
        )),
    ]
}

fn optional_store_paths() -> Vec<Value> {
    vec![Value::OptPath(None), Value::OptPath(Some(path("-foo-bar")))]
}

fn optional_content_addresses() -> Vec<Value> {
    vec![
        Value::OptCa(None),
        Value::OptCa(Some(ca(
            ContentAddressMethod::Flat,
            HashAlgo::Sha1,
            &sha1_blob(),
        ))),
    ]
}

fn vectors() -> Vec<Value> {
    vec![
        Value::Strs(text(&[])),
        Value::Strs(text(&[""])),
        Value::Strs(text(&["", "foo", "bar"])),
        Value::StrsList(vec![text(&[]), text(&[""]), text(&["", "1", "2"])]),
    ]
}

/// The C++ sets {"", "foo", "bar"} and {{}, {""}, {"", "1", "2"}}, sent
/// sorted.
fn sets() -> Vec<Value> {
    vec![
        Value::Strs(text(&[])),
        Value::Strs(text(&[""])),
        Value::Strs(text(&["", "bar", "foo"])),
        Value::StrsList(vec![text(&[]), text(&[""]), text(&["", "1", "2"])]),
    ]
}

/// A failed `BuildResult` with the message "no idea why".
fn failure(status: BuildStatus, times: u64, nondet: bool, start: u64, stop: u64) -> Value {
    Value::BuildResult(BuildResult {
        times_built: times,
        is_non_deterministic: nondet,
        start_time: start,
        stop_time: stop,
        ..BuildResult::new(status, "no idea why")
    })
}

/// A `Built` result with these outputs (name, store path base after the
/// hash part), without signatures, and CPU times (µs) if given.
fn success(
    times: u64,
    start: u64,
    stop: u64,
    cpu: Option<(u64, u64)>,
    outputs: &[(&str, &str)],
) -> Value {
    Value::BuildResult(BuildResult {
        times_built: times,
        start_time: start,
        stop_time: stop,
        cpu_user: cpu.map(|c| c.0),
        cpu_system: cpu.map(|c| c.1),
        built_outputs: outputs
            .iter()
            .map(|(name, rest)| {
                let realisation = Realisation {
                    id: None,
                    out_path: path(rest),
                    signatures: Vec::new(),
                };
                (output(name), realisation)
            })
            .collect(),
        ..BuildResult::new(BuildStatus::Built, "")
    })
}

/// The three results of build-result-1.29 and later: a rejected output, a
/// non-deterministic build, and a build of outputs `bar` and `foo` (sent in
/// name order).
fn three_build_results() -> Vec<Value> {
    vec![
        failure(BuildStatus::OutputRejected, 0, false, 0, 0),
        failure(BuildStatus::NotDeterministic, 3, true, 30, 50),
        success(1, 30, 50, None, &[("bar", "-bar"), ("foo", "-foo")]),
    ]
}

/// As [`three_build_results`], the build with 500 s user and 604 s system
/// CPU time.
fn three_build_results_with_cpu() -> Vec<Value> {
    vec![
        failure(BuildStatus::OutputRejected, 0, false, 0, 0),
        failure(BuildStatus::NotDeterministic, 3, true, 30, 50),
        success(
            1,
            30,
            50,
            Some((500_000_000, 604_000_000)),
            &[("bar", "-bar"), ("foo", "-foo")],
        ),
    ]
}

/// An `UnkeyedValidPathInfo` with registration time 23423, NAR size 34878
/// and the test's NAR hash.
fn path_info(
    deriver: Option<StorePath>,
    references: Vec<StorePath>,
    ultimate: bool,
    sigs: Vec<Signature>,
    ca: Option<ContentAddress>,
) -> PathInfo {
    PathInfo {
        deriver,
        nar_hash: Some(nar_hash(NAR_HASH_SRI)),
        references,
        registration_time: 23423,
        nar_size: 34878,
        download_size: 0,
        ultimate,
        sigs,
        ca,
        provenance: None,
    }
}

fn valid(path: StorePath, info: PathInfo) -> Value {
    Value::ValidPathInfo(ValidPathInfo { path, info })
}

/// `ClientHandshakeInfo{.daemonNixVersion = version, .remoteTrustsUs = trust}`.
fn handshake_info(version: &str, trust: Trust) -> Value {
    Value::HandshakeInfo(HandshakeInfo {
        daemon_version: version.into(),
        trust,
    })
}

// ---- the checks ----

fn cx_of(case: &Case) -> Cx<Worker> {
    let mut cx = Cx::<Worker>::new(case.version);
    if case.path_feature {
        cx.features = Features::new([REALISATION_WITH_PATH_NOT_HASH]);
    }
    cx
}

/// Checks the ids of a decoded build result's outputs: each is
/// `<the file's drv hash>!<its output name>` where the file names a real
/// derivation, and none otherwise (the dummy hash, or structured outputs).
fn check_ids(case: &Case, got: &Value) -> Result<(), String> {
    let Some(result) = got.build_result() else {
        return Ok(());
    };
    for (name, realisation) in &result.built_outputs {
        let want = case.legacy_drv_hash.map(|h| by_hash(h, name.as_str()));
        if realisation.id != want {
            return Err(format!(
                "output {name}: id {:?}, expected {want:?}",
                realisation.id
            ));
        }
    }
    Ok(())
}

/// Checks one file's bytes against its case: every value decodes at the
/// case's version and features and equals the stated one (and its outputs'
/// ids are the file's), re-encodes to exactly the bytes it came from,
/// nothing is left over, and (for write cases) the stated values encode to
/// the file.
fn check(case: &Case, bytes: &[u8]) -> Result<(), String> {
    let expected = (case.values)();
    check_values(&cx_of(case), &expected, bytes, case.write, |got| {
        check_ids(case, got)
    })
}

fn tables() -> [(&'static str, &'static [Case]); 2] {
    [("worker-protocol", WORKER), ("common-protocol", COMMON)]
}

#[test]
fn every_worker_and_common_file_decodes_to_what_nix_states_and_reencodes_identically() {
    let mut failures = Vec::new();
    for (folder, table) in tables() {
        for case in table {
            if let Err(e) = check(case, &read(folder, case.file)) {
                failures.push(format!("{folder}/{} at {}: {e}", case.file, case.version));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_worker_and_common_file_is_in_a_table_or_listed_with_a_reason() {
    let mut listed: Vec<String> = tables()
        .iter()
        .flat_map(|(folder, table)| table.iter().map(move |c| format!("{folder}/{}", c.file)))
        .collect();
    listed.extend(NOT_DECODED.iter().map(|(f, _)| (*f).to_owned()));
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), listed.len(), "a file is listed twice");

    let mut on_disk = Vec::new();
    for (folder, _) in tables() {
        for entry in std::fs::read_dir(data_dir().join(folder)).expect(folder) {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".bin") {
                on_disk.push(format!("{folder}/{name}"));
            }
        }
    }
    on_disk.sort_unstable();
    assert_eq!(
        on_disk, sorted,
        "the .bin files and the lists here differ: add new files to a table or NOT_DECODED"
    );
    for (file, reason) in NOT_DECODED {
        assert!(!reason.is_empty(), "{file} needs a reason");
    }
}

/// The checks can fail: for every file whose bytes Nix writes, changing any
/// one byte is noticed (a decode error, a different value, or bytes the
/// stated values do not encode to), and so are extra bytes.
#[test]
fn a_changed_byte_in_any_file_is_noticed() {
    for (folder, table) in tables() {
        for case in table.iter().filter(|c| c.write) {
            let bytes = read(folder, case.file);
            for i in 0..bytes.len() {
                let mut changed = bytes.clone();
                changed[i] ^= 0x41;
                assert!(
                    check(case, &changed).is_err(),
                    "{folder}/{}: byte {i} changed, yet the check passed",
                    case.file
                );
            }
            let mut longer = bytes.clone();
            longer.extend_from_slice(&[0; 8]);
            assert!(check(case, &longer).is_err(), "{}: extra bytes", case.file);
        }
    }
    // The read-only files' stated values are checked too: a different
    // output path in their JSON, or a different derivation hash, is noticed.
    for case in WORKER.iter().filter(|c| !c.write) {
        let bytes = read("worker-protocol", case.file);
        let texts: [&[u8]; 2] = [b"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo\"", b"6f869f9e"];
        for text in texts {
            let at = bytes
                .windows(text.len())
                .position(|w| w == text)
                .expect("in the file");
            let mut changed = bytes.clone();
            changed[at] = b'h';
            assert!(check(case, &changed).is_err(), "{}", case.file);
        }
    }
}

/// What the feature changes, on Nix's own bytes: the same build results
/// read with and without `realisation-with-path-not-hash` differ only in
/// how the outputs travel.
#[test]
fn the_path_feature_changes_only_the_outputs() {
    let structured = WORKER
        .iter()
        .find(|c| c.file == "build-result-realisation-with-path-not-hash.bin")
        .expect("in the table");
    let json = WORKER
        .iter()
        .find(|c| c.file == "build-result-1.37.bin")
        .expect("in the table");
    assert_eq!(
        (structured.values)()
            .iter()
            .map(Value::normalised)
            .collect::<Vec<_>>(),
        (json.values)()
            .iter()
            .map(Value::normalised)
            .collect::<Vec<_>>()
    );
    // The structured bytes do not decode without the feature.
    let bytes = read("worker-protocol", structured.file);
    let without = Case {
        path_feature: false,
        ..case(structured.file, structured.version, structured.values)
    };
    assert!(check(&without, &bytes).is_err());
}

/// The handshake info's fields are gated by version: each file reads as
/// Nix states only at its own version, and fails at the neighbouring ones
/// (a field missing or left over).
#[test]
fn the_handshake_info_files_hold_their_versions_fields() {
    let others = [
        ("client-handshake-info_1_30.bin", [v(33), v(35)]),
        ("client-handshake-info_1_33.bin", [v(32), v(35)]),
        ("client-handshake-info_1_35.bin", [v(33), v(34)]),
    ];
    for (file, versions) in others {
        let own = WORKER
            .iter()
            .find(|c| c.file == file)
            .expect("in the table");
        let bytes = read("worker-protocol", file);
        for version in versions {
            let other = case(file, version, own.values);
            assert!(check(&other, &bytes).is_err(), "{file} read at {version}");
        }
    }
}
