//! `nixwire record` and `nixwire decode --live`: as the `remote-program` of
//! real Nix 2.8 copies through the loopback sshd (`ssh://` with
//! `nix-store`, `ssh-ng://` with `nix-daemon`), each transcript loaded by
//! the conformance reader, decoded whole by `nixwire decode`, replayed by
//! the conformance suite's core, and holding the very NAR bytes of the
//! copied paths; around plain commands, the bytes passed through exactly,
//! the child's exit status and signals passed on, and a child flooding
//! stderr while its stdout is idle finishing.
//!
//! Without Nix or the sshd a Nix test says why and passes, unless
//! `CI=true` or `NIXWIRE_REQUIRE_NIX=1` (see `nixwire-testkit`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nixwire_conformance::link::Link;
use nixwire_conformance::transcript::{self, From, Transcript};
use nixwire_conformance::{Verdict, check_file};
use nixwire_core::session::Protocol;
use nixwire_core::store::StorePath;
use nixwire_testkit as kit;

const NIXWIRE: &str = env!("CARGO_BIN_EXE_nixwire");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The finished transcripts in `dir` once `count` are there and none is
/// still being written (Nix does not wait for its remote program to end,
/// so the recorder may finish just after the client).
fn transcripts(dir: &Path, count: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut done = Vec::new();
        let mut part = false;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".part") {
                part = true;
            } else if name.starts_with("conn") && name.ends_with(".json") {
                done.push(entry.path());
            }
        }
        done.sort();
        if done.len() >= count && !part {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {} transcripts, {part} still written, after 30 s",
            dir.display(),
            done.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// `nix-store --dump` of `path` in the chroot store `root` (Nix 2.8's
/// `--dump` reads the file system, not the store: the chroot's copy).
fn dump(root: &Path, path: &StorePath) -> Vec<u8> {
    let real = root.join(kit::full(path).trim_start_matches('/'));
    let out = kit::nix_command("nix-store")
        .arg("--dump")
        .arg(real)
        .output()
        .expect("nix-store --dump");
    assert!(out.status.success(), "{}", text(&out.stderr));
    out.stdout
}

/// Checks one recorded transcript the three ways: the reader, `nixwire
/// decode`, the conformance replay. Returns it.
fn check_transcript(path: &Path, protocol: &str) -> Transcript {
    let t = transcript::load(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.protocol, protocol, "{}", path.display());
    let out = Command::new(NIXWIRE)
        .arg("decode")
        .arg(path)
        .output()
        .expect("nixwire decode");
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}: {printed}", path.display());
    assert!(printed.ends_with("every byte decoded\n"), "{printed}");
    let (_, verdict) = check_file(path, &Link::default());
    assert!(
        matches!(verdict, Verdict::Ok(_)),
        "{}: {verdict:?}",
        path.display()
    );
    t
}

/// `nix copy` with a recording remote program: to the remote store, then
/// back from it into a third store, each through `proto`, recorded into
/// `dir/to` and `dir/from`.
fn copy_recorded(protocol: Protocol) {
    if !kit::have_nix() {
        return;
    }
    let Some(sshd) = kit::Sshd::from_env() else {
        return;
    };
    let (name, program) = match protocol {
        Protocol::Serve => ("serve", "nix-store"),
        Protocol::Worker => ("worker", "nix-daemon"),
    };
    let dir = kit::scratch(&format!("record-{name}"));
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    let closure = kit::small_closure(&a, &format!("record-{name}"));
    let top = kit::full(&closure[closure.len() - 1]);
    let (uri, sshopts) = sshd.uri_for_nix(protocol, &b);
    for (way, local) in [("to", &a), ("from", &c)] {
        let record = dir.join(way);
        // Spaces in a URI's parameter: `%20` (Nix decodes the query).
        let remote_program =
            format!("{NIXWIRE} record --dir {} -- {program}", record.display()).replace(' ', "%20");
        let uri = format!("{uri}&remote-program={remote_program}");
        let flag = if way == "to" { "--to" } else { "--from" };
        let out = kit::nix_command("nix")
            .env("NIX_SSHOPTS", &sshopts)
            .args(["copy", "--no-check-sigs", "--store"])
            .arg(local)
            .args([flag, &uri, &top])
            .output()
            .expect("nix copy");
        assert!(out.status.success(), "{way} {uri}: {}", text(&out.stderr));
        let files = transcripts(&record, 1);
        let mut client = Vec::new();
        let mut server = Vec::new();
        for f in &files {
            let t = check_transcript(f, name);
            client.extend(t.stream(From::Client));
            server.extend(t.stream(From::Server));
        }
        // The NARs crossed the recorder as they are.
        for path in &closure {
            let nar = dump(&a, path);
            let stream = if way == "to" { &client } else { &server };
            assert!(contains(stream, &nar), "{way}: no NAR of {path}");
            assert!(kit::is_valid(if way == "to" { &b } else { &c }, path));
        }
    }
}

#[test]
fn record_a_serve_copy_to_and_from_real_nix() {
    copy_recorded(Protocol::Serve);
}

#[test]
fn record_a_worker_copy_to_and_from_real_nix() {
    copy_recorded(Protocol::Worker);
}

/// Runs `nixwire record --out FILE -- sh -c SCRIPT` with `input` on its
/// stdin, written from a thread while its output is read (with both
/// pipes full, writing first would never end).
fn record_sh(file: &Path, script: &str, input: &[u8]) -> Output {
    let mut child = Command::new(NIXWIRE)
        .args(["record", "--out"])
        .arg(file)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nixwire");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

#[test]
fn record_passes_bytes_through_exactly_and_records_them() {
    let dir = kit::scratch("record-cat");
    let file = dir.join("t.json");
    // 3 MB of varied bytes: several chunks, every byte value.
    let input: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let out = record_sh(&file, "cat; echo bye >&2; exit 7", &input);
    // The child's status, its stdout and stderr as they were.
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(out.stdout == input, "stdout differs from the input");
    assert_eq!(text(&out.stderr), "bye\n");
    let t = transcript::load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert!(t.stream(From::Client) == input);
    assert!(t.stream(From::Server) == input);
    assert_eq!(t.stream(From::Stderr), b"bye\n");
    assert!(t.chunks.iter().all(|c| c.data.len() <= 1024 * 1024));
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    assert_eq!(raw["server_exit"], 7);
    assert_eq!(raw["server_command"][0], "sh");
    assert!(raw["chunks"][0]["t"].as_f64().is_some());
}

#[test]
fn record_survives_a_stderr_flood_while_stdout_is_idle() {
    let dir = kit::scratch("record-flood");
    let file = dir.join("t.json");
    let started = Instant::now();
    // 50 MB on stderr before a byte on stdout (NixOS/nix#16437).
    let out = record_sh(&file, "head -c 50000000 /dev/zero >&2; echo done", b"");
    let took = started.elapsed();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(out.stderr.len(), 50_000_000);
    assert_eq!(text(&out.stdout), "done\n");
    assert!(took < Duration::from_secs(120), "took {took:?}");
    let t = transcript::load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.stream(From::Stderr).len(), 50_000_000);
    assert_eq!(t.stream(From::Server), b"done\n");
}

#[test]
fn record_passes_sigterm_and_sighup_on_and_exits_as_the_child_did() {
    let dir = kit::scratch("record-signals");
    // The shell's codes for a child killed by the signal: 128 + N.
    for (signal, code) in [("TERM", 143), ("HUP", 129)] {
        let file = dir.join(format!("{signal}.json"));
        let mut child = Command::new(NIXWIRE)
            .args(["record", "--out"])
            .arg(&file)
            .args(["--", "sleep", "60"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nixwire");
        // Until the sleep runs.
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        let killed = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", child.id())])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = child.wait().expect("wait");
        assert!(started.elapsed() < Duration::from_secs(10), "{signal}");
        assert_eq!(status.code(), Some(code), "{signal}");
        let t = transcript::load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.chunks.is_empty());
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
        assert_eq!(raw["server_exit"], code, "{signal}");
    }
}

/// The lines of a decoded session without its `session` lines (the live
/// log opens with one naming the command and has the counted one at the
/// end).
fn without_session(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.contains(" session  ")).collect()
}

/// `decode --live` as the remote program of a real `nix copy`: the log
/// holds what `nixwire decode` prints for the transcript saved in the
/// same run, for both protocols.
#[test]
fn decode_live_during_a_real_copy_logs_what_decode_prints() {
    if !kit::have_nix() {
        return;
    }
    let Some(sshd) = kit::Sshd::from_env() else {
        return;
    };
    let dir = kit::scratch("record-live");
    let a = dir.join("a");
    let closure = kit::small_closure(&a, "record-live");
    let top = kit::full(&closure[closure.len() - 1]);
    for (protocol, program) in [
        (Protocol::Serve, "nix-store"),
        (Protocol::Worker, "nix-daemon"),
    ] {
        let b = dir.join(format!("b-{program}"));
        let log = dir.join(format!("{program}.log"));
        let saved = dir.join(program).join("conn0.json");
        let (uri, sshopts) = sshd.uri_for_nix(protocol, &b);
        let remote_program = format!(
            "{NIXWIRE} decode --live --log {} --out {} -- {program}",
            log.display(),
            saved.display()
        )
        .replace(' ', "%20");
        let uri = format!("{uri}&remote-program={remote_program}");
        let out = kit::nix_command("nix")
            .env("NIX_SSHOPTS", &sshopts)
            .args(["copy", "--no-check-sigs", "--store"])
            .arg(&a)
            .args(["--to", &uri, &top])
            .output()
            .expect("nix copy");
        assert!(out.status.success(), "{uri}: {}", text(&out.stderr));
        transcripts(&dir.join(program), 1);
        // The log is complete before the transcript is renamed into place.
        let logged = std::fs::read_to_string(&log).expect("the log");
        let decoded = Command::new(NIXWIRE)
            .arg("decode")
            .arg(&saved)
            .output()
            .expect("nixwire decode");
        let decoded = text(&decoded.stdout);
        assert!(decoded.ends_with("every byte decoded\n"), "{decoded}");
        assert_eq!(
            without_session(&logged),
            without_session(&decoded),
            "{program}"
        );
        assert!(
            logged.contains("request  AddToStoreNar")
                || logged.contains("request  AddMultipleToStore")
        );
        // The counted session line is there too, as decode prints it.
        let session = decoded.lines().next().unwrap_or_default();
        assert!(logged.contains(session), "{logged}");
    }
}

/// A session that hangs: the log shows its requests and replies while it
/// is still open, then the rest when it ends.
#[test]
fn decode_live_shows_a_hanging_session_as_it_goes() {
    if !kit::have_nix() {
        return;
    }
    let dir = kit::scratch("record-live-hang");
    let store = dir.join("s");
    let log = dir.join("live.log");
    let mut child = Command::new(NIXWIRE)
        .args(["decode", "--live", "--log"])
        .arg(&log)
        .args(["--", "nix-store", "--serve", "--write", "--store"])
        .arg(&store)
        .envs(kit::nix_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("nixwire decode --live");
    let mut stdin = child.stdin.take().expect("stdin");
    // Serve hello at 2.5, then QueryValidPaths of no paths; the session
    // then stays open, as a client waiting on a build would keep it.
    let mut bytes = Vec::new();
    for word in [0x390c_9debu64, 0x205, 1, 0, 0, 0] {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    stdin.write_all(&bytes).expect("write");
    stdin.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    while Instant::now() < deadline {
        seen = std::fs::read_to_string(&log).unwrap_or_default();
        if seen.contains("S> @16      reply    QueryValidPaths([])") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen.contains("C> @16      request  QueryValidPaths"),
        "{seen}"
    );
    assert!(
        seen.contains("S> @16      reply    QueryValidPaths([])"),
        "{seen}"
    );
    assert!(
        !seen.contains(" end "),
        "ended before the session did: {seen}"
    );
    drop(stdin);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    let done = std::fs::read_to_string(&log).expect("log");
    assert!(done.starts_with(&seen), "{seen}\n---\n{done}");
    assert!(done.ends_with("every byte decoded\n"), "{done}");
}
