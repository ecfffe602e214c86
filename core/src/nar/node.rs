//! An in-memory file tree and its NAR serialisation, for tests, examples and
//! benchmarks that need archives. Real archives stream through [`NarFramer`](super::NarFramer)
//! and are never held as a `Node`.

use crate::wire::encode_bytes;

/// A file-system object as a NAR describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file.
    Regular {
        /// Whether the executable bit is set.
        executable: bool,
        /// The file's bytes.
        contents: Vec<u8>,
    },
    /// A symbolic link.
    Symlink {
        /// Where it points.
        target: Vec<u8>,
    },
    /// A directory; entries must be sorted by name and names unique.
    Directory(Vec<(Vec<u8>, Self)>),
}

impl Node {
    /// The whole archive for this tree.
    pub fn to_nar(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_bytes(b"nix-archive-1", &mut out);
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        let tok = |t: &[u8], out: &mut Vec<u8>| encode_bytes(t, out);
        tok(b"(", out);
        tok(b"type", out);
        match self {
            Self::Regular {
                executable,
                contents,
            } => {
                tok(b"regular", out);
                if *executable {
                    tok(b"executable", out);
                    tok(b"", out);
                }
                tok(b"contents", out);
                tok(contents, out);
            }
            Self::Symlink { target } => {
                tok(b"symlink", out);
                tok(b"target", out);
                tok(target, out);
            }
            Self::Directory(entries) => {
                tok(b"directory", out);
                for (name, node) in entries {
                    tok(b"entry", out);
                    tok(b"(", out);
                    tok(b"name", out);
                    tok(name, out);
                    tok(b"node", out);
                    node.write(out);
                    tok(b")", out);
                }
            }
        }
        tok(b")", out);
    }
}
