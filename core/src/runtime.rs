//! What every runtime shares, so that each owns I/O and nothing else: how to
//! reach a store named by a URI ([`Plan`]), the settings a host gives
//! ([`Options`]), the one error type of every runtime ([`Error`]), and the
//! book of answers that arrived while the host waited for another
//! ([`Answers`]).
//!
//! A runtime (`nixwire-tokio`, `nixwire-smol`, `nixwire-blocking`) turns a
//! [`Plan`] into a byte stream (a child's pipes, an ssh channel, a unix
//! socket), puts a [`Session`](crate::session::Session) on it and runs the
//! loop of the [crate documentation](crate). None of them decides anything a
//! plan or a session does not say.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::conn::{self, Connection, ErrorClass, RequestId};
use crate::session::{Answer, Event, Info, Protocol, SessionConfig};
use crate::ssh::SshOptions;
use crate::uri::{RemoteProtocol, SshStore, StoreUri, UriError};

/// Where the local daemon listens unless told otherwise (Nix's default
/// `state` directory).
pub const DAEMON_SOCKET: &str = "/nix/var/nix/daemon-socket/socket";

/// What a host says about how to connect and how long to wait.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// How long connecting and the handshake may take together (ssh's own
    /// `ConnectTimeout` is part of it). Default 60 s, Hydra's.
    pub connect_timeout: Option<Duration>,
    /// How long a request may wait with nothing arriving (a stalled
    /// transfer, a SIGSTOPped peer). Default: none, since builds can be
    /// silent for hours; set it to the builds' `max-silent-time` or less.
    pub stall_timeout: Option<Duration>,
    /// How long a cancelled or closed peer may take to exit before it is
    /// killed.
    pub exit_grace: Duration,
    /// How ssh is run (the ssh runtimes that spawn `ssh` use it whole; the
    /// in-process ones take the timeouts and the pinned key from it).
    pub ssh: SshOptions,
    /// The session's settings (protocol clients, worker settings); the
    /// protocol and the timeouts above are filled in when opening.
    pub session: SessionConfig,
    /// The program run for a `local` store and, with `auto`, when no daemon
    /// listens: `nix-daemon` (spoken to as `nix-daemon --stdio`).
    pub nix_daemon: String,
    /// Extra environment for the programs run here (a local store's
    /// program; never sent through ssh), e.g. `NIX_CONF_DIR`.
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: Some(Duration::from_secs(60)),
            stall_timeout: None,
            exit_grace: Duration::from_secs(10),
            ssh: SshOptions::default(),
            session: SessionConfig::new(Protocol::Worker),
            nix_daemon: "nix-daemon".to_owned(),
            env: Vec::new(),
        }
    }
}

impl Options {
    /// The same options with the words of `NIX_SSHOPTS` (its value, read
    /// by the host: this crate reads no environment) after nixwire's own
    /// ssh options; see [`crate::ssh::split_sshopts`] for how it splits.
    pub fn with_nix_sshopts(mut self, value: &str) -> Result<Self, crate::ssh::SshError> {
        self.ssh.extra.extend(crate::ssh::split_sshopts(value)?);
        Ok(self)
    }

    /// The session settings for `protocol` with these options' deadlines.
    pub fn session_config(&self, protocol: Protocol) -> SessionConfig {
        let mut config = self.session.clone();
        config.protocol = protocol;
        config
            .with_handshake_timeout(self.connect_timeout)
            .with_stall_timeout(self.stall_timeout)
    }
}

/// How to reach a store: what a runtime connects to, and the protocol the
/// session speaks there.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Plan {
    /// Run a program here; its stdin and stdout are the stream, its stderr
    /// the peer's stderr.
    Process {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// The protocol it speaks.
        protocol: Protocol,
    },
    /// Run the remote command on an ssh host.
    Ssh {
        /// The host and its parameters.
        store: Box<SshStore>,
        /// The remote command's words (quoted into one line for ssh by
        /// [`crate::ssh`]).
        command: Vec<String>,
        /// The protocol it speaks.
        protocol: Protocol,
    },
    /// Connect to a daemon's unix socket (the worker protocol).
    Unix {
        /// The socket.
        path: PathBuf,
    },
}

impl Plan {
    /// How to reach `uri`. `daemon_listening` says whether the default
    /// daemon socket exists, which decides `auto` (the runtime looks; this
    /// stays pure).
    pub fn for_uri(uri: &StoreUri, options: &Options, daemon_listening: bool) -> Self {
        let local = |root: Option<&PathBuf>| {
            let mut args = vec!["--stdio".to_owned()];
            if let Some(root) = root {
                args.push("--store".to_owned());
                args.push(root.display().to_string());
            }
            Self::Process {
                program: options.nix_daemon.clone(),
                args,
                protocol: Protocol::Worker,
            }
        };
        match uri {
            StoreUri::Ssh(store) => {
                let plan = Self::Ssh {
                    command: crate::ssh::remote_command(store),
                    protocol: protocol_of(store.protocol),
                    store: Box::new(store.clone()),
                };
                // Nix's "fake ssh": `localhost` runs the remote command here.
                if store.is_localhost() {
                    plan.without_ssh()
                } else {
                    plan
                }
            }
            StoreUri::Unix { path, .. } => Self::Unix { path: path.clone() },
            StoreUri::Daemon { .. } => Self::Unix {
                path: PathBuf::from(DAEMON_SOCKET),
            },
            StoreUri::Local { root, .. } => local(root.as_ref()),
            StoreUri::Auto { .. } if daemon_listening => Self::Unix {
                path: PathBuf::from(DAEMON_SOCKET),
            },
            StoreUri::Auto { .. } => local(None),
        }
    }

    /// The protocol spoken at the end of this plan.
    pub fn protocol(&self) -> Protocol {
        match self {
            Self::Process { protocol, .. } | Self::Ssh { protocol, .. } => *protocol,
            Self::Unix { .. } => Protocol::Worker,
        }
    }

    /// The same plan with the remote command run here, without ssh: what a
    /// test or a local builder does with an `ssh://` URI's command.
    pub fn without_ssh(self) -> Self {
        match self {
            Self::Ssh {
                mut command,
                protocol,
                ..
            } if !command.is_empty() => {
                let program = command.remove(0);
                Self::Process {
                    program,
                    args: command,
                    protocol,
                }
            }
            other => other,
        }
    }
}

/// The session protocol of an ssh store's scheme.
pub fn protocol_of(remote: RemoteProtocol) -> Protocol {
    match remote {
        RemoteProtocol::Serve => Protocol::Serve,
        RemoteProtocol::Worker => Protocol::Worker,
    }
}

/// Everything that can go wrong in a runtime, with a class a host acts on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store URI does not parse.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// The ssh invocation cannot be made (an option, a pinned key).
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    /// A program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting failed before any protocol byte: the socket, the ssh
    /// login, the host key.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// What was being connected to.
        target: String,
        /// Why, as the transport said.
        reason: String,
    },
    /// Reading or writing the stream failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The connection broke, or the peer refused a request (see the
    /// error's class).
    #[error(transparent)]
    Connection(#[from] conn::Error),
    /// A deadline of the runtime passed (connecting, or a peer that would
    /// not exit).
    #[error("timed out after {:.1}s {during}", after.as_secs_f64())]
    TimedOut {
        /// What was being waited for.
        during: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The host cancelled; the connection is discarded.
    #[error("cancelled {during}")]
    Cancelled {
        /// What was under way.
        during: &'static str,
    },
    /// The stream ended while something was still awaited.
    #[error("the connection ended {during}")]
    Ended {
        /// What was awaited.
        during: &'static str,
    },
    /// The store cannot do this (a unix socket for the serve protocol).
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// What a host does about it: transport and timeout errors mean "retry
    /// elsewhere, back the machine off"; a refusal is the request's alone.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Uri(_) | Self::Ssh(_) | Self::Unsupported(_) => ErrorClass::Usage,
            Self::Spawn { .. } | Self::Connect { .. } | Self::Io { .. } | Self::Ended { .. } => {
                ErrorClass::Transport
            }
            Self::Connection(e) => e.class(),
            Self::TimedOut { .. } => ErrorClass::Timeout,
            Self::Cancelled { .. } => ErrorClass::Cancelled,
        }
    }

    /// An I/O error while doing `what`.
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { what, source }
    }

    /// The error of a handshake that broke with `error` on the way `plan`
    /// says. Over ssh, a stream that closed before the server's handshake
    /// is a failure to connect ([`Error::Connect`], whose reason has ssh's
    /// own words from [`conn::Error::peer_said`]): a runtime that spawns
    /// the system `ssh` learns of a refused connection, a wrong host key or
    /// a failed login only by ssh exiting, and the host should be told
    /// what it is told when an in-process ssh client fails to connect.
    /// Anything else is [`Error::Connection`].
    pub fn from_handshake(plan: &Plan, error: conn::Error) -> Self {
        match plan {
            Plan::Ssh { store, .. }
                if error.phase == conn::Phase::Handshake
                    && matches!(*error.kind, conn::ErrorKind::Closed { .. }) =>
            {
                Self::Connect {
                    target: store.to_string(),
                    reason: error.to_string(),
                }
            }
            _ => Self::Connection(error),
        }
    }
}

/// What a session event means while the handshake is under way: the peer's
/// [`Info`] when it completes, the error (told as
/// [`Error::from_handshake`]) when it fails, nothing otherwise. Every
/// runtime's `Store` runs its loop on this until it breaks.
pub fn handshake_step(plan: &Plan, event: Event) -> ControlFlow<Result<Info, Error>> {
    match event {
        Event::Connected(info) => ControlFlow::Break(Ok(info)),
        Event::Broken(e) => ControlFlow::Break(Err(Error::from_handshake(plan, e))),
        Event::Closed => ControlFlow::Break(Err(Error::Ended {
            during: "during the handshake",
        })),
        _ => ControlFlow::Continue(()),
    }
}

/// Answers that arrived while the host waited for another request's: with
/// many requests in flight on one connection, they end in order but are
/// awaited in any order.
#[derive(Debug, Default)]
pub struct Answers {
    done: HashMap<RequestId, Result<Answer, conn::Error>>,
}

/// What a session event means to a host waiting for one request: each
/// runtime's `Store` runs its loop until [`Answers::sort`] gives one of
/// these, then does the I/O it calls for (write a chunk, read a body, hand
/// a log on) and runs it again.
#[derive(Debug)]
#[non_exhaustive]
pub enum Step {
    /// A piece of the request's NAR.
    Chunk(Bytes),
    /// A log of the request (or of none: the peer's own).
    Log(conn::Log),
    /// The request's body is wanted, at most this much now when known.
    BodyWanted(Option<u64>),
    /// The request ended (or the connection broke under it).
    Done(Result<Answer, Error>),
}

impl Answers {
    /// Sorts `event` for a host waiting for request `id`: what concerns
    /// `id` (or breaks the connection) is a [`Step`]; answers of other
    /// requests are kept for their own wait; anything else is dropped.
    pub fn sort(&mut self, id: RequestId, event: Event) -> ControlFlow<Step> {
        match event {
            Event::NarChunk { id: of, data } if of == id => ControlFlow::Break(Step::Chunk(data)),
            Event::Log(log) if log.request.is_none_or(|r| r == id) => {
                ControlFlow::Break(Step::Log(log))
            }
            Event::BodyWanted { id: of, max } if of == id => {
                ControlFlow::Break(Step::BodyWanted(max))
            }
            Event::Done { id: done, result } if done == id => {
                ControlFlow::Break(Step::Done(result.map_err(Error::Connection)))
            }
            Event::Done { id: other, result } => {
                self.keep(other, result);
                ControlFlow::Continue(())
            }
            Event::Broken(e) => ControlFlow::Break(Step::Done(Err(Error::Connection(e)))),
            Event::Closed => ControlFlow::Break(Step::Done(Err(Error::Ended {
                during: "while a reply was awaited",
            }))),
            _ => ControlFlow::Continue(()),
        }
    }

    /// Keeps request `id`'s answer until it is taken.
    pub fn keep(&mut self, id: RequestId, result: Result<Answer, conn::Error>) {
        self.done.insert(id, result);
    }

    /// Request `id`'s answer, if it has arrived.
    pub fn take(&mut self, id: RequestId) -> Option<Result<Answer, conn::Error>> {
        self.done.remove(&id)
    }
}

/// The answer of `op` if it is of the expected kind, or an error saying
/// which came: answers come from the session's own mapping, so a mismatch
/// is a bug here, reported rather than panicked on.
pub fn expect<T>(
    op: &'static str,
    answer: Answer,
    pick: impl FnOnce(Answer) -> Result<T, Answer>,
) -> Result<T, Error> {
    pick(answer).map_err(|other| {
        Error::Connection(conn::Error::misuse(format!(
            "{op} was answered by {other:?}"
        )))
    })
}

/// The buffer an upload loop reads a body into. Reads fill one block
/// after another, and each piece read is handed out as a slice of its
/// block: small reads (a pipe delivering one small NAR at a time) share a
/// block, where a fresh buffer per read would keep a whole block alive for
/// every small piece waiting to be sent ([`crate::session::WRITE_AHEAD`]
/// of 1 KiB pieces would pin a thousand 64 KiB blocks).
#[derive(Debug)]
pub struct BodyBuf {
    buf: BytesMut,
    block: usize,
}

impl BodyBuf {
    /// A buffer that allocates `block` bytes at a time.
    pub fn new(block: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            block: block.max(1),
        }
    }

    /// Room for the next read: at most `most` bytes, zeroed (readers fill
    /// initialised memory), from the current block while it has a fair
    /// share of it left, else from a new one.
    pub fn room(&mut self, most: usize) -> &mut [u8] {
        let want = most.clamp(1, self.block);
        if self.buf.capacity() < want.min(self.block / 16).max(1) {
            self.buf = BytesMut::with_capacity(self.block);
        }
        let n = want.min(self.buf.capacity());
        self.buf.resize(n, 0);
        &mut self.buf[..]
    }

    /// The first `n` bytes of the last [`room`](Self::room), read into,
    /// as a slice of its block.
    pub fn take(&mut self, n: usize) -> Bytes {
        self.buf.truncate(n);
        self.buf.split().freeze()
    }
}

/// The bookkeeping of a runtime's driver loop around a connection, the same
/// in every runtime: which of the peer's streams are still read, when the
/// connection is told the peer's output ended (once both stdout and stderr
/// are read out, so that what a failed login printed is the error's text),
/// when nothing more can come, and what a failed write means. A runtime's
/// `Driver` waits for I/O and hands each outcome here as an [`Input`].
#[derive(Debug)]
pub struct Pump<C> {
    conn: C,
    stdout_open: bool,
    stderr_open: bool,
    eof_told: bool,
}

/// What a driver does next, as [`Pump::poll`] says.
#[derive(Debug)]
pub enum Next<E> {
    /// Hand this event to the host.
    Event(E),
    /// Wait for I/O (or the deadline) and hand it to [`Pump::handle`].
    Wait,
    /// The peer's output is over and every event was handed out: nothing
    /// more can come.
    Ended,
}

/// What happened on a transport, for [`Pump::handle`].
#[derive(Debug)]
pub enum Input {
    /// Bytes from the peer's stdout.
    Stdout(Bytes),
    /// The peer's stdout ended (or failed to read).
    StdoutEnd,
    /// Bytes from the peer's stderr.
    Stderr(Bytes),
    /// The peer's stderr ended (or failed to read).
    StderrEnd,
    /// The connection's deadline ([`Pump::deadline`]) passed.
    Deadline,
}

impl<C: Connection> Pump<C> {
    /// The loop around `conn`, over a transport with or without a stderr.
    pub fn new(conn: C, has_stderr: bool) -> Self {
        Self {
            conn,
            stdout_open: true,
            stderr_open: has_stderr,
            eof_told: false,
        }
    }

    /// The connection.
    pub fn conn(&mut self) -> &mut C {
        &mut self.conn
    }

    /// The connection, given back.
    pub fn into_conn(self) -> C {
        self.conn
    }

    /// The next event, else whether to wait for I/O or give up.
    pub fn poll(&mut self) -> Next<C::Event> {
        match self.conn.poll_event() {
            Some(event) => Next::Event(event),
            None if self.eof_told => Next::Ended,
            None => Next::Wait,
        }
    }

    /// Hands queued events to `handle` until it breaks (`Some(Ok(..))`);
    /// `Some(Err(Error::Ended))` when the peer's output is over and nothing
    /// broke; `None` when the driver must wait for I/O. A driver's `run` is
    /// this, a cancel check and a wait, in a loop.
    pub fn dispatch<R>(
        &mut self,
        handle: &mut impl FnMut(&mut C, C::Event) -> ControlFlow<R>,
    ) -> Option<Result<R, Error>> {
        loop {
            match self.poll() {
                Next::Event(event) => {
                    if let ControlFlow::Break(r) = handle(&mut self.conn, event) {
                        return Some(Ok(r));
                    }
                }
                Next::Ended => {
                    return Some(Err(Error::Ended {
                        during: "while a reply was awaited",
                    }));
                }
                Next::Wait => return None,
            }
        }
    }

    /// Hands every queued event to `handle` (while a connection ends).
    pub fn drain(&mut self, handle: &mut impl FnMut(&mut C, C::Event)) {
        while let Next::Event(event) = self.poll() {
            handle(&mut self.conn, event);
        }
    }

    /// Whether the peer's stdout is still to be read.
    pub fn reading_stdout(&self) -> bool {
        self.stdout_open
    }

    /// Whether the peer's stderr is still to be read.
    pub fn reading_stderr(&self) -> bool {
        self.stderr_open
    }

    /// Whether anything of the peer's is still to be read.
    pub fn reading(&self) -> bool {
        self.stdout_open || self.stderr_open
    }

    /// Tells the connection that `n` bytes it gave went out to the peer
    /// (see [`Connection::handle_sent`]).
    pub fn sent(&mut self, now: std::time::Instant, n: usize) {
        self.conn.handle_sent(now, n);
    }

    /// When the connection must be woken if nothing comes before.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.conn.poll_timeout()
    }

    /// Hands what happened to the connection. Its errors come out as its
    /// events (`Broken`), so nothing is returned.
    pub fn handle(&mut self, now: std::time::Instant, input: Input) {
        match input {
            Input::Stdout(data) => {
                let _ = self.conn.handle_input(now, data);
            }
            Input::Stderr(data) => self.conn.handle_stderr(now, data),
            Input::StdoutEnd => self.stdout_open = false,
            Input::StderrEnd => self.stderr_open = false,
            Input::Deadline => {
                let _ = self.conn.handle_timeout(now);
            }
        }
        if !self.reading() && !self.eof_told {
            self.eof_told = true;
            let _ = self.conn.handle_eof(now);
        }
    }

    /// What a failed write to the peer means: a peer that stopped reading
    /// (a broken pipe) is not an error here, since what it said, or its
    /// end, tells the connection why, so reading goes on; any other failure
    /// is.
    pub fn write_failed(&mut self, error: std::io::Error) -> Result<(), Error> {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(Error::io("writing to the peer")(error))
        }
    }
}
