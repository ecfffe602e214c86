//! The core's worker client against a real `nix-daemon --stdio` from
//! Debian's `nix-bin` (Nix 2.8, worker protocol 1.34), over pipes, in a
//! private store. The tests bring their own Nix settings and skip without
//! Nix: see the `support` module.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nixwire_core::conn::{ErrorClass, LogSource};
use nixwire_core::nar::Node;
use nixwire_core::store::{BuildStatus, NarHash, PathInfo, StorePath};
use nixwire_core::wire::{Cx, Version, Wire, Worker};
use nixwire_core::worker::handshake::HandshakeInfo;
use nixwire_core::worker::messages::{
    AddMultipleToStore, AddToStoreNar, BuildDerivation, BuildMode, IsValidPath, NarFromPath,
    QueryPathInfo, QueryValidPaths, ValidPathInfo,
};
use nixwire_core::worker::{Client, ClientConfig, ClientEvent, Reply, Request};
use sha2::{Digest, Sha256};
use support::{have_nix, nix_args, nix_command, run_nix, store, store_path};

/// What a request came to, and what came with it.
#[derive(Debug)]
enum Outcome {
    Reply(Box<Reply>, Vec<u8>),
    Failed(nixwire_core::conn::Error),
}

struct Daemon {
    inner: support::Driver<Client>,
    connected: Option<(Version, HandshakeInfo)>,
    /// Every log text of the last request, in order.
    logs: Vec<(LogSource, Vec<u8>)>,
    /// How many activities the last request reported.
    activities: usize,
}

impl Daemon {
    fn start(store: &Path) -> Self {
        let mut args = nix_args(store);
        args.push("--stdio".into());
        let mut config = ClientConfig::default();
        config.handshake_timeout = Some(Duration::from_secs(30));
        let client = Client::new(config, Instant::now());
        Self {
            inner: support::Driver::spawn("nix-daemon", &args, client),
            connected: None,
            logs: Vec::new(),
            activities: 0,
        }
    }

    /// Sends `request`, offers `body` when it is wanted (ending it if it is
    /// data rather than a NAR), and runs the loop until the request is
    /// answered.
    fn ask(&mut self, request: impl Into<Request>, body: Option<Bytes>) -> Outcome {
        let id = self
            .inner
            .conn
            .request(Instant::now(), request)
            .expect("request");
        let mut nar = Vec::new();
        let mut offered = 0;
        let connected = &mut self.connected;
        let logs = &mut self.logs;
        let activities = &mut self.activities;
        logs.clear();
        *activities = 0;
        self.inner
            .run(|client, event| {
                match event {
                    ClientEvent::Connected { version, info, .. } => {
                        *connected = Some((version, info));
                    }
                    ClientEvent::BodyWanted { id: wanted, max } => {
                        let body = body.as_ref().expect("a body");
                        let end = max.map_or(body.len(), |m| {
                            (offered + usize::try_from(m).unwrap_or(usize::MAX)).min(body.len())
                        });
                        offered +=
                            client.offer_body(Instant::now(), wanted, body.slice(offered..end))?;
                        // A body of data ends when the host says.
                        if offered == body.len() && client.body_wanted().is_some() {
                            client.finish_body(Instant::now(), wanted)?;
                        }
                    }
                    ClientEvent::NarChunk { data, .. } => nar.extend_from_slice(&data),
                    ClientEvent::Log(log) if log.request == Some(id) => {
                        logs.push((log.source, log.text.to_vec()));
                    }
                    ClientEvent::Activity {
                        request: Some(r), ..
                    } if r == id => *activities += 1,
                    ClientEvent::Reply { id: done, reply } if done == id => {
                        return Ok(Some(Outcome::Reply(
                            Box::new(reply),
                            std::mem::take(&mut nar),
                        )));
                    }
                    ClientEvent::Failed { id: done, error } if done == id => {
                        return Ok(Some(Outcome::Failed(error)));
                    }
                    _ => {}
                }
                Ok(None)
            })
            .expect("the connection works")
    }
}

/// The reply a request came to, if it was answered.
fn reply_of(outcome: &Outcome) -> Option<&Reply> {
    match outcome {
        Outcome::Reply(reply, _) => Some(reply.as_ref()),
        Outcome::Failed(_) => None,
    }
}

/// Adds a file to `store` with the real Nix and returns its path.
fn add_file(store: &Path, name: &str, contents: &str) -> StorePath {
    let dir = store
        .parent()
        .expect("a parent")
        .join(format!("{name}-src"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join(name);
    std::fs::write(&file, contents).expect("write");
    let mut args = nix_args(store);
    args.push("--add".into());
    args.push(file.display().to_string());
    store_path(run_nix("nix-store", &args).trim())
}

/// Nix's own serialisation of a path in `store` (`--dump` serialises a
/// file-system path: the path's real location under the chroot store).
fn dump(store: &Path, path: &StorePath) -> Vec<u8> {
    let mut args = nix_args(store);
    args.push("--dump".into());
    args.push(format!("{}{}", store.display(), support::full(path)));
    let out = nix_command("nix-store").args(&args).output().expect("dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn handshake_queries_and_nar_from_path_against_a_real_daemon() {
    if !have_nix() {
        return;
    }
    let store = store("worker-query");
    let known = add_file(&store, "known", "hello from the daemon\n");
    let unknown: StorePath = "00000000000000000000000000000000-absent"
        .parse()
        .expect("a valid path");
    let mut daemon = Daemon::start(&store);

    let valid = daemon.ask(
        IsValidPath {
            path: known.clone(),
        },
        None,
    );
    assert_eq!(reply_of(&valid), Some(&Reply::IsValidPath(true)));
    let (version, info) = daemon.connected.clone().expect("connected");
    assert_eq!(version, Version::new(1, 34), "Debian's Nix 2.8");
    assert_eq!(info.daemon_version, "2.8.0");

    let query = daemon.ask(
        QueryValidPaths {
            paths: vec![known.clone(), unknown.clone()],
            substitute: false,
        },
        None,
    );
    assert_eq!(
        reply_of(&query),
        Some(&Reply::QueryValidPaths(vec![known.clone()]))
    );

    let Outcome::Reply(reply, nar) = daemon.ask(
        NarFromPath {
            path: known.clone(),
        },
        None,
    ) else {
        panic!("a NAR");
    };
    let Reply::NarFromPath(done) = *reply else {
        panic!("{reply:?}");
    };
    assert_eq!(
        nar,
        dump(&store, &known),
        "the same bytes as nix-store --dump"
    );
    assert_eq!(done.nar_size, nar.len() as u64);
    // (A NAR of an invalid path is no test of refusals: Nix 2.8 starts the
    // NAR before it finds out, and the stream is lost, for Nix's own client
    // too. Refusals are tested with a NAR hash that does not match, below.)
}

#[test]
fn add_to_store_nar_into_a_real_daemon() {
    if !have_nix() {
        return;
    }
    let store = store("worker-add");
    let nar = Bytes::from(
        Node::Directory(vec![
            (
                b"data".to_vec(),
                Node::Regular {
                    executable: false,
                    contents: vec![b'x'; 200_000],
                },
            ),
            (
                b"run".to_vec(),
                Node::Regular {
                    executable: true,
                    contents: b"#!/bin/sh\necho hi\n".to_vec(),
                },
            ),
        ])
        .to_nar(),
    );
    let digest: [u8; 32] = Sha256::digest(&nar).into();
    // Any hash part will do for a path added with its NAR hash and no
    // signatures by a trusted client.
    let path: StorePath = "1b8m03r63zqhnjf7l5wnldhh7c134ap5-added"
        .parse()
        .expect("a valid path");
    let mut daemon = Daemon::start(&store);
    let add = AddToStoreNar {
        path: path.clone(),
        deriver: None,
        nar_hash: NarHash(digest),
        references: vec![],
        registration_time: 0,
        nar_size: nar.len() as u64,
        ultimate: false,
        sigs: vec![],
        ca: None,
        provenance: None,
        repair: false,
        dont_check_sigs: true,
    };
    // A NAR hash that does not match: the daemon reads the whole body, then
    // refuses the request, and the connection goes on.
    let mut wrong = add.clone();
    wrong.nar_hash = NarHash([7; 32]);
    let Outcome::Failed(error) = daemon.ask(wrong, Some(nar.clone())) else {
        panic!("a refusal");
    };
    assert_eq!(error.class(), ErrorClass::Refused);
    assert!(error.to_string().contains("hash mismatch"), "{error}");

    let outcome = daemon.ask(add, Some(nar.clone()));
    assert!(
        matches!(&outcome, Outcome::Reply(r, _) if matches!(**r, Reply::AddToStoreNar(_))),
        "{outcome:?}"
    );
    assert_eq!(
        dump(&store, &path),
        nar.to_vec(),
        "the daemon stored what was sent"
    );
    let valid = daemon.ask(IsValidPath { path }, None);
    assert_eq!(reply_of(&valid), Some(&Reply::IsValidPath(true)));
}

#[test]
fn query_path_info_and_add_multiple_to_store_against_a_real_daemon() {
    if !have_nix() {
        return;
    }
    let store = store("worker-multiple");
    let known = add_file(&store, "info", "what the daemon knows\n");
    let mut daemon = Daemon::start(&store);
    let Outcome::Reply(reply, _) = daemon.ask(
        QueryPathInfo {
            path: known.clone(),
        },
        None,
    ) else {
        panic!("an answer");
    };
    let Reply::QueryPathInfo(Some(info)) = *reply else {
        panic!("{reply:?}");
    };
    let dumped = dump(&store, &known);
    assert_eq!(info.nar_size, dumped.len() as u64);
    assert_eq!(info.nar_hash, Some(NarHash(Sha256::digest(&dumped).into())));
    assert!(
        info.ca.is_some(),
        "nix-store --add makes a content-addressed path"
    );

    // Two paths in one AddMultipleToStore: a count, then each path's info
    // (at the version the body is encoded at) and its NAR, as data.
    let (version, _) = daemon.connected.clone().expect("connected");
    let mut cx = Cx::<Worker>::new(version);
    cx.features = daemon.inner.conn.features().clone();
    let item_cx = AddMultipleToStore::item_cx(&cx);
    let mut body = Vec::new();
    let mut added = Vec::new();
    nixwire_core::wire::encode_u64(2, &mut body);
    for (n, text) in [(1u8, &b"first"[..]), (2, &b"second"[..])] {
        let nar = Node::Regular {
            executable: false,
            contents: text.to_vec(),
        }
        .to_nar();
        let path: StorePath = format!("{}-multiple-{n}", "1b8m03r63zqhnjf7l5wnldhh7c134ap5")
            .replacen('1', &n.to_string(), 1)
            .parse()
            .expect("a valid path");
        let info = PathInfo {
            nar_hash: Some(NarHash(Sha256::digest(&nar).into())),
            nar_size: nar.len() as u64,
            ..PathInfo::default()
        };
        ValidPathInfo {
            path: path.clone(),
            info,
        }
        .encode(&item_cx, &mut body);
        body.extend_from_slice(&nar);
        added.push((path, nar));
    }
    let add = AddMultipleToStore {
        repair: false,
        dont_check_sigs: true,
    };
    let outcome = daemon.ask(add, Some(Bytes::from(body)));
    assert!(
        matches!(&outcome, Outcome::Reply(r, _) if matches!(**r, Reply::AddMultipleToStore(_))),
        "{outcome:?}"
    );
    for (path, nar) in added {
        assert_eq!(dump(&store, &path), nar, "{path} stored as sent");
    }
}

#[test]
fn builds_with_their_logs_and_a_failing_build_against_a_real_daemon() {
    if !have_nix() {
        return;
    }
    let store = store("worker-build");
    let (drv_path, drv) = support::derivation(
        &store,
        "nixwire-worker-ok",
        "echo hello from the builder; echo to stderr >&2; /bin/mkdir $out; echo hi > $out/file",
    );
    let out = drv.outputs[0].path.clone().expect("an output path");
    let mut daemon = Daemon::start(&store);
    let build = BuildDerivation {
        drv_path,
        drv,
        mode: BuildMode::Normal,
    };
    let Outcome::Reply(reply, _) = daemon.ask(build, None) else {
        panic!("an answer");
    };
    let Reply::BuildDerivation(result) = *reply else {
        panic!("{reply:?}");
    };
    assert_eq!(result.status, BuildStatus::Built, "{}", result.error_msg);
    assert!(result.start_time > 0 && result.stop_time >= result.start_time);
    assert!(
        result.built_outputs.iter().any(|(_, r)| r.out_path == out),
        "{:?}",
        result.built_outputs
    );
    // The builder's output came as build log lines of this request, before
    // its reply, with the build's activity.
    let lines: Vec<String> = daemon
        .logs
        .iter()
        .filter(|(source, _)| matches!(source, LogSource::Build { .. }))
        .map(|(_, text)| String::from_utf8_lossy(text).into_owned())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("hello from the builder")),
        "{:?}",
        daemon.logs
    );
    assert!(lines.iter().any(|l| l.contains("to stderr")), "{lines:?}");
    assert!(daemon.activities > 0, "a build activity was reported");

    // A failing build is a failed result, not a refusal nor a broken
    // connection.
    let (drv_path, drv) =
        support::derivation(&store, "nixwire-worker-fail", "echo about to fail; exit 3");
    let build = BuildDerivation {
        drv_path,
        drv,
        mode: BuildMode::Normal,
    };
    let Outcome::Reply(reply, _) = daemon.ask(build, None) else {
        panic!("an answer");
    };
    let Reply::BuildDerivation(result) = *reply else {
        panic!("{reply:?}");
    };
    assert!(!result.status.is_success(), "{result:?}");
    assert!(
        result.error_msg.to_string_lossy().contains("exit code 3"),
        "{}",
        result.error_msg
    );
    assert!(
        daemon
            .logs
            .iter()
            .any(|(_, t)| String::from_utf8_lossy(t).contains("about to fail")),
        "{:?}",
        daemon.logs
    );
    let again = daemon.ask(IsValidPath { path: out }, None);
    assert_eq!(reply_of(&again), Some(&Reply::IsValidPath(true)));
}
