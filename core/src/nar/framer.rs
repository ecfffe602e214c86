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

use crate::wire::show_bytes;

/// The longest token the framer will hold: names are at most 255 bytes and
/// symlink targets at most `PATH_MAX` on the systems Nix supports.
const MAX_TOKEN: u64 = 4096;

/// The deepest directory nesting accepted, so that a hostile archive cannot
/// grow the framer's stack without bound.
const MAX_DEPTH: usize = 1024;

/// Why bytes are not a valid NAR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NarError {
    /// A keyword other than the ones the grammar allows here.
    #[error("NAR at byte {offset}: expected {expected}, found {found}")]
    Unexpected {
        /// Where in the archive the token starts.
        offset: u64,
        /// The tokens accepted here.
        expected: &'static str,
        /// The token that came, rendered for a human.
        found: String,
    },
    /// A name or target longer than any real file system allows.
    #[error("NAR at byte {offset}: a token of {len} bytes exceeds the limit of {MAX_TOKEN}")]
    TokenTooLong {
        /// Where in the archive the token starts.
        offset: u64,
        /// The length the archive claimed.
        len: u64,
    },
    /// Directories nested deeper than the framer accepts.
    #[error("NAR nests directories deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A directory entry name that is empty, `.`, `..`, contains `/` or NUL, or
    /// is not in strictly increasing order.
    #[error("NAR at byte {offset}: invalid directory entry name {name}: {why}")]
    BadName {
        /// Where in the archive the name starts.
        offset: u64,
        /// The name, rendered for a human.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Non-zero bytes where the format puts zero padding.
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

/// Finds where a NAR ends while its bytes stream past.
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
    /// A framer at the start of an archive.
    pub fn new() -> Self {
        Self {
            expect: Expect::Magic,
            reading: Reading::Int { have: 0 },
            int_buf: [0; 8],
            token: Vec::new(),
            token_start: 0,
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
                    let want = (len as usize).saturating_sub(self.token.len());
                    let take = rest.len().min(want);
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
        if value > MAX_TOKEN {
            return Err(NarError::TokenTooLong {
                offset: start,
                len: value,
            });
        }
        self.token.clear();
        self.reading = Reading::Token { len: value };
        if value == 0 {
            self.reading = Reading::Int { have: 0 };
            self.on_token()?;
        }
        Ok(())
    }

    fn unexpected(&self, expected: &'static str) -> NarError {
        NarError::Unexpected {
            offset: self.token_start,
            expected,
            found: show_bytes(&self.token),
        }
    }

    fn keyword(&self, word: &'static str, expected: &'static str) -> Result<(), NarError> {
        if self.token == word.as_bytes() {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// A whole token has been read: advance the grammar.
    fn on_token(&mut self) -> Result<(), NarError> {
        self.expect = match self.expect {
            Expect::Magic => {
                self.keyword("nix-archive-1", "the NAR magic \"nix-archive-1\"")?;
                Expect::Open
            }
            Expect::Open => {
                self.keyword("(", "\"(\"")?;
                Expect::Type
            }
            Expect::Type => {
                self.keyword("type", "\"type\"")?;
                Expect::TypeValue
            }
            Expect::TypeValue => match self.token.as_slice() {
                b"regular" => Expect::RegularAttr,
                b"symlink" => Expect::SymlinkTarget,
                b"directory" => {
                    if self.dirs.len() >= MAX_DEPTH {
                        return Err(NarError::TooDeep);
                    }
                    self.dirs.push(Vec::new());
                    Expect::DirEntryOrClose
                }
                _ => return Err(self.unexpected("\"regular\", \"symlink\" or \"directory\"")),
            },
            Expect::RegularAttr => match self.token.as_slice() {
                b"executable" => Expect::ExecutableEmpty,
                b"contents" => Expect::ContentsLen,
                b")" => return self.close_node(),
                _ => return Err(self.unexpected("\"executable\", \"contents\" or \")\"")),
            },
            Expect::ExecutableEmpty => {
                self.keyword("", "an empty string after \"executable\"")?;
                Expect::Contents
            }
            Expect::Contents => match self.token.as_slice() {
                b"contents" => Expect::ContentsLen,
                b")" => return self.close_node(),
                _ => return Err(self.unexpected("\"contents\" or \")\"")),
            },
            Expect::Close => {
                self.keyword(")", "\")\"")?;
                return self.close_node();
            }
            Expect::SymlinkTarget => {
                self.keyword("target", "\"target\"")?;
                Expect::SymlinkValue
            }
            Expect::SymlinkValue => Expect::Close,
            Expect::DirEntryOrClose => match self.token.as_slice() {
                b"entry" => Expect::EntryOpen,
                b")" => {
                    self.dirs.pop();
                    return self.close_node();
                }
                _ => return Err(self.unexpected("\"entry\" or \")\"")),
            },
            Expect::EntryOpen => {
                self.keyword("(", "\"(\"")?;
                Expect::EntryName
            }
            Expect::EntryName => {
                self.keyword("name", "\"name\"")?;
                Expect::EntryNameValue
            }
            Expect::EntryNameValue => {
                self.check_name()?;
                Expect::EntryNode
            }
            Expect::EntryNode => {
                self.keyword("node", "\"node\"")?;
                Expect::Open
            }
            Expect::EntryClose => {
                self.keyword(")", "\")\" closing a directory entry")?;
                Expect::DirEntryOrClose
            }
            // File contents are counted in `on_int`, never read as a token.
            Expect::ContentsLen => return Err(self.unexpected("file contents")),
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
