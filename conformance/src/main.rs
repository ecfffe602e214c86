//! `nixwire-conformance [--runtime R --transport T ...] PATH...`: checks
//! every transcript under the paths and prints one line each, then
//! `N passed, M failed`. Exits 1 if any failed.
//!
//! With `--runtime tokio|smol|blocking`, the client role runs through that
//! runtime and a real transport (`--transport process`: `nixwire-replay` as
//! a child; `--transport ssh`: through the sshd given), the replay playing
//! the recorded server and checking the client's bytes as they come.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nixwire_conformance::link::{Link, Runtime, SshTarget, Transport};
use nixwire_conformance::{Verdict, check_file, transcript};

/// Replays captured Nix sessions against nixwire.
#[derive(Debug, Parser)]
#[command(name = "nixwire-conformance")]
struct Args {
    /// Who drives the client: core (in memory), tokio, smol or blocking.
    #[arg(long, default_value = "core")]
    runtime: Runtime,
    /// How the bytes travel: memory (core only), process or ssh.
    #[arg(long)]
    transport: Option<Transport>,
    /// The sshd's host, for `--transport ssh`.
    #[arg(long, default_value = "127.0.0.1")]
    ssh_host: String,
    /// The sshd's port.
    #[arg(long)]
    ssh_port: Option<u16>,
    /// The user to log in as.
    #[arg(long)]
    ssh_user: Option<String>,
    /// The private key to log in with.
    #[arg(long)]
    ssh_key: Option<PathBuf>,
    /// The sshd's host key, base64 of its public key line (pinned).
    #[arg(long)]
    ssh_host_key: Option<String>,
    /// How many transcripts to check at once (default: the CPUs; a runtime
    /// over ssh spends most of its time waiting).
    #[arg(long)]
    jobs: Option<usize>,
    /// The replay program (default: `nixwire-replay` beside this program).
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Transcript files, or folders of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let transport = args.transport.unwrap_or(match args.runtime {
        Runtime::Core => Transport::Memory,
        _ => Transport::Process,
    });
    let replay = args.replay.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("nixwire-replay")))
            .unwrap_or_else(|| PathBuf::from("nixwire-replay"))
    });
    let link = Link {
        runtime: args.runtime,
        transport,
        ssh: args.ssh_port.map(|port| SshTarget {
            host: args.ssh_host.clone(),
            port,
            user: args.ssh_user.clone(),
            key: args.ssh_key.clone(),
            host_key: args.ssh_host_key.clone(),
        }),
        replay,
    };
    if let Err(e) = link.check() {
        eprintln!("nixwire-conformance: {e}");
        return ExitCode::from(2);
    }
    let verbose = std::env::var_os("NIXWIRE_CONFORMANCE_VERBOSE").is_some();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut files = Vec::new();
    for arg in &args.paths {
        match transcript::find(arg) {
            Ok(f) if f.is_empty() => {
                println!("FAIL {}: no transcripts (conn*.json) found", arg.display());
                failed += 1;
            }
            Ok(f) => files.extend(f),
            Err(e) => {
                println!("FAIL {}: {e}", arg.display());
                failed += 1;
            }
        }
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    for (name, verdict) in check_all(&files, &link, jobs) {
        match verdict {
            Verdict::Ok(detail) => {
                passed += 1;
                if verbose {
                    // One line per transcript, whatever the messages hold.
                    let detail = detail.replace('\n', " ");
                    println!("ok {name} ({detail})");
                } else {
                    println!("ok {name}");
                }
            }
            Verdict::Fail(why) => {
                failed += 1;
                println!("FAIL {name}: {}", why.replace('\n', " "));
            }
            Verdict::Skip(why) => {
                skipped += 1;
                println!("skip {name}: {why}");
            }
        }
    }
    if skipped > 0 {
        eprintln!("{skipped} transcripts skipped (protocol not implemented)");
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Checks `files` on `jobs` threads; the verdicts in the files' order.
fn check_all(files: &[PathBuf], link: &Link, jobs: usize) -> Vec<(String, Verdict)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut verdicts: Vec<Option<(String, Verdict)>> = vec![None; files.len()];
    let done = std::sync::Mutex::new(&mut verdicts);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(files.len()) {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(file) = files.get(n) else { return };
                    let verdict = check_file(file, link);
                    if let Ok(mut all) = done.lock() {
                        all[n] = Some(verdict);
                    }
                }
            });
        }
    });
    verdicts
        .into_iter()
        .zip(files)
        .map(|(v, file)| {
            v.unwrap_or_else(|| {
                (
                    file.display().to_string(),
                    Verdict::Fail("its check did not finish".into()),
                )
            })
        })
        .collect()
}
