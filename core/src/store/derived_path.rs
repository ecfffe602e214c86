//! Derived paths: what a build request names. A store path as it is
//! ("opaque"), or outputs of a derivation, which may itself be an output of
//! another derivation (dynamic derivations).
//!
//! The worker protocol sends derived paths as text, in one of two forms
//! (Nix's `derived-path.cc` and `path-with-outputs.cc`):
//!
//! - from protocol 1.30 on, Nix's *legacy* form: an opaque path is its full
//!   path; outputs of a derivation are `<drv>!<outputs>`, where `<outputs>`
//!   is `*` for all of them or names separated by commas, and `<drv>` may
//!   itself be `<drv>!<output>` (the last `!` splits);
//! - before 1.30, the older *path with outputs* form: `<path>` or
//!   `<path>!<name>,<name>`. A derivation's path alone means all of its
//!   outputs, so the derivation file itself cannot be asked for, nor can
//!   an output of an output.
//!
//! Names keep the order they came in (Nix sends them sorted, as a set), so
//! what was read is written back byte for byte.

use thiserror::Error;

use super::{NameError, OutputName, StoreDir, StoreDirError, StorePath, lossy};

/// Which outputs of a derivation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutputsSpec {
    /// All of them (`*`).
    All,
    /// These, in the order given (Nix sends them sorted).
    Names(Vec<OutputName>),
}

/// A derived path naming exactly one store path: a store path, or one
/// output of a derivation named by a single derived path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SingleDerivedPath {
    /// A store path as it is.
    Opaque(StorePath),
    /// One output of a derivation.
    Built {
        /// The derivation (an output of another one, for dynamic derivations).
        drv_path: Box<Self>,
        /// The output.
        output: OutputName,
    },
}

/// What a build request names: a store path as it is (substituted if
/// missing), or outputs of a derivation (built if missing).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DerivedPath {
    /// A store path as it is. From protocol 1.30 on this may be a
    /// derivation file itself; before, a derivation's path means its outputs.
    Opaque(StorePath),
    /// Outputs of a derivation.
    Built {
        /// The derivation.
        drv_path: SingleDerivedPath,
        /// Which of its outputs.
        outputs: OutputsSpec,
    },
}

/// The deepest nesting of outputs of outputs read: nixwire's own bound
/// (Nix has none), far beyond what dynamic derivations use, so that
/// hostile input cannot make a value deep enough to exhaust the stack.
pub const MAX_NESTING: usize = 64;

/// Why text is not a derived path, or a derived path has no text in a form.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DerivedPathError {
    /// The path part is not a store path.
    #[error("in derived path '{text}': {source}")]
    Path {
        /// The whole text.
        text: String,
        /// Why the path is not a store path.
        source: StoreDirError,
    },
    /// An output name is not valid.
    #[error("in derived path '{text}': output name '{name}': {source}")]
    Output {
        /// The whole text.
        text: String,
        /// The name as given.
        name: String,
        /// Why it is not valid.
        source: NameError,
    },
    /// The derived path cannot be written in the form before protocol 1.30.
    #[error(
        "derived path '{path}' cannot be sent before worker protocol 1.30: {why} (Nix refuses to send it too)"
    )]
    TooOld {
        /// The path in the newer form.
        path: String,
        /// What the old form lacks.
        why: &'static str,
    },
    /// Outputs of outputs nested deeper than [`MAX_NESTING`].
    #[error("derived path '{text}' nests outputs more than {MAX_NESTING} deep")]
    TooDeep {
        /// The text (lossily decoded).
        text: String,
    },
    /// `OutputsSpec::Names` with no name, which has no text form.
    #[error("derived path '{path}' names no outputs: expected `*` or at least one name")]
    NoOutputs {
        /// The path, up to its outputs.
        path: String,
    },
}

fn path_error(text: &[u8], source: StoreDirError) -> DerivedPathError {
    DerivedPathError::Path {
        text: lossy(text),
        source,
    }
}

fn output_name(text: &[u8], name: &[u8]) -> Result<OutputName, DerivedPathError> {
    OutputName::from_bytes(name).map_err(|source| DerivedPathError::Output {
        text: lossy(text),
        name: lossy(name),
        source,
    })
}

/// Splits `s` at the last `sep`.
fn rsplit_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = s.iter().rposition(|&b| b == sep)?;
    Some((&s[..at], &s[at + 1..]))
}

impl SingleDerivedPath {
    /// The store path at the bottom: the path itself, or the derivation
    /// whose outputs (of outputs) are meant.
    pub fn base_store_path(&self) -> &StorePath {
        match self {
            Self::Opaque(path) => path,
            Self::Built { drv_path, .. } => drv_path.base_store_path(),
        }
    }

    /// Nix's legacy text form: the full path, or `<drv>!<output>`.
    pub fn to_legacy_string(&self, store_dir: &StoreDir) -> String {
        match self {
            Self::Opaque(path) => store_dir.display_path(path),
            Self::Built { drv_path, output } => {
                format!("{}!{output}", drv_path.to_legacy_string(store_dir))
            }
        }
    }

    /// Reads the legacy text form (`full` is the whole text, for errors):
    /// a path, then `!<output>` for each level of nesting. Built level by
    /// level rather than recursively, and at most [`MAX_NESTING`] levels,
    /// so that hostile text cannot exhaust the stack.
    fn parse_legacy_in(
        store_dir: &StoreDir,
        full: &[u8],
        s: &[u8],
    ) -> Result<Self, DerivedPathError> {
        let mut parts = s.split(|&b| b == b'!');
        let base = parts.next().unwrap_or_default();
        let mut path = store_dir
            .parse_path(base)
            .map(Self::Opaque)
            .map_err(|e| path_error(full, e))?;
        for (depth, output) in parts.enumerate() {
            if depth >= MAX_NESTING {
                return Err(DerivedPathError::TooDeep { text: lossy(full) });
            }
            path = Self::Built {
                drv_path: Box::new(path),
                output: output_name(full, output)?,
            };
        }
        Ok(path)
    }

    /// How many outputs-of-outputs deep this is (0 for a store path).
    pub fn depth(&self) -> usize {
        let mut depth = 0;
        let mut at = self;
        while let Self::Built { drv_path, .. } = at {
            depth += 1;
            at = drv_path;
        }
        depth
    }
}

impl OutputsSpec {
    /// `*`, or the names separated by commas.
    fn render(&self) -> String {
        match self {
            Self::All => "*".to_owned(),
            Self::Names(names) => {
                let names: Vec<&str> = names.iter().map(OutputName::as_str).collect();
                names.join(",")
            }
        }
    }

    /// Names separated by commas, each valid (an empty one is refused, as
    /// Nix's name check refuses it).
    fn parse_names(full: &[u8], s: &[u8]) -> Result<Vec<OutputName>, DerivedPathError> {
        s.split(|&b| b == b',')
            .map(|name| output_name(full, name))
            .collect()
    }
}

impl DerivedPath {
    /// A derivation's outputs, the common case.
    pub fn built(drv_path: StorePath, outputs: OutputsSpec) -> Self {
        Self::Built {
            drv_path: SingleDerivedPath::Opaque(drv_path),
            outputs,
        }
    }

    /// Nix's legacy text form, which the worker protocol uses from 1.30 on:
    /// the full path, or `<drv>!*`, `<drv>!<name>,<name>`.
    pub fn to_legacy_string(&self, store_dir: &StoreDir) -> String {
        match self {
            Self::Opaque(path) => store_dir.display_path(path),
            Self::Built { drv_path, outputs } => {
                format!(
                    "{}!{}",
                    drv_path.to_legacy_string(store_dir),
                    outputs.render()
                )
            }
        }
    }

    /// Reads the legacy text form (from protocol 1.30 on). The last `!`
    /// separates the outputs; `*` means all of them.
    pub fn parse_legacy(store_dir: &StoreDir, text: &[u8]) -> Result<Self, DerivedPathError> {
        match rsplit_once(text, b'!') {
            None => store_dir
                .parse_path(text)
                .map(Self::Opaque)
                .map_err(|e| path_error(text, e)),
            Some((drv, outputs)) => Ok(Self::Built {
                drv_path: SingleDerivedPath::parse_legacy_in(store_dir, text, drv)?,
                outputs: match outputs {
                    b"*" => OutputsSpec::All,
                    names => OutputsSpec::Names(OutputsSpec::parse_names(text, names)?),
                },
            }),
        }
    }

    /// The form before protocol 1.30: `<path>` or `<path>!<name>,<name>`,
    /// where a derivation's path alone means all its outputs. Fails for
    /// what that form cannot say: a derivation file itself, an output of an
    /// output, or an empty list of names.
    pub fn to_path_with_outputs(&self, store_dir: &StoreDir) -> Result<String, DerivedPathError> {
        match self {
            Self::Opaque(path) if path.is_derivation() => Err(DerivedPathError::TooOld {
                path: self.to_legacy_string(store_dir),
                why: "a derivation's path alone means its outputs, so the file itself cannot be asked for",
            }),
            Self::Opaque(path) => Ok(store_dir.display_path(path)),
            Self::Built {
                drv_path: SingleDerivedPath::Opaque(drv),
                outputs,
            } => match outputs {
                OutputsSpec::All => Ok(store_dir.display_path(drv)),
                OutputsSpec::Names(names) if names.is_empty() => Err(DerivedPathError::NoOutputs {
                    path: store_dir.display_path(drv),
                }),
                OutputsSpec::Names(_) => Ok(format!(
                    "{}!{}",
                    store_dir.display_path(drv),
                    outputs.render()
                )),
            },
            Self::Built { .. } => Err(DerivedPathError::TooOld {
                path: self.to_legacy_string(store_dir),
                why: "an output of a derivation that is itself an output has no form",
            }),
        }
    }

    /// Reads the form before protocol 1.30: the first `!` separates output
    /// names; a derivation's path without names means all its outputs.
    /// Nix drops empty names (`drv!` is all outputs); they are refused here,
    /// since no Nix writes them and they could not be written back.
    pub fn parse_path_with_outputs(
        store_dir: &StoreDir,
        text: &[u8],
    ) -> Result<Self, DerivedPathError> {
        let (path, names) = match text.iter().position(|&b| b == b'!') {
            Some(at) => (&text[..at], Some(&text[at + 1..])),
            None => (text, None),
        };
        let path = store_dir
            .parse_path(path)
            .map_err(|e| path_error(text, e))?;
        match names {
            Some(names) => Ok(Self::built(
                path,
                OutputsSpec::Names(OutputsSpec::parse_names(text, names)?),
            )),
            None if path.is_derivation() => Ok(Self::built(path, OutputsSpec::All)),
            None => Ok(Self::Opaque(path)),
        }
    }

    /// Whether the legacy form can say this (an empty list of output names
    /// has no text form in either).
    pub fn check_legacy(&self, store_dir: &StoreDir) -> Result<(), DerivedPathError> {
        match self {
            Self::Built {
                outputs: OutputsSpec::Names(names),
                drv_path,
            } if names.is_empty() => Err(DerivedPathError::NoOutputs {
                path: drv_path.to_legacy_string(store_dir),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q";

    fn p(rest: &str) -> StorePath {
        StorePath::from_base_name(format!("{H}{rest}").as_bytes()).expect("valid")
    }

    fn n(name: &str) -> OutputName {
        OutputName::new(name).expect("valid")
    }

    fn full(rest: &str) -> String {
        format!("/nix/store/{H}{rest}")
    }

    #[test]
    fn legacy_form_round_trips() {
        let dir = StoreDir::default();
        let cases = [
            (DerivedPath::Opaque(p("-foo")), full("-foo")),
            (DerivedPath::Opaque(p("-foo.drv")), full("-foo.drv")),
            (
                DerivedPath::built(p("-bar.drv"), OutputsSpec::All),
                format!("{}!*", full("-bar.drv")),
            ),
            (
                DerivedPath::built(p("-bar.drv"), OutputsSpec::Names(vec![n("x"), n("y")])),
                format!("{}!x,y", full("-bar.drv")),
            ),
            (
                DerivedPath::Built {
                    drv_path: SingleDerivedPath::Built {
                        drv_path: Box::new(SingleDerivedPath::Opaque(p("-a.drv"))),
                        output: n("out"),
                    },
                    outputs: OutputsSpec::Names(vec![n("bin")]),
                },
                format!("{}!out!bin", full("-a.drv")),
            ),
        ];
        for (value, text) in cases {
            assert_eq!(value.to_legacy_string(&dir), text);
            assert_eq!(
                DerivedPath::parse_legacy(&dir, text.as_bytes()).expect("parses"),
                value
            );
        }
    }

    #[test]
    fn old_form_means_outputs_for_a_derivation() {
        let dir = StoreDir::default();
        let drv = full("-bar.drv");
        assert_eq!(
            DerivedPath::parse_path_with_outputs(&dir, drv.as_bytes()).expect("parses"),
            DerivedPath::built(p("-bar.drv"), OutputsSpec::All)
        );
        let value = DerivedPath::built(p("-bar.drv"), OutputsSpec::Names(vec![n("x"), n("y")]));
        let text = value.to_path_with_outputs(&dir).expect("sayable");
        assert_eq!(text, format!("{drv}!x,y"));
        assert_eq!(
            DerivedPath::parse_path_with_outputs(&dir, text.as_bytes()).expect("parses"),
            value
        );
        // What the old form cannot say.
        assert!(matches!(
            DerivedPath::Opaque(p("-bar.drv")).to_path_with_outputs(&dir),
            Err(DerivedPathError::TooOld { .. })
        ));
        assert!(matches!(
            DerivedPath::built(p("-bar.drv"), OutputsSpec::Names(vec![]))
                .to_path_with_outputs(&dir),
            Err(DerivedPathError::NoOutputs { .. })
        ));
        assert!(DerivedPath::parse_path_with_outputs(&dir, format!("{drv}!").as_bytes()).is_err());
        assert!(DerivedPath::parse_legacy(&dir, format!("{drv}!").as_bytes()).is_err());
        assert!(DerivedPath::parse_legacy(&dir, b"/nix/store/x!out").is_err());
    }
}
