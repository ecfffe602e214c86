//! The three checks of a serve transcript: the codec, the core as client and
//! the core as server.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use nixwire_core::conn::{Connection, RequestId};
use nixwire_core::serve::messages::{
    AddToStoreNar, CLIENT_MAGIC, ExportTrailer, NarDone, SERVER_MAGIC,
};
use nixwire_core::serve::{
    Client, ClientConfig, ClientEvent, Command, ImportPaths, Reply, ReplyPartial, Request,
    RequestPartial, Server, ServerConfig, ServerEvent,
};
use nixwire_core::wire::{Cx, Decoded, Protocol, Reader, Serve, Version, Wire, encode_u64};

use crate::cursor::{Cursor, same};
use crate::link::{Link, drive, logs_to_compare};
use crate::transcript::{From, Transcript};

/// A request as recorded: the request and its NAR bodies (one for
/// `AddToStoreNar`, one per path for `ImportPaths`).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The request, with `ImportPaths`' trailers filled in.
    pub request: Request,
    /// Its NARs.
    pub bodies: Vec<Vec<u8>>,
}

/// A reply as recorded; `nar` holds a `DumpStorePath` reply's NAR.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedReply {
    /// The reply.
    pub reply: Reply,
    /// The NAR of a `DumpStorePath` reply, else empty.
    pub nar: Vec<u8>,
}

/// What the codec made of both streams.
#[derive(Debug, Clone, Default)]
pub struct CodecWalk {
    /// What the client announced.
    pub client_version: Option<Version>,
    /// What the server announced.
    pub server_version: Option<Version>,
    /// The requests, in order.
    pub requests: Vec<RecordedRequest>,
    /// The replies that decoded, in order.
    pub replies: Vec<RecordedReply>,
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
}

/// A peer's magic and serve version.
fn hello(c: &mut Cursor<'_>, magic: u64, who: &str) -> Result<Version, String> {
    let m = c.u64("magic")?;
    if m != magic {
        return Err(format!("{who} magic {m:#x}, expected {magic:#x}"));
    }
    let v = c.u64("version")?;
    match Version::from_wire(v) {
        Some(version) if version.major == Serve::MAJOR => Ok(version),
        _ => Err(format!(
            "{who} version {v:#x}, not a serve protocol version (major {})",
            Serve::MAJOR
        )),
    }
}

/// A whole value of `T`'s own layout, from a fresh partial state.
fn whole<T: Wire<Serve>>(cx: &Cx<Serve>) -> impl FnOnce(&mut Reader<'_>) -> Decoded<T> + '_ {
    move |r| T::decode(cx, &mut T::Partial::default(), r)
}

/// Walks both streams with the codec alone.
pub fn codec_walk(t: &Transcript) -> CodecWalk {
    let client_bytes = t.stream(From::Client);
    let server_bytes = t.stream(From::Server);
    let mut walk = CodecWalk::default();
    if let Err(e) = walk_client(&client_bytes, &server_bytes, &mut walk) {
        walk.client_error = Some(e);
    }
    if let Err(e) = walk_server(&server_bytes, &mut walk) {
        walk.server_error = Some(e);
    }
    walk
}

fn walk_client(client: &[u8], server: &[u8], walk: &mut CodecWalk) -> Result<(), String> {
    let mut c = Cursor::new(client);
    walk.client_version = Some(hello(&mut c, CLIENT_MAGIC, "client")?);
    // The client's requests are encoded at the negotiated version, which needs
    // the server's announcement too.
    let mut s = Cursor::new(server);
    walk.server_version = Some(hello(&mut s, SERVER_MAGIC, "server")?);
    let cx = Cx::<Serve>::new(walk.version().ok_or("no version")?);
    while !c.is_done() {
        let n = walk.requests.len();
        let mut request = c.take(&format!("request {n}"), |r| {
            Request::decode(&cx, &mut RequestPartial::default(), r)
        })?;
        let mut bodies = Vec::new();
        match &mut request {
            Request::AddToStoreNar(AddToStoreNar { nar_size, .. }) => {
                let size = usize::try_from(*nar_size).map_err(|e| e.to_string())?;
                let body = c.rest().get(..size).ok_or_else(|| {
                    format!("request {n}: the stream ends inside the NAR of {size} bytes")
                })?;
                bodies.push(body.to_vec());
                c.pos += size;
            }
            Request::ImportPaths(ImportPaths { paths }) => loop {
                match c.u64("ImportPaths flag")? {
                    0 => break,
                    1 => {
                        bodies.push(c.nar(&format!("request {n}: NAR"))?);
                        let trailer = c.take("export trailer", whole::<ExportTrailer>(&cx))?;
                        paths.push(trailer);
                    }
                    other => return Err(format!("ImportPaths flag {other}")),
                }
            },
            _ => {}
        }
        walk.requests.push(RecordedRequest { request, bodies });
    }
    Ok(())
}

fn walk_server(server: &[u8], walk: &mut CodecWalk) -> Result<(), String> {
    let mut s = Cursor::new(server);
    hello(&mut s, SERVER_MAGIC, "server")?;
    let cx = Cx::<Serve>::new(walk.version().ok_or("no version")?);
    for (n, r) in walk.requests.iter().enumerate() {
        if s.is_done() {
            return Err(format!(
                "the server stream ends before the reply to request {n} ({})",
                r.request.command()
            ));
        }
        let command = r.request.command();
        let what = format!("the reply to request {n} ({command})");
        let recorded = if command == Command::DumpStorePath {
            let nar = s.nar(&what)?;
            let reply = Reply::DumpStorePath(NarDone {
                nar_size: nar.len() as u64,
            });
            RecordedReply { reply, nar }
        } else {
            let reply = s.take(&what, |r| {
                Reply::decode(command, &cx, &mut ReplyPartial::default(), r)
            })?;
            RecordedReply {
                reply,
                nar: Vec::new(),
            }
        };
        walk.replies.push(recorded);
    }
    if !s.is_done() {
        return Err(format!(
            "{} bytes after the last reply",
            s.bytes.len() - s.pos
        ));
    }
    Ok(())
}

/// Re-encodes what the codec decoded: the bytes each side would send.
pub fn reencode(walk: &CodecWalk) -> (Vec<u8>, Vec<u8>) {
    let (Some(cv), Some(sv), Some(v)) = (walk.client_version, walk.server_version, walk.version())
    else {
        return (Vec::new(), Vec::new());
    };
    let cx = Cx::<Serve>::new(v);
    let mut client = Vec::new();
    encode_u64(CLIENT_MAGIC, &mut client);
    encode_u64(cv.to_wire(), &mut client);
    for r in &walk.requests {
        r.request.encode(&cx, &mut client);
        match &r.request {
            Request::ImportPaths(ImportPaths { paths }) => {
                for (trailer, nar) in paths.iter().zip(&r.bodies) {
                    encode_u64(1, &mut client);
                    client.extend_from_slice(nar);
                    trailer.encode(&cx, &mut client);
                }
                encode_u64(0, &mut client);
            }
            _ => r.bodies.iter().for_each(|b| client.extend_from_slice(b)),
        }
    }
    let mut server = Vec::new();
    encode_u64(SERVER_MAGIC, &mut server);
    encode_u64(sv.to_wire(), &mut server);
    for r in &walk.replies {
        r.reply.encode(&cx, &mut server);
        server.extend_from_slice(&r.nar);
    }
    (client, server)
}

/// How a client run ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Failing build statuses the replies carried, with their messages.
    pub build_failures: Vec<String>,
    /// The error that ended the connection, if one did.
    pub error: Option<String>,
}

/// What the recorded session shows about how it ended, read from the
/// recorded client's exit code and its own account of the failure (its
/// stderr): the oracle the core's outcome is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The client succeeded, or this is not the run's last connection.
    Clean,
    /// A build failed remotely and the server reported it over the wire.
    BuildFailure,
    /// The client died on what the server sent ("failed due to signal":
    /// Nix's build hook crashed reading the reply).
    ProtocolError,
    /// The client refused on its own after a clean session (a legacy
    /// `ssh://` store asked to build as the primary store).
    LocalRefusal,
}

/// Reads the oracle off a transcript. A failure the suite does not recognise
/// is an error, so that a new kind of failure is looked at, never skipped.
pub fn expected(t: &Transcript) -> Result<Expected, String> {
    if t.client_exit == 0 || !t.last_connection {
        return Ok(Expected::Clean);
    }
    let said = |s: &str| t.client_stderr.contains(s);
    if said("failed due to signal")
        || said("protocol mismatch")
        || said("unsupported 'nix-store --serve' protocol")
    {
        Ok(Expected::ProtocolError)
    } else if said("failed with exit code") {
        Ok(Expected::BuildFailure)
    } else if said("nable to build with a primary store that isn't a local store") {
        // "Unable" in newer Nix, "unable" in 2.8.
        Ok(Expected::LocalRefusal)
    } else {
        Err(format!(
            "the recorded client failed (exit {}) in a way the suite does not recognise: {:?}",
            t.client_exit,
            t.client_stderr.lines().last().unwrap_or_default()
        ))
    }
}

/// What the core's client did when replaying a transcript.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// The bytes it sent.
    pub sent: Vec<u8>,
    /// The replies it surfaced, in order, with the NAR chunks of each.
    pub replies: Vec<RecordedReply>,
    /// The log bytes it surfaced.
    pub logs: Vec<u8>,
    /// How it ended.
    pub outcome: Outcome,
}

/// Replays the recorded server against the core's client, asking for the
/// requests the codec found in the recorded client stream, the bytes
/// travelling as `link` says.
pub fn run_client(
    t: &Transcript,
    path: &Path,
    walk: &CodecWalk,
    link: &Link,
) -> Result<ClientRun, String> {
    let now = Instant::now();
    let version = walk.client_version.ok_or("no client version")?;
    let mut config = ClientConfig::default();
    config.version = version;
    config.handshake_timeout = None;
    let mut client = Client::new(config, now);
    let mut ids = Vec::new();
    for r in &walk.requests {
        let id = client
            .request(now, r.request.clone())
            .map_err(|e| format!("request: {e}"))?;
        ids.push(id);
    }
    let mut run = ClientRun {
        sent: Vec::new(),
        replies: Vec::new(),
        logs: Vec::new(),
        outcome: Outcome::default(),
    };
    let mut nar = Vec::new();
    // The run loop's step 2: handle its events.
    let wanted = walk.requests.len();
    let mut handle = |client: &mut Client, event: ClientEvent| -> Result<ControlFlow<()>, String> {
        match event {
            ClientEvent::BodyWanted { id, .. } => {
                let index = ids.iter().position(|i| *i == id).ok_or("unknown id")?;
                for body in &walk.requests[index].bodies {
                    let taken = client
                        .offer_body(Instant::now(), id, Bytes::copy_from_slice(body))
                        .map_err(|e| e.to_string())?;
                    if taken != body.len() {
                        return Err(format!(
                            "client role: request {id} took {taken} of its {} body bytes",
                            body.len()
                        ));
                    }
                }
            }
            ClientEvent::NarChunk { data, .. } => nar.extend_from_slice(&data),
            ClientEvent::Reply { reply, .. } => {
                let nar = std::mem::take(&mut nar);
                run.replies.push(RecordedReply { reply, nar });
            }
            ClientEvent::Log(log) => run.logs.extend_from_slice(&log.text),
            ClientEvent::Closed | ClientEvent::Broken(_) => return Ok(ControlFlow::Break(())),
            _ => {}
        }
        Ok(if run.replies.len() == wanted {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    };
    let driven = drive(link, t, path, client, &mut handle)?;
    run.sent = driven.sent;
    run.outcome = Outcome {
        build_failures: run.replies.iter().filter_map(build_failure).collect(),
        error: driven.error,
    };
    Ok(run)
}

fn build_failure(r: &RecordedReply) -> Option<String> {
    match &r.reply {
        Reply::BuildDerivation(b) if !b.status.is_success() => {
            Some(format!("{:?}: {}", b.status, b.error_msg))
        }
        Reply::BuildPaths(b) if b.status != 0 => {
            Some(format!("status {}: {}", b.status, b.error_msg))
        }
        _ => None,
    }
}

/// What the core's server did with the recorded client bytes.
#[derive(Debug, Clone)]
pub struct ServerRun {
    /// The requests it yielded, with their bodies.
    pub requests: Vec<RecordedRequest>,
    /// The bytes it sent: its handshake and its encoding of the replies.
    pub sent: Vec<u8>,
}

/// Feeds the recorded client bytes to the core's server, then answers each
/// request with the recorded reply.
pub fn run_server(t: &Transcript, walk: &CodecWalk) -> Result<ServerRun, String> {
    let now = Instant::now();
    let version = walk.server_version.ok_or("no server version")?;
    let mut config = ServerConfig::default();
    config.version = version;
    let mut server = Server::new(config, now);
    let mut requests: Vec<(RequestId, RecordedRequest)> = Vec::new();
    let mut current = Vec::new();
    let mut sent = Vec::new();
    let mut drain = |server: &mut Server, requests: &mut Vec<(RequestId, RecordedRequest)>| {
        while let Some(bytes) = server.poll_transmit() {
            sent.extend_from_slice(&bytes);
        }
        while let Some(event) = server.poll_event() {
            let last = requests.last_mut();
            match (event, last) {
                (ServerEvent::Request { id, request }, _) => requests.push((
                    id,
                    RecordedRequest {
                        request,
                        bodies: Vec::new(),
                    },
                )),
                (ServerEvent::NarChunk { data, .. }, _) => current.extend_from_slice(&data),
                (ServerEvent::NarEnd { .. }, Some((_, r))) => {
                    r.bodies.push(std::mem::take(&mut current));
                }
                (ServerEvent::ImportedPath { trailer, .. }, Some((_, r))) => {
                    if let Request::ImportPaths(m) = &mut r.request {
                        m.paths.push(trailer);
                    }
                }
                _ => {}
            }
        }
    };
    for chunk in t.chunks.iter().filter(|c| c.from == From::Client) {
        server
            .handle_input(now, Bytes::copy_from_slice(&chunk.data))
            .map_err(|e| format!("server: {e}"))?;
        drain(&mut server, &mut requests);
    }
    server.handle_eof(now).map_err(|e| format!("server: {e}"))?;
    drain(&mut server, &mut requests);
    for ((id, _), reply) in requests.iter().zip(&walk.replies) {
        if reply.reply.command() == Command::DumpStorePath {
            let taken = server
                .send_nar(*id, Bytes::copy_from_slice(&reply.nar))
                .map_err(|e| format!("server reply {id}: {e}"))?;
            if taken != reply.nar.len() {
                return Err(format!(
                    "server reply {id}: the server took {taken} of the NAR's {} bytes",
                    reply.nar.len()
                ));
            }
        } else {
            server
                .reply(*id, &reply.reply)
                .map_err(|e| format!("server reply {id}: {e}"))?;
        }
    }
    drain(&mut server, &mut requests);
    Ok(ServerRun {
        requests: requests.into_iter().map(|(_, r)| r).collect(),
        sent,
    })
}

/// Compares how the core's client ended with how the recorded session did.
fn judge(expected: Expected, run: &ClientRun, walk: &CodecWalk) -> Result<String, String> {
    let Outcome {
        build_failures,
        error,
    } = &run.outcome;
    let failures = build_failures.join("; ");
    match (expected, error) {
        (Expected::Clean | Expected::LocalRefusal, None) => {
            if !build_failures.is_empty() {
                return Err(format!(
                    "the recorded session shows no failed build, but the core reports one: {failures}"
                ));
            }
            if run.replies.len() != walk.replies.len() {
                return Err("client role: not every request got its reply".into());
            }
            Ok(if expected == Expected::Clean {
                "completed".into()
            } else {
                "completed; the recorded client then refused locally, as recorded".into()
            })
        }
        (Expected::Clean | Expected::LocalRefusal, Some(e)) => Err(format!("client role: {e}")),
        (Expected::BuildFailure, _) if build_failures.is_empty() => Err(format!(
            "the recorded build failed, but the core reports no failed build{}",
            error
                .as_ref()
                .map(|e| format!(" (it failed with: {e})"))
                .unwrap_or_default()
        )),
        (Expected::BuildFailure, None) => Ok(format!("build failed as recorded ({failures})")),
        // The failure was delivered, and then the server sent what this
        // version must not (a 2.8 server's builtOutputs to a 2.5 client),
        // which the codec must see too.
        (Expected::BuildFailure, Some(e)) if walk.server_error.is_some() => {
            Ok(format!("build failed as recorded ({failures}); then: {e}"))
        }
        (Expected::BuildFailure, Some(e)) => Err(format!(
            "client role: {e}, where the codec decoded every reply"
        )),
        (Expected::ProtocolError, None) => Err(
            "the recorded client died on the server's bytes, but the core completed cleanly".into(),
        ),
        (Expected::ProtocolError, Some(e)) if walk.server_error.is_some() => {
            Ok(format!("failed on the same bytes as recorded: {e}"))
        }
        (Expected::ProtocolError, Some(e)) => Err(format!(
            "client role failed ({e}) where the codec decoded every reply"
        )),
    }
}

/// Runs every check on one serve transcript. `Ok` carries a one-line summary
/// of what was checked.
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
    let expect_failure = matches!(expected, Expected::BuildFailure | Expected::ProtocolError);

    // 1. The codec.
    let walk = codec_walk(t);
    if let Some(e) = &walk.client_error {
        return Err(format!("codec, client stream: {e}"));
    }
    let (client_again, server_again) = reencode(&walk);
    same(
        "codec, client stream re-encoded",
        &client_again,
        &client_bytes,
    )?;
    match &walk.server_error {
        None => same(
            "codec, server stream re-encoded",
            &server_again,
            &server_bytes,
        )?,
        Some(e) if !expect_failure => return Err(format!("codec, server stream: {e}")),
        // The recorded client failed on these bytes too: what decoded must
        // still re-encode exactly.
        Some(_) => same(
            "codec, server stream re-encoded (up to the failure)",
            &server_again,
            &server_bytes[..server_again.len().min(server_bytes.len())],
        )?,
    }

    // 2. The core as client.
    let run = run_client(t, path, &walk, link)?;
    same("client role, bytes sent", &run.sent, &client_bytes)?;
    same(
        "client role, logs",
        logs_to_compare(link, &run.logs, &stderr_bytes),
        &stderr_bytes,
    )?;
    let n = run.replies.len().min(walk.replies.len());
    if run.replies[..n] != walk.replies[..n] {
        return Err("client role: a reply differs from the codec's decoding".into());
    }
    let outcome = judge(expected, &run, &walk)?;

    // 3. The core as server.
    let srv = run_server(t, &walk)?;
    if srv.requests != walk.requests {
        return Err("server role: the requests differ from the codec's decoding".into());
    }
    if walk.server_error.is_none() {
        same("server role, bytes sent", &srv.sent, &server_bytes)?;
    } else {
        same(
            "server role, bytes sent (up to the failure)",
            &srv.sent,
            &server_bytes[..srv.sent.len().min(server_bytes.len())],
        )?;
    }
    Ok(format!(
        "{} requests at {}: {outcome}",
        walk.requests.len(),
        walk.version().map(|v| v.to_string()).unwrap_or_default()
    ))
}
