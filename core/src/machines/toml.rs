//! Lix's TOML machines format, version 1.
//!
//! ```toml
//! version = 1                      # optional; only 1 is accepted
//!
//! [machines.builder-a]             # the table name identifies the machine
//! uri = "ssh://nix@builder-a"      # required, non-empty
//! system-types = ["x86_64-linux"]  # default: ParseOptions::default_systems
//! ssh-key = "/etc/nix/id_builder"  # default: none
//! jobs = 8                         # default: 1
//! speed-factor = 2.5               # integer or float; 0 means 1; default 1
//! supported-features = ["kvm"]
//! mandatory-features = []
//! ssh-public-host-key = "ssh-ed25519 AAAA..."  # in clear; stored base64-encoded
//! enable = true                    # or `enabled`; false drops the machine
//! ```
//!
//! Unknown keys are rejected, at the top level too. Machines come out in
//! file order. A machine with `enable = false` is checked like any other
//! (a missing `uri` or a negative speed factor is still an error, as in
//! Lix) and then dropped.
//!
//! Deliberate differences from Lix, which keep the TOML format in line
//! with the line format: a schemeless URI gets `ssh://` in front (Lix keeps
//! it as written, and opening that store fails later), an empty `uri` is an
//! error, a speed factor of 0 means 1 (Lix keeps 0), a speed factor that is
//! not finite is an error, and `enabled` is accepted as well as Lix's
//! `enable`.
//!
//! Detection ([`probe`]): a source is read as TOML when it is a TOML
//! document with at least one top-level key. Line-format files never are:
//! their entries are not `key = value` pairs.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use toml::Spanned;

use super::error::{Location, LocationCursor, MachinesError};
use super::{Machine, ParseOptions, ParsedMachine, normalize_uri};
use crate::store::base64;

/// The only format version there is.
pub const VERSION: i64 = 1;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    version: Option<Spanned<i64>>,
    machines: BTreeMap<String, Spanned<TomlMachine>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct TomlMachine {
    uri: Option<Spanned<String>>,
    system_types: Option<BTreeSet<String>>,
    ssh_key: Option<String>,
    jobs: Option<u32>,
    speed_factor: Option<Spanned<f32>>,
    supported_features: Option<BTreeSet<String>>,
    mandatory_features: Option<BTreeSet<String>>,
    ssh_public_host_key: Option<String>,
    #[serde(alias = "enable")]
    enabled: Option<bool>,
}

/// What [`probe`] found.
#[derive(Debug)]
pub enum Probe {
    /// A TOML document with top-level keys: read it as Lix's format.
    Toml,
    /// Not Lix's format: read it as lines. Carries the TOML syntax error, if
    /// the text was not TOML at all, for reporting when the line format
    /// fails as well.
    NotToml(Option<Box<MachinesError>>),
}

/// Decides whether `text` (from source `name`) is in Lix's TOML format.
pub fn probe(name: &str, text: &str) -> Probe {
    match toml::from_str::<toml::Table>(text) {
        Ok(table) if !table.is_empty() => Probe::Toml,
        Ok(_) => Probe::NotToml(None),
        Err(e) => Probe::NotToml(Some(Box::new(from_toml_error(name, text, &e)))),
    }
}

/// Shortens a token for messages, keeping whole characters.
fn shorten(token: &str) -> String {
    const MAX: usize = 60;
    let first_line = token.lines().next().unwrap_or("");
    if first_line.chars().count() > MAX || first_line.len() < token.len() {
        let cut: String = first_line.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        first_line.to_owned()
    }
}

fn error_at(
    name: &str,
    text: &str,
    span: std::ops::Range<usize>,
    message: String,
) -> MachinesError {
    let mut token = text.get(span.clone()).map(shorten).unwrap_or_default();
    if token.is_empty() {
        // Syntax errors often point between characters; show what follows.
        let rest = text.get(span.start..).unwrap_or("");
        let word = rest.split(char::is_whitespace).next().unwrap_or("");
        token = if word.is_empty() {
            "end of line".to_owned()
        } else {
            shorten(word)
        };
    }
    MachinesError::Toml {
        at: Location::at_offset(name, text, span.start),
        token,
        message,
    }
}

fn from_toml_error(name: &str, text: &str, e: &toml::de::Error) -> MachinesError {
    let span = e.span().unwrap_or(0..0);
    error_at(name, text, span, e.message().trim_end().to_owned())
}

/// Reads `text` (from source `name`) as Lix's TOML format.
pub(crate) fn read(
    name: &str,
    text: &str,
    options: &ParseOptions,
) -> Result<Vec<ParsedMachine>, MachinesError> {
    let file: TomlFile = toml::from_str(text).map_err(|e| from_toml_error(name, text, &e))?;
    if let Some(version) = &file.version
        && *version.get_ref() != VERSION
    {
        return Err(error_at(
            name,
            text,
            version.span(),
            format!(
                "unsupported version {}, expected version {VERSION}",
                version.get_ref()
            ),
        ));
    }
    let mut entries: Vec<(String, Spanned<TomlMachine>)> = file.machines.into_iter().collect();
    entries.sort_by_key(|(_, m)| m.span().start);
    // Machines are visited in file order, so one cursor walks the text once
    // for all their locations.
    let mut cursor = LocationCursor::new(name, text, 1);
    let mut out = Vec::new();
    for (machine_name, spanned) in entries {
        let span = spanned.span();
        let m = spanned.into_inner();
        // A disabled machine is still checked in full, as Lix does, so that
        // enabling it later cannot turn up an error nobody saw; it is
        // dropped only once it has proved valid.
        let enabled = m.enabled != Some(false);
        let uri = match m.uri {
            Some(u) if !u.get_ref().is_empty() => normalize_uri(u.get_ref()),
            Some(u) => {
                return Err(error_at(
                    name,
                    text,
                    u.span(),
                    format!("machine `{machine_name}`: `uri` is empty, expected a store URI"),
                ));
            }
            None => {
                return Err(error_at(
                    name,
                    text,
                    span,
                    format!("machine `{machine_name}`: missing `uri`, expected a store URI"),
                ));
            }
        };
        let speed_factor = match m.speed_factor {
            None => 1.0,
            Some(s) => {
                let v = *s.get_ref();
                if v.is_nan() || v.is_infinite() || v < 0.0 {
                    return Err(error_at(
                        name,
                        text,
                        s.span(),
                        format!(
                            "machine `{machine_name}`: `speed-factor` is {v}, expected a finite number >= 0"
                        ),
                    ));
                }
                if v == 0.0 { 1.0 } else { v }
            }
        };
        let at = cursor.at(span.start);
        if !enabled {
            continue;
        }
        out.push(ParsedMachine {
            machine: Machine {
                uri,
                systems: m
                    .system_types
                    .unwrap_or_else(|| options.default_systems.clone()),
                ssh_key: m.ssh_key.filter(|k| !k.is_empty()),
                max_jobs: m.jobs.unwrap_or(1),
                speed_factor,
                supported_features: m.supported_features.unwrap_or_default(),
                mandatory_features: m.mandatory_features.unwrap_or_default(),
                ssh_public_host_key: m
                    .ssh_public_host_key
                    .filter(|k| !k.is_empty())
                    .map(|k| base64::encode(k.as_bytes())),
            },
            at,
            name: Some(machine_name),
        });
    }
    Ok(out)
}
