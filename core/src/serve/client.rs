//! The client side of a serve connection (what `ssh://` stores and Hydra's
//! queue runner are), as a state machine.
//!
//! See the [crate documentation](crate) for the run loop that drives it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::messages::{
    CLIENT_MAGIC, ClientHello, ExportTrailer, LATEST, NarDone, SERVER_MAGIC, ServerHello,
};
use super::{Command, Reply, ReplyPartial, Request};
use crate::conn::{
    BodyKind, Book, Connection, Deadline, Endpoint, Error, ErrorKind, Log, Phase, ReplyKind,
    RequestId, check_magic, check_version, decode_in,
};
use crate::nar::NarFramer;
use crate::wire::{Cx, Inbox, Limits, Serve, Version, Wire, encode_u64, show_bytes};

/// How a [`Client`] behaves.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The version announced to the server. The negotiated version is the
    /// smaller of this and the server's. A replay announces exactly what the
    /// recorded client announced.
    pub version: Version,
    /// The oldest server version accepted.
    pub minimum_version: Version,
    /// The server's store directory, in which full paths on the wire are.
    pub store_dir: crate::store::StoreDir,
    /// Bounds on what the server may make us buffer and hold.
    pub limits: Limits,
    /// How long the server may take to answer the handshake (Hydra used 60 s
    /// as ssh's `ConnectTimeout`). `None`: wait forever.
    pub handshake_timeout: Option<Duration>,
    /// How long a request may wait with nothing at all arriving, on stdout or
    /// stderr, counted from when its bytes went out or from the last byte
    /// received, whichever is later. Builds can be silent for hours, so the
    /// default is `None`; a host that wants a stall detector sets it to its
    /// `maxSilentTime`.
    pub stall_timeout: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            version: LATEST,
            minimum_version: Version::new(2, 0),
            store_dir: crate::store::StoreDir::default(),
            limits: Limits::default(),
            handshake_timeout: Some(Duration::from_secs(60)),
            stall_timeout: None,
        }
    }
}

/// What happened on a [`Client`], drained with `poll_event`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The handshake completed.
    Connected {
        /// What the server announced.
        server_version: Version,
        /// What both sides now speak: min(ours, theirs).
        version: Version,
    },
    /// The request's body may now be offered with [`Client::offer_body`]
    /// (`AddToStoreNar`: `nar_size` bytes; `ImportPaths`: one NAR per path).
    BodyWanted {
        /// The request.
        id: RequestId,
        /// How many bytes the body has, when the request says.
        max: Option<u64>,
    },
    /// A piece of a `DumpStorePath` reply: a slice of the bytes received,
    /// not a copy.
    NarChunk {
        /// The request.
        id: RequestId,
        /// The bytes, in order.
        data: Bytes,
    },
    /// A request's whole reply has arrived; the request is finished.
    Reply {
        /// The request.
        id: RequestId,
        /// Its reply.
        reply: Reply,
    },
    /// The request failed on its own (the negotiated version does not have
    /// its operation); the connection goes on.
    Failed {
        /// The request.
        id: RequestId,
        /// Why.
        error: Error,
    },
    /// Bytes from the server's stderr: build logs, passed on as they came,
    /// with the request under way.
    Log(Log),
    /// The server closed the stream with nothing owed.
    Closed,
    /// The connection broke; every later call returns this error.
    Broken(Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Ready,
    Closed,
}

/// Where a sent request's reply is being read.
#[derive(Debug)]
enum Answer {
    /// A reply that is a bare NAR: the framer finding its end.
    Nar(NarFramer),
    /// A message reply: its decode progress.
    Reply(ReplyPartial),
}

/// The body of the request being uploaded; later requests wait behind it.
#[derive(Debug)]
enum Upload {
    SizedNar {
        id: RequestId,
        remaining: u64,
        framer: NarFramer,
    },
    Export {
        id: RequestId,
        trailers: VecDeque<ExportTrailer>,
        framer: NarFramer,
    },
}

impl Upload {
    /// The operation whose body this is.
    fn op(&self) -> &'static str {
        match self {
            Self::SizedNar { .. } => Command::AddToStoreNar.name(),
            Self::Export { .. } => Command::ImportPaths.name(),
        }
    }

    fn id(&self) -> RequestId {
        match self {
            Self::SizedNar { id, .. } | Self::Export { id, .. } => *id,
        }
    }
}

/// The client side of a serve connection.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    cx: Cx<Serve>,
    state: State,
    inbox: Inbox,
    io: Endpoint<ClientEvent>,
    book: Book<Request, Answer>,
    upload: Option<Upload>,
    started: Instant,
    last_input: Instant,
    /// When the runtime last wrote bytes to the peer (see
    /// [`Connection::handle_sent`]): the stall clock counts from the later
    /// of this and `last_input`.
    last_output: Instant,
}

impl Client {
    /// How many bytes wait to be taken with `poll_transmit`: a host (or
    /// the [`Session`](crate::session::Session)) holds back further body
    /// bytes while this is high, so that an upload never sits in memory.
    pub fn queued_bytes(&self) -> usize {
        self.io.queued()
    }

    /// A connection that starts with the handshake: the client's magic and
    /// version are ready to send at once.
    ///
    /// # Panics
    /// If `config.version` is not a serve version (major 2): a programming
    /// error, never input.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let mut io = Endpoint::new(ClientEvent::Broken);
        let cx = Cx::new(config.version)
            .with_limits(config.limits)
            .with_store_dir(config.store_dir.clone());
        let hello = ClientHello {
            magic: CLIENT_MAGIC,
            version: config.version.to_wire(),
        };
        hello.encode(&cx, io.out.buf());
        Self {
            cx,
            config,
            state: State::Handshake,
            inbox: Inbox::default(),
            io,
            book: Book::default(),
            upload: None,
            started: now,
            last_input: now,
            last_output: now,
        }
    }

    /// The negotiated version, once the handshake is done.
    pub fn version(&self) -> Option<Version> {
        matches!(self.state, State::Ready | State::Closed).then_some(self.cx.version)
    }

    /// Whether nothing is queued, in flight or being uploaded: the connection
    /// can be closed, or given the next request, cleanly.
    pub fn is_idle(&self) -> bool {
        self.book.is_empty() && self.upload.is_none()
    }

    /// Bytes received and not yet consumed: part of a message still arriving.
    /// Never the bulk of a NAR, which passes through as it comes.
    pub fn buffered(&self) -> usize {
        self.inbox.pending().len()
    }

    /// The error that broke the connection, if one did.
    pub fn error(&self) -> Option<&Error> {
        self.io.error()
    }

    /// Queues a request and returns its id. Requests are pipelined: each is
    /// sent as soon as the handshake is done and every request before it has
    /// finished sending (bodies included); replies come back in order. The
    /// stall clock of a request starts when its bytes go out.
    ///
    /// A request on a broken or closed connection is an error and changes
    /// nothing. A request whose operation the negotiated version lacks is
    /// answered by [`ClientEvent::Failed`].
    pub fn request(
        &mut self,
        now: Instant,
        request: impl Into<Request>,
    ) -> Result<RequestId, Error> {
        self.io.check()?;
        if self.state == State::Closed {
            return Err(Error::new(ErrorKind::NotOpen, Phase::Idle));
        }
        let id = self.book.push(request.into());
        self.send_queued(now);
        Ok(id)
    }

    /// The request whose body is wanted now, and how many bytes it still
    /// takes when that is known.
    pub fn body_wanted(&self) -> Option<(RequestId, Option<u64>)> {
        match self.upload.as_ref()? {
            Upload::SizedNar { id, remaining, .. } => Some((*id, Some(*remaining))),
            Upload::Export { id, .. } => Some((*id, None)),
        }
    }

    /// Offers bytes of a request's body, after [`ClientEvent::BodyWanted`],
    /// at `now` (requests queued behind the body go out when it ends),
    /// and returns how many were taken: all of `data` while the body goes
    /// on, fewer once it is complete (the rest is not part of it). What is
    /// taken is queued to send as slices of `data`, never copied.
    ///
    /// The bytes are checked against the NAR format as they pass, so a body
    /// that is malformed, or ends before its stated size, breaks the
    /// connection here rather than desynchronising the server. Offering a
    /// body for a request that is not uploading is a caller's mistake: an
    /// error that changes nothing.
    pub fn offer_body(&mut self, now: Instant, id: RequestId, data: Bytes) -> Result<usize, Error> {
        self.io.check()?;
        if self.upload.as_ref().map(Upload::id) != Some(id) {
            return Err(Error::misuse(format!(
                "offer_body for request {id}, which is not the request whose body is wanted{}",
                self.upload
                    .as_ref()
                    .map(|u| format!(" (request {} is)", u.id()))
                    .unwrap_or_default()
            )));
        }
        let result = self.take_body(id, data);
        let result = self.io.fail_on(result);
        if self.upload.is_none() {
            self.send_queued(now);
        }
        result
    }

    fn take_body(&mut self, id: RequestId, data: Bytes) -> Result<usize, Error> {
        let op = self.upload.as_ref().map_or("none", Upload::op);
        let broken = |kind: ErrorKind| Error::new(kind, Phase::Sending).about(id, op);
        let nar_error = |source| {
            broken(ErrorKind::Nar {
                what: "the request's NAR".into(),
                source,
            })
        };
        match &mut self.upload {
            Some(Upload::SizedNar {
                remaining, framer, ..
            }) => {
                let n = usize::try_from(*remaining).map_or(data.len(), |r| r.min(data.len()));
                let used = framer.feed(&data[..n]).map_err(nar_error)?;
                if used < n || (framer.is_done() && *remaining > n as u64) {
                    return Err(broken(ErrorKind::Body {
                        why: format!(
                            "the NAR ended after {} bytes, before the nar_size stated",
                            framer.position()
                        ),
                    }));
                }
                *remaining -= n as u64;
                if *remaining == 0 && !framer.is_done() {
                    return Err(broken(ErrorKind::Body {
                        why: "nar_size bytes were given but the NAR is incomplete".into(),
                    }));
                }
                self.io.out.push(data.slice(..n));
                if *remaining == 0 {
                    self.upload = None;
                }
                Ok(n)
            }
            Some(Upload::Export {
                trailers, framer, ..
            }) => {
                let mut taken = 0;
                while taken < data.len() {
                    let Some(trailer) = trailers.front() else {
                        break;
                    };
                    let used = framer.feed(&data[taken..]).map_err(nar_error)?;
                    self.io.out.push(data.slice(taken..taken + used));
                    taken += used;
                    if framer.is_done() {
                        trailer.encode(&self.cx, self.io.out.buf());
                        trailers.pop_front();
                        *framer = NarFramer::with_limits(self.cx.limits.nar);
                        // 1 announces another path, 0 ends the import.
                        encode_u64(u64::from(!trailers.is_empty()), self.io.out.buf());
                    }
                }
                if trailers.is_empty() {
                    self.upload = None;
                }
                Ok(taken)
            }
            None => Ok(0),
        }
    }

    /// Gives up on a request. One still queued is simply dropped; one already
    /// (partly) sent breaks the connection, because its reply can no longer
    /// be told apart from the next one's.
    pub fn abandon(&mut self, id: RequestId) {
        if let Some(error) = self.book.abandon(id) {
            self.io.break_with(error);
        }
    }

    fn process(&mut self, now: Instant) -> Result<(), Error> {
        loop {
            match self.state {
                State::Handshake => {
                    if !self.handshake(now)? {
                        return Ok(());
                    }
                }
                State::Ready => {
                    if self.inbox.is_empty() || !self.read_reply(now)? {
                        return Ok(());
                    }
                }
                State::Closed => return Ok(()),
            }
        }
    }

    /// Reads the server's magic and version; `false` if more bytes are needed.
    fn handshake(&mut self, now: Instant) -> Result<bool, Error> {
        if !check_magic::<Serve>("server", SERVER_MAGIC, self.inbox.pending())? {
            return Ok(false);
        }
        // Two words, taken whole: the magic is checked again until both
        // have come.
        let hello = decode_in(
            &mut self.inbox,
            &self.cx,
            "the server's handshake",
            Phase::Handshake,
            ServerHello::decode_at_once,
        )?;
        let Some(hello) = hello else {
            return Ok(false);
        };
        let server_version =
            check_version::<Serve>("server", hello.version, self.config.minimum_version)?;
        self.cx.version = server_version.min(self.config.version);
        self.state = State::Ready;
        self.io.events.push_back(ClientEvent::Connected {
            server_version,
            version: self.cx.version,
        });
        self.send_queued(now);
        Ok(true)
    }

    /// Encodes queued requests while nothing blocks them.
    fn send_queued(&mut self, now: Instant) {
        if self.state != State::Ready || self.io.is_broken() {
            return;
        }
        while self.upload.is_none() {
            let Some((id, request)) = self.book.queued.pop_front() else {
                return;
            };
            let command = request.command();
            if self.cx.version < command.since() {
                let error =
                    Error::unsupported::<Serve>(command.name(), command.since(), self.cx.version)
                        .about(id, command.name());
                self.io.events.push_back(ClientEvent::Failed { id, error });
                continue;
            }
            request.encode(&self.cx, self.io.out.buf());
            let answer = match command.reply_kind() {
                ReplyKind::BareNar => Answer::Nar(NarFramer::with_limits(self.cx.limits.nar)),
                _ => Answer::Reply(ReplyPartial::default()),
            };
            self.book.sent(id, command, now, answer);
            let framer = NarFramer::with_limits(self.cx.limits.nar);
            match (command.body(), request) {
                (BodyKind::SizedNar, Request::AddToStoreNar(m)) => {
                    self.upload = Some(Upload::SizedNar {
                        id,
                        remaining: m.nar_size,
                        framer,
                    });
                    let max = Some(m.nar_size);
                    self.io
                        .events
                        .push_back(ClientEvent::BodyWanted { id, max });
                }
                (BodyKind::Export, Request::ImportPaths(m)) if !m.paths.is_empty() => {
                    encode_u64(1, self.io.out.buf());
                    self.upload = Some(Upload::Export {
                        id,
                        trailers: m.paths.into(),
                        framer,
                    });
                    self.io
                        .events
                        .push_back(ClientEvent::BodyWanted { id, max: None });
                }
                (BodyKind::Export, _) => encode_u64(0, self.io.out.buf()),
                _ => {}
            }
        }
    }

    /// Reads (part of) the oldest request's reply; `false` if more bytes are
    /// needed.
    fn read_reply(&mut self, now: Instant) -> Result<bool, Error> {
        let Some(front) = self.book.in_flight.front_mut() else {
            let pending = self.inbox.pending();
            return Err(Error::new(
                ErrorKind::UnexpectedBytes {
                    peer: "server",
                    count: pending.len(),
                    bytes: show_bytes(pending),
                },
                Phase::Idle,
            ));
        };
        let (id, command, sent_at) = (front.id, front.command, front.sent_at);
        let context = |e: Error| {
            e.about(id, command.name())
                .after(now.saturating_duration_since(sent_at))
        };
        if let Answer::Nar(framer) = &mut front.answer {
            let (chunk, done) = framer.take_from(&mut self.inbox).map_err(|source| {
                context(Error::new(
                    ErrorKind::Nar {
                        what: "the reply's NAR".into(),
                        source,
                    },
                    Phase::Receiving,
                ))
            })?;
            if let Some(data) = chunk {
                self.io.events.push_back(ClientEvent::NarChunk { id, data });
            }
            let Some(nar_size) = done else {
                return Ok(false);
            };
            self.book.in_flight.pop_front();
            let reply = Reply::DumpStorePath(NarDone { nar_size });
            self.io.events.push_back(ClientEvent::Reply { id, reply });
            return Ok(true);
        }
        let Answer::Reply(partial) = &mut front.answer else {
            return Ok(false);
        };
        let cx = &self.cx;
        let decoded = self
            .inbox
            .decode(&cx.limits, |r| Reply::decode(command, cx, partial, r))
            .map_err(|source| {
                context(Error::new(
                    ErrorKind::Decode {
                        what: "the reply".into(),
                        source,
                    },
                    Phase::Receiving,
                ))
            })?;
        let Some(reply) = decoded else {
            return Ok(false);
        };
        self.book.in_flight.pop_front();
        self.io.events.push_back(ClientEvent::Reply { id, reply });
        Ok(true)
    }

    fn deadline(&self) -> Option<Deadline> {
        if self.io.is_broken() {
            return None;
        }
        match self.state {
            State::Handshake => {
                Deadline::handshake("server", self.started, self.config.handshake_timeout)
            }
            State::Ready => self.book.stall(
                self.config.stall_timeout,
                self.last_input.max(self.last_output),
            ),
            State::Closed => None,
        }
    }
}

impl Connection for Client {
    type Event = ClientEvent;

    fn handle_input(&mut self, now: Instant, data: Bytes) -> Result<(), Error> {
        self.io.check()?;
        self.last_input = now;
        self.inbox.push(data);
        let result = self.process(now);
        self.io.fail_on(result)
    }

    fn handle_sent(&mut self, now: Instant, n: usize) {
        if n > 0 {
            self.last_output = now;
        }
    }

    fn handle_stderr(&mut self, now: Instant, data: Bytes) {
        self.last_input = now;
        if let Some(log) = self.book.stderr_log(data) {
            self.io.events.push_back(ClientEvent::Log(log));
        }
    }

    fn handle_eof(&mut self, _now: Instant) -> Result<(), Error> {
        self.io.check()?;
        let owed = if self.state == State::Handshake {
            Some((
                Phase::Handshake,
                format!(
                    "before the server's handshake; received {}",
                    show_bytes(self.inbox.pending())
                ),
            ))
        } else {
            self.book.owed(self.inbox.pending().len())
        };
        self.state = State::Closed;
        self.io.end_of_stream(owed, ClientEvent::Closed)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        let front = self.book.front();
        let deadline = self.deadline();
        self.io.check_deadline(now, deadline, front)
    }

    fn poll_transmit(&mut self) -> Option<Bytes> {
        self.io.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
        self.io.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline().map(|d| d.at)
    }
}
