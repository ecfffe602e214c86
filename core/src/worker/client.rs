//! The client side of a worker connection (what `ssh-ng://`, `unix://` and
//! `daemon` stores are), as a state machine.
//!
//! The run loop is the one of every [`Connection`]; see the
//! [module docs](super) for a worker example.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::handshake::{
    CLIENT_MAGIC, ClientHello, ClientOptions, FeaturesPartial, HandshakeInfo, SERVER_MAGIC,
    ServerHello, decode_features, encode_features,
};
use super::stderr::{RemoteError, ResultType, Stderr};
use super::{Command, LATEST, MINIMUM, Reply, ReplyPartial, Request, body_at};
use crate::conn::{
    BodyKind, Book, Connection, Deadline, Endpoint, Error, ErrorKind, Log, LogSource, Phase,
    ReplyKind, RequestId, check_magic, check_version, decode_in,
};
use crate::nar::NarFramer;
use crate::store::StoreDir;
use crate::wire::{
    Cx, Features, Inbox, Limits, NarDone, NixString, Reader, Version, Wire, Worker, encode_u64,
    show_bytes,
};

/// How a worker [`Client`] behaves.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The version announced; the negotiated one is min(this, the daemon's).
    pub version: Version,
    /// The oldest daemon version accepted.
    pub minimum_version: Version,
    /// The features announced (from 1.38); the agreed ones are those both
    /// announce.
    pub features: Features,
    /// The two obsolete words sent after the versions (no CPU affinity, no
    /// reserved space by default; a replay sends what was recorded).
    pub options: ClientOptions,
    /// The daemon's store directory, in which full paths on the wire are.
    pub store_dir: StoreDir,
    /// Bounds on what the daemon may make us buffer and hold.
    pub limits: Limits,
    /// How long the daemon may take to complete the handshake.
    pub handshake_timeout: Option<Duration>,
    /// How long a request may wait with nothing arriving, counted from when
    /// its bytes went out or the last byte received. `None` by default:
    /// builds can be silent for hours.
    pub stall_timeout: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            version: LATEST,
            minimum_version: MINIMUM,
            features: Features::default(),
            options: ClientOptions::default(),
            store_dir: StoreDir::default(),
            limits: Limits::default(),
            handshake_timeout: Some(Duration::from_secs(60)),
            stall_timeout: None,
        }
    }
}

/// What happened on a worker [`Client`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The handshake completed, the daemon's startup messages included.
    Connected {
        /// What the daemon announced.
        server_version: Version,
        /// What both sides now speak.
        version: Version,
        /// The features both announced.
        features: Features,
        /// What the daemon said about itself.
        info: HandshakeInfo,
    },
    /// The request's body may now be offered with [`Client::offer_body`].
    BodyWanted {
        /// The request.
        id: RequestId,
        /// How many bytes it takes at most now, when that is known (a
        /// pulled body: what the daemon asked for).
        max: Option<u64>,
    },
    /// The daemon stopped reading the request's body (it failed the
    /// operation): offer no more.
    BodyStopped {
        /// The request.
        id: RequestId,
    },
    /// A piece of a reply that is a NAR: a slice of the bytes received.
    NarChunk {
        /// The request.
        id: RequestId,
        /// The bytes, in order.
        data: Bytes,
    },
    /// Data the daemon wrote for the request (`STDERR_WRITE`).
    Written {
        /// The request.
        id: RequestId,
        /// The data.
        data: NixString,
    },
    /// A log message or a line of a build's output.
    Log(Log),
    /// An activity started or stopped, or reported a result other than a
    /// log line.
    Activity {
        /// The request under way, if one.
        request: Option<RequestId>,
        /// The message: `StartActivity`, `StopActivity` or `Result`.
        message: Stderr,
    },
    /// A request's whole reply has arrived.
    Reply {
        /// The request.
        id: RequestId,
        /// Its reply.
        reply: Reply,
    },
    /// The daemon refused the request (`STDERR_ERROR`), or the negotiated
    /// version lacks its operation; the connection goes on.
    Failed {
        /// The request.
        id: RequestId,
        /// Why.
        error: Error,
    },
    /// The daemon closed the stream with nothing owed.
    Closed,
    /// The connection broke; every later call returns this error.
    Broken(Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the server's magic and version.
    Hello,
    /// Waiting for the server's features (1.38).
    Features {
        server_version: Version,
    },
    /// Waiting for what the daemon says about itself.
    Info {
        server_version: Version,
    },
    /// The daemon's startup messages, until `STDERR_LAST`.
    Startup {
        server_version: Version,
    },
    Ready,
    Closed,
}

/// Where a request's answer is.
#[derive(Debug)]
enum Answer {
    /// In the STDERR stream.
    Stderr,
    /// In the reply message.
    Reply(ReplyPartial),
    /// In the NAR that is the reply.
    Nar(NarFramer),
}

/// The body being uploaded; later requests wait behind it.
#[derive(Debug)]
struct Upload {
    id: RequestId,
    command: Command,
    kind: BodyKind,
    /// Bytes of NAR still owed, when the request says.
    remaining: Option<u64>,
    /// Checks a body that is a NAR (`None`: data the host ends).
    framer: Option<NarFramer>,
    /// A pulled body: what the daemon asked for and has not had yet.
    wanted: u64,
    /// Whether the whole body has been given (a pulled body then waits for
    /// its operation to end before later requests go).
    complete: bool,
}

/// The client side of a worker connection.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    cx: Cx<Worker>,
    state: State,
    inbox: Inbox,
    io: Endpoint<ClientEvent>,
    book: Book<Request, Answer>,
    upload: Option<Upload>,
    server_features: Vec<String>,
    /// The daemon's feature list while it arrives.
    features: FeaturesPartial,
    /// What the daemon said about itself, until `Connected` reports it.
    info: Option<HandshakeInfo>,
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
    /// If `config.version` is not a worker version (major 1): a programming
    /// error, never input.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let cx = Cx::new(config.version)
            .with_limits(config.limits)
            .with_store_dir(config.store_dir.clone());
        let mut io = Endpoint::new(ClientEvent::Broken);
        let hello = ClientHello {
            magic: CLIENT_MAGIC,
            version: config.version.to_wire(),
        };
        hello.encode(&cx, io.out.buf());
        Self {
            cx,
            config,
            state: State::Hello,
            inbox: Inbox::default(),
            io,
            book: Book::default(),
            upload: None,
            server_features: Vec::new(),
            features: FeaturesPartial::default(),
            info: None,
            started: now,
            last_input: now,
            last_output: now,
        }
    }

    /// The negotiated version, once the handshake is done.
    pub fn version(&self) -> Option<Version> {
        matches!(self.state, State::Ready | State::Closed).then_some(self.cx.version)
    }

    /// The agreed features, once the handshake is done.
    pub fn features(&self) -> &Features {
        &self.cx.features
    }

    /// Every feature the daemon announced, known to us or not.
    pub fn server_features(&self) -> &[String] {
        &self.server_features
    }

    /// Whether nothing is queued, in flight or being uploaded.
    pub fn is_idle(&self) -> bool {
        self.book.is_empty() && self.upload.is_none()
    }

    /// The error that broke the connection, if one did.
    pub fn error(&self) -> Option<&Error> {
        self.io.error()
    }

    /// Queues a request and returns its id; see the serve client's
    /// `request`, which behaves the same. Requests are pipelined, except
    /// behind a body the daemon pulls (before 1.23), which must end before
    /// anything else is sent.
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

    /// The connection's encoding context (version, agreed features, store
    /// directory, limits): what a host writing part of a body of data in
    /// the protocol's own encoding (`AddMultipleToStore`'s path infos)
    /// encodes with. Its version is the client's own until the handshake
    /// completes.
    pub fn cx(&self) -> &Cx<Worker> {
        &self.cx
    }

    /// The request whose body is wanted now, and the most it takes now when
    /// that is known.
    pub fn body_wanted(&self) -> Option<(RequestId, Option<u64>)> {
        let u = self.upload.as_ref().filter(|u| !u.complete)?;
        let max = match u.kind {
            BodyKind::Pulled => Some(u.remaining.map_or(u.wanted, |r| r.min(u.wanted))),
            _ => u.remaining,
        };
        Some((u.id, max))
    }

    /// Ends a body of data ([`BodyContent::Data`](super::BodyContent)): a
    /// framed one gets its closing empty frame. A NAR body ends by itself;
    /// ending one, or a request that is not uploading, is a caller's
    /// mistake.
    pub fn finish_body(&mut self, now: Instant, id: RequestId) -> Result<(), Error> {
        self.io.check()?;
        match &self.upload {
            Some(u)
                if u.id == id
                    && !u.complete
                    && u.framer.is_none()
                    && u.kind == BodyKind::Framed => {}
            _ => {
                return Err(Error::misuse(format!(
                    "finish_body for request {id}, which is not sending a framed body of data"
                )));
            }
        }
        encode_u64(0, self.io.out.buf());
        self.upload = None;
        self.send_queued(now);
        Ok(())
    }

    /// Offers bytes of a request's body after [`ClientEvent::BodyWanted`] and
    /// returns how many were taken (fewer once the body is complete, or, for
    /// a pulled body, than the daemon asked for). Taken bytes leave as
    /// slices of `data`, framed as the body's kind wants. A body for a
    /// request that is not uploading is a caller's mistake; a malformed NAR
    /// breaks the connection.
    pub fn offer_body(&mut self, now: Instant, id: RequestId, data: Bytes) -> Result<usize, Error> {
        self.io.check()?;
        let taking = self
            .upload
            .as_ref()
            .is_some_and(|u| u.id == id && !u.complete);
        if !taking {
            return Err(Error::misuse(format!(
                "offer_body for request {id}, whose body is not wanted now"
            )));
        }
        let result = self.take_body(data);
        let result = self.io.fail_on(result);
        self.send_queued(now);
        result
    }

    fn take_body(&mut self, data: Bytes) -> Result<usize, Error> {
        let Some(upload) = &mut self.upload else {
            return Ok(0);
        };
        let id = upload.id;
        let op = upload.command.name();
        let broken = |kind| Error::new(kind, Phase::Sending).about(id, op);
        let mut n = data.len();
        if let Some(remaining) = upload.remaining {
            n = usize::try_from(remaining).map_or(n, |r| r.min(n));
        }
        if upload.kind == BodyKind::Pulled {
            n = usize::try_from(upload.wanted).map_or(n, |w| w.min(n));
        }
        let used = match &mut upload.framer {
            Some(framer) => {
                let used = framer.feed(&data[..n]).map_err(|source| {
                    broken(ErrorKind::Nar {
                        what: "the request's NAR".into(),
                        source,
                    })
                })?;
                let ended_early = upload
                    .remaining
                    .is_some_and(|r| framer.is_done() && r > used as u64);
                if ended_early || (upload.remaining.is_some() && used < n) {
                    return Err(broken(ErrorKind::Body {
                        why: format!(
                            "the NAR ended after {} bytes, before the size the request states",
                            framer.position()
                        ),
                    }));
                }
                used
            }
            None => n,
        };
        let nar_done = upload.framer.as_ref().is_some_and(NarFramer::is_done);
        let piece = data.slice(..used);
        if let Some(remaining) = &mut upload.remaining {
            *remaining -= used as u64;
            if *remaining == 0 && !nar_done {
                return Err(broken(ErrorKind::Body {
                    why: "the size the request states was given but the NAR is incomplete".into(),
                }));
            }
        }
        let out = &mut self.io.out;
        match upload.kind {
            BodyKind::Framed if !piece.is_empty() => {
                encode_u64(piece.len() as u64, out.buf());
                out.push(piece);
            }
            BodyKind::Pulled => {
                // A string: length, bytes, zero padding.
                let len = piece.len() as u64;
                encode_u64(len, out.buf());
                out.push(piece);
                out.buf()
                    .extend_from_slice(&[0u8; 8][..crate::wire::padding(len)]);
                upload.wanted = 0;
            }
            _ => out.push(piece),
        }
        if nar_done {
            upload.complete = true;
            if upload.kind == BodyKind::Framed {
                // The empty frame ends the body.
                encode_u64(0, out.buf());
            }
            if upload.kind != BodyKind::Pulled {
                self.upload = None;
            }
        }
        Ok(used)
    }

    /// Gives up on a request: dropped if still queued; if already sent, the
    /// connection breaks (class `Cancelled`), since its answer can no longer
    /// be told apart from the next one's.
    pub fn abandon(&mut self, id: RequestId) {
        if let Some(error) = self.book.abandon(id) {
            self.io.break_with(error);
        }
    }

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
                    Error::unsupported::<Worker>(command.name(), command.since(), self.cx.version)
                        .about(id, command.name());
                self.io.events.push_back(ClientEvent::Failed { id, error });
                continue;
            }
            request.encode(&self.cx, self.io.out.buf());
            self.book.sent(id, command, now, Answer::Stderr);
            let kind = body_at(command, self.cx.version);
            if kind == BodyKind::None {
                continue;
            }
            let (remaining, framer) = match super::body_content(&request, self.cx.version) {
                super::BodyContent::Nar { size } => {
                    (size, Some(NarFramer::with_limits(self.cx.limits.nar)))
                }
                super::BodyContent::Data => (None, None),
            };
            self.upload = Some(Upload {
                id,
                command,
                kind,
                remaining,
                framer,
                wanted: 0,
                complete: false,
            });
            if kind != BodyKind::Pulled {
                self.io
                    .events
                    .push_back(ClientEvent::BodyWanted { id, max: remaining });
            }
        }
    }

    fn process(&mut self, now: Instant) -> Result<(), Error> {
        loop {
            let progressed = match self.state {
                State::Hello => self.read_hello(now)?,
                State::Features { server_version } => self.read_features(server_version)?,
                State::Info { server_version } => self.read_info(server_version)?,
                State::Startup { server_version } => self.read_startup(now, server_version)?,
                // Not only when bytes are pending: a reply may be empty.
                State::Ready => self.read_answer(now)?,
                State::Closed => false,
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    fn handshake_decode<T>(
        &mut self,
        what: &str,
        decode: impl FnOnce(&Cx<Worker>, &mut Reader<'_>) -> crate::wire::Decoded<T>,
    ) -> Result<Option<T>, Error> {
        decode_in(&mut self.inbox, &self.cx, what, Phase::Handshake, decode)
    }

    fn read_hello(&mut self, _now: Instant) -> Result<bool, Error> {
        if !check_magic::<Worker>("daemon", SERVER_MAGIC, self.inbox.pending())? {
            return Ok(false);
        }
        // Handshake messages are taken whole (`decode_at_once`), so the magic
        // is checked again until all of the hello has come.
        let Some(hello) = self.handshake_decode("the daemon's handshake", |cx, r| {
            ServerHello::decode_at_once(cx, r)
        })?
        else {
            return Ok(false);
        };
        let server_version =
            check_version::<Worker>("daemon", hello.version, self.config.minimum_version)?;
        self.cx.version = server_version.min(self.config.version);
        if self.cx.since(1, 38) {
            encode_features(&self.config.features, &self.cx, self.io.out.buf());
            self.state = State::Features { server_version };
        } else {
            self.state = State::Info { server_version };
        }
        self.config.options.encode(&self.cx, self.io.out.buf());
        Ok(true)
    }

    fn read_features(&mut self, server_version: Version) -> Result<bool, Error> {
        let features = &mut self.features;
        let Some(names) = decode_in(
            &mut self.inbox,
            &self.cx,
            "the daemon's features",
            Phase::Handshake,
            |cx, r| decode_features(cx, features, r),
        )?
        else {
            return Ok(false);
        };
        let theirs = Features::new(names.iter().cloned());
        self.cx.features = self.config.features.intersection(&theirs);
        self.server_features = names;
        self.state = State::Info { server_version };
        Ok(true)
    }

    fn read_info(&mut self, server_version: Version) -> Result<bool, Error> {
        let Some(info) = self.handshake_decode("what the daemon says about itself", |cx, r| {
            HandshakeInfo::decode_at_once(cx, r)
        })?
        else {
            return Ok(false);
        };
        self.info = Some(info);
        self.state = State::Startup { server_version };
        Ok(true)
    }

    fn read_startup(&mut self, now: Instant, server_version: Version) -> Result<bool, Error> {
        let Some(message) = self.decode_stderr(Phase::Handshake)? else {
            return Ok(false);
        };
        match message {
            Stderr::Last => {
                self.state = State::Ready;
                let info = self.info.take().unwrap_or_default();
                self.io.events.push_back(ClientEvent::Connected {
                    server_version,
                    version: self.cx.version,
                    features: self.cx.features.clone(),
                    info,
                });
                self.send_queued(now);
            }
            Stderr::Error(e) => {
                return Err(Error::new(
                    ErrorKind::Remote { message: e.message },
                    Phase::Handshake,
                ));
            }
            other => self.stderr_event(None, other),
        }
        Ok(true)
    }

    fn decode_stderr(&mut self, phase: Phase) -> Result<Option<Stderr>, Error> {
        decode_in(
            &mut self.inbox,
            &self.cx,
            "a STDERR message",
            phase,
            |cx, r| Stderr::decode(cx, &mut (), r),
        )
    }

    /// Passes a log or activity message on.
    fn stderr_event(&mut self, request: Option<RequestId>, message: Stderr) {
        let event = match message {
            Stderr::Next(text) => ClientEvent::Log(Log {
                request,
                source: LogSource::Message,
                text: text.to_bytes(),
            }),
            Stderr::Result {
                id: activity,
                result,
                fields,
            } if log_line(result).is_some() => {
                let text = match fields.first() {
                    Some(super::stderr::Field::String(s)) => s.to_bytes(),
                    _ => Bytes::new(),
                };
                let source = match log_line(result) {
                    Some(ResultType::PostBuildLogLine) => LogSource::PostBuild { activity },
                    _ => LogSource::Build { activity },
                };
                ClientEvent::Log(Log {
                    request,
                    source,
                    text,
                })
            }
            other => ClientEvent::Activity {
                request,
                message: other,
            },
        };
        self.io.events.push_back(event);
    }

    /// Reads (part of) the oldest request's answer; `false` if more bytes
    /// are needed.
    fn read_answer(&mut self, now: Instant) -> Result<bool, Error> {
        let Some(front) = self.book.in_flight.front() else {
            let pending = self.inbox.pending();
            if pending.is_empty() {
                return Ok(false);
            }
            return Err(Error::new(
                ErrorKind::UnexpectedBytes {
                    peer: "daemon",
                    count: pending.len(),
                    bytes: show_bytes(pending),
                },
                Phase::Idle,
            ));
        };
        let (id, command, sent_at) = (front.id, front.command, front.sent_at);
        let context = move |e: Error| {
            e.about(id, command.name())
                .after(now.saturating_duration_since(sent_at))
        };
        if matches!(front.answer, Answer::Stderr) {
            let message = self.decode_stderr(Phase::Receiving).map_err(context)?;
            let Some(message) = message else {
                return Ok(false);
            };
            self.on_stderr(id, command, message).map_err(context)?;
            // A pulled body ends with its operation: what waited behind it
            // may go now.
            self.send_queued(now);
            return Ok(true);
        }
        let Some(front) = self.book.in_flight.front_mut() else {
            return Ok(false);
        };
        match &mut front.answer {
            Answer::Nar(framer) => {
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
                let reply = Reply::NarFromPath(NarDone { nar_size });
                self.io.events.push_back(ClientEvent::Reply { id, reply });
                Ok(true)
            }
            Answer::Reply(partial) => {
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
            Answer::Stderr => Ok(false),
        }
    }

    fn on_stderr(&mut self, id: RequestId, command: Command, message: Stderr) -> Result<(), Error> {
        match message {
            Stderr::Last => {
                if self.upload.as_ref().is_some_and(|u| u.id == id) {
                    // The daemon finished with the body (a pulled body, or
                    // one it did not read to the end).
                    self.stop_upload(id);
                }
                let answer = match command.reply_kind() {
                    ReplyKind::BareNar => Answer::Nar(NarFramer::with_limits(self.cx.limits.nar)),
                    _ => Answer::Reply(ReplyPartial::default()),
                };
                if let Some(front) = self.book.in_flight.front_mut() {
                    front.answer = answer;
                }
            }
            Stderr::Error(remote) => {
                self.book.in_flight.pop_front();
                if self.upload.as_ref().is_some_and(|u| u.id == id) {
                    self.stop_upload(id);
                    self.io.events.push_back(ClientEvent::BodyStopped { id });
                }
                let error = remote_error(remote).about(id, command.name());
                self.io.events.push_back(ClientEvent::Failed { id, error });
            }
            Stderr::Read(n) => match &mut self.upload {
                Some(u) if u.id == id && u.kind == BodyKind::Pulled => {
                    u.wanted = n;
                    let max = u.remaining.map_or(n, |r| r.min(n));
                    self.io
                        .events
                        .push_back(ClientEvent::BodyWanted { id, max: Some(max) });
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::Decode {
                            what: "the STDERR stream".into(),
                            source: crate::wire::DecodeError::unexpected(
                                "no STDERR_READ (this operation has no pulled body)",
                                format!("STDERR_READ of {n} bytes"),
                            ),
                        },
                        Phase::Receiving,
                    ));
                }
            },
            Stderr::Write(data) => {
                self.io.events.push_back(ClientEvent::Written { id, data });
            }
            other => self.stderr_event(Some(id), other),
        }
        Ok(())
    }

    /// Ends an upload the daemon no longer reads: a framed body still gets
    /// its closing empty frame, so the daemon's reader (which drains to it)
    /// stays in step.
    fn stop_upload(&mut self, id: RequestId) {
        if let Some(u) = self.upload.take()
            && u.id == id
            && u.kind == BodyKind::Framed
            && !u.complete
        {
            encode_u64(0, self.io.out.buf());
        }
    }

    fn deadline(&self) -> Option<Deadline> {
        if self.io.is_broken() {
            return None;
        }
        match self.state {
            State::Ready => self.book.stall(
                self.config.stall_timeout,
                self.last_input.max(self.last_output),
            ),
            State::Closed => None,
            _ => Deadline::handshake("daemon", self.started, self.config.handshake_timeout),
        }
    }
}

/// The result types that are lines of a log.
fn log_line(result: u64) -> Option<ResultType> {
    match ResultType::from_code(result)? {
        t @ (ResultType::BuildLogLine | ResultType::PostBuildLogLine) => Some(t),
        _ => None,
    }
}

fn remote_error(remote: RemoteError) -> Error {
    Error::new(
        ErrorKind::Remote {
            message: remote.message,
        },
        Phase::Receiving,
    )
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

    /// A daemon reached over ssh may print to stderr before it starts (a
    /// login banner, a missing program); that is not a build log, but it
    /// is passed on as one so a host can show it.
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
        let owed = match self.state {
            State::Ready | State::Closed => self.book.owed(self.inbox.pending().len()),
            _ => Some((
                Phase::Handshake,
                format!(
                    "during the handshake; received {}",
                    show_bytes(self.inbox.pending())
                ),
            )),
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
