//! `nixwire decode TRANSCRIPT [--json]`: prints a captured session (the
//! conformance format, `conformance/captures/README.md`) as an annotated
//! conversation, decoded by the core's own state machines: the client's
//! bytes go into a server of the session's protocol, the server's bytes
//! (and its stderr) into a client that asks for the requests the client's
//! bytes hold.
//!
//! `nixwire decode --live -- COMMAND...` runs the recording proxy of
//! `nixwire record` and applies the same decoding to the session as it
//! happens (module `live`): [`decode_lines`] is the one entry point both
//! use.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use clap::Args;
use nixwire_conformance::transcript::{self, From, Transcript};
use nixwire_conformance::{serve as cserve, worker as cworker};
use nixwire_core::conn::{BodyKind, Connection, LogSource, RequestId};
use nixwire_core::store::{OutputName, Realisation};
use nixwire_core::wire::{Cx, Features, Limits, Reader, Serve, Version};
use nixwire_core::{serve, worker};

mod live;

/// Arguments of `nixwire decode`.
#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// A transcript file (`conn<N>.json` of a captured session).
    #[arg(required_unless_present = "live", conflicts_with = "live")]
    transcript: Option<PathBuf>,
    /// One JSON object per line: direction, offset, kind and text.
    #[arg(long)]
    json: bool,
    /// Run COMMAND (a remote program, as `nixwire record` does), passing
    /// its session through, and decode it as it happens into the log.
    #[arg(long, requires = "command")]
    live: bool,
    /// With --live: where the decoded conversation goes (stdout and stderr
    /// belong to the Nix client). Default: `nixwire-live-<start time in
    /// ns>-<pid>.log` in the current directory.
    #[arg(long, requires = "live")]
    log: Option<PathBuf>,
    /// With --live: also save the transcript to this file.
    #[arg(long, requires = "live")]
    out: Option<PathBuf>,
    /// With --live: the remote program and its arguments.
    #[arg(last = true, num_args = 1.., requires = "live")]
    command: Vec<String>,
}

/// One printed line.
#[derive(Debug, Clone)]
struct Line {
    /// The transcript chunk during which it was decoded (orders the lines).
    chunk: usize,
    /// `C>`, `S>` or `S!`.
    dir: &'static str,
    /// The byte offset in that direction's stream where the message starts
    /// (a stderr line: where its read starts).
    offset: usize,
    /// `hello`, `request`, `body`, `reply`, `log`, `activity`, `error`, ...
    kind: &'static str,
    /// The decoded message.
    text: String,
}

/// What one pass (one state machine) printed, and whether it failed.
#[derive(Default)]
struct Pass {
    lines: Vec<Line>,
    failed: bool,
    /// Protocol bytes of this direction to pass over rather than feed: what
    /// an event explained as a known deviation of the peer (see
    /// [`built_outputs_quirk`]).
    skip: usize,
}

/// Byte offsets of each chunk in its own stream.
fn offsets(t: &Transcript) -> Vec<usize> {
    let mut pos = [0usize; 3];
    t.chunks
        .iter()
        .map(|c| {
            let i = c.from as usize;
            let at = pos[i];
            pos[i] += c.data.len();
            at
        })
        .collect()
}

fn dir_of(from: From) -> &'static str {
    match from {
        From::Client => "C>",
        From::Server => "S>",
        From::Stderr => "S!",
    }
}

impl Pass {
    fn push(
        &mut self,
        chunk: usize,
        dir: &'static str,
        offset: usize,
        kind: &'static str,
        text: String,
    ) {
        self.lines.push(Line {
            chunk,
            dir,
            offset,
            kind,
            text,
        });
    }

    /// A state machine refused the byte `index` of the chunk `chunk`, in
    /// the message that started at `message` (an offset of that direction):
    /// the error, then the rest of that direction from that message on, as
    /// a dump.
    fn fail(
        &mut self,
        t: &Transcript,
        offs: &[usize],
        (chunk, index): (usize, usize),
        message: usize,
        error: String,
    ) {
        let from = t.chunks[chunk].from;
        let start = offs[chunk];
        let len = t.chunks[chunk].data.len();
        let at = start + index;
        let stream = t.stream(from);
        let text = format!(
            "does not decode: the message starting at byte offset {message} fails at byte offset \
             {at} of this direction ({index} bytes into the chunk of {len} bytes starting at \
             {start}): {error}"
        );
        let rest = &stream[message.min(stream.len())..];
        self.push(chunk, dir_of(from), at, "error", text);
        self.push(
            chunk,
            dir_of(from),
            message,
            "dump",
            format!(
                "the rest of this direction from offset {message} ({} bytes{}):\n{}",
                rest.len(),
                if rest.len() > 256 {
                    ", the first 256 shown"
                } else {
                    ""
                },
                hexdump(&rest[..rest.len().min(256)], message)
            ),
        );
        self.failed = true;
    }
}

/// A hex and ASCII dump, 16 bytes a row, offsets from `base`.
fn hexdump(bytes: &[u8], base: usize) -> String {
    let mut out = Vec::new();
    for (i, row) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = row
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push(format!(
            "  {:08x}  {:<47}  |{ascii}|",
            base + i * 16,
            hex.join(" ")
        ));
    }
    out.join("\n")
}

/// Shortens a `Debug` rendering: strings over 80 characters and lists over
/// 8 items keep their start and say how much was left out.
fn short(debug: &str) -> String {
    const MAX_STR: usize = 80;
    const MAX_ITEMS: usize = 8;
    let chars: Vec<char> = debug.chars().collect();
    let mut out = String::new();
    // Per open list: how many items it has had, and whether its output is
    // being skipped.
    let mut lists: Vec<(usize, bool)> = Vec::new();
    // Depth of other brackets inside the innermost list.
    let mut depth: Vec<usize> = Vec::new();
    let mut i = 0;
    let skipping = |lists: &Vec<(usize, bool)>| lists.iter().any(|l| l.1);
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            // A string literal, with its escapes.
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            let end = (i + 1).min(chars.len());
            if !skipping(&lists) {
                let inner = &chars[start + 1..end.saturating_sub(1).max(start + 1)];
                if inner.len() > MAX_STR {
                    let head: String = inner[..MAX_STR].iter().collect();
                    out.push_str(&format!("\"{head}…\" ({} chars)", inner.len()));
                } else {
                    out.extend(&chars[start..end]);
                }
            }
            i = end;
            continue;
        }
        match c {
            '[' => {
                if !skipping(&lists) {
                    out.push(c);
                }
                lists.push((1, false));
                depth.push(0);
            }
            ']' if !lists.is_empty() => {
                let (items, skipped) = lists.pop().unwrap_or_default();
                depth.pop();
                if skipped {
                    out.push_str(&format!(" … ({items} items)"));
                }
                if !skipping(&lists) {
                    out.push(c);
                }
            }
            '(' | '{' => {
                if let Some(d) = depth.last_mut() {
                    *d += 1;
                }
                if !skipping(&lists) {
                    out.push(c);
                }
            }
            ')' | '}' => {
                if let Some(d) = depth.last_mut() {
                    *d = d.saturating_sub(1);
                }
                if !skipping(&lists) {
                    out.push(c);
                }
            }
            ',' if depth.last() == Some(&0) => {
                if let Some(l) = lists.last_mut() {
                    l.0 += 1;
                    if l.0 > MAX_ITEMS {
                        // Keep the first items; skip the rest, this comma too.
                        l.1 = true;
                    }
                }
                if !skipping(&lists) {
                    out.push(c);
                }
            }
            _ => {
                if !skipping(&lists) {
                    out.push(c);
                }
            }
        }
        i += 1;
    }
    out
}

/// Runs `nixwire decode`: 0 when every byte decoded, 1 when some did not
/// (or the transcript could not be read).
pub(crate) fn run(args: DecodeArgs) -> ExitCode {
    if !args.live && !args.command.is_empty() {
        say!("nixwire: decode: a command after `--` needs --live");
        return ExitCode::from(2);
    }
    let Some(path) = args.transcript.as_ref().filter(|_| !args.live) else {
        return live::run(args);
    };
    let t = match transcript::load(path) {
        Ok(t) => t,
        Err(e) => {
            say!("nixwire: decode: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (lines, failed) = match decode_lines(&t) {
        Ok(d) => d,
        Err(e) => {
            say!("nixwire: decode: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A closed stdout (`| head`) ends the printing, not the verdict.
    let mut out = std::io::stdout().lock();
    for l in &lines {
        if writeln!(out, "{}", render(l, args.json)).is_err() {
            break;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The line that opens a decoded session: what the transcript holds.
fn session_line(t: &Transcript) -> Line {
    Line {
        chunk: 0,
        dir: "--",
        offset: 0,
        kind: "session",
        text: format!(
            "{}: {} protocol, scenario {}, client Nix {}, server Nix {}, {} chunks ({} client, {} server, {} stderr bytes)",
            t.name,
            t.protocol,
            t.scenario,
            t.client,
            t.server,
            t.chunks.len(),
            t.stream(From::Client).len(),
            t.stream(From::Server).len(),
            t.stream(From::Stderr).len(),
        ),
    }
}

/// Decodes a whole transcript: its lines in print order (the session line
/// first, the verdict last), and whether some bytes did not decode. An
/// unknown protocol is an error.
fn decode_lines(t: &Transcript) -> Result<(Vec<Line>, bool), String> {
    let mut lines = vec![session_line(t)];
    let (server_pass, client_pass) = match t.protocol.as_str() {
        "serve" => decode_serve(t),
        "worker" => decode_worker(t),
        other => return Err(format!("unknown protocol {other:?}")),
    };
    let failed = server_pass.failed || client_pass.failed;
    // In time order: by chunk, the client's direction first within a chunk
    // (a chunk belongs to one direction, so only the handshake can tie).
    let mut decoded: Vec<(usize, usize, Line)> = Vec::new();
    for (pass, p) in [server_pass, client_pass].into_iter().enumerate() {
        decoded.extend(p.lines.into_iter().map(|l| (pass, 0, l)));
    }
    for (n, d) in decoded.iter_mut().enumerate() {
        d.1 = n;
    }
    decoded.sort_by_key(|(pass, n, l)| (l.chunk, *pass, *n));
    lines.extend(decoded.into_iter().map(|d| d.2));
    lines.push(Line {
        chunk: t.chunks.len(),
        dir: "--",
        offset: 0,
        kind: "end",
        text: if failed {
            "some bytes did not decode".into()
        } else {
            "every byte decoded".into()
        },
    });
    Ok((lines, failed))
}

/// One line as printed: text, or a JSON object with `--json`.
fn render(l: &Line, json: bool) -> String {
    if json {
        serde_json::json!({
            "direction": l.dir,
            "offset": l.offset,
            "kind": l.kind,
            "text": l.text,
        })
        .to_string()
    } else {
        format!("{} @{:<7} {:<8} {}", l.dir, l.offset, l.kind, l.text)
    }
}

/// A log as printed lines: the server's stderr (the serve protocol's build
/// logs) a line per line of text, a worker's log messages one each.
fn log_lines(log: &nixwire_core::conn::Log) -> Vec<(&'static str, String)> {
    let text = String::from_utf8_lossy(&log.text);
    let quoted = |s: &str| short(&format!("{s:?}"));
    match log.source {
        LogSource::Stderr => text
            .trim_end_matches('\n')
            .split('\n')
            .map(|line| ("S!", quoted(line)))
            .collect(),
        LogSource::Build { activity } => vec![(
            "S>",
            format!(
                "build log of activity {activity}: {}",
                quoted(text.trim_end_matches('\n'))
            ),
        )],
        LogSource::PostBuild { activity } => vec![(
            "S>",
            format!(
                "post-build log of activity {activity}: {}",
                quoted(text.trim_end_matches('\n'))
            ),
        )],
        _ => vec![("S>", quoted(text.trim_end_matches('\n')))],
    }
}

/// Which side's state machine a pass runs: a server decodes the client's
/// bytes, a client the server's bytes and stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

/// Feeds one direction of `t` into `conn`, as `role` reads it: protocol
/// bytes one at a time, so that each decoded message is placed at the
/// offset where it started, and stderr as it came. `on_event` writes each
/// event's lines at that offset, and returns the error of an event that
/// broke the connection. What decoded before a failing byte is still shown,
/// then the failure and the rest of the direction as a dump.
fn feed<C: Connection>(
    t: &Transcript,
    offs: &[usize],
    pass: &mut Pass,
    conn: &mut C,
    now: Instant,
    role: Role,
    mut on_event: impl FnMut(&mut C, C::Event, &mut Pass, usize, usize) -> Option<String>,
) {
    // Where the next message of each direction starts.
    let mut start = [0usize; 3];
    'chunks: for (n, chunk) in t.chunks.iter().enumerate() {
        let from = chunk.from;
        if (from == From::Client) != (role == Role::Server) {
            continue;
        }
        let s = from as usize;
        let protocol = from != From::Stderr;
        let pieces: Vec<&[u8]> = if protocol {
            chunk.data.chunks(1).collect()
        } else {
            vec![&chunk.data[..]]
        };
        for (i, piece) in pieces.into_iter().enumerate() {
            let end = offs[n] + i + piece.len();
            if protocol && pass.skip > 0 {
                pass.skip -= 1;
                if pass.skip == 0 {
                    start[s] = end;
                }
                continue;
            }
            let at = if protocol { start[s] } else { offs[n] };
            let before = pass.lines.len();
            let data = Bytes::copy_from_slice(piece);
            let refused = if protocol {
                conn.handle_input(now, data).err()
            } else {
                conn.handle_stderr(now, data);
                None
            };
            let mut broken = None;
            while let Some(event) = conn.poll_event() {
                if let Some(e) = on_event(conn, event, pass, n, at) {
                    broken.get_or_insert(e);
                }
            }
            while conn.poll_transmit().is_some() {}
            if pass.lines.len() > before {
                start[s] = end;
            }
            if let Some(e) = refused.map(|e| e.to_string()).or(broken) {
                pass.fail(t, offs, (n, i), start[s], e);
                break 'chunks;
            }
        }
    }
}

/// A build result's outputs, by name.
type BuiltOutputs = Vec<(OutputName, Realisation)>;

/// Nix 2.8's serve server writes a `BuildDerivation` reply's built outputs
/// to every client: its version check tests `minor(version >= 6)`, always
/// true, where `minor(version) >= 6` was meant (`nix-store.cc`,
/// `cmdBuildDerivation`, in 2.8.1). A client that agreed on a version
/// below 2.6 (Nix 2.3's, 2.5) then finds bytes its version does not have
/// after the reply; Nix 2.3 misreads them as the next reply and aborts.
///
/// The reply starts at `at` in `server` (the server's stream) and was
/// decoded at `both`, the agreed version. If the server announced 2.6 or
/// more and the reply decodes at the server's version too, and longer:
/// returns the reply's length at `both`, how many bytes more, and the built
/// outputs they hold. Only asked when the strict walk failed (`server` is
/// empty otherwise), since a later server (2.26, 2.34) sends no such bytes
/// and then the ones that follow are the next reply.
fn built_outputs_quirk(
    server: &[u8],
    at: usize,
    announced: Version,
    both: Version,
) -> Option<(usize, usize, BuiltOutputs)> {
    if both.minor >= 6 || announced.minor < 6 {
        return None;
    }
    let bytes = server.get(at..)?;
    let limits = Limits::default();
    let len_at = |version: Version| {
        let cx = Cx::<Serve>::new(version);
        let mut r = Reader::new(bytes, &limits);
        match serve::Reply::decode(
            serve::Command::BuildDerivation,
            &cx,
            &mut serve::ReplyPartial::default(),
            &mut r,
        ) {
            Ok(Some(reply)) => Some((r.position(), reply)),
            _ => None,
        }
    };
    let (short_len, _) = len_at(both)?;
    let (long_len, reply) = len_at(announced)?;
    let serve::Reply::BuildDerivation(result) = reply else {
        return None;
    };
    (long_len > short_len).then(|| (short_len, long_len - short_len, result.built_outputs))
}

/// The serve protocol: a core server decodes the client's bytes, a core
/// client the server's.
fn decode_serve(t: &Transcript) -> (Pass, Pass) {
    let now = Instant::now();
    let offs = offsets(t);
    let walk = cserve::codec_walk(t);

    // The client's direction.
    let mut sp = Pass::default();
    let mut config = serve::ServerConfig::default();
    if let Some(v) = walk.server_version {
        config.version = v;
    }
    let mut server = serve::Server::new(config, now);
    let mut nar_bytes = 0u64;
    feed(
        t,
        &offs,
        &mut sp,
        &mut server,
        now,
        Role::Server,
        |_, event, pass, n, at| {
            match event {
                serve::ServerEvent::Connected {
                    client_version,
                    version,
                } => pass.push(
                    n,
                    "C>",
                    at,
                    "hello",
                    format!("client announces serve {client_version}; both speak {version}"),
                ),
                serve::ServerEvent::Request { request, .. } => {
                    pass.push(n, "C>", at, "request", short(&format!("{request:?}")));
                }
                serve::ServerEvent::NarChunk { data, .. } => nar_bytes += data.len() as u64,
                serve::ServerEvent::NarEnd { .. } => {
                    pass.push(n, "C>", at, "body", format!("a NAR of {nar_bytes} bytes"));
                    nar_bytes = 0;
                }
                serve::ServerEvent::ImportedPath { trailer, .. } => {
                    pass.push(n, "C>", at, "body", short(&format!("{trailer:?}")));
                }
                serve::ServerEvent::BodyEnd { .. } => {}
                serve::ServerEvent::Closed => {
                    pass.push(n, "C>", at, "closed", "the client closed".into())
                }
                serve::ServerEvent::Broken(e) => pass.push(n, "C>", at, "broken", e.to_string()),
                other => pass.push(n, "C>", at, "event", short(&format!("{other:?}"))),
            }
            None
        },
    );

    // The server's direction.
    let mut cp = Pass::default();
    let mut config = serve::ClientConfig::default();
    if let Some(v) = walk.client_version {
        config.version = v;
    }
    config.handshake_timeout = None;
    let mut client = serve::Client::new(config, now);
    // What each side announced, for the builtOutputs quirk; only looked
    // for when the strict codec walk of the server's stream failed.
    let mut announced: Option<(Version, Version)> = None;
    let server_stream = if walk.server_error.is_some() {
        t.stream(From::Server)
    } else {
        Vec::new()
    };
    let mut ids: Vec<RequestId> = Vec::new();
    for r in &walk.requests {
        match client.request(now, r.request.clone()) {
            Ok(id) => ids.push(id),
            Err(e) => {
                cp.push(
                    0,
                    "S>",
                    0,
                    "error",
                    format!("cannot ask for {:?}: {e}", r.request.command()),
                );
                cp.failed = true;
                break;
            }
        }
    }
    let mut nar = 0u64;
    feed(
        t,
        &offs,
        &mut cp,
        &mut client,
        now,
        Role::Client,
        |conn, event, pass, n, at| {
            match event {
                serve::ClientEvent::Connected {
                    server_version,
                    version,
                } => {
                    announced = Some((server_version, version));
                    pass.push(
                        n,
                        "S>",
                        at,
                        "hello",
                        format!("server announces serve {server_version}; both speak {version}"),
                    )
                }
                serve::ClientEvent::BodyWanted { id, .. } => {
                    if let Some(i) = ids.iter().position(|x| *x == id) {
                        for body in &walk.requests[i].bodies {
                            let _ = conn.offer_body(now, id, Bytes::copy_from_slice(body));
                        }
                    }
                }
                serve::ClientEvent::NarChunk { data, .. } => nar += data.len() as u64,
                serve::ClientEvent::Reply { reply, .. } => {
                    let text = short(&format!("{reply:?}"));
                    let text = if nar > 0 {
                        format!("{text}, after a NAR of {nar} bytes")
                    } else {
                        text
                    };
                    nar = 0;
                    let built = matches!(reply, serve::Reply::BuildDerivation(_));
                    pass.push(n, "S>", at, "reply", text);
                    if let (true, Some((server, both))) = (built, announced)
                        && let Some((len, extra, outputs)) =
                            built_outputs_quirk(&server_stream, at, server, both)
                    {
                        pass.push(
                            n,
                            "S>",
                            at + len,
                            "quirk",
                            format!(
                                "{extra} more bytes: the built outputs of serve {server}, which serve \
                                 {both} has not (Nix 2.8's server sends them to every client; Nix 2.3 takes them for the next reply): {}",
                                short(&format!("{outputs:?}"))
                            ),
                        );
                        pass.skip = extra;
                    }
                }
                serve::ClientEvent::Failed { error, .. } => {
                    pass.push(n, "S>", at, "failed", error.to_string())
                }
                serve::ClientEvent::Log(log) => {
                    for (dir, text) in log_lines(&log) {
                        pass.push(n, dir, at, "log", text);
                    }
                }
                serve::ClientEvent::Closed => {
                    pass.push(n, "S>", at, "closed", "the server closed".into())
                }
                serve::ClientEvent::Broken(e) => {
                    return Some(e.to_string());
                }
                other => pass.push(n, "S>", at, "event", short(&format!("{other:?}"))),
            }
            None
        },
    );
    if let Some(e) = walk.client_error.filter(|_| !sp.failed) {
        sp.push(t.chunks.len(), "C>", 0, "error", format!("the codec: {e}"));
        sp.failed = true;
    }
    (sp, cp)
}

/// The worker protocol: the same, with the feature exchange and STDERR
/// messages.
fn decode_worker(t: &Transcript) -> (Pass, Pass) {
    let now = Instant::now();
    let offs = offsets(t);
    let walk = cworker::codec_walk(t);

    // The client's direction.
    let mut sp = Pass::default();
    let mut config = worker::ServerConfig::default();
    if let Some(v) = walk.server_version {
        config.version = v;
    }
    config.features = Features::new(walk.server_features.iter().cloned());
    config.info = walk.info.clone().unwrap_or_default();
    let mut server = worker::Server::new(config, now);
    let mut body_bytes = 0u64;
    feed(
        t,
        &offs,
        &mut sp,
        &mut server,
        now,
        Role::Server,
        |_, event, pass, n, at| {
            match event {
        worker::ServerEvent::Connected {
            client_version,
            version,
            features,
        } => pass.push(
            n,
            "C>",
            at,
            "hello",
            format!(
                "client announces worker {client_version} (features {:?}); both speak {version} with features {features:?}",
                walk.client_features
            ),
        ),
        worker::ServerEvent::Request { request, .. } => {
            pass.push(n, "C>", at, "request", short(&format!("{request:?}")));
        }
        worker::ServerEvent::BodyChunk { data, .. } => body_bytes += data.len() as u64,
        worker::ServerEvent::BodyEnd { .. } => {
            pass.push(n, "C>", at, "body", format!("a body of {body_bytes} bytes"));
            body_bytes = 0;
        }
        worker::ServerEvent::Closed => pass.push(n, "C>", at, "closed", "the client closed".into()),
        worker::ServerEvent::Broken(e) => pass.push(n, "C>", at, "broken", e.to_string()),
        other => pass.push(n, "C>", at, "event", short(&format!("{other:?}"))),
    }
            None
        },
    );

    // The server's direction.
    let mut cp = Pass::default();
    let mut config = worker::ClientConfig::default();
    if let Some(v) = walk.client_version {
        config.version = v;
    }
    config.features = Features::new(walk.client_features.iter().cloned());
    config.options = walk.options.clone().unwrap_or_default();
    config.handshake_timeout = None;
    let mut client = worker::Client::new(config, now);
    let mut ids: Vec<RequestId> = Vec::new();
    for r in &walk.requests {
        match client.request(now, r.request.clone()) {
            Ok(id) => ids.push(id),
            Err(e) => {
                cp.push(
                    0,
                    "S>",
                    0,
                    "error",
                    format!("cannot ask for {:?}: {e}", r.request.command()),
                );
                cp.failed = true;
                break;
            }
        }
    }
    let mut next_piece = vec![0usize; ids.len()];
    let mut nar = 0u64;
    feed(
        t,
        &offs,
        &mut cp,
        &mut client,
        now,
        Role::Client,
        |conn, event, pass, n, at| {
            match event {
        worker::ClientEvent::Connected {
            server_version,
            version,
            features,
            info,
        } => pass.push(
            n,
            "S>",
            at,
            "hello",
            format!(
                "server announces worker {server_version} (features {:?}); both speak {version} with features {features:?}; {info:?}",
                walk.server_features
            ),
        ),
        worker::ClientEvent::BodyWanted { id, .. } => {
            // A body nobody asked for breaks nothing here.
            let i = ids.iter().position(|x| *x == id)?;
            let body = &walk.requests[i].body;
            let count = match body.kind {
                BodyKind::Pulled => 1,
                _ => body.pieces.len(),
            };
            let end = (next_piece[i] + count).min(body.pieces.len());
            for piece in &body.pieces[next_piece[i]..end] {
                let _ = conn.offer_body(now, id, Bytes::copy_from_slice(piece));
            }
            next_piece[i] = end;
            let wanted = conn.body_wanted().is_some_and(|(w, _)| w == id);
            if end == body.pieces.len() && body.kind == BodyKind::Framed && wanted {
                let _ = conn.finish_body(now, id);
            }
        }
        worker::ClientEvent::BodyStopped { .. } => {}
        worker::ClientEvent::NarChunk { data, .. } => nar += data.len() as u64,
        worker::ClientEvent::Written { data, .. } => {
            pass.push(n, "S>", at, "write", short(&format!("{data:?}")));
        }
        worker::ClientEvent::Log(log) => {
            for (dir, text) in log_lines(&log) {
                pass.push(n, dir, at, "log", text);
            }
        }
        worker::ClientEvent::Activity { message, .. } => {
            pass.push(n, "S>", at, "activity", short(&format!("{message:?}")));
        }
        worker::ClientEvent::Reply { reply, .. } => {
            let text = short(&format!("{reply:?}"));
            let text = if nar > 0 {
                format!("{text}, after a NAR of {nar} bytes")
            } else {
                text
            };
            nar = 0;
            pass.push(n, "S>", at, "reply", text);
        }
        worker::ClientEvent::Failed { error, .. } => pass.push(n, "S>", at, "failed", error.to_string()),
        worker::ClientEvent::Closed => pass.push(n, "S>", at, "closed", "the server closed".into()),
        worker::ClientEvent::Broken(e) => {
                return Some(e.to_string());
            }
        other => pass.push(n, "S>", at, "event", short(&format!("{other:?}"))),
    }
            None
        },
    );
    if let Some(e) = walk.client_error.filter(|_| !sp.failed) {
        sp.push(t.chunks.len(), "C>", 0, "error", format!("the codec: {e}"));
        sp.failed = true;
    }
    (sp, cp)
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn short_keeps_small_values_and_cuts_long_ones() {
        assert_eq!(
            short("A { x: [1, 2], s: \"ab\" }"),
            "A { x: [1, 2], s: \"ab\" }"
        );
        let long = format!("{:?}", (0..100).collect::<Vec<_>>());
        assert_eq!(short(&long), "[0, 1, 2, 3, 4, 5, 6, 7 … (100 items)]");
        let s = format!("{:?}", "x".repeat(200));
        assert!(short(&s).ends_with("…\" (200 chars)"), "{}", short(&s));
        // Eight items are printed whole, nine are not.
        let eight = format!("{:?}", (0..8).collect::<Vec<_>>());
        assert_eq!(short(&eight), eight);
        let nine = format!("{:?}", (0..9).collect::<Vec<_>>());
        assert_eq!(short(&nine), "[0, 1, 2, 3, 4, 5, 6, 7 … (9 items)]");
        // Items with their own commas and brackets, in tuples and strings,
        // count once each; an inner list is cut inside its own item.
        let pairs: Vec<(u8, String)> = (0..10).map(|i| (i, format!("a,[{i}"))).collect();
        let cut = short(&format!("{pairs:?}"));
        assert!(cut.starts_with("[(0, \"a,[0\"), (1, \"a,[1\")"), "{cut}");
        assert!(cut.ends_with("(7, \"a,[7\") … (10 items)]"), "{cut}");
        let nested = format!("{:?}", vec![(0..20).collect::<Vec<_>>(); 2]);
        assert_eq!(
            short(&nested),
            "[[0, 1, 2, 3, 4, 5, 6, 7 … (20 items)], [0, 1, 2, 3, 4, 5, 6, 7 … (20 items)]]"
        );
    }
}
