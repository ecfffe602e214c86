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
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self {
            file: file.to_owned(),
            line,
            column,
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
            | Self::Read { at, .. }
            | Self::Toml { at, .. } => at,
            Self::NeitherFormat { legacy, .. } => legacy.location(),
        }
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
