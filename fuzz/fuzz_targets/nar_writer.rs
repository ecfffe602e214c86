//! The NAR writer (`nar::NarEncoder`, through `Node::to_nar`) checked
//! against the framer: a tree the fuzzer shapes is written out, and the
//! archive must be taken whole by `nar::NarFramer`, fed in fuzzer-chosen
//! reads, ending exactly at its last byte. A writer that frames a name, a
//! padding or a directory's end wrongly, or a framer that refuses what a
//! correct writer produces, fails here.
//!
//! Input: `[split seed][tree program...]`. The program is read a byte at a
//! time by [`node`]: each node's kind, then its size and bytes. Names are
//! made valid (non-empty, no `/`, NUL, `.` or `..`, sorted and unique) and
//! nesting stays within Nix's depth bound, so every tree is one that Nix
//! would write.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nixwire_core::nar::{NarFramer, Node};

/// How deep the program may nest directories: below the framer's default
/// bound of 64, so that every tree is acceptable.
const MAX_DEPTH: usize = 40;

/// Reads the next byte of the program; 0 once it has run out.
fn next(program: &mut &[u8]) -> u8 {
    match program.split_first() {
        Some((&b, rest)) => {
            *program = rest;
            b
        }
        None => 0,
    }
}

/// `len` bytes of the program mapped into `alphabet`.
fn text(program: &mut &[u8], len: usize, alphabet: &[u8]) -> Vec<u8> {
    (0..len)
        .map(|_| alphabet[usize::from(next(program)) % alphabet.len()])
        .collect()
}

fn node(program: &mut &[u8], depth: usize) -> Node {
    let op = next(program);
    match op % 3 {
        0 => {
            // Contents come from the program, as far as it goes: zeros past
            // its end would make large archives of nothing new.
            let len = usize::from(next(program)) * usize::from(op >> 4);
            let (contents, rest) = program.split_at(len.min(program.len()));
            let contents = contents.to_vec();
            *program = rest;
            Node::Regular {
                executable: op & 4 != 0,
                contents,
            }
        }
        1 => {
            let len = 1 + usize::from(next(program) % 64);
            Node::Symlink {
                target: text(program, len, b"abcdefghijklmnopqrstuvwxyz0123456789./-_"),
            }
        }
        _ if depth >= MAX_DEPTH => Node::Directory(Vec::new()),
        _ => {
            // Entries only while the program lasts: past its end every
            // entry would be the same empty file, and a tree of thousands
            // of them costs time without adding a shape.
            let mut entries: Vec<(Vec<u8>, Node)> = Vec::new();
            for _ in 0..op >> 4 {
                if program.is_empty() {
                    break;
                }
                let len = 1 + usize::from(next(program) % 16);
                let mut name = text(program, len, b"abcdefghijklmnopqrstuvwxyz0123456789._-+=");
                if name == b"." || name == b".." {
                    name.push(b'x');
                }
                entries.push((name, node(program, depth + 1)));
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|a, b| a.0 == b.0);
            Node::Directory(entries)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [split, program @ ..] = data else {
        return;
    };
    let nar = node(&mut &program[..], 0).to_nar();
    let mut framer = NarFramer::new();
    let mut taken = 0;
    for chunk in nixwire_fuzz::chunks(*split, &nar) {
        let used = framer
            .feed(&chunk)
            .unwrap_or_else(|e| panic!("the framer refused the writer's archive at {taken}: {e}"));
        taken += used;
        assert_eq!(used, chunk.len(), "the archive ended before its last byte");
    }
    assert!(framer.is_done(), "the archive did not end");
    assert_eq!(taken, nar.len());
});
