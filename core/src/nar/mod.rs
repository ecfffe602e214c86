//! NAR (Nix ARchive) framing.
//!
//! Some replies carry a NAR with no length in front of it (the serve protocol's
//! `DumpStorePath`, each path of `ImportPaths`). The only way to know where such
//! a NAR ends is to follow its grammar. [`NarFramer`] does exactly that and no
//! more: it is fed bytes as they arrive, says how many of them belong to the
//! NAR, and keeps only the small tokens it needs to decide (names, keywords),
//! skipping file contents by counting. Memory is therefore bounded by the
//! nesting depth and the longest name, never by the size of the archive.

mod framer;
mod node;

pub use framer::{NarError, NarFramer};
pub use node::Node;
