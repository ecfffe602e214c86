//! The server side of a worker connection (what `nix-daemon --stdio` is),
//! as a state machine: a client's bytes become requests and body chunks,
//! and a host's logs, activities, replies and refusals become bytes.
//!
//! The host answers requests in the order they came: the daemon reads the
//! next operation only when it has answered the current one, and so does a
//! client reading answers.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::handshake::{
    CLIENT_MAGIC, ClientOptions, FeaturesPartial, HandshakeInfo, SERVER_MAGIC, ServerHello,
    decode_features, encode_features,
};
use super::stderr::{RemoteError, Stderr};
use super::{Command, LATEST, MINIMUM, Reply, Request, RequestPartial, body_at};
use crate::conn::{
    BodyKind, Connection, Deadline, Endpoint, Error, ErrorKind, Incoming, Phase, ReplyKind,
    RequestId, check_magic, check_version, decode_in,
};
use crate::nar::NarFramer;
use crate::store::StoreDir;
use crate::wire::{Cx, Decoded, Features, Inbox, Limits, Reader, Version, Wire, Worker};

/// How much of a pulled body is asked for at a time: what every recorded
/// Nix daemon asks for (2.3 to 2.34: its reader's 32 KiB buffer).
const PULL: u64 = 32 * 1024;

/// How a worker [`Server`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The version announced; the negotiated one is min(this, the client's).
    pub version: Version,
    /// The oldest client version accepted.
    pub minimum_version: Version,
    /// The features announced (from 1.38).
    pub features: Features,
    /// What the server says about itself after the handshake.
    pub info: HandshakeInfo,
    /// This store's directory.
    pub store_dir: StoreDir,
    /// Bounds on what a client may make us buffer and hold.
    pub limits: Limits,
    /// How long a client may take to complete the handshake (`None`, as
    /// `nix-daemon --stdio`: forever).
    pub handshake_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            version: LATEST,
            minimum_version: MINIMUM,
            features: Features::default(),
            info: HandshakeInfo::default(),
            store_dir: StoreDir::default(),
            limits: Limits::default(),
            handshake_timeout: None,
        }
    }
}

/// What a client asked of a worker [`Server`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The handshake completed.
    Connected {
        /// What the client announced.
        client_version: Version,
        /// What both sides now speak.
        version: Version,
        /// The features both announced.
        features: Features,
    },
    /// A request. One with a body is followed by [`BodyChunk`](Self::BodyChunk)s
    /// and [`BodyEnd`](Self::BodyEnd); the host may log while it works and
    /// answers with `reply`, `send_nar` or `fail`.
    Request {
        /// Its id.
        id: RequestId,
        /// The request.
        request: Request,
    },
    /// Part of a request's body, unframed: a slice of the bytes received.
    BodyChunk {
        /// The request.
        id: RequestId,
        /// The bytes, in order.
        data: Bytes,
    },
    /// A request's body is complete.
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
    Features,
    Options,
    Commands,
    /// A framed body: between frames (`None`) or inside one.
    Framed {
        id: RequestId,
        in_frame: Option<u64>,
    },
    /// A pulled body: waiting for the client's answer to a `STDERR_READ`.
    Pulled {
        id: RequestId,
    },
    /// A NAR straight in the stream.
    BareNar {
        id: RequestId,
    },
    Closed,
}

#[derive(Debug)]
struct Awaiting {
    id: RequestId,
    command: Command,
    body_done: bool,
    /// A NAR reply under way: `STDERR_LAST` has been sent.
    nar_started: bool,
}

/// The server side of a worker connection.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    cx: Cx<Worker>,
    state: State,
    client_version: Version,
    /// The client's feature list while it arrives.
    features: FeaturesPartial,
    inbox: Inbox,
    io: Endpoint<ServerEvent>,
    awaiting: VecDeque<Awaiting>,
    incoming: Incoming<RequestPartial>,
    /// Checks a body that is a NAR as it arrives.
    body_framer: Option<NarFramer>,
    reply_framer: NarFramer,
    started: Instant,
}

impl Server {
    /// A server waiting for a client's magic.
    ///
    /// # Panics
    /// If `config.version` is not a worker version (major 1).
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let cx = Cx::new(config.version)
            .with_limits(config.limits)
            .with_store_dir(config.store_dir.clone());
        Self {
            reply_framer: NarFramer::with_limits(config.limits.nar),
            client_version: config.version,
            cx,
            config,
            state: State::Magic,
            features: FeaturesPartial::default(),
            inbox: Inbox::default(),
            io: Endpoint::new(ServerEvent::Broken),
            awaiting: VecDeque::new(),
            incoming: Incoming::default(),
            body_framer: None,
            started: now,
        }
    }

    /// The negotiated version, once the handshake is done.
    pub fn version(&self) -> Option<Version> {
        (!matches!(
            self.state,
            State::Magic | State::ClientVersion | State::Features | State::Options
        ))
        .then_some(self.cx.version)
    }

    /// The error that broke the connection, if one did.
    pub fn error(&self) -> Option<&Error> {
        self.io.error()
    }

    fn current(&self, id: RequestId) -> Result<&Awaiting, Error> {
        match self.awaiting.front() {
            Some(front) if front.id == id => Ok(front),
            Some(front) => Err(Error::misuse(format!(
                "request {} must be answered first (answers go in request order), not {id}",
                front.id
            ))),
            None => Err(Error::misuse(format!(
                "request {id} is not waiting for an answer"
            ))),
        }
    }

    /// Sends a message of request `id`'s STDERR stream: a log line, an
    /// activity or its result (not `Last`, `Error` or `Read`, which the
    /// server sends itself).
    pub fn send_stderr(&mut self, id: RequestId, message: &Stderr) -> Result<(), Error> {
        self.io.check()?;
        let front = self.current(id)?;
        if front.nar_started {
            return Err(Error::misuse(format!(
                "request {id}'s reply has started; its log has ended"
            )));
        }
        if matches!(message, Stderr::Last | Stderr::Error(_) | Stderr::Read(_)) {
            return Err(Error::misuse(
                "LAST, ERROR and READ are sent by the server itself (reply, fail, pulled bodies)",
            ));
        }
        message.encode(&self.cx, self.io.out.buf());
        Ok(())
    }

    /// Sends a log message (`STDERR_NEXT`) for request `id`.
    pub fn log(
        &mut self,
        id: RequestId,
        text: impl Into<crate::wire::NixString>,
    ) -> Result<(), Error> {
        self.send_stderr(id, &Stderr::Next(text.into()))
    }

    /// Answers request `id` with a message reply: `STDERR_LAST`, then the
    /// reply. Out of order, before the body has arrived, or of the wrong
    /// kind: a caller's mistake that changes nothing.
    pub fn reply(&mut self, id: RequestId, reply: &Reply) -> Result<(), Error> {
        self.io.check()?;
        let front = self.current(id)?;
        if !front.body_done {
            return Err(Error::misuse(format!(
                "request {id} cannot be answered before its body has arrived"
            )));
        }
        if front.command != reply.command() || front.command.reply_kind() != ReplyKind::Message {
            return Err(Error::misuse(format!(
                "request {id} is {}; a {} reply does not answer it",
                front.command,
                reply.command()
            )));
        }
        Stderr::Last.encode(&self.cx, self.io.out.buf());
        reply.encode(&self.cx, self.io.out.buf());
        self.awaiting.pop_front();
        Ok(())
    }

    /// Refuses request `id` (`STDERR_ERROR`); no reply follows and the
    /// connection goes on. A request whose body has not all arrived cannot
    /// be refused yet: the client would keep sending it.
    pub fn fail(&mut self, id: RequestId, error: &RemoteError) -> Result<(), Error> {
        self.io.check()?;
        let front = self.current(id)?;
        if !front.body_done || front.nar_started {
            return Err(Error::misuse(format!(
                "request {id} cannot be refused now (its body is still arriving or its reply has started)"
            )));
        }
        Stderr::Error(error.clone()).encode(&self.cx, self.io.out.buf());
        self.awaiting.pop_front();
        Ok(())
    }

    /// Streams part of the NAR that answers request `id` (`NarFromPath`)
    /// and returns how many bytes were taken; see the serve server's
    /// `send_nar`.
    pub fn send_nar(&mut self, id: RequestId, data: Bytes) -> Result<usize, Error> {
        self.io.check()?;
        let front = self.current(id)?;
        if front.command.reply_kind() != ReplyKind::BareNar {
            return Err(Error::misuse(format!(
                "request {id} is {}, which is not answered with a NAR",
                front.command
            )));
        }
        let command = front.command;
        if !front.nar_started {
            Stderr::Last.encode(&self.cx, self.io.out.buf());
            if let Some(f) = self.awaiting.front_mut() {
                f.nar_started = true;
            }
        }
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

    fn decode<T>(
        &mut self,
        what: &str,
        decode: impl FnOnce(&Cx<Worker>, &mut Reader<'_>) -> Decoded<T>,
    ) -> Result<Option<T>, Error> {
        decode_in(&mut self.inbox, &self.cx, what, Phase::Receiving, decode)
    }

    fn body_error(&self, id: RequestId, kind: ErrorKind) -> Error {
        let op = self
            .awaiting
            .iter()
            .find(|a| a.id == id)
            .map_or("a request", |a| a.command.name());
        Error::new(kind, Phase::Receiving).about(id, op)
    }

    /// Passes body bytes on, checking them as a NAR where the body is one.
    fn body_bytes(&mut self, id: RequestId, n: usize) -> Result<(), Error> {
        if let Some(framer) = &mut self.body_framer {
            let used = framer
                .feed(&self.inbox.pending()[..n])
                .map_err(|source| ErrorKind::Nar {
                    what: "the request's NAR".into(),
                    source,
                });
            let used = match used {
                Ok(used) => used,
                Err(kind) => return Err(self.body_error(id, kind)),
            };
            if used < n {
                let why = format!("{} bytes after the end of the body's NAR", n - used);
                return Err(self.body_error(id, ErrorKind::Body { why }));
            }
        }
        let data = self.inbox.take(n);
        self.io
            .events
            .push_back(ServerEvent::BodyChunk { id, data });
        Ok(())
    }

    fn body_done(&mut self, id: RequestId) -> Result<(), Error> {
        if self.body_framer.take().is_some_and(|f| !f.is_done()) {
            let why = "the body ended before its NAR did".to_owned();
            return Err(self.body_error(id, ErrorKind::Body { why }));
        }
        if let Some(a) = self.awaiting.iter_mut().find(|a| a.id == id) {
            a.body_done = true;
        }
        self.io.events.push_back(ServerEvent::BodyEnd { id });
        self.state = State::Commands;
        Ok(())
    }

    fn process(&mut self) -> Result<(), Error> {
        while self.step()? {}
        Ok(())
    }

    /// One transition; `false` when more bytes are needed.
    fn step(&mut self) -> Result<bool, Error> {
        match self.state {
            State::Magic => {
                if !check_magic::<Worker>("client", CLIENT_MAGIC, self.inbox.pending())? {
                    return Ok(false);
                }
                self.inbox.advance(8);
                let hello = ServerHello {
                    magic: SERVER_MAGIC,
                    version: self.config.version.to_wire(),
                };
                hello.encode(&self.cx, self.io.out.buf());
                self.state = State::ClientVersion;
                Ok(true)
            }
            State::ClientVersion => {
                let Some(raw) = self.decode("the client's version", |_, r| Ok(r.u64()))? else {
                    return Ok(false);
                };
                self.client_version =
                    check_version::<Worker>("client", raw, self.config.minimum_version)?;
                self.cx.version = self.client_version.min(self.config.version);
                self.state = if self.cx.since(1, 38) {
                    State::Features
                } else {
                    State::Options
                };
                Ok(true)
            }
            State::Features => {
                let features = &mut self.features;
                let Some(names) = decode_in(
                    &mut self.inbox,
                    &self.cx,
                    "the client's features",
                    Phase::Receiving,
                    |cx, r| decode_features(cx, features, r),
                )?
                else {
                    return Ok(false);
                };
                let theirs = Features::new(names);
                encode_features(&self.config.features, &self.cx, self.io.out.buf());
                self.cx.features = self.config.features.intersection(&theirs);
                self.state = State::Options;
                Ok(true)
            }
            State::Options => {
                let decoded = self.decode("the client's options", |cx, r| {
                    ClientOptions::decode_at_once(cx, r)
                })?;
                if decoded.is_none() {
                    return Ok(false);
                }
                let info = self.config.info.clone();
                info.encode(&self.cx, self.io.out.buf());
                Stderr::Last.encode(&self.cx, self.io.out.buf());
                self.io.events.push_back(ServerEvent::Connected {
                    client_version: self.client_version,
                    version: self.cx.version,
                    features: self.cx.features.clone(),
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
                let kind = body_at(command, self.cx.version);
                let nar_body = matches!(
                    super::body_content(&request, self.cx.version),
                    super::BodyContent::Nar { .. }
                );
                self.body_framer = nar_body.then(|| NarFramer::with_limits(self.cx.limits.nar));
                self.state = match kind {
                    BodyKind::Framed => State::Framed { id, in_frame: None },
                    BodyKind::Pulled => {
                        Stderr::Read(PULL).encode(&self.cx, self.io.out.buf());
                        State::Pulled { id }
                    }
                    BodyKind::BareNar => State::BareNar { id },
                    _ => State::Commands,
                };
                self.awaiting.push_back(Awaiting {
                    id,
                    command,
                    body_done: self.state == State::Commands,
                    nar_started: false,
                });
                self.io
                    .events
                    .push_back(ServerEvent::Request { id, request });
                Ok(true)
            }
            State::Framed { id, in_frame: None } => {
                let Some(len) = self.decode("a frame's length", |_, r| Ok(r.u64()))? else {
                    return Ok(false);
                };
                if len == 0 {
                    self.body_done(id)?;
                } else {
                    self.state = State::Framed {
                        id,
                        in_frame: Some(len),
                    };
                }
                Ok(true)
            }
            State::Framed {
                id,
                in_frame: Some(left),
            } => {
                let n = self.available(left);
                if n == 0 {
                    return Ok(false);
                }
                self.body_bytes(id, n)?;
                let left = left - n as u64;
                self.state = State::Framed {
                    id,
                    in_frame: (left > 0).then_some(left),
                };
                Ok(true)
            }
            State::Pulled { id } => {
                // The client's answer: one string of at most what was asked.
                let Some(len) = self.inbox.pending().get(..8).map(|b| {
                    let mut raw = [0u8; 8];
                    raw.copy_from_slice(b);
                    u64::from_le_bytes(raw)
                }) else {
                    return Ok(false);
                };
                if len > PULL {
                    let why = format!("{len} bytes sent where at most {PULL} were asked for");
                    return Err(self.body_error(id, ErrorKind::Body { why }));
                }
                let pad = crate::wire::padding(len) as u64;
                if (self.inbox.pending().len() as u64) < 8 + len + pad {
                    return Ok(false);
                }
                self.inbox.advance(8);
                self.body_bytes(id, len as usize)?;
                self.inbox.advance(pad as usize);
                let done = self.body_framer.as_ref().is_none_or(NarFramer::is_done) || len == 0;
                if done {
                    self.body_done(id)?;
                } else {
                    Stderr::Read(PULL).encode(&self.cx, self.io.out.buf());
                }
                Ok(true)
            }
            State::BareNar { id } => {
                if self.inbox.is_empty() {
                    return Ok(false);
                }
                let Some(framer) = &mut self.body_framer else {
                    return self.body_done(id).map(|()| true);
                };
                let taken = framer
                    .take_from(&mut self.inbox)
                    .map_err(|source| ErrorKind::Nar {
                        what: "the request's NAR".into(),
                        source,
                    });
                let (chunk, done) = match taken {
                    Ok(taken) => taken,
                    Err(kind) => return Err(self.body_error(id, kind)),
                };
                if let Some(data) = chunk {
                    self.io
                        .events
                        .push_back(ServerEvent::BodyChunk { id, data });
                }
                let done = done.is_some();
                if done {
                    self.body_done(id)?;
                }
                Ok(true)
            }
            State::Closed => Ok(false),
        }
    }

    /// How many body bytes can be passed on now, at most `left`.
    fn available(&self, left: u64) -> usize {
        let pending = self.inbox.pending().len();
        usize::try_from(left).map_or(pending, |l| l.min(pending))
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

    /// A client has no stderr stream here; nothing to do.
    fn handle_stderr(&mut self, _now: Instant, _data: Bytes) {}

    fn handle_eof(&mut self, _now: Instant) -> Result<(), Error> {
        self.io.check()?;
        let owed = match self.state {
            State::Magic | State::ClientVersion | State::Features | State::Options => {
                Some((Phase::Handshake, "during the handshake".to_owned()))
            }
            State::Commands if !self.inbox.is_empty() => Some((
                Phase::Receiving,
                format!(
                    "in the middle of a request ({} bytes received)",
                    self.inbox.pending().len()
                ),
            )),
            State::Framed { id, .. } | State::Pulled { id } | State::BareNar { id } => {
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
