//! `cargo test` runs the conformance suite over every transcript in
//! `conformance/captures`, and checks that the suite notices tampering.

use std::path::{Path, PathBuf};

use nixwire_conformance::transcript::{self, From};
use nixwire_conformance::{Verdict, check_file, serve};

fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

fn check_all(dir: &Path) -> usize {
    let files = transcript::find(dir).expect("transcripts folder");
    let mut failures = Vec::new();
    let mut passed = 0;
    for file in &files {
        match check_file(file) {
            (_, Verdict::Ok(_)) => passed += 1,
            (name, Verdict::Fail(why)) => failures.push(format!("{name}: {why}")),
            (_, Verdict::Skip(_)) => {}
        }
    }
    assert!(failures.is_empty(), "failed:\n{}", failures.join("\n"));
    passed
}

#[test]
fn every_serve_transcript_passes() {
    // 6 serve scenarios x 15 version pairs; build has 3 connections (but the
    // one run whose client aborted after 1).
    assert_eq!(check_all(&captures()), 118, "serve transcripts checked");
}

#[test]
fn every_transcript_recorded_here_passes() {
    // 8 serve scenarios of Nix 2.8 against itself; build has 3 connections.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recorded");
    assert_eq!(check_all(&dir), 10, "transcripts checked");
}

fn load(name: &str) -> transcript::Transcript {
    transcript::load(&captures().join(name)).expect("transcript")
}

/// XORs byte `offset` of the stream `from` with `mask`.
fn tamper(t: &mut transcript::Transcript, from: From, offset: usize, mask: u8) {
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
