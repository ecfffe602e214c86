//! The server side of a serve connection (what `nix-store --serve` is), as a
//! state machine: it turns a client's bytes into requests and streams, and a
//! host's replies into bytes.
//!
//! The host answers requests strictly in the order they came, because the
//! protocol has no request ids on the wire.

use std::collections::VecDeque;

use bytes::Bytes;

use super::RequestId;
use super::endpoint::Endpoint;
use super::error::{Error, check_magic, check_version};
use super::messages::{CLIENT_MAGIC, Command, ExportTrailer, LATEST, SERVER_MAGIC};
use super::request::{Reply, Request};
use crate::nar::NarFramer;
use crate::wire::{Cx, Inbox, Limits, Version, Wire, decode_u64, encode_u64};

/// How a [`Server`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The version announced to clients; the negotiated one is min(this, the
    /// client's). A replay announces exactly what the recorded server did.
    pub version: Version,
    /// The oldest client version accepted.
    pub minimum_version: Version,
    /// Bounds on what a client may make us buffer.
    pub limits: Limits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            version: LATEST,
            minimum_version: Version::new(2, 0),
            limits: Limits::default(),
        }
    }
}

/// What a client asked of a [`Server`], drained with [`Server::poll_event`].
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
    /// Part of a request's NAR body.
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
    cx: Cx,
    state: State,
    inbox: Inbox,
    io: Endpoint<ServerEvent>,
    awaiting: VecDeque<Awaiting>,
    /// The framer of the NAR currently arriving (a request body) .
    body_framer: NarFramer,
    /// The framer of the `DumpStorePath` NAR the host is streaming out.
    reply_framer: NarFramer,
    next_id: u64,
}

impl Server {
    /// A server waiting for a client's magic.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            cx: Cx {
                version: config.version,
                limits: config.limits,
            },
            config,
            state: State::Magic,
            inbox: Inbox::default(),
            io: Endpoint::new(Vec::new()),
            awaiting: VecDeque::new(),
            body_framer: NarFramer::new(),
            reply_framer: NarFramer::new(),
            next_id: 0,
        }
    }

    /// The negotiated version, once the handshake is done.
    pub fn version(&self) -> Option<Version> {
        (!matches!(self.state, State::Magic | State::ClientVersion)).then_some(self.cx.version)
    }

    /// Takes bytes the client sent.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), Error> {
        self.check()?;
        self.inbox.push(data);
        let result = self.process();
        self.fail_on(result)
    }

    /// The client closed its side. Fine between requests; an error in the
    /// middle of one.
    pub fn handle_eof(&mut self) -> Result<(), Error> {
        self.check()?;
        let during = match &self.state {
            State::Magic | State::ClientVersion => Some("during the handshake".to_owned()),
            State::Commands if !self.inbox.is_empty() => Some(format!(
                "in the middle of a request ({} bytes received)",
                self.inbox.pending().len()
            )),
            State::SizedNar { id, .. }
            | State::ImportFlag(id)
            | State::ImportNar(id)
            | State::ImportTrailer(id) => Some(format!("in the body of request {}", id.0)),
            _ => None,
        };
        self.io.end_of_stream(during, ServerEvent::Closed)?;
        self.state = State::Closed;
        Ok(())
    }

    /// Answers the oldest unanswered request. Every reply but
    /// `DumpStorePath`'s, which is streamed with [`send_nar`](Self::send_nar).
    pub fn reply(&mut self, id: RequestId, reply: &Reply) -> Result<(), Error> {
        self.check()?;
        let front = self.next_to_answer(id)?;
        if front.command != reply.command() || reply.command() == Command::DumpStorePath {
            return Err(Error::Misuse(format!(
                "request {} is {}; a {} reply does not answer it{}",
                id.0,
                front.command,
                reply.command(),
                if front.command == Command::DumpStorePath {
                    " (stream its NAR with send_nar)"
                } else {
                    ""
                }
            )));
        }
        reply.encode(&self.cx, &mut self.io.out);
        self.awaiting.pop_front();
        Ok(())
    }

    /// Streams part of the NAR that answers a `DumpStorePath`. The request is
    /// answered when the NAR ends; bytes past its end are refused.
    pub fn send_nar(&mut self, id: RequestId, data: &[u8]) -> Result<(), Error> {
        self.check()?;
        let front = self.next_to_answer(id)?;
        if front.command != Command::DumpStorePath {
            return Err(Error::Misuse(format!(
                "request {} is {}, which is not answered with a NAR",
                id.0, front.command
            )));
        }
        let used = self.reply_framer.feed(data).map_err(|source| Error::Nar {
            what: format!("the NAR answering request {}", id.0),
            source,
        });
        let used = self.fail_on(used)?;
        if used < data.len() {
            return self.fail_on(Err(Error::Body {
                id: id.0,
                why: format!("{} bytes given after the NAR ended", data.len() - used),
            }));
        }
        self.io.out.extend_from_slice(data);
        if self.reply_framer.is_done() {
            self.reply_framer = NarFramer::new();
            self.awaiting.pop_front();
        }
        Ok(())
    }

    /// Moves the bytes to send to the client into `buf` and returns how many.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        self.io.poll_transmit(buf)
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.io.poll_event()
    }

    fn next_to_answer(&self, id: RequestId) -> Result<&Awaiting, Error> {
        match self.awaiting.front() {
            Some(front) if front.id == id && front.body_done => Ok(front),
            Some(front) if front.id == id => Err(Error::Misuse(format!(
                "request {} cannot be answered before its body has arrived",
                id.0
            ))),
            Some(front) => Err(Error::Misuse(format!(
                "request {} must be answered first (replies go in request order), not {}",
                front.id.0, id.0
            ))),
            None => Err(Error::Misuse(format!(
                "request {} is not waiting for a reply",
                id.0
            ))),
        }
    }

    fn check(&self) -> Result<(), Error> {
        self.io.check()
    }

    fn fail_on<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        self.io.fail_on(result)
    }

    /// Decodes one message of the body or command stream; `None`: need more.
    fn decode<T>(
        &mut self,
        what: &str,
        decode: impl for<'a> FnOnce(&Cx, &'a [u8]) -> crate::wire::WireResult<'a, T>,
    ) -> Result<Option<T>, Error> {
        let cx = self.cx;
        self.inbox
            .decode(cx.limits.max_message, |i| decode(&cx, i))
            .map_err(|e| Error::decode(what, e))
    }

    fn body_done(&mut self, id: RequestId) {
        if let Some(a) = self.awaiting.iter_mut().find(|a| a.id == id) {
            a.body_done = true;
        }
        self.io.events.push_back(ServerEvent::BodyEnd { id });
        self.state = State::Commands;
    }

    fn decode_u64(&mut self, what: &str) -> Result<Option<u64>, Error> {
        self.decode(what, |_, i| decode_u64(i))
    }

    fn process(&mut self) -> Result<(), Error> {
        loop {
            if !self.step()? {
                return Ok(());
            }
        }
    }

    /// One transition; `false` when more bytes are needed.
    fn step(&mut self) -> Result<bool, Error> {
        match self.state {
            State::Magic => {
                if !check_magic("client", CLIENT_MAGIC, self.inbox.pending())? {
                    return Ok(false);
                }
                self.inbox.consume(8);
                encode_u64(SERVER_MAGIC, &mut self.io.out);
                encode_u64(self.config.version.to_wire(), &mut self.io.out);
                self.state = State::ClientVersion;
                Ok(true)
            }
            State::ClientVersion => {
                let Some(raw) = self.decode_u64("the client's version")? else {
                    return Ok(false);
                };
                let client_version = check_version("client", raw, self.config.minimum_version)?;
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
                let Some(request) = self.decode("a request", Request::decode_header)? else {
                    return Ok(false);
                };
                let id = RequestId(self.next_id);
                self.next_id += 1;
                let command = request.command();
                let mut body_done = true;
                match &request {
                    Request::AddToStoreNar(m) => {
                        if m.nar_size == 0 {
                            return Err(Error::Body {
                                id: id.0,
                                why: "AddToStoreNar with nar_size 0 (a NAR is never empty)".into(),
                            });
                        }
                        body_done = false;
                        self.body_framer = NarFramer::new();
                        self.state = State::SizedNar {
                            id,
                            remaining: m.nar_size,
                        };
                    }
                    Request::ImportPaths(_) => {
                        body_done = false;
                        self.state = State::ImportFlag(id);
                    }
                    _ => {}
                }
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
                let n = (pending.len() as u64).min(remaining) as usize;
                let used = self
                    .body_framer
                    .feed(&pending[..n])
                    .map_err(|source| Error::Nar {
                        what: format!("the NAR of AddToStoreNar (request {})", id.0),
                        source,
                    })?;
                if used < n {
                    return Err(Error::Body {
                        id: id.0,
                        why: format!(
                            "the NAR ended after {} bytes, before its nar_size",
                            self.body_framer.position()
                        ),
                    });
                }
                let data = Bytes::copy_from_slice(&pending[..n]);
                self.inbox.consume(n);
                self.io.events.push_back(ServerEvent::NarChunk { id, data });
                let remaining = remaining - n as u64;
                if remaining > 0 {
                    self.state = State::SizedNar { id, remaining };
                    return Ok(true);
                }
                if !self.body_framer.is_done() {
                    return Err(Error::Body {
                        id: id.0,
                        why: "nar_size bytes arrived but the NAR is incomplete".into(),
                    });
                }
                self.io.events.push_back(ServerEvent::NarEnd { id });
                self.body_done(id);
                Ok(true)
            }
            State::ImportFlag(id) => {
                match self.decode_u64("the flag before a path of ImportPaths")? {
                    None => Ok(false),
                    Some(0) => {
                        self.body_done(id);
                        Ok(true)
                    }
                    Some(1) => {
                        self.body_framer = NarFramer::new();
                        self.state = State::ImportNar(id);
                        Ok(true)
                    }
                    Some(other) => Err(Error::decode(
                        "ImportPaths",
                        crate::wire::DecodeError::unexpected(
                            "1 (another path follows) or 0 (end)",
                            other.to_string(),
                        ),
                    )),
                }
            }
            State::ImportNar(id) => {
                let pending = self.inbox.pending();
                if pending.is_empty() {
                    return Ok(false);
                }
                let used = self
                    .body_framer
                    .feed(pending)
                    .map_err(|source| Error::Nar {
                        what: format!("a NAR of ImportPaths (request {})", id.0),
                        source,
                    })?;
                let data = Bytes::copy_from_slice(&pending[..used]);
                self.inbox.consume(used);
                self.io.events.push_back(ServerEvent::NarChunk { id, data });
                if self.body_framer.is_done() {
                    self.io.events.push_back(ServerEvent::NarEnd { id });
                    self.state = State::ImportTrailer(id);
                }
                Ok(true)
            }
            State::ImportTrailer(id) => {
                let what = "a path's metadata in ImportPaths";
                let Some(trailer) = self.decode(what, ExportTrailer::decode)? else {
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

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
