//! `nixwire decode --live [--json] [--log FILE] [--out FILE] -- COMMAND...`:
//! the recording proxy of `nixwire record` with a live decoder as its
//! observer, so that a user can watch a session (a hanging remote build)
//! as it happens.
//!
//! The decoder is the one `nixwire decode TRANSCRIPT` runs
//! ([`super::decode_lines`]), applied to the session so far: a thread
//! gathers the reads into the transcript's chunks ([`merge`]) and, when
//! the session pauses (nothing for `IDLE`) or at least every `EVERY` while
//! it flows, decodes what it has and appends the lines not yet written to
//! the log. A line is written once: the lines of a prefix of the session
//! are the first lines of the whole session's (the state machines are fed
//! in order), except where a message is cut off, which is why the lines
//! from an `error` on are held back until the end. When the session ends,
//! the whole of it is decoded once more and the rest written, so the log
//! then holds what `nixwire decode` prints for the saved transcript, with
//! the `session` line (its counts known only at the end) moved to the end,
//! before the verdict, and an opening `session` line naming the command.
//!
//! Costs, stated: the decoder holds the session so far in memory (a
//! watching tool, not a recorder for large copies: `nixwire record` holds
//! a bounded amount), and each decoding reads all of it again, so they are
//! spaced to take at most a fifth of the decoder thread's time (a pause
//! after each of at least four times its duration). None of this slows the
//! proxy: the decoder has its own thread and channel.
//!
//! Where the lines go: stdout is the protocol channel and stderr goes to
//! the Nix client (in a serve session it is the build log), so both stay
//! untouched; the log is a file (`--log`, by default
//! `nixwire-live-<start time in ns>-<pid>.log` in the current directory).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nixwire_conformance::transcript::{Chunk, From, Transcript, name_of};

use super::{DecodeArgs, Line, decode_lines, render};
use crate::record_cmd::{self, DEFAULT_LABEL, DEFAULT_SCENARIO, Observer, Target, merge};

/// A pause this long in the session starts a decoding.
const IDLE: Duration = Duration::from_millis(100);
/// While the session flows without pause, a decoding at least this often.
const EVERY: Duration = Duration::from_secs(1);

/// Runs `nixwire decode --live`.
pub(super) fn run(args: DecodeArgs) -> ExitCode {
    let started = SystemTime::now();
    let log = args.log.clone().unwrap_or_else(|| {
        let ns = started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        PathBuf::from(format!("nixwire-live-{ns:020}-{}.log", std::process::id()))
    });
    let file = match File::create(&log) {
        Ok(f) => f,
        Err(e) => {
            // Before the command runs: a user who asked for a log gets
            // none, and says so rather than a silent session.
            say!("nixwire: decode --live: {}: {e}", log.display());
            return ExitCode::FAILURE;
        }
    };
    let name = args
        .out
        .as_deref()
        .map_or_else(|| "live".to_owned(), name_of);
    let live = Live::start(file, args.json, name, args.command.clone());
    let target = args.out.map(|out| Target {
        out: Some(out),
        dir: None,
        scenario: DEFAULT_SCENARIO.into(),
        client: DEFAULT_LABEL.into(),
        server: DEFAULT_LABEL.into(),
    });
    record_cmd::proxy(&args.command, target, Some(Box::new(live)))
}

/// What the proxy tells the decoder thread.
enum Msg {
    Read(From, Vec<u8>),
    Finish(String),
}

/// The observer: a channel to the decoder thread.
struct Live {
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

impl Live {
    fn start(file: File, json: bool, name: String, command: Vec<String>) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut d = Decoder {
                out: BufWriter::new(file),
                json,
                name,
                command,
                chunks: Vec::new(),
                written: Vec::new(),
                diverged: false,
            };
            d.opening();
            let mut dirty = false;
            let mut last = Instant::now();
            let mut not_before = Instant::now();
            loop {
                match rx.recv_timeout(IDLE) {
                    Ok(Msg::Read(from, data)) => {
                        merge(&mut d.chunks, from, &data);
                        dirty = true;
                        if last.elapsed() < EVERY {
                            continue;
                        }
                    }
                    Ok(Msg::Finish(protocol)) => {
                        d.finish(&protocol);
                        return;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        let protocol = d.protocol();
                        d.finish(&protocol);
                        return;
                    }
                }
                let now = Instant::now();
                if dirty && now >= not_before {
                    d.partial();
                    let took = now.elapsed();
                    dirty = false;
                    last = Instant::now();
                    not_before = last + took * 4;
                }
            }
        });
        Self {
            tx: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Observer for Live {
    fn read(&mut self, from: From, data: &[u8]) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Read(from, data.to_vec()));
        }
    }

    fn finish(&mut self, protocol: &str) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Finish(protocol.to_owned()));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The decoder thread's state.
struct Decoder {
    out: BufWriter<File>,
    json: bool,
    name: String,
    command: Vec<String>,
    /// The session so far, as the transcript's chunks.
    chunks: Vec<Chunk>,
    /// The lines written so far after the opening one, rendered.
    written: Vec<String>,
    /// Whether a partial decoding disagreed with what was written (then
    /// nothing more is written until the end).
    diverged: bool,
}

impl Decoder {
    /// The protocol, from the client's first bytes or the command.
    fn protocol(&self) -> String {
        let head: Vec<u8> = self
            .chunks
            .iter()
            .filter(|c| c.from == From::Client)
            .flat_map(|c| c.data.iter().copied())
            .take(8)
            .collect();
        record_cmd::protocol_of(&head, &self.command).to_owned()
    }

    fn transcript(&self, protocol: &str) -> Transcript {
        Transcript {
            name: self.name.clone(),
            protocol: protocol.to_owned(),
            scenario: DEFAULT_SCENARIO.into(),
            client: DEFAULT_LABEL.into(),
            server: DEFAULT_LABEL.into(),
            client_exit: 0,
            client_stderr: String::new(),
            last_connection: true,
            chunks: self.chunks.clone(),
        }
    }

    /// Writes lines and flushes them, so a watcher sees them now. A log
    /// that cannot be written is given up on: the session goes on.
    fn write(&mut self, lines: &[String]) {
        for l in lines {
            let _ = writeln!(self.out, "{l}");
        }
        let _ = self.out.flush();
    }

    fn opening(&mut self) {
        let line = Line {
            chunk: 0,
            dir: "--",
            offset: 0,
            kind: "session",
            text: format!("{}: live: {}", self.name, self.command.join(" ")),
        };
        let l = render(&line, self.json);
        self.write(&[l]);
    }

    /// Decodes the session so far and writes the new lines.
    fn partial(&mut self) {
        if self.diverged {
            return;
        }
        let protocol = self.protocol();
        let Ok((lines, _)) = decode_lines(&self.transcript(&protocol)) else {
            // The protocol is not known yet.
            return;
        };
        // Without the session and verdict lines, and up to a failure
        // (which may be a message cut off by the end of what came so far).
        let body: Vec<String> = lines
            .get(1..lines.len().saturating_sub(1))
            .unwrap_or_default()
            .iter()
            .take_while(|l| l.kind != "error" && l.kind != "dump")
            .map(|l| render(l, self.json))
            .collect();
        if body.len() < self.written.len() || body[..self.written.len()] != self.written[..] {
            self.diverged = true;
            return;
        }
        let new = body[self.written.len()..].to_vec();
        self.write(&new);
        self.written.extend(new);
    }

    /// Decodes the whole session and writes the rest: the lines not yet
    /// written, the session line, the verdict.
    fn finish(&mut self, protocol: &str) {
        let lines = match decode_lines(&self.transcript(protocol)) {
            Ok((lines, _)) => lines,
            Err(e) => {
                let l = format!("-- @0       error    {e}");
                self.write(&[l]);
                return;
            }
        };
        let Some((session, rest)) = lines.split_first() else {
            return;
        };
        let Some((end, body)) = rest.split_last() else {
            return;
        };
        let body: Vec<String> = body.iter().map(|l| render(l, self.json)).collect();
        let mut out = Vec::new();
        if body.len() >= self.written.len() && body[..self.written.len()] == self.written[..] {
            out.extend_from_slice(&body[self.written.len()..]);
        } else {
            let note = Line {
                chunk: 0,
                dir: "--",
                offset: 0,
                kind: "note",
                text: "the lines above, decoded from the session so far, differ from the \
                       whole session's, which follow"
                    .into(),
            };
            out.push(render(&note, self.json));
            out.extend(body);
        }
        out.push(render(session, self.json));
        out.push(render(end, self.json));
        self.write(&out);
    }
}
