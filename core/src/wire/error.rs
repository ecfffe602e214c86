//! The decode error: what a decoder expected and what it found instead.

use std::fmt;

/// Why bytes could not be decoded.
///
/// Every variant says what was expected and what came, because the usual reader
/// of this error is a person looking at a log line, not a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// A length or count prefix is larger than the configured [`Limits`](super::Limits).
    #[error("{what} of {found} exceeds the limit of {limit}")]
    TooLarge {
        /// What the prefix counts ("string length", "item count").
        what: &'static str,
        /// The value the peer sent.
        found: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A value is well-framed but not one of the values allowed here.
    #[error("expected {expected}, found {found}")]
    Unexpected {
        /// What would have been accepted.
        expected: String,
        /// What came instead, rendered for a human.
        found: String,
    },
    /// The input ended inside a value that had to be complete (a data file,
    /// a recorded stream).
    #[error("the input ends at byte {at}, inside the value")]
    Truncated {
        /// How many bytes were consumed before the end.
        at: u64,
    },
}

/// One step of the path to where a decode failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Name(&'static str),
    Index(usize),
}

/// A decode error together with the path of fields that led to it
/// (`BuildResult.built_outputs`, say), innermost last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What went wrong.
    pub kind: DecodeErrorKind,
    context: Vec<Step>,
}

impl DecodeError {
    /// An error of the given kind with no context yet.
    pub fn new(kind: DecodeErrorKind) -> Self {
        Self {
            kind,
            context: Vec::new(),
        }
    }

    /// A value that was not one of the accepted ones.
    pub fn unexpected(expected: impl Into<String>, found: impl Into<String>) -> Self {
        Self::new(DecodeErrorKind::Unexpected {
            expected: expected.into(),
            found: found.into(),
        })
    }

    /// Records that the error happened while decoding `what`; outer callers add
    /// their names after inner ones.
    #[must_use]
    pub fn within(mut self, what: &'static str) -> Self {
        self.context.push(Step::Name(what));
        self
    }

    /// Records that the error happened in item `index` of a list.
    #[must_use]
    pub fn within_index(mut self, index: usize) -> Self {
        self.context.push(Step::Index(index));
        self
    }

    /// The field path, outermost first (`BuildResult.built_outputs[2]`).
    pub fn path(&self) -> String {
        let mut out = String::new();
        for step in self.context.iter().rev() {
            match step {
                Step::Name(n) if out.is_empty() => out.push_str(n),
                Step::Name(n) => {
                    out.push('.');
                    out.push_str(n);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.context.is_empty() {
            write!(f, "in {}: ", self.path())?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for DecodeError {}

/// Renders bytes for an error message: the printable text they start with (a
/// login banner or a shell rc file's chatter), then the rest in hex.
pub fn show_bytes(bytes: &[u8]) -> String {
    const SHOWN: usize = 64;
    let printable = |b: &u8| b.is_ascii_graphic() || b" \t\r\n".contains(b);
    let text_len = bytes.iter().take_while(|b| printable(b)).count().min(SHOWN);
    let (text, rest) = bytes.split_at(text_len);
    let hex_len = rest.len().min(SHOWN.saturating_sub(text_len).max(16));
    let hex: String = rest[..hex_len].iter().map(|b| format!("{b:02x}")).collect();
    let more = if rest.len() > hex_len { "…" } else { "" };
    match (text.is_empty(), rest.is_empty()) {
        (true, true) => "nothing".to_owned(),
        (false, true) => format!("{:?}", String::from_utf8_lossy(text)),
        (true, false) => format!("0x{hex}{more}"),
        (false, false) => format!(
            "{:?} followed by 0x{hex}{more}",
            String::from_utf8_lossy(text)
        ),
    }
}
