//! The closure-copy plan (`flows::copy::ClosureCopy`) driven by hand, with
//! the answers a source and a destination would give, and `NarCheck`.

use std::collections::{BTreeMap, BTreeSet};

use nixwire_core::flows::copy::{ClosureCopy, CopyError, NarCheck, Transfer, Want};
use nixwire_core::store::{NarHash, PathInfo, StorePath};
use quickcheck::{QuickCheck, TestResult};
use sha2::{Digest, Sha256};

/// A store path named `name`, its hash part made from `n` (nix32 digits).
fn path(n: usize, name: &str) -> StorePath {
    const DIGITS: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut hash = vec![b'0'; 32];
    let mut v = n;
    for slot in hash.iter_mut().rev() {
        *slot = DIGITS[v % 32];
        v /= 32;
    }
    let text = format!("{}-{name}", String::from_utf8(hash).expect("ascii"));
    text.parse().expect("a store path")
}

fn info(references: &[&StorePath], nar_size: u64) -> PathInfo {
    PathInfo {
        references: references.iter().map(|p| (*p).clone()).collect(),
        nar_size,
        ..PathInfo::default()
    }
}

/// A source store: every path's info.
type Source = BTreeMap<StorePath, PathInfo>;

/// Drives `plan` against `source` and a destination holding `valid`,
/// checking that each source level is one batch of new paths; returns the
/// transfer and how many source rounds it took.
fn drive(
    mut plan: ClosureCopy,
    source: &Source,
    valid: &BTreeSet<StorePath>,
) -> Result<(Transfer, usize), CopyError> {
    let mut rounds = 0;
    let mut asked_before = BTreeSet::new();
    loop {
        match plan.want() {
            Want::AskSource(paths) => {
                rounds += 1;
                for p in &paths {
                    assert!(asked_before.insert(p.clone()), "{p} asked twice");
                }
                let answer: Vec<_> = paths
                    .iter()
                    .filter_map(|p| source.get(p).map(|i| (p.clone(), i.clone())))
                    .collect();
                plan.source_answered(answer)?;
            }
            Want::AskDestination(paths) => {
                let answer: Vec<_> = paths
                    .iter()
                    .filter(|p| valid.contains(*p))
                    .cloned()
                    .collect();
                let transfer = plan.destination_answered(answer)?;
                assert_eq!(plan.want(), Want::Finished);
                return Ok((transfer, rounds));
            }
            Want::Finished => panic!("finished before the destination was asked"),
        }
    }
}

fn names(transfer: &Transfer) -> Vec<String> {
    transfer.paths.iter().map(|(p, _)| p.to_string()).collect()
}

/// Every path after all of its references (self-references aside).
fn ordered(transfer: &Transfer) -> bool {
    let mut placed = BTreeSet::new();
    let sending: BTreeSet<&StorePath> = transfer.paths.iter().map(|(p, _)| p).collect();
    for (p, i) in &transfer.paths {
        for r in &i.references {
            if r != p && sending.contains(r) && !placed.contains(r) {
                return false;
            }
        }
        placed.insert(p);
    }
    true
}

#[test]
fn a_diamond_is_asked_level_by_level_and_sent_bottom_up() {
    let (d, b, c, a) = (path(1, "d"), path(2, "b"), path(3, "c"), path(4, "a"));
    let source: Source = [
        (d.clone(), info(&[], 10)),
        (b.clone(), info(&[&d], 20)),
        (c.clone(), info(&[&d], 30)),
        (a.clone(), info(&[&b, &c], 40)),
    ]
    .into();
    let mut plan = ClosureCopy::new([a.clone()], None);
    assert_eq!(plan.want(), Want::AskSource(vec![a.clone()]));
    plan.source_answered([(a.clone(), source[&a].clone())])
        .expect("level 1");
    assert_eq!(plan.want(), Want::AskSource(vec![b.clone(), c.clone()]));
    plan.source_answered([
        (c.clone(), source[&c].clone()),
        (b.clone(), source[&b].clone()),
    ])
    .expect("level 2");
    assert_eq!(plan.want(), Want::AskSource(vec![d.clone()]));
    plan.source_answered([(d.clone(), source[&d].clone())])
        .expect("level 3");
    let Want::AskDestination(all) = plan.want() else {
        panic!("the destination next")
    };
    assert_eq!(all.len(), 4);
    let transfer = plan.destination_answered([]).expect("transfer");
    assert_eq!(names(&transfer)[0], d.to_string());
    assert_eq!(names(&transfer)[3], a.to_string());
    assert!(ordered(&transfer));
    assert_eq!(transfer.nar_size, 100);
    assert!(transfer.already.is_empty());

    // With b and d there already, only c and a go, c first.
    let valid = [b.clone(), d.clone()].into();
    let (transfer, rounds) =
        drive(ClosureCopy::new([a.clone()], None), &source, &valid).expect("transfer");
    assert_eq!(rounds, 3);
    assert_eq!(names(&transfer), vec![c.to_string(), a.to_string()]);
    assert_eq!(transfer.already, vec![d.clone(), b.clone()]);
    assert_eq!(transfer.nar_size, 70);
}

#[test]
fn self_references_are_not_cycles() {
    let (x, y) = (path(1, "x"), path(2, "y"));
    let source: Source = [(x.clone(), info(&[&x], 1)), (y.clone(), info(&[&x, &y], 1))].into();
    let (transfer, _) = drive(
        ClosureCopy::new([y.clone()], None),
        &source,
        &BTreeSet::new(),
    )
    .expect("transfer");
    assert_eq!(names(&transfer), vec![x.to_string(), y.to_string()]);
}

#[test]
fn a_cycle_is_refused_naming_its_paths() {
    let (a, b, c, top) = (path(1, "a"), path(2, "b"), path(3, "c"), path(4, "top"));
    let source: Source = [
        (a.clone(), info(&[&b], 1)),
        (b.clone(), info(&[&c], 1)),
        (c.clone(), info(&[&a], 1)),
        (top.clone(), info(&[&a], 1)),
    ]
    .into();
    let err = drive(ClosureCopy::new([top], None), &source, &BTreeSet::new()).expect_err("a cycle");
    let CopyError::Cycle { paths } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        paths.iter().collect::<BTreeSet<_>>(),
        [&a, &b, &c].into_iter().collect()
    );
    let text = err.to_string();
    for p in [&a, &b, &c] {
        assert!(text.contains(&p.to_string()), "{text}");
    }
}

#[test]
fn a_path_missing_at_the_source_is_refused_by_name() {
    let (dep, top) = (path(1, "dep"), path(2, "top"));
    let source: Source = [(top.clone(), info(&[&dep], 1))].into();
    let err = drive(ClosureCopy::new([top], None), &source, &BTreeSet::new())
        .expect_err("dep is missing");
    assert_eq!(err, CopyError::MissingAtSource { path: dep.clone() });
    assert!(err.to_string().contains(&dep.to_string()));
}

#[test]
fn answers_out_of_turn_or_unasked_are_refused() {
    let (a, b) = (path(1, "a"), path(2, "b"));
    let mut plan = ClosureCopy::new([a.clone()], None);
    assert!(matches!(
        plan.destination_answered([]),
        Err(CopyError::OutOfTurn { .. })
    ));
    assert_eq!(
        plan.source_answered([(b.clone(), info(&[], 1))]),
        Err(CopyError::Unasked { path: b })
    );
    assert_eq!(plan.want(), Want::Finished);
}

#[test]
fn the_maximum_size_counts_only_what_is_missing() {
    let (dep, top) = (path(1, "dep"), path(2, "top"));
    let source: Source = [
        (dep.clone(), info(&[], 600)),
        (top.clone(), info(&[&dep], 500)),
    ]
    .into();
    let err = drive(
        ClosureCopy::new([top.clone()], Some(1000)),
        &source,
        &BTreeSet::new(),
    )
    .expect_err("too large");
    assert_eq!(
        err,
        CopyError::TooLarge {
            total: 1100,
            max: 1000,
            paths: 2
        }
    );
    assert!(err.to_string().contains("1100"), "{err}");
    let (transfer, _) = drive(
        ClosureCopy::new([top.clone()], Some(1000)),
        &source,
        &[dep.clone()].into(),
    )
    .expect("within the limit");
    assert_eq!(names(&transfer), vec![top.to_string()]);
}

#[test]
fn nothing_missing_sends_nothing() {
    let (dep, top) = (path(1, "dep"), path(2, "top"));
    let source: Source = [(dep.clone(), info(&[], 1)), (top.clone(), info(&[&dep], 1))].into();
    let valid: BTreeSet<_> = [dep, top].into();
    let (transfer, _) = drive(
        ClosureCopy::new(valid.iter().cloned(), Some(0)),
        &source,
        &valid,
    )
    .expect("nothing to do");
    assert!(transfer.paths.is_empty());
    assert_eq!(transfer.already.len(), 2);
    assert_eq!(transfer.nar_size, 0);

    let (transfer, rounds) = drive(ClosureCopy::new([], None), &source, &valid).expect("no roots");
    assert_eq!((transfer, rounds), (Transfer::default(), 0));
}

#[test]
fn random_dags_are_sent_in_topological_order() {
    fn prop(edges: Vec<(u8, u8)>, self_refs: Vec<u8>, valid: Vec<u8>, n: u8) -> TestResult {
        let n = usize::from(n % 40) + 1;
        let paths: Vec<StorePath> = (0..n)
            .map(|i| path(i * 7919 % 1000 + 1, &format!("p{i}")))
            .collect();
        // Edges go from a higher index to a lower one: no cycles.
        let mut refs: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        for (x, y) in edges {
            let (x, y) = (usize::from(x) % n, usize::from(y) % n);
            if x != y {
                refs[x.max(y)].insert(x.min(y));
            }
        }
        for s in self_refs {
            let s = usize::from(s) % n;
            refs[s].insert(s);
        }
        let source: Source = (0..n)
            .map(|i| {
                let r: Vec<&StorePath> = refs[i].iter().map(|j| &paths[*j]).collect();
                (paths[i].clone(), info(&r, 1))
            })
            .collect();
        let valid: BTreeSet<StorePath> = valid
            .into_iter()
            .map(|v| paths[usize::from(v) % n].clone())
            .collect();
        let root = paths[n - 1].clone();
        let Ok((transfer, _)) = drive(ClosureCopy::new([root.clone()], None), &source, &valid)
        else {
            return TestResult::failed();
        };
        // The closure, by hand.
        let mut closure = BTreeSet::new();
        let mut stack = vec![n - 1];
        while let Some(i) = stack.pop() {
            if closure.insert(i) {
                stack.extend(refs[i].iter().copied());
            }
        }
        let want: BTreeSet<StorePath> = closure
            .iter()
            .map(|i| paths[*i].clone())
            .filter(|p| !valid.contains(p))
            .collect();
        let got: BTreeSet<StorePath> = transfer.paths.iter().map(|(p, _)| p.clone()).collect();
        TestResult::from_bool(
            got == want && got.len() == transfer.paths.len() && ordered(&transfer),
        )
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(Vec<(u8, u8)>, Vec<u8>, Vec<u8>, u8) -> TestResult);
}

fn checked(info: &PathInfo, nar: &[u8], chunk: usize) -> NarCheck {
    let mut check = NarCheck::new(&path(1, "nar"), info);
    for piece in nar.chunks(chunk.max(1)) {
        check.update(piece);
    }
    check
}

#[test]
fn nar_check_right_wrong_hash_wrong_size() {
    let nar = b"nix-archive-1 pretend this is a NAR".repeat(100);
    let digest: [u8; 32] = Sha256::digest(&nar).into();
    let right = PathInfo {
        nar_hash: Some(NarHash::new(digest)),
        nar_size: nar.len() as u64,
        ..PathInfo::default()
    };
    for chunk in [1, 7, 4096, nar.len()] {
        let check = checked(&right, &nar, chunk);
        assert_eq!(check.finish(), Ok(()), "chunk {chunk}");
        assert!(!check.overrun());
    }

    let mut corrupt = nar.clone();
    corrupt[10] ^= 1;
    let err = checked(&right, &corrupt, 64)
        .finish()
        .expect_err("wrong hash");
    assert_eq!(err.expected_hash, Some(NarHash::new(digest).to_sri()));
    assert_ne!(err.actual_hash, NarHash::new(digest).to_sri());
    assert_eq!(err.actual_size, nar.len() as u64);
    let text = err.to_string();
    assert!(text.contains(&path(1, "nar").to_string()), "{text}");
    assert!(text.contains(&err.actual_hash), "{text}");
    assert!(text.contains("sha256-"), "{text}");

    let short = &nar[..nar.len() - 1];
    let err = checked(&right, short, 64).finish().expect_err("short");
    assert_eq!(
        (err.expected_size, err.actual_size),
        (nar.len() as u64, nar.len() as u64 - 1)
    );
    let mut long = nar.clone();
    long.push(0);
    let check = checked(&right, &long, 64);
    assert!(check.overrun());
    assert!(check.finish().is_err());

    // Without a hash in the path info (old serve servers), the size alone.
    let no_hash = PathInfo {
        nar_hash: None,
        ..right.clone()
    };
    assert_eq!(checked(&no_hash, &nar, 64).finish(), Ok(()));
    assert!(checked(&no_hash, short, 64).finish().is_err());
}
