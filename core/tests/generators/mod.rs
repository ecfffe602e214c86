//! Generators of store values for the codec property tests of both
//! protocols (`serve_codec.rs`, `worker_codec.rs`).

#![allow(dead_code, unreachable_pub)]

use nixwire_core::store::{ContentAddress, NarHash, OutputName, Signature, StorePath};
use nixwire_core::wire::NixString;
use quickcheck::{Arbitrary, Gen};

/// Any bytes: Nix's strings are not always UTF-8.
pub fn s(g: &mut Gen) -> NixString {
    NixString::from(Vec::<u8>::arbitrary(g))
}

/// Bytes that are not empty (an empty optional text is "none").
pub fn nonempty(g: &mut Gen) -> NixString {
    let mut bytes = Vec::<u8>::arbitrary(g);
    bytes.push(b'x');
    NixString::from(bytes)
}

/// Up to three strings.
pub fn strings(g: &mut Gen) -> Vec<NixString> {
    (0..u8::arbitrary(g) % 4).map(|_| s(g)).collect()
}

const NIX32: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
const NAME: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A valid store path whose name ends with `suffix`.
pub fn path_named(g: &mut Gen, suffix: &str) -> StorePath {
    let hash: String = (0..32)
        .map(|_| char::from(*g.choose(NIX32).unwrap_or(&b'0')))
        .collect();
    let len = usize::from(u8::arbitrary(g) % 12) + 1;
    let name: String = (0..len)
        .map(|_| char::from(*g.choose(NAME).unwrap_or(&b'a')))
        .collect();
    format!("{hash}-{name}{suffix}")
        .parse()
        .expect("a generated store path is valid")
}

/// A valid store path.
pub fn path(g: &mut Gen) -> StorePath {
    path_named(g, "")
}

/// A derivation's store path.
pub fn drv(g: &mut Gen) -> StorePath {
    path_named(g, ".drv")
}

/// Up to three store paths.
pub fn paths(g: &mut Gen) -> Vec<StorePath> {
    (0..u8::arbitrary(g) % 4).map(|_| path(g)).collect()
}

/// A store path or none.
pub fn opt_path(g: &mut Gen) -> Option<StorePath> {
    bool::arbitrary(g).then(|| path(g))
}

/// Any NAR hash.
pub fn nar_hash(g: &mut Gen) -> NarHash {
    let mut digest = [0u8; 32];
    for b in &mut digest {
        *b = u8::arbitrary(g);
    }
    NarHash(digest)
}

/// Up to two signatures.
pub fn sigs(g: &mut Gen) -> Vec<Signature> {
    (0..u8::arbitrary(g) % 3)
        .map(|i| Signature::new(format!("cache-{i}.example.org-1:{}", u32::arbitrary(g))))
        .collect()
}

/// A content address or none.
pub fn ca(g: &mut Gen) -> Option<ContentAddress> {
    bool::arbitrary(g).then(|| {
        ContentAddress::parse("fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s")
            .expect("a valid content address")
    })
}

/// An output name.
pub fn output_name(g: &mut Gen) -> OutputName {
    let names = ["out", "dev", "bin", "lib", "man"];
    OutputName::new(g.choose(&names).unwrap_or(&"out")).expect("a valid output name")
}
