//! `nixwire path-info --store STORE [-r] [--json] PATH...`: what a store
//! knows of paths (and, with `-r`, of their closure), printed as Nix 2.8's
//! `nix path-info` prints it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use clap::Args;
use nixwire_core::store::{PathInfo, StoreDir, StorePath};
use serde_json::{Map, Value, json};

use crate::remote::{Remote, Runtime, one_line, options};

/// Arguments of `nixwire path-info`.
#[derive(Debug, Args)]
pub(crate) struct PathInfoArgs {
    /// The store to ask (see `nixwire ping`).
    #[arg(long, default_value = "auto")]
    store: String,
    /// Also every path the given ones refer to, transitively.
    #[arg(short, long)]
    recursive: bool,
    /// Print JSON, as `nix path-info --json` does.
    #[arg(long)]
    json: bool,
    /// The JSON's shape: `list` (Nix 2.8: an array of objects) or `object`
    /// (newer Nix: an object keyed by path).
    #[arg(long, value_enum, default_value = "list")]
    json_format: JsonFormat,
    /// The runtime that drives the connection.
    #[arg(long, value_enum, default_value = "tokio")]
    runtime: Runtime,
    /// Store paths, in full (`/nix/store/...`).
    #[arg(required = true)]
    paths: Vec<String>,
}

/// The shape of `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum JsonFormat {
    List,
    Object,
}

/// Runs `nixwire path-info`: exit 0 when every path is valid, 1 when one is
/// not or the store fails (the reason on stderr).
pub(crate) fn run(args: PathInfoArgs) -> ExitCode {
    match query(&args) {
        Ok(all_valid) if all_valid => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            say!("nixwire: path-info: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Asks, prints, and says whether every path was valid.
fn query(args: &PathInfoArgs) -> Result<bool, String> {
    let dir = StoreDir::default();
    let asked = args
        .paths
        .iter()
        .map(|p| {
            dir.parse_path(p.as_bytes())
                .map_err(|e| format!("{p:?} is not a store path: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = options()?;
    let mut remote = Remote::open(args.runtime, &args.store, &options)
        .map_err(|e| format!("cannot open {}: {}", args.store, one_line(&e)))?;
    let found = infos(&mut remote, &asked, args.recursive).map_err(|e| one_line(&e))?;
    if let Err(e) = remote.close() {
        say!("nixwire: closing {}: {}", args.store, one_line(&e));
    }
    // Nix prints in its sets' order: by the paths' text.
    let mut shown: Vec<&StorePath> = if args.recursive {
        found.keys().collect()
    } else {
        asked.iter().collect::<BTreeSet<_>>().into_iter().collect()
    };
    shown.sort_by_key(|p| p.to_string());
    shown.dedup();
    let all_valid = shown.iter().all(|p| found.contains_key(*p));
    if args.json {
        let entries: Vec<(String, Value)> = shown
            .iter()
            .map(|p| (dir.display_path(p), json_of(&dir, p, found.get(*p))))
            .collect();
        let out = match args.json_format {
            JsonFormat::List => Value::Array(entries.into_iter().map(|(_, v)| v).collect()),
            JsonFormat::Object => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, mut v)| {
                        if let Value::Object(m) = &mut v {
                            m.remove("path");
                        }
                        (k, v)
                    })
                    .collect(),
            ),
        };
        println!("{out}");
        return Ok(all_valid);
    }
    for path in shown {
        if found.contains_key(path) {
            println!("{}", dir.display_path(path));
        } else {
            say!("error: path '{}' is not valid", dir.display_path(path));
        }
    }
    Ok(all_valid)
}

/// The infos of `asked` and, when `recursive`, of their closure: one
/// round of queries per level of references, each round one pipelined
/// request.
fn infos(
    remote: &mut Remote,
    asked: &[StorePath],
    recursive: bool,
) -> Result<BTreeMap<StorePath, PathInfo>, nixwire_core::runtime::Error> {
    let mut found = BTreeMap::new();
    let mut seen: BTreeSet<StorePath> = asked.iter().cloned().collect();
    let mut round: Vec<StorePath> = seen.iter().cloned().collect();
    while !round.is_empty() {
        let mut next = Vec::new();
        for (path, info) in remote.query_path_infos(&round)? {
            if recursive {
                for r in &info.references {
                    if seen.insert(r.clone()) {
                        next.push(r.clone());
                    }
                }
            }
            found.insert(path, info);
        }
        round = next;
    }
    Ok(found)
}

/// One path as Nix 2.8's `nix path-info --json` shows it.
fn json_of(dir: &StoreDir, path: &StorePath, info: Option<&PathInfo>) -> Value {
    let mut m = Map::new();
    m.insert("path".into(), json!(dir.display_path(path)));
    let Some(info) = info else {
        m.insert("valid".into(), json!(false));
        return Value::Object(m);
    };
    if let Some(hash) = &info.nar_hash {
        m.insert("narHash".into(), json!(hash.to_hash().to_sri()));
    }
    m.insert("narSize".into(), json!(info.nar_size));
    let mut references: Vec<String> = info
        .references
        .iter()
        .map(|r| dir.display_path(r))
        .collect();
    references.sort();
    m.insert("references".into(), json!(references));
    if let Some(ca) = &info.ca {
        m.insert("ca".into(), json!(ca.render()));
    }
    if let Some(deriver) = &info.deriver {
        m.insert("deriver".into(), json!(dir.display_path(deriver)));
    }
    if info.registration_time != 0 {
        m.insert("registrationTime".into(), json!(info.registration_time));
    }
    if info.ultimate {
        m.insert("ultimate".into(), json!(true));
    }
    if !info.sigs.is_empty() {
        let sigs: Vec<String> = info.sigs.iter().map(ToString::to_string).collect();
        m.insert("signatures".into(), json!(sigs));
    }
    Value::Object(m)
}
