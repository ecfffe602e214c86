//! One store connection, whichever protocol it speaks: the operations a
//! remote-building host needs (query paths, stream NARs out and in, build a
//! derivation), each mapped once to the serve protocol's messages and once
//! to the worker protocol's, so that no runtime knows which one it drives.
//!
//! A [`Session`] wraps a serve or a worker [`Client`](crate::serve::Client)
//! and is itself a [`Connection`]: a runtime drives it with the same loop as
//! any connection (see the [crate documentation](crate)) and reads
//! [`Event`]s that name requests by the session's own [`RequestId`]s.
//!
//! What the mapping does, per protocol:
//!
//! | operation | serve (`ssh://`) | worker (`ssh-ng://`, `unix://`) |
//! |---|---|---|
//! | [`Op::QueryValidPaths`] | `QueryValidPaths` | `QueryValidPaths` |
//! | [`Op::QueryPathInfos`] | `QueryPathInfos` (one request) | `QueryPathInfos` where the daemon has it, else one `QueryPathInfo` per path, all pipelined |
//! | [`Op::NarFromPath`] | `DumpStorePath` | `NarFromPath` |
//! | [`Op::AddToStoreNar`] | `AddToStoreNar` (2.5+), else `ImportPaths` | `AddToStoreNar` (framed from 1.23, pulled before) |
//! | [`Op::AddMultiple`] | one `AddToStoreNar` per path, all pipelined (2.5+), else one `ImportPaths` with every path | `AddMultipleToStore` (1.32+), else one `AddToStoreNar` per path, all pipelined |
//! | [`Op::BuildDerivation`] | `BuildDerivation` with its options | `SetOptions` with the build's limits, then `BuildDerivation` |
//! | [`Op::Worker`] | refused (a caller's mistake) | the request as given |
//!
//! Before the handshake completes, what the peer writes on its stderr is
//! kept, not passed on as a log: that is ssh's account of a failed login or
//! a login shell's noise, and it becomes the text of the connection's error
//! ([`Error::peer_said`](crate::conn::Error::peer_said)), never part of a
//! build log.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::conn::{Connection, Error, ErrorKind, Log, Phase, RequestId};
use crate::nar::NarFramer;
use crate::serve::messages as sm;
use crate::store::{BasicDerivation, BuildResult, PathInfo, StoreDir, StorePath};
use crate::wire::{NixString, Version, Wire, encode_u64};
use crate::{serve, worker};

/// Which protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The serve protocol (`nix-store --serve`, `ssh://` stores).
    Serve,
    /// The worker protocol (`nix-daemon`, `ssh-ng://`, `unix://`, `daemon`).
    Worker,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Serve => "serve",
            Self::Worker => "worker",
        })
    }
}

/// How a [`Session`] behaves: the settings of the client of its protocol,
/// and the worker settings sent after the handshake.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The protocol spoken.
    pub protocol: Protocol,
    /// The serve client's settings (used when `protocol` is `Serve`).
    pub serve: serve::ClientConfig,
    /// The worker client's settings (used when `protocol` is `Worker`).
    pub worker: worker::ClientConfig,
    /// The settings a worker session sends right after its handshake, as
    /// Nix's client does. By default: no substitution on the remote (the
    /// host decides where paths come from), builds' output as log lines.
    pub settings: worker::messages::SetOptions,
    /// The most bytes of the peer's stderr kept from before the handshake.
    pub max_peer_said: usize,
}

impl SessionConfig {
    /// The defaults for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        let settings = worker::messages::SetOptions {
            // 0 asks for builders' output as log lines, as Nix's own client
            // does with its default `verbose-build`.
            verbose_build: 0,
            use_substitutes: false,
            ..Default::default()
        };
        Self {
            protocol,
            serve: serve::ClientConfig::default(),
            worker: worker::ClientConfig::default(),
            settings,
            max_peer_said: 64 * 1024,
        }
    }

    /// The same settings with `timeout` for connecting and the handshake.
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.serve.handshake_timeout = timeout;
        self.worker.handshake_timeout = timeout;
        self
    }

    /// The same settings with `timeout` as the stall deadline of every
    /// request: how long it may wait with nothing arriving.
    #[must_use]
    pub fn with_stall_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.serve.stall_timeout = timeout;
        self.worker.stall_timeout = timeout;
        self
    }

    /// The same settings for a peer whose store is `dir`.
    #[must_use]
    pub fn with_store_dir(mut self, dir: StoreDir) -> Self {
        self.serve.store_dir = dir.clone();
        self.worker.store_dir = dir;
        self
    }
}

/// What the peer said about itself in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Info {
    /// The protocol spoken.
    pub protocol: Protocol,
    /// The version the peer announced.
    pub server_version: Version,
    /// The version both speak: min(ours, theirs).
    pub version: Version,
    /// The peer's Nix version, when it says (worker 1.33+).
    pub daemon_version: Option<String>,
    /// Whether the peer trusts us, when it says (worker 1.35+).
    pub trusted: Option<bool>,
    /// The features both sides announced (worker 1.38+).
    pub features: Vec<String>,
}

/// The limits of a build, sent with it (serve) or as settings before it
/// (worker). Zero means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BuildSettings {
    /// Seconds without output before the build is killed.
    pub max_silent_time: u64,
    /// Seconds before the build is killed.
    pub build_timeout: u64,
    /// Bytes of log before the build is killed (serve 2.2+).
    pub max_log_size: u64,
    /// Keep the build directory of a failed build.
    pub keep_failed: bool,
}

/// How many bytes may wait to be transmitted before
/// [`Session::body_room`] stops asking for more of an upload: enough to
/// keep a pipe full, small enough that memory does not grow with a NAR.
pub const WRITE_AHEAD: usize = 1 << 20;

/// An operation of a session, protocol-neutral.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Op {
    /// Which of `paths` the peer holds. Reply: [`Answer::ValidPaths`].
    QueryValidPaths {
        /// The paths asked about.
        paths: Vec<StorePath>,
        /// Let the peer substitute missing paths.
        substitute: bool,
    },
    /// The metadata of those of `paths` the peer holds. Reply:
    /// [`Answer::PathInfos`].
    QueryPathInfos {
        /// The paths asked about.
        paths: Vec<StorePath>,
    },
    /// A path's NAR, streamed as [`Event::NarChunk`]s. Reply:
    /// [`Answer::Nar`].
    NarFromPath {
        /// The path.
        path: StorePath,
    },
    /// Adds a path with its metadata; its NAR is the body, offered after
    /// [`Event::BodyWanted`]. Reply: [`Answer::Added`].
    AddToStoreNar {
        /// The path.
        path: StorePath,
        /// Its metadata; the NAR hash is required.
        info: Box<PathInfo>,
        /// Repair the path if it exists (worker only).
        repair: bool,
        /// Ask the peer not to check signatures (worker; trusted clients
        /// only; the serve protocol never checks them).
        dont_check_sigs: bool,
    },
    /// Adds many paths in one request: the body is their NARs, one after
    /// another in the order of `paths`, offered after
    /// [`Event::BodyWanted`] exactly as for [`Op::AddToStoreNar`] (the
    /// session writes whatever else the protocol puts around them). Reply:
    /// [`Answer::Added`] once every path is added; a refusal of any path
    /// is the request's error.
    AddMultiple {
        /// The paths with their metadata, in the order their NARs come;
        /// each NAR hash is required, and each NAR must be `nar_size`
        /// bytes.
        paths: Vec<(StorePath, PathInfo)>,
        /// Repair the paths that exist (worker only).
        repair: bool,
        /// Ask the peer not to check signatures (worker; trusted clients
        /// only; the serve protocol never checks them).
        dont_check_sigs: bool,
    },
    /// Builds a derivation sent inline, its inputs already on the peer;
    /// logs come as [`Event::Log`]s. Reply: [`Answer::Built`].
    BuildDerivation {
        /// The derivation's store path.
        drv_path: StorePath,
        /// The derivation.
        drv: Box<BasicDerivation>,
        /// Its limits.
        settings: BuildSettings,
    },
    /// A worker request sent as it is, for what the operations above do
    /// not cover (`BuildPaths`, `AddTempRoot`, `QueryDerivationOutputMap`,
    /// `SetOptions`, ...). Worker sessions only: on a serve session it is
    /// refused. Its body, if it has one, is offered as for
    /// [`Op::AddToStoreNar`]; its logs come as [`Event::Log`]s. Reply:
    /// [`Answer::Worker`].
    Worker(Box<worker::Request>),
}

impl Op {
    /// The operation's name in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::QueryValidPaths { .. } => "QueryValidPaths",
            Self::QueryPathInfos { .. } => "QueryPathInfos",
            Self::NarFromPath { .. } => "NarFromPath",
            Self::AddToStoreNar { .. } => "AddToStoreNar",
            Self::AddMultiple { .. } => "AddMultiple",
            Self::BuildDerivation { .. } => "BuildDerivation",
            Self::Worker(request) => request.command().name(),
        }
    }
}

/// The reply to an [`Op`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Answer {
    /// The valid paths among those asked about.
    ValidPaths(Vec<StorePath>),
    /// The metadata of the valid paths among those asked about, in the
    /// order asked.
    PathInfos(Vec<(StorePath, PathInfo)>),
    /// The NAR has been streamed whole.
    Nar,
    /// The path was added.
    Added,
    /// The build's result (a failed build is a result, not an error).
    Built(BuildResult),
    /// The reply to an [`Op::Worker`], as the daemon gave it.
    Worker(Box<worker::Reply>),
}

/// What happened on a [`Session`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed.
    Connected(Info),
    /// The request's body (a NAR) may now be offered with
    /// [`Session::offer_body`], at most `max` bytes when that is known.
    BodyWanted {
        /// The request.
        id: RequestId,
        /// The most bytes it takes now, when known.
        max: Option<u64>,
    },
    /// The peer stopped reading the request's body (it refused the
    /// operation): offer no more; its [`Event::Done`] follows.
    BodyStopped {
        /// The request.
        id: RequestId,
    },
    /// A piece of a NAR being read out: a slice of the received bytes.
    NarChunk {
        /// The request.
        id: RequestId,
        /// The bytes, in order.
        data: Bytes,
    },
    /// A log: the peer's stderr after the handshake (serve build logs),
    /// a worker log message or a line of a build's output. `request` is the
    /// session's id.
    Log(Log),
    /// A request ended: its answer, or why it failed (a refusal by the
    /// peer, or an operation the negotiated version lacks; the session goes
    /// on).
    Done {
        /// The request.
        id: RequestId,
        /// Its answer.
        result: Result<Answer, Error>,
    },
    /// The peer closed the stream with nothing owed.
    Closed,
    /// The connection broke; every later call returns this error.
    Broken(Error),
}

/// The protocol client under a session.
#[derive(Debug)]
enum Inner {
    Serve(Box<serve::Client>),
    Worker(Box<worker::Client>),
}

/// What a request of the protocol client stands for.
#[derive(Debug)]
enum Part {
    /// The whole of a session request.
    Whole(RequestId),
    /// One path of a `QueryPathInfos` done as many `QueryPathInfo`s.
    Path(RequestId, usize),
    /// One path of an `AddMultiple` done as many `AddToStoreNar`s.
    Each(RequestId),
    /// The settings sent before a worker build, answered by nothing.
    Settings,
}

/// A `QueryPathInfos` done path by path: what has come back so far.
#[derive(Debug)]
struct Gather {
    paths: Vec<StorePath>,
    infos: Vec<Option<PathInfo>>,
    missing: usize,
}

/// An `AddMultiple` done as many `AddToStoreNar`s: how many have yet to
/// answer, and the first refusal. The answer waits for all of them, so
/// that the host goes on offering every NAR the requests behind a refused
/// one still expect.
#[derive(Debug)]
struct Batch {
    missing: usize,
    error: Option<Error>,
}

/// A worker `AddMultipleToStore` whose body is under way: the session
/// writes the count and each path's `ValidPathInfo`, the host the NARs
/// between them.
#[derive(Debug)]
struct Multi {
    /// The paths whose NARs have not ended yet, the current one first.
    items: VecDeque<(StorePath, PathInfo)>,
    /// Whether the count and the first path info have been written (when
    /// the client first wants the body).
    started: bool,
    /// Where the current NAR ends: its own grammar, as the daemon reads it.
    framer: NarFramer,
}

/// One store connection over either protocol.
#[derive(Debug)]
pub struct Session {
    inner: Inner,
    config: SessionConfig,
    /// The next session request id.
    next: u64,
    /// The protocol client's requests and what each stands for.
    parts: HashMap<RequestId, Part>,
    /// The reverse of `parts` for whole requests, for bodies.
    whole: HashMap<RequestId, RequestId>,
    gathers: HashMap<RequestId, Gather>,
    /// The `AddMultiple`s done path by path.
    batches: HashMap<RequestId, Batch>,
    /// The `AddMultiple`s sent as one `AddMultipleToStore`.
    multis: HashMap<RequestId, Multi>,
    /// The paths of each `QueryPathInfos` sent whole, whose answer comes in
    /// the server's order (a set's, for the serve protocol) and is given in
    /// this one.
    orders: HashMap<RequestId, Vec<StorePath>>,
    /// The [`Op::Worker`] requests, answered with the reply as it is.
    raw: HashSet<RequestId>,
    events: VecDeque<Event>,
    info: Option<Info>,
    /// The peer's stderr before the handshake.
    peer_said: Vec<u8>,
    /// Requests made before the handshake completed: how an operation maps
    /// depends on what the peer announces (its version, its features).
    deferred: VecDeque<(RequestId, Op)>,
    /// The latest time a call was given, for requests issued on the
    /// handshake's completion.
    now: Instant,
}

impl Session {
    /// A session that starts with its protocol's handshake (ready to send at
    /// once). A worker session queues its settings behind the handshake.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let inner = match config.protocol {
            Protocol::Serve => {
                Inner::Serve(Box::new(serve::Client::new(config.serve.clone(), now)))
            }
            Protocol::Worker => {
                Inner::Worker(Box::new(worker::Client::new(config.worker.clone(), now)))
            }
        };
        let mut session = Self {
            inner,
            config,
            next: 0,
            parts: HashMap::new(),
            whole: HashMap::new(),
            gathers: HashMap::new(),
            batches: HashMap::new(),
            multis: HashMap::new(),
            orders: HashMap::new(),
            raw: HashSet::new(),
            events: VecDeque::new(),
            info: None,
            peer_said: Vec::new(),
            deferred: VecDeque::new(),
            now,
        };
        if let Inner::Worker(c) = &mut session.inner {
            // A fresh client takes requests before its handshake.
            if let Ok(id) = c.request(now, session.config.settings.clone()) {
                session.parts.insert(id, Part::Settings);
            }
        }
        session
    }

    /// The protocol spoken.
    pub fn protocol(&self) -> Protocol {
        self.config.protocol
    }

    /// What the peer said in the handshake, once it completed.
    pub fn info(&self) -> Option<&Info> {
        self.info.as_ref()
    }

    /// The error that broke the session, if one did.
    pub fn error(&self) -> Option<&Error> {
        match &self.inner {
            Inner::Serve(c) => c.error(),
            Inner::Worker(c) => c.error(),
        }
    }

    /// Whether no request is queued, in flight or uploading.
    pub fn is_idle(&self) -> bool {
        self.deferred.is_empty()
            && match &self.inner {
                Inner::Serve(c) => c.is_idle(),
                Inner::Worker(c) => c.is_idle(),
            }
    }

    /// Starts an operation and returns its id. Requests are pipelined: many
    /// may be in flight, and their answers come in order. A caller's
    /// mistake (a path info without a NAR hash, a closed session) is
    /// returned and changes nothing.
    pub fn request(&mut self, now: Instant, op: Op) -> Result<RequestId, Error> {
        self.now = now;
        if let Some(error) = self.error() {
            return Err(error.clone());
        }
        match &op {
            Op::AddToStoreNar { path, info, .. } => {
                nar_hash_of(path, info)?;
            }
            Op::AddMultiple { paths, .. } => {
                for (path, info) in paths {
                    nar_hash_of(path, info)?;
                }
            }
            _ => {}
        }
        let id = RequestId(self.next);
        if self.info.is_none() {
            self.next += 1;
            self.deferred.push_back((id, op));
            return Ok(id);
        }
        self.issue(now, id, op)?;
        self.next += 1;
        self.translate();
        Ok(id)
    }

    /// Maps session request `id` to its protocol's requests.
    fn issue(&mut self, now: Instant, id: RequestId, op: Op) -> Result<(), Error> {
        let order = match &op {
            Op::QueryPathInfos { paths } => Some(paths.clone()),
            _ => None,
        };
        let raw = matches!(op, Op::Worker(_));
        match &mut self.inner {
            Inner::Serve(c) => match op {
                Op::AddMultiple {
                    paths,
                    repair,
                    dont_check_sigs,
                } if c.version().is_some_and(|v| v >= Version::new(2, 5)) => {
                    if let Some(error) = c.error() {
                        return Err(error.clone());
                    }
                    // One AddToStoreNar per path, pipelined: the server
                    // streams each NAR into the store, where ImportPaths
                    // makes Nix hold every NAR whole in memory first.
                    let mut sent = Vec::with_capacity(paths.len());
                    for (path, info) in paths {
                        let op = Op::AddToStoreNar {
                            path,
                            info: Box::new(info),
                            repair,
                            dont_check_sigs,
                        };
                        sent.push(c.request(now, serve_request(op, c.version())?)?);
                    }
                    self.track_each(id, sent);
                }
                op => {
                    let request = serve_request(op, c.version())?;
                    let inner = c.request(now, request)?;
                    self.parts.insert(inner, Part::Whole(id));
                    self.whole.insert(id, inner);
                }
            },
            Inner::Worker(c) => match op {
                Op::QueryPathInfos { paths } if !c.features().has("queryPathInfos") => {
                    if let Some(error) = c.error() {
                        return Err(error.clone());
                    }
                    // Queued first, so that a refusal leaves nothing behind.
                    let mut sent = Vec::with_capacity(paths.len());
                    for (n, path) in paths.iter().enumerate() {
                        let request = worker::messages::QueryPathInfo { path: path.clone() };
                        sent.push((c.request(now, request)?, n));
                    }
                    for (inner, n) in sent {
                        self.parts.insert(inner, Part::Path(id, n));
                    }
                    let missing = paths.len();
                    let infos = vec![None; missing];
                    self.gathers.insert(
                        id,
                        Gather {
                            paths,
                            infos,
                            missing,
                        },
                    );
                    if missing == 0 {
                        self.finish_gather(id);
                    }
                }
                Op::AddMultiple {
                    paths,
                    repair,
                    dont_check_sigs,
                } if c.version().is_some_and(|v| v >= Version::new(1, 32)) => {
                    let request = worker::messages::AddMultipleToStore {
                        repair,
                        dont_check_sigs,
                    };
                    let inner = c.request(now, request)?;
                    self.parts.insert(inner, Part::Whole(id));
                    self.whole.insert(id, inner);
                    let framer = NarFramer::with_limits(c.cx().limits.nar);
                    self.multis.insert(
                        id,
                        Multi {
                            items: paths.into(),
                            started: false,
                            framer,
                        },
                    );
                }
                Op::AddMultiple {
                    paths,
                    repair,
                    dont_check_sigs,
                } => {
                    if let Some(error) = c.error() {
                        return Err(error.clone());
                    }
                    // Before 1.32 there is no batch operation: one
                    // AddToStoreNar per path, all queued at once so that no
                    // path waits for the previous one's answer.
                    let mut sent = Vec::with_capacity(paths.len());
                    for (path, info) in paths {
                        let request = worker_request(Op::AddToStoreNar {
                            path,
                            info: Box::new(info),
                            repair,
                            dont_check_sigs,
                        })?;
                        sent.push(c.request(now, request)?);
                    }
                    self.track_each(id, sent);
                }
                op => {
                    let build = match &op {
                        Op::BuildDerivation { settings, .. } => Some(*settings),
                        _ => None,
                    };
                    let request = worker_request(op)?;
                    if let Some(build) = build {
                        let settings = build.apply_to(&self.config.settings);
                        let inner = c.request(now, settings)?;
                        self.parts.insert(inner, Part::Settings);
                    }
                    let inner = c.request(now, request)?;
                    self.parts.insert(inner, Part::Whole(id));
                    self.whole.insert(id, inner);
                }
            },
        }
        if let Some(order) = order
            && self.whole.contains_key(&id)
        {
            self.orders.insert(id, order);
        }
        if raw {
            self.raw.insert(id);
        }
        Ok(())
    }

    /// Request `id` is the protocol requests `sent`, one per path: it is
    /// answered once they all are.
    fn track_each(&mut self, id: RequestId, sent: Vec<RequestId>) {
        let missing = sent.len();
        for inner in sent {
            self.parts.insert(inner, Part::Each(id));
        }
        if missing == 0 {
            self.events.push_back(Event::Done {
                id,
                result: Ok(Answer::Added),
            });
        } else {
            let error = None;
            self.batches.insert(id, Batch { missing, error });
        }
    }

    /// How many bytes wait to be taken with `poll_transmit`.
    pub fn queued_bytes(&self) -> usize {
        match &self.inner {
            Inner::Serve(c) => c.queued_bytes(),
            Inner::Worker(c) => c.queued_bytes(),
        }
    }

    /// The request whose body is wanted now, and the most it takes now when
    /// that is known.
    pub fn body_wanted(&self) -> Option<(RequestId, Option<u64>)> {
        let (inner, max) = match &self.inner {
            Inner::Serve(c) => c.body_wanted()?,
            Inner::Worker(c) => c.body_wanted()?,
        };
        match self.parts.get(&inner)? {
            // Until the count and first path info are written, the body is
            // not the host's to offer.
            Part::Whole(id) if self.multis.get(id).is_some_and(|m| !m.started) => None,
            Part::Whole(id) | Part::Each(id) => Some((*id, max)),
            _ => None,
        }
    }

    /// How many bytes of request `id`'s body to read now, at most `most`:
    /// `None` while its body is not wanted (not yet, no more, or a pulled
    /// body the daemon has not asked for). A host's upload loop reads this
    /// much, offers it, and asks again; the [`Event::BodyWanted`] events
    /// only say when to ask.
    ///
    /// While more than [`WRITE_AHEAD`] bytes wait to be transmitted it says
    /// `None`, so that an upload is read no faster than it is written and a
    /// NAR never sits whole in memory; once the host has taken enough with
    /// `poll_transmit`, a [`Event::BodyWanted`] says to ask again.
    pub fn body_room(&self, id: RequestId, most: usize) -> Option<usize> {
        if self.queued_bytes() >= WRITE_AHEAD {
            return None;
        }
        match self.body_wanted()? {
            (wanted, _) if wanted != id => None,
            (_, Some(0)) => None,
            (_, Some(max)) => Some(usize::try_from(max).map_or(most, |m| m.min(most))),
            (_, None) => Some(most),
        }
    }

    /// Offers bytes of request `id`'s body (its NAR) and returns how many
    /// were taken; what is taken is sent as slices of `data`.
    pub fn offer_body(&mut self, now: Instant, id: RequestId, data: Bytes) -> Result<usize, Error> {
        self.now = now;
        if self.multis.contains_key(&id) {
            let taken = self.offer_multi(now, id, data);
            self.translate();
            return taken;
        }
        if self.batches.contains_key(&id) {
            let taken = self.offer_each(now, id, data);
            self.translate();
            return taken;
        }
        let inner = *self
            .whole
            .get(&id)
            .ok_or_else(|| Error::misuse(format!("request {id} is not uploading a body")))?;
        let taken = match &mut self.inner {
            Inner::Serve(c) => c.offer_body(now, inner, data),
            Inner::Worker(c) => c.offer_body(now, inner, data),
        };
        self.translate();
        taken
    }

    /// Offers NAR bytes of an `AddMultiple` sent as `AddMultipleToStore`:
    /// each NAR's end is found by its grammar, and the next path info (or,
    /// after the last NAR, the body's end) is written right after it, so
    /// the host may offer the NARs in pieces of any size.
    fn offer_multi(&mut self, now: Instant, id: RequestId, data: Bytes) -> Result<usize, Error> {
        let (Inner::Worker(c), Some(&inner)) = (&mut self.inner, self.whole.get(&id)) else {
            return Err(Error::misuse(format!(
                "request {id} is not uploading a body"
            )));
        };
        let item_cx = worker::messages::AddMultipleToStore::item_cx(c.cx());
        let op = "AddMultipleToStore";
        let mut taken = 0;
        while taken < data.len() {
            let Some(multi) = self.multis.get_mut(&id) else {
                break;
            };
            let Some((path, info)) = multi.items.front() else {
                break;
            };
            let fed = multi.framer.feed(&data[taken..]);
            let checked = fed
                .map_err(|source| ErrorKind::Nar {
                    what: format!("the NAR of {path}"),
                    source,
                })
                .and_then(|used| {
                    let done = multi.framer.is_done();
                    let at = multi.framer.position();
                    // The daemon refuses a NAR whose size is not the one
                    // its path info states, and would then read the next
                    // path's bytes as this one's: caught before they go.
                    if (done && at != info.nar_size) || (!done && at > info.nar_size) {
                        return Err(ErrorKind::Body {
                            why: format!(
                                "the NAR of {path} {} {at} bytes, but its path info states {}",
                                if done { "is" } else { "is already over" },
                                info.nar_size
                            ),
                        });
                    }
                    Ok((used, done))
                });
            let (used, done) = match checked {
                Ok(step) => step,
                Err(kind) => {
                    // Part of the body is sent: the stream cannot be
                    // followed any more, so the request is given up.
                    let error = Error::new(kind, Phase::Sending).about(id, op);
                    self.multis.remove(&id);
                    self.parts.remove(&inner);
                    self.whole.remove(&id);
                    c.abandon(inner);
                    return Err(error);
                }
            };
            c.offer_body(now, inner, data.slice(taken..taken + used))?;
            taken += used;
            if done {
                multi.items.pop_front();
                multi.framer = NarFramer::with_limits(c.cx().limits.nar);
                match multi.items.front() {
                    Some((path, info)) => {
                        let mut next = Vec::new();
                        valid_path_info(path, info).encode(&item_cx, &mut next);
                        c.offer_body(now, inner, Bytes::from(next))?;
                    }
                    None => {
                        self.multis.remove(&id);
                        c.finish_body(now, inner)?;
                    }
                }
            }
        }
        Ok(taken)
    }

    /// Offers NAR bytes of an `AddMultiple` done as many `AddToStoreNar`s:
    /// to whichever of them is uploading now (each takes up to its own
    /// `nar_size`, which the host is told as the most it takes).
    fn offer_each(&mut self, now: Instant, id: RequestId, data: Bytes) -> Result<usize, Error> {
        let parts = &self.parts;
        let taken = match &mut self.inner {
            Inner::Serve(c) => offer_in_turn(parts, id, now, &data, &mut **c)?,
            Inner::Worker(c) => offer_in_turn(parts, id, now, &data, &mut **c)?,
        };
        if taken == 0 {
            return Err(Error::misuse(format!(
                "request {id} is not uploading a body now"
            )));
        }
        Ok(taken)
    }

    /// Gives up on request `id`; one already under way breaks the session
    /// (its reply can no longer be told apart from the next one's).
    pub fn abandon(&mut self, id: RequestId) {
        // One still waiting for the handshake was never sent.
        self.deferred.retain(|(d, _)| *d != id);
        let inners: Vec<RequestId> = self
            .parts
            .iter()
            .filter(
                |(_, p)| matches!(p, Part::Whole(w) | Part::Path(w, _) | Part::Each(w) if *w == id),
            )
            .map(|(i, _)| *i)
            .collect();
        for inner in inners {
            self.parts.remove(&inner);
            match &mut self.inner {
                Inner::Serve(c) => c.abandon(inner),
                Inner::Worker(c) => c.abandon(inner),
            }
        }
        self.whole.remove(&id);
        self.gathers.remove(&id);
        self.batches.remove(&id);
        self.multis.remove(&id);
        self.raw.remove(&id);
        self.translate();
    }

    /// Moves the protocol client's events into the session's, translated.
    fn translate(&mut self) {
        loop {
            let event = match &mut self.inner {
                Inner::Serve(c) => c.poll_event().map(Self::from_serve),
                Inner::Worker(c) => c.poll_event().map(Self::from_worker),
            };
            let Some(event) = event else { return };
            self.absorb(event);
        }
    }

    fn from_serve(event: serve::ClientEvent) -> Inbound {
        use serve::ClientEvent as E;
        match event {
            E::Connected {
                server_version,
                version,
            } => Inbound::Connected(Info {
                protocol: Protocol::Serve,
                server_version,
                version,
                daemon_version: None,
                trusted: None,
                features: Vec::new(),
            }),
            E::BodyWanted { id, max } => Inbound::BodyWanted(id, max),
            E::NarChunk { id, data } => Inbound::NarChunk(id, data),
            E::Reply { id, reply } => Inbound::Reply(id, Ok(Reply::Serve(reply))),
            E::Failed { id, error } => Inbound::Reply(id, Err(error)),
            E::Log(log) => Inbound::Log(log),
            E::Closed => Inbound::Closed,
            E::Broken(e) => Inbound::Broken(e),
        }
    }

    fn from_worker(event: worker::ClientEvent) -> Inbound {
        use worker::ClientEvent as E;
        match event {
            E::Connected {
                server_version,
                version,
                features,
                info,
            } => Inbound::Connected(Info {
                protocol: Protocol::Worker,
                server_version,
                version,
                daemon_version: (!info.daemon_version.is_empty())
                    .then(|| info.daemon_version.to_string_lossy().into_owned()),
                trusted: info.trust.trusted(),
                features: features.iter().map(str::to_owned).collect(),
            }),
            E::BodyWanted { id, max } => Inbound::BodyWanted(id, max),
            E::BodyStopped { id } => Inbound::BodyStopped(id),
            E::NarChunk { id, data } => Inbound::NarChunk(id, data),
            E::Reply { id, reply } => Inbound::Reply(id, Ok(Reply::Worker(Box::new(reply)))),
            E::Failed { id, error } => Inbound::Reply(id, Err(error)),
            E::Log(log) => Inbound::Log(log),
            E::Closed => Inbound::Closed,
            E::Broken(e) => Inbound::Broken(e),
            _ => Inbound::Nothing,
        }
    }

    fn absorb(&mut self, event: Inbound) {
        let whole = |parts: &HashMap<RequestId, Part>, inner| match parts.get(&inner) {
            Some(Part::Whole(id)) => Some(*id),
            _ => None,
        };
        match event {
            Inbound::Nothing => {}
            Inbound::Connected(info) => {
                self.info = Some(info.clone());
                self.peer_said = Vec::new();
                self.events.push_back(Event::Connected(info));
                let now = self.now;
                while let Some((id, op)) = self.deferred.pop_front() {
                    if let Err(error) = self.issue(now, id, op) {
                        self.events.push_back(Event::Done {
                            id,
                            result: Err(error),
                        });
                    }
                }
            }
            Inbound::BodyWanted(inner, max) => match self.parts.get(&inner) {
                Some(Part::Whole(id)) if self.multis.contains_key(id) => {
                    let id = *id;
                    if self.start_multi(id, inner) {
                        self.events.push_back(Event::BodyWanted { id, max: None });
                    }
                }
                Some(Part::Whole(id) | Part::Each(id)) => {
                    self.events.push_back(Event::BodyWanted { id: *id, max });
                }
                _ => {}
            },
            Inbound::BodyStopped(inner) => {
                if let Some(id) = whole(&self.parts, inner) {
                    self.events.push_back(Event::BodyStopped { id });
                }
            }
            Inbound::NarChunk(inner, data) => {
                if let Some(id) = whole(&self.parts, inner) {
                    self.events.push_back(Event::NarChunk { id, data });
                }
            }
            Inbound::Log(mut log) => {
                if self.info.is_none() {
                    let room = self
                        .config
                        .max_peer_said
                        .saturating_sub(self.peer_said.len());
                    let text = &log.text[..log.text.len().min(room)];
                    self.peer_said.extend_from_slice(text);
                    return;
                }
                log.request = log.request.and_then(|inner| match self.parts.get(&inner) {
                    Some(Part::Whole(id) | Part::Path(id, _)) => Some(*id),
                    _ => None,
                });
                self.events.push_back(Event::Log(log));
            }
            Inbound::Reply(inner, result) => self.finish(inner, result),
            Inbound::Closed => self.events.push_back(Event::Closed),
            Inbound::Broken(error) => {
                let error = if self.info.is_none() {
                    error.with_peer_said(&String::from_utf8_lossy(&self.peer_said))
                } else {
                    error
                };
                self.events.push_back(Event::Broken(error));
            }
        }
    }

    /// Writes the start of an `AddMultipleToStore` body (the count and the
    /// first path info; with no paths, the whole body) and says whether
    /// the host has NARs to offer.
    fn start_multi(&mut self, id: RequestId, inner: RequestId) -> bool {
        let (Inner::Worker(c), Some(multi)) = (&mut self.inner, self.multis.get_mut(&id)) else {
            return false;
        };
        if multi.started {
            return false;
        }
        multi.started = true;
        let item_cx = worker::messages::AddMultipleToStore::item_cx(c.cx());
        let mut head = Vec::new();
        encode_u64(multi.items.len() as u64, &mut head);
        if let Some((path, info)) = multi.items.front() {
            valid_path_info(path, info).encode(&item_cx, &mut head);
        }
        let now = self.now;
        // Either call fails only when the connection has broken, which the
        // client reports as its own event; nothing more is owed then.
        let started = c.offer_body(now, inner, Bytes::from(head)).is_ok();
        if multi.items.is_empty() {
            self.multis.remove(&id);
            let _ = c.finish_body(now, inner);
            return false;
        }
        started
    }

    /// A protocol client's request ended.
    fn finish(&mut self, inner: RequestId, result: Result<Reply, Error>) {
        match self.parts.remove(&inner) {
            // The settings before a build: a refusal shows in the build.
            None | Some(Part::Settings) => {}
            Some(Part::Each(id)) => {
                let Some(batch) = self.batches.get_mut(&id) else {
                    return;
                };
                batch.missing -= 1;
                let failed = match result {
                    Ok(Reply::Worker(r)) if matches!(*r, worker::Reply::AddToStoreNar(_)) => None,
                    Ok(Reply::Serve(serve::Reply::AddToStoreNar(_))) => None,
                    Ok(Reply::Worker(r)) => Some(unexpected("AddToStoreNar", &r)),
                    Ok(Reply::Serve(r)) => Some(unexpected("AddToStoreNar", &r)),
                    Err(error) => Some(error),
                };
                if batch.error.is_none() {
                    batch.error = failed;
                }
                if batch.missing == 0 {
                    let result = match self.batches.remove(&id).and_then(|b| b.error) {
                        Some(error) => Err(error),
                        None => Ok(Answer::Added),
                    };
                    self.events.push_back(Event::Done { id, result });
                }
            }
            Some(Part::Whole(id)) => {
                self.whole.remove(&id);
                self.multis.remove(&id);
                let raw = self.raw.remove(&id);
                let mut result = result.and_then(|reply| match reply {
                    Reply::Worker(r) if raw => Ok(Answer::Worker(r)),
                    Reply::Serve(r) => serve_answer(r),
                    Reply::Worker(r) => worker_answer(*r),
                });
                if let (Some(order), Ok(Answer::PathInfos(infos))) =
                    (self.orders.remove(&id), &mut result)
                {
                    in_order(infos, &order);
                }
                self.events.push_back(Event::Done { id, result });
            }
            Some(Part::Path(id, n)) => {
                let Some(gather) = self.gathers.get_mut(&id) else {
                    return; // Already failed.
                };
                match result {
                    Ok(Reply::Worker(r)) => match *r {
                        worker::Reply::QueryPathInfo(info) => {
                            if let Some(slot) = gather.infos.get_mut(n) {
                                *slot = info;
                            }
                            gather.missing -= 1;
                            if gather.missing == 0 {
                                self.finish_gather(id);
                            }
                        }
                        other => {
                            self.gathers.remove(&id);
                            let error = unexpected("QueryPathInfo", &other);
                            self.events.push_back(Event::Done {
                                id,
                                result: Err(error),
                            });
                        }
                    },
                    Ok(Reply::Serve(other)) => {
                        self.gathers.remove(&id);
                        let error = unexpected("QueryPathInfo", &other);
                        self.events.push_back(Event::Done {
                            id,
                            result: Err(error),
                        });
                    }
                    Err(error) => {
                        self.gathers.remove(&id);
                        self.events.push_back(Event::Done {
                            id,
                            result: Err(error),
                        });
                    }
                }
            }
        }
    }

    /// Every path of a gathered `QueryPathInfos` has its answer.
    fn finish_gather(&mut self, id: RequestId) {
        let Some(gather) = self.gathers.remove(&id) else {
            return;
        };
        let infos = gather
            .paths
            .into_iter()
            .zip(gather.infos)
            .filter_map(|(path, info)| Some((path, info?)))
            .collect();
        self.events.push_back(Event::Done {
            id,
            result: Ok(Answer::PathInfos(infos)),
        });
    }

    fn with_inner<T>(
        &mut self,
        serve: impl FnOnce(&mut serve::Client) -> T,
        worker: impl FnOnce(&mut worker::Client) -> T,
    ) -> T {
        let out = match &mut self.inner {
            Inner::Serve(c) => serve(c),
            Inner::Worker(c) => worker(c),
        };
        self.translate();
        out
    }
}

/// A protocol client's event, before it is translated.
enum Inbound {
    Nothing,
    Connected(Info),
    BodyWanted(RequestId, Option<u64>),
    BodyStopped(RequestId),
    NarChunk(RequestId, Bytes),
    Reply(RequestId, Result<Reply, Error>),
    Log(Log),
    Closed,
    Broken(Error),
}

/// A protocol client's reply.
enum Reply {
    Serve(serve::Reply),
    Worker(Box<worker::Reply>),
}

impl Connection for Session {
    type Event = Event;

    fn handle_input(&mut self, now: Instant, data: Bytes) -> Result<(), Error> {
        self.now = now;
        let result = match &mut self.inner {
            Inner::Serve(c) => c.handle_input(now, data),
            Inner::Worker(c) => c.handle_input(now, data),
        };
        self.translate();
        result
    }

    fn handle_stderr(&mut self, now: Instant, data: Bytes) {
        self.now = now;
        match &mut self.inner {
            Inner::Serve(c) => c.handle_stderr(now, data),
            Inner::Worker(c) => c.handle_stderr(now, data),
        }
        self.translate();
    }

    fn handle_eof(&mut self, now: Instant) -> Result<(), Error> {
        self.now = now;
        self.with_inner(|c| c.handle_eof(now), |c| c.handle_eof(now))
    }

    fn handle_sent(&mut self, now: Instant, n: usize) {
        match &mut self.inner {
            Inner::Serve(c) => c.handle_sent(now, n),
            Inner::Worker(c) => c.handle_sent(now, n),
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.now = now;
        self.with_inner(|c| c.handle_timeout(now), |c| c.handle_timeout(now))
    }

    fn poll_transmit(&mut self) -> Option<Bytes> {
        let before = self.queued_bytes();
        let bytes = match &mut self.inner {
            Inner::Serve(c) => c.poll_transmit(),
            Inner::Worker(c) => c.poll_transmit(),
        };
        // An upload held back by `body_room` may go on: say so once, as the
        // queue drains below the mark.
        if before >= WRITE_AHEAD
            && self.queued_bytes() < WRITE_AHEAD
            && let Some((id, max)) = self.body_wanted()
        {
            self.events.push_back(Event::BodyWanted { id, max });
        }
        bytes
    }

    fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            self.translate();
        }
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.inner {
            Inner::Serve(c) => c.poll_timeout(),
            Inner::Worker(c) => c.poll_timeout(),
        }
    }
}

/// Puts `infos` in the order of `asked` (each path once, as asked).
fn in_order(infos: &mut [(StorePath, PathInfo)], asked: &[StorePath]) {
    let rank: HashMap<&StorePath, usize> = asked.iter().enumerate().map(|(n, p)| (p, n)).collect();
    infos.sort_by_key(|(path, _)| rank.get(path).copied().unwrap_or(usize::MAX));
}

/// A reply of the wrong kind for its request: the protocol clients never
/// give one, so this is a bug here, reported rather than panicked on.
fn unexpected(op: &'static str, reply: &dyn std::fmt::Debug) -> Error {
    Error::misuse(format!("{op} was answered by {reply:?}"))
}

/// A path with its metadata as `AddMultipleToStore`'s body carries it.
fn valid_path_info(path: &StorePath, info: &PathInfo) -> worker::messages::ValidPathInfo {
    worker::messages::ValidPathInfo {
        path: path.clone(),
        info: info.clone(),
    }
}

/// The NAR hash a path being added must have (both protocols send it).
fn nar_hash_of(path: &StorePath, info: &PathInfo) -> Result<crate::store::NarHash, Error> {
    info.nar_hash
        .ok_or_else(|| Error::misuse(format!("adding {path}: its path info has no NAR hash")))
}

/// The body upload of both protocols' clients, so that what the session
/// does with it is written once.
trait Upload {
    fn wanted(&self) -> Option<(RequestId, Option<u64>)>;
    fn offer(&mut self, now: Instant, inner: RequestId, data: Bytes) -> Result<usize, Error>;
}

impl Upload for serve::Client {
    fn wanted(&self) -> Option<(RequestId, Option<u64>)> {
        self.body_wanted()
    }
    fn offer(&mut self, now: Instant, inner: RequestId, data: Bytes) -> Result<usize, Error> {
        self.offer_body(now, inner, data)
    }
}

impl Upload for worker::Client {
    fn wanted(&self) -> Option<(RequestId, Option<u64>)> {
        self.body_wanted()
    }
    fn offer(&mut self, now: Instant, inner: RequestId, data: Bytes) -> Result<usize, Error> {
        self.offer_body(now, inner, data)
    }
}

/// Offers `data` to the per-path requests of `id` in turn (each takes its
/// NAR's bytes, the next one the rest); how many bytes were taken.
fn offer_in_turn(
    parts: &HashMap<RequestId, Part>,
    id: RequestId,
    now: Instant,
    data: &Bytes,
    c: &mut impl Upload,
) -> Result<usize, Error> {
    let mut taken = 0;
    while taken < data.len() {
        let Some((inner, max)) = c.wanted() else {
            break;
        };
        if !matches!(parts.get(&inner), Some(Part::Each(w)) if *w == id) || max == Some(0) {
            break;
        }
        let n = c.offer(now, inner, data.slice(taken..))?;
        if n == 0 {
            break;
        }
        taken += n;
    }
    Ok(taken)
}

/// The serve request for `op`, at the negotiated `version` when known.
fn serve_request(op: Op, version: Option<Version>) -> Result<serve::Request, Error> {
    Ok(match op {
        Op::QueryValidPaths { paths, substitute } => sm::QueryValidPaths {
            lock: false,
            substitute,
            paths,
        }
        .into(),
        Op::QueryPathInfos { paths } => sm::QueryPathInfos { paths }.into(),
        Op::NarFromPath { path } => sm::DumpStorePath { path }.into(),
        Op::AddToStoreNar { path, info, .. } => {
            let nar_hash = nar_hash_of(&path, &info)?;
            // Requests wait for the handshake, so the version is known.
            if version.is_some_and(|v| v < Version::new(2, 5)) {
                sm::ImportPaths {
                    paths: vec![sm::ExportTrailer {
                        magic: sm::ExportMagic,
                        path,
                        references: info.references,
                        deriver: info.deriver,
                        legacy_signature: sm::LegacySignature(None),
                    }],
                }
                .into()
            } else {
                sm::AddToStoreNar {
                    path,
                    deriver: info.deriver,
                    nar_hash,
                    references: info.references,
                    registration_time: info.registration_time,
                    nar_size: info.nar_size,
                    ultimate: info.ultimate,
                    sigs: info.sigs,
                    ca: info.ca,
                }
                .into()
            }
        }
        Op::AddMultiple { paths, .. } => {
            // Every version imports many paths at once; the client writes
            // each trailer after its NAR.
            let mut trailers = Vec::with_capacity(paths.len());
            for (path, info) in paths {
                nar_hash_of(&path, &info)?;
                trailers.push(sm::ExportTrailer {
                    magic: sm::ExportMagic,
                    path,
                    references: info.references,
                    deriver: info.deriver,
                    legacy_signature: sm::LegacySignature(None),
                });
            }
            sm::ImportPaths { paths: trailers }.into()
        }
        Op::BuildDerivation {
            drv_path,
            drv,
            settings,
        } => sm::BuildDerivation {
            drv_path,
            drv: *drv,
            options: sm::BuildOptions {
                max_silent_time: settings.max_silent_time,
                build_timeout: settings.build_timeout,
                max_log_size: settings.max_log_size,
                nr_repeats: 0,
                enforce_determinism: false,
                keep_failed: settings.keep_failed,
            },
        }
        .into(),
        Op::Worker(request) => {
            return Err(Error::misuse(format!(
                "{} is a worker request; this session speaks the serve protocol",
                request.command().name()
            )));
        }
    })
}

/// The worker request for `op` (all but a path-by-path `QueryPathInfos`).
fn worker_request(op: Op) -> Result<worker::Request, Error> {
    use worker::messages as wm;
    Ok(match op {
        Op::QueryValidPaths { paths, substitute } => {
            wm::QueryValidPaths { paths, substitute }.into()
        }
        Op::QueryPathInfos { paths } => wm::QueryPathInfos { paths }.into(),
        Op::NarFromPath { path } => wm::NarFromPath { path }.into(),
        Op::AddToStoreNar {
            path,
            info,
            repair,
            dont_check_sigs,
        } => {
            let nar_hash = nar_hash_of(&path, &info)?;
            wm::AddToStoreNar {
                path,
                deriver: info.deriver,
                nar_hash,
                references: info.references,
                registration_time: info.registration_time,
                nar_size: info.nar_size,
                ultimate: info.ultimate,
                sigs: info.sigs,
                ca: info.ca,
                provenance: info.provenance,
                repair,
                dont_check_sigs,
            }
            .into()
        }
        Op::AddMultiple { .. } => {
            return Err(Error::misuse(
                "AddMultiple is mapped by the session itself, not as one request",
            ));
        }
        Op::BuildDerivation { drv_path, drv, .. } => wm::BuildDerivation {
            drv_path,
            drv: *drv,
            mode: wm::BuildMode::Normal,
        }
        .into(),
        Op::Worker(request) => *request,
    })
}

impl BuildSettings {
    /// `base` (a session's worker settings) with these limits: what a
    /// worker client sends as `SetOptions` before a build, since the worker
    /// protocol carries no limits with the build itself.
    pub fn apply_to(self, base: &worker::messages::SetOptions) -> worker::messages::SetOptions {
        let mut settings = base.clone();
        settings.max_silent_time = self.max_silent_time;
        settings.keep_failed = self.keep_failed;
        let mut set = |name: &str, value: u64| {
            settings
                .overrides
                .retain(|(n, _)| n.as_bytes() != name.as_bytes());
            settings
                .overrides
                .push((NixString::from(name), NixString::from(value.to_string())));
        };
        set("timeout", self.build_timeout);
        if self.max_log_size > 0 {
            set("max-log-size", self.max_log_size);
        }
        settings
    }
}

/// The answer a serve reply gives.
fn serve_answer(reply: serve::Reply) -> Result<Answer, Error> {
    use serve::Reply as R;
    Ok(match reply {
        R::QueryValidPaths(paths) => Answer::ValidPaths(paths),
        R::QueryPathInfos(infos) => Answer::PathInfos(infos.0),
        R::DumpStorePath(_) => Answer::Nar,
        R::AddToStoreNar(_) | R::ImportPaths(_) => Answer::Added,
        R::BuildDerivation(result) => Answer::Built(result),
        other => return Err(unexpected("a session operation", &other)),
    })
}

/// The answer a worker reply gives.
fn worker_answer(reply: worker::Reply) -> Result<Answer, Error> {
    use worker::Reply as R;
    Ok(match reply {
        R::QueryValidPaths(paths) => Answer::ValidPaths(paths),
        R::QueryPathInfos(infos) => {
            Answer::PathInfos(infos.into_iter().map(|v| (v.path, v.info)).collect())
        }
        R::NarFromPath(_) => Answer::Nar,
        R::AddToStoreNar(_) | R::AddMultipleToStore(_) => Answer::Added,
        R::BuildDerivation(result) => Answer::Built(result),
        other => return Err(unexpected("a session operation", &other)),
    })
}
