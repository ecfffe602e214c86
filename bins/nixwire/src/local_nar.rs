//! A local store path's NAR read straight from the file system, for the
//! copies whose source is a store on this machine: the bytes go from the
//! page cache into the copy's pipe, without a `nix-daemon` dumping them
//! through another pipe first. The framing comes from the core's
//! [`NarEncoder`]; this module only walks the tree.
//!
//! [`NarPieces`] yields the archive in pieces of at most [`PIECE`] bytes,
//! in NAR order (a directory's entries sorted by name, bytewise). Its file
//! reads are blocking reads of local files: an async caller does them on
//! its own thread, where they cost what a page-cache copy costs. What it
//! produces is checked like any NAR of a copy (`NarCheck`): a file changed
//! behind the store's back is refused, not sent.

use std::fs::{File, ReadDir};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use nixwire_core::nar::NarEncoder;

/// The most bytes of file contents in one piece.
pub(crate) const PIECE: usize = 64 * 1024;

/// A directory being walked: its entries, sorted, still to write.
struct Dir {
    entries: std::vec::IntoIter<(Vec<u8>, PathBuf)>,
}

/// A regular file being read.
struct Open {
    file: File,
    size: u64,
    left: u64,
    path: PathBuf,
}

/// The NAR of a file tree, in pieces (see the [module docs](self)).
pub(crate) struct NarPieces {
    enc: NarEncoder,
    dirs: Vec<Dir>,
    file: Option<Open>,
}

impl NarPieces {
    /// The NAR of the tree at `path` (not followed if it is a symlink).
    pub(crate) fn new(path: &Path) -> io::Result<Self> {
        let mut pieces = Self {
            enc: NarEncoder::new(),
            dirs: Vec::new(),
            file: None,
        };
        pieces.visit(path)?;
        Ok(pieces)
    }

    /// Writes the framing of the node at `path`, and opens what comes
    /// after it (a file's contents, a directory's entries).
    fn visit(&mut self, path: &Path) -> io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(path)?;
            self.enc.symlink(target.as_os_str().as_bytes());
            self.node_done();
        } else if kind.is_file() {
            let executable = meta.permissions().mode() & 0o100 != 0;
            self.enc.regular(executable, meta.len());
            if meta.len() == 0 {
                self.enc.contents_end(0);
                self.node_done();
            } else {
                self.file = Some(Open {
                    file: File::open(path)?,
                    size: meta.len(),
                    left: meta.len(),
                    path: path.to_owned(),
                });
            }
        } else if kind.is_dir() {
            self.enc.directory();
            let mut entries = sorted(std::fs::read_dir(path)?)?;
            entries.shrink_to_fit();
            self.dirs.push(Dir {
                entries: entries.into_iter(),
            });
        } else {
            return Err(io::Error::other(format!(
                "{} is neither a file, a directory nor a symlink: a NAR cannot hold it",
                path.display()
            )));
        }
        Ok(())
    }

    /// A node is written: close the entry it is in, if any.
    fn node_done(&mut self) {
        if !self.dirs.is_empty() {
            self.enc.entry_end();
        }
    }

    /// The next piece of file contents.
    fn read_contents(&mut self) -> io::Result<Option<Bytes>> {
        let Some(open) = &mut self.file else {
            return Ok(None);
        };
        let want = usize::try_from(open.left).map_or(PIECE, |l| l.min(PIECE));
        let mut buf = BytesMut::zeroed(want);
        let n = open.file.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "{} ended after {} of its {} bytes: it changed while read",
                open.path.display(),
                open.size - open.left,
                open.size
            )));
        }
        buf.truncate(n);
        open.left -= n as u64;
        if open.left == 0 {
            let size = open.size;
            self.file = None;
            self.enc.contents_end(size);
            self.node_done();
        }
        Ok(Some(buf.freeze()))
    }
}

impl Iterator for NarPieces {
    type Item = io::Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // Framing goes out before the contents it precedes.
            if self.enc.pending() > 0 && (self.file.is_some() || self.enc.pending() >= PIECE) {
                return Some(Ok(self.enc.take()));
            }
            if self.file.is_some() {
                return self.read_contents().transpose();
            }
            let Some(dir) = self.dirs.last_mut() else {
                // The root is written.
                return (self.enc.pending() > 0).then(|| Ok(self.enc.take()));
            };
            match dir.entries.next() {
                Some((name, path)) => {
                    self.enc.entry(&name);
                    if let Err(e) = self.visit(&path) {
                        return Some(Err(e));
                    }
                }
                None => {
                    self.dirs.pop();
                    self.enc.directory_end();
                    self.node_done();
                }
            }
        }
    }
}

/// A directory's entries, sorted by name bytewise, as a NAR orders them.
fn sorted(dir: ReadDir) -> io::Result<Vec<(Vec<u8>, PathBuf)>> {
    let mut entries = dir
        .map(|e| e.map(|e| (e.file_name().as_bytes().to_vec(), e.path())))
        .collect::<io::Result<Vec<_>>>()?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// Where the store paths of the local store `spec` (as `--from-store` or
/// `--local-store` name it) are on this machine's file system: under the
/// chroot store's root, or at their own path for the system's store; `None`
/// for a store elsewhere.
pub(crate) fn files_of(spec: &str) -> Option<PathBuf> {
    use nixwire_core::uri::StoreUri;
    match spec.parse::<StoreUri>().ok()? {
        StoreUri::Local { root, .. } => Some(root.unwrap_or_else(|| PathBuf::from("/"))),
        StoreUri::Auto { .. } | StoreUri::Daemon { .. } => Some(PathBuf::from("/")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use nixwire_core::nar::Node;

    use super::*;

    #[test]
    fn a_tree_dumps_as_the_core_writes_it_in_memory() {
        let dir = std::env::temp_dir().join(format!("nixwire-local-nar-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub/empty")).expect("dirs");
        std::fs::write(dir.join("b"), b"bee").expect("b");
        std::fs::write(dir.join("a"), vec![7u8; 200_000]).expect("a");
        std::fs::write(dir.join("sub/run"), b"#!/bin/sh\n").expect("run");
        std::fs::set_permissions(dir.join("sub/run"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::write(dir.join("sub/nothing"), b"").expect("empty file");
        std::os::unix::fs::symlink("../b", dir.join("sub/link")).expect("symlink");

        let pieces: Vec<Bytes> = NarPieces::new(&dir)
            .expect("walk")
            .collect::<io::Result<_>>()
            .expect("read");
        assert!(pieces.iter().all(|p| p.len() <= PIECE.max(4096)));
        let got: Vec<u8> = pieces.concat();

        let file = |contents: &[u8], executable| Node::Regular {
            executable,
            contents: contents.to_vec(),
        };
        let want = Node::Directory(vec![
            (b"a".to_vec(), file(&[7u8; 200_000], false)),
            (b"b".to_vec(), file(b"bee", false)),
            (
                b"sub".to_vec(),
                Node::Directory(vec![
                    (b"empty".to_vec(), Node::Directory(vec![])),
                    (
                        b"link".to_vec(),
                        Node::Symlink {
                            target: b"../b".to_vec(),
                        },
                    ),
                    (b"nothing".to_vec(), file(b"", false)),
                    (b"run".to_vec(), file(b"#!/bin/sh\n", true)),
                ]),
            ),
        ]);
        assert_eq!(got, want.to_nar());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
