//! `cargo test` runs the conformance suite over every transcript in
//! `conformance/captures`, and checks that the suite notices tampering.

use std::path::{Path, PathBuf};

use nixwire_conformance::transcript::{self, Chunk, From, Transcript};
use nixwire_conformance::{Verdict, check_file, serve, worker};

fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

/// Checks the transcripts under `dir` whose folder starts with `prefix`:
/// (name, verdict) each.
fn check_some(dir: &Path, prefix: &str) -> Vec<(String, Verdict)> {
    transcript::find(dir)
        .expect("transcripts folder")
        .iter()
        .filter(|file| {
            let folder = file.parent().and_then(Path::file_name).unwrap_or_default();
            folder.to_string_lossy().starts_with(prefix)
        })
        .map(|file| check_file(file, &Default::default()))
        .collect()
}

fn check_all(dir: &Path, prefix: &str) -> usize {
    let mut failures = Vec::new();
    let mut passed = 0;
    for (name, verdict) in check_some(dir, prefix) {
        match verdict {
            Verdict::Ok(_) => passed += 1,
            Verdict::Fail(why) => failures.push(format!("{name}: {why}")),
            Verdict::Skip(why) => failures.push(format!("{name}: skipped: {why}")),
        }
    }
    assert!(failures.is_empty(), "failed:\n{}", failures.join("\n"));
    passed
}

#[test]
fn every_serve_transcript_passes() {
    // 6 serve scenarios x 15 version pairs; build has 3 connections (but the
    // one run whose client aborted after 1).
    assert_eq!(
        check_all(&captures(), "serve-"),
        118,
        "serve transcripts checked"
    );
}

/// Whether the worker operation table is still the stand-in of four
/// operations (IsValidPath, QueryValidPaths, NarFromPath, AddToStoreNar),
/// which the real table replaces: until then, a transcript with another
/// operation fails on its code.
#[test]
fn every_worker_transcript_passes() {
    // 7 worker scenarios x 15 version pairs; build has 3 connections, and
    // copy-from with a 2.26 client 2.
    assert_eq!(
        check_all(&captures(), "worker-"),
        139,
        "transcripts checked"
    );
}

#[test]
fn every_transcript_recorded_here_passes() {
    // Serve: 8 scenarios of Nix 2.8 against itself; build has 3 connections.
    // Worker: 58 runs of 2.3, 2.8, 2.26 and 2.34 (see recorded/README.md).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recorded");
    assert_eq!(check_all(&dir, "serve-"), 10, "serve transcripts checked");
    assert_eq!(
        check_all(&dir, "worker-"),
        111,
        "worker transcripts checked"
    );
}

fn load(name: &str) -> Transcript {
    transcript::load(&captures().join(name)).expect("transcript")
}

/// XORs byte `offset` of the stream `from` with `mask`.
fn tamper(t: &mut Transcript, from: From, offset: usize, mask: u8) {
    let mut seen = 0;
    for chunk in t.chunks.iter_mut().filter(|c| c.from == from) {
        if offset < seen + chunk.data.len() {
            chunk.data[offset - seen] ^= mask;
            return;
        }
        seen += chunk.data.len();
    }
    panic!("no byte {offset}");
}

// A replayed session is self-consistent by construction, so tampering that
// keeps the bytes valid (another path name) passes; these tamper with what
// the protocol constrains.

#[test]
fn a_wrong_count_from_the_server_fails_the_check() {
    let mut t = load("serve-path-info-client2.26-server2.26/conn0.json");
    assert!(serve::check(&t).is_ok());
    // Byte 16 is the count of the first reply (QueryClosure): 2 becomes 18.
    tamper(&mut t, From::Server, 16, 0x10);
    let err = serve::check(&t).expect_err("tampered");
    assert!(err.contains("codec, server stream"), "{err}");
}

#[test]
fn a_non_boolean_flag_from_the_client_fails_the_check() {
    let mut t = load("serve-copy-to-client2.8-server2.8/conn0.json");
    assert!(serve::check(&t).is_ok());
    // QueryValidPaths' `lock` flag (after the command code) becomes 2.
    tamper(&mut t, From::Client, 16 + 8, 0x02);
    let err = serve::check(&t).expect_err("tampered");
    assert!(err.contains("a boolean (0 or 1)"), "{err}");
}

#[test]
fn a_wrong_server_magic_fails_the_check() {
    let mut t = load("serve-ping-client2.34-server2.34/conn0.json");
    tamper(&mut t, From::Server, 0, 0xff);
    let err = serve::check(&t).expect_err("tampered");
    assert!(err.contains("magic"), "{err}");
}

#[test]
fn the_outcome_is_checked_against_the_recorded_client() {
    // A clean session, relabelled as a run whose build failed: the core
    // completes cleanly, which must not count as reproducing the failure.
    let mut t = load("serve-ping-client2.3-server2.3/conn0.json");
    t.client_exit = 1;
    t.client_stderr = "error: builder for '/nix/store/x.drv' failed with exit code 3\n".into();
    let err = serve::check(&t).expect_err("outcome differs");
    assert!(err.contains("reports no failed build"), "{err}");

    // A client that died on the server's bytes.
    t.client_stderr = "builder for '/nix/store/x.drv' failed due to signal 6 (Aborted)\n".into();
    let err = serve::check(&t).expect_err("outcome differs");
    assert!(err.contains("completed cleanly"), "{err}");

    // A failure the suite has no rule for is a failure, never a skip.
    t.client_stderr = "error: something new\n".into();
    let err = serve::check(&t).expect_err("unknown");
    assert!(err.contains("does not recognise"), "{err}");

    // A client that refused on its own after a clean session.
    t.client_stderr =
        "error: Unable to build with a primary store that isn't a local store\n".into();
    let detail = serve::check(&t).expect("clean wire");
    assert!(detail.contains("refused locally"), "{detail}");
}

#[test]
fn the_cross_version_bug_is_reproduced_as_a_protocol_error() {
    // Nix 2.8's server sends builtOutputs to a serve-2.5 client: the
    // recorded 2.3 client aborted, and the core must fail on the same bytes.
    let t = load("serve-build-client2.3-server2.8/conn0.json");
    let detail = serve::check(&t).expect("reproduced");
    assert!(detail.contains("failed on the same bytes"), "{detail}");
}

// The worker protocol: tampering, outcomes, and sessions written by hand
// from Nix's wire format (the captured worker sessions mostly use
// operations that only the full table has).

#[test]
fn a_wrong_worker_server_magic_fails_the_check() {
    let mut t = load("worker-ping-client2.34-server2.34/conn0.json");
    assert!(worker::check(&t).is_ok());
    tamper(&mut t, From::Server, 0, 0xff);
    let err = worker::check(&t).expect_err("tampered");
    assert!(
        err.contains("codec, server stream") && err.contains("magic"),
        "{err}"
    );
}

#[test]
fn a_wrong_trust_flag_fails_the_check() {
    let mut t = load("worker-ping-client2.34-server2.34/conn0.json");
    // Hello (16), no features (8), "2.34.8" (16), then the trust flag: 1
    // (trusted) becomes 3.
    tamper(&mut t, From::Server, 40, 0x02);
    let err = worker::check(&t).expect_err("tampered");
    assert!(err.contains("trust flag"), "{err}");
}

#[test]
fn a_worker_outcome_is_checked_against_the_recorded_client() {
    let mut t = load("worker-ping-client2.8-server2.8/conn0.json");
    t.client_exit = 1;
    t.client_stderr = "error: builder for '/nix/store/x.drv' failed with exit code 3\n".into();
    let err = worker::check(&t).expect_err("outcome differs");
    assert!(err.contains("reports no failed build"), "{err}");

    t.client_stderr = "error: path '/nix/store/x.drv!out' is not a valid store path\n".into();
    let err = worker::check(&t).expect_err("outcome differs");
    assert!(err.contains("no refusal"), "{err}");

    t.client_stderr = "error: something new\n".into();
    let err = worker::check(&t).expect_err("unknown");
    assert!(err.contains("does not recognise"), "{err}");
}

use nixwire_core::wire::{encode_bytes, encode_u64};

const VALID: &str = "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12";
const INVALID: &str = "/nix/store/8h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.drv!out";

/// Builds a session chunk by chunk.
#[derive(Default)]
struct Session(Vec<Chunk>);

impl Session {
    fn push(&mut self, from: From, words: &[Word<'_>]) {
        let mut data = Vec::new();
        for w in words {
            match w {
                N(n) => encode_u64(*n, &mut data),
                S(s) => encode_bytes(s, &mut data),
                Raw(b) => data.extend_from_slice(b),
            }
        }
        self.0.push(Chunk { from, data });
    }

    fn client(&mut self, words: &[Word<'_>]) {
        self.push(From::Client, words);
    }

    fn server(&mut self, words: &[Word<'_>]) {
        self.push(From::Server, words);
    }

    fn transcript(self, client_exit: i64, client_stderr: &str) -> Transcript {
        Transcript {
            name: "synthetic/conn0".into(),
            protocol: "worker".into(),
            scenario: "synthetic".into(),
            client: "x".into(),
            server: "y".into(),
            client_exit,
            client_stderr: client_stderr.into(),
            last_connection: true,
            chunks: self.0,
        }
    }
}

/// A word of the wire: a number, a string (length, bytes, padding) or raw
/// bytes.
enum Word<'a> {
    N(u64),
    S(&'a [u8]),
    Raw(&'a [u8]),
}
use Word::{N, Raw, S};

const NEXT: u64 = 0x6f6c_6d67;
const LAST: u64 = 0x616c_7473;
const ERROR: u64 = 0x6378_7470;
const START: u64 = 0x5354_5254;
const STOP: u64 = 0x5354_4f50;
const RESULT: u64 = 0x5253_4c54;

/// A NAR of one regular file.
fn nar() -> Vec<u8> {
    let mut out = Vec::new();
    for s in [
        "nix-archive-1",
        "(",
        "type",
        "regular",
        "contents",
        "hello\n",
        ")",
    ] {
        encode_bytes(s.as_bytes(), &mut out);
    }
    out
}

/// A 1.38 session: features, a log and an activity with a build log line,
/// a framed body, a NAR reply, a refusal, and a line on the daemon's
/// stderr.
fn session_1_38() -> Session {
    use sha2::Digest;
    let nar = nar();
    let hash = hex::encode(sha2::Sha256::digest(&nar));
    let mut s = Session::default();
    s.client(&[N(0x6e69_7863), N(0x126)]);
    s.server(&[N(0x6478_696f), N(0x126)]);
    s.client(&[N(1), S(b"a-feature")]);
    s.server(&[N(2), S(b"a-feature"), S(b"other")]);
    s.client(&[N(0), N(0)]);
    s.server(&[S(b"2.34.8"), N(1), N(LAST)]);
    // IsValidPath, answered with logs and an activity.
    s.client(&[N(1), S(VALID.as_bytes())]);
    s.server(&[
        N(NEXT),
        S(b"checking\n"),
        N(START),
        N(7),
        N(3),
        N(105),
        S(b"building"),
        N(2),
        N(1),
        S(b"x"),
        N(0),
        N(1),
        N(0),
    ]);
    s.push(From::Stderr, &[Raw(b"warning: on the daemon's stderr\n")]);
    s.server(&[
        N(RESULT),
        N(7),
        N(101),
        N(1),
        N(1),
        S(b"a line\n"),
        N(RESULT),
        N(7),
        N(104),
        N(1),
        N(1),
        S(b"buildPhase"),
        N(STOP),
        N(7),
        N(LAST),
        N(1),
    ]);
    // AddToStoreNar, its NAR in two frames.
    s.client(&[
        N(39),
        S(VALID.as_bytes()),
        S(b""),
        S(hash.as_bytes()),
        N(0),
        N(1_700_000_000),
        N(nar.len() as u64),
        N(0),
        N(0),
        S(b""),
        N(0),
        N(1),
        N(10),
        Raw(&nar[..10]),
        N(nar.len() as u64 - 10),
        Raw(&nar[10..]),
        N(0),
    ]);
    s.server(&[N(LAST)]);
    // NarFromPath.
    s.client(&[N(38), S(VALID.as_bytes())]);
    s.server(&[N(LAST), Raw(&nar)]);
    // IsValidPath, refused (the structured error of 1.26 and later).
    s.client(&[N(1), S(VALID.as_bytes())]);
    s.server(&[
        N(ERROR),
        S(b"Error"),
        N(0),
        S(b"Error"),
        S(b"something went wrong"),
        N(0),
        N(0),
    ]);
    s
}

/// A 1.21 session: no features, no handshake info, the old error form.
fn session_1_21() -> Session {
    let message = format!("path '{INVALID}' is not a valid store path");
    let mut s = Session::default();
    s.client(&[N(0x6e69_7863)]);
    s.server(&[N(0x6478_696f), N(0x115)]);
    s.client(&[N(0x115), N(0), N(0)]);
    s.server(&[N(LAST)]);
    s.client(&[N(1), S(VALID.as_bytes())]);
    s.server(&[N(NEXT), S(b"checking\n"), N(LAST), N(0)]);
    s.client(&[N(38), S(VALID.as_bytes())]);
    s.server(&[N(LAST), Raw(&nar())]);
    // The request does not matter; the daemon's message does.
    s.client(&[N(1), S(VALID.as_bytes())]);
    s.server(&[N(ERROR), S(message.as_bytes()), N(1)]);
    s
}

#[test]
fn a_written_1_38_session_passes_every_check() {
    let t = session_1_38().transcript(0, "");
    let detail = worker::check(&t).expect("passes");
    assert_eq!(
        detail,
        "4 requests at 1.38: completed (1 requests refused by the daemon, as recorded)"
    );
}

#[test]
fn a_written_1_21_session_passes_every_check() {
    let t = session_1_21().transcript(0, "");
    let detail = worker::check(&t).expect("passes");
    assert!(detail.starts_with("3 requests at 1.21"), "{detail}");
}

#[test]
fn a_refusal_is_checked_against_what_the_recorded_client_printed() {
    // The client printed the daemon's message (in colour) and gave up.
    let said = format!("error: path '\u{1b}[35;1m{INVALID}\u{1b}[0m' is not a valid store path\n");
    let t = session_1_21().transcript(1, &said);
    let detail = worker::check(&t).expect("refused as recorded");
    assert!(detail.contains("refused as recorded"), "{detail}");

    // A refusal of another path is not what the client printed.
    let t = session_1_21().transcript(
        1,
        "error: path '/nix/store/zzz.drv!out' is not a valid store path\n",
    );
    let err = worker::check(&t).expect_err("another refusal");
    assert!(err.contains("no refusal it printed"), "{err}");
}

#[test]
fn a_tampered_written_session_fails_the_check() {
    // The first reply (IsValidPath's bool) becomes 3.
    let mut t = session_1_38().transcript(0, "");
    let server = t.stream(From::Server);
    let at = server
        .windows(16)
        .position(|w| w[..8] == LAST.to_le_bytes() && w[8..] == 1u64.to_le_bytes())
        .expect("LAST, then true");
    tamper(&mut t, From::Server, at + 8, 0x02);
    let err = worker::check(&t).expect_err("tampered");
    assert!(
        err.contains("codec, server stream") && err.contains("boolean"),
        "{err}"
    );

    // A frame of the body cut short: the client's stream no longer decodes.
    let mut t = session_1_38().transcript(0, "");
    let chunk = t
        .chunks
        .iter_mut()
        .find(|c| c.from == From::Client && c.data.first() == Some(&39))
        .expect("AddToStoreNar");
    chunk.data.truncate(chunk.data.len() - 8);
    let err = worker::check(&t).expect_err("tampered");
    assert!(err.contains("codec, client stream"), "{err}");
}
