//! Runs the built `nixwire-replay` on captured sessions, playing the client
//! from the recorded client bytes (as they were, or altered).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;

use nixwire_conformance::transcript::{self, From, Transcript};

/// A small serve session whose server also writes on stderr (the failing
/// builder's log).
const SERVE: &str = "serve-build-fail-client2.34-server2.34/conn0.json";
/// A worker session with a handshake and several requests.
const WORKER: &str = "worker-path-info-client2.34-server2.34/conn0.json";

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/captures")
        .join(name)
}

fn load(name: &str) -> Transcript {
    transcript::load(&capture(name)).expect("transcript")
}

/// A fresh report path for one test.
fn report_path(test: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("replay-report-{test}"));
    let _ = std::fs::remove_file(&path);
    path
}

fn spawn(name: &str, report: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nixwire-replay"))
        .arg("--report")
        .arg(report)
        .arg(capture(name))
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nixwire-replay")
}

/// Runs the replay of `name` with `input` as the client's bytes, written at
/// once from a thread (so that the replay's output is drained meanwhile).
fn run(name: &str, input: Vec<u8>, report: &Path) -> Output {
    let mut child = spawn(name, report, &[]);
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = thread::spawn(move || {
        // The replay may stop reading early (that is what some tests check).
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    out
}

fn stderr_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(text.lines().count(), 1, "one line on stderr: {text:?}");
    assert!(text.starts_with("nixwire-replay: "), "{text:?}");
    text.trim_end().to_owned()
}

fn read_report(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("report")
        .trim_end()
        .to_owned()
}

#[test]
fn a_serve_session_replays() {
    let t = load(SERVE);
    assert!(!t.stream(From::Stderr).is_empty());
    let report = report_path("serve-ok");
    let out = run(SERVE, t.stream(From::Client), &report);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, t.stream(From::Server));
    assert_eq!(out.stderr, t.stream(From::Stderr));
    assert_eq!(read_report(&report), "ok");
}

/// The client waits for every answer before it sends the next request, as
/// a real one does: the replay must answer without waiting for more.
#[test]
fn a_worker_session_replays_turn_by_turn() {
    let t = load(WORKER);
    let report = report_path("worker-ok");
    // The arguments Nix appends to an ssh-ng store's remote program.
    let mut child = spawn(WORKER, &report, &["--stdio"]);
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = thread::spawn(move || {
        let mut text = Vec::new();
        stderr.read_to_end(&mut text).expect("stderr");
        text
    });
    for chunk in &t.chunks {
        match chunk.from {
            From::Client => {
                stdin.write_all(&chunk.data).expect("write");
                stdin.flush().expect("flush");
            }
            From::Server => {
                let mut got = vec![0; chunk.data.len()];
                stdout.read_exact(&mut got).expect("the recorded answer");
                assert_eq!(got, chunk.data);
            }
            From::Stderr => {}
        }
    }
    drop(stdin);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("stdout");
    assert!(rest.is_empty(), "{rest:?}");
    let status = child.wait().expect("wait");
    assert_eq!(errors.join().expect("stderr"), t.stream(From::Stderr));
    assert_eq!(status.code(), Some(0));
    assert_eq!(read_report(&report), "ok");
}

#[test]
fn a_flipped_client_byte_is_a_mismatch_at_its_offset() {
    let t = load(SERVE);
    let mut input = t.stream(From::Client);
    // Past the first client chunk (16 bytes), so the first answer went out.
    let offset = 20;
    input[offset] ^= 0x01;
    let report = report_path("flipped");
    let out = run(SERVE, input, &report);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let line = stderr_line(&out);
    assert!(line.contains(&format!("offset {offset} ")), "{line}");
    assert!(
        line.contains("expected") && line.contains("received"),
        "{line}"
    );
    assert_eq!(read_report(&report), line);
    let first_answer = &t.chunks[1];
    assert_eq!(first_answer.from, From::Server);
    assert_eq!(out.stdout, first_answer.data);
}

#[test]
fn extra_client_bytes_are_a_mismatch() {
    let t = load(WORKER);
    let mut input = t.stream(From::Client);
    let end = input.len();
    input.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    let report = report_path("extra");
    let out = run(WORKER, input, &report);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let line = stderr_line(&out);
    assert!(
        line.contains(&format!("offset {end} of the client stream:")),
        "{line}"
    );
    assert!(line.contains("end of input"), "{line}");
    assert_eq!(out.stdout, t.stream(From::Server));
}

#[test]
fn a_short_stdin_says_how_much_came() {
    let t = load(SERVE);
    let mut input = t.stream(From::Client);
    let expected = input.len();
    input.truncate(expected - 10);
    let report = report_path("short");
    let out = run(SERVE, input, &report);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let line = stderr_line(&out);
    assert!(
        line.contains(&format!(
            "ended after {} bytes of the client stream; {expected} were expected",
            expected - 10
        )),
        "{line}"
    );
    assert_eq!(read_report(&report), line);
}

#[test]
fn a_client_that_went_away_is_exit_5_without_a_word() {
    let t = load(SERVE);
    let report = report_path("gone");
    let mut child = spawn(SERVE, &report, &["--serve", "--write"]);
    // Nobody reads the answers.
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().expect("stdin");
    let input = t.stream(From::Client);
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = read_report(&report);
    assert!(
        report.starts_with("nixwire-replay: the client went away"),
        "{report}"
    );
}

#[test]
fn an_unreadable_transcript_is_exit_2() {
    let report = report_path("missing");
    let out = run("no-such-run/conn0.json", Vec::new(), &report);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let line = stderr_line(&out);
    assert!(line.contains("no-such-run"), "{line}");
    assert_eq!(read_report(&report), line);
}
