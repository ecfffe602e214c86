//! The NAR framer: finds the end of any valid archive however the bytes are
//! split, refuses invalid ones with a precise error, never panics.

use nixwire_core::nar::{NarError, NarFramer, Node};
use nixwire_core::wire::encode_bytes;
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// A file tree with valid (unique, sorted, slash-free) names.
#[derive(Debug, Clone)]
struct Tree(Node);

fn node(g: &mut Gen, depth: u8) -> Node {
    match u8::arbitrary(g) % if depth > 3 { 2 } else { 3 } {
        0 => Node::Regular {
            executable: bool::arbitrary(g),
            contents: Vec::<u8>::arbitrary(g),
        },
        1 => Node::Symlink {
            target: Vec::<u8>::arbitrary(g),
        },
        _ => {
            let mut names: Vec<Vec<u8>> = Vec::<String>::arbitrary(g)
                .into_iter()
                .map(|s| s.replace(['/', '\0'], "_").into_bytes())
                .filter(|n| !n.is_empty() && n.as_slice() != b"." && n.as_slice() != b"..")
                .collect();
            names.sort();
            names.dedup();
            // Bounded fan-out keeps trees (and the test) small at any depth.
            names.truncate(4);
            Node::Directory(names.into_iter().map(|n| (n, node(g, depth + 1))).collect())
        }
    }
}

impl Arbitrary for Tree {
    fn arbitrary(g: &mut Gen) -> Self {
        Self(node(g, 0))
    }
}

/// Feeds `nar` followed by unrelated bytes, split at `splits`; the framer must
/// claim exactly the archive.
fn frames_exactly(tree: Tree, splits: Vec<u16>, trailing: Vec<u8>) -> bool {
    let nar = tree.0.to_nar();
    let mut input = nar.clone();
    input.extend_from_slice(&trailing);
    let mut framer = NarFramer::new();
    let mut claimed = 0;
    let mut pos = 0;
    let mut cuts: Vec<usize> = splits
        .iter()
        .map(|&s| usize::from(s) % (input.len() + 1))
        .collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    for cut in cuts {
        if cut < pos {
            continue;
        }
        match framer.feed(&input[pos..cut]) {
            Ok(n) => claimed += n,
            Err(_) => return false,
        }
        pos = cut;
    }
    framer.is_done() && claimed == nar.len() && framer.position() == nar.len() as u64
}

fn never_panics(bytes: Vec<u8>, split: u16) -> bool {
    let mut framer = NarFramer::new();
    let cut = usize::from(split) % (bytes.len() + 1);
    if framer.feed(&bytes[..cut]).is_ok() {
        let _ = framer.feed(&bytes[cut..]);
    }
    true
}

/// Valid archives with one byte changed: any verdict but a panic.
fn mutated_archives_never_panic(tree: Tree, at: usize, mask: u8) -> bool {
    let mut nar = tree.0.to_nar();
    let at = at % nar.len();
    nar[at] ^= mask;
    let _ = NarFramer::new().feed(&nar);
    true
}

#[test]
fn framing_finds_the_end_of_any_archive_however_split() {
    let mut qc = QuickCheck::new().tests(1000).rng(Gen::new(16));
    qc.quickcheck(frames_exactly as fn(Tree, Vec<u16>, Vec<u8>) -> bool);
}

#[test]
fn arbitrary_and_mutated_bytes_never_panic() {
    let mut qc = QuickCheck::new().tests(3000).rng(Gen::new(64));
    qc.quickcheck(never_panics as fn(Vec<u8>, u16) -> bool);
    let mut qc = QuickCheck::new().tests(3000).rng(Gen::new(16));
    qc.quickcheck(mutated_archives_never_panic as fn(Tree, usize, u8) -> bool);
}

fn tokens(ts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in ts {
        encode_bytes(t, &mut out);
    }
    out
}

#[test]
fn a_wrong_magic_says_what_came() {
    let err = NarFramer::new()
        .feed(&tokens(&[b"nix-archive-2"]))
        .expect_err("bad magic");
    assert_eq!(
        err.to_string(),
        "NAR at byte 0: expected the NAR magic \"nix-archive-1\", found \"nix-archive-2\""
    );
}

#[test]
fn unsorted_and_special_names_are_refused() {
    let dir = |names: &[&[u8]]| {
        let mut ts: Vec<&[u8]> = vec![b"nix-archive-1", b"(", b"type", b"directory"];
        for n in names {
            ts.extend_from_slice(&[b"entry", b"(", b"name", n, b"node"]);
            ts.extend_from_slice(&[b"(", b"type", b"symlink", b"target", b"x", b")", b")"]);
        }
        ts.push(b")");
        tokens(&ts)
    };
    let mut ok = NarFramer::new();
    assert_eq!(
        ok.feed(&dir(&[b"a", b"b"])).ok(),
        Some(dir(&[b"a", b"b"]).len())
    );
    assert!(ok.is_done());
    for (names, why) in [
        (&[b"b".as_slice(), b"a"][..], "sorted order"),
        (&[b"a".as_slice(), b"a"][..], "sorted order"),
        (&[b"..".as_slice()][..], "special"),
        (&[b"a/b".as_slice()][..], "'/'"),
    ] {
        let err = NarFramer::new().feed(&dir(names)).expect_err("bad name");
        assert!(
            matches!(err, NarError::BadName { .. }) && err.to_string().contains(why),
            "{err}"
        );
    }
}

#[test]
fn hostile_sizes_and_depths_are_bounded() {
    // A token claiming 2^60 bytes is refused at once, not awaited.
    let mut bytes = tokens(&[b"nix-archive-1"]);
    bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
    let err = NarFramer::new().feed(&bytes).expect_err("huge token");
    assert!(matches!(err, NarError::TokenTooLong { len, .. } if len == 1 << 60));

    // File contents of 2^60 bytes are fine to announce: they are counted, not
    // stored, so the framer simply waits for them.
    let mut bytes = tokens(&[b"nix-archive-1", b"(", b"type", b"regular", b"contents"]);
    bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
    let mut framer = NarFramer::new();
    assert_eq!(framer.feed(&bytes).ok(), Some(bytes.len()));
    assert!(!framer.is_done());

    // Nesting is bounded.
    let mut framer = NarFramer::new();
    let mut ts: Vec<&[u8]> = vec![b"nix-archive-1"];
    for _ in 0..2000 {
        ts.extend_from_slice(&[
            b"(",
            b"type",
            b"directory",
            b"entry",
            b"(",
            b"name",
            b"d",
            b"node",
        ]);
    }
    let err = framer.feed(&tokens(&ts)).expect_err("too deep");
    assert_eq!(err, NarError::TooDeep);
}

#[test]
fn non_zero_padding_is_refused() {
    let mut bytes = tokens(&[b"nix-archive-1", b"(", b"type", b"regular", b"contents"]);
    bytes.extend_from_slice(&3u64.to_le_bytes());
    bytes.extend_from_slice(b"abc\0\0\x01\0\0");
    let err = NarFramer::new().feed(&bytes).expect_err("padding");
    assert!(matches!(err, NarError::BadPadding { .. }), "{err}");
}
