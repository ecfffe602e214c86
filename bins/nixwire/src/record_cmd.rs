//! `nixwire record [--out FILE | --dir DIR] -- COMMAND [ARGS...]`: a
//! recording proxy for a Nix remote program.
//!
//! It runs COMMAND (`nix-store --serve --write`, `nix-daemon --stdio`, as a
//! store URI's `remote-program` makes Nix start it, Nix's own arguments
//! appended), passes its stdin, stdout and stderr through unchanged, and
//! writes every byte of each, with timings, into a transcript of the
//! conformance format (`/work/shared/captures/README.md`,
//! `conformance/src/transcript.rs`), which `nixwire decode` and
//! `nixwire-conformance` read.
//!
//! How the pieces fit:
//! - three pump threads, one per stream, each reading what comes and
//!   handing a copy to the sink *before* writing it on (so a reply is never
//!   recorded ahead of the request that caused it), then forwarding it at
//!   once (no added latency); one thread per stream means a child flooding
//!   stderr while its stdout is idle never waits for the recorder to read
//!   the other pipe (NixOS/nix#16437);
//! - a bounded channel to one sink thread, which merges adjacent reads of
//!   the same stream and appends them to the transcript file as it goes:
//!   what is held is the channel (`CHANNEL` reads of at most `READ` bytes)
//!   and one pending chunk of at most `MERGE_LIMIT` bytes, whatever the
//!   session's length;
//! - a signal thread that forwards SIGTERM, SIGINT and SIGHUP to the child;
//! - `main`, which waits for the child and the pumps of its output, then
//!   ends the transcript and exits with the child's status.
//!
//! `nixwire decode --live` runs the same proxy with a second observer, the
//! live decoder (`decode_cmd::live`).
//!
//! The transcript is JSON: `{"format":1,"chunks":[...], ...}` written in
//! that order, the chunks as they come, and every field the end decides
//! (protocol, exit status) after them. It is written as `NAME.part` and
//! renamed when complete, so a reader never sees half a file under the
//! final name.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use clap::Args;
use nixwire_conformance::transcript::{Chunk, From};

/// The most one read takes from a pipe.
const READ: usize = 64 * 1024;
/// How many reads may wait for the sink (with `READ`, what the channel
/// holds at most: 4 MiB).
const CHANNEL: usize = 64;
/// Adjacent reads of one stream are merged into one chunk up to this size;
/// a longer run of one stream is split into chunks of about this size.
const MERGE_LIMIT: usize = 1024 * 1024;

/// Arguments of `nixwire record`.
#[derive(Debug, Args)]
pub(crate) struct RecordArgs {
    /// Write the transcript to this file.
    #[arg(long, conflicts_with = "dir")]
    out: Option<PathBuf>,
    /// Write the transcript into this directory, one file per connection
    /// (`conn-<start time in ns>-<pid>.json`, so they sort in start order).
    /// The default, without --out, is the current directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The transcript's `scenario` field.
    #[arg(long, default_value = DEFAULT_SCENARIO)]
    scenario: String,
    /// The transcript's `client` field (a version label, as the captures
    /// have; the recorder cannot see the client).
    #[arg(long, default_value = DEFAULT_LABEL)]
    client: String,
    /// The transcript's `server` field.
    #[arg(long, default_value = DEFAULT_LABEL)]
    server: String,
    /// The remote program and its arguments (Nix appends its own).
    #[arg(last = true, required = true, num_args = 1..)]
    command: Vec<String>,
}

/// Where a transcript goes and what it says about itself.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// A file, or a directory to name one in.
    pub out: Option<PathBuf>,
    /// See `out`.
    pub dir: Option<PathBuf>,
    /// The `scenario`, `client` and `server` fields.
    pub scenario: String,
    /// See `scenario`.
    pub client: String,
    /// See `scenario`.
    pub server: String,
}

/// One thing a pump saw, sent to the sink.
#[derive(Debug)]
pub(crate) enum Seen {
    /// Bytes read from a stream, at a time since the start.
    Data(From, Duration, Vec<u8>),
    /// A stream ended.
    Eof(From, Duration),
    /// The child exited (the last message), with this status if it could
    /// be had.
    Exit(Option<ExitStatus>, Duration),
}

/// An observer of the session besides the transcript: the live decoder.
pub(crate) trait Observer: Send {
    /// One read, as it came (merge them with [`merge`] to get the
    /// transcript's chunks).
    fn read(&mut self, from: From, data: &[u8]);
    /// The session ended; `protocol` as detected.
    fn finish(&mut self, protocol: &str);
}

/// Adds one read to `chunks` as the transcript does: to the last chunk if
/// it is of the same stream and stays within `MERGE_LIMIT`, else as a new
/// chunk.
pub(crate) fn merge(chunks: &mut Vec<Chunk>, from: From, data: &[u8]) {
    if let Some(last) = chunks.last_mut()
        && last.from == from
        && last.data.len() + data.len() <= MERGE_LIMIT
    {
        last.data.extend_from_slice(data);
        return;
    }
    chunks.push(Chunk {
        from,
        data: data.to_vec(),
    });
}

/// The fields a transcript gets when the command line says nothing.
pub(crate) const DEFAULT_SCENARIO: &str = "recorded";
/// See [`DEFAULT_SCENARIO`]: the client's and the server's version label.
pub(crate) const DEFAULT_LABEL: &str = "unknown";

/// Why recording failed (the proxying goes on regardless where it can).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// The transcript file could not be made or written.
    #[error("transcript {path}: {source}")]
    Transcript {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The command could not be started.
    #[error("cannot run {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: io::Error,
    },
}

/// Runs `nixwire record`.
pub(crate) fn run(args: RecordArgs) -> ExitCode {
    let target = Target {
        out: args.out,
        dir: args.dir,
        scenario: args.scenario,
        client: args.client,
        server: args.server,
    };
    proxy(&args.command, Some(target), None)
}

fn name_of(from: From) -> &'static str {
    match from {
        From::Client => "client",
        From::Server => "server",
        From::Stderr => "stderr",
    }
}

/// The protocol of a session: the client's first bytes are the magic of
/// one (authoritative), else the command says (`--serve`; `--stdio` or
/// `nix-daemon`).
pub(crate) fn protocol_of(first_client_bytes: &[u8], command: &[String]) -> &'static str {
    const SERVE_MAGIC_1: u64 = 0x390c_9deb;
    const WORKER_MAGIC_1: u64 = 0x6e69_7863;
    if let Some(head) = first_client_bytes.get(..8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(head);
        match u64::from_le_bytes(b) {
            SERVE_MAGIC_1 => return "serve",
            WORKER_MAGIC_1 => return "worker",
            _ => {}
        }
    }
    let daemon = command
        .first()
        .is_some_and(|p| Path::new(p).file_name().is_some_and(|n| n == "nix-daemon"));
    if command.iter().any(|a| a == "--serve") {
        "serve"
    } else if daemon || command.iter().any(|a| a == "--stdio") {
        "worker"
    } else {
        "unknown"
    }
}

/// The transcript being written.
struct Writer {
    part: PathBuf,
    path: PathBuf,
    file: BufWriter<File>,
    /// The pending chunk: its stream, first and last read times, bytes.
    pending: Option<(From, Duration, Duration, Vec<u8>)>,
    chunks: usize,
}

impl Writer {
    fn create(target: &Target, started: SystemTime) -> Result<Self, RecordError> {
        let path = match (&target.out, &target.dir) {
            (Some(out), _) => out.clone(),
            (None, dir) => {
                let dir = dir.clone().unwrap_or_else(|| PathBuf::from("."));
                let ns = started
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                dir.join(format!("conn-{ns:020}-{}.json", std::process::id()))
            }
        };
        let mut part = path.clone().into_os_string();
        part.push(".part");
        let part = PathBuf::from(part);
        let err = |source| RecordError::Transcript {
            path: part.clone(),
            source,
        };
        if let Some(parent) = part.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let mut file = BufWriter::new(File::create(&part).map_err(err)?);
        file.write_all(b"{\"format\":1,\n\"chunks\":[")
            .map_err(err)?;
        Ok(Self {
            part,
            path,
            file,
            pending: None,
            chunks: 0,
        })
    }

    fn io<T>(&self, r: io::Result<T>) -> Result<T, RecordError> {
        r.map_err(|source| RecordError::Transcript {
            path: self.part.clone(),
            source,
        })
    }

    /// Writes the pending chunk out.
    fn flush_pending(&mut self) -> Result<(), RecordError> {
        let Some((from, first, last, data)) = self.pending.take() else {
            return Ok(());
        };
        let sep = if self.chunks == 0 { "\n" } else { ",\n" };
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        let r = write!(
            self.file,
            "{sep}{{\"from\":\"{}\",\"t\":{:.6},\"t_end\":{:.6},\"data\":\"{b64}\"}}",
            name_of(from),
            first.as_secs_f64(),
            last.as_secs_f64(),
        );
        self.io(r)?;
        self.chunks += 1;
        Ok(())
    }

    /// Adds one read.
    fn add(&mut self, from: From, at: Duration, data: Vec<u8>) -> Result<(), RecordError> {
        if let Some((f, _, last, buf)) = &mut self.pending
            && *f == from
            && buf.len() + data.len() <= MERGE_LIMIT
        {
            buf.extend_from_slice(&data);
            *last = at;
            return Ok(());
        }
        self.flush_pending()?;
        self.pending = Some((from, at, at, data));
        Ok(())
    }

    /// Ends the file with the fields known only now, and renames it.
    fn finish(mut self, trailer: serde_json::Value) -> Result<(), RecordError> {
        self.flush_pending()?;
        let mut fields = String::new();
        if let serde_json::Value::Object(map) = trailer {
            for (k, v) in map {
                fields.push_str(&format!(",\n{}:{v}", serde_json::Value::String(k)));
            }
        }
        let r = write!(self.file, "\n]{fields}\n}}\n").and_then(|()| self.file.flush());
        self.io(r)?;
        let r = std::fs::rename(&self.part, &self.path);
        self.io(r)
    }
}

/// The sink: merges reads into chunks, writes the transcript (when there
/// is one) and tells the observer. Returns the child's status.
fn sink(
    rx: Receiver<Seen>,
    mut writer: Option<Writer>,
    target: Option<Target>,
    mut observer: Option<Box<dyn Observer>>,
    command: &[String],
    wall: SystemTime,
) -> Option<ExitStatus> {
    let mut head: Vec<u8> = Vec::new();
    let mut closed = serde_json::Map::new();
    let mut status = None;
    let mut exit_at = Duration::ZERO;
    let failed = |w: &mut Option<Writer>, e: RecordError| {
        say_once(&e);
        // Recording stops; the proxying goes on.
        *w = None;
    };
    while let Ok(seen) = rx.recv() {
        match seen {
            Seen::Data(from, at, data) => {
                if from == From::Client && head.len() < 8 {
                    let take = (8 - head.len()).min(data.len());
                    head.extend_from_slice(&data[..take]);
                }
                if let Some(o) = observer.as_mut() {
                    o.read(from, &data);
                }
                if let Some(w) = writer.as_mut()
                    && let Err(e) = w.add(from, at, data)
                {
                    failed(&mut writer, e);
                }
            }
            Seen::Eof(from, at) => {
                closed.insert(name_of(from).into(), at.as_secs_f64().into());
            }
            Seen::Exit(s, at) => {
                status = s;
                exit_at = at;
                break;
            }
        }
    }
    let protocol = protocol_of(&head, command);
    let status_code = status.map(exit_code_of).unwrap_or(1);
    // The observer first: when the transcript appears under its name, the
    // live log is complete.
    if let Some(o) = observer.as_mut() {
        o.finish(protocol);
    }
    if let Some(w) = writer {
        let started = wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let trailer = serde_json::json!({
            "protocol": protocol,
            "recorder": format!("nixwire record {}", env!("CARGO_PKG_VERSION")),
            "started": started,
            "seconds": exit_at.as_secs_f64(),
            "closed": closed,
            "ssh_command": std::env::var("SSH_ORIGINAL_COMMAND").ok(),
            "server_command": command,
            "server_exit": status_code,
            // The fields a capture's meta.json gives; the recorder sees
            // only the server's end, so the client's outcome is unknown
            // and said to be a success (edit it for a failed run: the
            // conformance suite reads the expected outcome from it).
            "scenario": target.as_ref().map(|t| t.scenario.as_str()),
            "client": target.as_ref().map(|t| t.client.as_str()),
            "server": target.as_ref().map(|t| t.server.as_str()),
            "client_exit": 0,
            "client_stderr": "",
            "connections": 1,
            "connection": 0,
        });
        if let Err(e) = w.finish(trailer) {
            say_once(&e);
        }
    }

    status
}

/// Reports a recording failure on stderr, which goes to the Nix client:
/// the one line the recorder ever adds to the session, so that a
/// transcript that is not there is explained.
fn say_once(e: &RecordError) {
    say!("nixwire record: {e} (recording stopped; the session goes on)");
}

/// The exit code a shell would give: the child's, or 128 + its signal.
fn exit_code_of(s: ExitStatus) -> i32 {
    s.code()
        .or_else(|| s.signal().map(|n| 128 + n))
        .unwrap_or(1)
}

/// Copies `src` to `dst`, telling the sink of each read before passing it
/// on. A destination that went away is dropped; reading (and recording)
/// goes on, so the other side never blocks on a full pipe.
fn pump(mut src: impl Read, dst: impl Write, from: From, tx: SyncSender<Seen>, start: Instant) {
    let mut dst = Some(dst);
    let mut buf = vec![0u8; READ];
    loop {
        let n = match src.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        if n == 0 {
            // Closing the destination passes the end on (the client's EOF
            // becomes the child's).
            drop(dst.take());
            let _ = tx.send(Seen::Eof(from, start.elapsed()));
            return;
        }
        let data = buf[..n].to_vec();
        let _ = tx.send(Seen::Data(from, start.elapsed(), data));
        if let Some(d) = dst.as_mut()
            && d.write_all(&buf[..n]).and_then(|()| d.flush()).is_err()
        {
            dst = None;
        }
    }
}

/// An unbuffered handle on one of our own standard streams (a duplicate
/// of the descriptor: `std::io::Stdout` would buffer lines).
fn own(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<File> {
    Ok(File::from(fd.try_clone_to_owned()?))
}

/// The proxy behind `record` and `decode --live`: runs `command`, passes
/// its streams through, records them into `target` (if any) and tells
/// `observer` (if any). Returns the child's exit code.
pub(crate) fn proxy(
    command: &[String],
    target: Option<Target>,
    observer: Option<Box<dyn Observer>>,
) -> ExitCode {
    let start = Instant::now();
    let wall = SystemTime::now();
    let Some((program, args)) = command.split_first() else {
        say!("nixwire record: no command to run");
        return ExitCode::from(2);
    };
    // Registered before the child exists, so that no signal finds us with
    // the default action (which would kill the recorder and lose the
    // transcript). The child gets default actions back at exec.
    let signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ]) {
        Ok(s) => Some(s),
        Err(e) => {
            say!("nixwire record: cannot catch signals ({e}); they will not be forwarded");
            None
        }
    };
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(source) => {
            let e = RecordError::Spawn {
                program: program.clone(),
                source,
            };
            say!("nixwire record: {e}");
            return ExitCode::from(127);
        }
    };
    let pid = child.id();
    if let Some(mut signals) = signals {
        thread::spawn(move || {
            for sig in signals.forever() {
                if let (Ok(sig), Ok(pid)) =
                    (nix::sys::signal::Signal::try_from(sig), i32::try_from(pid))
                {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
                }
            }
        });
    }

    let writer = match target.as_ref().map(|t| Writer::create(t, wall)).transpose() {
        Ok(w) => w,
        Err(e) => {
            say_once(&e);
            None
        }
    };
    let (tx, rx) = mpsc::sync_channel::<Seen>(CHANNEL);
    let cmd = command.to_vec();
    let sink = thread::spawn(move || sink(rx, writer, target, observer, &cmd, wall));

    let (Some(c_in), Some(c_out), Some(c_err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        say!("nixwire record: the child's pipes are missing");
        return ExitCode::FAILURE;
    };
    // The client's bytes: not joined (our stdin may stay open after the
    // child is gone; exiting ends this thread).
    match own(io::stdin().as_fd()) {
        Ok(stdin) => {
            let tx = tx.clone();
            thread::spawn(move || pump(stdin, c_in, From::Client, tx, start));
        }
        Err(e) => {
            say!("nixwire record: cannot read stdin: {e}");
            drop(c_in);
        }
    }
    let outs = [
        (
            From::Server,
            own(io::stdout().as_fd()),
            Box::new(c_out) as Box<dyn Read + Send>,
        ),
        (From::Stderr, own(io::stderr().as_fd()), Box::new(c_err)),
    ];
    let mut joins = Vec::new();
    for (from, dst, src) in outs {
        let tx = tx.clone();
        match dst {
            Ok(dst) => joins.push(thread::spawn(move || pump(src, dst, from, tx, start))),
            Err(e) => {
                say!("nixwire record: cannot write {}: {e}", name_of(from));
                joins.push(thread::spawn(move || {
                    pump(src, io::sink(), from, tx, start)
                }));
            }
        }
    }
    for j in joins {
        let _ = j.join();
    }
    let status = match child.wait() {
        Ok(s) => Some(s),
        Err(e) => {
            say!("nixwire record: cannot wait for the child: {e}");
            None
        }
    };
    // Always sent: the stdin pump may hold its sender for ever, so the
    // sink ends on this message, not on the channel closing.
    let _ = tx.send(Seen::Exit(status, start.elapsed()));
    let code = status.map(exit_code_of).unwrap_or(1);
    drop(tx);
    let _ = sink.join();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
