//! `nixwire-replay`: plays the recorded server side of a captured Nix
//! session, as the remote program of a store would.
//!
//! ```text
//! nixwire-replay [--report FILE] TRANSCRIPT.json [--serve] [--write] [--stdio] [--store URI]
//! ```
//!
//! It is meant to stand where `nix-store --serve --write` or
//! `nix-daemon --stdio` would (a store's `remote-program`, run as a child
//! process or through sshd), so the client under test talks to a recording
//! instead of a real Nix. The chunks of the transcript (format:
//! `conformance/captures/README.md`) are walked in order:
//! - a `client` chunk: stdin is read until that many bytes have arrived and
//!   they must equal the recorded ones (each byte is compared as it arrives,
//!   so a client that sent something shorter and waits is caught); bytes
//!   beyond the chunk are kept for the next client chunks, since a client
//!   may write several at once;
//! - a `server` chunk is written to stdout and flushed;
//! - a `stderr` chunk is written to stderr and flushed.
//!
//! After the last chunk stdin is read to its end: any further client byte is
//! a mismatch.
//!
//! Nix appends its own arguments to a remote program (`--serve --write` for
//! `ssh://`, `--stdio` for `ssh-ng://`, then `--store URI` when the store URI
//! names a remote store); they are accepted and ignored, so the binary can be
//! named in `remote-program` as it is.
//!
//! Exit status (the line on stderr, and in the report, starts
//! `nixwire-replay:`):
//! - 0: the session matched (the report says `ok`);
//! - 1: an I/O error other than the client going away;
//! - 2: bad arguments, or the transcript could not be loaded;
//! - 3: the client sent other bytes than recorded, or more;
//! - 4: the client's stdin ended before the recorded bytes;
//! - 5: the client went away (a broken pipe on stdout or stderr): nothing is
//!   printed, since stderr may be the client's too, only the report is
//!   written.
//!
//! Transcripts record no timings, so chunks go out as soon as they are due.
//!
//! Chunks are numbered from 0, as in the transcript's `chunks` array; offsets
//! are counted in the client stream (all client chunks concatenated).

#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use nixwire_conformance::transcript::{self, Chunk, From, LoadError};

const USAGE: &str = "usage: nixwire-replay [--report FILE] TRANSCRIPT.json \
                     [--serve] [--write] [--stdio] [--store URI]";

/// How many bytes a mismatch shows from the first differing one on: enough
/// to recognise a wire integer or the start of a string.
const WINDOW_AFTER: usize = 12;
/// How many bytes of the same chunk a mismatch shows before it.
const WINDOW_BEFORE: usize = 4;

/// What the command line asked for.
#[derive(Debug)]
struct Args {
    report: Option<PathBuf>,
    transcript: PathBuf,
}

/// What to do.
#[derive(Debug)]
enum Command {
    /// Print the usage.
    Help,
    /// Replay a transcript.
    Replay(Args),
}

/// Why a replay did not match, or could not run.
#[derive(Debug)]
enum Failure {
    /// The command line is not understood.
    Usage(String),
    /// The transcript could not be loaded.
    Load(LoadError),
    /// The client sent other bytes than the recorded ones.
    Mismatch {
        /// Offset of the first differing byte in the client stream.
        offset: u64,
        /// The transcript chunk that expected it.
        chunk: usize,
        /// Where in that chunk.
        at: usize,
        /// The chunk's length.
        len: usize,
        /// The recorded bytes around it.
        expected: String,
        /// The received bytes around it.
        received: String,
    },
    /// The client sent bytes after the last recorded one.
    Extra {
        /// Offset of the first extra byte in the client stream.
        offset: u64,
        /// The first extra bytes.
        received: String,
    },
    /// The client's stdin ended early.
    Short {
        /// Client bytes received in all.
        received: u64,
        /// Client bytes expected by the end of `chunk`.
        expected: u64,
        /// The transcript chunk left incomplete.
        chunk: usize,
    },
    /// Writing to the client failed because it went away.
    ClientGone {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The transcript chunk being written.
        chunk: usize,
    },
    /// Any other I/O error.
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Io { .. } => 1,
            Self::Usage(_) | Self::Load(_) => 2,
            Self::Mismatch { .. } | Self::Extra { .. } => 3,
            Self::Short { .. } => 4,
            Self::ClientGone { .. } => 5,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(why) => write!(f, "{why} ({USAGE})"),
            Self::Load(e) => write!(f, "{e}"),
            Self::Mismatch {
                offset,
                chunk,
                at,
                len,
                expected,
                received,
            } => write!(
                f,
                "client bytes differ at offset {offset} of the client stream \
                 (chunk {chunk}, byte {at} of {len}): \
                 expected {expected}; received {received}"
            ),
            Self::Extra { offset, received } => write!(
                f,
                "client bytes differ at offset {offset} of the client stream: \
                 expected the end of input after the last chunk; received {received}"
            ),
            Self::Short {
                received,
                expected,
                chunk,
            } => write!(
                f,
                "the client's stdin ended after {received} bytes of the client stream; \
                 {expected} were expected by the end of chunk {chunk}"
            ),
            Self::ClientGone { stream, chunk } => write!(
                f,
                "the client went away (broken pipe writing chunk {chunk} to {stream})"
            ),
            Self::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

/// Parses the arguments; a failure comes with the report file, if that much
/// was understood, so that the report is written whatever went wrong.
fn parse_args(
    args: impl IntoIterator<Item = String>,
) -> Result<Command, (Option<PathBuf>, Failure)> {
    let mut report = None;
    let mut transcript = None;
    let mut positional_only = false;
    let mut args = args.into_iter();
    let mut problem = None;
    while let Some(arg) = args.next() {
        if positional_only || !arg.starts_with('-') || arg == "-" {
            if transcript.is_some() {
                problem.get_or_insert_with(|| format!("unexpected argument {arg:?}"));
            }
            transcript = Some(PathBuf::from(arg));
            continue;
        }
        match arg.as_str() {
            "--" => positional_only = true,
            "--help" | "-h" => return Ok(Command::Help),
            "--report" => match args.next() {
                Some(file) => report = Some(PathBuf::from(file)),
                None => {
                    problem.get_or_insert_with(|| "--report needs a FILE".to_owned());
                }
            },
            // What Nix appends to a remote program (see the crate docs).
            "--serve" | "--write" | "--stdio" => {}
            "--store" => {
                args.next();
            }
            other => match other.strip_prefix("--report=") {
                Some(file) => report = Some(PathBuf::from(file)),
                None => {
                    problem.get_or_insert_with(|| format!("unknown option {other:?}"));
                }
            },
        }
    }
    match (problem, transcript) {
        (None, Some(transcript)) => Ok(Command::Replay(Args { report, transcript })),
        (Some(why), _) => Err((report, Failure::Usage(why))),
        (None, None) => Err((report, Failure::Usage("no transcript given".to_owned()))),
    }
}

/// Bytes as hex pairs, `[..]` around the one at `mark`.
fn hex(bytes: &[u8], mark: Option<usize>) -> String {
    if bytes.is_empty() {
        return "nothing".to_owned();
    }
    bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if Some(i) == mark {
                format!("[{b:02x}]")
            } else {
                format!("{b:02x}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The client stream: what has been read from stdin and not yet matched.
struct Input<R> {
    reader: R,
    pending: Vec<u8>,
    /// Offset in the client stream of `pending[0]`.
    start: u64,
}

impl<R: Read> Input<R> {
    /// Reads once more; 0 at the end of input.
    fn fill(&mut self) -> Result<usize, Failure> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match self.reader.read(&mut buf) {
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Failure::Io {
                        what: "reading stdin".to_owned(),
                        source,
                    });
                }
            }
        }
    }

    /// Waits for `expected` (chunk `chunk`) and consumes it. Every byte is
    /// compared as soon as it arrives: a client that sent something else
    /// may be waiting for an answer, and waiting for the rest of the
    /// chunk would then never end.
    fn expect(&mut self, expected: &[u8], chunk: usize) -> Result<(), Failure> {
        let mut checked = 0;
        loop {
            let have = self.pending.len().min(expected.len());
            if let Some(at) = (checked..have).find(|&i| self.pending[i] != expected[i]) {
                let lo = at.saturating_sub(WINDOW_BEFORE);
                let window = |bytes: &[u8]| {
                    hex(
                        &bytes[lo..bytes.len().min(at + WINDOW_AFTER)],
                        Some(at - lo),
                    )
                };
                return Err(Failure::Mismatch {
                    offset: self.start + at as u64,
                    chunk,
                    at,
                    len: expected.len(),
                    expected: window(expected),
                    received: window(&self.pending),
                });
            }
            checked = have;
            if have == expected.len() {
                self.pending.drain(..have);
                self.start += have as u64;
                return Ok(());
            }
            if self.fill()? == 0 {
                return Err(Failure::Short {
                    received: self.start + self.pending.len() as u64,
                    expected: self.start + expected.len() as u64,
                    chunk,
                });
            }
        }
    }

    /// Waits for the end of input, failing on the first byte beyond the
    /// transcript (without waiting for more: the client may be waiting for
    /// an answer to it).
    fn expect_end(&mut self) -> Result<(), Failure> {
        while self.pending.is_empty() {
            if self.fill()? == 0 {
                return Ok(());
            }
        }
        let shown = self.pending.len().min(WINDOW_AFTER);
        Err(Failure::Extra {
            offset: self.start,
            received: hex(&self.pending[..shown], Some(0)),
        })
    }
}

/// Writes a recorded chunk to the client and flushes it, so the client sees
/// it before the replay waits for the next client bytes.
fn send(
    out: &mut impl Write,
    data: &[u8],
    stream: &'static str,
    chunk: usize,
) -> Result<(), Failure> {
    out.write_all(data)
        .and_then(|()| out.flush())
        .map_err(|source| {
            // Rust ignores SIGPIPE, so a client that closed its end shows up
            // here; a socket (sshd may hand one over) says "reset" instead.
            if matches!(
                source.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) {
                Failure::ClientGone { stream, chunk }
            } else {
                Failure::Io {
                    what: format!("writing chunk {chunk} to {stream}"),
                    source,
                }
            }
        })
}

/// Plays `chunks` against the given streams.
fn replay(
    chunks: &[Chunk],
    stdin: impl Read,
    mut stdout: impl Write,
    mut stderr: impl Write,
) -> Result<(), Failure> {
    let mut input = Input {
        reader: stdin,
        pending: Vec::new(),
        start: 0,
    };
    for (i, chunk) in chunks.iter().enumerate() {
        match chunk.from {
            From::Client => input.expect(&chunk.data, i)?,
            From::Server => send(&mut stdout, &chunk.data, "stdout", i)?,
            From::Stderr => send(&mut stderr, &chunk.data, "stderr", i)?,
        }
    }
    input.expect_end()
}

fn run(args: &Args) -> Result<(), Failure> {
    let t = transcript::load(&args.transcript).map_err(Failure::Load)?;
    replay(
        &t.chunks,
        io::stdin().lock(),
        io::stdout().lock(),
        io::stderr().lock(),
    )
}

/// Writes the report, if one was asked for. Failing to is said on stderr
/// but does not change the exit status, which is about the session.
fn report(path: Option<&PathBuf>, line: &str) {
    if let Some(path) = path
        && let Err(e) = std::fs::write(path, format!("{line}\n"))
    {
        let _ = writeln!(
            io::stderr(),
            "nixwire-replay: writing the report {}: {e}",
            path.display()
        );
    }
}

fn main() -> ExitCode {
    let (report_path, failure) = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Replay(args)) => match run(&args) {
            Ok(()) => {
                report(args.report.as_ref(), "ok");
                return ExitCode::SUCCESS;
            }
            Err(failure) => (args.report, failure),
        },
        Err(e) => e,
    };
    let line = format!("nixwire-replay: {failure}");
    report(report_path.as_ref(), &line);
    if !matches!(failure, Failure::ClientGone { .. }) {
        // `eprintln!` would panic if stderr is gone too.
        let _ = writeln!(io::stderr(), "{line}");
    }
    ExitCode::from(failure.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(from: From, data: &[u8]) -> Chunk {
        Chunk {
            from,
            data: data.to_vec(),
        }
    }

    /// A reader that hands out its bytes in the given pieces.
    struct Pieces(Vec<Vec<u8>>);

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let piece = self.0.remove(0);
            assert!(piece.len() <= buf.len());
            buf[..piece.len()].copy_from_slice(&piece);
            Ok(piece.len())
        }
    }

    fn session() -> Vec<Chunk> {
        vec![
            chunk(From::Client, b"abcd"),
            chunk(From::Server, b"1"),
            chunk(From::Client, b"efgh"),
            chunk(From::Stderr, b"log"),
            chunk(From::Server, b"2"),
        ]
    }

    fn play(pieces: &[&[u8]]) -> (Result<(), Failure>, Vec<u8>, Vec<u8>) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let input = Pieces(pieces.iter().map(|p| p.to_vec()).collect());
        let result = replay(&session(), input, &mut out, &mut err);
        (result, out, err)
    }

    #[test]
    fn client_bytes_may_come_in_any_pieces() {
        for pieces in [
            &[&b"abcdefgh"[..]][..],
            &[b"ab", b"cdef", b"gh"],
            &[b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"],
        ] {
            let (result, out, err) = play(pieces);
            assert!(result.is_ok(), "{pieces:?}: {result:?}");
            assert_eq!(out, b"12");
            assert_eq!(err, b"log");
        }
    }

    #[test]
    fn a_difference_is_found_before_the_chunk_is_complete() {
        // The client sends less than the chunk: without comparing early,
        // the replay would wait for bytes that never come.
        let (result, out, _) = play(&[b"abcdeX"]);
        match result {
            Err(Failure::Mismatch {
                offset, chunk, at, ..
            }) => assert_eq!((offset, chunk, at), (5, 2, 1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(out, b"1");
    }

    #[test]
    fn the_window_marks_the_differing_byte() {
        let (result, _, _) = play(&[b"abcdeX"]);
        let line = result.unwrap_err().to_string();
        assert!(
            line.contains("expected 65 [66] 67 68; received 65 [58]"),
            "{line}"
        );
    }

    #[test]
    fn extra_and_missing_bytes() {
        let (result, _, _) = play(&[b"abcdefghij"]);
        assert!(
            matches!(result, Err(Failure::Extra { offset: 8, .. })),
            "{result:?}"
        );
        let (result, _, _) = play(&[b"abcdef"]);
        assert!(
            matches!(
                result,
                Err(Failure::Short {
                    received: 6,
                    expected: 8,
                    chunk: 2
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn nix_arguments_are_ignored() {
        let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
        let replay = |a: &[&str]| match args(a) {
            Ok(Command::Replay(parsed)) => parsed,
            other => panic!("{a:?}: {other:?}"),
        };
        let parsed = replay(&["--report", "r", "t.json", "--serve", "--write"]);
        assert_eq!(parsed.transcript, PathBuf::from("t.json"));
        assert_eq!(parsed.report, Some(PathBuf::from("r")));
        let parsed = replay(&["--report=r", "t.json", "--stdio", "--store", "x"]);
        assert_eq!(parsed.transcript, PathBuf::from("t.json"));
        assert!(args(&["t.json", "u.json"]).is_err());
        assert!(args(&["--pace", "t.json"]).is_err());
        assert!(args(&[]).is_err());
    }
}
