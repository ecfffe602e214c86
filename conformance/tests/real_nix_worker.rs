//! The core's worker client against a real `nix-daemon --stdio` from
//! Debian's `nix-bin` (Nix 2.8, worker protocol 1.34), over pipes, in a
//! private store. The tests bring their own Nix settings and skip without
//! Nix: see the `support` module.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nixwire_core::conn::ErrorClass;
use nixwire_core::nar::Node;
use nixwire_core::store::{NarHash, StorePath};
use nixwire_core::wire::Version;
use nixwire_core::worker::handshake::HandshakeInfo;
use nixwire_core::worker::messages::{AddToStoreNar, IsValidPath, NarFromPath, QueryValidPaths};
use nixwire_core::worker::{Client, ClientConfig, ClientEvent, Reply, Request};
use sha2::{Digest, Sha256};
use support::{have_nix, nix_args, nix_command, run_nix, store, store_path};

/// What a request came to.
#[derive(Debug)]
enum Outcome {
    Reply(Box<Reply>, Vec<u8>),
    Failed(nixwire_core::conn::Error),
}

struct Daemon {
    inner: support::Driver<Client>,
    connected: Option<(Version, HandshakeInfo)>,
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
        }
    }

    /// Sends `request`, offers `body` when it is wanted, and runs the loop
    /// until the request is answered.
    fn ask(&mut self, request: impl Into<Request>, body: Option<Bytes>) -> Outcome {
        let id = self
            .inner
            .conn
            .request(Instant::now(), request)
            .expect("request");
        let mut nar = Vec::new();
        let mut offered = 0;
        let connected = &mut self.connected;
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
                    }
                    ClientEvent::NarChunk { data, .. } => nar.extend_from_slice(&data),
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

fn id_of(outcome: &Outcome) -> Option<&Reply> {
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
    assert_eq!(id_of(&valid), Some(&Reply::IsValidPath(true)));
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
        id_of(&query),
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
    assert_eq!(id_of(&valid), Some(&Reply::IsValidPath(true)));
}
