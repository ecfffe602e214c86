//! What the tests of Nix's characterization data (`nix_data.rs` for the
//! serve protocol, `nix_data_worker.rs` for the worker and common ones)
//! share: reading the files, the values Nix's tests use, and the one check
//! every file gets.

#![allow(dead_code, unreachable_pub)]

use std::fmt::Debug;
use std::path::PathBuf;

use base64::Engine;
use nixwire_core::store::{NarHash, OutputName, Signature, StorePath};
use nixwire_core::wire::{Cx, Protocol};

/// The hash part Nix's tests use for most paths.
pub const HASH_PART: &str = "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q";

/// The NAR hash Nix's path-info tests use.
pub const NAR_HASH_SRI: &str = "sha256-FePFYIlMuycIXPZbWi7LGEiMmZSX9FMbaQenWBzm1Sc=";

/// A value of one of the types in a data file, as a test's table states it.
pub trait DataValue<P: Protocol>: Debug + Sized {
    /// Decodes a value of the same type as `self` from the front of
    /// `input`, and says how many bytes it took.
    fn decode_like(&self, cx: &Cx<P>, input: &[u8]) -> Result<(Self, usize), String>;
    /// Appends the value's wire form.
    fn encode(&self, cx: &Cx<P>, out: &mut Vec<u8>);
    /// The value as compared with what Nix's test states (dropping what the
    /// test does not state).
    fn normalised(&self) -> Self;
    /// Whether two normalised values are the same.
    fn same(&self, other: &Self) -> bool;
}

/// Where Nix's data files are.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("nix-data")
}

/// A data file's bytes.
pub fn read(folder: &str, file: &str) -> Vec<u8> {
    let p = data_dir().join(folder).join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Where `ours` and `theirs` first differ, with what each has from there,
/// for a person to read.
pub fn difference(ours: &[u8], theirs: &[u8]) -> String {
    let at = ours
        .iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| ours.len().min(theirs.len()));
    let from = |b: &[u8]| format!("\"{}\"", b[at..(at + 64).min(b.len())].escape_ascii());
    format!(
        "first difference at byte {at}: ours has {}, the file {}",
        from(ours),
        from(theirs)
    )
}

/// Checks a file's bytes against the values its test states: every value
/// decodes at `cx` and equals the stated one (and passes `extra`),
/// re-encodes to exactly the bytes it came from, nothing is left over, and
/// (when Nix writes the file, `write`) the stated values encode to it.
pub fn check_values<P: Protocol, V: DataValue<P>>(
    cx: &Cx<P>,
    expected: &[V],
    bytes: &[u8],
    write: bool,
    extra: impl Fn(&V) -> Result<(), String>,
) -> Result<(), String> {
    let mut at = 0;
    for (i, want) in expected.iter().enumerate() {
        let rest = &bytes[at..];
        let (got, used) = want
            .decode_like(cx, rest)
            .map_err(|e| format!("value {i} (byte {at}): does not decode: {e}"))?;
        if !got.normalised().same(&want.normalised()) {
            return Err(format!(
                "value {i} (byte {at}): decoded {got:?}, Nix's test states {want:?}"
            ));
        }
        extra(&got).map_err(|e| format!("value {i} (byte {at}): {e}"))?;
        let mut again = Vec::new();
        got.encode(cx, &mut again);
        let consumed = &rest[..used];
        if again != consumed {
            return Err(format!(
                "value {i} (byte {at}): re-encodes to {} bytes differing from the {} read ({})",
                again.len(),
                consumed.len(),
                difference(&again, consumed)
            ));
        }
        at += used;
    }
    if at != bytes.len() {
        return Err(format!(
            "{} bytes left over after the {} values",
            bytes.len() - at,
            expected.len()
        ));
    }
    if write {
        let mut written = Vec::new();
        for value in expected {
            value.encode(cx, &mut written);
        }
        if written != bytes {
            return Err(format!(
                "the stated values encode to {} bytes, not the file's {} ({})",
                written.len(),
                bytes.len(),
                difference(&written, bytes)
            ));
        }
    }
    Ok(())
}

/// `StorePath{"<hash_part><rest>"}` (it travels in `/nix/store`).
pub fn path_with(hash_part: &str, rest: &str) -> StorePath {
    let base = format!("{hash_part}{rest}");
    StorePath::from_base_name(base.as_bytes()).unwrap_or_else(|e| panic!("{base}: {e}"))
}

/// `StorePath{"g1w7hy3q…<rest>"}`.
pub fn path(rest: &str) -> StorePath {
    path_with(HASH_PART, rest)
}

/// An output name.
pub fn output(name: &str) -> OutputName {
    OutputName::new(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `Signature{.keyName = key, .sig = std::string(64, '\0')}` as Nix prints it.
pub fn sig(key: &str) -> Signature {
    let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 64]);
    Signature::new(format!("{key}:{zeros}"))
}

/// The digest of a `sha256-<base64>` SRI hash.
pub fn sri_sha256(sri: &str) -> Vec<u8> {
    let b64 = sri.strip_prefix("sha256-").expect("an SRI sha256");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

/// A NAR hash given in SRI form.
pub fn nar_hash(sri: &str) -> NarHash {
    NarHash(sri_sha256(sri).try_into().expect("32 bytes"))
}
