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
//! The expectations are plain values built by the small helpers below
//! ([`path`], [`sig`], [`nix32`], ...), so a change of the codec's types
//! changes the helpers and [`Value`], not the table.

use std::path::PathBuf;
use std::time::Instant;

use base64::Engine;
use nixwire_core::serve::messages::{
    BuildOptions, BuildResult, BuildStatus, BuiltOutputs, CLIENT_MAGIC, DEFAULT_STORE_DIR,
    Realisation, UnkeyedValidPathInfo,
};
use nixwire_core::serve::{Client, ClientConfig, ClientEvent, Server, ServerConfig, ServerEvent};
use nixwire_core::wire::{Cx, Version, Wire, encode_u64};
use sha2::{Digest, Sha256};

/// One expected value, of one of the types the files hold.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// A string, a store path, an optional store path or content address
    /// (empty for none), or a content address: nixwire carries all of these
    /// as their text.
    Str(String),
    /// A list or set of strings (a set is sent sorted).
    Strs(Vec<String>),
    /// A list or set of lists or sets of strings.
    StrsList(Vec<Vec<String>>),
    BuildOptions(BuildOptions),
    BuildResult(BuildResult),
    PathInfo(UnkeyedValidPathInfo),
    /// Nix's `UnkeyedRealisation`.
    Realisation(Realisation),
}

impl Value {
    /// Decodes a value of the same type as `self` from the front of `input`.
    fn decode_like<'a>(&self, cx: &Cx, input: &'a [u8]) -> Result<(&'a [u8], Self), String> {
        fn go<'a, T: Wire>(
            cx: &Cx,
            input: &'a [u8],
            wrap: fn(T) -> Value,
        ) -> Result<(&'a [u8], Value), String> {
            match T::decode(cx, input) {
                Ok((rest, v)) => Ok((rest, wrap(v))),
                Err(e) => Err(format!("{e:?}")),
            }
        }
        match self {
            Self::Str(_) => go(cx, input, Self::Str),
            Self::Strs(_) => go(cx, input, Self::Strs),
            Self::StrsList(_) => go(cx, input, Self::StrsList),
            Self::BuildOptions(_) => go(cx, input, Self::BuildOptions),
            Self::BuildResult(_) => go(cx, input, Self::BuildResult),
            Self::PathInfo(_) => go(cx, input, Self::PathInfo),
            Self::Realisation(_) => go(cx, input, Self::Realisation),
        }
    }

    fn encode(&self, cx: &Cx, out: &mut Vec<u8>) {
        match self {
            Self::Str(v) => v.encode(cx, out),
            Self::Strs(v) => v.encode(cx, out),
            Self::StrsList(v) => v.encode(cx, out),
            Self::BuildOptions(v) => v.encode(cx, out),
            Self::BuildResult(v) => v.encode(cx, out),
            Self::PathInfo(v) => v.encode(cx, out),
            Self::Realisation(v) => v.encode(cx, out),
        }
    }

    /// The value as compared with the C++ test's statement. Nix reads the
    /// `builtOutputs` of 2.6 and 2.7 (a map from `<drv hash>!<output>` to a
    /// JSON realisation) as output name and path only, and states them that
    /// way; so both sides are compared in the 2.8 form.
    fn normalised(&self) -> Self {
        match self {
            Self::BuildResult(r) => Self::BuildResult(BuildResult {
                built_outputs: r
                    .built_outputs
                    .for_version(Version::new(2, 8), DEFAULT_STORE_DIR),
                ..r.clone()
            }),
            other => other.clone(),
        }
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
        values: || strs(&["", "hi", "white rabbit", "大白兔", "oh no "]),
        write: true,
    },
    Case {
        file: "store-path.bin",
        version: DEFAULT,
        values: || vec![Value::Str(path("-foo")), Value::Str(path("-foo-bar"))],
        write: true,
    },
    Case {
        file: "content-address.bin",
        version: DEFAULT,
        values: || {
            vec![
                Value::Str(format!("text:sha256:{}", nix32(&sha256(b"Derive(...)")))),
                Value::Str(format!("fixed:sha1:{}", nix32(&sha1_blob()))),
                Value::Str(format!("fixed:r:sha256:{}", nix32(&sha256(b"(...)")))),
            ]
        },
        write: true,
    },
    Case {
        file: "optional-store-path.bin",
        version: DEFAULT,
        values: || vec![Value::Str(String::new()), Value::Str(path("-foo-bar"))],
        write: true,
    },
    Case {
        file: "optional-content-address.bin",
        version: DEFAULT,
        values: || {
            vec![
                Value::Str(String::new()),
                Value::Str(format!("fixed:sha1:{}", nix32(&sha1_blob()))),
            ]
        },
        write: true,
    },
    Case {
        file: "vector.bin",
        version: DEFAULT,
        values: || {
            vec![
                Value::Strs(owned(&[])),
                Value::Strs(owned(&[""])),
                Value::Strs(owned(&["", "foo", "bar"])),
                Value::StrsList(vec![owned(&[]), owned(&[""]), owned(&["", "1", "2"])]),
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
                Value::Strs(owned(&[])),
                Value::Strs(owned(&[""])),
                Value::Strs(owned(&["", "bar", "foo"])),
                Value::StrsList(vec![owned(&[]), owned(&[""]), owned(&["", "1", "2"])]),
            ]
        },
        write: true,
    },
    Case {
        file: "unkeyed-realisation-2.8.bin",
        version: v(8),
        values: || {
            vec![Value::Realisation(Realisation {
                out_path: path("-foo"),
                signatures: vec![sig("asdf"), sig("qwer")],
            })]
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
        // `dependentRealisations` and `signatures`; Nix (and nixwire) now write
        // a dummy hash and only `id` and `outPath`. nixwire keeps the text, so
        // re-encoding what it decoded still gives these bytes.
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
                path_info("", &[], "", "", &[]),
                path_info(
                    &path("-bar.drv"),
                    &[&path_with("g1w7hyyyy1w7hy3qg1w7hy3qgqqqqy3q", "-foo.drv")],
                    "",
                    "",
                    &[],
                ),
            ]
        },
        write: true,
    },
    Case {
        file: "unkeyed-valid-path-info-2.4.bin",
        version: v(4),
        values: || {
            let nar_hash = format!("sha256:{}", nix32(&sri_sha256(NAR_HASH_SRI)));
            vec![
                path_info(
                    &path("-bar.drv"),
                    &[&path_with("g1w7hyyyy1w7hy3qg1w7hy3qgqqqqy3q", "-foo.drv")],
                    &nar_hash,
                    "",
                    &[],
                ),
                path_info(
                    &path("-bar.drv"),
                    // `.self = true`: the path refers to itself, the
                    // fixed-output path Nix makes for "foo" with this content
                    // address (n5wkd9…, as Nix's JSON of the same value says).
                    &[
                        &path("-bar"),
                        &path_with("n5wkd9frr45pa74if5gpz9j7mifg27fh", "-foo"),
                    ],
                    &nar_hash,
                    &format!("fixed:r:sha256:{}", nix32(&sha256(b"(...)"))),
                    &[&sig("fake-sig-1"), &sig("fake-sig-2")],
                ),
            ]
        },
        write: true,
    },
];

/// Files nixwire does not decode, each with the reason.
const NOT_DECODED: &[(&str, &str)] = &[
    (
        "drv-output-2.8.bin",
        "DrvOutput (derivation path, output name): nixwire has no such type; no serve \
         operation sends one",
    ),
    (
        "realisation-2.8.bin",
        "a keyed Realisation (DrvOutput, then an unkeyed realisation): nixwire has only the \
         unkeyed one, which is what BuildResult carries; no serve operation sends a keyed one",
    ),
    (
        "drv-output.bin",
        "left over in Nix's tree: no longer read by Nix's test at this commit (the pre-2.8 \
         DrvOutput `sha256:<hash>!<output>`); nixwire has no DrvOutput type",
    ),
    (
        "realisation.bin",
        "left over in Nix's tree: no longer read by Nix's test at this commit (the pre-2.8 \
         realisation as JSON text); nixwire has no type for it outside BuiltOutputs",
    ),
    (
        "realisation-with-deps.bin",
        "left over in Nix's tree: no longer read by Nix's test at this commit (a JSON \
         realisation with dependentRealisations); nixwire has no type for it",
    ),
];

/// The handshake file, checked by its own test below.
const HANDSHAKE: &str = "handshake-to-client.bin";

// ---- helpers that build expected values ----

const HASH_PART: &str = "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q";

/// The narHash of the 2.4 path infos, as the C++ test writes it.
const NAR_HASH_SRI: &str = "sha256-FePFYIlMuycIXPZbWi7LGEiMmZSX9FMbaQenWBzm1Sc=";

fn path_with(hash_part: &str, rest: &str) -> String {
    format!("{DEFAULT_STORE_DIR}/{hash_part}{rest}")
}

/// `StorePath{"g1w7hy3q…<rest>"}` as printed on the wire.
fn path(rest: &str) -> String {
    path_with(HASH_PART, rest)
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn strs(items: &[&str]) -> Vec<Value> {
    items.iter().map(|s| Value::Str((*s).to_owned())).collect()
}

/// `Signature{.keyName = key, .sig = std::string(64, '\0')}` as Nix prints it.
fn sig(key: &str) -> String {
    let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 64]);
    format!("{key}:{zeros}")
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// `hashString(SHA1, "blob blob...")`, computed with `sha1sum` (no SHA-1 crate
/// here); Nix's JSON of the same value says `sha1-gGemBoenViNZM3hiwqns/Fgzqwo=`.
fn sha1_blob() -> Vec<u8> {
    hex::decode("8067a60687a7562359337862c2a9ecfc5833ab0a").expect("hex")
}

fn sri_sha256(sri: &str) -> Vec<u8> {
    let b64 = sri.strip_prefix("sha256-").expect("an SRI sha256");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

/// Nix's base-32 (`HashFormat::Nix32`): its own alphabet, last byte first.
fn nix32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let len = (bytes.len() * 8 - 1) / 5 + 1;
    (0..len)
        .rev()
        .map(|n| {
            let (i, j) = (n * 5 / 8, n * 5 % 8);
            let low = bytes[i] >> j;
            // Bits shifted out of the byte are above the five kept.
            let high = bytes
                .get(i + 1)
                .and_then(|b| b.checked_shl(8 - j as u32))
                .unwrap_or(0);
            ALPHABET[usize::from((low | high) & 0x1f)] as char
        })
        .collect()
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
        status,
        error_msg: "no idea why".into(),
        times_built: times,
        is_non_deterministic: nondet,
        start_time: start,
        stop_time: stop,
        built_outputs: BuiltOutputs::Structured(Vec::new()),
    })
}

/// A `Built` result with these outputs (name, store path base after the hash
/// part), without signatures.
fn success(times: u64, start: u64, stop: u64, outputs: &[(&str, &str)]) -> Value {
    Value::BuildResult(BuildResult {
        status: BuildStatus::Built,
        error_msg: String::new(),
        times_built: times,
        is_non_deterministic: false,
        start_time: start,
        stop_time: stop,
        built_outputs: BuiltOutputs::Structured(
            outputs
                .iter()
                .map(|(name, rest)| {
                    let realisation = Realisation {
                        out_path: path(rest),
                        signatures: Vec::new(),
                    };
                    ((*name).to_owned(), realisation)
                })
                .collect(),
        ),
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

/// An `UnkeyedValidPathInfo` with narSize 34878 (sent twice: Nix sends the NAR
/// size as the download size too).
fn path_info(deriver: &str, refs: &[&str], nar_hash: &str, ca: &str, sigs: &[&str]) -> Value {
    Value::PathInfo(UnkeyedValidPathInfo {
        deriver: deriver.to_owned(),
        references: owned(refs),
        download_size: 34878,
        nar_size: 34878,
        nar_hash: nar_hash.to_owned(),
        ca: ca.to_owned(),
        sigs: owned(sigs),
    })
}

// ---- the checks ----

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("nix-data/serve-protocol")
}

fn read(file: &str) -> Vec<u8> {
    let p = data_dir().join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Checks one file's bytes against its case: every value decodes at the
/// case's version and equals the stated one, re-encodes to exactly the bytes
/// it came from, nothing is left over, and (for write cases) the stated
/// values encode to the file.
fn check(case: &Case, bytes: &[u8]) -> Result<(), String> {
    let cx = Cx::new(case.version);
    let expected = (case.values)();
    let mut rest = bytes;
    for (i, want) in expected.iter().enumerate() {
        let at = bytes.len() - rest.len();
        let (after, got) = want
            .decode_like(&cx, rest)
            .map_err(|e| format!("value {i} (byte {at}): does not decode: {e}"))?;
        if got.normalised() != want.normalised() {
            return Err(format!(
                "value {i} (byte {at}): decoded {got:?}, Nix's test states {want:?}"
            ));
        }
        let mut again = Vec::new();
        got.encode(&cx, &mut again);
        let consumed = &rest[..rest.len() - after.len()];
        if again != consumed {
            return Err(format!(
                "value {i} (byte {at}): re-encodes to {} bytes differing from the {} read",
                again.len(),
                consumed.len()
            ));
        }
        rest = after;
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes left over after the {} values",
            rest.len(),
            expected.len()
        ));
    }
    if case.write {
        let mut written = Vec::new();
        for value in &expected {
            value.encode(&cx, &mut written);
        }
        if written != bytes {
            let first = written.iter().zip(bytes).position(|(a, b)| a != b);
            return Err(format!(
                "the stated values encode to {} bytes, not the file's {} (first difference at {first:?})",
                written.len(),
                bytes.len()
            ));
        }
    }
    Ok(())
}

#[test]
fn every_serve_file_decodes_to_what_nix_states_and_reencodes_identically() {
    let mut failures = Vec::new();
    for case in TABLE {
        if let Err(e) = check(case, &read(case.file)) {
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

    let mut on_disk: Vec<String> = std::fs::read_dir(data_dir())
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
        let bytes = read(case.file);
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
    let bytes = read(case.file);
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
    let to_client = read(HANDSHAKE);
    let version = DEFAULT;

    let mut server = Server::new(ServerConfig {
        version,
        ..ServerConfig::default()
    });
    let mut hello = Vec::new();
    encode_u64(CLIENT_MAGIC, &mut hello);
    encode_u64(version.to_wire(), &mut hello);
    server.handle_input(&hello).expect("client hello");
    let mut sent = Vec::new();
    server.poll_transmit(&mut sent);
    assert_eq!(sent, to_client);
    assert!(matches!(
        server.poll_event(),
        Some(ServerEvent::Connected { version: v, .. }) if v == version
    ));

    let config = ClientConfig {
        version,
        ..ClientConfig::default()
    };
    // Every proper prefix is "need more", neither an error nor a handshake.
    for len in 0..to_client.len() {
        let mut client = Client::new(config.clone(), Instant::now());
        client
            .handle_input(Instant::now(), &to_client[..len])
            .expect("a prefix is not an error");
        assert_eq!(client.version(), None, "after {len} bytes");
    }
    let mut client = Client::new(config, Instant::now());
    client
        .handle_input(Instant::now(), &to_client)
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
    // Values Nix printed in these files, from inputs its test states.
    assert_eq!(
        nix32(&sri_sha256(NAR_HASH_SRI)),
        "09ymwqf5i9q7d4dm7x4pjjcqqj0qrcp5lnznbh42gfsci5hcbqqm"
    );
    assert_eq!(nix32(&sha1_blob()), "1amk6n7wxjlw4qkq6dcj6mm7hw3acrw0");
}
