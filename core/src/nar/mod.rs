//! NAR (Nix ARchive) framing.
//!
//! Some replies carry a NAR with no length in front of it (the serve protocol's
//! `DumpStorePath`, each path of `ImportPaths`). The only way to know where such
//! a NAR ends is to follow its grammar. [`NarFramer`] does exactly that: it is
//! fed bytes as they arrive, says how many of them belong to the NAR, and keeps
//! only the small tokens it needs to decide (names, targets, keywords),
//! skipping file contents by counting. Memory is therefore bounded by the
//! [`NarLimits`], never by the size of the archive.
//!
//! A program that copies a path must not pass on an archive that the
//! receiving Nix would refuse, so the framer refuses what Nix's own NAR parser
//! refuses, for the same reason: bad names (empty, `.`, `..`, with `/` or NUL,
//! unsorted or repeated, longer than 255 bytes), bad symlink targets (empty,
//! with NUL, longer than 4095 bytes), a regular file without `contents`, a node
//! 64 directories deep, non-zero padding. The numeric bounds are Nix's
//! defaults in [`NarLimits`] and can be changed with
//! [`NarFramer::with_limits`].
//!
//! One rule of Nix's is not applied: on macOS (`use-case-hack`), Nix also
//! refuses a directory whose names collide with the suffixes it gives to names
//! differing only in case. That depends on the receiving machine's setting,
//! and checking it needs every name of a directory at once, which the framer
//! does not keep.
//!
//! [`NarEncoder`] goes the other way: the framing of an archive written while
//! a host walks a file tree, the contents streamed by the host.

mod encoder;
mod framer;
mod limits;
mod node;

pub use encoder::NarEncoder;
pub use framer::{NarError, NarFramer};
pub use limits::NarLimits;
pub use node::Node;
