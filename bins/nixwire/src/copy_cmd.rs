//! `nixwire copy --to STORE PATH...` and `nixwire copy --from STORE PATH...`:
//! copies the closure of paths from one store to another, like `nix copy`.
//!
//! The core's [`ClosureCopy`] plans it: the closure's path infos come from
//! the source a level of references at a time (one batched query each),
//! the destination is asked once which of them it holds, and the missing
//! ones are sent in topological order, all in one request to the
//! destination, their NARs streamed from the source one after another
//! through [`Remote::copy_nars`] and each checked on the way. Signatures are not checked (`nix copy --no-check-sigs`): the
//! destination is told not to.

use std::process::ExitCode;

use clap::Args;
use nixwire_core::flows::copy::{ClosureCopy, Want};
use nixwire_core::store::StoreDir;

use crate::local_nar;
use crate::remote::{Remote, Runtime, one_line, options};

/// Arguments of `nixwire copy`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("direction").required(true).args(["to", "from"]))]
pub(crate) struct CopyArgs {
    /// Copy into this store (from `--from-store`).
    #[arg(long)]
    to: Option<String>,
    /// Copy from this store (into `--to-store`).
    #[arg(long)]
    from: Option<String>,
    /// The source of `--to` (a store URI, or a chroot store's path).
    #[arg(long, default_value = "auto", conflicts_with = "from")]
    from_store: String,
    /// The destination of `--from`.
    #[arg(long, default_value = "auto", conflicts_with = "to")]
    to_store: String,
    /// Refuse, before anything is transferred, a copy whose NARs add up to
    /// more than this many bytes.
    #[arg(long)]
    max_size: Option<u64>,
    /// Seconds a request may wait with nothing arriving from a store (a
    /// stalled transfer, a stopped peer) before its connection is given up
    /// (fractions allowed; default: no limit).
    #[arg(long, value_name = "SECS", value_parser = crate::remote::parse_seconds)]
    stall_timeout: Option<std::time::Duration>,
    /// The runtime that drives both connections.
    #[arg(long, value_enum, default_value = "tokio")]
    runtime: Runtime,
    /// Store paths, in full (`/nix/store/...`); their closure is copied.
    #[arg(required = true)]
    paths: Vec<String>,
}

/// Runs `nixwire copy`: exit 0 when the closure is in the destination, 1
/// when it could not be copied (the reason on stderr, one line).
pub(crate) fn run(args: CopyArgs) -> ExitCode {
    match copy(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("nixwire: copy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn copy(args: &CopyArgs) -> Result<(), String> {
    let dir = StoreDir::default();
    let roots = args
        .paths
        .iter()
        .map(|p| {
            dir.parse_path(p.as_bytes())
                .map_err(|e| format!("{p:?} is not a store path: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let from = args.from.as_deref().unwrap_or(&args.from_store);
    let to = args.to.as_deref().unwrap_or(&args.to_store);
    let mut options = options()?;
    options.stall_timeout = args.stall_timeout;
    let mut source = Remote::open(args.runtime, from, &options)
        .map_err(|e| format!("cannot open {from}: {}", one_line(&e)))?;
    let mut dest = Remote::open(args.runtime, to, &options)
        .map_err(|e| format!("cannot open {to}: {}", one_line(&e)))?;

    let mut plan = ClosureCopy::new(roots, args.max_size);
    let transfer = loop {
        match plan.want() {
            Want::AskSource(paths) => {
                tracing::info!(paths = paths.len(), "asking {from} for path infos");
                let infos = source
                    .query_path_infos(&paths)
                    .map_err(|e| format!("asking {from} for path infos: {}", one_line(&e)))?;
                plan.source_answered(infos).map_err(|e| e.to_string())?;
            }
            Want::AskDestination(paths) => {
                tracing::info!(paths = paths.len(), "asking {to} which it holds");
                let valid = dest
                    .query_valid_paths(&paths)
                    .map_err(|e| format!("asking {to} for valid paths: {}", one_line(&e)))?;
                break plan
                    .destination_answered(valid)
                    .map_err(|e| e.to_string())?;
            }
            Want::Finished => return Err("the copy plan finished without a transfer".into()),
        }
    };

    // Every missing path in one request to the destination, their NARs
    // streamed from the source one after another: no round trip per path.
    let mut bytes = 0u64;
    if !transfer.paths.is_empty() {
        let bar = progress_bar(transfer.paths.len(), transfer.nar_size);
        let progress = |n: u64| {
            if let Some(bar) = &bar {
                bar.inc(n);
            }
        };
        // A source on this machine: its NARs come straight from its files.
        let files = local_nar::files_of(from);
        tracing::info!(
            paths = transfer.paths.len(),
            bytes = transfer.nar_size,
            from_files = files.is_some(),
            "sending the missing paths in one request to {to}"
        );
        let copied = source.copy_nars(&mut dest, &transfer.paths, files.as_deref(), &progress);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        bytes = copied.map_err(|e| match &e.path {
            Some(path) => format!("copying {}: {}", dir.display_path(path), one_line(&e)),
            None => format!(
                "copying {} paths into {to}: {}",
                transfer.paths.len(),
                one_line(&e)
            ),
        })?;
    }
    for (path, _) in &transfer.paths {
        println!("{}", dir.display_path(path));
    }
    say!(
        "nixwire: copied {} paths ({bytes} bytes), {} already there",
        transfer.paths.len(),
        transfer.already.len()
    );
    for (store, uri) in [(source, from), (dest, to)] {
        if let Err(e) = store.close() {
            say!("nixwire: closing {uri}: {}", one_line(&e));
        }
    }
    Ok(())
}

/// A progress bar of NAR bytes on a terminal; elsewhere one plain line
/// saying what is about to be copied, and no bar.
fn progress_bar(paths: usize, bytes: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        say!("nixwire: copying {paths} paths ({bytes} bytes of NAR)");
        return None;
    }
    let bar = indicatif::ProgressBar::new(bytes);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(format!("copying {paths} paths"));
    Some(bar)
}
