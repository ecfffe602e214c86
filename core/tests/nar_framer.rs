//! The NAR framer: finds the end of any valid archive however the bytes are
//! split, refuses invalid ones with a precise error, never panics.

use nixwire_core::nar::{NarError, NarFramer, NarLimits, Node};
use nixwire_core::wire::encode_bytes;
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// A file tree that Nix accepts: names unique, sorted, slash-free; symlink
/// targets non-empty and NUL-free.
#[derive(Debug, Clone)]
struct Tree(Node);

fn node(g: &mut Gen, depth: u8) -> Node {
    match u8::arbitrary(g) % if depth > 3 { 2 } else { 3 } {
        0 => Node::Regular {
            executable: bool::arbitrary(g),
            contents: Vec::<u8>::arbitrary(g),
        },
        1 => {
            let mut target = Vec::<u8>::arbitrary(g);
            target.retain(|&b| b != 0);
            target.insert(0, b'/');
            Node::Symlink { target }
        }
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
        (&[b".".as_slice()][..], "special"),
        (&[b"".as_slice()][..], "empty"),
        (&[b"a/b".as_slice()][..], "'/'"),
        (&[b"a\0b".as_slice()][..], "NUL"),
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
    assert!(
        matches!(err, NarError::TokenTooLong { offset: 24, expected: "\"(\"", len } if len == 1 << 60),
        "{err}"
    );

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
    assert!(
        matches!(
            err,
            NarError::TooDeep {
                depth: 64,
                max: 64,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn non_zero_padding_is_refused() {
    let mut bytes = tokens(&[b"nix-archive-1", b"(", b"type", b"regular", b"contents"]);
    bytes.extend_from_slice(&3u64.to_le_bytes());
    bytes.extend_from_slice(b"abc\0\0\x01\0\0");
    let err = NarFramer::new().feed(&bytes).expect_err("padding");
    assert!(matches!(err, NarError::BadPadding { .. }), "{err}");
}

// Nix's rules (`parse()` in Nix's src/libutil/archive.cc, 2.35): each archive
// below is one that Nix refuses, and that the framer once accepted.

fn file() -> Node {
    Node::Regular {
        executable: false,
        contents: b"x".to_vec(),
    }
}

fn symlink(target: &[u8]) -> Node {
    Node::Symlink {
        target: target.to_vec(),
    }
}

fn dir_with(name: &[u8], node: Node) -> Node {
    Node::Directory(vec![(name.to_vec(), node)])
}

/// `leaf` inside `n` nested directories, so `leaf` is at depth `n`.
fn nested(n: usize, leaf: Node) -> Node {
    (0..n).fold(leaf, |inner, _| dir_with(b"d", inner))
}

/// Whether a framer with `limits` takes all of `nar` and finds its end there.
fn accepted_with(limits: NarLimits, nar: &[u8]) -> bool {
    let mut framer = NarFramer::with_limits(limits);
    framer.feed(nar) == Ok(nar.len()) && framer.is_done()
}

fn accepted(nar: &[u8]) -> bool {
    accepted_with(NarLimits::default(), nar)
}

/// The error a framer with `limits` gives for `nar`, which must be the same
/// whether the bytes come at once or one at a time.
fn refusal_with(limits: NarLimits, nar: &[u8]) -> NarError {
    let whole = NarFramer::with_limits(limits)
        .feed(nar)
        .expect_err("refused");
    let mut framer = NarFramer::with_limits(limits);
    let bytewise = nar
        .chunks(1)
        .find_map(|b| framer.feed(b).err())
        .expect("refused byte by byte");
    assert_eq!(whole, bytewise);
    whole
}

fn refusal(nar: &[u8]) -> NarError {
    refusal_with(NarLimits::default(), nar)
}

#[test]
fn defaults_are_nix_limits() {
    let limits = NarLimits::default();
    assert_eq!(
        (limits.max_name, limits.max_target, limits.max_depth),
        (255, 4095, 64)
    );
}

#[test]
fn a_name_over_255_bytes_is_refused_from_its_length() {
    let nar = dir_with(&[b'n'; 256], file()).to_nar();
    let at = tokens(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"directory",
        b"entry",
        b"(",
        b"name",
    ])
    .len() as u64;
    let err = refusal(&nar);
    assert_eq!(
        err,
        NarError::NameTooLong {
            offset: at,
            len: 256,
            max: 255
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "NAR at byte {at}: expected a directory entry name of at most 255 bytes, \
             found one of 256 bytes"
        )
    );
    // Refused before the name's bytes arrive.
    let mut framer = NarFramer::new();
    assert!(framer.feed(&nar[..at as usize + 8]).is_err());
}

#[test]
fn a_name_of_exactly_255_bytes_is_accepted() {
    assert!(accepted(&dir_with(&[b'n'; 255], file()).to_nar()));
}

#[test]
fn a_symlink_target_over_4095_bytes_is_refused() {
    let nar = symlink(&[b't'; 4096]).to_nar();
    let at = tokens(&[b"nix-archive-1", b"(", b"type", b"symlink", b"target"]).len() as u64;
    let err = refusal(&nar);
    assert_eq!(
        err,
        NarError::TargetTooLong {
            offset: at,
            len: 4096,
            max: 4095
        }
    );
    assert!(
        err.to_string()
            .contains("expected a symlink target of at most 4095 bytes, found one of 4096"),
        "{err}"
    );
}

#[test]
fn a_symlink_target_of_exactly_4095_bytes_is_accepted() {
    assert!(accepted(&symlink(&[b't'; 4095]).to_nar()));
}

#[test]
fn empty_and_nul_symlink_targets_are_refused() {
    let at = tokens(&[b"nix-archive-1", b"(", b"type", b"symlink", b"target"]).len() as u64;
    for (target, why) in [(&b""[..], "empty"), (b"a\0b", "contains NUL")] {
        let err = refusal(&symlink(target).to_nar());
        assert!(
            matches!(&err, NarError::BadTarget { offset, why: w, .. } if *offset == at && *w == why),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("expected a non-empty symlink target without NUL"),
            "{err}"
        );
    }
    // Deeper in a tree too.
    let err = refusal(&dir_with(b"l", symlink(b"")).to_nar());
    assert!(
        matches!(err, NarError::BadTarget { why: "empty", .. }),
        "{err}"
    );
}

#[test]
fn a_regular_file_without_contents_is_refused() {
    let head: [&[u8]; 4] = [b"nix-archive-1", b"(", b"type", b"regular"];
    let at = tokens(&head).len() as u64;
    let plain = tokens(&[&head[..], &[b")"]].concat());
    let err = refusal(&plain);
    assert_eq!(
        err.to_string(),
        format!("NAR at byte {at}: expected \"executable\" or \"contents\", found \")\"")
    );
    let executable = tokens(&[&head[..], &[b"executable", b"", b")"]].concat());
    let err = refusal(&executable);
    assert!(
        matches!(&err, NarError::Unexpected { expected: "\"contents\"", found, .. } if found == "\")\""),
        "{err}"
    );
    // An empty file still says so.
    assert!(accepted(
        &Node::Regular {
            executable: true,
            contents: Vec::new()
        }
        .to_nar()
    ));
}

#[test]
fn a_node_64_directories_deep_is_refused() {
    // A file inside 64 directories, and the 65th of 65 nested directories.
    for leaf in [file(), Node::Directory(Vec::new())] {
        let nar = nested(64, leaf).to_nar();
        let err = refusal(&nar);
        let NarError::TooDeep { offset, depth, max } = err else {
            panic!("{err}");
        };
        assert_eq!((depth, max), (64, 64));
        // The offset is where the refused node starts; it is refused before
        // any of its bytes arrive, as Nix does.
        let node = tokens(&[b"(", b"type"]);
        assert_eq!(&nar[offset as usize..][..node.len()], node.as_slice());
        assert_eq!(
            NarFramer::new().feed(&nar[..offset as usize]),
            Err(err.clone())
        );
        assert_eq!(
            err.to_string(),
            format!(
                "NAR at byte {offset}: directory nesting exceeds the maximum depth of 64: \
                 found a node 64 directories deep"
            )
        );
    }
}

#[test]
fn nodes_just_under_the_depth_limit_are_accepted() {
    // A file 63 directories down, and 64 nested directories, the innermost
    // empty (it is at depth 63).
    assert!(accepted(&nested(63, file()).to_nar()));
    assert!(accepted(&nested(63, Node::Directory(Vec::new())).to_nar()));
}

#[test]
fn limits_are_configurable() {
    let mut raised = NarLimits::default();
    raised.max_name = 1024;
    raised.max_target = 8192;
    raised.max_depth = 128;
    let long_name = dir_with(&[b'n'; 1024], file()).to_nar();
    let long_target = symlink(&[b't'; 8192]).to_nar();
    let deep = nested(127, file()).to_nar();
    for nar in [&long_name, &long_target, &deep] {
        assert!(!accepted(nar));
        assert!(accepted_with(raised, nar));
    }
    assert!(matches!(
        refusal_with(raised, &nested(128, file()).to_nar()),
        NarError::TooDeep {
            depth: 128,
            max: 128,
            ..
        }
    ));

    let mut lowered = NarLimits::default();
    lowered.max_name = 3;
    lowered.max_target = 3;
    lowered.max_depth = 1;
    assert!(matches!(
        refusal_with(lowered, &dir_with(b"abcd", symlink(b"/")).to_nar()),
        NarError::NameTooLong { len: 4, max: 3, .. }
    ));
    assert!(matches!(
        refusal_with(lowered, &symlink(b"/abc").to_nar()),
        NarError::TargetTooLong { len: 4, max: 3, .. }
    ));
    assert!(matches!(
        refusal_with(lowered, &dir_with(b"f", file()).to_nar()),
        NarError::TooDeep {
            depth: 1,
            max: 1,
            ..
        }
    ));
    // Within the lowered limits, an archive is still accepted.
    assert!(accepted_with(lowered, &symlink(b"/ab").to_nar()));
    assert!(accepted_with(lowered, &file().to_nar()));
}
