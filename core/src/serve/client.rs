//! The client side of a serve connection (what `ssh://` stores and Hydra's
//! queue runner are), as a state machine.
//!
//! See the [crate documentation](crate) for the run loop that drives it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::RequestId;
use super::endpoint::Endpoint;
use super::error::{Error, check_magic, check_version};
use super::messages::{CLIENT_MAGIC, Command, ExportTrailer, LATEST, SERVER_MAGIC};
use super::request::{Reply, Request, command_name};
use crate::nar::NarFramer;
use crate::wire::{Cx, Inbox, Limits, Version, Wire, encode_u64, show_bytes};

/// How a [`Client`] behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The version announced to the server. The negotiated version is the
    /// smaller of this and the server's. A replay announces exactly what the
    /// recorded client announced.
    pub version: Version,
    /// The oldest server version accepted.
    pub minimum_version: Version,
    /// Bounds on what the server may make us buffer.
    pub limits: Limits,
    /// How long the server may take to answer the handshake (Hydra used 60 s
    /// as ssh's `ConnectTimeout`). `None`: wait forever.
    pub handshake_timeout: Option<Duration>,
    /// How long a request may wait with nothing at all arriving, on stdout or
    /// stderr. Builds can be silent for hours, so the default is `None`; a host
    /// that wants a stall detector sets it to its `maxSilentTime`.
    pub stall_timeout: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            version: LATEST,
            minimum_version: Version::new(2, 0),
            limits: Limits::default(),
            handshake_timeout: Some(Duration::from_secs(60)),
            stall_timeout: None,
        }
    }
}

/// What happened on a [`Client`], drained with [`Client::poll_event`].
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
    /// The request's body may now be streamed with [`Client::write_nar`]
    /// (`AddToStoreNar`: `nar_size` bytes; `ImportPaths`: one NAR per path).
    SendNar {
        /// The request.
        id: RequestId,
    },
    /// A piece of a `DumpStorePath` reply.
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
    /// Bytes from the server's stderr: build logs, passed on as they came.
    Log(Bytes),
    /// The server closed the stream with nothing owed.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Ready,
    Closed,
}

/// A request sent and waiting for (the rest of) its reply.
#[derive(Debug)]
struct InFlight {
    id: RequestId,
    command: Command,
    /// For `DumpStorePath`: the framer finding the reply's end.
    nar: Option<NarFramer>,
}

/// The body of the request being uploaded; later requests wait behind it.
#[derive(Debug)]
enum Upload {
    AddToStoreNar {
        id: RequestId,
        remaining: u64,
        framer: NarFramer,
    },
    ImportPaths {
        id: RequestId,
        trailers: VecDeque<ExportTrailer>,
        framer: NarFramer,
    },
}

/// The client side of a serve connection.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    cx: Cx,
    state: State,
    inbox: Inbox,
    io: Endpoint<ClientEvent>,
    queued: VecDeque<(RequestId, Request)>,
    in_flight: VecDeque<InFlight>,
    upload: Option<Upload>,
    next_id: u64,
    started: Instant,
    last_input: Instant,
}

impl Client {
    /// A connection that starts with the handshake: the client's magic and
    /// version are ready in [`poll_transmit`](Self::poll_transmit) at once.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let mut out = Vec::new();
        encode_u64(CLIENT_MAGIC, &mut out);
        encode_u64(config.version.to_wire(), &mut out);
        Self {
            cx: Cx {
                version: config.version,
                limits: config.limits,
            },
            config,
            state: State::Handshake,
            inbox: Inbox::default(),
            io: Endpoint::new(out),
            queued: VecDeque::new(),
            in_flight: VecDeque::new(),
            upload: None,
            next_id: 0,
            started: now,
            last_input: now,
        }
    }

    /// The negotiated version, once the handshake is done.
    pub fn version(&self) -> Option<Version> {
        matches!(self.state, State::Ready | State::Closed).then_some(self.cx.version)
    }

    /// Whether nothing is queued, in flight or being uploaded: the connection
    /// can be closed, or given the next request, cleanly.
    pub fn is_idle(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_empty() && self.upload.is_none()
    }

    /// Bytes received and not yet consumed: part of a message still arriving.
    /// Never the bulk of a NAR, which passes through as it comes.
    pub fn buffered(&self) -> usize {
        self.inbox.pending().len()
    }

    /// The error that poisoned the connection, if one did.
    pub fn error(&self) -> Option<&Error> {
        self.io.error()
    }

    /// Queues a request and returns its id. Requests are pipelined: each is
    /// sent as soon as the handshake is done and every request before it has
    /// finished sending (bodies included); replies come back in order.
    pub fn request(&mut self, request: Request) -> Result<RequestId, Error> {
        self.check()?;
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.queued.push_back((id, request));
        self.send_queued();
        Ok(id)
    }

    /// Streams part of a request's NAR body, after [`ClientEvent::SendNar`].
    /// The bytes are checked against the NAR format as they pass, so a body
    /// that is too short, too long or malformed is caught here rather than
    /// desynchronising the server.
    pub fn write_nar(&mut self, id: RequestId, data: &[u8]) -> Result<(), Error> {
        self.check()?;
        let result = self.write_nar_inner(id, data);
        self.fail_on(result)
    }

    fn write_nar_inner(&mut self, id: RequestId, mut data: &[u8]) -> Result<(), Error> {
        let body_err = |why: String| Error::Body { id: id.0, why };
        match &mut self.upload {
            Some(Upload::AddToStoreNar {
                id: uid,
                remaining,
                framer,
            }) if *uid == id => {
                if data.len() as u64 > *remaining {
                    return Err(body_err(format!(
                        "{} more NAR bytes given, but nar_size leaves {remaining}",
                        data.len()
                    )));
                }
                let used = framer.feed(data).map_err(|source| Error::Nar {
                    what: format!("the NAR of request {}", id.0),
                    source,
                })?;
                *remaining -= data.len() as u64;
                if used < data.len() || (framer.is_done() && *remaining > 0) {
                    return Err(body_err(format!(
                        "the NAR ended after {} bytes, before nar_size",
                        framer.position()
                    )));
                }
                self.io.out.extend_from_slice(data);
                if *remaining == 0 {
                    if !framer.is_done() {
                        return Err(body_err(
                            "nar_size bytes were given but the NAR is incomplete".into(),
                        ));
                    }
                    self.upload = None;
                    self.send_queued();
                }
                Ok(())
            }
            Some(Upload::ImportPaths {
                id: uid,
                trailers,
                framer,
            }) if *uid == id => {
                while !data.is_empty() {
                    let Some(trailer) = trailers.front() else {
                        return Err(body_err(format!(
                            "{} bytes given after the last path's NAR",
                            data.len()
                        )));
                    };
                    let used = framer.feed(data).map_err(|source| Error::Nar {
                        what: format!("the NAR of {} (request {})", trailer.path, id.0),
                        source,
                    })?;
                    self.io.out.extend_from_slice(&data[..used]);
                    data = &data[used..];
                    if framer.is_done() {
                        trailer.encode(&self.cx, &mut self.io.out);
                        trailers.pop_front();
                        *framer = NarFramer::new();
                        // 1 announces another path, 0 ends the import.
                        encode_u64(u64::from(!trailers.is_empty()), &mut self.io.out);
                        if trailers.is_empty() {
                            if !data.is_empty() {
                                return Err(body_err(format!(
                                    "{} bytes given after the last path's NAR",
                                    data.len()
                                )));
                            }
                            self.upload = None;
                            self.send_queued();
                            return Ok(());
                        }
                    }
                }
                Ok(())
            }
            _ => Err(Error::Misuse(format!(
                "write_nar for request {}, which is not the request whose body is being sent",
                id.0
            ))),
        }
    }

    /// Gives up on a request. One still queued is simply dropped; one already
    /// (partly) sent poisons the connection, because its reply can no longer be
    /// told apart from the next one's.
    pub fn abandon(&mut self, id: RequestId) {
        if let Some(pos) = self.queued.iter().position(|(qid, _)| *qid == id) {
            self.queued.remove(pos);
            return;
        }
        let command = self
            .in_flight
            .iter()
            .find(|f| f.id == id)
            .map(|f| command_name(f.command));
        if let Some(command) = command {
            self.io.poison(Error::Abandoned { id: id.0, command });
        }
    }

    /// Takes bytes the server wrote to its stdout. Buffering without producing
    /// anything ("need more bytes") is normal.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), Error> {
        self.check()?;
        self.last_input = now;
        self.inbox.push(data);
        let result = self.process();
        self.fail_on(result)
    }

    /// Takes bytes the server wrote to its stderr, where the serve protocol
    /// puts build logs; they come out as [`ClientEvent::Log`]. Logs are passed
    /// on even after an error: they are often what explains it.
    pub fn handle_stderr(&mut self, now: Instant, data: &[u8]) {
        self.last_input = now;
        if !data.is_empty() {
            self.io
                .events
                .push_back(ClientEvent::Log(Bytes::copy_from_slice(data)));
        }
    }

    /// The server's stdout has ended. Fine when nothing is owed; an error that
    /// says what was owed otherwise.
    pub fn handle_eof(&mut self, _now: Instant) -> Result<(), Error> {
        self.check()?;
        let owed = if self.state == State::Handshake {
            Some(format!(
                "before the server's handshake; received {}",
                show_bytes(self.inbox.pending())
            ))
        } else if let Some(f) = self.in_flight.front() {
            Some(format!(
                "while waiting for the reply to {} (request {})",
                command_name(f.command),
                f.id.0
            ))
        } else if !self.inbox.is_empty() {
            Some(format!(
                "with {} bytes of an unfinished message",
                self.inbox.pending().len()
            ))
        } else {
            self.queued
                .front()
                .map(|(id, r)| format!("before request {} ({}) could be sent", id.0, r.command()))
        };
        self.io.end_of_stream(owed, ClientEvent::Closed)?;
        self.state = State::Closed;
        Ok(())
    }

    /// Checks the deadlines against `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.check()?;
        match self.deadline() {
            Some((deadline, during, limit)) if now >= deadline => {
                self.fail_on(Err(Error::TimedOut {
                    during,
                    seconds: limit.as_secs_f64(),
                }))
            }
            _ => Ok(()),
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if a
    /// deadline is running.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline().map(|(d, _, _)| d)
    }

    fn deadline(&self) -> Option<(Instant, String, Duration)> {
        if self.io.error().is_some() {
            return None;
        }
        match self.state {
            State::Handshake => self.config.handshake_timeout.map(|t| {
                (
                    self.started + t,
                    "waiting for the server's handshake".into(),
                    t,
                )
            }),
            State::Ready => {
                let f = self.in_flight.front()?;
                let t = self.config.stall_timeout?;
                let during = format!(
                    "with nothing received while waiting for the reply to {} (request {})",
                    command_name(f.command),
                    f.id.0
                );
                Some((self.last_input + t, during, t))
            }
            State::Closed => None,
        }
    }

    /// Moves the bytes to send to the server into `buf` and returns how many.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        self.io.poll_transmit(buf)
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.io.poll_event()
    }

    fn check(&self) -> Result<(), Error> {
        self.io.check()
    }

    fn fail_on(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        self.io.fail_on(result)
    }

    /// Encodes queued requests while nothing blocks them.
    fn send_queued(&mut self) {
        if self.state != State::Ready {
            return;
        }
        while self.upload.is_none() {
            let Some((id, request)) = self.queued.pop_front() else {
                return;
            };
            request.encode_header(&self.cx, &mut self.io.out);
            let command = request.command();
            let nar = (command == Command::DumpStorePath).then(NarFramer::new);
            self.in_flight.push_back(InFlight { id, command, nar });
            match request {
                Request::AddToStoreNar(m) => {
                    self.upload = Some(Upload::AddToStoreNar {
                        id,
                        remaining: m.nar_size,
                        framer: NarFramer::new(),
                    });
                    self.io.events.push_back(ClientEvent::SendNar { id });
                }
                Request::ImportPaths(m) if !m.paths.is_empty() => {
                    encode_u64(1, &mut self.io.out);
                    self.upload = Some(Upload::ImportPaths {
                        id,
                        trailers: m.paths.into(),
                        framer: NarFramer::new(),
                    });
                    self.io.events.push_back(ClientEvent::SendNar { id });
                }
                Request::ImportPaths(_) => encode_u64(0, &mut self.io.out),
                _ => {}
            }
        }
    }

    fn process(&mut self) -> Result<(), Error> {
        loop {
            match self.state {
                State::Handshake => {
                    if !self.handshake()? {
                        return Ok(());
                    }
                }
                State::Ready => {
                    if self.inbox.is_empty() || !self.read_reply()? {
                        return Ok(());
                    }
                }
                State::Closed => return Ok(()),
            }
        }
    }

    /// Reads the server's magic and version; `false` if more bytes are needed.
    fn handshake(&mut self) -> Result<bool, Error> {
        let pending = self.inbox.pending();
        if !check_magic("server", SERVER_MAGIC, pending)? || pending.len() < 16 {
            return Ok(false);
        }
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&pending[8..16]);
        let server_version = check_version(
            "server",
            u64::from_le_bytes(raw),
            self.config.minimum_version,
        )?;
        self.inbox.consume(16);
        self.cx.version = server_version.min(self.config.version);
        self.state = State::Ready;
        self.io.events.push_back(ClientEvent::Connected {
            server_version,
            version: self.cx.version,
        });
        self.send_queued();
        Ok(true)
    }

    /// Reads (part of) the oldest request's reply; `false` if more bytes are
    /// needed.
    fn read_reply(&mut self) -> Result<bool, Error> {
        let Some(front) = self.in_flight.front_mut() else {
            let pending = self.inbox.pending();
            return Err(Error::UnexpectedBytes {
                count: pending.len(),
                bytes: show_bytes(pending),
            });
        };
        let id = front.id;
        if let Some(framer) = &mut front.nar {
            let pending = self.inbox.pending();
            let used = framer.feed(pending).map_err(|source| Error::Nar {
                what: format!("the reply to DumpStorePath (request {})", id.0),
                source,
            })?;
            let done = framer.is_done().then(|| framer.position());
            if used > 0 {
                let data = Bytes::copy_from_slice(&pending[..used]);
                self.io.events.push_back(ClientEvent::NarChunk { id, data });
            }
            self.inbox.consume(used);
            if let Some(nar_size) = done {
                self.in_flight.pop_front();
                let reply = Reply::DumpStorePath { nar_size };
                self.io.events.push_back(ClientEvent::Reply { id, reply });
                return Ok(true);
            }
            return Ok(false);
        }
        let command = front.command;
        let cx = self.cx;
        let decoded = self
            .inbox
            .decode(cx.limits.max_message, |input| {
                Reply::decode(command, &cx, input)
            })
            .map_err(|e| Error::decode(format!("the reply to {command} (request {})", id.0), e))?;
        match decoded {
            Some(reply) => {
                self.in_flight.pop_front();
                self.io.events.push_back(ClientEvent::Reply { id, reply });
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
