//! `nixwire build [--store STORE | --machines FILE] DRV...`: builds
//! derivations and every missing input derivation on build machines, and
//! copies the outputs into the local store, as `nix-build -j0 --builders`
//! does, but with one kept connection per machine slot.
//!
//! How the pieces fit: the core's [`Schedule`] decides what to build where
//! (the `.drv` files read here from the local store's directory, the
//! outputs already valid asked of the local store in one batch a level at
//! a time); each build it hands out runs as a core [`RemoteBuild`] on a
//! worker thread that keeps its connections (the local store and the
//! machine) from one build to the next, so a chain of builds pays for one
//! handshake per machine, not one per step. Workers report to the main
//! thread through one channel: phase changes, log pieces (written to
//! stderr as they come), the outcome. An interrupt (SIGINT, SIGTERM)
//! cancels every running build on its machine (Nix's servers then kill the
//! builders) and discards those connections.
//!
//! Machines come from `--store` (one machine, `-j` slots), `--machines
//! FILE`, or else as Nix finds them: the files in `NIX_REMOTE_SYSTEMS`
//! (colon-separated), else `$NIX_CONF_DIR/machines` (`/etc/nix/machines`);
//! when there are none, the embedded default: this machine through a local
//! `nix-store --serve --write` without ssh (`ssh://localhost`, as Hydra's
//! synthesised localhost was).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use nixwire_core::conn::{Log, LogSource};
use nixwire_core::flows::build::{
    Failure, FailureClass, Outcome, Phase, RemoteBuild, Side, Want as BuildWant,
};
use nixwire_core::flows::schedule::{Job, JobId, Next, NotBuilt, Schedule, State, Want};
use nixwire_core::machines::select::{Backoff, BuiltinSystem, Pool, PoolConfig};
use nixwire_core::machines::{Machine, ParseOptions, host_system, parse};
use nixwire_core::runtime::{Error, Options};
use nixwire_core::session::BuildSettings;
use nixwire_core::store::{Derivation, StoreDir, StorePath};
use nixwire_core::uri::StoreUri;

use crate::local_nar;
use crate::machines_cmd::StdFiles;
use crate::remote::{Canceller, Remote, Runtime, one_line, options};

/// Exit code of a build that failed (Nix's).
pub(crate) const EXIT_BUILD_FAILED: u8 = 100;
/// Exit code after an interrupt.
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// How many of a failed build's last log lines the error shows (Nix's
/// `log-lines` default).
const LOG_TAIL: usize = 25;

/// Arguments of `nixwire build`.
#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Build on this store (a store URI; one machine with `-j` slots).
    #[arg(long, conflicts_with = "machines")]
    store: Option<String>,
    /// Build on the machines of this file (Nix's format or Lix's TOML).
    #[arg(long)]
    machines: Option<PathBuf>,
    /// The store the derivations are read from and the outputs go to (a
    /// store URI, or a chroot store's path).
    #[arg(long, default_value = "auto")]
    local_store: String,
    /// Builds at once on `--store`.
    #[arg(long, short = 'j', default_value_t = 1)]
    max_jobs: u32,
    /// Keep building what does not depend on a failed build.
    #[arg(long, short = 'k')]
    keep_going: bool,
    /// Seconds a build may print nothing before it is killed (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_silent_time: u64,
    /// Seconds a build may take (0: no limit).
    #[arg(long, default_value_t = 0)]
    timeout: u64,
    /// Refuse outputs whose NARs add up to more bytes than this, before
    /// they are downloaded.
    #[arg(long)]
    max_output_size: Option<u64>,
    /// Seconds a request may wait with nothing arriving from a machine
    /// (a stalled transfer, a stopped peer) before its connection is given
    /// up; keep it above `--max-silent-time` when builds may be silent
    /// (fractions allowed; default: no limit).
    #[arg(long, value_name = "SECS", value_parser = crate::remote::parse_seconds)]
    stall_timeout: Option<Duration>,
    /// The runtime that drives the connections.
    #[arg(long, value_enum, default_value = "tokio")]
    runtime: Runtime,
    /// Store derivations (`/nix/store/….drv`, as `nix-instantiate` prints).
    #[arg(required = true)]
    drvs: Vec<String>,
}

/// Runs `nixwire build`: the output paths on stdout, one a line; exit 0
/// when every derivation is built, [`EXIT_BUILD_FAILED`] when a build
/// failed, 1 for any other failure, [`EXIT_INTERRUPTED`] after an
/// interrupt.
pub(crate) fn run(args: BuildArgs) -> ExitCode {
    match build(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say!("nixwire: build: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a worker tells the main thread.
enum Report {
    /// A build moved to `phase`.
    Phase { job: JobId, phase: Phase },
    /// A piece of a build's log.
    Log { job: JobId, text: Bytes },
    /// A worker connected to its machine; this cancels it.
    Connected { worker: usize, canceller: Canceller },
    /// A build ended.
    Finished {
        worker: usize,
        job: JobId,
        outcome: Outcome,
    },
    /// SIGINT or SIGTERM.
    Interrupted,
}

/// A worker thread, bound to one machine.
struct Worker {
    uri: String,
    jobs: Sender<Job>,
    busy: bool,
    canceller: Option<Canceller>,
    thread: JoinHandle<()>,
}

/// What a running build shows when it fails.
struct Running {
    drv: StorePath,
    machine: String,
    tail: LogTail,
}

fn build(args: &BuildArgs) -> Result<u8, String> {
    let dir = StoreDir::default();
    let wanted = args
        .drvs
        .iter()
        .map(|p| {
            let path = dir
                .parse_path(p.as_bytes())
                .map_err(|e| format!("{p:?} is not a store path: {e}"))?;
            if path.is_derivation() {
                Ok(path)
            } else {
                Err(format!("{p} is not a derivation (a .drv path)"))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let root = chroot_of(&args.local_store)?;
    let machines = machines(args, root.as_deref())?;
    for m in &machines {
        tracing::info!(machine = %m.uri, jobs = m.max_jobs, "build machine");
    }
    let mut options = options()?;
    options.stall_timeout = args.stall_timeout;
    let host = host_system().unwrap_or_default();
    // A machine that fails is tried again after 1 s, then 2 s: a
    // one-shot command does not wait Hydra's minutes for it.
    let config = PoolConfig {
        builtin: BuiltinSystem::As(host),
        backoff: Backoff {
            base: Duration::from_secs(1),
            factor: 2,
            max_failures: 4,
            coalesce: Duration::from_millis(500),
        },
        ..PoolConfig::default()
    };
    let names = machine_names(&machines);
    let mut schedule = Schedule::new(wanted, Pool::new(machines, config));
    schedule.keep_going = args.keep_going;

    // What to build: the derivations read from disk, the valid outputs
    // asked of the local store, a level of the graph at a time.
    let mut local = Remote::open(args.runtime, &args.local_store, &options)
        .map_err(|e| format!("cannot open {}: {}", args.local_store, one_line(&e)))?;
    loop {
        match schedule.want() {
            Want::ReadDerivations(paths) => {
                let read: Vec<_> = paths
                    .into_iter()
                    .map(|p| {
                        let drv = read_derivation(&dir, root.as_deref(), &p);
                        (p, drv)
                    })
                    .collect();
                schedule.derivations_read(read);
            }
            Want::ValidOutputs(paths) => {
                let valid = local.query_valid_paths(&paths).map_err(|e| {
                    format!(
                        "asking {} for valid paths: {}",
                        args.local_store,
                        one_line(&e)
                    )
                })?;
                tracing::info!(
                    outputs = paths.len(),
                    valid = valid.len(),
                    "checked outputs"
                );
                schedule.outputs_valid(valid);
            }
            Want::Build => break,
        }
    }
    if let Err(e) = local.close() {
        tracing::warn!("closing {}: {}", args.local_store, one_line(&e));
    }

    let (reports, inbox) = mpsc::channel();
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let reports = reports.clone();
        // A second interrupt while the first is handled ends the process.
        let again = AtomicBool::new(false);
        ctrlc::set_handler(move || {
            if again.swap(true, Ordering::SeqCst) {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
            let _ = reports.send(Report::Interrupted);
        })
        .map_err(|e| format!("cannot handle interrupts: {e}"))?;
    }
    let settings = {
        let mut s = BuildSettings::default();
        s.max_silent_time = args.max_silent_time;
        s.build_timeout = args.timeout;
        s
    };
    let context = WorkerContext {
        runtime: args.runtime,
        local_store: args.local_store.clone(),
        options,
        settings,
        max_output_size: args.max_output_size,
        interrupted: Arc::clone(&interrupted),
    };
    let mut workers: Vec<Worker> = Vec::new();
    let mut running: HashMap<JobId, Running> = HashMap::new();
    let mut stderr = std::io::stderr();

    loop {
        let wait = loop {
            match schedule.poll_job(Instant::now()) {
                Next::Run(job) => {
                    let job = *job;
                    let machine = machine_name(&names, &job.machine.uri).to_owned();
                    say!(
                        "building '{}' on '{machine}'...",
                        dir.display_path(&job.drv_path)
                    );
                    running.insert(
                        job.id,
                        Running {
                            drv: job.drv_path.clone(),
                            machine,
                            tail: LogTail::default(),
                        },
                    );
                    dispatch(&mut workers, job, &context, &reports)?;
                }
                Next::Wait(until) => break Some(until),
                Next::Done => break None,
            }
        };
        let Some(until) = wait else { break };
        let report = match until {
            Some(t) => match inbox.recv_timeout(t.saturating_duration_since(Instant::now())) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match inbox.recv() {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        match report {
            Report::Phase { job, phase } => {
                if let Some(r) = running.get(&job) {
                    tracing::info!(drv = %r.drv, machine = %r.machine, "{phase}");
                }
            }
            Report::Log { job, text } => {
                // Nothing useful can be done when stderr fails.
                let _ = stderr.write_all(&text);
                if let Some(r) = running.get_mut(&job) {
                    r.tail.push(&text);
                }
            }
            Report::Connected { worker, canceller } => {
                if let Some(w) = workers.get_mut(worker) {
                    schedule.machine_connected(&w.uri);
                    if interrupted.load(Ordering::SeqCst) {
                        canceller.cancel();
                    }
                    w.canceller = Some(canceller);
                }
            }
            Report::Finished {
                worker,
                job,
                outcome,
            } => {
                if let Some(w) = workers.get_mut(worker) {
                    w.busy = false;
                    if let Outcome::Failed(f) = &outcome
                        && f.discards_connection()
                    {
                        w.canceller = None;
                    }
                }
                if let (Some(r), Outcome::Failed(f)) = (running.get(&job), &outcome) {
                    report_failure(&dir, r, f);
                }
                if let Some(r) = running.get(&job) {
                    let how = match &outcome {
                        Outcome::Built { .. } => "built".to_owned(),
                        Outcome::Failed(f) => format!("failed ({:?})", f.class()),
                    };
                    tracing::info!(drv = %r.drv, machine = %r.machine, "finished: {how}");
                }
                running.remove(&job);
                let now = Instant::now();
                schedule.job_finished(now, job, &outcome, Duration::ZERO);
                if let (Some(w), Outcome::Failed(f)) = (workers.get(worker), &outcome)
                    && f.class() == FailureClass::Machine
                {
                    say_backoff(&schedule, &w.uri, machine_name(&names, &w.uri), now);
                }
            }
            Report::Interrupted => {
                say!("nixwire: interrupted: cancelling the running builds");
                interrupted.store(true, Ordering::SeqCst);
                schedule.stop();
                for w in &workers {
                    if let Some(c) = &w.canceller {
                        c.cancel();
                    }
                }
            }
        }
    }

    // Workers end when their job channel closes, closing their
    // connections.
    for w in workers {
        drop(w.jobs);
        let _ = w.thread.join();
    }
    Ok(summarize(
        &dir,
        &schedule,
        interrupted.load(Ordering::SeqCst),
    ))
}

/// Says how long the machine `uri` is passed over after a machine
/// failure (several failures at once count as one, so the time may be
/// that of an earlier one).
fn say_backoff(schedule: &Schedule, uri: &str, name: &str, now: Instant) {
    let Some(state) = schedule.pool().get(uri) else {
        return;
    };
    if let Some(until) = state.disabled_until().filter(|u| *u > now) {
        say!(
            "nixwire: build: '{name}' backed off for {:.1} s after {} failure(s) in a row",
            until.duration_since(now).as_secs_f64(),
            state.consecutive_failures()
        );
    }
}

/// Prints the outputs of what was built and the failures; returns the exit
/// code.
fn summarize(dir: &StoreDir, schedule: &Schedule, interrupted: bool) -> u8 {
    let mut out = std::io::stdout().lock();
    let mut code = 0;
    for (drv, state) in schedule.wanted() {
        match state {
            State::Valid { outputs, .. } => {
                for path in outputs.values() {
                    let _ = writeln!(out, "{}", dir.display_path(path));
                }
            }
            State::NotBuilt(why) => {
                say!(
                    "nixwire: build: {} was not built: {why}",
                    dir.display_path(drv)
                );
                code = code.max(1);
            }
            other => {
                say!(
                    "nixwire: build: {} was left {other:?}",
                    dir.display_path(drv)
                );
                code = code.max(1);
            }
        }
    }
    let _ = out.flush();
    // A builder that failed is Nix's 100, whatever else failed with it.
    let build_failed = schedule.all().any(|(_, state)| {
        matches!(state, State::NotBuilt(NotBuilt::Failed(f)) if f.class() == FailureClass::Build)
    });
    match () {
        () if interrupted => EXIT_INTERRUPTED,
        () if code != 0 && build_failed => EXIT_BUILD_FAILED,
        () => code,
    }
}

/// Says why a build failed, with its last log lines, as `nix-build` does.
fn report_failure(dir: &StoreDir, r: &Running, failure: &Failure) {
    let mut text = format!(
        "error: building '{}' on '{}': {failure}",
        dir.display_path(&r.drv),
        r.machine
    );
    if failure.class() == FailureClass::Build && !r.tail.lines.is_empty() {
        text.push_str(&format!("\nlast {} log lines:", r.tail.lines.len()));
        for line in &r.tail.lines {
            text.push_str("\n> ");
            text.push_str(line);
        }
    }
    say!("{text}");
}

/// The last [`LOG_TAIL`] lines of a build's log.
#[derive(Default)]
struct LogTail {
    lines: VecDeque<String>,
    partial: String,
}

impl LogTail {
    fn push(&mut self, text: &[u8]) {
        self.partial.push_str(&String::from_utf8_lossy(text));
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            self.lines.push_back(line.trim_end().to_owned());
            if self.lines.len() > LOG_TAIL {
                self.lines.pop_front();
            }
        }
    }
}

/// Hands `job` to an idle worker of its machine, or to a new one.
fn dispatch(
    workers: &mut Vec<Worker>,
    job: Job,
    context: &WorkerContext,
    reports: &Sender<Report>,
) -> Result<(), String> {
    if let Some(w) = workers
        .iter_mut()
        .find(|w| !w.busy && w.uri == job.machine.uri)
    {
        w.busy = true;
        return w
            .jobs
            .send(job)
            .map_err(|_| "a build worker stopped".to_owned());
    }
    let index = workers.len();
    let (jobs, queue) = mpsc::channel();
    let uri = job.machine.uri.clone();
    jobs.send(job)
        .map_err(|_| "a build worker stopped".to_owned())?;
    let context = context.clone();
    let reports = reports.clone();
    let thread = std::thread::Builder::new()
        .name(format!("build {index}"))
        .spawn(move || work(index, &context, &queue, &reports))
        .map_err(|e| format!("cannot start a build thread: {e}"))?;
    workers.push(Worker {
        uri,
        jobs,
        busy: true,
        canceller: None,
        thread,
    });
    Ok(())
}

/// What every worker needs.
#[derive(Clone)]
struct WorkerContext {
    runtime: Runtime,
    local_store: String,
    options: Options,
    settings: BuildSettings,
    max_output_size: Option<u64>,
    interrupted: Arc<AtomicBool>,
}

/// A worker: runs the jobs it is given one after another, keeping its
/// connection to the local store and to its machine from one to the next.
fn work(index: usize, context: &WorkerContext, jobs: &Receiver<Job>, reports: &Sender<Report>) {
    let mut stores = Stores {
        local: None,
        remote: None,
    };
    for job in jobs {
        let id = job.id;
        let outcome = run_job(index, context, &mut stores, job, reports);
        if let Outcome::Failed(f) = &outcome
            && f.discards_connection()
            && let Some(remote) = stores.remote.take()
        {
            let _ = remote.abort();
        }
        let finished = Report::Finished {
            worker: index,
            job: id,
            outcome,
        };
        if reports.send(finished).is_err() {
            break;
        }
    }
    for store in [stores.local, stores.remote].into_iter().flatten() {
        if let Err(e) = store.close() {
            tracing::debug!("closing a store: {}", one_line(&e));
        }
    }
}

/// A worker's kept connections.
struct Stores {
    local: Option<Remote>,
    remote: Option<Remote>,
}

/// Runs one build as a [`RemoteBuild`] on the worker's connections.
fn run_job(
    index: usize,
    context: &WorkerContext,
    stores: &mut Stores,
    job: Job,
    reports: &Sender<Report>,
) -> Outcome {
    let id = job.id;
    let mut build = RemoteBuild::new(
        job.drv_path.clone(),
        &job.drv,
        job.input_outputs.clone(),
        context.settings,
        context.max_output_size,
    );
    loop {
        if context.interrupted.load(Ordering::SeqCst) {
            build.cancel(Instant::now());
        }
        let want = build.want();
        tracing::debug!(job = %id, "{want:?}");
        let done: Result<(), Error> = match want {
            BuildWant::Connect => connect(index, context, stores, &job.machine, reports)
                .map(|()| build.connected(Instant::now())),
            BuildWant::PathInfos { at, paths } => stores
                .side(at, context)
                .and_then(|s| s.query_path_infos(&paths))
                .map(|infos| build.path_infos(Instant::now(), infos)),
            BuildWant::ValidPaths { at, paths } => stores
                .side(at, context)
                .and_then(|s| s.query_valid_paths(&paths))
                .map(|valid| build.valid_paths(Instant::now(), valid)),
            BuildWant::Transfer { from, paths } => match stores.transfer(from, context, &paths) {
                Ok(()) => {
                    build.transferred(Instant::now());
                    Ok(())
                }
                Err(message) => {
                    build.failed(Instant::now(), message);
                    Ok(())
                }
            },
            BuildWant::Build {
                drv_path,
                drv,
                settings,
            } => match stores.remote.as_mut() {
                Some(remote) => remote
                    .build_derivation(&drv_path, &drv, settings, |log| {
                        if let Some(text) = log_text(log) {
                            let _ = reports.send(Report::Log { job: id, text });
                        }
                    })
                    .map(|result| build.built(Instant::now(), result)),
                None => Err(Error::Ended {
                    during: "building: the machine's connection is gone",
                }),
            },
            BuildWant::Finished => break,
        };
        if let Err(e) = done {
            if matches!(e, Error::Cancelled { .. }) {
                build.cancel(Instant::now());
            } else {
                build.failed(Instant::now(), one_line(&e));
            }
        }
        while let Some(event) = build.poll_event() {
            let nixwire_core::flows::build::Event::Phase { phase, .. } = event;
            let _ = reports.send(Report::Phase { job: id, phase });
        }
    }
    for (phase, took) in build.timings() {
        tracing::info!(job = %id, "{phase} took {took:?}");
    }
    build
        .outcome()
        .cloned()
        .unwrap_or(Outcome::Failed(Failure::OutOfTurn(
            "the build finished without an outcome".into(),
        )))
}

impl Stores {
    /// The store on `side`, the local one opened on first use.
    fn side(&mut self, side: Side, context: &WorkerContext) -> Result<&mut Remote, Error> {
        match side {
            Side::Local => {
                if self.local.is_none() {
                    self.local = Some(Remote::open(
                        context.runtime,
                        &context.local_store,
                        &context.options,
                    )?);
                }
                self.local.as_mut().ok_or(Error::Ended {
                    during: "opening the local store",
                })
            }
            Side::Remote => self.remote.as_mut().ok_or(Error::Ended {
                during: "talking to the machine: its connection is gone",
            }),
        }
    }

    /// Streams `paths` from `from` into the other store.
    fn transfer(
        &mut self,
        from: Side,
        context: &WorkerContext,
        paths: &[(StorePath, nixwire_core::store::PathInfo)],
    ) -> Result<(), String> {
        self.side(Side::Local, context).map_err(|e| one_line(&e))?;
        let (Some(local), Some(remote)) = (self.local.as_mut(), self.remote.as_mut()) else {
            return Err("the machine's connection is gone".into());
        };
        // The local store's NARs come straight from its files.
        let (source, dest, files) = match from {
            Side::Local => (local, remote, local_nar::files_of(&context.local_store)),
            Side::Remote => (remote, local, None),
        };
        let copied = source
            .copy_nars(dest, paths, files.as_deref(), &|_| {})
            .map(|_| ())
            .map_err(|e| match &e.path {
                Some(path) => format!(
                    "copying {}: {}",
                    StoreDir::default().display_path(path),
                    one_line(&e)
                ),
                None => one_line(&e),
            });
        if copied.is_err() {
            // A copy that failed half way leaves both connections in the
            // middle of a NAR (the local daemon still reading one that
            // will never end): reused, the next request would be read as
            // NAR bytes and hang (Hydra c2b21bd8). Both are discarded; the
            // next job opens new ones.
            for store in [self.local.take(), self.remote.take()]
                .into_iter()
                .flatten()
            {
                let _ = store.abort();
            }
        }
        copied
    }
}

/// Opens the worker's connection to `machine` unless one is kept.
fn connect(
    index: usize,
    context: &WorkerContext,
    stores: &mut Stores,
    machine: &Machine,
    reports: &Sender<Report>,
) -> Result<(), Error> {
    if stores.remote.is_some() {
        return Ok(());
    }
    let started = Instant::now();
    let remote = Remote::open_machine(context.runtime, machine, &context.options)?;
    tracing::info!(machine = %machine.uri, took = ?started.elapsed(), "connected");
    let _ = reports.send(Report::Connected {
        worker: index,
        canceller: remote.canceller(),
    });
    stores.remote = Some(remote);
    Ok(())
}

/// How messages name each machine of the pool: its URI without
/// parameters (keys, the remote store make it long and say nothing new),
/// unless that is also another machine's name (several stores behind one
/// host): then with its parameters but the keys.
fn machine_names(machines: &[Machine]) -> HashMap<String, String> {
    let short = |uri: &str| uri.split_once('?').map_or(uri, |(base, _)| base).to_owned();
    machines
        .iter()
        .map(|m| {
            let base = short(&m.uri);
            let shared = machines
                .iter()
                .any(|o| o.uri != m.uri && short(&o.uri) == base);
            let name = match m.uri.split_once('?') {
                Some((_, query)) if shared => {
                    let kept: Vec<&str> = query
                        .split('&')
                        .filter(|p| {
                            !p.starts_with("ssh-key=")
                                && !p.starts_with("base64-ssh-public-host-key=")
                        })
                        .collect();
                    if kept.is_empty() {
                        base
                    } else {
                        format!("{base}?{}", kept.join("&"))
                    }
                }
                _ => base,
            };
            (m.uri.clone(), name)
        })
        .collect()
}

/// The name of the machine `uri` in messages (see [`machine_names`]).
fn machine_name<'a>(names: &'a HashMap<String, String>, uri: &'a str) -> &'a str {
    names.get(uri).map_or(uri, String::as_str)
}

/// The text of a log piece as the build log shows it: the serve protocol's
/// stderr as it came, the worker protocol's lines with their newline.
fn log_text(log: &Log) -> Option<Bytes> {
    match log.source {
        LogSource::Stderr | LogSource::Message => Some(log.text.clone()),
        LogSource::Build { .. } | LogSource::PostBuild { .. } => {
            let mut line = log.text.to_vec();
            line.push(b'\n');
            Some(Bytes::from(line))
        }
        _ => None,
    }
}

/// The directory a local store keeps its files under, when it is a chroot
/// store (a path, or `local?root=`); `None` for the system's store.
fn chroot_of(local_store: &str) -> Result<Option<PathBuf>, String> {
    let uri: StoreUri = local_store
        .parse()
        .map_err(|e| format!("--local-store {local_store:?}: {e}"))?;
    Ok(match uri {
        StoreUri::Local { root, .. } => root,
        _ => None,
    })
}

/// Reads and parses the `.drv` file of `path` from the local store's
/// directory (under `root` for a chroot store).
fn read_derivation(
    dir: &StoreDir,
    root: Option<&Path>,
    path: &StorePath,
) -> Result<Derivation, String> {
    let full = dir.display_path(path).to_string();
    let file = match root {
        Some(root) => root.join(full.trim_start_matches('/')),
        None => PathBuf::from(&full),
    };
    let text = std::fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    Derivation::parse(dir, &text).map_err(|e| format!("{}: {e}", file.display()))
}

/// The machines to build on (see the module docs).
fn machines(args: &BuildArgs, root: Option<&Path>) -> Result<Vec<Machine>, String> {
    let host = host_system().unwrap_or_default();
    let systems = BTreeSet::from([host.clone()]);
    if let Some(store) = &args.store {
        let mut m = Machine::with_defaults(store, systems);
        m.max_jobs = args.max_jobs.max(1);
        return Ok(vec![m]);
    }
    let options = ParseOptions::with_default_system(&host);
    let (name, text) = match &args.machines {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            (file.display().to_string(), text)
        }
        None => match std::env::var("NIX_REMOTE_SYSTEMS") {
            Ok(files) => {
                let text: Vec<String> = files
                    .split(':')
                    .filter(|f| !f.is_empty())
                    .map(|f| format!("@{f}"))
                    .collect();
                ("NIX_REMOTE_SYSTEMS".to_owned(), text.join("\n"))
            }
            Err(_) => {
                let conf = std::env::var("NIX_CONF_DIR").unwrap_or_else(|_| "/etc/nix".into());
                ("<builders>".to_owned(), format!("@{conf}/machines"))
            }
        },
    };
    let parsed = parse(&name, &text, &options, &StdFiles).map_err(|e| e.to_string())?;
    // Remarks on a file the user named are shown; on the defaults (an
    // include of a file that is not there) only with -v.
    for w in &parsed.warnings {
        if args.machines.is_some() {
            say!("warning: {w}");
        } else {
            tracing::info!("{w}");
        }
    }
    let list = parsed.machine_list();
    if !list.is_empty() || args.machines.is_some() {
        return Ok(list);
    }
    // The embedded default: this machine, without ssh.
    let mut uri = "ssh://localhost".to_owned();
    if let Some(root) = root {
        uri.push_str(&format!("?remote-store={}", root.display()));
    }
    tracing::info!("no machines configured: building here through {uri}");
    let mut m = Machine::with_defaults(&uri, systems);
    m.max_jobs = args.max_jobs.max(1);
    Ok(vec![m])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_tail_keeps_whole_lines_across_pieces_and_only_the_last() {
        let mut tail = LogTail::default();
        tail.push(b"one\ntw");
        tail.push(b"o\n");
        assert_eq!(tail.lines, ["one", "two"]);
        for i in 0..100 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        assert_eq!(tail.lines.len(), LOG_TAIL);
        assert_eq!(tail.lines.back().map(String::as_str), Some("line 99"));
    }

    #[test]
    fn machines_behind_one_host_are_named_apart_without_their_keys() {
        let m = |uri: &str| Machine::with_defaults(uri, BTreeSet::new());
        let pool = [
            m("ssh://h?remote-store=/a&ssh-key=/k"),
            m("ssh://h?remote-store=/b&ssh-key=/k&base64-ssh-public-host-key=AA"),
            m("ssh-ng://other?ssh-key=/k"),
        ];
        let names = machine_names(&pool);
        assert_eq!(
            machine_name(&names, &pool[0].uri),
            "ssh://h?remote-store=/a"
        );
        assert_eq!(
            machine_name(&names, &pool[1].uri),
            "ssh://h?remote-store=/b"
        );
        assert_eq!(machine_name(&names, &pool[2].uri), "ssh-ng://other");
    }

    #[test]
    fn a_chroot_local_store_is_read_under_its_root() {
        assert_eq!(
            chroot_of("/tmp/s").expect("a path"),
            Some(PathBuf::from("/tmp/s"))
        );
        assert_eq!(chroot_of("auto").expect("auto"), None);
        assert!(chroot_of("bogus://x").is_err());
    }
}
