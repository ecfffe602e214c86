//! `nixwire serve --stdio`: a drop-in for `nix-store --serve [--write]`.
//!
//! It answers the serve protocol on stdin and stdout, as a remote machine's
//! `nix-store --serve` does for an `ssh://` store, a build hook or Hydra,
//! and does the work by speaking the worker protocol to the local store:
//! the daemon's socket when it exists, else a `nix-daemon --stdio` child
//! (`--store URI` names another store, e.g. a chroot store
//! `local?root=/x`, reached through `nix-daemon --stdio --store /x`).
//!
//! How the pieces fit:
//!
//! - The serve side is the core's [`Server`] state machine. A reader
//!   thread ([`spawn_reader`]) reads stdin in blocks into a bounded
//!   channel; the main thread feeds them to the server and writes what it
//!   transmits to stdout. The reader thread also notices the client
//!   hanging up during a build and cancels it, as `nix-store --serve` does
//!   (its `MonitorFdHup`).
//! - The store side is a blocking-runtime [`Store`] (a worker session);
//!   requests are handled one at a time, in order, as they come
//!   ([`Serving::handle`] says what each maps to).
//! - NARs stay streams. `DumpStorePath` hands the worker's `NarFromPath`
//!   chunks to the server as they arrive ([`NarOut`]). `AddToStoreNar`
//!   knows the NAR's hash and size from its header, so its body goes
//!   straight into the worker's `AddToStoreNar` ([`BodyIn`]), which reads
//!   it as the daemon takes it. `ImportPaths` sends each path's metadata
//!   only *after* its NAR, and the worker's `AddToStoreNar` needs the NAR
//!   hash and size first (the worker has no streaming import that takes
//!   them afterwards), so each NAR is spooled to an unnamed temporary file
//!   while its SHA-256 and size are computed ([`Spool`]), then streamed
//!   from the file; one NAR at a time is on disk, none is in memory.
//!
//! Errors: a refused build is a failed `BuildResult` (or `BuildPaths`
//! status) with the store's message; any other failure ends the session
//! with one line on stderr and exit status 1, as `nix-store --serve` ends
//! (its client reports the remote's stderr). A path is only ever added by
//! one worker request, so a failure leaves nothing half-registered.

use std::collections::BTreeSet;
use std::io::{self, Read, Seek, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Instant;

use bytes::Bytes;
use clap::Args;
use nixwire_blocking::{Canceller, Store};
use nixwire_core::conn::{Connection, ErrorKind, Log, LogSource, RequestId};
use nixwire_core::runtime::{Error as RuntimeError, Options, expect};
use nixwire_core::serve::messages::{
    self as sm, BuildPathsResult, ExportTrailer, LATEST, PathInfos,
};
use nixwire_core::serve::{Reply, Request, Server, ServerConfig, ServerEvent};
use nixwire_core::session::{Answer, BuildSettings, Op};
use nixwire_core::store::{
    BuildResult, BuildStatus, DerivedPath, NarHash, PathInfo, StoreDir, StorePath,
};
use nixwire_core::wire::{Ack, NixString, Version};
use nixwire_core::worker;
use sha2::{Digest, Sha256};

/// How much of stdin is read at once.
const BLOCK: usize = 64 * 1024;

/// How many blocks of stdin may wait for the main thread: the client is
/// held back by its pipe beyond that, so memory stays bounded.
const QUEUED_BLOCKS: usize = 4;

/// The arguments of `nixwire serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Speak the serve protocol on stdin and stdout (the only mode).
    #[arg(long)]
    stdio: bool,
    /// Allow the commands that write: imports, `AddToStoreNar`, builds
    /// (as `nix-store --serve --write`).
    #[arg(long)]
    write: bool,
    /// Refuse the commands that write even when `--write` is given (Nix's
    /// `ssh://` client always appends `--write`).
    #[arg(long)]
    read_only: bool,
    /// Accepted and ignored: Nix's `ssh://` client appends `--serve` to
    /// `remote-program`.
    #[arg(long = "serve", hide = true)]
    serve_flag: bool,
    /// The store to serve (default `auto`: the daemon's socket if it
    /// exists, else a `nix-daemon --stdio` child). Given twice (in
    /// `remote-program` and by the client's `remote-store`), the last wins.
    #[arg(long, overrides_with = "store")]
    store: Option<String>,
    /// The serve version to announce, `2.N` (default: the newest the
    /// core speaks). For replays of recorded sessions, whose client bytes
    /// are at the version the recorded server negotiated.
    #[arg(long, hide = true, value_parser = parse_serve_version)]
    protocol_version: Option<Version>,
}

/// `2.N` as a serve protocol version.
fn parse_serve_version(text: &str) -> Result<Version, String> {
    let minor = text
        .strip_prefix("2.")
        .and_then(|m| m.parse::<u8>().ok())
        .ok_or_else(|| format!("{text:?}: expected a serve version 2.N"))?;
    let version = Version::new(2, minor);
    if version > LATEST {
        return Err(format!(
            "{text}: newer than the newest this speaks ({LATEST})"
        ));
    }
    Ok(version)
}

/// Why the session ended early.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    /// The local store failed or refused.
    #[error("{0}")]
    Store(#[from] RuntimeError),
    /// The serve connection broke (a malformed request, a lost client).
    #[error("{0}")]
    Protocol(#[from] nixwire_core::conn::Error),
    /// Reading stdin or writing stdout failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: io::Error,
    },
    /// A command that writes, without `--write`.
    #[error(
        "{0} is not allowed (nixwire serve is read-only: started without --write, or with --read-only)"
    )]
    NotAllowed(&'static str),
    /// A path the client named is not in the store.
    #[error("path '{0}' is not valid")]
    Invalid(String),
    /// The client sent something this server cannot do.
    #[error("{0}")]
    Refused(String),
}

fn io_error(what: &'static str) -> impl FnOnce(io::Error) -> ServeError {
    move |source| ServeError::Io { what, source }
}

/// Runs `nixwire serve`.
pub(crate) fn run(args: ServeArgs) -> ExitCode {
    if !args.stdio {
        say!("nixwire serve: error: only --stdio is supported (serve on stdin and stdout)");
        return ExitCode::from(2);
    }
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> Result<(), ServeError> {
    let options = Options::default();
    let uri = args.store.as_deref().unwrap_or("auto");
    let store = Store::open(uri, &options)?;
    if store.info().protocol != nixwire_core::session::Protocol::Worker {
        return Err(ServeError::Refused(format!(
            "--store {uri}: nixwire serve needs a store that speaks the worker protocol"
        )));
    }
    let building = Arc::new(AtomicBool::new(false));
    let input = spawn_reader(store.canceller(), building.clone());
    // The core's newest version (2.8, what Nix 2.35 announces), which it speaks
    // whole; older clients get what they announce, down to 2.0.
    let mut config = ServerConfig::default();
    config.version = args.protocol_version.unwrap_or(LATEST);
    config.minimum_version = Version::new(2, 0);
    let mut serving = Serving {
        front: Front {
            server: Server::new(config, Instant::now()),
            input,
            out: io::stdout().lock(),
            ended: false,
        },
        store,
        options,
        write: args.write && !args.read_only,
        building,
        store_dir: StoreDir::default(),
    };
    let result = serving.run();
    let Serving { store, .. } = serving;
    match result {
        Ok(()) => store.close().map_err(ServeError::from),
        Err(e) => {
            let _ = store.abort();
            Err(e)
        }
    }
}

/// What the reader thread hands over: a block of stdin, its end, or a
/// read error.
type Block = io::Result<Option<Bytes>>;

/// Reads stdin in blocks on a thread of its own, into a channel of
/// [`QUEUED_BLOCKS`]. When stdin ends while a build runs, the build is
/// cancelled: the client has gone.
fn spawn_reader(canceller: Canceller, building: Arc<AtomicBool>) -> Receiver<Block> {
    let (tx, rx) = sync_channel::<Block>(QUEUED_BLOCKS);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; BLOCK];
        loop {
            let block = match stdin.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
                Ok(0) => Ok(None),
                Ok(n) => Ok(Some(Bytes::copy_from_slice(&buf[..n]))),
            };
            let last = !matches!(block, Ok(Some(_)));
            if last && building.load(Ordering::SeqCst) {
                canceller.cancel();
            }
            if tx.send(block).is_err() || last {
                return;
            }
        }
    });
    rx
}

/// The serve side: the server state machine, stdin's blocks, stdout.
struct Front {
    server: Server,
    input: Receiver<Block>,
    out: io::StdoutLock<'static>,
    /// Stdin has ended (the server was told).
    ended: bool,
}

impl Front {
    /// Writes what the server has to send, and flushes.
    fn transmit(&mut self) -> Result<(), ServeError> {
        while let Some(bytes) = self.server.poll_transmit() {
            self.out
                .write_all(&bytes)
                .map_err(io_error("writing to stdout"))?;
        }
        self.out.flush().map_err(io_error("writing to stdout"))
    }

    /// The server's next event, reading stdin as needed.
    fn next_event(&mut self) -> Result<ServerEvent, ServeError> {
        loop {
            if let Some(event) = self.server.poll_event() {
                return Ok(event);
            }
            self.transmit()?;
            if self.ended {
                // The server reports its end as an event; this is only
                // reached if it has none left to give.
                return Ok(ServerEvent::Closed);
            }
            let now = Instant::now();
            let result = match self.input.recv() {
                Ok(Ok(Some(data))) => self.server.handle_input(now, data),
                Ok(Ok(None)) | Err(_) => {
                    self.ended = true;
                    self.server.handle_eof(now)
                }
                Ok(Err(e)) => return Err(io_error("reading stdin")(e)),
            };
            // A failure is also queued as `Broken`, which is what the
            // caller sees next.
            let _ = result;
        }
    }

    /// Answers request `id`.
    fn reply(&mut self, id: RequestId, reply: &Reply) -> Result<(), ServeError> {
        self.server.reply(id, reply)?;
        self.transmit()
    }
}

/// A serve session over a local store.
struct Serving {
    front: Front,
    store: Store,
    options: Options,
    write: bool,
    building: Arc<AtomicBool>,
    store_dir: StoreDir,
}

impl Serving {
    fn run(&mut self) -> Result<(), ServeError> {
        loop {
            match self.front.next_event()? {
                ServerEvent::Connected { .. } => self.front.transmit()?,
                ServerEvent::Request { id, request } => self.handle(id, request)?,
                ServerEvent::Closed => return Ok(()),
                ServerEvent::Broken(e) => return Err(e.into()),
                other => {
                    return Err(ServeError::Refused(format!(
                        "unexpected between requests: {other:?}"
                    )));
                }
            }
        }
    }

    fn check_write(&self, what: &'static str) -> Result<(), ServeError> {
        if self.write {
            Ok(())
        } else {
            Err(ServeError::NotAllowed(what))
        }
    }

    /// Answers one request through the store.
    fn handle(&mut self, id: RequestId, request: Request) -> Result<(), ServeError> {
        match request {
            Request::QueryValidPaths(m) => {
                let write = self.write;
                if m.lock && write {
                    // Temporary roots live as long as this session's
                    // connection to the store, as with nix-store --serve.
                    for path in &m.paths {
                        self.worker(worker::messages::AddTempRoot { path: path.clone() })?;
                    }
                }
                let mut valid = self.valid_paths(m.paths, m.substitute && write)?;
                valid.sort();
                self.front.reply(id, &Reply::QueryValidPaths(valid))
            }
            Request::QueryPathInfos(m) => {
                let infos = self.store.query_path_infos(&m.paths)?;
                let infos = infos
                    .into_iter()
                    .map(|(path, mut info)| {
                        // Nix's serve sends the NAR size as the download size.
                        info.download_size = info.nar_size;
                        (path, info)
                    })
                    .collect();
                self.front
                    .reply(id, &Reply::QueryPathInfos(PathInfos(infos)))
            }
            Request::DumpStorePath(m) => {
                let mut out = NarOut {
                    front: &mut self.front,
                    id,
                };
                self.store.nar_from_path(&m.path, &mut out)?;
                Ok(())
            }
            Request::ImportPaths(_) => {
                self.check_write("importing paths")?;
                self.import_paths(id)
            }
            Request::AddToStoreNar(m) => {
                self.check_write("importing paths")?;
                self.add_to_store_nar(id, m)
            }
            Request::BuildPaths(m) => {
                self.check_write("building paths")?;
                let result = self.build_paths(m)?;
                self.front.reply(id, &Reply::BuildPaths(result))
            }
            Request::BuildDerivation(m) => {
                self.check_write("building paths")?;
                let result = self.build_derivation(m)?;
                self.front.reply(id, &Reply::BuildDerivation(result))
            }
            Request::QueryClosure(m) => {
                let closure = self.closure(m.paths, m.include_outputs)?;
                self.front.reply(id, &Reply::QueryClosure(closure))
            }
        }
    }

    /// Sends a worker request as it is; a refusal is an error.
    fn worker(
        &mut self,
        request: impl Into<worker::Request>,
    ) -> Result<worker::Reply, RuntimeError> {
        self.store.worker_request(request, log_to_stderr)
    }

    fn valid_paths(
        &mut self,
        paths: Vec<StorePath>,
        substitute: bool,
    ) -> Result<Vec<StorePath>, ServeError> {
        let id = self
            .store
            .start(Op::QueryValidPaths { paths, substitute })?;
        Ok(expect(
            "QueryValidPaths",
            self.store.wait(id)?,
            |a| match a {
                Answer::ValidPaths(p) => Ok(p),
                other => Err(other),
            },
        )?)
    }

    /// `AddToStoreNar`: the header has everything the worker's
    /// `AddToStoreNar` needs, so the body streams straight through.
    fn add_to_store_nar(&mut self, id: RequestId, m: sm::AddToStoreNar) -> Result<(), ServeError> {
        let info = PathInfo {
            deriver: m.deriver,
            nar_hash: Some(m.nar_hash),
            references: m.references,
            registration_time: m.registration_time,
            nar_size: m.nar_size,
            ultimate: m.ultimate,
            sigs: m.sigs,
            ca: m.ca,
            ..PathInfo::default()
        };
        let mut body = BodyIn {
            front: &mut self.front,
            id,
            rest: Bytes::new(),
            ended: false,
        };
        self.store.add_to_store_nar(&m.path, &info, &mut body)?;
        // The worker took exactly nar_size bytes; the server's end of the
        // body (after the NAR's end) is still to be seen.
        body.drain()?;
        self.front.reply(id, &Reply::AddToStoreNar(Ack))
    }

    /// `ImportPaths`: each NAR comes before its metadata, so it is spooled
    /// (and hashed) first, then added with the metadata that follows.
    fn import_paths(&mut self, id: RequestId) -> Result<(), ServeError> {
        let mut spool = Spool::new()?;
        loop {
            match self.front.next_event()? {
                ServerEvent::NarChunk { data, .. } => spool.write(&data)?,
                ServerEvent::NarEnd { .. } => {}
                ServerEvent::ImportedPath { trailer, .. } => {
                    self.import_one(&mut spool, trailer)?;
                }
                ServerEvent::BodyEnd { .. } => break,
                ServerEvent::Broken(e) => return Err(e.into()),
                other => {
                    return Err(ServeError::Refused(format!(
                        "unexpected in ImportPaths: {other:?}"
                    )));
                }
            }
        }
        self.front.reply(id, &Reply::ImportPaths(Ack))
    }

    fn import_one(&mut self, spool: &mut Spool, trailer: ExportTrailer) -> Result<(), ServeError> {
        let (nar_hash, nar_size) = spool.finish()?;
        let info = PathInfo {
            deriver: trailer.deriver,
            nar_hash: Some(nar_hash),
            references: trailer.references,
            nar_size,
            ..PathInfo::default()
        };
        let mut nar = Read::by_ref(&mut spool.file).take(nar_size);
        self.store
            .add_to_store_nar(&trailer.path, &info, &mut nar)?;
        spool.reset()
    }

    /// The worker settings of a build: the session's, with the serve
    /// build options' limits (as `nix-store --serve` sets them).
    fn build_settings(options: &sm::BuildOptions) -> BuildSettings {
        let mut settings = BuildSettings::default();
        settings.max_silent_time = options.max_silent_time;
        settings.build_timeout = options.build_timeout;
        settings.max_log_size = options.max_log_size;
        settings.keep_failed = options.keep_failed;
        settings
    }

    fn build_derivation(&mut self, m: sm::BuildDerivation) -> Result<BuildResult, ServeError> {
        let settings = Self::build_settings(&m.options);
        self.building.store(true, Ordering::SeqCst);
        let result = self
            .store
            .build_derivation(&m.drv_path, &m.drv, settings, log_to_stderr);
        self.building.store(false, Ordering::SeqCst);
        match result {
            Ok(result) => Ok(result),
            Err(e) => match refusal(&e) {
                Some(message) => Ok(BuildResult::new(BuildStatus::MiscFailure, message)),
                None => Err(e.into()),
            },
        }
    }

    fn build_paths(&mut self, m: sm::BuildPaths) -> Result<BuildPathsResult, ServeError> {
        let mut paths = Vec::with_capacity(m.paths.len());
        for text in &m.paths {
            let path = DerivedPath::parse_path_with_outputs(&self.store_dir, text.as_bytes())
                .map_err(|e| ServeError::Refused(e.to_string()))?;
            paths.push(path);
        }
        let mut settings =
            Self::build_settings(&m.options).apply_to(&self.options.session.settings);
        settings.use_substitutes = false;
        self.worker(settings)?;
        self.building.store(true, Ordering::SeqCst);
        let built = self.worker(worker::messages::BuildPaths {
            paths,
            mode: worker::messages::BuildMode::Normal,
        });
        self.building.store(false, Ordering::SeqCst);
        match built {
            Ok(_) => Ok(BuildPathsResult::default()),
            Err(e) => match refusal(&e) {
                Some(message) => Ok(BuildPathsResult {
                    status: 1,
                    error_msg: message,
                }),
                None => Err(e.into()),
            },
        }
    }

    /// The closure of `roots` (with the valid outputs of the derivations
    /// in it when `include_outputs`), by references, level by level: each
    /// level's path infos in one pipelined request. A root that is not
    /// valid fails, as in Nix.
    fn closure(
        &mut self,
        roots: Vec<StorePath>,
        include_outputs: bool,
    ) -> Result<Vec<StorePath>, ServeError> {
        let mut seen: BTreeSet<StorePath> = BTreeSet::new();
        let mut level: Vec<StorePath> = roots
            .into_iter()
            .filter(|p| seen.insert(p.clone()))
            .collect();
        while !level.is_empty() {
            let infos = self.store.query_path_infos(&level)?;
            if infos.len() < level.len() {
                let known: BTreeSet<&StorePath> = infos.iter().map(|(p, _)| p).collect();
                let missing = level.iter().find(|p| !known.contains(p));
                return Err(ServeError::Invalid(
                    missing.map_or_else(String::new, |p| self.store_dir.display_path(p)),
                ));
            }
            let mut next = Vec::new();
            for (_, info) in &infos {
                for r in &info.references {
                    if seen.insert(r.clone()) {
                        next.push(r.clone());
                    }
                }
            }
            if include_outputs {
                let mut outputs = Vec::new();
                for drv in level.iter().filter(|p| p.is_derivation()) {
                    let reply = self
                        .worker(worker::messages::QueryDerivationOutputMap { path: drv.clone() })?;
                    if let worker::Reply::QueryDerivationOutputMap(map) = reply {
                        outputs.extend(map.into_iter().filter_map(|(_, p)| p));
                    }
                }
                outputs.retain(|p| !seen.contains(p));
                for p in self.valid_paths(outputs, false)? {
                    if seen.insert(p.clone()) {
                        next.push(p);
                    }
                }
            }
            level = next;
        }
        Ok(seen.into_iter().collect())
    }
}

/// The store's message when `e` is a refusal of the request (the session
/// goes on), `None` for anything that broke it.
fn refusal(e: &RuntimeError) -> Option<NixString> {
    match e {
        RuntimeError::Connection(c) => match &*c.kind {
            ErrorKind::Remote { message } => Some(message.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Build logs and the store's messages go to our stderr, which the serve
/// client shows, as `nix-store --serve` does.
fn log_to_stderr(log: &Log) {
    let mut err = io::stderr().lock();
    let _ = match log.source {
        LogSource::Build { .. } | LogSource::PostBuild { .. } => {
            err.write_all(&log.text).and_then(|()| err.write_all(b"\n"))
        }
        _ => err.write_all(&log.text),
    };
}

/// `DumpStorePath`'s reply: the worker's NAR chunks, handed to the server
/// (which checks the NAR's grammar) and written out as they come.
struct NarOut<'a> {
    front: &'a mut Front,
    id: RequestId,
}

impl Write for NarOut<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let used = self
            .front
            .server
            .send_nar(self.id, Bytes::copy_from_slice(buf))
            .map_err(io::Error::other)?;
        self.front.transmit().map_err(io::Error::other)?;
        if used < buf.len() {
            return Err(io::Error::other("the store's NAR went on after its end"));
        }
        Ok(used)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.front.transmit().map_err(io::Error::other)
    }
}

/// An `AddToStoreNar` body as a reader: the server's NAR chunks of request
/// `id`, until its body ends.
struct BodyIn<'a> {
    front: &'a mut Front,
    id: RequestId,
    /// What was received and not yet read.
    rest: Bytes,
    /// The body has ended.
    ended: bool,
}

impl BodyIn<'_> {
    /// Reads to the end of the body.
    fn drain(&mut self) -> Result<(), ServeError> {
        let mut sink = [0u8; 4096];
        loop {
            match self.read(&mut sink) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(io_error("reading the NAR")(e)),
            }
        }
    }
}

impl Read for BodyIn<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.rest.is_empty() && !self.ended {
            match self.front.next_event().map_err(io::Error::other)? {
                ServerEvent::NarChunk { id, data } if id == self.id => self.rest = data,
                ServerEvent::NarEnd { .. } => {}
                ServerEvent::BodyEnd { .. } => self.ended = true,
                ServerEvent::Broken(e) => return Err(io::Error::other(e)),
                other => {
                    return Err(io::Error::other(format!(
                        "unexpected in AddToStoreNar's body: {other:?}"
                    )));
                }
            }
        }
        let n = buf.len().min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        let _ = self.rest.split_to(n);
        Ok(n)
    }
}

/// One `ImportPaths` NAR on disk, with its SHA-256 and size computed as it
/// is written. The file has no name (it is gone when dropped).
struct Spool {
    file: std::fs::File,
    hasher: Sha256,
    size: u64,
}

impl Spool {
    fn new() -> Result<Self, ServeError> {
        Ok(Self {
            file: tempfile::tempfile()
                .map_err(io_error("creating a spool file for ImportPaths"))?,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    fn write(&mut self, data: &[u8]) -> Result<(), ServeError> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        self.file
            .write_all(data)
            .map_err(io_error("spooling an ImportPaths NAR"))
    }

    /// The NAR's hash and size; the file is rewound for reading.
    fn finish(&mut self) -> Result<(NarHash, u64), ServeError> {
        let digest = std::mem::take(&mut self.hasher).finalize();
        let hash = NarHash::new(digest.into());
        self.file
            .rewind()
            .map_err(io_error("rewinding an ImportPaths spool"))?;
        Ok((hash, self.size))
    }

    /// Empties the file for the next NAR.
    fn reset(&mut self) -> Result<(), ServeError> {
        self.size = 0;
        self.file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .map_err(io_error("emptying an ImportPaths spool"))
    }
}
