//! `nixwire machines`: check a machines file, or show which machine a step
//! would go to.
//!
//! The file is read with [`nixwire_core::machines::parse()`], the same code a
//! dispatcher uses; this module only supplies file access and prints.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};
use nixwire_core::machines::select::{BuiltinSystem, Ordering, Pool, PoolConfig, Step};
use nixwire_core::machines::{
    DEFAULT_MAX_INCLUDE_READS, DEFAULT_MAX_MACHINES, FileSource, MachinesFile, ParseOptions,
    host_system, parse,
};

/// Exit status for a file that cannot be read or parsed.
const EXIT_BAD_FILE: u8 = 1;
/// Exit status when no machine can take the step.
const EXIT_NO_MACHINE: u8 = 2;

/// Arguments of `nixwire machines`.
#[derive(Debug, Args)]
pub(crate) struct MachinesArgs {
    #[command(subcommand)]
    command: MachinesCommand,
}

#[derive(Debug, Subcommand)]
enum MachinesCommand {
    /// Print the effective machines of FILE, or the first error in it.
    ///
    /// FILE is in Nix's line format or Lix's TOML format (detected).
    /// Warnings, including where Hydra's legacy parser read the file
    /// differently, go to standard error.
    Check {
        /// The machines file.
        file: PathBuf,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Print the machine that would be chosen now for a step, or why none can.
    Select {
        /// The machines file.
        file: PathBuf,
        /// The step's system, such as x86_64-linux or builtin.
        #[arg(long)]
        system: String,
        /// Features the step requires, comma-separated.
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// The step has preferLocalBuild and could build locally (only
        /// matters with --hydra).
        #[arg(long)]
        prefer_local_build: bool,
        /// Use Hydra's C++ rules: rounded load ordering, `builtin` as the
        /// local system, mandatory `local` met by preferLocalBuild.
        #[arg(long)]
        hydra: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
}

/// How the file is read: which systems a machine without a systems column
/// gets, and the budgets that bound the work.
#[derive(Debug, Args)]
struct ReadArgs {
    /// System for machines that list none (default: this host's, as Nix).
    #[arg(long, value_name = "SYSTEM", conflicts_with = "no_default_system")]
    default_system: Option<String>,
    /// Give machines that list no systems none at all (as Hydra did).
    #[arg(long)]
    no_default_system: bool,
    /// Reads of `@path` included files allowed in all.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_INCLUDE_READS)]
    max_include_reads: usize,
    /// Machines allowed in all, includes counted.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_MACHINES)]
    max_machines: usize,
}

impl ReadArgs {
    fn options(&self) -> ParseOptions {
        let system = if self.no_default_system {
            None
        } else {
            self.default_system.clone().or_else(host_system)
        };
        let options = system.map_or_else(ParseOptions::default, |s| {
            ParseOptions::with_default_system(&s)
        });
        ParseOptions {
            max_include_reads: self.max_include_reads,
            max_machines: self.max_machines,
            ..options
        }
    }
}

/// Reads includes from the file system; a missing file is `None`, as Nix
/// skips missing includes.
pub(crate) struct StdFiles;

impl FileSource for StdFiles {
    fn read(&self, path: &Path) -> io::Result<Option<String>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Runs `nixwire machines`.
pub(crate) fn run(args: MachinesArgs) -> ExitCode {
    match args.command {
        MachinesCommand::Check { file, json, read } => check(&file, json, &read.options()),
        MachinesCommand::Select {
            file,
            system,
            features,
            prefer_local_build,
            hydra,
            read,
        } => {
            let options = read.options();
            let step = Step {
                prefer_local_build,
                ..Step::new(&system).with_features(features.into_iter().filter(|f| !f.is_empty()))
            };
            let config = if hydra {
                let local = options
                    .default_systems
                    .iter()
                    .next()
                    .cloned()
                    .or_else(host_system);
                PoolConfig {
                    builtin: local.map_or(BuiltinSystem::AnyMachine, BuiltinSystem::As),
                    ..PoolConfig::hydra("")
                }
            } else {
                PoolConfig::default()
            };
            select(&file, &step, config, &options)
        }
    }
}

/// Reads and parses `file`; warnings go to standard error when `warn`.
fn load(file: &Path, options: &ParseOptions, warn: bool) -> Result<MachinesFile, ExitCode> {
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            say!("error: cannot read {name}: {e}");
            return Err(ExitCode::from(EXIT_BAD_FILE));
        }
    };
    match parse(&name, &text, options, &StdFiles) {
        Ok(parsed) => {
            if warn {
                // Buffered: standard error is unbuffered, and a file with
                // many warnings otherwise costs several writes per warning.
                let mut err = io::BufWriter::new(io::stderr().lock());
                for w in &parsed.warnings {
                    // Nothing useful can be done when standard error fails.
                    let _ = writeln!(err, "warning: {w}");
                }
                let _ = err.flush();
            }
            Ok(parsed)
        }
        Err(e) => {
            say!("error: {e}");
            Err(ExitCode::from(EXIT_BAD_FILE))
        }
    }
}

fn check(file: &Path, json: bool, options: &ParseOptions) -> ExitCode {
    let parsed = match load(file, options, true) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let machines = parsed.machine_list();
    let out = if json {
        match serde_json::to_string_pretty(&machines) {
            Ok(s) => s + "\n",
            Err(e) => {
                say!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        table(&parsed)
    };
    // A closed pipe (`| head`) is not worth a panic or an error message.
    let _ = io::stdout().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

fn list(items: &std::collections::BTreeSet<String>) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.iter().cloned().collect::<Vec<_>>().join(",")
    }
}

fn table(parsed: &MachinesFile) -> String {
    let header = [
        "URI",
        "SYSTEMS",
        "JOBS",
        "SPEED",
        "SUPPORTED",
        "MANDATORY",
        "SSH-KEY",
        "HOST-KEY",
        "FROM",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    for p in &parsed.machines {
        let m = &p.machine;
        rows.push(vec![
            m.uri.clone(),
            list(&m.systems),
            m.max_jobs.to_string(),
            m.speed_factor.to_string(),
            list(&m.supported_features),
            list(&m.mandatory_features),
            m.ssh_key.clone().unwrap_or_else(|| "-".to_owned()),
            if m.ssh_public_host_key.is_some() {
                "yes"
            } else {
                "-"
            }
            .to_owned(),
            format!("{}:{}", p.at.file, p.at.line),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn select(file: &Path, step: &Step, config: PoolConfig, options: &ParseOptions) -> ExitCode {
    // Warnings are about the file, not the choice; `check` shows them.
    let parsed = match load(file, options, false) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let ordering = config.ordering;
    let pool = Pool::new(parsed.machine_list(), config);
    match pool.select(step, Instant::now()) {
        Ok(state) => {
            let m = state.machine();
            let _ = writeln!(io::stdout(), "{}", m.uri);
            let how = match ordering {
                Ordering::Nix => "lowest load per speed (Nix)",
                Ordering::HydraRounded => "lowest rounded load per speed (Hydra)",
            };
            say!(
                "chosen by {how}; speed {}, {} job slot(s), no jobs running",
                m.speed_factor,
                m.max_jobs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            say!("error: {e}");
            ExitCode::from(EXIT_NO_MACHINE)
        }
    }
}
