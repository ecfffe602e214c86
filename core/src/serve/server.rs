//! The server side of a serve connection (what `nix-store --serve` is), as a
//! state machine: it turns a client's bytes into requests and streams, and a
//! host's replies into bytes.
//!
//! The host answers requests strictly in the order they came, because the
//! protocol has no request ids on the wire.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::messages::{
    CLIENT_MAGIC, ClientHello, ExportTrailer, LATEST, SERVER_MAGIC, ServerHello,
};
use super::{Command, Reply, Request, RequestPartial};
use crate::conn::{
    BodyKind, Connection, Deadline, Endpoint, Error, ErrorKind, Incoming, Phase, ReplyKind,
    RequestId, check_magic, check_version, decode_in,
};
use crate::nar::NarFramer;
use crate::store::StoreDir;
use crate::wire::{
    Cx, DecodeError, Decoded, Inbox, Limits, Reader, Serve, StructPartial, Version, Wire,
};

/// How a [`Server`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The version announced to clients; the negotiated one is min(this, the
    /// client's). A replay announces exactly what the recorded server did.
    pub version: Version,
    /// The oldest client version accepted.
    pub minimum_version: Version,
    /// This store's directory, in which full paths on the wire are.
    pub store_dir: StoreDir,
    /// Bounds on what a client may make us buffer and hold.
    pub limits: Limits,
    /// How long a client may take to send its handshake. `None` (the
    /// default, as `nix-store --serve`): wait forever.
    pub handshake_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            version: LATEST,
            minimum_version: Version::new(2, 0),
            store_dir: StoreDir::default(),
            limits: Limits::default(),
            handshake_timeout: None,
        }
    }
}

/// What a client asked of a [`Server`], drained with `poll_event`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The handshake completed.
    Connected {
        /// What the client announced.
        client_version: Version,
        /// What both sides now speak.
        version: Version,
    },
    /// A request. `AddToStoreNar` and `ImportPaths` are followed by their NAR
    /// bodies as [`NarChunk`](Self::NarChunk)s; the host replies after
    /// [`BodyEnd`](Self::BodyEnd).
    Request {
        /// Its id: the host replies with it, in order.
        id: RequestId,
        /// The request.
        request: Request,
    },
    /// Part of a request's NAR body: a slice of the bytes received.
    NarChunk {
        /// The request.
        id: RequestId,
        /// The bytes, in order.
        data: Bytes,
    },
    /// A NAR of a request's body has ended.
    NarEnd {
        /// The request.
        id: RequestId,
    },
    /// `ImportPaths`: the metadata of the NAR that just ended.
    ImportedPath {
        /// The request.
        id: RequestId,
        /// The path, its references and deriver.
        trailer: ExportTrailer,
    },
    /// A request's body is complete (`AddToStoreNar` after its NAR,
    /// `ImportPaths` after its last path): the host may now reply.
    BodyEnd {
        /// The request.
        id: RequestId,
    },
    /// The client closed its side with nothing unfinished.
    Closed,
    /// The connection broke; every later call returns this error.
    Broken(Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Magic,
    ClientVersion,
    Commands,
    /// Receiving an `AddToStoreNar` body: exactly `remaining` more bytes.
    SizedNar {
        id: RequestId,
        remaining: u64,
    },
    /// `ImportPaths`: before each path a 1, or a 0 to end.
    ImportFlag(RequestId),
    /// `ImportPaths`: one path's NAR.
    ImportNar(RequestId),
    /// `ImportPaths`: the metadata after a NAR.
    ImportTrailer(RequestId),
    Closed,
}

/// A request the host has not fully answered yet.
#[derive(Debug)]
struct Awaiting {
    id: RequestId,
    command: Command,
    body_done: bool,
}

/// The server side of a serve connection.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    cx: Cx<Serve>,
    state: State,
    inbox: Inbox,
    io: Endpoint<ServerEvent>,
    awaiting: VecDeque<Awaiting>,
    incoming: Incoming<RequestPartial>,
    trailer: StructPartial,
    /// The framer of the NAR currently arriving (a request body).
    body_framer: NarFramer,
    /// The framer of the `DumpStorePath` NAR the host is streaming out.
    reply_framer: NarFramer,
    started: Instant,
}

impl Server {
    /// A server waiting for a client's magic.
    ///
    /// # Panics
    /// If `config.version` is not a serve version (major 2): a programming
    /// error, never input.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let cx = Cx::new(config.version)
            .with_limits(config.limits)
            .with_store_dir(config.store_dir.clone());
        Self {
            body_framer: NarFramer::with_limits(config.limits.nar),
            reply_framer: NarFramer::with_limits(config.limits.nar),
            cx,
            config,
            state: State::Magic,
            inbox: Inbox::default(),
            io: Endpoint::new(ServerEvent::Broken),
            awaiting: VecDeque::new(),
            incoming: Incoming::default(),
            trailer: StructPartial::default(),
            started: now,
        }
    }

    /// The negotiated version, once the handshake is done.
    pub fn version(&self) -> Option<Version> {
        (!matches!(self.state, State::Magic | State::ClientVersion)).then_some(self.cx.version)
    }

    /// The error that broke the connection, if one did.
    pub fn error(&self) -> Option<&Error> {
        self.io.error()
    }

    /// Answers the oldest unanswered request with a message reply (every
    /// reply but `DumpStorePath`'s, which is streamed with
    /// [`send_nar`](Self::send_nar)). Answering out of order or with the
    /// wrong kind of reply is a caller's mistake: an error that changes
    /// nothing.
    pub fn reply(&mut self, id: RequestId, reply: &Reply) -> Result<(), Error> {
        self.io.check()?;
        let front = self.next_to_answer(id)?;
        if front.command != reply.command() || front.command.reply_kind() != ReplyKind::Message {
            return Err(Error::misuse(format!(
                "request {id} is {}; a {} reply does not answer it{}",
                front.command,
                reply.command(),
                if front.command.reply_kind() == ReplyKind::BareNar {
                    " (stream its NAR with send_nar)"
                } else {
                    ""
                }
            )));
        }
        reply.encode(&self.cx, self.io.out.buf());
        self.awaiting.pop_front();
        Ok(())
    }

    /// Streams part of the NAR that answers a `DumpStorePath` and returns how
    /// many bytes were taken: all of `data` while the NAR goes on, fewer
    /// once it ends (the request is then answered). What is taken is sent as
    /// slices of `data`. A malformed NAR breaks the connection, since part
    /// of it may already be on its way.
    pub fn send_nar(&mut self, id: RequestId, data: Bytes) -> Result<usize, Error> {
        self.io.check()?;
        let front = self.next_to_answer(id)?;
        if front.command.reply_kind() != ReplyKind::BareNar {
            return Err(Error::misuse(format!(
                "request {id} is {}, which is not answered with a NAR",
                front.command
            )));
        }
        let command = front.command;
        let used = self.reply_framer.feed(&data).map_err(|source| {
            Error::new(
                ErrorKind::Nar {
                    what: "the reply's NAR".into(),
                    source,
                },
                Phase::Sending,
            )
            .about(id, command.name())
        });
        let used = self.io.fail_on(used)?;
        self.io.out.push(data.slice(..used));
        if self.reply_framer.is_done() {
            self.reply_framer = NarFramer::with_limits(self.cx.limits.nar);
            self.awaiting.pop_front();
        }
        Ok(used)
    }

    fn next_to_answer(&self, id: RequestId) -> Result<&Awaiting, Error> {
        match self.awaiting.front() {
            Some(front) if front.id == id && front.body_done => Ok(front),
            Some(front) if front.id == id => Err(Error::misuse(format!(
                "request {id} cannot be answered before its body has arrived"
            ))),
            Some(front) => Err(Error::misuse(format!(
                "request {} must be answered first (replies go in request order), not {id}",
                front.id
            ))),
            None => Err(Error::misuse(format!(
                "request {id} is not waiting for a reply"
            ))),
        }
    }

    /// Decodes one message of the body or command stream; `None`: need more.
    fn decode<T>(
        &mut self,
        what: &str,
        decode: impl FnOnce(&Cx<Serve>, &mut Reader<'_>) -> Decoded<T>,
    ) -> Result<Option<T>, Error> {
        decode_in(&mut self.inbox, &self.cx, what, Phase::Receiving, decode)
    }

    fn body_done(&mut self, id: RequestId) {
        if let Some(a) = self.awaiting.iter_mut().find(|a| a.id == id) {
            a.body_done = true;
        }
        self.io.events.push_back(ServerEvent::BodyEnd { id });
        self.state = State::Commands;
    }

    fn body_error(id: RequestId, command: Command, kind: ErrorKind) -> Error {
        Error::new(kind, Phase::Receiving).about(id, command.name())
    }

    fn process(&mut self) -> Result<(), Error> {
        while self.step()? {}
        Ok(())
    }

    /// One transition; `false` when more bytes are needed.
    fn step(&mut self) -> Result<bool, Error> {
        match self.state {
            State::Magic => {
                if !check_magic::<Serve>("client", CLIENT_MAGIC, self.inbox.pending())? {
                    return Ok(false);
                }
                self.state = State::ClientVersion;
                Ok(true)
            }
            State::ClientVersion => {
                let decoded = self.decode("the client's handshake", |cx, r| {
                    ClientHello::decode_at_once(cx, r)
                })?;
                let Some(hello) = decoded else {
                    return Ok(false);
                };
                let answer = ServerHello {
                    magic: SERVER_MAGIC,
                    version: self.config.version.to_wire(),
                };
                answer.encode(&self.cx, self.io.out.buf());
                let client_version =
                    check_version::<Serve>("client", hello.version, self.config.minimum_version)?;
                self.cx.version = client_version.min(self.config.version);
                self.io.events.push_back(ServerEvent::Connected {
                    client_version,
                    version: self.cx.version,
                });
                self.state = State::Commands;
                Ok(true)
            }
            State::Commands => {
                if self.inbox.is_empty() {
                    return Ok(false);
                }
                let next = self
                    .incoming
                    .next(&mut self.inbox, &self.cx, Request::decode)?;
                let Some((id, request)) = next else {
                    return Ok(false);
                };
                let command = request.command();
                let body_done = match (command.body(), &request) {
                    (BodyKind::SizedNar, Request::AddToStoreNar(m)) => {
                        if m.nar_size == 0 {
                            return Err(Self::body_error(
                                id,
                                command,
                                ErrorKind::Body {
                                    why: "AddToStoreNar with nar_size 0 (a NAR is never empty)"
                                        .into(),
                                },
                            ));
                        }
                        self.body_framer = NarFramer::with_limits(self.cx.limits.nar);
                        self.state = State::SizedNar {
                            id,
                            remaining: m.nar_size,
                        };
                        false
                    }
                    (BodyKind::Export, _) => {
                        self.state = State::ImportFlag(id);
                        false
                    }
                    _ => true,
                };
                self.awaiting.push_back(Awaiting {
                    id,
                    command,
                    body_done,
                });
                self.io
                    .events
                    .push_back(ServerEvent::Request { id, request });
                Ok(true)
            }
            State::SizedNar { id, remaining } => {
                let pending = self.inbox.pending();
                if pending.is_empty() {
                    return Ok(false);
                }
                let command = Command::AddToStoreNar;
                let n = usize::try_from(remaining).map_or(pending.len(), |r| r.min(pending.len()));
                let used = self.body_framer.feed(&pending[..n]).map_err(|source| {
                    Self::body_error(
                        id,
                        command,
                        ErrorKind::Nar {
                            what: "the request's NAR".into(),
                            source,
                        },
                    )
                })?;
                if used < n {
                    return Err(Self::body_error(
                        id,
                        command,
                        ErrorKind::Body {
                            why: format!(
                                "the NAR ended after {} bytes, before its nar_size",
                                self.body_framer.position()
                            ),
                        },
                    ));
                }
                let data = self.inbox.take(n);
                self.io.events.push_back(ServerEvent::NarChunk { id, data });
                let remaining = remaining - n as u64;
                if remaining > 0 {
                    self.state = State::SizedNar { id, remaining };
                    return Ok(true);
                }
                if !self.body_framer.is_done() {
                    return Err(Self::body_error(
                        id,
                        command,
                        ErrorKind::Body {
                            why: "nar_size bytes arrived but the NAR is incomplete".into(),
                        },
                    ));
                }
                self.io.events.push_back(ServerEvent::NarEnd { id });
                self.body_done(id);
                Ok(true)
            }
            State::ImportFlag(id) => {
                match self.decode("the flag before a path of ImportPaths", |_, r| Ok(r.u64()))? {
                    None => Ok(false),
                    Some(0) => {
                        self.body_done(id);
                        Ok(true)
                    }
                    Some(1) => {
                        self.body_framer = NarFramer::with_limits(self.cx.limits.nar);
                        self.state = State::ImportNar(id);
                        Ok(true)
                    }
                    Some(other) => Err(Self::body_error(
                        id,
                        Command::ImportPaths,
                        ErrorKind::Decode {
                            what: "the flag before a path".into(),
                            source: DecodeError::unexpected(
                                "1 (another path follows) or 0 (end)",
                                other.to_string(),
                            ),
                        },
                    )),
                }
            }
            State::ImportNar(id) => {
                if self.inbox.is_empty() {
                    return Ok(false);
                }
                let (chunk, _) = self
                    .body_framer
                    .take_from(&mut self.inbox)
                    .map_err(|source| {
                        Self::body_error(
                            id,
                            Command::ImportPaths,
                            ErrorKind::Nar {
                                what: "a NAR of the request".into(),
                                source,
                            },
                        )
                    })?;
                if let Some(data) = chunk {
                    self.io.events.push_back(ServerEvent::NarChunk { id, data });
                }
                if self.body_framer.is_done() {
                    self.io.events.push_back(ServerEvent::NarEnd { id });
                    self.state = State::ImportTrailer(id);
                }
                Ok(true)
            }
            State::ImportTrailer(id) => {
                let mut partial = std::mem::take(&mut self.trailer);
                let decoded = self.decode("a path's metadata in ImportPaths", |cx, r| {
                    ExportTrailer::decode(cx, &mut partial, r)
                });
                self.trailer = partial;
                let Some(trailer) = decoded? else {
                    return Ok(false);
                };
                self.io
                    .events
                    .push_back(ServerEvent::ImportedPath { id, trailer });
                self.state = State::ImportFlag(id);
                Ok(true)
            }
            State::Closed => Ok(false),
        }
    }
}

impl Server {
    /// The handshake's deadline, while it runs.
    fn deadline(&self) -> Option<Deadline> {
        if self.io.is_broken() || self.version().is_some() {
            return None;
        }
        Deadline::handshake("client", self.started, self.config.handshake_timeout)
    }
}

impl Connection for Server {
    type Event = ServerEvent;

    fn handle_input(&mut self, _now: Instant, data: Bytes) -> Result<(), Error> {
        self.io.check()?;
        self.inbox.push(data);
        let result = self.process();
        self.io.fail_on(result)
    }

    /// A client has no stderr stream in this protocol; nothing to do.
    fn handle_stderr(&mut self, _now: Instant, _data: Bytes) {}

    fn handle_eof(&mut self, _now: Instant) -> Result<(), Error> {
        self.io.check()?;
        let owed = match &self.state {
            State::Magic | State::ClientVersion => {
                Some((Phase::Handshake, "during the handshake".to_owned()))
            }
            State::Commands if !self.inbox.is_empty() => Some((
                Phase::Receiving,
                format!(
                    "in the middle of a request ({} bytes received)",
                    self.inbox.pending().len()
                ),
            )),
            State::SizedNar { id, .. }
            | State::ImportFlag(id)
            | State::ImportNar(id)
            | State::ImportTrailer(id) => {
                Some((Phase::Receiving, format!("in the body of request {id}")))
            }
            _ => None,
        };
        self.state = State::Closed;
        self.io.end_of_stream(owed, ServerEvent::Closed)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        let deadline = self.deadline();
        self.io.check_deadline(now, deadline, None)
    }

    fn poll_transmit(&mut self) -> Option<Bytes> {
        self.io.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<ServerEvent> {
        self.io.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline().map(|d| d.at)
    }
}
