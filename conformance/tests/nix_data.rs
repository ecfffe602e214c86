//! Nix's own characterization data for the serve protocol
//! (`conformance/nix-data/serve-protocol/`, copied from Nix's
//! `src/libstore-tests/data/serve-protocol/`; see the README there).
//!
//! Each file holds one or more values of one type, encoded back to back at one
//! protocol version. For every file whose type nixwire has, [`TABLE`] says
//! the version and the values Nix's C++ test (`serve-protocol.cc`) states;
//! the test decodes the file with nixwire's codec, compares the values,
//! re-encodes what it decoded and compares the bytes, and (where Nix's test is
//! a write test too) encodes the stated values and compares those bytes. The
//! files nixwire has no type for are in [`NOT_DECODED`], each with the reason;
//! a file in neither list fails the test, so new data from Nix is noticed.
//!
//! The expectations are nixwire's typed values built by the small helpers
//! below ([`path`], [`sig`], [`ca`], ...) from the inputs Nix's test states,
//! never by parsing the text on the wire, so the encoding of each type is
//! checked against Nix's bytes.

mod nix_data_support;

use std::time::Instant;

use bytes::Bytes;
use nix_data_support::*;
use nixwire_core::conn::Connection;
use nixwire_core::serve::messages::{BuildOptions, CLIENT_MAGIC};
use nixwire_core::serve::{Client, ClientConfig, ClientEvent, Server, ServerConfig, ServerEvent};
use nixwire_core::store::{
    BuildResult, BuildStatus, ContentAddress, ContentAddressMethod, DrvOutput, Hash, HashAlgo,
    HashFormat, NarHash, OutputName, PathInfo, Realisation, Signature, StorePath,
};
use nixwire_core::wire::{Cx, NixString, Serve, Version, Wire, encode_u64};
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
    /// A content address, which travels as Nix's text form. nixwire has a
    /// layout only for the optional one (empty for none); a content address
    /// that must be there decodes through it and refuses the empty string.
    Ca(ContentAddress),
    /// An optional content address (empty for none).
    OptCa(Option<ContentAddress>),
    /// A list or set of strings (a set is sent sorted).
    Strs(Vec<NixString>),
    /// A list or set of lists or sets of strings.
    StrsList(Vec<Vec<NixString>>),
    BuildOptions(BuildOptions),
    BuildResult(BuildResult),
    /// Nix's `UnkeyedValidPathInfo`.
    PathInfo(PathInfo),
    /// Nix's `UnkeyedRealisation`.
    Realisation(Realisation),
    /// Nix's `DrvOutput` from 2.8 on: the derivation's path and the output's
    /// name. nixwire has no type of its own for it (no serve operation sends
    /// one); on the wire it is exactly this pair of nixwire's types.
    DrvOutput((StorePath, OutputName)),
    /// Nix's (keyed) `Realisation` from 2.8 on: a `DrvOutput`, then the
    /// unkeyed realisation.
    KeyedRealisation(((StorePath, OutputName), Realisation)),
}

impl DataValue<Serve> for Value {
    /// Decodes a value of the same type as `self` from the front of `input`,
    /// and says how many bytes it took.
    fn decode_like(&self, cx: &Cx<Serve>, input: &[u8]) -> Result<(Self, usize), String> {
        fn go<T: Wire<Serve>>(
            cx: &Cx<Serve>,
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
            Self::BuildOptions(_) => go(cx, input, Self::BuildOptions),
            Self::BuildResult(_) => go(cx, input, Self::BuildResult),
            Self::PathInfo(_) => go(cx, input, Self::PathInfo),
            Self::Realisation(_) => go(cx, input, Self::Realisation),
            Self::DrvOutput(_) => go(cx, input, Self::DrvOutput),
            Self::KeyedRealisation(_) => go(cx, input, Self::KeyedRealisation),
        }
    }

    fn encode(&self, cx: &Cx<Serve>, out: &mut Vec<u8>) {
        match self {
            Self::Str(v) => v.encode(cx, out),
            Self::Path(v) => v.encode(cx, out),
            Self::OptPath(v) => v.encode(cx, out),
            Self::Ca(v) => Some(*v).encode(cx, out),
            Self::OptCa(v) => v.encode(cx, out),
            Self::Strs(v) => v.encode(cx, out),
            Self::StrsList(v) => v.encode(cx, out),
            Self::BuildOptions(v) => v.encode(cx, out),
            Self::BuildResult(v) => v.encode(cx, out),
            Self::PathInfo(v) => v.encode(cx, out),
            Self::Realisation(v) => v.encode(cx, out),
            Self::DrvOutput(v) => v.encode(cx, out),
            Self::KeyedRealisation(v) => v.encode(cx, out),
        }
    }

    /// The value as compared with the C++ test's statement. Nix reads the
    /// `builtOutputs` of 2.6 and 2.7 (a map from `<drv hash>!<output>` to a
    /// JSON realisation) as output name and path only, and states them that
    /// way; so both sides are compared without the realisations' ids, which
    /// [`check_ids`] checks on their own.
    fn normalised(&self) -> Self {
        match self {
            Self::BuildResult(r) => Self::BuildResult(BuildResult {
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
            }),
            other => other.clone(),
        }
    }

    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

/// One file of the table.
struct Case {
    file: &'static str,
    version: Version,
    /// The values the C++ test states, in file order.
    values: fn() -> Vec<Value>,
    /// Whether Nix's test writes these values and compares with the file (a
    /// "characterization test"); `false` for a read-only test, where the file
    /// came from an older writer.
    write: bool,
}

const fn v(minor: u8) -> Version {
    Version::new(2, minor)
}

/// The version `serve-protocol.cc` uses for types without a version gate.
const DEFAULT: Version = v(5);

/// Every serve-protocol file nixwire decodes, with what Nix's test says is in it.
const TABLE: &[Case] = &[
    Case {
        file: "string.bin",
        version: DEFAULT,
        // The C++ literal "oh no \0\0\0 what was that!" becomes a std::string
        // through `const char *`, which stops at the first NUL.
        values: || {
            ["", "hi", "white rabbit", "大白兔", "oh no "]
                .into_iter()
                .map(|s| Value::Str(s.into()))
                .collect()
        },
        write: true,
    },
    Case {
        file: "store-path.bin",
        version: DEFAULT,
        values: || vec![Value::Path(path("-foo")), Value::Path(path("-foo-bar"))],
        write: true,
    },
    Case {
        file: "content-address.bin",
        version: DEFAULT,
        values: || {
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
        },
        write: true,
    },
    Case {
        file: "optional-store-path.bin",
        version: DEFAULT,
        values: || vec![Value::OptPath(None), Value::OptPath(Some(path("-foo-bar")))],
        write: true,
    },
    Case {
        file: "optional-content-address.bin",
        version: DEFAULT,
        values: || {
            vec![
                Value::OptCa(None),
                Value::OptCa(Some(ca(
                    ContentAddressMethod::Flat,
                    HashAlgo::Sha1,
                    &sha1_blob(),
                ))),
            ]
        },
        write: true,
    },
    Case {
        file: "vector.bin",
        version: DEFAULT,
        values: || {
            vec![
                Value::Strs(strings(&[])),
                Value::Strs(strings(&[""])),
                Value::Strs(strings(&["", "foo", "bar"])),
                Value::StrsList(vec![strings(&[]), strings(&[""]), strings(&["", "1", "2"])]),
            ]
        },
        write: true,
    },
    Case {
        file: "set.bin",
        version: DEFAULT,
        // The C++ sets {"", "foo", "bar"} and {{}, {""}, {"", "1", "2"}}, sent sorted.
        values: || {
            vec![
                Value::Strs(strings(&[])),
                Value::Strs(strings(&[""])),
                Value::Strs(strings(&["", "bar", "foo"])),
                Value::StrsList(vec![strings(&[]), strings(&[""]), strings(&["", "1", "2"])]),
            ]
        },
        write: true,
    },
    Case {
        file: "drv-output-2.8.bin",
        version: v(8),
        values: || {
            vec![
                Value::DrvOutput((path("-foo.drv"), output("baz"))),
                Value::DrvOutput((path("-foo.drv"), output("quux"))),
            ]
        },
        write: true,
    },
    Case {
        file: "unkeyed-realisation-2.8.bin",
        version: v(8),
        values: || vec![Value::Realisation(foo_realisation())],
        write: true,
    },
    Case {
        file: "realisation-2.8.bin",
        version: v(8),
        values: || {
            vec![Value::KeyedRealisation((
                (path("-foo.drv"), output("baz")),
                foo_realisation(),
            ))]
        },
        write: true,
    },
    Case {
        file: "build-options-2.1.bin",
        version: v(1),
        values: || vec![options(0, 0, false, false)],
        write: true,
    },
    Case {
        file: "build-options-2.2.bin",
        version: v(2),
        values: || vec![options(7, 0, false, false)],
        write: true,
    },
    Case {
        file: "build-options-2.3.bin",
        version: v(3),
        values: || vec![options(7, 8, true, false)],
        write: true,
    },
    Case {
        file: "build-options-2.7.bin",
        version: v(7),
        values: || vec![options(7, 8, false, true)],
        write: true,
    },
    Case {
        file: "build-result-2.2.bin",
        version: v(2),
        // Before 2.3 only the status and the message travel.
        values: || {
            vec![
                failure(BuildStatus::OutputRejected, 0, false, 0, 0),
                failure(BuildStatus::NotDeterministic, 0, false, 0, 0),
                success(0, 0, 0, &[]),
            ]
        },
        write: true,
    },
    Case {
        file: "build-result-2.3.bin",
        version: v(3),
        values: || {
            vec![
                failure(BuildStatus::OutputRejected, 0, false, 0, 0),
                failure(BuildStatus::NotDeterministic, 3, true, 30, 50),
                success(0, 30, 50, &[]),
            ]
        },
        write: true,
    },
    Case {
        file: "build-result-2.6.bin",
        version: v(6),
        values: three_build_results,
        // Read-only in Nix too: written by an older Nix, whose output ids
        // carry the derivation's real hash and whose JSON has
        // `dependentRealisations` and `signatures`; Nix now writes a dummy
        // hash and only `id` and `outPath`. nixwire keeps each output's id
        // (checked by `check_ids`), so re-encoding what it decoded must still
        // give these bytes.
        write: false,
    },
    Case {
        file: "build-result-2.7-compat.bin",
        version: v(7),
        values: three_build_results,
        write: true,
    },
    Case {
        file: "build-result-2.8.bin",
        version: v(8),
        values: three_build_results,
        write: true,
    },
    Case {
        file: "unkeyed-valid-path-info-2.3.bin",
        version: v(3),
        // Before 2.4 no hash, content address or signatures travel.
        values: || {
            vec![
                path_info(None, vec![], None, None, vec![]),
                path_info(
                    Some(path("-bar.drv")),
                    vec![path_with("g1w7hyyyy1w7hy3qg1w7hy3qgqqqqy3q", "-foo.drv")],
                    None,
                    None,
                    vec![],
                ),
            ]
        },
        write: true,
    },
    Case {
        file: "unkeyed-valid-path-info-2.4.bin",
        version: v(4),
        values: || {
            let nar_hash = Some(nar_hash(NAR_HASH_SRI));
            vec![
                path_info(
                    Some(path("-bar.drv")),
                    vec![path_with("g1w7hyyyy1w7hy3qg1w7hy3qgqqqqy3q", "-foo.drv")],
                    nar_hash,
                    None,
                    vec![],
                ),
                path_info(
                    Some(path("-bar.drv")),
                    // `.self = true`: the path refers to itself, the
                    // fixed-output path Nix makes for "foo" with this content
                    // address (n5wkd9…, as Nix's JSON of the same value says).
                    vec![
                        path("-bar"),
                        path_with("n5wkd9frr45pa74if5gpz9j7mifg27fh", "-foo"),
                    ],
                    nar_hash,
                    Some(ca(
                        ContentAddressMethod::Nar,
                        HashAlgo::Sha256,
                        &sha256(b"(...)"),
                    )),
                    vec![sig("fake-sig-1"), sig("fake-sig-2")],
                ),
            ]
        },
        write: true,
    },
];

/// The derivation hash in the output ids of each file with JSON
/// realisations naming a real derivation (2.6), as `sha256:<base16>`;
/// `None` for the others (at 2.8 outputs have no id, and 2.7-compat's dummy
/// hash names none). Checked by [`check_ids`].
fn legacy_drv_hash(file: &str) -> Option<String> {
    match file {
        // The real hash an older Nix wrote: the old test's
        // `sha256-b4afnqKCO9oWXgYHb9DeQ2berSwOjS27rSd9TxXDc/U=` (6f869f9e…).
        "build-result-2.6.bin" => Some(format!(
            "sha256:{}",
            hex::encode(sri_sha256(OLD_DRV_HASH_SRI))
        )),
        // The dummy Nix writes now for a client before 2.8 names no
        // derivation: those realisations have no id, like 2.8's.
        _ => None,
    }
}

/// Files nixwire does not decode, each with the reason.
const NOT_DECODED: &[(&str, &str)] = &[
    (
        "drv-output.bin",
        "left over in Nix's tree: no longer read by Nix's test at this commit (the pre-2.8 \
         DrvOutput `sha256:<hash>!<output>`, at the default version); nixwire's DrvOutput is \
         this form, but only inside a JSON realisation of BuildResult, with no layout of its \
         own, since no serve operation sends one",
    ),
    (
        "realisation.bin",
        "left over in Nix's tree: no longer read by Nix's test at this commit (the pre-2.8 \
         realisation as JSON text, its second value with signatures as JSON objects); nixwire \
         reads JSON realisations only inside BuildResult's builtOutputs",
    ),
    (
        "realisation-with-deps.bin",
        "left over in Nix's tree: no longer read by Nix's test at this commit (a JSON \
         realisation with dependentRealisations); nixwire reads JSON realisations only inside \
         BuildResult's builtOutputs",
    ),
];

/// The handshake file, checked by its own test below.
const HANDSHAKE: &str = "handshake-to-client.bin";

// ---- helpers that build expected values ----

/// The derivation hash of the outputs in the old 2.6 test.
const OLD_DRV_HASH_SRI: &str = "sha256-b4afnqKCO9oWXgYHb9DeQ2berSwOjS27rSd9TxXDc/U=";

fn strings(items: &[&str]) -> Vec<NixString> {
    items.iter().map(|s| NixString::from(*s)).collect()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// `hashString(SHA1, "blob blob...")`, computed with `sha1sum` (no SHA-1 crate
/// here); Nix's JSON of the same value says `sha1-gGemBoenViNZM3hiwqns/Fgzqwo=`.
fn sha1_blob() -> Vec<u8> {
    hex::decode("8067a60687a7562359337862c2a9ecfc5833ab0a").expect("hex")
}

/// `ContentAddress{.method, .hash}`.
fn ca(method: ContentAddressMethod, algo: HashAlgo, digest: &[u8]) -> ContentAddress {
    ContentAddress {
        method,
        hash: Hash::new(algo, digest).expect("a digest of the algorithm's size"),
    }
}

/// `BuildOptions{.maxSilentTime = 5, .buildTimeout = 6, ...}`: the later
/// fields as given (zero/false where the C++ leaves them out).
fn options(max_log_size: u64, nr_repeats: u64, enforce: bool, keep_failed: bool) -> Value {
    Value::BuildOptions(BuildOptions {
        max_silent_time: 5,
        build_timeout: 6,
        max_log_size,
        nr_repeats,
        enforce_determinism: enforce,
        keep_failed,
    })
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

/// A `Built` result with these outputs (name, store path base after the hash
/// part), without signatures.
fn success(times: u64, start: u64, stop: u64, outputs: &[(&str, &str)]) -> Value {
    Value::BuildResult(BuildResult {
        times_built: times,
        start_time: start,
        stop_time: stop,
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

/// The three results of build-result-2.6 and later: a rejected output, a
/// non-deterministic build, and a build of outputs `bar` and `foo` (sent in
/// name order).
fn three_build_results() -> Vec<Value> {
    vec![
        failure(BuildStatus::OutputRejected, 0, false, 0, 0),
        failure(BuildStatus::NotDeterministic, 3, true, 30, 50),
        success(1, 30, 50, &[("bar", "-bar"), ("foo", "-foo")]),
    ]
}

/// The unkeyed realisation of the 2.8 realisation files: `H-foo`, signed by
/// `asdf` and `qwer`.
fn foo_realisation() -> Realisation {
    Realisation {
        id: None,
        out_path: path("-foo"),
        signatures: vec![sig("asdf"), sig("qwer")],
    }
}

/// An `UnkeyedValidPathInfo` with narSize 34878 (sent twice: Nix sends the NAR
/// size as the download size too).
fn path_info(
    deriver: Option<StorePath>,
    references: Vec<StorePath>,
    nar_hash: Option<NarHash>,
    ca: Option<ContentAddress>,
    sigs: Vec<Signature>,
) -> Value {
    Value::PathInfo(PathInfo {
        deriver,
        nar_hash,
        references,
        registration_time: 0,
        nar_size: 34878,
        download_size: 34878,
        ultimate: false,
        sigs,
        ca,
        provenance: None,
    })
}

// ---- the checks ----

/// Checks the ids of a decoded build result's outputs: at 2.6 and 2.7 each
/// is `<the file's drv hash>!<its output name>` (see [`legacy_drv_hash`]), and
/// from 2.8 on there is none.
fn check_ids(case: &Case, got: &Value) -> Result<(), String> {
    let Value::BuildResult(result) = got else {
        return Ok(());
    };
    let drv_hash = legacy_drv_hash(case.file);
    for (name, realisation) in &result.built_outputs {
        let want = drv_hash.as_ref().map(|h| DrvOutput::Hash {
            drv_hash: h.as_str().into(),
            output: name.clone(),
        });
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
/// case's version and equals the stated one (and its outputs' ids are the
/// file's), re-encodes to exactly the bytes it came from, nothing is left
/// over, and (for write cases) the stated values encode to the file.
fn check(case: &Case, bytes: &[u8]) -> Result<(), String> {
    let cx = Cx::<Serve>::new(case.version);
    let expected = (case.values)();
    check_values(&cx, &expected, bytes, case.write, |got| {
        check_ids(case, got)
    })
}

#[test]
fn every_serve_file_decodes_to_what_nix_states_and_reencodes_identically() {
    let mut failures = Vec::new();
    for case in TABLE {
        if let Err(e) = check(case, &read("serve-protocol", case.file)) {
            failures.push(format!("{} at {}: {e}", case.file, case.version));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_serve_file_is_in_the_table_or_listed_with_a_reason() {
    let mut listed: Vec<&str> = TABLE.iter().map(|c| c.file).collect();
    listed.extend(NOT_DECODED.iter().map(|(f, _)| *f));
    listed.push(HANDSHAKE);
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), listed.len(), "a file is listed twice");

    let mut on_disk: Vec<String> = std::fs::read_dir(data_dir().join("serve-protocol"))
        .expect("nix-data/serve-protocol")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".bin"))
        .collect();
    on_disk.sort_unstable();
    assert_eq!(
        on_disk, sorted,
        "the .bin files and the lists here differ: add new files to TABLE or NOT_DECODED"
    );
    for (file, reason) in NOT_DECODED {
        assert!(!reason.is_empty(), "{file} needs a reason");
    }
}

/// The checks can fail: for every file Nix also writes, changing any one byte
/// is noticed (a decode error, a different value, or bytes the stated values
/// do not encode to).
#[test]
fn a_changed_byte_in_any_file_is_noticed() {
    for case in TABLE.iter().filter(|c| c.write) {
        let bytes = read("serve-protocol", case.file);
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x41;
            assert!(
                check(case, &changed).is_err(),
                "{}: byte {i} changed, yet the check passed",
                case.file
            );
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 8]);
        assert!(check(case, &longer).is_err(), "{}: extra bytes", case.file);
    }
    // The read-only file's stated values are checked too: a different output
    // path in its JSON is noticed.
    let case = TABLE
        .iter()
        .find(|c| c.file == "build-result-2.6.bin")
        .expect("in the table");
    let bytes = read("serve-protocol", case.file);
    let text = b"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo\"";
    let at = bytes
        .windows(text.len())
        .position(|w| w == text)
        .expect("an outPath");
    let mut changed = bytes.clone();
    changed[at] = b'h';
    assert!(check(case, &changed).is_err());
}

/// `handshake-to-client.bin` is what Nix's server sends a client when both
/// speak 2.5: nixwire's server sends exactly that, and nixwire's client
/// accepts it and speaks 2.5.
#[test]
fn the_handshake_is_nixs() {
    let to_client = read("serve-protocol", HANDSHAKE);
    let version = DEFAULT;
    let now = Instant::now();

    let mut config = ServerConfig::default();
    config.version = version;
    let mut server = Server::new(config, now);
    let mut hello = Vec::new();
    encode_u64(CLIENT_MAGIC, &mut hello);
    encode_u64(version.to_wire(), &mut hello);
    server
        .handle_input(now, Bytes::from(hello))
        .expect("client hello");
    let sent: Vec<u8> = std::iter::from_fn(|| server.poll_transmit())
        .flatten()
        .collect();
    assert_eq!(sent, to_client);
    assert!(matches!(
        server.poll_event(),
        Some(ServerEvent::Connected { version: v, .. }) if v == version
    ));

    let mut config = ClientConfig::default();
    config.version = version;
    // Every proper prefix is "need more", neither an error nor a handshake.
    for len in 0..to_client.len() {
        let mut client = Client::new(config.clone(), now);
        client
            .handle_input(now, Bytes::copy_from_slice(&to_client[..len]))
            .expect("a prefix is not an error");
        assert_eq!(client.version(), None, "after {len} bytes");
    }
    let mut client = Client::new(config, now);
    client
        .handle_input(now, Bytes::from(to_client))
        .expect("the handshake");
    assert_eq!(client.version(), Some(version));
    let connected = std::iter::from_fn(|| client.poll_event()).any(|e| {
        matches!(e, ClientEvent::Connected { server_version, version: v }
            if server_version == version && v == version)
    });
    assert!(connected);
}

#[test]
fn nix32_matches_nix() {
    // Values Nix printed in these files, from inputs its test states:
    // nixwire's own rendering gives them.
    let cases = [
        (
            "unkeyed-valid-path-info-2.4.bin",
            sri_sha256(NAR_HASH_SRI),
            HashAlgo::Sha256,
            "09ymwqf5i9q7d4dm7x4pjjcqqj0qrcp5lnznbh42gfsci5hcbqqm",
        ),
        (
            "content-address.bin",
            sha1_blob(),
            HashAlgo::Sha1,
            "1amk6n7wxjlw4qkq6dcj6mm7hw3acrw0",
        ),
    ];
    for (file, digest, algo, printed) in cases {
        let in_file = read("serve-protocol", file)
            .windows(printed.len())
            .any(|w| w == printed.as_bytes());
        assert!(in_file, "{printed} is in {file}");
        let hash = Hash::new(algo, &digest).expect("digest");
        assert_eq!(hash.render(HashFormat::Nix32, false), printed);
    }
}
