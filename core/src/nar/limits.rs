//! The bounds a NAR must keep, as Nix's NAR parser enforces them.

/// How long names and symlink targets may be and how deep directories may
/// nest in a NAR.
///
/// The defaults are Nix's own: `parse()` in Nix's `src/libutil/archive.cc`
/// (Nix 2.35.0 and later, and the 2.30.5, 2.31.5, 2.32.8, 2.33.6 and 2.34.7
/// point releases) refuses any archive that goes beyond them. A store that
/// receives such an archive refuses the whole path, so the default framer
/// refuses it too, before the bytes reach a store. Raise a bound only to
/// read archives that no current Nix would accept; lowering one refuses
/// archives that Nix accepts.
///
/// A name or target is checked against its bound as soon as its length word
/// arrives, so a raised bound never allocates ahead of the bytes actually
/// received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NarLimits {
    /// The longest directory entry name, in bytes. Default 255: Nix's
    /// `narMaxName`, which Nix describes as a bound of the format itself,
    /// deliberately independent of the host's `NAME_MAX`.
    pub max_name: u64,
    /// The longest symlink target, in bytes. Default 4095: Nix's
    /// `narMaxTarget` (the format's bound, independent of the host's
    /// `PATH_MAX`).
    pub max_target: u64,
    /// How many directories may enclose a node, exclusive: a node with this
    /// many directories above it (or more) is refused. The root is at depth
    /// 0, so with the default of 64 a file may lie 63 directories down and 64
    /// directories may nest as long as the innermost is empty. Default 64:
    /// Nix's `narMaxDepth`, which bounds the stack of its recursive parser;
    /// Nix refuses a node at depth `narMaxDepth` or more before reading it,
    /// and its `dumpPath` refuses to write one.
    pub max_depth: usize,
}

impl Default for NarLimits {
    /// Nix's limits (see each field).
    fn default() -> Self {
        Self {
            max_name: 255,
            max_target: 4095,
            max_depth: 64,
        }
    }
}
