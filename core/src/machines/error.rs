//! Errors and warnings produced while reading machines files.
//!
//! Every error carries a [`Location`] (file, line, column), the offending
//! token and a description of what was expected there, so that an operator
//! never has to guess which of several columns a bare conversion message is
//! about (NixOS/nix#4703 reported exactly such a bare "stoull").
//!
//! Warnings do not stop parsing. They flag entries that Hydra's legacy
//! parser (before Hydra switched to Nix's parser in 2024) read differently,
//! so that an operator moving a Hydra machines file over sees what changes.

use std::fmt;
use std::io;

use thiserror::Error;

/// A position inside a machines source, for errors and warnings.
///
/// Lines and columns count from 1; columns count characters, not bytes, so
/// that they match what an editor shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Location {
    /// Name of the source: a file path as given, or a label such as
    /// `<builders>` for text that did not come from a file.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// 1-based character column.
    pub column: usize,
}

impl Location {
    /// Location of byte offset `offset` inside `text`, which came from `file`.
    ///
    /// An offset past the end or inside a multi-byte character is clamped to
    /// the nearest preceding character boundary rather than panicking, since
    /// offsets may come from a third-party parser.
    pub fn at_offset(file: &str, text: &str, offset: usize) -> Self {
        LocationCursor::new(file, text, 1).at(offset)
    }
}

/// Turns byte offsets in one text into [`Location`]s, walking the text
/// incrementally.
///
/// Computing each location from the start of the text costs time in the
/// length of everything before it, so a source with many entries on one
/// line (or many TOML machines) became quadratic. The cursor remembers
/// where it got to: offsets asked for in increasing order cost one pass
/// over the text in all, and stepping back costs only the distance stepped
/// back (within a line; across a line break it starts over).
#[derive(Debug, Clone)]
pub(crate) struct LocationCursor<'a> {
    file: &'a str,
    text: &'a str,
    /// Line number of the text's first line.
    first_line: usize,
    /// Byte offset reached, always on a character boundary.
    offset: usize,
    /// Line and column at `offset`.
    line: usize,
    column: usize,
}

impl<'a> LocationCursor<'a> {
    /// A cursor over `text` from source `file`, whose first line is line
    /// `first_line` of that source (1 for a whole source).
    pub(crate) fn new(file: &'a str, text: &'a str, first_line: usize) -> Self {
        Self {
            file,
            text,
            first_line,
            offset: 0,
            line: first_line,
            column: 1,
        }
    }

    /// Location of byte offset `offset`.
    ///
    /// An offset past the end or inside a multi-byte character is clamped to
    /// the nearest preceding character boundary rather than panicking, since
    /// offsets may come from a third-party parser.
    pub(crate) fn at(&mut self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        if offset < self.offset {
            let back = self.text.get(offset..self.offset).unwrap_or("");
            if back.contains('\n') {
                self.offset = 0;
                self.line = self.first_line;
                self.column = 1;
            } else {
                self.column = self.column.saturating_sub(back.chars().count());
                self.offset = offset;
            }
        }
        let ahead = self.text.get(self.offset..offset).unwrap_or("");
        match ahead.rfind('\n') {
            Some(last) => {
                self.line += ahead.matches('\n').count();
                // `\n` is one byte, so `last + 1` is a character boundary.
                self.column = ahead.get(last + 1..).map_or(0, |s| s.chars().count()) + 1;
            }
            None => self.column += ahead.chars().count(),
        }
        self.offset = offset;
        Location {
            file: self.file.to_owned(),
            line: self.line,
            column: self.column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The columns of the line format, named for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Column {
    /// Column 1: store URI or ssh host name.
    Uri,
    /// Column 2: comma-separated systems.
    Systems,
    /// Column 3: path of the ssh private key.
    SshKey,
    /// Column 4: maximum number of concurrent jobs.
    MaxJobs,
    /// Column 5: speed factor.
    SpeedFactor,
    /// Column 6: comma-separated supported features.
    SupportedFeatures,
    /// Column 7: comma-separated mandatory features.
    MandatoryFeatures,
    /// Column 8: base64-encoded ssh public host key.
    SshPublicHostKey,
}

impl Column {
    /// 1-based column number in the line format.
    pub fn number(self) -> usize {
        match self {
            Self::Uri => 1,
            Self::Systems => 2,
            Self::SshKey => 3,
            Self::MaxJobs => 4,
            Self::SpeedFactor => 5,
            Self::SupportedFeatures => 6,
            Self::MandatoryFeatures => 7,
            Self::SshPublicHostKey => 8,
        }
    }

    /// Name of the column as used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uri => "store URI",
            Self::Systems => "systems",
            Self::SshKey => "ssh key",
            Self::MaxJobs => "max jobs",
            Self::SpeedFactor => "speed factor",
            Self::SupportedFeatures => "supported features",
            Self::MandatoryFeatures => "mandatory features",
            Self::SshPublicHostKey => "ssh public host key",
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column #{} ({})", self.number(), self.name())
    }
}

/// Why a machines source could not be read.
#[derive(Debug, Error)]
pub enum MachinesError {
    /// A column of the line format holds a value that does not convert.
    #[error("{at}: bad machine specification: {column} is `{token}`, expected {expected}")]
    BadColumn {
        /// Where the offending token starts.
        at: Location,
        /// Which column it is.
        column: Column,
        /// The token as written.
        token: String,
        /// What would have been accepted.
        expected: String,
    },
    /// An `@path` include names a file that is already being read.
    #[error(
        "{at}: include cycle: `{token}` is already being read (via {chain}), expected a file not on the include chain"
    )]
    IncludeCycle {
        /// Where the `@path` entry starts.
        at: Location,
        /// The path as written after `@`.
        token: String,
        /// The files being read, outermost first, joined with ` -> `.
        chain: String,
    },
    /// Includes are nested deeper than [`MAX_INCLUDE_DEPTH`](super::MAX_INCLUDE_DEPTH).
    #[error(
        "{at}: includes nested more than {limit} deep at `{token}`, expected at most {limit} levels"
    )]
    IncludeTooDeep {
        /// Where the `@path` entry starts.
        at: Location,
        /// The path as written after `@`.
        token: String,
        /// The nesting limit.
        limit: usize,
    },
    /// Following one more `@path` include would read included files more
    /// often than [`ParseOptions::max_include_reads`](super::ParseOptions::max_include_reads)
    /// allows.
    ///
    /// Without this budget, files that each include the next one twice make
    /// the work double with every level of nesting.
    #[error(
        "{at}: too many included files: `{token}`, included via {chain}, would be read after {limit} reads of included files, expected at most {limit} in all (budget `max_include_reads`)"
    )]
    TooManyIncludeReads {
        /// Where the `@path` entry starts.
        at: Location,
        /// The path as written after `@`.
        token: String,
        /// The sources being read, outermost (the top-level source) first,
        /// ending with the one holding the `@path` entry, joined with ` -> `.
        chain: String,
        /// The budget of reads of included files.
        limit: usize,
    },
    /// Reading one more machine would exceed
    /// [`ParseOptions::max_machines`](super::ParseOptions::max_machines).
    #[error(
        "{at}: too many machines: this entry, in {chain}, would be machine number {count}, expected at most {limit} in all (budget `max_machines`)"
    )]
    TooManyMachines {
        /// Where the entry (or TOML machine table) starts.
        at: Location,
        /// The sources being read, outermost (the top-level source) first,
        /// ending with the one holding the entry, joined with ` -> `.
        chain: String,
        /// Which machine this would have been, counting from 1.
        count: usize,
        /// The budget of machines.
        limit: usize,
    },
    /// An included file exists but could not be read.
    #[error("{at}: cannot read included file `{token}`: {source}")]
    Read {
        /// Where the `@path` entry starts.
        at: Location,
        /// The path as written after `@`.
        token: String,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A TOML machines file is malformed or does not match Lix's schema.
    #[error("{at}: bad TOML machines file at `{token}`: {message}")]
    Toml {
        /// Where the offending TOML starts.
        at: Location,
        /// The offending TOML text (possibly shortened).
        token: String,
        /// What the TOML reader expected, in its own words.
        message: String,
    },
    /// The text is neither a valid line-format file nor a valid TOML file.
    ///
    /// Both errors are kept, since which format was meant cannot be known.
    #[error("{legacy}\n  (read as TOML instead: {toml})")]
    NeitherFormat {
        /// The error from the line format.
        legacy: Box<Self>,
        /// The error from the TOML format.
        toml: Box<Self>,
    },
}

impl MachinesError {
    /// Where the error was found (for [`MachinesError::NeitherFormat`], the
    /// location of the line-format error).
    pub fn location(&self) -> &Location {
        match self {
            Self::BadColumn { at, .. }
            | Self::IncludeCycle { at, .. }
            | Self::IncludeTooDeep { at, .. }
            | Self::TooManyIncludeReads { at, .. }
            | Self::TooManyMachines { at, .. }
            | Self::Read { at, .. }
            | Self::Toml { at, .. } => at,
            Self::NeitherFormat { legacy, .. } => legacy.location(),
        }
    }

    /// Whether reading stopped because a budget of
    /// [`ParseOptions`](super::ParseOptions) ran out, rather than because
    /// the text is malformed.
    pub fn is_budget_exceeded(&self) -> bool {
        matches!(
            self,
            Self::TooManyIncludeReads { .. } | Self::TooManyMachines { .. }
        )
    }
}

/// What kind of difference a [`Warning`] reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum WarningKind {
    /// The entry has fewer than 3 columns; Hydra's legacy parser skipped
    /// such lines silently, Nix (and nixwire) use them.
    HydraIgnoredShortEntry {
        /// How many columns the entry has.
        columns: usize,
    },
    /// The speed factor is missing, `-` or `0`: Hydra's legacy parser read
    /// it with `atof`, giving 0, while Nix uses 1.
    HydraSpeedReadAsZero,
    /// Mandatory features not listed as supported: Hydra's legacy parser
    /// added them to the supported set, Nix keeps the sets apart (a step
    /// requiring them still matches, since matching checks the union).
    HydraMandatoryAddedToSupported {
        /// The mandatory features missing from the supported column.
        features: Vec<String>,
    },
    /// Several `;`-separated entries on one line: Hydra's legacy parser read
    /// one machine per line and would have taken `;` as a column.
    HydraOneMachinePerLine,
    /// An `@path` include: Hydra's legacy parser had no includes.
    HydraNoIncludes,
    /// Column 1 has a URI scheme: Hydra's legacy parser passed column 1 to
    /// ssh as a host name, so `ssh-ng://host` failed there.
    HydraSchemeInHostColumn,
    /// An `@path` include names a file that does not exist; Nix skips it
    /// silently, and so does nixwire apart from this warning.
    MissingInclude {
        /// The path as written after `@`.
        path: String,
    },
    /// More than 8 columns; Nix ignores the extra ones and so does nixwire.
    ExtraColumns {
        /// How many columns the entry has.
        columns: usize,
    },
    /// The machine has no systems (none given and no default), so it can
    /// only run `builtin` steps.
    NoSystems,
    /// The same store URI appears again; the later entry replaces the
    /// earlier one when building a pool.
    DuplicateUri {
        /// Where the earlier entry is.
        first: Location,
    },
}

/// A non-fatal remark about a machines source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// Where the remark applies.
    pub at: Location,
    /// What the remark is.
    #[serde(flatten)]
    pub kind: WarningKind,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.at)?;
        match &self.kind {
            WarningKind::HydraIgnoredShortEntry { columns } => write!(
                f,
                "entry has {columns} column(s); Hydra's legacy parser ignored entries with fewer than 3, this machine is now used"
            ),
            WarningKind::HydraSpeedReadAsZero => write!(
                f,
                "speed factor missing, `-` or 0 is read as 1; Hydra's legacy parser read it as 0"
            ),
            WarningKind::HydraMandatoryAddedToSupported { features } => write!(
                f,
                "mandatory feature(s) {} not listed as supported; Hydra's legacy parser added them to the supported set, they are now kept apart",
                features.join(",")
            ),
            WarningKind::HydraOneMachinePerLine => write!(
                f,
                "several `;`-separated machines on one line; Hydra's legacy parser read the whole line as one machine"
            ),
            WarningKind::HydraNoIncludes => write!(
                f,
                "`@` include; Hydra's legacy parser did not follow includes"
            ),
            WarningKind::HydraSchemeInHostColumn => write!(
                f,
                "column 1 is a store URI with a scheme; Hydra's legacy parser passed column 1 to ssh as a host name"
            ),
            WarningKind::MissingInclude { path } => {
                write!(f, "included file `{path}` does not exist and is skipped")
            }
            WarningKind::ExtraColumns { columns } => {
                write!(
                    f,
                    "entry has {columns} columns; columns after the 8th are ignored"
                )
            }
            WarningKind::NoSystems => {
                write!(f, "machine has no systems and can only run `builtin` steps")
            }
            WarningKind::DuplicateUri { first } => write!(
                f,
                "store URI already defined at {first}; this entry replaces it in a pool"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LocationCursor;

    fn at(cursor: &mut LocationCursor<'_>, offset: usize) -> (usize, usize) {
        let l = cursor.at(offset);
        (l.line, l.column)
    }

    #[test]
    fn cursor_walks_forward_and_back() {
        // `é` is two bytes, one column.
        let text = "ab\néx\r\nyz";
        let mut c = LocationCursor::new("f", text, 1);
        assert_eq!(at(&mut c, 1), (1, 2));
        assert_eq!(at(&mut c, 5), (2, 2));
        assert_eq!(at(&mut c, 3), (2, 1));
        assert_eq!(at(&mut c, 9), (3, 2));
        // Back across a line break starts over.
        assert_eq!(at(&mut c, 1), (1, 2));
        // Past the end and inside a character are clamped.
        assert_eq!(at(&mut c, 100), (3, 3));
        assert_eq!(at(&mut c, 4), (2, 1));
    }

    #[test]
    fn cursor_counts_lines_from_its_first_line() {
        let mut c = LocationCursor::new("f", "a;b", 7);
        assert_eq!(at(&mut c, 2), (7, 3));
        assert_eq!(at(&mut c, 0), (7, 1));
    }
}
