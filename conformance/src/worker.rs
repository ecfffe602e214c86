//! The three checks of a worker transcript: the codec, the core as client
//! and the core as server.
//!
//! Everything here goes through the operation table ([`Request`],
//! [`Reply`], [`Command::reply_kind`](nixwire_core::worker::Command::reply_kind),
//! [`body_at`]) and never names an operation, so that every operation the
//! table has is checked the same way.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use nixwire_core::conn::{BodyKind, Connection, ErrorKind, LogSource, ReplyKind, RequestId};
use nixwire_core::nar::NarFramer;
use nixwire_core::store::BuildResult;
use nixwire_core::wire::{
    Cx, Decoded, Features, NixString, Protocol, Reader, Version, Wire, Worker, encode_bytes,
    encode_u64,
};
use nixwire_core::worker::handshake::{
    CLIENT_MAGIC, ClientHello, ClientOptions, HandshakeInfo, SERVER_MAGIC, ServerHello,
};
use nixwire_core::worker::stderr::{Field, RemoteError, ResultType, Stderr};
use nixwire_core::worker::{
    Client, ClientConfig, ClientEvent, Reply, ReplyPartial, Request, RequestPartial, Server,
    ServerConfig, ServerEvent, body_at,
};

use crate::cursor::{Cursor, same};
use crate::link::{Link, drive, logs_to_compare};
use crate::transcript::{From, Transcript};

/// The version from which both ends exchange features.
const FEATURES_SINCE: Version = Version::new(1, 38);

/// A request's body as it travelled: framed bodies in their frames, pulled
/// bodies in the pieces the daemon asked for, a bare NAR in one piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// How it travelled (`body_at` the negotiated version).
    pub kind: BodyKind,
    /// The pieces, in order, without their framing.
    pub pieces: Vec<Vec<u8>>,
}

impl Body {
    /// The body's bytes, without framing.
    pub fn bytes(&self) -> Vec<u8> {
        self.pieces.concat()
    }
}

/// A request as recorded, with its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The request.
    pub request: Request,
    /// Its body (no pieces when it has none).
    pub body: Body,
}

/// How an answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// `STDERR_LAST`, then the reply.
    Reply(Reply),
    /// `STDERR_LAST`, then a NAR that is the reply (`ReplyKind::BareNar`).
    Nar(Vec<u8>),
    /// `STDERR_ERROR`: the daemon refused the request; no reply.
    Error(RemoteError),
}

/// A request's answer as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedAnswer {
    /// The STDERR messages before the end (logs, activities, `READ`s), each
    /// with the offset in the server stream where it ends.
    pub stderr: Vec<(Stderr, usize)>,
    /// How it ended.
    pub end: End,
    /// The offset in the server stream where the answer ends.
    pub end_at: usize,
}

/// What the codec made of both streams.
#[derive(Debug, Clone, Default)]
pub struct CodecWalk {
    /// What the client announced.
    pub client_version: Option<Version>,
    /// What the server announced.
    pub server_version: Option<Version>,
    /// The features the client announced, as sent (from 1.38).
    pub client_features: Vec<String>,
    /// The features the server announced, as sent (from 1.38).
    pub server_features: Vec<String>,
    /// The client's options.
    pub options: Option<ClientOptions>,
    /// What the daemon said about itself.
    pub info: Option<HandshakeInfo>,
    /// The daemon's STDERR messages before the handshake's `STDERR_LAST`.
    pub startup: Vec<Stderr>,
    /// The requests, in order.
    pub requests: Vec<RecordedRequest>,
    /// Their answers, in order.
    pub answers: Vec<RecordedAnswer>,
    /// Why the client stream did not decode to the end, if it did not.
    pub client_error: Option<String>,
    /// Why the server stream did not decode to the end, if it did not.
    pub server_error: Option<String>,
}

impl CodecWalk {
    /// The negotiated version.
    pub fn version(&self) -> Option<Version> {
        Some(self.client_version?.min(self.server_version?))
    }

    /// The features both announced.
    pub fn features(&self) -> Features {
        Features::new(self.client_features.iter().cloned())
            .intersection(&Features::new(self.server_features.iter().cloned()))
    }

    /// The context both ends speak in after the handshake.
    pub fn cx(&self) -> Option<Cx<Worker>> {
        let mut cx = Cx::new(self.version()?);
        cx.features = self.features();
        Some(cx)
    }
}

/// A whole value of `T`'s own layout, from a fresh partial state.
fn whole<T: Wire<Worker>>(cx: &Cx<Worker>) -> impl FnOnce(&mut Reader<'_>) -> Decoded<T> + '_ {
    move |r| T::decode(cx, &mut T::Partial::default(), r)
}

fn check_hello(who: &str, magic: u64, expected: u64, raw: u64) -> Result<Version, String> {
    if magic != expected {
        return Err(format!("{who} magic {magic:#x}, expected {expected:#x}"));
    }
    match Version::from_wire(raw) {
        Some(version) if version.major == Worker::MAJOR => Ok(version),
        _ => Err(format!(
            "{who} version {raw:#x}, not a worker protocol version (major {})",
            Worker::MAJOR
        )),
    }
}

fn feature_names(names: Vec<NixString>, who: &str) -> Result<Vec<String>, String> {
    names
        .iter()
        .map(|n| {
            n.to_str()
                .map(str::to_owned)
                .map_err(|_| format!("{who} feature name {n:?} is not text"))
        })
        .collect()
}

/// Which stream a handshake message failed to decode in.
enum Side {
    Client(String),
    Server(String),
}

/// Walks both streams with the codec alone.
pub fn codec_walk(t: &Transcript) -> CodecWalk {
    let client_bytes = t.stream(From::Client);
    let server_bytes = t.stream(From::Server);
    let mut walk = CodecWalk::default();
    let mut c = Cursor::new(&client_bytes);
    let mut s = Cursor::new(&server_bytes);
    match walk_handshake(&mut c, &mut s, &mut walk) {
        Ok(()) => {}
        Err(Side::Client(e)) => {
            walk.client_error = Some(e);
            return walk;
        }
        Err(Side::Server(e)) => {
            walk.server_error = Some(e);
            return walk;
        }
    }
    if let Err(e) = walk_requests(&mut c, &mut walk) {
        walk.client_error = Some(e);
    }
    if let Err(e) = walk_answers(&mut s, &mut walk) {
        walk.server_error = Some(e);
    }
    walk
}

/// The handshake, in the order it travels: what each side sends next
/// depends on the version both now speak.
fn walk_handshake(
    c: &mut Cursor<'_>,
    s: &mut Cursor<'_>,
    walk: &mut CodecWalk,
) -> Result<(), Side> {
    // The hellos have no gated fields: any worker context reads them.
    let any = Cx::<Worker>::new(Version::new(Worker::MAJOR, 0));
    let hello = c
        .take("the client's hello", whole::<ClientHello>(&any))
        .map_err(Side::Client)?;
    let cv =
        check_hello("client", hello.magic, CLIENT_MAGIC, hello.version).map_err(Side::Client)?;
    walk.client_version = Some(cv);
    let hello = s
        .take("the server's hello", whole::<ServerHello>(&any))
        .map_err(Side::Server)?;
    let sv =
        check_hello("server", hello.magic, SERVER_MAGIC, hello.version).map_err(Side::Server)?;
    walk.server_version = Some(sv);
    let mut cx = Cx::<Worker>::new(cv.min(sv));
    if cx.version >= FEATURES_SINCE {
        let names = c
            .take("the client's features", whole::<Vec<NixString>>(&cx))
            .map_err(Side::Client)?;
        walk.client_features = feature_names(names, "the client's").map_err(Side::Client)?;
        let names = s
            .take("the server's features", whole::<Vec<NixString>>(&cx))
            .map_err(Side::Server)?;
        walk.server_features = feature_names(names, "the server's").map_err(Side::Server)?;
        cx.features = walk.features();
    }
    walk.options = Some(
        c.take("the client's options", whole::<ClientOptions>(&cx))
            .map_err(Side::Client)?,
    );
    walk.info = Some(
        s.take("the daemon's handshake info", whole::<HandshakeInfo>(&cx))
            .map_err(Side::Server)?,
    );
    loop {
        let message = s
            .take("a STDERR message of the handshake", whole::<Stderr>(&cx))
            .map_err(Side::Server)?;
        match message {
            Stderr::Last => return Ok(()),
            Stderr::Error(e) => {
                return Err(Side::Server(format!(
                    "the daemon refused the connection: {}",
                    e.message
                )));
            }
            other => walk.startup.push(other),
        }
    }
}

fn walk_requests(c: &mut Cursor<'_>, walk: &mut CodecWalk) -> Result<(), String> {
    let cx = walk.cx().ok_or("no version")?;
    while !c.is_done() {
        let n = walk.requests.len();
        let request = c.take(&format!("request {n}"), |r| {
            Request::decode(&cx, &mut RequestPartial::default(), r)
        })?;
        let command = request.command();
        let what = format!("the body of request {n} ({command})");
        let kind = body_at(command, cx.version);
        let mut pieces = Vec::new();
        match kind {
            BodyKind::None => {}
            BodyKind::Framed => loop {
                let len = c.u64(&format!("a frame of {what}"))?;
                if len == 0 {
                    break;
                }
                pieces.push(c.raw(&format!("a frame of {what}"), len)?.to_vec());
            },
            // Pieces the daemon asked for, each a string, until the NAR
            // they carry has ended (the only pulled body is a NAR).
            BodyKind::Pulled => {
                let mut framer = NarFramer::new();
                while !framer.is_done() {
                    let piece = c.take(&format!("a piece of {what}"), |r| {
                        Ok(r.bytes()?.map(<[u8]>::to_vec))
                    })?;
                    if piece.is_empty() {
                        return Err(format!("{what}: an empty piece before the NAR ended"));
                    }
                    let used = framer.feed(&piece).map_err(|e| format!("{what}: {e}"))?;
                    if used < piece.len() {
                        return Err(format!(
                            "{what}: {} bytes after the end of the NAR in its last piece",
                            piece.len() - used
                        ));
                    }
                    pieces.push(piece);
                }
            }
            BodyKind::BareNar => pieces.push(c.nar(&what)?),
            other => {
                return Err(format!(
                    "{what}: a body of kind {other:?}, which the worker protocol does not have"
                ));
            }
        }
        walk.requests.push(RecordedRequest {
            request,
            body: Body { kind, pieces },
        });
    }
    Ok(())
}

fn walk_answers(s: &mut Cursor<'_>, walk: &mut CodecWalk) -> Result<(), String> {
    let cx = walk.cx().ok_or("no version")?;
    for (n, r) in walk.requests.iter().enumerate() {
        let command = r.request.command();
        let what = format!("the answer to request {n} ({command})");
        if s.is_done() {
            return Err(format!("the server stream ends before {what}"));
        }
        let mut stderr = Vec::new();
        let end = loop {
            match s.take(&what, whole::<Stderr>(&cx))? {
                Stderr::Last => match command.reply_kind() {
                    ReplyKind::BareNar => break End::Nar(s.nar(&what)?),
                    _ => {
                        break End::Reply(s.take(&what, |r| {
                            Reply::decode(command, &cx, &mut ReplyPartial::default(), r)
                        })?);
                    }
                },
                Stderr::Error(e) => break End::Error(e),
                other => stderr.push((other, s.pos)),
            }
        };
        walk.answers.push(RecordedAnswer {
            stderr,
            end,
            end_at: s.pos,
        });
    }
    if !s.is_done() {
        return Err(format!(
            "{} bytes after the last answer",
            s.bytes.len() - s.pos
        ));
    }
    Ok(())
}

fn encode_features(names: &[String], cx: &Cx<Worker>, out: &mut Vec<u8>) {
    let names: Vec<NixString> = names.iter().map(|n| NixString::from(n.as_str())).collect();
    names.encode(cx, out);
}

/// Re-encodes what the codec decoded: the bytes each side would send.
pub fn reencode(walk: &CodecWalk) -> (Vec<u8>, Vec<u8>) {
    let (Some(cv), Some(sv), Some(cx), Some(options), Some(info)) = (
        walk.client_version,
        walk.server_version,
        walk.cx(),
        &walk.options,
        &walk.info,
    ) else {
        return (Vec::new(), Vec::new());
    };
    let mut client = Vec::new();
    let mut server = Vec::new();
    let hello = ClientHello {
        magic: CLIENT_MAGIC,
        version: cv.to_wire(),
    };
    hello.encode(&cx, &mut client);
    let hello = ServerHello {
        magic: SERVER_MAGIC,
        version: sv.to_wire(),
    };
    hello.encode(&cx, &mut server);
    if cx.version >= FEATURES_SINCE {
        encode_features(&walk.client_features, &cx, &mut client);
        encode_features(&walk.server_features, &cx, &mut server);
    }
    options.encode(&cx, &mut client);
    info.encode(&cx, &mut server);
    for m in &walk.startup {
        m.encode(&cx, &mut server);
    }
    Stderr::Last.encode(&cx, &mut server);
    for r in &walk.requests {
        r.request.encode(&cx, &mut client);
        for piece in &r.body.pieces {
            match r.body.kind {
                BodyKind::Framed => {
                    encode_u64(piece.len() as u64, &mut client);
                    client.extend_from_slice(piece);
                }
                BodyKind::Pulled => encode_bytes(piece, &mut client),
                _ => client.extend_from_slice(piece),
            }
        }
        if r.body.kind == BodyKind::Framed {
            encode_u64(0, &mut client);
        }
    }
    for a in &walk.answers {
        for (m, _) in &a.stderr {
            m.encode(&cx, &mut server);
        }
        match &a.end {
            End::Reply(reply) => {
                Stderr::Last.encode(&cx, &mut server);
                reply.encode(&cx, &mut server);
            }
            End::Nar(nar) => {
                Stderr::Last.encode(&cx, &mut server);
                server.extend_from_slice(nar);
            }
            End::Error(e) => Stderr::Error(e.clone()).encode(&cx, &mut server),
        }
    }
    (client, server)
}

/// What the recorded session shows about how it ended, read from the
/// recorded client's exit code and its own account of the failure (its
/// stderr): the oracle the core's outcome is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The client succeeded, or this is not the run's last connection.
    Clean,
    /// A build failed remotely and the daemon reported it over the wire.
    BuildFailure,
    /// The daemon refused a request (`STDERR_ERROR`) and the client gave up
    /// with the daemon's message (a 1.21 daemon sent `DRV!out`).
    Refusal,
    /// The client failed on its own after a clean session: Nix 2.3's
    /// `show-derivation` reads the `.drv` from its own disk, where it is
    /// not ("error: opening file ... No such file or directory"). The core
    /// must complete the session cleanly.
    LocalFailure,
}

/// Reads the oracle off a transcript. A failure the suite does not recognise
/// is an error, so that a new kind of failure is looked at, never skipped.
pub fn expected(t: &Transcript) -> Result<Expected, String> {
    if t.client_exit == 0 || !t.last_connection {
        return Ok(Expected::Clean);
    }
    let said = |s: &str| t.client_stderr.contains(s);
    if said("failed with exit code") {
        Ok(Expected::BuildFailure)
    } else if said("is not a valid store path") {
        Ok(Expected::Refusal)
    } else if said("error: opening file") && said("No such file or directory") {
        Ok(Expected::LocalFailure)
    } else {
        Err(format!(
            "the recorded client failed (exit {}) in a way the suite does not recognise: {:?}",
            t.client_exit,
            t.client_stderr.lines().last().unwrap_or_default()
        ))
    }
}

/// How the core's client ended one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// A reply; for a NAR reply, with the NAR's bytes.
    Reply(Box<Reply>, Vec<u8>),
    /// The daemon refused it, with this message.
    Refused(NixString),
    /// It failed otherwise (the negotiated version lacks the operation).
    Failed(String),
}

/// What the core's client did when replaying a transcript.
#[derive(Debug, Clone, Default)]
pub struct ClientRun {
    /// The bytes it sent.
    pub sent: Vec<u8>,
    /// What it reported when the handshake completed: the server's version,
    /// the negotiated one, the agreed features and the daemon's info.
    pub connected: Option<(Version, Version, Features, HandshakeInfo)>,
    /// The STDERR messages it surfaced outside any request (the
    /// handshake's), rebuilt from its events.
    pub startup: Vec<Stderr>,
    /// The STDERR messages it surfaced for each request, rebuilt from its
    /// events (logs, activities, written data).
    pub messages: Vec<Vec<Stderr>>,
    /// How each request ended, if it did.
    pub answers: Vec<Option<Answered>>,
    /// The bytes of the server's stderr it surfaced as logs.
    pub logs: Vec<u8>,
    /// Events it should not have given, and misuse.
    pub oddities: Vec<String>,
    /// The error that ended the connection, if one did.
    pub error: Option<String>,
}

/// The STDERR message an event of the core's client was made from.
fn log_message(source: LogSource, text: Bytes) -> Option<Stderr> {
    let line = |result: ResultType, id| Stderr::Result {
        id,
        result: result.code(),
        fields: vec![Field::String(text.clone().into())],
    };
    match source {
        LogSource::Message => Some(Stderr::Next(text.into())),
        LogSource::Build { activity } => Some(line(ResultType::BuildLogLine, activity)),
        LogSource::PostBuild { activity } => Some(line(ResultType::PostBuildLogLine, activity)),
        _ => None,
    }
}

/// Replays the recorded server against the core's client, announcing what
/// the recorded client announced and asking for the requests the codec
/// found in the recorded client stream, with their bodies in the pieces they
/// travelled in.
pub fn run_client(
    t: &Transcript,
    path: &Path,
    walk: &CodecWalk,
    link: &Link,
) -> Result<ClientRun, String> {
    let now = Instant::now();
    let mut config = ClientConfig::default();
    config.version = walk.client_version.ok_or("no client version")?;
    config.features = Features::new(walk.client_features.iter().cloned());
    config.handshake_timeout = None;
    // The obsolete words the recorded client sent (Nix 2.3 over a unix
    // socket locks itself to a CPU and says which).
    config.options = walk.options.clone().unwrap_or_default();
    let mut client = Client::new(config, now);
    let mut ids = Vec::new();
    for r in &walk.requests {
        let id = client
            .request(now, r.request.clone())
            .map_err(|e| format!("client role, request: {e}"))?;
        ids.push(id);
    }
    let mut run = ClientRun {
        messages: vec![Vec::new(); ids.len()],
        answers: vec![None; ids.len()],
        ..ClientRun::default()
    };
    // The next piece of each request's body to offer, and the NAR of each
    // request's reply so far.
    let mut next_piece = vec![0; ids.len()];
    let mut nars = vec![Vec::new(); ids.len()];
    let index = |id: RequestId| ids.iter().position(|i| *i == id);
    let mut ended = false;
    // The run loop's step 2: handle its events.
    let mut handle = |client: &mut Client, event: ClientEvent| -> Result<ControlFlow<()>, String> {
        {
            let of = |id: RequestId| {
                index(id).ok_or_else(|| format!("an event of unknown request {id}"))
            };
            match event {
                ClientEvent::Connected {
                    server_version,
                    version,
                    features,
                    info,
                } => run.connected = Some((server_version, version, features, info)),
                ClientEvent::BodyWanted { id, .. } => {
                    let n = of(id)?;
                    let body = &walk.requests[n].body;
                    // A pulled body gives one piece per STDERR_READ; the
                    // others all of theirs at once.
                    let count = match body.kind {
                        BodyKind::Pulled => 1,
                        _ => body.pieces.len(),
                    };
                    let end = (next_piece[n] + count).min(body.pieces.len());
                    for piece in &body.pieces[next_piece[n]..end] {
                        let taken = client
                            .offer_body(now, id, Bytes::copy_from_slice(piece))
                            .map_err(|e| format!("client role, body of request {n}: {e}"))?;
                        if taken != piece.len() {
                            return Err(format!(
                                "client role: request {n} took {taken} of a piece of {} body bytes",
                                piece.len()
                            ));
                        }
                    }
                    next_piece[n] = end;
                    // A body of data (not a NAR) ends when the host says.
                    let wanted = client.body_wanted().is_some_and(|(w, _)| w == id);
                    if end == body.pieces.len() && body.kind == BodyKind::Framed && wanted {
                        client
                            .finish_body(now, id)
                            .map_err(|e| format!("client role, end of body of request {n}: {e}"))?;
                    }
                }
                ClientEvent::BodyStopped { .. } => {}
                ClientEvent::NarChunk { id, data } => nars[of(id)?].extend_from_slice(&data),
                ClientEvent::Written { id, data } => {
                    run.messages[of(id)?].push(Stderr::Write(data));
                }
                ClientEvent::Log(log) => {
                    if log.source == LogSource::Stderr {
                        run.logs.extend_from_slice(&log.text);
                        return Ok(ControlFlow::Continue(()));
                    }
                    let Some(message) = log_message(log.source, log.text) else {
                        run.oddities
                            .push(format!("a log of source {:?}", log.source));
                        return Ok(ControlFlow::Continue(()));
                    };
                    match log.request {
                        Some(id) => run.messages[of(id)?].push(message),
                        None => run.startup.push(message),
                    }
                }
                ClientEvent::Activity { request, message } => match request {
                    Some(id) => run.messages[of(id)?].push(message),
                    None => run.startup.push(message),
                },
                ClientEvent::Reply { id, reply } => {
                    let n = of(id)?;
                    let nar = std::mem::take(&mut nars[n]);
                    run.answers[n] = Some(Answered::Reply(Box::new(reply), nar));
                }
                ClientEvent::Failed { id, error } => {
                    let n = of(id)?;
                    run.answers[n] = Some(match *error.kind {
                        ErrorKind::Remote { message } => Answered::Refused(message),
                        other => Answered::Failed(other.to_string()),
                    });
                }
                ClientEvent::Closed | ClientEvent::Broken(_) => ended = true,
                other => run.oddities.push(format!("an unexpected event {other:?}")),
            }
        }
        Ok(if ended || run.answers.iter().all(Option::is_some) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    };
    let driven = drive(link, t, path, client, &mut handle)?;
    run.sent = driven.sent;
    run.error = driven.error;
    Ok(run)
}

/// What the core's server did with the recorded client bytes.
#[derive(Debug, Clone, Default)]
pub struct ServerRun {
    /// What it reported when the handshake completed: the client's version,
    /// the negotiated one and the agreed features.
    pub connected: Option<(Version, Version, Features)>,
    /// The requests it yielded, with their bodies' bytes.
    pub requests: Vec<(Request, Vec<u8>)>,
    /// The bytes it sent: its handshake and the host's answers.
    pub sent: Vec<u8>,
}

/// One thing the host does to answer: a STDERR message, or the end of an
/// answer, once the recorded server stream has passed it.
struct Action<'a> {
    request: usize,
    at: usize,
    what: Act<'a>,
}

enum Act<'a> {
    Stderr(&'a Stderr),
    End(&'a End),
}

/// Feeds the recorded client bytes to the core's server, announcing what
/// the recorded server announced, while a host replays the recorded answers
/// (logs, activities, replies, NARs, refusals) in recorded order: each is
/// sent once the recorded server stream has passed it, and each client chunk
/// is fed when the recording has it. The server sends the rest itself (its
/// handshake, `STDERR_READ` for pulled bodies).
pub fn run_server(t: &Transcript, walk: &CodecWalk) -> Result<ServerRun, String> {
    if !walk.startup.is_empty() {
        return Err(format!(
            "server role: the recorded daemon sent {} STDERR messages during the handshake, \
             which the core's server cannot send",
            walk.startup.len()
        ));
    }
    let now = Instant::now();
    let mut config = ServerConfig::default();
    config.version = walk.server_version.ok_or("no server version")?;
    config.features = Features::new(walk.server_features.iter().cloned());
    config.info = walk.info.clone().unwrap_or_default();
    let mut server = Server::new(config, now);
    let mut actions = Vec::new();
    for (n, a) in walk.answers.iter().enumerate() {
        for (m, at) in &a.stderr {
            // The server asks for pulled bodies itself.
            if !matches!(m, Stderr::Read(_)) {
                actions.push(Action {
                    request: n,
                    at: *at,
                    what: Act::Stderr(m),
                });
            }
        }
        actions.push(Action {
            request: n,
            at: a.end_at,
            what: Act::End(&a.end),
        });
    }
    let mut actions = actions.into_iter().peekable();
    let mut run = ServerRun::default();
    let mut ids: Vec<RequestId> = Vec::new();
    let drain = |server: &mut Server, run: &mut ServerRun, ids: &mut Vec<RequestId>| {
        while let Some(bytes) = server.poll_transmit() {
            run.sent.extend_from_slice(&bytes);
        }
        while let Some(event) = server.poll_event() {
            match event {
                ServerEvent::Connected {
                    client_version,
                    version,
                    features,
                } => run.connected = Some((client_version, version, features)),
                ServerEvent::Request { id, request } => {
                    ids.push(id);
                    run.requests.push((request, Vec::new()));
                }
                ServerEvent::BodyChunk { id, data } => {
                    if let Some(n) = ids.iter().position(|i| *i == id) {
                        run.requests[n].1.extend_from_slice(&data);
                    }
                }
                _ => {}
            }
        }
    };
    let mut server_pos = 0;
    for chunk in &t.chunks {
        match chunk.from {
            From::Client => {
                server
                    .handle_input(now, Bytes::copy_from_slice(&chunk.data))
                    .map_err(|e| format!("server role: {e}"))?;
            }
            From::Server => server_pos += chunk.data.len(),
            From::Stderr => {}
        }
        drain(&mut server, &mut run, &mut ids);
        while let Some(action) = actions.next_if(|a| a.at <= server_pos) {
            act(&mut server, &ids, &action)?;
            drain(&mut server, &mut run, &mut ids);
        }
    }
    server
        .handle_eof(now)
        .map_err(|e| format!("server role: {e}"))?;
    drain(&mut server, &mut run, &mut ids);
    if let Some(a) = actions.next() {
        return Err(format!(
            "server role: the answer to request {} was never due",
            a.request
        ));
    }
    Ok(run)
}

/// The host does one recorded thing.
fn act(server: &mut Server, ids: &[RequestId], action: &Action<'_>) -> Result<(), String> {
    let n = action.request;
    let id = *ids.get(n).ok_or_else(|| {
        format!("server role: the recorded answer to request {n} came before the core's server yielded that request")
    })?;
    let failed = |e: nixwire_core::conn::Error| format!("server role, answering request {n}: {e}");
    match action.what {
        Act::Stderr(m) => server.send_stderr(id, m).map_err(failed),
        Act::End(End::Reply(reply)) => server.reply(id, reply).map_err(failed),
        Act::End(End::Error(e)) => server.fail(id, e).map_err(failed),
        Act::End(End::Nar(nar)) => {
            let taken = server
                .send_nar(id, Bytes::copy_from_slice(nar))
                .map_err(failed)?;
            if taken == nar.len() {
                Ok(())
            } else {
                Err(format!(
                    "server role: request {n}'s reply took {taken} of the NAR's {} bytes",
                    nar.len()
                ))
            }
        }
    }
}

/// The failed builds a reply reports: the build results of
/// `BuildDerivation` and `BuildPathsWithResults`, the two replies that
/// carry them (`BuildPaths` reports a failure as a refusal).
fn failed_builds(reply: &Reply) -> Vec<&'static str> {
    let results: Vec<&BuildResult> = match reply {
        Reply::BuildDerivation(result) => vec![result],
        Reply::BuildPathsWithResults(keyed) => keyed.iter().map(|k| &k.result).collect(),
        _ => Vec::new(),
    };
    results
        .into_iter()
        .filter(|r| !r.status.is_success())
        .map(|r| r.status.name())
        .collect()
}

/// Text without terminal escapes (Nix colours its messages).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            // ESC [ parameters, then a letter.
            for ch in chars.by_ref() {
                if ch.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Whether the recorded client printed the daemon's `message`.
fn printed(t: &Transcript, message: &NixString) -> bool {
    let message = plain(&String::from_utf8_lossy(message.as_bytes()));
    let first = message.lines().map(str::trim).find(|l| !l.is_empty());
    let Some(first) = first else {
        return false;
    };
    let first = first.strip_prefix("error: ").unwrap_or(first);
    plain(&t.client_stderr).contains(first)
}

/// Compares how the core's client ended with how the recorded session did.
fn judge(t: &Transcript, expected: Expected, run: &ClientRun) -> Result<String, String> {
    let failures: Vec<&str> = run
        .answers
        .iter()
        .flatten()
        .flat_map(|a| match a {
            Answered::Reply(reply, _) => failed_builds(reply),
            _ => Vec::new(),
        })
        .collect();
    let refusals: Vec<&NixString> = run
        .answers
        .iter()
        .flatten()
        .filter_map(|a| match a {
            Answered::Refused(m) => Some(m),
            _ => None,
        })
        .collect();
    let refused_as_printed = refusals.iter().find(|m| printed(t, m));
    match expected {
        Expected::Clean if !failures.is_empty() => Err(format!(
            "the recorded session shows no failed build, but the core reports one: {}",
            failures.join(", ")
        )),
        Expected::LocalFailure if failures.is_empty() && refusals.is_empty() => Ok(
            "completed cleanly; the recorded client then failed on its own, as recorded".into(),
        ),
        Expected::LocalFailure => Err(format!(
            "the recorded client failed on its own after a clean session, but the core reports \
             failed builds {failures:?} and refusals {refusals:?}"
        )),
        Expected::Clean if refusals.is_empty() => Ok("completed".into()),
        Expected::Clean => Ok(format!(
            "completed ({} requests refused by the daemon, as recorded)",
            refusals.len()
        )),
        Expected::BuildFailure if !failures.is_empty() => Ok(format!(
            "build failed as recorded ({})",
            failures.join(", ")
        )),
        Expected::BuildFailure => match refused_as_printed {
            Some(m) => Ok(format!("build refused as recorded: {m}")),
            None => Err("the recorded build failed, but the core reports no failed build".into()),
        },
        Expected::Refusal => match refused_as_printed {
            Some(m) => Ok(format!("refused as recorded: {m}")),
            None => Err(
                "the recorded client gave up on a refusal, but the core reports no refusal it printed"
                    .into(),
            ),
        },
    }
}

/// Checks that the core's client surfaced, for every request, what the
/// codec decoded: the same STDERR messages and the same end.
fn compare_answers(walk: &CodecWalk, run: &ClientRun) -> Result<(), String> {
    if run.startup != walk.startup {
        return Err("client role: the handshake's STDERR messages differ from the codec's".into());
    }
    if let Some(odd) = run.oddities.first() {
        return Err(format!("client role: {odd}"));
    }
    for (n, (r, a)) in walk.requests.iter().zip(&walk.answers).enumerate() {
        let what = format!("client role, request {n} ({})", r.request.command());
        let recorded: Vec<&Stderr> = a
            .stderr
            .iter()
            .map(|(m, _)| m)
            .filter(|m| !matches!(m, Stderr::Read(_)))
            .collect();
        let ours: Vec<&Stderr> = run.messages[n].iter().collect();
        if ours != recorded {
            return Err(format!(
                "{what}: it surfaced {} STDERR messages where the codec decoded {}{}",
                ours.len(),
                recorded.len(),
                ours.iter()
                    .zip(&recorded)
                    .position(|(x, y)| x != y)
                    .map(|i| format!(" (the first difference is message {i})"))
                    .unwrap_or_default()
            ));
        }
        match (&a.end, &run.answers[n]) {
            (End::Reply(want), Some(Answered::Reply(got, _))) if want == got.as_ref() => {}
            (End::Nar(want), Some(Answered::Reply(got, nar)))
                if got.command() == r.request.command() && nar == want => {}
            (End::Error(want), Some(Answered::Refused(got))) if want.message == *got => {}
            (_, None) => return Err(format!("{what}: no answer, where the codec decoded one")),
            (_, Some(got)) => {
                return Err(format!(
                    "{what}: it ended {}, differing from the codec's decoding",
                    match got {
                        Answered::Reply(..) => "with a reply".to_owned(),
                        Answered::Refused(m) => format!("refused ({m})"),
                        Answered::Failed(e) => format!("failed ({e})"),
                    }
                ));
            }
        }
    }
    if let Some(n) = (walk.answers.len()..run.answers.len()).find(|&n| run.answers[n].is_some()) {
        return Err(format!(
            "client role: request {n} ended, where the recorded server never answered it"
        ));
    }
    Ok(())
}

/// Runs every check on one worker transcript. `Ok` carries a one-line
/// summary of what was checked.
pub fn check(t: &Transcript) -> Result<String, String> {
    check_via(t, Path::new(""), &Link::default())
}

/// Runs every check on one transcript (the file `path`), the client role's
/// bytes travelling as `link` says. `Ok` carries a one-line summary.
pub fn check_via(t: &Transcript, path: &Path, link: &Link) -> Result<String, String> {
    let client_bytes = t.stream(From::Client);
    let server_bytes = t.stream(From::Server);
    let stderr_bytes = t.stream(From::Stderr);
    let expected = expected(t)?;

    // 1. The codec.
    let walk = codec_walk(t);
    if let Some(e) = &walk.client_error {
        return Err(format!("codec, client stream: {e}"));
    }
    if let Some(e) = &walk.server_error {
        return Err(format!("codec, server stream: {e}"));
    }
    let (client_again, server_again) = reencode(&walk);
    same(
        "codec, client stream re-encoded",
        &client_again,
        &client_bytes,
    )?;
    same(
        "codec, server stream re-encoded",
        &server_again,
        &server_bytes,
    )?;
    let version = walk.version().ok_or("no version")?;

    // 2. The core as client.
    let run = run_client(t, path, &walk, link)?;
    // No recorded worker session broke: an error is the core's, and says
    // more than where the bytes part.
    if let Some(e) = &run.error {
        return Err(format!("client role: {e}"));
    }
    same("client role, bytes sent", &run.sent, &client_bytes)?;
    same(
        "client role, logs",
        logs_to_compare(link, &run.logs, &stderr_bytes),
        &stderr_bytes,
    )?;
    let want = (
        walk.server_version.ok_or("no server version")?,
        version,
        walk.features(),
        walk.info.clone().unwrap_or_default(),
    );
    match &run.connected {
        Some(got) if *got == want => {}
        Some(got) => {
            return Err(format!(
                "client role: the handshake reported {got:?}, where the codec decoded {want:?}"
            ));
        }
        None => return Err("client role: the handshake never completed".into()),
    }
    compare_answers(&walk, &run)?;
    let outcome = judge(t, expected, &run)?;

    // 3. The core as server.
    let srv = run_server(t, &walk)?;
    let want = (
        walk.client_version.ok_or("no client version")?,
        version,
        walk.features(),
    );
    if srv.connected.as_ref() != Some(&want) {
        return Err(format!(
            "server role: the handshake reported {:?}, where the codec decoded {want:?}",
            srv.connected
        ));
    }
    let recorded: Vec<(&Request, Vec<u8>)> = walk
        .requests
        .iter()
        .map(|r| (&r.request, r.body.bytes()))
        .collect();
    let ours: Vec<(&Request, Vec<u8>)> = srv
        .requests
        .iter()
        .map(|(r, body)| (r, body.clone()))
        .collect();
    if ours != recorded {
        return Err(format!(
            "server role: the requests or their bodies differ from the codec's decoding{}",
            ours.iter()
                .zip(&recorded)
                .position(|(x, y)| x != y)
                .map(|i| format!(" (first at request {i})"))
                .unwrap_or_else(|| format!(" ({} requests, not {})", ours.len(), recorded.len()))
        ));
    }
    same("server role, bytes sent", &srv.sent, &server_bytes)?;
    Ok(format!(
        "{} requests at {version}: {outcome}",
        walk.requests.len()
    ))
}

#[cfg(test)]
mod tests {
    use nixwire_core::store::{BuildResult, BuildStatus, DerivedPath, StorePath};
    use nixwire_core::worker::Reply;
    use nixwire_core::worker::messages::KeyedBuildResult;

    use super::{failed_builds, plain};

    #[test]
    fn failed_builds_are_found_in_any_reply_that_holds_a_build_result() {
        let failed = BuildResult::new(BuildStatus::PermanentFailure, "status: Built");
        let built = BuildResult::new(BuildStatus::Built, "status: PermanentFailure");
        let path: StorePath = "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo"
            .parse()
            .expect("a path");
        let keyed = |result: &BuildResult| KeyedBuildResult {
            path: DerivedPath::Opaque(path.clone()),
            result: result.clone(),
        };
        let reply = Reply::BuildPathsWithResults(vec![keyed(&built), keyed(&failed)]);
        assert_eq!(failed_builds(&reply), ["PermanentFailure"]);
        assert!(failed_builds(&Reply::BuildDerivation(built)).is_empty());
        assert_eq!(
            failed_builds(&Reply::BuildDerivation(failed)),
            ["PermanentFailure"]
        );
    }

    #[test]
    fn escapes_are_taken_out() {
        assert_eq!(plain("path '\u{1b}[35;1mx\u{1b}[0m'"), "path 'x'");
    }
}
