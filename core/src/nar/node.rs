//! An in-memory file tree and its NAR serialisation, for tests, examples and
//! benchmarks that need archives. Real archives stream through [`NarFramer`](super::NarFramer)
//! and are never held as a `Node`.

use super::NarEncoder;

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
        let mut enc = NarEncoder::new();
        let mut out = Vec::new();
        self.write(&mut enc, &mut out);
        out.extend_from_slice(&enc.take());
        out
    }

    fn write(&self, enc: &mut NarEncoder, out: &mut Vec<u8>) {
        match self {
            Self::Regular {
                executable,
                contents,
            } => {
                enc.regular(*executable, contents.len() as u64);
                out.extend_from_slice(&enc.take());
                out.extend_from_slice(contents);
                enc.contents_end(contents.len() as u64);
            }
            Self::Symlink { target } => enc.symlink(target),
            Self::Directory(entries) => {
                enc.directory();
                for (name, node) in entries {
                    enc.entry(name);
                    node.write(enc, out);
                    enc.entry_end();
                }
                enc.directory_end();
            }
        }
    }
}
