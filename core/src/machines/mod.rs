//! Machines files: reading them exactly as Nix does, Lix's TOML variant, and
//! choosing a machine for a build step.
//!
//! How the pieces fit:
//!
//! - [`parse()`](fn@parse) is the entry point for a machines file or for the string
//!   form of Nix's `builders` setting. It detects the format per source:
//!   Lix's TOML format ([`toml`]) when the text is a TOML document with
//!   top-level keys, otherwise Nix's line format ([`mod@parse`]), whose `@path`
//!   entries include further sources (each detected again).
//! - Included files are read through a caller-supplied [`FileSource`], so
//!   this module never touches the file system itself. [`ParseOptions`]
//!   bounds how many included files are read and how many machines come
//!   out, so that no file can make reading blow up.
//! - The result, [`MachinesFile`], lists every [`Machine`] with the
//!   [`Location`] it came from, plus [`Warning`]s where Hydra's legacy
//!   parser would have read the file differently.
//! - [`select`] turns machines into a [`select::Pool`]: a pure state machine
//!   that picks a machine for a step, counts job slots, backs off after
//!   transport failures and keeps runtime state across reloads. Time is
//!   always passed in.
//! - [`parse::render_line`] writes a machine back in the line format; parsing
//!   that line gives the same machine.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

pub mod error;
pub mod parse;
pub mod select;
pub mod toml;

pub use error::{Column, Location, MachinesError, Warning, WarningKind};

/// How deeply `@path` includes may nest before reading stops with
/// [`MachinesError::IncludeTooDeep`].
///
/// Nix has no limit (an include cycle recurses until the stack runs out);
/// cycles of the same path are reported as [`MachinesError::IncludeCycle`]
/// and this limit catches cycles through different spellings of a path.
pub const MAX_INCLUDE_DEPTH: usize = 32;

/// One build machine, as Nix's `Machine` holds it after parsing.
///
/// Sets are ordered so that output and comparisons are deterministic; Nix
/// uses ordered sets too.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Machine {
    /// Store URI. A schemeless host name has had `ssh://` put in front (see
    /// [`normalize_uri`]); otherwise it is kept as written.
    pub uri: String,
    /// Systems (such as `x86_64-linux`) this machine builds for.
    pub systems: BTreeSet<String>,
    /// Path of the ssh private key, if one is given.
    pub ssh_key: Option<String>,
    /// How many jobs may run on it at once. 0 means it is never chosen.
    pub max_jobs: u32,
    /// Relative speed, finite and positive; only affects ordering.
    pub speed_factor: f32,
    /// Features this machine supports.
    pub supported_features: BTreeSet<String>,
    /// Features a step must require to run on this machine.
    pub mandatory_features: BTreeSet<String>,
    /// The ssh public host key, base64-encoded as written in the file.
    pub ssh_public_host_key: Option<String>,
}

impl Machine {
    /// A machine with `uri` (normalized by [`normalize_uri`]) and Nix's
    /// defaults for every other column: the given systems, no key, 1 job,
    /// speed 1, no features, no host key.
    pub fn with_defaults(uri: &str, systems: BTreeSet<String>) -> Self {
        Self {
            uri: normalize_uri(uri),
            systems,
            ssh_key: None,
            max_jobs: 1,
            speed_factor: 1.0,
            supported_features: BTreeSet::new(),
            mandatory_features: BTreeSet::new(),
            ssh_public_host_key: None,
        }
    }

    /// Whether this machine builds for `system`.
    ///
    /// `builtin` is accepted by every machine, as in Nix's build hook.
    pub fn system_supported(&self, system: &str) -> bool {
        system == "builtin" || self.systems.contains(system)
    }

    /// Whether every feature in `required` is supported or mandatory here
    /// (Nix's `allSupported`: mandatory features count as supported).
    pub fn all_supported(&self, required: &BTreeSet<String>) -> bool {
        required
            .iter()
            .all(|f| self.supported_features.contains(f) || self.mandatory_features.contains(f))
    }

    /// Whether every mandatory feature of this machine is in `required`
    /// (Nix's `mandatoryMet`).
    pub fn mandatory_met(&self, required: &BTreeSet<String>) -> bool {
        self.mandatory_features.iter().all(|f| required.contains(f))
    }
}

/// Puts `ssh://` in front of a schemeless host name, as Nix's `Machine`
/// constructor does for backwards compatibility.
///
/// Left alone: anything containing `://` or `/` (URIs and paths), the
/// special stores `auto`, `daemon` and `local` (bare or followed by `?`
/// parameters) and anything starting with `?`.
pub fn normalize_uri(uri: &str) -> String {
    let special = ["auto", "daemon", "local"];
    let keep = uri.contains("://")
        || uri.contains('/')
        || special.contains(&uri)
        || special.iter().any(|s| {
            uri.strip_prefix(s)
                .is_some_and(|rest| rest.starts_with('?'))
        })
        || uri.starts_with('?');
    if keep {
        uri.to_owned()
    } else {
        format!("ssh://{uri}")
    }
}

/// Where `@path` includes are read from; supplied by the caller so that the
/// core stays free of I/O.
pub trait FileSource {
    /// Reads the whole file at `path` as text.
    ///
    /// Returns `Ok(None)` when the file does not exist (Nix skips such
    /// includes) and an error for any other failure, which stops parsing.
    fn read(&self, path: &Path) -> io::Result<Option<String>>;
}

impl<F> FileSource for F
where
    F: Fn(&Path) -> io::Result<Option<String>>,
{
    fn read(&self, path: &Path) -> io::Result<Option<String>> {
        self(path)
    }
}

/// A [`FileSource`] in which no file exists, for text whose includes should
/// all be skipped.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFiles;

impl FileSource for NoFiles {
    fn read(&self, _path: &Path) -> io::Result<Option<String>> {
        Ok(None)
    }
}

/// The default of [`ParseOptions::max_include_reads`].
pub const DEFAULT_MAX_INCLUDE_READS: usize = 1024;

/// The default of [`ParseOptions::max_machines`].
pub const DEFAULT_MAX_MACHINES: usize = 65_536;

/// Settings for reading machines.
///
/// The budgets bound the work a source can cause, whatever it contains.
/// Nix has none: 19 files that each include the next one twice give Nix
/// (and gave nixwire) 262,144 machines, and every further level doubles
/// that. Create options with [`ParseOptions::default`] or
/// [`ParseOptions::with_default_system`] and change fields as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// Systems given to a machine whose systems column is missing or `-`.
    ///
    /// Nix passes the local system ([`host_system`]); Hydra passed none.
    pub default_systems: BTreeSet<String>,
    /// How many times included files may be read in all, across every level
    /// of nesting: each `@path` entry followed counts once, whether the file
    /// exists or not and even if the same file was read before. One more
    /// stops reading with [`MachinesError::TooManyIncludeReads`].
    ///
    /// Default [`DEFAULT_MAX_INCLUDE_READS`].
    pub max_include_reads: usize,
    /// How many machines a source may define in all, includes counted.
    /// One more stops reading with [`MachinesError::TooManyMachines`].
    ///
    /// Default [`DEFAULT_MAX_MACHINES`].
    pub max_machines: usize,
}

impl Default for ParseOptions {
    /// No default systems (as Hydra) and the default budgets.
    fn default() -> Self {
        Self {
            default_systems: BTreeSet::new(),
            max_include_reads: DEFAULT_MAX_INCLUDE_READS,
            max_machines: DEFAULT_MAX_MACHINES,
        }
    }
}

impl ParseOptions {
    /// Options that default systems to `system`, as Nix does with its own,
    /// with the default budgets.
    pub fn with_default_system(system: &str) -> Self {
        Self {
            default_systems: BTreeSet::from([system.to_owned()]),
            ..Self::default()
        }
    }
}

/// Which format a source was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Nix's whitespace-separated line format.
    Lines,
    /// Lix's TOML format, version 1.
    Toml,
}

/// A machine together with where it was defined.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedMachine {
    /// The machine.
    pub machine: Machine,
    /// Where its entry starts.
    pub at: Location,
    /// Its table name in a TOML file; `None` in the line format.
    pub name: Option<String>,
}

/// The outcome of reading a machines source.
#[derive(Debug, Clone, PartialEq)]
pub struct MachinesFile {
    /// Format of the top-level source (includes may differ).
    pub format: Format,
    /// The effective machines, in file order with includes expanded in place.
    pub machines: Vec<ParsedMachine>,
    /// Remarks that do not stop parsing, in the order found.
    pub warnings: Vec<Warning>,
}

impl MachinesFile {
    /// Just the machines, without locations.
    pub fn machine_list(&self) -> Vec<Machine> {
        self.machines.iter().map(|p| p.machine.clone()).collect()
    }
}

/// Reads a machines file or a `builders` setting named `name` (used in
/// locations), detecting Lix's TOML format per source.
///
/// A source is TOML when it parses as a TOML document with at least one
/// top-level key; it is then read strictly as Lix's format. Otherwise it is
/// read in the line format. When some line of the source starts like TOML
/// (`[table]` or `key =`) and the line format fails too, both errors are
/// returned ([`MachinesError::NeitherFormat`]); when the line format
/// succeeds on such a source but a systems column contains `=`, the text
/// was almost certainly TOML with a syntax error and the TOML error is
/// returned (nixwire's guard against reading broken TOML as garbage
/// machines). Use [`parse::parse_lines`] to read exactly as Nix does,
/// without detection at the top level.
///
/// Reading stops with an error when the budgets in `options` run out:
/// [`MachinesError::TooManyIncludeReads`] after
/// [`ParseOptions::max_include_reads`] reads of included files, and
/// [`MachinesError::TooManyMachines`] beyond [`ParseOptions::max_machines`]
/// machines. With them, and with locations computed in one pass over each
/// line (or TOML source), the work is bounded by the budgets times the
/// size of the files read, whatever the files contain.
pub fn parse(
    name: &str,
    text: &str,
    options: &ParseOptions,
    files: &dyn FileSource,
) -> Result<MachinesFile, MachinesError> {
    let mut reader = parse::Reader::new(name, options, files);
    let format = reader.read_source(name, text)?;
    Ok(reader.finish(format))
}

/// The Nix system name of the platform this code was compiled for, such as
/// `x86_64-linux` or `aarch64-darwin`, or `None` for platforms Nix does not
/// name.
pub fn host_system() -> Option<String> {
    let arch = match std::env::consts::ARCH {
        "x86" => "i686",
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        "riscv64" => "riscv64",
        "powerpc64" if cfg!(target_endian = "little") => "powerpc64le",
        "powerpc64" => "powerpc64",
        "loongarch64" => "loongarch64",
        "s390x" => "s390x",
        _ => return None,
    };
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "darwin",
        "freebsd" => "freebsd",
        "openbsd" => "openbsd",
        "netbsd" => "netbsd",
        _ => return None,
    };
    Some(format!("{arch}-{os}"))
}
