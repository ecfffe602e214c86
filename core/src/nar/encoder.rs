//! The framing of a NAR written while a host walks a file tree: [`NarEncoder`].

use bytes::{Bytes, BytesMut};

use crate::wire::{encode_bytes, encode_u64};

/// Writing a NAR while walking a file tree, a piece at a time: the
/// archive's framing comes from this encoder, the file contents from the
/// host, which reads them straight into its output. So a host can serve a
/// local path's NAR from the file system in bounded memory, without a
/// `nix-store --dump` in between.
///
/// The host walks the tree as a NAR orders it (a directory's entries sorted
/// by name, bytewise) and calls, for each node: [`regular`](Self::regular)
/// then the contents then [`contents_end`](Self::contents_end);
/// [`symlink`](Self::symlink); or [`directory`](Self::directory),
/// an [`entry`](Self::entry)/[`entry_end`](Self::entry_end) pair
/// around each child, and [`directory_end`](Self::directory_end).
/// [`take`](Self::take) hands out the framing written so far, to go
/// out before the next contents.
#[derive(Debug)]
pub struct NarEncoder {
    out: Vec<u8>,
}

impl Default for NarEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl NarEncoder {
    /// An archive's start: its magic, before the root node.
    pub fn new() -> Self {
        let mut out = Vec::new();
        encode_bytes(b"nix-archive-1", &mut out);
        Self { out }
    }

    fn tokens(&mut self, tokens: &[&[u8]]) {
        for t in tokens {
            encode_bytes(t, &mut self.out);
        }
    }

    /// A regular file of `size` bytes; its contents come next.
    pub fn regular(&mut self, executable: bool, size: u64) {
        self.tokens(&[b"(", b"type", b"regular"]);
        if executable {
            self.tokens(&[b"executable", b""]);
        }
        self.tokens(&[b"contents"]);
        encode_u64(size, &mut self.out);
    }

    /// After a regular file's `size` bytes of contents: their padding and
    /// the node's end.
    pub fn contents_end(&mut self, size: u64) {
        let pad = crate::wire::padding(size);
        self.out.extend_from_slice(&[0u8; 8][..pad]);
        self.tokens(&[b")"]);
    }

    /// A symbolic link to `target`: the whole node.
    pub fn symlink(&mut self, target: &[u8]) {
        self.tokens(&[b"(", b"type", b"symlink", b"target", target, b")"]);
    }

    /// A directory's start; its entries come next, sorted by name.
    pub fn directory(&mut self) {
        self.tokens(&[b"(", b"type", b"directory"]);
    }

    /// An entry of the directory being written, named `name`; its node
    /// comes next.
    pub fn entry(&mut self, name: &[u8]) {
        self.tokens(&[b"entry", b"(", b"name", name, b"node"]);
    }

    /// After an entry's node.
    pub fn entry_end(&mut self) {
        self.tokens(&[b")"]);
    }

    /// After a directory's last entry.
    pub fn directory_end(&mut self) {
        self.tokens(&[b")"]);
    }

    /// The framing written since the last call.
    pub fn take(&mut self) -> Bytes {
        BytesMut::from(&std::mem::take(&mut self.out)[..]).freeze()
    }

    /// How many bytes of framing wait to be taken.
    pub fn pending(&self) -> usize {
        self.out.len()
    }
}
