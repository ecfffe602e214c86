//! Nix's line format for machines files and the `builders` setting.
//!
//! The text is split into lines; everything from `#` to the end of a line is
//! a comment; each line is split on `;` into entries, which are trimmed and
//! skipped when empty. An entry `@path` includes another source. Any other
//! entry has up to 8 columns separated by spaces, tabs or carriage returns:
//!
//! | # | column | when missing or `-` |
//! |---|--------|---------------------|
//! | 1 | store URI (schemeless means `ssh://`) | error |
//! | 2 | systems, comma-separated | [`ParseOptions::default_systems`] |
//! | 3 | ssh private key path | none |
//! | 4 | max jobs, unsigned 32-bit | 1 |
//! | 5 | speed factor, float; 0 means 1; negative is an error | 1 |
//! | 6 | supported features, comma-separated | none |
//! | 7 | mandatory features, comma-separated | none |
//! | 8 | ssh public host key, base64 (checked, kept encoded) | none |
//!
//! Columns after the 8th are ignored, as in Nix. Comma-separated lists drop
//! empty items, so `,` alone is an explicitly empty list.
//!
//! Deliberate difference from Nix: a speed factor that is not finite (`nan`,
//! `inf`, or too large for a 32-bit float) is an error, since it would make
//! the load ordering meaningless.

use crate::store::base64;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use thiserror::Error;

use super::error::{Column, Location, LocationCursor, MachinesError, Warning, WarningKind};
use super::{
    FileSource, Format, MAX_INCLUDE_DEPTH, Machine, MachinesFile, ParseOptions, ParsedMachine,
    normalize_uri,
};

/// Characters that separate columns (Nix's default tokenizer set).
const COLUMN_SEPARATORS: [char; 4] = [' ', '\t', '\n', '\r'];

fn is_separator(c: char) -> bool {
    COLUMN_SEPARATORS.contains(&c)
}

/// A piece of a line together with its byte offset in that line.
#[derive(Debug, Clone, Copy)]
struct Piece<'a> {
    text: &'a str,
    offset: usize,
}

fn trim_piece(p: Piece<'_>) -> Piece<'_> {
    let start = p.text.len() - p.text.trim_start_matches(is_separator).len();
    let text = p.text[start..].trim_end_matches(is_separator);
    Piece {
        text,
        offset: p.offset + start,
    }
}

fn split_pieces(p: Piece<'_>, sep: impl Fn(char) -> bool) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in p.text.char_indices() {
        if sep(c) {
            if let Some(s) = start.take() {
                out.push(Piece {
                    text: &p.text[s..i],
                    offset: p.offset + s,
                });
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(Piece {
            text: &p.text[s..],
            offset: p.offset + s,
        });
    }
    out
}

/// Splits a column into a set the way Nix does: on `,`, dropping empty items.
fn comma_set(s: &str) -> BTreeSet<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a max-jobs column as Nix's `string2Int<unsigned int>` does: an
/// optional `+`, decimal digits, within `u32`; `-` signs are refused.
fn parse_max_jobs(token: &str) -> Option<u32> {
    let digits = token.strip_prefix('+').unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

enum SpeedError {
    NotANumber,
    Negative,
    NotFinite,
}

/// Parses a speed-factor column: a float, 0 (or -0) meaning 1.
fn parse_speed(token: &str) -> Result<f32, SpeedError> {
    let value: f32 = token.parse().map_err(|_| SpeedError::NotANumber)?;
    if value.is_nan() {
        return Err(SpeedError::NotFinite);
    }
    if value < 0.0 {
        return Err(SpeedError::Negative);
    }
    if value.is_infinite() {
        return Err(SpeedError::NotFinite);
    }
    Ok(if value == 0.0 { 1.0 } else { value })
}

/// Whether some line starts like TOML: a `[table]` header or `key =`.
fn looks_like_toml(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start();
        if line.starts_with('[') {
            return true;
        }
        let key_len = line
            .find(|c: char| {
                !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' || c == '"')
            })
            .unwrap_or(line.len());
        key_len > 0 && line[key_len..].trim_start().starts_with('=')
    })
}

/// Reads sources recursively, collecting machines and warnings.
pub(crate) struct Reader<'a> {
    options: &'a ParseOptions,
    files: &'a dyn FileSource,
    /// Name of the top-level source, for include chains in errors.
    root: String,
    /// Names of the included sources being read, outermost first. The
    /// top-level source is kept apart in `root` and not checked for cycles,
    /// since its name may be a label such as `<builders>` rather than a
    /// path; a file that includes the top-level file again is stopped by
    /// the depth limit instead.
    stack: Vec<String>,
    /// How many times included files have been read so far, against
    /// [`ParseOptions::max_include_reads`].
    include_reads: usize,
    machines: Vec<ParsedMachine>,
    warnings: Vec<Warning>,
}

impl<'a> Reader<'a> {
    /// A reader for the top-level source named `root`.
    pub(crate) fn new(root: &str, options: &'a ParseOptions, files: &'a dyn FileSource) -> Self {
        Self {
            options,
            files,
            root: root.to_owned(),
            stack: Vec::new(),
            include_reads: 0,
            machines: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The sources being read, top level first, joined with ` -> `.
    fn chain(&self) -> String {
        let mut chain = self.root.clone();
        for name in &self.stack {
            chain.push_str(" -> ");
            chain.push_str(name);
        }
        chain
    }

    /// Reads one source, detecting its format; returns the format used.
    pub(crate) fn read_source(&mut self, name: &str, text: &str) -> Result<Format, MachinesError> {
        match super::toml::probe(name, text) {
            super::toml::Probe::Toml => {
                let parsed = super::toml::read(name, text, self.options)?;
                for p in parsed {
                    self.push_machine(p)?;
                }
                Ok(Format::Toml)
            }
            super::toml::Probe::NotToml(toml_error) => {
                self.read_lines_detected(name, text, toml_error.map(|e| *e))?;
                Ok(Format::Lines)
            }
        }
    }

    fn read_lines_detected(
        &mut self,
        name: &str,
        text: &str,
        toml_error: Option<MachinesError>,
    ) -> Result<(), MachinesError> {
        let before = self.machines.len();
        let warnings_before = self.warnings.len();
        match self.read_lines(name, text) {
            Ok(saw_equals) => match toml_error {
                Some(toml_error) if saw_equals && looks_like_toml(text) => {
                    self.machines.truncate(before);
                    self.warnings.truncate(warnings_before);
                    Err(toml_error)
                }
                _ => Ok(()),
            },
            Err(legacy) => match toml_error {
                // A budget running out says nothing about the format.
                Some(_) if legacy.is_budget_exceeded() => Err(legacy),
                // Only errors in this very source are ambiguous (an error
                // inside an include says nothing about this source's
                // format), and only when the text looks like it was meant
                // as TOML; otherwise the TOML error is noise.
                Some(toml) if legacy.location().file == name && looks_like_toml(text) => {
                    Err(MachinesError::NeitherFormat {
                        legacy: Box::new(legacy),
                        toml: Box::new(toml),
                    })
                }
                _ => Err(legacy),
            },
        }
    }

    /// Fails when one more machine, defined at `at`, would exceed
    /// [`ParseOptions::max_machines`].
    fn check_machine_budget(&self, at: &Location) -> Result<(), MachinesError> {
        if self.machines.len() >= self.options.max_machines {
            return Err(MachinesError::TooManyMachines {
                at: at.clone(),
                chain: self.chain(),
                count: self.machines.len() + 1,
                limit: self.options.max_machines,
            });
        }
        Ok(())
    }

    fn push_machine(&mut self, p: ParsedMachine) -> Result<(), MachinesError> {
        self.check_machine_budget(&p.at)?;
        if p.machine.systems.is_empty() {
            self.warnings.push(Warning {
                at: p.at.clone(),
                kind: WarningKind::NoSystems,
            });
        }
        self.machines.push(p);
        Ok(())
    }

    /// Reads `text` in the line format. Returns whether a systems column in
    /// this source (not its includes) contained `=`.
    fn read_lines(&mut self, name: &str, text: &str) -> Result<bool, MachinesError> {
        let mut saw_equals = false;
        for (index, line) in text.split('\n').enumerate() {
            let line_no = index + 1;
            // Comments are cut before splitting on `;`, so a `;` inside a
            // comment never starts an entry.
            let content = line.find('#').map_or(line, |i| &line[..i]);
            let entries: Vec<Piece<'_>> = split_pieces(
                Piece {
                    text: content,
                    offset: 0,
                },
                |c| c == ';',
            )
            .into_iter()
            .map(trim_piece)
            .filter(|p| !p.text.is_empty())
            .collect();
            // Entries (and the tokens inside them) are visited left to
            // right, so one cursor walks the line once for all their columns.
            let mut cursor = LocationCursor::new(name, line, line_no);
            if entries.len() > 1 {
                self.warnings.push(Warning {
                    at: cursor.at(entries[0].offset),
                    kind: WarningKind::HydraOneMachinePerLine,
                });
            }
            for entry in entries {
                let at = cursor.at(entry.offset);
                if let Some(path) = entry.text.strip_prefix('@') {
                    self.include(path.trim_matches(is_separator), at)?;
                } else {
                    // Checked before parsing, so that a budget cut short
                    // costs no further work.
                    self.check_machine_budget(&at)?;
                    let (machine, warnings, equals) =
                        parse_entry(&mut cursor, entry, self.options)?;
                    saw_equals |= equals;
                    self.warnings.extend(warnings);
                    self.push_machine(ParsedMachine {
                        machine,
                        at,
                        name: None,
                    })?;
                }
            }
        }
        Ok(saw_equals)
    }

    fn include(&mut self, path: &str, at: Location) -> Result<(), MachinesError> {
        self.warnings.push(Warning {
            at: at.clone(),
            kind: WarningKind::HydraNoIncludes,
        });
        if self.stack.iter().any(|s| s == path) {
            return Err(MachinesError::IncludeCycle {
                at,
                token: path.to_owned(),
                chain: self.stack.join(" -> "),
            });
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(MachinesError::IncludeTooDeep {
                at,
                token: path.to_owned(),
                limit: MAX_INCLUDE_DEPTH,
            });
        }
        // The depth limit alone still lets files that include the next one
        // twice cost 2^depth reads; this bounds the total.
        if self.include_reads >= self.options.max_include_reads {
            return Err(MachinesError::TooManyIncludeReads {
                at,
                token: path.to_owned(),
                chain: self.chain(),
                limit: self.options.max_include_reads,
            });
        }
        self.include_reads += 1;
        match self.files.read(Path::new(path)) {
            Ok(Some(text)) => {
                self.stack.push(path.to_owned());
                let result = self.read_source(path, &text);
                self.stack.pop();
                result.map(|_| ())
            }
            Ok(None) => {
                self.warnings.push(Warning {
                    at,
                    kind: WarningKind::MissingInclude {
                        path: path.to_owned(),
                    },
                });
                Ok(())
            }
            Err(source) => Err(MachinesError::Read {
                at,
                token: path.to_owned(),
                source,
            }),
        }
    }

    /// Completes reading: adds duplicate-URI warnings.
    pub(crate) fn finish(mut self, format: Format) -> MachinesFile {
        let mut seen: std::collections::BTreeMap<&str, &Location> = Default::default();
        let mut duplicates = Vec::new();
        for p in &self.machines {
            if let Some(first) = seen.get(p.machine.uri.as_str()) {
                duplicates.push(Warning {
                    at: p.at.clone(),
                    kind: WarningKind::DuplicateUri {
                        first: (*first).clone(),
                    },
                });
            } else {
                seen.insert(&p.machine.uri, &p.at);
            }
        }
        self.warnings.extend(duplicates);
        MachinesFile {
            format,
            machines: self.machines,
            warnings: self.warnings,
        }
    }

    /// Entry point for the root source, used by [`parse_lines`].
    fn read_root_lines(mut self, name: &str, text: &str) -> Result<MachinesFile, MachinesError> {
        self.read_lines(name, text)?;
        Ok(self.finish(Format::Lines))
    }
}

/// Parses one entry (already trimmed, not an include) into a machine.
///
/// Returns the machine, its Hydra warnings and whether its systems column
/// contained `=` (a sign of misparsed TOML).
fn parse_entry(
    cursor: &mut LocationCursor<'_>,
    entry: Piece<'_>,
    options: &ParseOptions,
) -> Result<(Machine, Vec<Warning>, bool), MachinesError> {
    let tokens = split_pieces(entry, is_separator);
    let entry_at = cursor.at(entry.offset);
    let is_set = |i: usize| tokens.get(i).filter(|t| t.text != "-");
    let bad = |cursor: &mut LocationCursor<'_>, p: Piece<'_>, column: Column, expected: &str| {
        MachinesError::BadColumn {
            at: cursor.at(p.offset),
            column,
            token: p.text.to_owned(),
            expected: expected.to_owned(),
        }
    };
    let mut warnings = Vec::new();

    let uri = match is_set(0) {
        Some(t) => normalize_uri(t.text),
        None => {
            return Err(bad(
                cursor,
                tokens.first().copied().unwrap_or(entry),
                Column::Uri,
                "a store URI or ssh host name (not `-`)",
            ));
        }
    };
    let systems_token = is_set(1);
    let systems =
        systems_token.map_or_else(|| options.default_systems.clone(), |t| comma_set(t.text));
    let saw_equals = systems_token.is_some_and(|t| t.text.contains('='));
    let ssh_key = is_set(2).map(|t| t.text.to_owned());
    let max_jobs = match is_set(3) {
        Some(t) => parse_max_jobs(t.text).ok_or_else(|| {
            bad(
                cursor,
                *t,
                Column::MaxJobs,
                "an unsigned integer below 2^32 (or `-` for 1)",
            )
        })?,
        None => 1,
    };
    let speed_factor = match is_set(4) {
        Some(t) => parse_speed(t.text).map_err(|e| {
            let expected = match e {
                SpeedError::NotANumber => "a decimal number >= 0 (or `-` for 1)",
                SpeedError::Negative => "a speed factor >= 0 (0 means 1)",
                SpeedError::NotFinite => "a finite speed factor >= 0",
            };
            bad(cursor, *t, Column::SpeedFactor, expected)
        })?,
        None => 1.0,
    };
    let supported_features = is_set(5).map_or_else(BTreeSet::new, |t| comma_set(t.text));
    let mandatory_features = is_set(6).map_or_else(BTreeSet::new, |t| comma_set(t.text));
    let ssh_public_host_key = match is_set(7) {
        Some(t) => {
            if let Err((offset, c)) = base64::check(t.text) {
                let mut err = bad(
                    cursor,
                    *t,
                    Column::SshPublicHostKey,
                    "base64 (A-Z, a-z, 0-9, `+`, `/`, then `=` padding)",
                );
                if let MachinesError::BadColumn { at, expected, .. } = &mut err {
                    // Point at the bad character itself, not the token.
                    *at = cursor.at(t.offset + offset);
                    let _ = write!(expected, "; `{c}` is not a base64 character");
                }
                return Err(err);
            }
            Some(t.text.to_owned())
        }
        None => None,
    };

    // What Hydra's legacy parser would have done differently.
    if tokens.len() < 3 {
        warnings.push(Warning {
            at: entry_at.clone(),
            kind: WarningKind::HydraIgnoredShortEntry {
                columns: tokens.len(),
            },
        });
    } else {
        let speed_unset_or_zero = match tokens.get(4) {
            None => true,
            Some(t) => t.text == "-" || t.text.parse::<f32>().is_ok_and(|v| v == 0.0),
        };
        if speed_unset_or_zero {
            let at = tokens
                .get(4)
                .map_or_else(|| entry_at.clone(), |p| cursor.at(p.offset));
            warnings.push(Warning {
                at,
                kind: WarningKind::HydraSpeedReadAsZero,
            });
        }
    }
    let unlisted: Vec<String> = mandatory_features
        .difference(&supported_features)
        .cloned()
        .collect();
    if !unlisted.is_empty() {
        let at = tokens
            .get(6)
            .map_or_else(|| entry_at.clone(), |p| cursor.at(p.offset));
        warnings.push(Warning {
            at,
            kind: WarningKind::HydraMandatoryAddedToSupported { features: unlisted },
        });
    }
    if tokens.first().is_some_and(|t| t.text.contains("://")) {
        warnings.push(Warning {
            at: entry_at.clone(),
            kind: WarningKind::HydraSchemeInHostColumn,
        });
    }
    if let Some(ninth) = tokens.get(8) {
        warnings.push(Warning {
            at: cursor.at(ninth.offset),
            kind: WarningKind::ExtraColumns {
                columns: tokens.len(),
            },
        });
    }

    Ok((
        Machine {
            uri,
            systems,
            ssh_key,
            max_jobs,
            speed_factor,
            supported_features,
            mandatory_features,
            ssh_public_host_key,
        },
        warnings,
        saw_equals,
    ))
}

/// Reads `text` strictly in the line format, exactly as Nix's
/// `Machine::parseConfig` does, without TOML detection at the top level
/// (included files are still detected).
pub fn parse_lines(
    name: &str,
    text: &str,
    options: &ParseOptions,
    files: &dyn FileSource,
) -> Result<MachinesFile, MachinesError> {
    Reader::new(name, options, files).read_root_lines(name, text)
}

/// Why a machine cannot be written in the line format so that it reads back
/// the same.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot write {column} value `{value}` in the line format: {reason}")]
pub struct RenderError {
    /// The column that cannot be written.
    pub column: Column,
    /// The value, as far as it could be formatted.
    pub value: String,
    /// Why not.
    pub reason: &'static str,
}

fn check_word(column: Column, value: &str) -> Result<(), RenderError> {
    let err = |reason| RenderError {
        column,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(err("it is empty"));
    }
    if value == "-" {
        return Err(err("`-` reads back as unset"));
    }
    if value.contains(|c: char| is_separator(c) || c == '#' || c == ';') {
        return Err(err("it contains whitespace, `#` or `;`"));
    }
    Ok(())
}

fn render_set(column: Column, set: &BTreeSet<String>, empty: &str) -> Result<String, RenderError> {
    if set.is_empty() {
        return Ok(empty.to_owned());
    }
    for item in set {
        if item.is_empty() || item.contains(',') {
            return Err(RenderError {
                column,
                value: item.clone(),
                reason: "a list item is empty or contains `,`",
            });
        }
    }
    let joined = set.iter().map(String::as_str).collect::<Vec<_>>().join(",");
    check_word(column, &joined)?;
    Ok(joined)
}

/// Writes `machine` as one line of the line format with all 8 columns.
///
/// Parsing the result with any [`ParseOptions`] gives back `machine`: an
/// empty systems set is written as `,` (explicitly empty) rather than `-`,
/// which would mean the default systems. Values that cannot survive that
/// round trip are refused.
pub fn render_line(machine: &Machine) -> Result<String, RenderError> {
    check_word(Column::Uri, &machine.uri)?;
    if machine.uri.starts_with('@') || normalize_uri(&machine.uri) != machine.uri {
        return Err(RenderError {
            column: Column::Uri,
            value: machine.uri.clone(),
            reason: "it would read back as an include or with `ssh://` added",
        });
    }
    let systems = render_set(Column::Systems, &machine.systems, ",")?;
    let ssh_key = match &machine.ssh_key {
        Some(k) => {
            check_word(Column::SshKey, k)?;
            k.clone()
        }
        None => "-".to_owned(),
    };
    if !(machine.speed_factor.is_finite() && machine.speed_factor > 0.0) {
        return Err(RenderError {
            column: Column::SpeedFactor,
            value: machine.speed_factor.to_string(),
            reason: "it is not finite and positive",
        });
    }
    let supported = render_set(Column::SupportedFeatures, &machine.supported_features, "-")?;
    let mandatory = render_set(Column::MandatoryFeatures, &machine.mandatory_features, "-")?;
    let host_key = match &machine.ssh_public_host_key {
        Some(k) => {
            check_word(Column::SshPublicHostKey, k)?;
            if base64::check(k).is_err() {
                return Err(RenderError {
                    column: Column::SshPublicHostKey,
                    value: k.clone(),
                    reason: "it is not base64",
                });
            }
            k.clone()
        }
        None => "-".to_owned(),
    };
    // f32's Display prints the shortest decimal that parses back to the
    // same value, so the speed factor survives exactly.
    Ok(format!(
        "{} {} {} {} {} {} {} {}",
        machine.uri,
        systems,
        ssh_key,
        machine.max_jobs,
        machine.speed_factor,
        supported,
        mandatory,
        host_key
    ))
}
