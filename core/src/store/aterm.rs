//! Store derivations (`.drv` files) in Nix's ATerm text, read and written.
//!
//! A `.drv` file is one ATerm, with no whitespace anywhere:
//!
//! ```text
//! Derive([<output>,…],[<input drv>,…],[<input src>,…],<platform>,<builder>,[<arg>,…],[<env>,…])
//! <output>    = ("<name>","<path>","<hash algo>","<hash>")
//! <input drv> = ("<drv path>",["<output name>",…])
//! <env>       = ("<name>","<value>")
//! ```
//!
//! A [`Derivation`] holds it as values: [`OutputAddressing`] tells the five
//! forms of an output apart, store paths are [`StorePath`]s checked through
//! a [`StoreDir`], and the platform, builder, arguments and environment are
//! [`NixString`]s, bytes that need not be UTF-8. [`Derivation::to_basic`]
//! turns it into the [`BasicDerivation`] the serve and worker protocols send
//! to a remote builder. The derivation's name is not in the file (it is the
//! `.drv` path's name without the extension), so it is not held here.
//!
//! # What Nix writes
//!
//! Facts from Nix's `derivations.cc` (2.8) and `derivation/aterm.cc` (current):
//!
//! - Outputs are sorted by name, input derivations by path, the output names
//!   of each input and the input sources by bytes, the environment by name
//!   (Nix keeps them in ordered maps and sets); the arguments keep their
//!   order.
//! - The builder, the arguments and the environment are written with
//!   escapes: `"` as `\"`, `\` as `\\`, newline as `\n`, carriage return as
//!   `\r`, tab as `\t`, every other byte as it is. Output names, store paths,
//!   the hash fields and the platform are written between quotes with no
//!   escaping at all.
//! - An output is written as one of
//!
//!   | form | path | hash algo | hash |
//!   |---|---|---|---|
//!   | input-addressed | `/nix/store/…-x` | | |
//!   | fixed-output | `/nix/store/…-x` | `r:sha256` | lowercase base16 |
//!   | floating content-addressed | | `r:sha256` | |
//!   | deferred (input-addressed, path not yet known) | | | |
//!   | impure | | `r:sha256` | `impure` |
//!
//!   where the hash algorithm field is a method prefix (`r:` for NAR,
//!   `git:`, `text:`, nothing for flat) and an algorithm.
//! - With dynamic derivations (the `dynamic-derivations` experimental
//!   feature, Nix 2.18 and later), an input derivation's entry may also want
//!   outputs of its outputs:
//!   `("<drv path>",(["<output>",…],[("<output>",<entry>),…]))`, nested to
//!   any depth. Nix writes that form, and then the whole file as
//!   `DrvWithVersion("xp-dyn-drv",[…],…)`, only when some input needs it;
//!   otherwise it writes `Derive(`. This module reads and writes both.
//!
//! # Only what Nix writes is read
//!
//! Nix's reader is more lenient than its writer: it reads `\c` as `c` for
//! any other byte `c`, unescapes the fields it writes unescaped, accepts
//! raw newlines and tabs in escaped strings, entries in any order, duplicate
//! entries, a hash in any of its text forms, a hash where no algorithm is
//! given, and a comma before the first list entry. A derivation's store
//! path is the hash of its exact text, so reading such a file and writing
//! it back would give other bytes, and another derivation. [`Derivation::parse`]
//! therefore reads exactly the text Nix writes and refuses the rest, each
//! error naming what was expected: whatever it accepts,
//! [`Derivation::to_aterm`] gives back byte for byte.
//!
//! A platform that contains `"` or `\` is the one thing Nix writes and
//! cannot read back (it writes the platform unescaped); `to_aterm` writes it
//! as Nix does, and `parse` refuses it, as Nix's reader would misread it.
//! Current Nix also checks that a fixed output's path is the one its content
//! address gives; that needs the derivation's name and a sha256, and is
//! left to the caller.
//!
//! # Limits
//!
//! Nix has none; nixwire reads hostile input, so `parse` refuses a text
//! longer than [`MAX_DRV_LEN`] (16 MiB), a string longer than
//! [`MAX_STRING_LEN`] (8 MiB) in the file, more than [`MAX_ENTRIES`] list
//! entries in all, and dynamic inputs nested deeper than
//! [`MAX_NESTING`]. Memory is thus bounded by a small multiple of the
//! input's size, and the only recursion, for nested dynamic inputs, by
//! [`MAX_NESTING`] levels. Real `.drv` files are far smaller: Linux refuses
//! a builder any single argument or environment string over 128 KiB, so
//! only structured attributes' `__json`, which Nix hands the builder as a
//! file, can grow much.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use super::path::{HASH_PART_LEN, MAX_NAME_LEN};
use super::{
    BasicDerivation, ContentAddress, ContentAddressError, ContentAddressMethod, DerivationOutput,
    Hash, HashAlgo, HashError, HashFormat, MAX_NESTING, NameError, OutputName, StoreDir,
    StoreDirError, StorePath, byte_repr, lossy,
};
use crate::wire::NixString;

/// The longest `.drv` text [`Derivation::parse`] reads, in bytes (16 MiB).
pub const MAX_DRV_LEN: usize = 16 << 20;

/// The longest string [`Derivation::parse`] reads, in bytes as written in
/// the file, escapes included (8 MiB).
pub const MAX_STRING_LEN: usize = 8 << 20;

/// The most list entries [`Derivation::parse`] reads in one text, counting
/// every output, input derivation, output name, input source, argument and
/// environment variable (262 144).
pub const MAX_ENTRIES: usize = 1 << 18;

/// The one version of the versioned form Nix knows, for dynamic derivations:
/// `DrvWithVersion("xp-dyn-drv",…)`.
pub const DYNAMIC_VERSION: &str = "xp-dyn-drv";

/// The most bytes of a string an error message shows.
const SHOWN: usize = 64;

/// Why text is not a derivation as Nix writes it. Every error but
/// [`TooLarge`](Self::TooLarge) gives the byte offset in the text where
/// the problem is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DerivationError {
    /// The text is longer than [`MAX_DRV_LEN`].
    #[error("the derivation is too long: expected at most {max} bytes, found {len}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// [`MAX_DRV_LEN`].
        max: usize,
    },
    /// Something other than what the grammar (or Nix's way of writing it)
    /// allows at this point.
    #[error("at byte {offset} of the derivation: expected {expected}, found {found}")]
    Expected {
        /// Where.
        offset: usize,
        /// What may come there.
        expected: String,
        /// What came: a byte, the end of the text, or a string.
        found: String,
    },
    /// A `\` followed by a byte Nix never escapes.
    #[error(
        "at byte {offset} of the derivation: expected '\"', '\\', 'n', 'r' or 't' after '\\', found {}",
        byte_repr(*found)
    )]
    BadEscape {
        /// Where the backslash is.
        offset: usize,
        /// The byte after it.
        found: u8,
    },
    /// A string longer than [`MAX_STRING_LEN`].
    #[error(
        "at byte {offset} of the derivation: expected a string of at most {max} bytes, found a longer one"
    )]
    StringTooLong {
        /// Where the string starts (its opening quote).
        offset: usize,
        /// [`MAX_STRING_LEN`].
        max: usize,
    },
    /// More list entries than [`MAX_ENTRIES`].
    #[error("at byte {offset} of the derivation: expected at most {max} list entries, found more")]
    TooManyEntries {
        /// Where the entry over the limit starts.
        offset: usize,
        /// [`MAX_ENTRIES`].
        max: usize,
    },
    /// Dynamic inputs nested deeper than [`MAX_NESTING`].
    #[error(
        "at byte {offset} of the derivation: expected dynamic inputs nested at most {max} deep, found deeper"
    )]
    TooDeep {
        /// Where the entry over the limit starts.
        offset: usize,
        /// [`MAX_NESTING`].
        max: usize,
    },
    /// A string that must be a store path is not one in the store directory.
    #[error("at byte {offset} of the derivation: {source}")]
    Path {
        /// Where the string starts.
        offset: usize,
        /// Why it is not a store path.
        #[source]
        source: StoreDirError,
    },
    /// An output name is not valid.
    #[error("at byte {offset} of the derivation: output name: {source}")]
    OutputName {
        /// Where the name starts.
        offset: usize,
        /// Why it is not valid.
        #[source]
        source: NameError,
    },
    /// An output's hash algorithm field is not a method and an algorithm.
    #[error("at byte {offset} of the derivation: output hash algorithm: {source}")]
    HashAlgo {
        /// Where the field starts.
        offset: usize,
        /// Why it is not valid.
        #[source]
        source: ContentAddressError,
    },
    /// A fixed output's hash is not a digest of its algorithm.
    #[error("at byte {offset} of the derivation: output hash: {source}")]
    Hash {
        /// Where the hash starts.
        offset: usize,
        /// Why it is not valid.
        #[source]
        source: HashError,
    },
    /// Entries out of Nix's order, or one twice.
    #[error(
        "at byte {offset} of the derivation: expected {what} sorted by their bytes with none twice (as Nix writes them), found {found} after {previous}"
    )]
    Unsorted {
        /// Where the entry starts.
        offset: usize,
        /// Which entries: `outputs`, `input sources`, ...
        what: &'static str,
        /// The entry before it (shortened).
        previous: String,
        /// The entry (shortened).
        found: String,
    },
    /// A `DrvWithVersion` version other than [`DYNAMIC_VERSION`].
    #[error(
        "at byte {offset} of the derivation: expected the ATerm version \"{DYNAMIC_VERSION}\", found {version}"
    )]
    UnknownVersion {
        /// Where the version string starts.
        offset: usize,
        /// The version (shortened).
        version: String,
    },
    /// Bytes after the closing `)`.
    #[error(
        "at byte {offset} of the derivation: expected nothing after the closing ')', found {count} more bytes starting with {}",
        byte_repr(*first)
    )]
    TrailingBytes {
        /// Where they start.
        offset: usize,
        /// How many there are.
        count: usize,
        /// The first of them.
        first: u8,
    },
}

/// How one output of a derivation gets its path, as the `.drv` file states
/// it (Nix's `DerivationOutput` variants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputAddressing {
    /// Input-addressed: the path is computed from the derivation and known
    /// in advance. Written `("out","/nix/store/…-x","","")`.
    InputAddressed(StorePath),
    /// Fixed-output: the content is known in advance by its hash, and so is
    /// the path. Written `("out","/nix/store/…-x","r:sha256","<base16>")`.
    Fixed {
        /// The output path, which the content address determines.
        path: StorePath,
        /// The expected content: method and hash.
        ca: ContentAddress,
    },
    /// Floating content-addressed: hashed by this method and algorithm once
    /// built, its path known only then (`ca-derivations` experimental
    /// feature). Written `("out","","r:sha256","")`.
    Floating {
        /// How the output is hashed.
        method: ContentAddressMethod,
        /// With which algorithm.
        algo: HashAlgo,
    },
    /// Input-addressed, but the path is not known yet because an input is
    /// floating. Written `("out","","","")`.
    Deferred,
    /// Impure: built anew each time, content-addressed by this method and
    /// algorithm (`impure-derivations` experimental feature). Written
    /// `("out","","r:sha256","impure")`.
    Impure {
        /// How the output is hashed.
        method: ContentAddressMethod,
        /// With which algorithm.
        algo: HashAlgo,
    },
}

impl OutputAddressing {
    /// The output path, when it is known in advance.
    pub fn path(&self) -> Option<&StorePath> {
        match self {
            Self::InputAddressed(path) | Self::Fixed { path, .. } => Some(path),
            Self::Floating { .. } | Self::Deferred | Self::Impure { .. } => None,
        }
    }

    /// The hash algorithm field: the method prefix and the algorithm
    /// (`r:sha256`), or empty for input-addressed and deferred outputs.
    pub fn hash_algo(&self) -> String {
        match self {
            Self::InputAddressed(_) | Self::Deferred => String::new(),
            Self::Fixed { ca, .. } => ca.method_algo(),
            Self::Floating { method, algo } | Self::Impure { method, algo } => {
                method.render_method_algo(*algo)
            }
        }
    }

    /// The hash field: the fixed hash in lowercase base16, `impure`, or
    /// empty.
    pub fn hash(&self) -> String {
        match self {
            Self::Fixed { ca, .. } => ca.hash.to_base16(),
            Self::Impure { .. } => "impure".to_owned(),
            Self::InputAddressed(_) | Self::Floating { .. } | Self::Deferred => String::new(),
        }
    }

    /// The output as the protocols send it, under `name`.
    pub fn to_derivation_output(&self, name: OutputName) -> DerivationOutput {
        DerivationOutput {
            name,
            path: self.path().cloned(),
            hash_algo: NixString::from(self.hash_algo()),
            hash: NixString::from(self.hash()),
        }
    }
}

/// What a derivation wants of a derivation that is itself an output of one
/// of its inputs (dynamic derivations): some of its outputs, and, nested,
/// outputs of its outputs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DynamicInput {
    /// Outputs of that derivation wanted as inputs.
    pub outputs: BTreeSet<OutputName>,
    /// Outputs of that derivation that are derivations in turn, and what is
    /// wanted of each.
    pub dynamic: BTreeMap<OutputName, Self>,
}

/// A store derivation: what a `.drv` file says, with byte strings kept as
/// they are.
///
/// Read one with [`parse`](Self::parse), write it with
/// [`to_aterm`](Self::to_aterm); hand it to a remote builder with
/// [`to_basic`](Self::to_basic). The maps and sets keep Nix's order, so
/// writing needs no sorting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Derivation {
    /// Its outputs, by name.
    pub outputs: BTreeMap<OutputName, OutputAddressing>,
    /// Input derivations and which of their outputs are inputs.
    pub input_drvs: BTreeMap<StorePath, BTreeSet<OutputName>>,
    /// Input derivations some of whose outputs are derivations, and what is
    /// wanted of those (dynamic derivations; empty otherwise). A path may
    /// be in both maps; an empty map here counts as none.
    pub dynamic_input_drvs: BTreeMap<StorePath, BTreeMap<OutputName, DynamicInput>>,
    /// Input store paths that are not outputs of a derivation.
    pub input_srcs: BTreeSet<StorePath>,
    /// The system it builds on (`x86_64-linux`).
    pub platform: NixString,
    /// The builder executable.
    pub builder: NixString,
    /// The builder's arguments, in order.
    pub args: Vec<NixString>,
    /// The builder's environment, by name.
    pub env: BTreeMap<NixString, NixString>,
}

impl Derivation {
    /// Reads a `.drv` file's text, exactly as Nix writes it, its store paths
    /// in `dir`. Refuses, with the offset, anything Nix would not write and
    /// anything over the [limits](self#limits).
    pub fn parse(dir: &StoreDir, text: &[u8]) -> Result<Self, DerivationError> {
        if text.len() > MAX_DRV_LEN {
            return Err(DerivationError::TooLarge {
                len: text.len(),
                max: MAX_DRV_LEN,
            });
        }
        let mut r = Reader {
            text,
            pos: 0,
            entries: 0,
            dir,
        };
        r.derivation()
    }

    /// Writes the derivation as Nix does, `Derive(…)`, or
    /// `DrvWithVersion("xp-dyn-drv",…)` when it has dynamic inputs.
    ///
    /// The [`DynamicInput`]s are written recursively, so a value built by
    /// hand should not nest them deeper than [`MAX_NESTING`] either.
    pub fn to_aterm(&self, dir: &StoreDir) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        let dynamic = self.has_dynamic_inputs();
        if dynamic {
            out.extend_from_slice(b"DrvWithVersion(");
            write_unquoted(&mut out, DYNAMIC_VERSION.as_bytes());
            out.push(b',');
        } else {
            out.extend_from_slice(b"Derive(");
        }

        write_list(&mut out, &self.outputs, |out, (name, output)| {
            out.push(b'(');
            write_unquoted(out, name.as_str().as_bytes());
            out.push(b',');
            match output.path() {
                Some(path) => write_path(out, dir, path),
                None => write_unquoted(out, b""),
            }
            out.push(b',');
            write_unquoted(out, output.hash_algo().as_bytes());
            out.push(b',');
            write_unquoted(out, output.hash().as_bytes());
            out.push(b')');
        });

        out.push(b',');
        let no_outputs = BTreeSet::new();
        let input_paths: BTreeSet<&StorePath> = self
            .input_drvs
            .keys()
            .chain(
                self.dynamic_input_drvs
                    .iter()
                    .filter(|(_, children)| !children.is_empty())
                    .map(|(path, _)| path),
            )
            .collect();
        write_list(&mut out, input_paths, |out, path| {
            out.push(b'(');
            write_path(out, dir, path);
            out.push(b',');
            let outputs = self.input_drvs.get(path).unwrap_or(&no_outputs);
            match self.dynamic_input_drvs.get(path) {
                Some(children) if !children.is_empty() => {
                    write_dynamic(out, outputs, children);
                }
                _ => write_names(out, outputs),
            }
            out.push(b')');
        });

        out.push(b',');
        write_list(&mut out, &self.input_srcs, |out, path| {
            write_path(out, dir, path);
        });
        out.push(b',');
        write_unquoted(&mut out, self.platform.as_bytes());
        out.push(b',');
        write_escaped(&mut out, self.builder.as_bytes());
        out.push(b',');
        write_list(&mut out, &self.args, |out, arg| {
            write_escaped(out, arg.as_bytes());
        });
        out.push(b',');
        write_list(&mut out, &self.env, |out, (name, value)| {
            out.push(b'(');
            write_escaped(out, name.as_bytes());
            out.push(b',');
            write_escaped(out, value.as_bytes());
            out.push(b')');
        });
        out.push(b')');
        out
    }

    /// The derivation as a remote build is sent it: its input derivations
    /// resolved away, their outputs' paths (`resolved_inputs`) joined to
    /// its input sources.
    ///
    /// This is what Hydra sends (`inputSrcs` and the output paths of the
    /// wanted outputs of the input derivations) and what Nix's build hook
    /// sends (the closure of those, when there are input derivations). Pass
    /// either; the input sources are kept in any case. Nothing else is
    /// rewritten: a derivation with floating content-addressed inputs has
    /// placeholders in its environment that only Nix's resolution replaces.
    pub fn to_basic(
        &self,
        resolved_inputs: impl IntoIterator<Item = StorePath>,
    ) -> BasicDerivation {
        let mut input_srcs = self.input_srcs.clone();
        input_srcs.extend(resolved_inputs);
        BasicDerivation {
            outputs: self
                .outputs
                .iter()
                .map(|(name, output)| output.to_derivation_output(name.clone()))
                .collect(),
            input_srcs: input_srcs.into_iter().collect(),
            platform: self.platform.clone(),
            builder: self.builder.clone(),
            args: self.args.clone(),
            env: self
                .env
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        }
    }

    /// Whether an input wants outputs of outputs, which makes Nix write the
    /// versioned form.
    fn has_dynamic_inputs(&self) -> bool {
        self.dynamic_input_drvs.values().any(|c| !c.is_empty())
    }

    /// About the length of the text, so that writing allocates once.
    fn size_hint(&self) -> usize {
        // A path is the store directory and a base name; 128 bytes covers
        // most of both. Strings are counted unescaped, a little short.
        let strings: usize = self.args.iter().map(NixString::len).sum::<usize>()
            + self
                .env
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>();
        64 + 192 * self.outputs.len()
            + 160 * (self.input_drvs.len() + self.input_srcs.len())
            + self.platform.len()
            + self.builder.len()
            + strings
            + 3 * self.args.len()
    }
}

// ---- writing ----

/// Writes `[a,b,…]`, each entry by `entry`.
fn write_list<I: IntoIterator>(
    out: &mut Vec<u8>,
    items: I,
    mut entry: impl FnMut(&mut Vec<u8>, I::Item),
) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        entry(out, item);
    }
    out.push(b']');
}

/// Writes a string between quotes with no escaping, as Nix writes names,
/// paths, hash fields and the platform.
fn write_unquoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(s);
    out.push(b'"');
}

/// Writes a full store path between quotes.
fn write_path(out: &mut Vec<u8>, dir: &StoreDir, path: &StorePath) {
    out.push(b'"');
    dir.write_path(path, out);
    out.push(b'"');
}

/// Writes a string between quotes with Nix's five escapes.
fn write_escaped(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    // Copy runs of plain bytes whole; escape the few that need it.
    let mut rest = s;
    while let Some(i) = rest.iter().position(|&b| escape_of(b).is_some()) {
        out.extend_from_slice(&rest[..i]);
        if let Some(e) = escape_of(rest[i]) {
            out.extend_from_slice(&[b'\\', e]);
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// The letter after `\` that Nix writes for `b`, if it escapes it.
const fn escape_of(b: u8) -> Option<u8> {
    match b {
        b'"' | b'\\' => Some(b),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        _ => None,
    }
}

/// The byte `\<letter>` stands for, for the five escapes Nix writes.
const fn unescape(letter: u8) -> Option<u8> {
    match letter {
        b'"' | b'\\' => Some(letter),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        _ => None,
    }
}

/// Writes `["a","b"]`.
fn write_names(out: &mut Vec<u8>, names: &BTreeSet<OutputName>) {
    write_list(out, names, |out, name| {
        write_unquoted(out, name.as_str().as_bytes());
    });
}

/// Writes the nested form of an input: `(["a"],[("b",<entry>),…])`, an
/// entry being a list of names when it has no children, this form when it
/// has.
fn write_dynamic(
    out: &mut Vec<u8>,
    outputs: &BTreeSet<OutputName>,
    children: &BTreeMap<OutputName, DynamicInput>,
) {
    out.push(b'(');
    write_names(out, outputs);
    out.push(b',');
    write_list(out, children, |out, (name, child)| {
        out.push(b'(');
        write_unquoted(out, name.as_str().as_bytes());
        out.push(b',');
        if child.dynamic.is_empty() {
            write_names(out, &child.outputs);
        } else {
            write_dynamic(out, &child.outputs, &child.dynamic);
        }
        out.push(b')');
    });
    out.push(b')');
}

// ---- reading ----

/// A string of the file, shortened and quoted for an error message.
fn shown(bytes: &[u8]) -> String {
    if bytes.len() > SHOWN {
        format!("'{}…' ({} bytes)", lossy(&bytes[..SHOWN]), bytes.len())
    } else {
        format!("'{}'", lossy(bytes))
    }
}

/// The two maps of input derivations: wanted outputs, and wanted outputs of
/// outputs.
type InputDrvs = (
    BTreeMap<StorePath, BTreeSet<OutputName>>,
    BTreeMap<StorePath, BTreeMap<OutputName, DynamicInput>>,
);

/// A cursor over the text, with the count of list entries read so far.
struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
    entries: usize,
    dir: &'a StoreDir,
}

impl<'a> Reader<'a> {
    /// What is at `at`, for an error message.
    fn found(&self, at: usize) -> String {
        self.text
            .get(at)
            .map_or_else(|| "the end of the text".to_owned(), |&b| byte_repr(b))
    }

    fn expected(&self, at: usize, expected: impl Into<String>) -> DerivationError {
        DerivationError::Expected {
            offset: at,
            expected: expected.into(),
            found: self.found(at),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    /// Takes `lit` off the front, or says where it stops matching.
    fn literal(&mut self, lit: &'static str) -> Result<(), DerivationError> {
        for (i, &b) in lit.as_bytes().iter().enumerate() {
            if self.text.get(self.pos + i) != Some(&b) {
                return Err(self.expected(self.pos + i, format!("'{}'", &lit[i..])));
            }
        }
        self.pos += lit.len();
        Ok(())
    }

    /// Reads `[e,e,…]`, each entry by `entry`, counting entries against
    /// [`MAX_ENTRIES`].
    fn list(
        &mut self,
        mut entry: impl FnMut(&mut Self) -> Result<(), DerivationError>,
    ) -> Result<(), DerivationError> {
        self.literal("[")?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Err(DerivationError::TooManyEntries {
                    offset: self.pos,
                    max: MAX_ENTRIES,
                });
            }
            entry(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.expected(self.pos, "',' or ']'")),
            }
        }
    }

    /// Reads a string Nix writes unescaped, which has no `\` (`what` names
    /// it). Returns where it starts (its opening quote) and its bytes.
    fn unquoted(&mut self, what: &str) -> Result<(usize, &'a [u8]), DerivationError> {
        let start = self.pos;
        self.literal("\"")?;
        let body = self.pos;
        let window = &self.text[body..self.text.len().min(body + MAX_STRING_LEN + 1)];
        match window.iter().position(|&b| b == b'"' || b == b'\\') {
            Some(i) if window[i] == b'"' => {
                self.pos = body + i + 1;
                Ok((start, &window[..i]))
            }
            Some(i) => Err(DerivationError::Expected {
                offset: body + i,
                expected: format!("{what} with no '\\' (Nix writes it unescaped)"),
                found: "'\\'".to_owned(),
            }),
            None if body + window.len() < self.text.len() => Err(DerivationError::StringTooLong {
                offset: start,
                max: MAX_STRING_LEN,
            }),
            None => Err(self.expected(
                self.text.len(),
                format!("'\"' closing the string opened at byte {start}"),
            )),
        }
    }

    /// Reads a string with Nix's escapes.
    fn escaped(&mut self) -> Result<NixString, DerivationError> {
        let start = self.pos;
        self.literal("\"")?;
        let body = self.pos;
        let end = self.text.len().min(body + MAX_STRING_LEN + 1);
        let mut out = Vec::new();
        let mut i = body;
        loop {
            // Copy the plain run, then look at what ends it.
            let window = self.text.get(i..end).unwrap_or_default();
            let run = window
                .iter()
                .position(|&b| matches!(b, b'"' | b'\\' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(window.len());
            out.extend_from_slice(&window[..run]);
            i += run;
            if i >= end {
                return Err(if end < self.text.len() {
                    DerivationError::StringTooLong {
                        offset: start,
                        max: MAX_STRING_LEN,
                    }
                } else {
                    self.expected(
                        self.text.len(),
                        format!("'\"' closing the string opened at byte {start}"),
                    )
                });
            }
            match self.text[i] {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(NixString::from(out));
                }
                b'\\' => match self.text.get(i + 1) {
                    Some(&letter) => {
                        let Some(byte) = unescape(letter) else {
                            return Err(DerivationError::BadEscape {
                                offset: i,
                                found: letter,
                            });
                        };
                        out.push(byte);
                        i += 2;
                    }
                    None => {
                        return Err(self.expected(i + 1, "an escaped character after '\\'"));
                    }
                },
                raw => {
                    let letter = escape_of(raw).map_or('?', char::from);
                    return Err(DerivationError::Expected {
                        offset: i,
                        expected: format!("'\\{letter}' (Nix escapes this byte in this string)"),
                        found: byte_repr(raw),
                    });
                }
            }
        }
    }

    /// Checks a string's length and UTF-8 before it is read as a short
    /// token (a hash algorithm, a hash, a version), so that an error never
    /// quotes megabytes.
    fn short(
        at: usize,
        bytes: &'a [u8],
        max: usize,
        expected: &str,
    ) -> Result<&'a str, DerivationError> {
        match std::str::from_utf8(bytes) {
            Ok(s) if s.len() <= max => Ok(s),
            _ => Err(DerivationError::Expected {
                offset: at,
                expected: expected.to_owned(),
                found: shown(bytes),
            }),
        }
    }

    /// Reads a full store path in the store directory.
    fn store_path(&mut self, what: &str) -> Result<(usize, StorePath), DerivationError> {
        let (at, bytes) = self.unquoted(what)?;
        self.to_store_path(at, bytes).map(|p| (at, p))
    }

    fn to_store_path(&self, at: usize, bytes: &[u8]) -> Result<StorePath, DerivationError> {
        // Longer than any store path: refused here, so that the error does
        // not carry the whole string.
        let longest = self.dir.as_str().len() + 1 + HASH_PART_LEN + 1 + MAX_NAME_LEN;
        if bytes.len() > longest {
            return Err(DerivationError::Expected {
                offset: at,
                expected: format!("a store path in '{}' (at most {longest} bytes)", self.dir),
                found: shown(bytes),
            });
        }
        self.dir
            .parse_path(bytes)
            .map_err(|source| DerivationError::Path { offset: at, source })
    }

    /// Reads an output name.
    fn output_name(&mut self) -> Result<(usize, OutputName), DerivationError> {
        let (at, bytes) = self.unquoted("an output name")?;
        if bytes.len() > MAX_NAME_LEN {
            return Err(DerivationError::Expected {
                offset: at,
                expected: format!("an output name of at most {MAX_NAME_LEN} bytes"),
                found: shown(bytes),
            });
        }
        let name = OutputName::from_bytes(bytes)
            .map_err(|source| DerivationError::OutputName { offset: at, source })?;
        Ok((at, name))
    }

    /// Reads `["a","b",…]`, sorted.
    fn output_names(&mut self) -> Result<BTreeSet<OutputName>, DerivationError> {
        let mut names = BTreeSet::new();
        self.list(|r| {
            let (at, name) = r.output_name()?;
            check_order(names.last(), &name, at, "output names", |n| {
                shown(n.as_str().as_bytes())
            })?;
            names.insert(name);
            Ok(())
        })?;
        Ok(names)
    }

    /// The whole derivation, from the head to the end of the text.
    fn derivation(&mut self) -> Result<Derivation, DerivationError> {
        let versioned = self.head()?;
        let outputs = self.outputs()?;
        self.literal(",")?;
        let (input_drvs, dynamic_input_drvs) = self.input_drvs(versioned)?;
        if versioned && dynamic_input_drvs.is_empty() {
            return Err(DerivationError::Expected {
                offset: 0,
                expected: "'Derive(' for a derivation with no dynamic input (Nix writes \
                           'DrvWithVersion(' only when an input needs it)"
                    .to_owned(),
                found: "'DrvWithVersion('".to_owned(),
            });
        }
        self.literal(",")?;
        let mut input_srcs = BTreeSet::new();
        self.list(|r| {
            let (at, path) = r.store_path("an input source")?;
            check_order(input_srcs.last(), &path, at, "input sources", |p| {
                shown(p.base_name().as_bytes())
            })?;
            input_srcs.insert(path);
            Ok(())
        })?;
        self.literal(",")?;
        let (_, platform) = self.unquoted("the platform")?;
        self.literal(",")?;
        let builder = self.escaped()?;
        self.literal(",")?;
        let mut args = Vec::new();
        self.list(|r| {
            args.push(r.escaped()?);
            Ok(())
        })?;
        self.literal(",")?;
        let mut env = BTreeMap::new();
        self.list(|r| {
            r.literal("(")?;
            let at = r.pos;
            let name = r.escaped()?;
            check_order(
                env.keys().next_back(),
                &name,
                at,
                "environment variables",
                |n| shown(n.as_bytes()),
            )?;
            r.literal(",")?;
            let value = r.escaped()?;
            r.literal(")")?;
            env.insert(name, value);
            Ok(())
        })?;
        self.literal(")")?;
        if let Some(&first) = self.text.get(self.pos) {
            return Err(DerivationError::TrailingBytes {
                offset: self.pos,
                count: self.text.len() - self.pos,
                first,
            });
        }
        Ok(Derivation {
            outputs,
            input_drvs,
            dynamic_input_drvs,
            input_srcs,
            platform: NixString::from(platform),
            builder,
            args,
            env,
        })
    }

    /// Reads `Derive(` or `DrvWithVersion("xp-dyn-drv",`; true for the
    /// latter.
    fn head(&mut self) -> Result<bool, DerivationError> {
        const PLAIN: &[u8] = b"Derive(";
        const VERSIONED: &[u8] = b"DrvWithVersion(";
        if self.text.starts_with(PLAIN) {
            self.pos = PLAIN.len();
            return Ok(false);
        }
        if !self.text.starts_with(VERSIONED) {
            let len = self.text.len().min(VERSIONED.len());
            return Err(DerivationError::Expected {
                offset: 0,
                expected: "'Derive(' or 'DrvWithVersion('".to_owned(),
                found: if len == 0 {
                    "the end of the text".to_owned()
                } else {
                    shown(&self.text[..len])
                },
            });
        }
        self.pos = VERSIONED.len();
        let (at, version) = self.unquoted("the ATerm version")?;
        if version != DYNAMIC_VERSION.as_bytes() {
            return Err(DerivationError::UnknownVersion {
                offset: at,
                version: shown(version),
            });
        }
        self.literal(",")?;
        Ok(true)
    }

    /// Reads the outputs.
    fn outputs(&mut self) -> Result<BTreeMap<OutputName, OutputAddressing>, DerivationError> {
        let mut outputs = BTreeMap::new();
        self.list(|r| {
            r.literal("(")?;
            let (at, name) = r.output_name()?;
            check_order(outputs.keys().next_back(), &name, at, "outputs", |n| {
                shown(n.as_str().as_bytes())
            })?;
            let output = r.output(&name)?;
            outputs.insert(name, output);
            Ok(())
        })?;
        Ok(outputs)
    }

    /// Reads `,"<path>","<hash algo>","<hash>")` of output `name` and tells
    /// which of Nix's forms it is.
    fn output(&mut self, name: &OutputName) -> Result<OutputAddressing, DerivationError> {
        self.literal(",")?;
        let (path_at, path) = self.unquoted("an output path")?;
        self.literal(",")?;
        let (algo_at, algo) = self.unquoted("an output hash algorithm")?;
        self.literal(",")?;
        let (hash_at, hash) = self.unquoted("an output hash")?;
        self.literal(")")?;

        let no_path = |kind: &str| DerivationError::Expected {
            offset: path_at,
            expected: format!("no path for output '{name}', {kind} (Nix writes \"\")"),
            found: shown(path),
        };
        if algo.is_empty() {
            if !hash.is_empty() {
                return Err(DerivationError::Expected {
                    offset: hash_at,
                    expected: format!("no hash for output '{name}', which has no hash algorithm"),
                    found: shown(hash),
                });
            }
            return if path.is_empty() {
                Ok(OutputAddressing::Deferred)
            } else {
                self.to_store_path(path_at, path)
                    .map(OutputAddressing::InputAddressed)
            };
        }

        let algo_text = Self::short(
            algo_at,
            algo,
            16,
            "a method and hash algorithm such as 'r:sha256'",
        )?;
        let (method, hash_algo) =
            ContentAddressMethod::parse_method_algo(algo_text).map_err(|source| {
                DerivationError::HashAlgo {
                    offset: algo_at,
                    source,
                }
            })?;
        match hash {
            b"" if path.is_empty() => Ok(OutputAddressing::Floating {
                method,
                algo: hash_algo,
            }),
            b"" => Err(no_path("a floating content-addressed output")),
            b"impure" if path.is_empty() => Ok(OutputAddressing::Impure {
                method,
                algo: hash_algo,
            }),
            b"impure" => Err(no_path("an impure output")),
            _ => {
                let path = self.to_store_path(path_at, path)?;
                let digits = hash_algo.encoded_len(HashFormat::Base16);
                let expected = || {
                    format!(
                        "the {hash_algo} hash of output '{name}' in lowercase base16 ({digits} digits), as Nix writes it"
                    )
                };
                if hash.len() != digits {
                    return Err(DerivationError::Expected {
                        offset: hash_at,
                        expected: expected(),
                        found: shown(hash),
                    });
                }
                // Nix reads upper case and other forms too, but writes
                // lowercase base16 only.
                if let Some(i) = hash
                    .iter()
                    .position(|&b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                {
                    return Err(DerivationError::Expected {
                        offset: hash_at + 1 + i,
                        expected: format!(
                            "a lowercase base16 digit of the hash of output '{name}', as Nix writes it"
                        ),
                        found: byte_repr(hash[i]),
                    });
                }
                let text = Self::short(hash_at, hash, digits, &expected())?;
                let digest = Hash::parse_explicit(text, hash_algo, HashFormat::Base16).map_err(
                    |source| DerivationError::Hash {
                        offset: hash_at,
                        source,
                    },
                )?;
                Ok(OutputAddressing::Fixed {
                    path,
                    ca: ContentAddress {
                        method,
                        hash: digest,
                    },
                })
            }
        }
    }

    /// Reads the input derivations: plain entries, and, in the versioned
    /// form, nested ones.
    fn input_drvs(&mut self, versioned: bool) -> Result<InputDrvs, DerivationError> {
        let mut plain = BTreeMap::new();
        let mut dynamic = BTreeMap::new();
        // Every path read, in order, for the order check: a path may have
        // an entry in either map or both.
        let mut last: Option<StorePath> = None;
        self.list(|r| {
            r.literal("(")?;
            let (at, path) = r.store_path("an input derivation")?;
            check_order(last.as_ref(), &path, at, "input derivations", |p| {
                shown(p.base_name().as_bytes())
            })?;
            r.literal(",")?;
            let entry_at = r.pos;
            let input = if versioned {
                r.dynamic_input(1)?
            } else if r.peek() == Some(b'(') {
                return Err(r.expected(
                    r.pos,
                    "'[' (outputs of outputs need the form \
                     'DrvWithVersion(\"xp-dyn-drv\",…)')",
                ));
            } else {
                DynamicInput {
                    outputs: r.output_names()?,
                    dynamic: BTreeMap::new(),
                }
            };
            // Current Nix refuses such an entry: a set of inputs cannot
            // hold it.
            if input.outputs.is_empty() && input.dynamic.is_empty() {
                return Err(DerivationError::Expected {
                    offset: entry_at,
                    expected: format!("at least one output name of input derivation '{path}'"),
                    found: "'[]'".to_owned(),
                });
            }
            r.literal(")")?;
            if !input.outputs.is_empty() {
                plain.insert(path.clone(), input.outputs);
            }
            if !input.dynamic.is_empty() {
                dynamic.insert(path.clone(), input.dynamic);
            }
            last = Some(path);
            Ok(())
        })?;
        Ok((plain, dynamic))
    }

    /// Reads an entry of the versioned form: `["a",…]`, or
    /// `(["a",…],[("b",<entry>),…])` with at least one child. `depth` is
    /// this entry's nesting, 1 for an input derivation's own.
    fn dynamic_input(&mut self, depth: usize) -> Result<DynamicInput, DerivationError> {
        if depth > MAX_NESTING {
            return Err(DerivationError::TooDeep {
                offset: self.pos,
                max: MAX_NESTING,
            });
        }
        match self.peek() {
            Some(b'[') => Ok(DynamicInput {
                outputs: self.output_names()?,
                dynamic: BTreeMap::new(),
            }),
            Some(b'(') => {
                self.pos += 1;
                let outputs = self.output_names()?;
                self.literal(",")?;
                let children_at = self.pos;
                let mut dynamic = BTreeMap::new();
                self.list(|r| {
                    r.literal("(")?;
                    let (at, name) = r.output_name()?;
                    check_order(
                        dynamic.keys().next_back(),
                        &name,
                        at,
                        "dynamic outputs",
                        |n| shown(n.as_str().as_bytes()),
                    )?;
                    r.literal(",")?;
                    let child = r.dynamic_input(depth + 1)?;
                    r.literal(")")?;
                    dynamic.insert(name, child);
                    Ok(())
                })?;
                if dynamic.is_empty() {
                    return Err(DerivationError::Expected {
                        offset: children_at,
                        expected: "at least one output of an output (Nix writes an entry \
                                   without any as a plain list of names)"
                            .to_owned(),
                        found: "'[]'".to_owned(),
                    });
                }
                self.literal(")")?;
                Ok(DynamicInput { outputs, dynamic })
            }
            _ => Err(self.expected(self.pos, "'[' or '('")),
        }
    }
}

/// Refuses `key` unless it sorts strictly after `previous`.
fn check_order<K: Ord>(
    previous: Option<&K>,
    key: &K,
    at: usize,
    what: &'static str,
    show: impl Fn(&K) -> String,
) -> Result<(), DerivationError> {
    match previous {
        Some(previous) if key <= previous => Err(DerivationError::Unsorted {
            offset: at,
            what,
            previous: show(previous),
            found: show(key),
        }),
        _ => Ok(()),
    }
}
