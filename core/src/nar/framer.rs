//! The streaming NAR framer.
//!
//! The grammar it follows (every token is a wire string):
//!
//! ```text
//! nar       = "nix-archive-1" node
//! node      = "(" "type" ( regular | symlink | directory ) ")"
//! regular   = "regular" [ "executable" "" ] "contents" <u64 n> <n bytes> <padding>
//! symlink   = "symlink" "target" <string>
//! directory = "directory" { "entry" "(" "name" <string> "node" node ")" }
//! ```
//!
//! and the side conditions Nix's parser (`parse()` in Nix's
//! `src/libutil/archive.cc`) adds, each refused with its own [`NarError`]:
//! entry names are non-empty, not `.` or `..`, free of `/` and NUL, strictly
//! increasing bytewise within a directory, and at most
//! [`NarLimits::max_name`] bytes; symlink targets are non-empty, free of NUL
//! and at most [`NarLimits::max_target`] bytes; no node lies
//! [`NarLimits::max_depth`] directories deep; padding is zero.

use super::NarLimits;
use bytes::Bytes;

use crate::wire::{Inbox, show_bytes};

/// The longest string read where the grammar wants a keyword. Every keyword
/// is at most 13 bytes (the magic), so anything longer is wrong whatever it
/// says; Nix reads keywords with the same 32-byte bound (`narMaxTag`), so a
/// short wrong keyword can still be shown in the error while a long one is
/// refused from its length alone.
const MAX_KEYWORD: u64 = 32;

/// Why bytes are not a valid NAR, or not one that Nix would accept.
///
/// Each refusal corresponds to one of Nix's own (`parse()` in Nix's
/// `src/libutil/archive.cc`), with the byte offset in the archive where the
/// offending part starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NarError {
    /// A keyword other than the ones the grammar allows here (Nix: "expected
    /// tag '...', got '...'", "unknown file type", "input doesn't look like a
    /// Nix archive"). A regular file with no `"contents"` is refused here:
    /// `")"` came where `"contents"` was expected.
    #[error("NAR at byte {offset}: expected {expected}, found {found}")]
    Unexpected {
        /// Where in the archive the token starts.
        offset: u64,
        /// The tokens accepted here.
        expected: &'static str,
        /// The token that came, rendered for a human.
        found: String,
    },
    /// A string longer than any keyword where the grammar wants a keyword;
    /// refused from its length, before its bytes are awaited (Nix: "string is
    /// too long").
    #[error("NAR at byte {offset}: expected {expected}, found a string of {len} bytes")]
    TokenTooLong {
        /// Where in the archive the string (its length word) starts.
        offset: u64,
        /// The tokens accepted here.
        expected: &'static str,
        /// The length the archive claimed.
        len: u64,
    },
    /// A directory entry name longer than [`NarLimits::max_name`] (Nix:
    /// "string is too long").
    #[error(
        "NAR at byte {offset}: expected a directory entry name of at most {max} bytes, \
         found one of {len} bytes"
    )]
    NameTooLong {
        /// Where in the archive the name (its length word) starts.
        offset: u64,
        /// The length the archive claimed.
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// A symlink target longer than [`NarLimits::max_target`] (Nix: "string
    /// is too long").
    #[error(
        "NAR at byte {offset}: expected a symlink target of at most {max} bytes, \
         found one of {len} bytes"
    )]
    TargetTooLong {
        /// Where in the archive the target (its length word) starts.
        offset: u64,
        /// The length the archive claimed.
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// A node with [`NarLimits::max_depth`] directories above it (Nix: "NAR
    /// directory nesting exceeds maximum depth of 64").
    #[error(
        "NAR at byte {offset}: directory nesting exceeds the maximum depth of {max}: \
         found a node {depth} directories deep"
    )]
    TooDeep {
        /// Where in the archive the node starts.
        offset: u64,
        /// How many directories enclose the node.
        depth: usize,
        /// The limit in force: nodes must lie fewer directories deep.
        max: usize,
    },
    /// A directory entry name that is empty, `.`, `..`, contains `/` or NUL
    /// (Nix: "NAR contains invalid file name"), or is not strictly after the
    /// previous entry's name in bytewise order (Nix: "NAR directory is not
    /// sorted").
    #[error("NAR at byte {offset}: invalid directory entry name {name}: {why}")]
    BadName {
        /// Where in the archive the name starts.
        offset: u64,
        /// The name, rendered for a human.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A symlink target that is empty or contains NUL (Nix: "NAR contains
    /// invalid symlink target"). Nix refuses NUL because the link would be
    /// created with the target cut short, so two different archives would
    /// restore to the same tree.
    #[error(
        "NAR at byte {offset}: expected a non-empty symlink target without NUL, \
         found {target}: {why}"
    )]
    BadTarget {
        /// Where in the archive the target starts.
        offset: u64,
        /// The target, rendered for a human.
        target: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Non-zero bytes where the format puts zero padding (Nix: "non-zero
    /// padding").
    #[error("NAR at byte {offset}: non-zero padding")]
    BadPadding {
        /// Where the padding starts.
        offset: u64,
    },
}

/// A grammar position: what the next token must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Magic,
    Open,
    Type,
    TypeValue,
    RegularAttr,
    ExecutableEmpty,
    Contents,
    ContentsLen,
    Close,
    SymlinkTarget,
    SymlinkValue,
    DirEntryOrClose,
    EntryOpen,
    EntryName,
    EntryNameValue,
    EntryNode,
    EntryClose,
}

/// What the byte-level reader is collecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// An 8-byte integer (a string's length or the contents size).
    Int { have: u8 },
    /// The bytes of a token, then its padding.
    Token { len: u64 },
    /// File contents, counted and passed through, never stored.
    Skip { remaining: u64 },
    /// Zero padding after a token (`after_contents: false`) or file contents.
    Pad { remaining: u8, after_contents: bool },
    /// The archive is complete.
    Done,
}

/// Finds where a NAR ends while its bytes stream past, refusing any archive
/// that Nix would refuse.
///
/// Memory is bounded by the [`NarLimits`], never by the archive: the framer
/// holds one token at a time (a keyword, a name of at most
/// [`NarLimits::max_name`] bytes or a target of at most
/// [`NarLimits::max_target`]), plus the last entry name of each open directory
/// (at most [`NarLimits::max_depth`] of them) to check the order of names.
/// File contents are counted as they pass, never stored.
///
/// ```
/// use nixwire_core::nar::NarFramer;
/// use nixwire_core::nar::Node;
/// let nar = Node::Regular { executable: false, contents: b"hello".to_vec() }.to_nar();
/// let mut framer = NarFramer::new();
/// let mut input = nar.clone();
/// input.extend_from_slice(b"bytes of the next message");
/// let used = framer.feed(&input).unwrap();
/// assert_eq!(used, nar.len());
/// assert!(framer.is_done());
/// ```
#[derive(Debug, Clone)]
pub struct NarFramer {
    expect: Expect,
    reading: Reading,
    int_buf: [u8; 8],
    token: Vec<u8>,
    token_start: u64,
    /// The bounds in force, fixed at construction.
    limits: NarLimits,
    /// Per open directory, the last entry name seen (to check the ordering).
    dirs: Vec<Vec<u8>>,
    /// Bytes of archive consumed so far, for error messages.
    offset: u64,
}

impl Default for NarFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl NarFramer {
    /// A framer at the start of an archive, with Nix's limits.
    pub fn new() -> Self {
        Self::with_limits(NarLimits::default())
    }

    /// A framer at the start of an archive, with the given limits.
    ///
    /// ```
    /// use nixwire_core::nar::{NarError, NarFramer, NarLimits, Node};
    /// let deep = Node::Directory(vec![(
    ///     b"d".to_vec(),
    ///     Node::Directory(vec![(b"f".to_vec(), Node::Symlink { target: b"/".to_vec() })]),
    /// )]);
    /// let mut limits = NarLimits::default();
    /// limits.max_depth = 2;
    /// let err = NarFramer::with_limits(limits).feed(&deep.to_nar()).unwrap_err();
    /// assert!(matches!(err, NarError::TooDeep { depth: 2, max: 2, .. }));
    /// ```
    pub fn with_limits(limits: NarLimits) -> Self {
        Self {
            expect: Expect::Magic,
            reading: Reading::Int { have: 0 },
            int_buf: [0; 8],
            token: Vec::new(),
            token_start: 0,
            limits,
            dirs: Vec::new(),
            offset: 0,
        }
    }

    /// Whether the archive has ended.
    pub fn is_done(&self) -> bool {
        self.reading == Reading::Done
    }

    /// How many bytes of archive have been consumed so far.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Takes the archive's next bytes out of a connection's receive buffer,
    /// as one slice of what was received (no copy): the bytes taken, if
    /// any, and the archive's size once it has ended.
    pub fn take_from(
        &mut self,
        inbox: &mut Inbox,
    ) -> Result<(Option<Bytes>, Option<u64>), NarError> {
        let used = self.feed(inbox.pending())?;
        let chunk = (used > 0).then(|| inbox.take(used));
        Ok((chunk, self.is_done().then(|| self.position())))
    }

    /// Consumes the front of `input` that belongs to the archive and returns
    /// its length: all of `input` while the archive goes on, less once it ends
    /// (the rest belongs to whatever follows). Returns 0 once done.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, NarError> {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            let used = match self.reading {
                Reading::Done => break,
                Reading::Int { have } => {
                    if have == 0 {
                        self.token_start = self.offset;
                    }
                    let take = rest.len().min(8 - have as usize);
                    self.int_buf[have as usize..have as usize + take]
                        .copy_from_slice(&rest[..take]);
                    let have = have as usize + take;
                    self.reading = Reading::Int { have: have as u8 };
                    if have == 8 {
                        let value = u64::from_le_bytes(self.int_buf);
                        self.on_int(value)?;
                    }
                    take
                }
                Reading::Token { len } => {
                    // In u64: a raised limit may exceed usize on 32-bit hosts.
                    let want = len - self.token.len() as u64;
                    let take = (rest.len() as u64).min(want) as usize;
                    self.token.extend_from_slice(&rest[..take]);
                    if self.token.len() as u64 == len {
                        self.reading = pad_after(len, false);
                        if self.reading == (Reading::Int { have: 0 }) {
                            self.on_token()?;
                        }
                    }
                    take
                }
                Reading::Skip { remaining } => {
                    let take = (rest.len() as u64).min(remaining);
                    let remaining = remaining - take;
                    self.reading = Reading::Skip { remaining };
                    if remaining == 0 {
                        self.reading = pad_after(self.contents_len(), true);
                        if self.reading == (Reading::Int { have: 0 }) {
                            self.expect = Expect::Close;
                        }
                    }
                    take as usize
                }
                Reading::Pad {
                    remaining,
                    after_contents,
                } => {
                    let take = rest.len().min(remaining as usize);
                    if rest[..take].iter().any(|&b| b != 0) {
                        return Err(NarError::BadPadding {
                            offset: self.offset,
                        });
                    }
                    let remaining = remaining - take as u8;
                    self.reading = Reading::Pad {
                        remaining,
                        after_contents,
                    };
                    if remaining == 0 {
                        self.reading = Reading::Int { have: 0 };
                        if after_contents {
                            self.expect = Expect::Close;
                        } else {
                            self.on_token()?;
                        }
                    }
                    take
                }
            };
            pos += used;
            self.offset += used as u64;
        }
        Ok(pos)
    }

    /// The contents size is kept in `int_buf` while the contents stream by.
    fn contents_len(&self) -> u64 {
        u64::from_le_bytes(self.int_buf)
    }

    /// An integer has been read: a token's length, or the size of file contents.
    fn on_int(&mut self, value: u64) -> Result<(), NarError> {
        let start = self.token_start;
        if self.expect == Expect::ContentsLen {
            // int_buf keeps the size for the padding that follows the contents.
            self.reading = if value == 0 {
                self.expect = Expect::Close;
                Reading::Int { have: 0 }
            } else {
                Reading::Skip { remaining: value }
            };
            return Ok(());
        }
        // Refused from the length word alone: the bytes are neither awaited
        // nor allocated for.
        match self.expect {
            Expect::EntryNameValue if value > self.limits.max_name => {
                return Err(NarError::NameTooLong {
                    offset: start,
                    len: value,
                    max: self.limits.max_name,
                });
            }
            Expect::SymlinkValue if value > self.limits.max_target => {
                return Err(NarError::TargetTooLong {
                    offset: start,
                    len: value,
                    max: self.limits.max_target,
                });
            }
            Expect::EntryNameValue | Expect::SymlinkValue => {}
            expect if value > MAX_KEYWORD => {
                return Err(NarError::TokenTooLong {
                    offset: start,
                    expected: expected(expect),
                    len: value,
                });
            }
            _ => {}
        }
        self.token.clear();
        self.reading = Reading::Token { len: value };
        if value == 0 {
            self.reading = Reading::Int { have: 0 };
            self.on_token()?;
        }
        Ok(())
    }

    fn unexpected(&self) -> NarError {
        NarError::Unexpected {
            offset: self.token_start,
            expected: expected(self.expect),
            found: show_bytes(&self.token),
        }
    }

    fn keyword(&self, word: &'static str) -> Result<(), NarError> {
        if self.token == word.as_bytes() {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// Where the byte after the current token (and its padding) is.
    fn token_end(&self) -> u64 {
        let len = self.token.len() as u64;
        self.token_start + 8 + len + crate::wire::padding(len) as u64
    }

    /// A node is about to start, below every open directory. Checked before
    /// the node's first token, as Nix does, so the depth is refused whatever
    /// follows.
    fn enter_node(&self) -> Result<(), NarError> {
        let depth = self.dirs.len();
        if depth >= self.limits.max_depth {
            return Err(NarError::TooDeep {
                offset: self.token_end(),
                depth,
                max: self.limits.max_depth,
            });
        }
        Ok(())
    }

    /// A whole token has been read: advance the grammar.
    fn on_token(&mut self) -> Result<(), NarError> {
        self.expect = match self.expect {
            Expect::Magic => {
                self.keyword("nix-archive-1")?;
                self.enter_node()?;
                Expect::Open
            }
            Expect::Open => {
                self.keyword("(")?;
                Expect::Type
            }
            Expect::Type => {
                self.keyword("type")?;
                Expect::TypeValue
            }
            Expect::TypeValue => match self.token.as_slice() {
                b"regular" => Expect::RegularAttr,
                b"symlink" => Expect::SymlinkTarget,
                b"directory" => {
                    // Bounded by max_depth: enter_node refused any deeper node.
                    self.dirs.push(Vec::new());
                    Expect::DirEntryOrClose
                }
                _ => return Err(self.unexpected()),
            },
            // A regular file always has contents, empty or not: Nix refuses
            // `")"` here (since 2.32), so a file cannot be written without
            // saying how long it is.
            Expect::RegularAttr => match self.token.as_slice() {
                b"executable" => Expect::ExecutableEmpty,
                b"contents" => Expect::ContentsLen,
                _ => return Err(self.unexpected()),
            },
            Expect::ExecutableEmpty => {
                self.keyword("")?;
                Expect::Contents
            }
            Expect::Contents => {
                self.keyword("contents")?;
                Expect::ContentsLen
            }
            Expect::Close => {
                self.keyword(")")?;
                return self.close_node();
            }
            Expect::SymlinkTarget => {
                self.keyword("target")?;
                Expect::SymlinkValue
            }
            Expect::SymlinkValue => {
                self.check_target()?;
                Expect::Close
            }
            Expect::DirEntryOrClose => match self.token.as_slice() {
                b"entry" => Expect::EntryOpen,
                b")" => {
                    self.dirs.pop();
                    return self.close_node();
                }
                _ => return Err(self.unexpected()),
            },
            Expect::EntryOpen => {
                self.keyword("(")?;
                Expect::EntryName
            }
            Expect::EntryName => {
                self.keyword("name")?;
                Expect::EntryNameValue
            }
            Expect::EntryNameValue => {
                self.check_name()?;
                Expect::EntryNode
            }
            Expect::EntryNode => {
                self.keyword("node")?;
                self.enter_node()?;
                Expect::Open
            }
            Expect::EntryClose => {
                self.keyword(")")?;
                Expect::DirEntryOrClose
            }
            // File contents are counted in `on_int`, never read as a token.
            Expect::ContentsLen => return Err(self.unexpected()),
        };
        Ok(())
    }

    /// A node has ended: either the whole archive, or a directory entry.
    fn close_node(&mut self) -> Result<(), NarError> {
        if self.dirs.is_empty() {
            self.reading = Reading::Done;
        } else {
            self.expect = Expect::EntryClose;
        }
        Ok(())
    }

    /// Nix's rules for an entry name: a single path component, and each
    /// directory's names strictly increasing bytewise (so names are unique
    /// and the archive of a tree is unique). The length was checked in
    /// `on_int`.
    fn check_name(&mut self) -> Result<(), NarError> {
        let name = self.token.as_slice();
        let why = if name.is_empty() {
            Some("empty")
        } else if name == b"." || name == b".." {
            Some("a special name")
        } else if name.contains(&b'/') || name.contains(&0) {
            Some("contains '/' or NUL")
        } else {
            None
        };
        let bad = |why| NarError::BadName {
            offset: self.token_start,
            name: show_bytes(name),
            why,
        };
        if let Some(why) = why {
            return Err(bad(why));
        }
        let Some(last) = self.dirs.last_mut() else {
            return Err(bad("outside a directory"));
        };
        if !last.is_empty() && name <= last.as_slice() {
            return Err(bad("not after the previous entry in sorted order"));
        }
        last.clear();
        last.extend_from_slice(name);
        Ok(())
    }

    /// Nix refuses an empty target (no link can be made with one) and a NUL
    /// (the link would be made with the target cut short, so two archives
    /// would restore to the same tree).
    fn check_target(&self) -> Result<(), NarError> {
        let target = self.token.as_slice();
        let why = if target.is_empty() {
            "empty"
        } else if target.contains(&0) {
            "contains NUL"
        } else {
            return Ok(());
        };
        Err(NarError::BadTarget {
            offset: self.token_start,
            target: show_bytes(target),
            why,
        })
    }
}

/// What the grammar accepts at `expect`, for error messages.
fn expected(expect: Expect) -> &'static str {
    match expect {
        Expect::Magic => "the NAR magic \"nix-archive-1\"",
        Expect::Open | Expect::EntryOpen => "\"(\"",
        Expect::Type => "\"type\"",
        Expect::TypeValue => "\"regular\", \"symlink\" or \"directory\"",
        Expect::RegularAttr => "\"executable\" or \"contents\"",
        Expect::ExecutableEmpty => "an empty string after \"executable\"",
        Expect::Contents => "\"contents\"",
        Expect::ContentsLen => "file contents",
        Expect::Close => "\")\"",
        Expect::SymlinkTarget => "\"target\"",
        Expect::SymlinkValue => "a symlink target",
        Expect::DirEntryOrClose => "\"entry\" or \")\"",
        Expect::EntryName => "\"name\"",
        Expect::EntryNameValue => "a directory entry name",
        Expect::EntryNode => "\"node\"",
        Expect::EntryClose => "\")\" closing a directory entry",
    }
}

/// The reader state after a token or contents of `len` bytes: padding, or
/// straight on to the next integer.
fn pad_after(len: u64, after_contents: bool) -> Reading {
    match crate::wire::padding(len) {
        0 => Reading::Int { have: 0 },
        n => Reading::Pad {
            remaining: n as u8,
            after_contents,
        },
    }
}
