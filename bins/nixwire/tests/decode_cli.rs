//! `nixwire decode` on real captured sessions, and on a corrupted copy.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;

fn capture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/captures")
        .join(name)
}

fn nixwire(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nixwire"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run nixwire: {e}"))
}

fn decode(path: &Path, json: bool) -> Output {
    let path = path.to_str().unwrap_or_default();
    if json {
        nixwire(&["decode", path, "--json"])
    } else {
        nixwire(&["decode", path])
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_serve_build_decodes_whole() {
    let o = decode(
        &capture("serve-build-client2.34-server2.34/conn2.json"),
        false,
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for want in [
        "C> @0       hello    client announces serve 2.7; both speak 2.7",
        "S> @0       hello    server announces serve 2.7; both speak 2.7",
        "request  QueryValidPaths",
        "request  BuildDerivation",
        "reply    BuildDerivation",
        // The server's stderr, a line each.
        "S! @0       log      \"log line 19\"",
        "every byte decoded",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    // Lines are in time order: the build's request before its reply.
    let req = out.find("request  BuildDerivation").unwrap_or_default();
    let rep = out.find("reply    BuildDerivation").unwrap_or_default();
    assert!(req < rep, "{out}");
}

#[test]
fn a_worker_path_info_decodes_whole() {
    let o = decode(
        &capture("worker-path-info-client2.34-server2.34/conn0.json"),
        false,
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for want in [
        "client announces worker 1.38",
        "both speak 1.38",
        "request  QueryPathInfo",
        "reply    QueryPathInfo",
        "every byte decoded",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
}

#[test]
fn a_worker_build_at_1_21_shows_its_activities_and_log() {
    let o = decode(
        &capture("worker-build-client2.3-server2.34/conn2.json"),
        false,
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for want in [
        "server announces worker 1.38",
        "both speak 1.21",
        "request  BuildDerivation",
        "activity StartActivity",
        "\"log line 19\"",
        "reply    BuildDerivation(BuildResult { status: Built",
        "reply    NarFromPath(NarDone { nar_size: 560 }), after a NAR of 560 bytes",
        "every byte decoded",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
}

#[test]
fn json_is_one_object_per_line() {
    let o = decode(
        &capture("worker-path-info-client2.34-server2.34/conn0.json"),
        true,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let mut kinds = Vec::new();
    for line in stdout(&o).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["direction", "offset", "kind", "text"] {
            assert!(v.get(key).is_some(), "no {key} in {line}");
        }
        kinds.push(v["kind"].as_str().unwrap_or_default().to_owned());
    }
    assert!(kinds.iter().any(|k| k == "request"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "reply"), "{kinds:?}");
}

/// A copy of a transcript with the first 8 bytes of one server chunk
/// flipped; returns the copy and that chunk's offset in the server stream.
fn corrupted(name: &str, dir: &Path) -> (PathBuf, usize) {
    let text = std::fs::read_to_string(capture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let engine = base64::engine::general_purpose::STANDARD;
    let chunks = v["chunks"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("chunks"));
    let mut offset = 0;
    let mut seen = 0;
    let mut at = None;
    for c in chunks.iter_mut() {
        if c["from"] != "server" {
            continue;
        }
        let mut data = engine
            .decode(c["data"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        // The third server chunk: after the handshake.
        seen += 1;
        if seen == 3 {
            for b in data.iter_mut().take(8) {
                *b ^= 0xff;
            }
            c["data"] = engine.encode(&data).into();
            at = Some(offset);
            break;
        }
        offset += data.len();
    }
    let at = at.unwrap_or_else(|| panic!("{name} has fewer than 3 server chunks"));
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("conn0.json");
    std::fs::write(&path, v.to_string()).unwrap_or_else(|e| panic!("{e}"));
    (path, at)
}

#[test]
fn a_corrupted_copy_fails_and_names_the_offset() {
    let dir = std::env::temp_dir().join(format!("nixwire-decode-{}", std::process::id()));
    let (path, at) = corrupted("worker-path-info-client2.34-server2.34/conn0.json", &dir);
    let o = decode(&path, false);
    let out = stdout(&o);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // The failing byte is named: in the flipped chunk, at or after its start.
    let named = out
        .split(" fails at byte offset ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no failing offset in:\n{out}"));
    assert!(
        named >= at,
        "offset {named} before the flipped chunk at {at}:\n{out}"
    );
    assert!(
        out.contains(&format!("bytes starting at {at})")),
        "the flipped chunk at {at} is not named in:\n{out}"
    );
    assert!(out.contains("dump"), "{out}");
    assert!(!out.contains("every byte decoded"), "{out}");
}

#[test]
fn no_transcript_is_a_usage_error() {
    assert_eq!(nixwire(&["decode"]).status.code(), Some(2));
}

#[test]
fn a_file_that_is_not_a_transcript_exits_1_and_says_why() {
    let o = decode(&capture("worker-ping-client2.8-server2.8/meta.json"), false);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a transcript"), "{err}");
}

/// A copy of `name` with `extra` appended to the server's stream, as a
/// chunk of its own.
fn with_server_bytes(name: &str, extra: &[u8], dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(capture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let engine = base64::engine::general_purpose::STANDARD;
    v["chunks"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("chunks"))
        .push(serde_json::json!({"from": "server", "data": engine.encode(extra)}));
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("conn0.json");
    std::fs::write(&path, v.to_string()).unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn a_failing_session_in_json_names_the_failing_byte() {
    // After the failed build's reply (which a 2.5 client expects to end at
    // byte 216) and the 8 bytes of built outputs a 2.8 server adds, 8 more
    // that nothing explains.
    let dir = std::env::temp_dir().join(format!("nixwire-decode-extra-{}", std::process::id()));
    let path = with_server_bytes(
        "serve-build-fail-client2.3-server2.8/conn0.json",
        &5u64.to_le_bytes(),
        &dir,
    );
    let o = decode(&path, true);
    let _ = std::fs::remove_dir_all(&dir);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let error = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["kind"] == "error")
        .unwrap_or_else(|| panic!("no error line in:\n{out}"));
    assert_eq!(error["direction"], "S>", "{error}");
    assert_eq!(error["offset"], 224, "{error}");
    assert!(
        error["text"]
            .as_str()
            .is_some_and(|t| t.contains("nothing was owed")),
        "{error}"
    );
}

/// Nix 2.8's serve server sends a `BuildDerivation` reply's built outputs
/// even to a serve 2.5 client (Nix 2.3), which has no such field: the
/// decoder names those bytes and goes on, where it used to stop at them
/// ("the server sent 1 bytes while nothing was owed"). A 2.26 server,
/// which does not send them, gets no such line.
#[test]
fn a_2_8_servers_built_outputs_to_a_2_5_client_are_named_and_passed_over() {
    for (name, extra) in [
        ("serve-build-client2.3-server2.8", 312),
        ("serve-build-fail-client2.3-server2.8", 8),
    ] {
        let o = decode(&capture(&format!("{name}/conn0.json")), false);
        let out = stdout(&o);
        assert!(o.status.success(), "{name}: {out}");
        assert!(out.ends_with("every byte decoded\n"), "{name}: {out}");
        let quirk: Vec<&str> = out.lines().filter(|l| l.contains(" quirk ")).collect();
        assert_eq!(quirk.len(), 1, "{name}: {out}");
        assert!(
            quirk[0].contains(&format!(
                "{extra} more bytes: the built outputs of serve 2.7"
            )),
            "{name}: {}",
            quirk[0]
        );
    }
    // The build that went on: the reply after the built outputs decodes.
    let out = stdout(&decode(
        &capture("serve-build-client2.3-server2.8/conn0.json"),
        false,
    ));
    assert!(
        out.contains("S> @384     reply    QueryPathInfos("),
        "{out}"
    );
    for name in [
        "serve-build-client2.3-server2.26",
        "serve-build-fail-client2.3-server2.26",
    ] {
        for n in 0..3 {
            let path = capture(&format!("{name}/conn{n}.json"));
            if !path.exists() {
                continue;
            }
            let out = stdout(&decode(&path, false));
            assert!(!out.contains(" quirk "), "{name}/conn{n}: {out}");
            assert!(out.ends_with("every byte decoded\n"), "{name}: {out}");
        }
    }
}
