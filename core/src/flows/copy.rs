//! Copying a closure from one store to another, as `nix copy` does, but
//! never with a round trip per path.
//!
//! [`ClosureCopy`] is the plan, an explicit state machine the host drives:
//!
//! 1. [`want`](ClosureCopy::want) says [`Want::AskSource`] with one level of
//!    the closure (first the roots, then the references not seen yet); the
//!    host sends it as one batched `QueryPathInfos` to the source and hands
//!    the answer to [`source_answered`](ClosureCopy::source_answered).
//!    Repeated until a level brings nothing new.
//! 2. [`want`](ClosureCopy::want) says [`Want::AskDestination`] with the
//!    whole closure; the host sends one batched `QueryValidPaths` to the
//!    destination and hands the answer to
//!    [`destination_answered`](ClosureCopy::destination_answered), which
//!    returns the [`Transfer`]: the missing paths in topological order (each
//!    after everything it refers to), with their path infos.
//! 3. The host streams each missing path's NAR from the source into the
//!    destination, through a [`NarCheck`] that compares its sha256 and size
//!    with the path info's on the way.
//!
//! Everything that can be refused is refused before a byte is transferred:
//! a path the source does not have, a reference cycle (other than a path
//! referring to itself, which Nix allows), and, with a maximum size, a
//! closure whose NARs to transfer add up to more (Hydra's rule: it refuses
//! an oversized output before downloading it).

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::store::{NarHash, PathInfo, StorePath};

/// Why a closure cannot be copied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    /// The source has no path info for a path of the closure.
    #[error("{path} is not valid at the source: it was asked for its path info and sent none")]
    MissingAtSource {
        /// The path.
        path: StorePath,
    },
    /// The source sent a path info that was not asked for.
    #[error("the source sent a path info for {path}, which was not asked for")]
    Unasked {
        /// The path.
        path: StorePath,
    },
    /// The NARs to transfer add up to more than the maximum.
    #[error(
        "the closure is too large to copy: its {paths} missing paths are {total} bytes of NAR, more than the maximum of {max}"
    )]
    TooLarge {
        /// The NAR bytes to transfer.
        total: u64,
        /// The maximum allowed.
        max: u64,
        /// How many paths are missing.
        paths: usize,
    },
    /// Paths refer to each other in a cycle (a path referring to itself
    /// is not one).
    #[error("a reference cycle among the paths to copy: {}", cycle_text(.paths))]
    Cycle {
        /// The cycle: each refers to the next, the last to the first.
        paths: Vec<StorePath>,
    },
    /// An answer came that the plan was not waiting for.
    #[error("the copy plan expected {expected}, and got {came}")]
    OutOfTurn {
        /// What the plan was waiting for.
        expected: &'static str,
        /// What it was given.
        came: &'static str,
    },
}

fn cycle_text(paths: &[StorePath]) -> String {
    let mut text: Vec<String> = paths.iter().map(ToString::to_string).collect();
    if let Some(first) = paths.first() {
        text.push(first.to_string());
    }
    text.join(" -> ")
}

/// What the plan wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// The path infos of these paths, from the source, in one batch.
    AskSource(Vec<StorePath>),
    /// Which of these paths the destination holds, in one batch.
    AskDestination(Vec<StorePath>),
    /// Nothing: the transfer was given out, or the plan failed.
    Finished,
}

/// What to transfer, once the destination has answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transfer {
    /// The missing paths, each after all of its references.
    pub paths: Vec<(StorePath, PathInfo)>,
    /// The paths of the closure the destination already holds.
    pub already: Vec<StorePath>,
    /// The sum of the missing paths' NAR sizes.
    pub nar_size: u64,
}

#[derive(Debug)]
enum Stage {
    Source,
    Destination,
    Finished,
}

/// The closure-copy plan (see the [module docs](self)).
#[derive(Debug)]
pub struct ClosureCopy {
    stage: Stage,
    max_size: Option<u64>,
    /// What is being asked now: a level of the closure, or all of it.
    asked: Vec<StorePath>,
    /// Every path met so far, asked or to be asked.
    seen: BTreeSet<StorePath>,
    /// The source's answers.
    infos: BTreeMap<StorePath, PathInfo>,
}

impl ClosureCopy {
    /// A plan to copy the closure of `roots`; with `max_size`, refusing a
    /// transfer of more NAR bytes than that.
    pub fn new(roots: impl IntoIterator<Item = StorePath>, max_size: Option<u64>) -> Self {
        let seen: BTreeSet<StorePath> = roots.into_iter().collect();
        let mut plan = Self {
            stage: Stage::Source,
            max_size,
            asked: seen.iter().cloned().collect(),
            seen,
            infos: BTreeMap::new(),
        };
        if plan.asked.is_empty() {
            // An empty closure: still ask the destination (about nothing),
            // so that the host's loop has one shape.
            plan.stage = Stage::Destination;
        }
        plan
    }

    /// What the plan wants next.
    pub fn want(&self) -> Want {
        match self.stage {
            Stage::Source => Want::AskSource(self.asked.clone()),
            Stage::Destination => Want::AskDestination(self.asked.clone()),
            Stage::Finished => Want::Finished,
        }
    }

    /// The source's path infos for the paths of [`Want::AskSource`], in any
    /// order. Every path asked must be there.
    pub fn source_answered(
        &mut self,
        answer: impl IntoIterator<Item = (StorePath, PathInfo)>,
    ) -> Result<(), CopyError> {
        if !matches!(self.stage, Stage::Source) {
            return Err(self.out_of_turn("path infos from the source"));
        }
        let asked: BTreeSet<StorePath> = self.asked.drain(..).collect();
        let mut next = BTreeSet::new();
        for (path, info) in answer {
            if !asked.contains(&path) {
                self.stage = Stage::Finished;
                return Err(CopyError::Unasked { path });
            }
            for r in &info.references {
                if !self.seen.contains(r) {
                    next.insert(r.clone());
                }
            }
            self.infos.insert(path, info);
        }
        if let Some(path) = asked.into_iter().find(|p| !self.infos.contains_key(p)) {
            self.stage = Stage::Finished;
            return Err(CopyError::MissingAtSource { path });
        }
        self.seen.extend(next.iter().cloned());
        if next.is_empty() {
            self.stage = Stage::Destination;
            self.asked = self.infos.keys().cloned().collect();
        } else {
            self.asked = next.into_iter().collect();
        }
        Ok(())
    }

    /// The destination's valid paths among those of
    /// [`Want::AskDestination`]; gives the [`Transfer`], or refuses it.
    pub fn destination_answered(
        &mut self,
        valid: impl IntoIterator<Item = StorePath>,
    ) -> Result<Transfer, CopyError> {
        if !matches!(self.stage, Stage::Destination) {
            return Err(self.out_of_turn("valid paths from the destination"));
        }
        self.stage = Stage::Finished;
        self.asked.clear();
        let valid: BTreeSet<StorePath> = valid
            .into_iter()
            .filter(|p| self.infos.contains_key(p))
            .collect();
        let mut infos = std::mem::take(&mut self.infos);
        let already: Vec<StorePath> = valid.iter().cloned().collect();
        for p in &valid {
            infos.remove(p);
        }
        let nar_size = infos
            .values()
            .fold(0u64, |sum, i| sum.saturating_add(i.nar_size));
        if let Some(max) = self.max_size
            && nar_size > max
        {
            return Err(CopyError::TooLarge {
                total: nar_size,
                max,
                paths: infos.len(),
            });
        }
        let order = topological(&infos)?;
        let paths = order
            .into_iter()
            .filter_map(|p| infos.remove_entry(&p))
            .collect();
        Ok(Transfer {
            paths,
            already,
            nar_size,
        })
    }

    fn out_of_turn(&self, came: &'static str) -> CopyError {
        let expected = match self.stage {
            Stage::Source => "path infos from the source",
            Stage::Destination => "valid paths from the destination",
            Stage::Finished => "nothing more (the plan is finished)",
        };
        CopyError::OutOfTurn { expected, came }
    }
}

/// The paths of `infos` with each after all of its references among them
/// (Kahn's algorithm; ties by path, so the order is reproducible).
fn topological(infos: &BTreeMap<StorePath, PathInfo>) -> Result<Vec<StorePath>, CopyError> {
    // For each path: how many of its references are still to be placed,
    // and who refers to it.
    let mut waiting: BTreeMap<&StorePath, usize> = BTreeMap::new();
    let mut referrers: BTreeMap<&StorePath, Vec<&StorePath>> = BTreeMap::new();
    for (path, info) in infos {
        let deps: BTreeSet<&StorePath> = info
            .references
            .iter()
            .filter(|r| *r != path && infos.contains_key(*r))
            .collect();
        waiting.insert(path, deps.len());
        for d in deps {
            referrers.entry(d).or_default().push(path);
        }
    }
    let mut ready: BTreeSet<&StorePath> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(p, _)| *p)
        .collect();
    let mut order = Vec::with_capacity(infos.len());
    while let Some(path) = ready.pop_first() {
        waiting.remove(path);
        for r in referrers.get(path).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(*r) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(*r);
                }
            }
        }
        order.push(path.clone());
    }
    if waiting.is_empty() {
        return Ok(order);
    }
    Err(CopyError::Cycle {
        paths: find_cycle(infos, &waiting.keys().copied().collect()),
    })
}

/// A cycle among `left`, the paths Kahn's algorithm could not place: each
/// of them refers to another of them, so following such references from
/// any of them comes back to a path already met.
fn find_cycle(
    infos: &BTreeMap<StorePath, PathInfo>,
    left: &BTreeSet<&StorePath>,
) -> Vec<StorePath> {
    let next = |p: &StorePath| -> Option<&StorePath> {
        infos
            .get(p)?
            .references
            .iter()
            .find(|r| *r != p && left.contains(r))
    };
    let mut walk: Vec<&StorePath> = Vec::new();
    let mut at = left.first().copied();
    while let Some(p) = at {
        if let Some(i) = walk.iter().position(|q| *q == p) {
            return walk[i..].iter().map(|p| (*p).clone()).collect();
        }
        walk.push(p);
        at = next(p);
    }
    // Not reached when `left` is what Kahn's algorithm left; name them all.
    left.iter().map(|p| (*p).clone()).collect()
}

/// A NAR that does not match its path info.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the NAR of {path} does not match its path info: expected {} and {expected_size} bytes, got {actual_hash} and {actual_size} bytes",
    .expected_hash.as_deref().unwrap_or("any hash")
)]
pub struct NarMismatch {
    /// The path.
    pub path: StorePath,
    /// The path info's NAR hash (SRI), if it has one.
    pub expected_hash: Option<String>,
    /// The hash of the bytes that came (SRI).
    pub actual_hash: String,
    /// The path info's NAR size.
    pub expected_size: u64,
    /// How many bytes came.
    pub actual_size: u64,
}

/// Checks a NAR against its path info as it streams through: feed every
/// byte to [`update`](Self::update), then [`finish`](Self::finish).
#[derive(Debug, Clone)]
pub struct NarCheck {
    path: StorePath,
    expected_hash: Option<NarHash>,
    expected_size: u64,
    hasher: Sha256,
    seen: u64,
}

impl NarCheck {
    /// A check of `path`'s NAR against `info`'s `nar_hash` (when it has
    /// one: serve servers before 2.4 send none) and `nar_size`.
    pub fn new(path: &StorePath, info: &PathInfo) -> Self {
        Self {
            path: path.clone(),
            expected_hash: info.nar_hash,
            expected_size: info.nar_size,
            hasher: Sha256::new(),
            seen: 0,
        }
    }

    /// More of the NAR.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.seen = self.seen.saturating_add(bytes.len() as u64);
    }

    /// How many bytes came so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The size the path info says.
    pub fn expected_size(&self) -> u64 {
        self.expected_size
    }

    /// Whether the bytes so far already mismatch: more than the path info
    /// says. A streaming host fails at once rather than at the end.
    pub fn overrun(&self) -> bool {
        self.seen > self.expected_size
    }

    /// Whether the NAR that came is the one the path info describes. May be
    /// called before the end (e.g. on the byte that reaches the expected
    /// size) and again later.
    pub fn finish(&self) -> Result<(), NarMismatch> {
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        let actual = NarHash::new(digest);
        let hash_ok = self.expected_hash.is_none_or(|h| h == actual);
        if hash_ok && self.seen == self.expected_size {
            return Ok(());
        }
        Err(NarMismatch {
            path: self.path.clone(),
            expected_hash: self.expected_hash.map(|h| h.to_sri()),
            actual_hash: actual.to_sri(),
            expected_size: self.expected_size,
            actual_size: self.seen,
        })
    }
}
