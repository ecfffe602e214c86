//! The worker client and server state machines against each other, through
//! the `Pair` harness, at the versions real Nix speaks (1.21 for 2.3, 1.34
//! for 2.8, 1.38 for 2.26 and later): the handshake with its
//! version-dependent steps and the feature exchange, the STDERR stream
//! (logs, activities, refusals), pulled and framed bodies, NAR replies.

use std::time::Instant;

use bytes::Bytes;
use nixwire_core::conn::{ErrorClass, LogSource};
use nixwire_core::nar::Node;
use nixwire_core::pair::Pair;
use nixwire_core::store::{NarHash, StorePath};
use nixwire_core::wire::{Features, Version};
use nixwire_core::worker::handshake::{HandshakeInfo, Trust};
use nixwire_core::worker::messages::{AddToStoreNar, IsValidPath, NarFromPath, QueryValidPaths};
use nixwire_core::worker::stderr::{Field, RemoteError, Stderr};
use nixwire_core::worker::{
    Client, ClientConfig, ClientEvent, Reply, Request, Server, ServerConfig, ServerEvent,
};

type WorkerPair = Pair<Client, Server>;

fn path(n: u32) -> StorePath {
    let mut digest = [0u8; 20];
    digest[..4].copy_from_slice(&n.to_le_bytes());
    StorePath::from_digest(&digest, &format!("p{n}")).expect("a valid store path")
}

fn pair(client: Version, server: Version, features: (&[&str], &[&str])) -> WorkerPair {
    let now = Instant::now();
    let mut c = ClientConfig::default();
    c.version = client;
    c.features = Features::new(features.0.iter().copied());
    let mut s = ServerConfig::default();
    s.version = server;
    s.features = Features::new(features.1.iter().copied());
    s.info = HandshakeInfo {
        daemon_version: "2.34.8".into(),
        trust: Trust::Trusted,
    };
    Pair::new(Client::new(c, now), Server::new(s, now), now)
}

fn nar(size: usize) -> Bytes {
    Bytes::from(
        Node::Regular {
            executable: false,
            contents: vec![b'n'; size],
        }
        .to_nar(),
    )
}

/// A host that knows `path(1)` and its NAR, logs for every request and
/// refuses what it does not know.
fn host(nar: Bytes) -> impl FnMut(&mut Server, ServerEvent) {
    let mut uploaded = Vec::new();
    move |server, event| match event {
        ServerEvent::Request { id, request } => {
            server.log(id, "working\n").expect("log");
            match request {
                Request::IsValidPath(q) => {
                    let reply = Reply::IsValidPath(q.path == path(1));
                    server.reply(id, &reply).expect("reply");
                }
                Request::QueryValidPaths(q) => {
                    let valid = q.paths.into_iter().filter(|p| *p == path(1)).collect();
                    server
                        .reply(id, &Reply::QueryValidPaths(valid))
                        .expect("reply");
                }
                Request::NarFromPath(q) if q.path == path(1) => {
                    let activity = Stderr::StartActivity {
                        id: 7,
                        level: 0,
                        activity: 100,
                        text: "copying".into(),
                        fields: vec![Field::String("x".into())],
                        parent: 0,
                    };
                    server.send_stderr(id, &activity).expect("activity");
                    let line = Stderr::Result {
                        id: 7,
                        result: 101,
                        fields: vec![Field::String("a build line".into())],
                    };
                    server.send_stderr(id, &line).expect("result");
                    assert_eq!(server.send_nar(id, nar.clone()).expect("nar"), nar.len());
                }
                Request::NarFromPath(_) => {
                    let error = RemoteError::new("path is not valid");
                    server.fail(id, &error).expect("fail");
                }
                // Answered at the end of its body.
                _ => {}
            }
        }
        ServerEvent::BodyChunk { data, .. } => uploaded.extend_from_slice(&data),
        ServerEvent::BodyEnd { id } => {
            assert_eq!(uploaded, nar.to_vec());
            server
                .reply(id, &Reply::AddToStoreNar(Default::default()))
                .expect("reply");
        }
        _ => {}
    }
}

const VERSIONS: [Version; 4] = [
    Version::new(1, 21),
    Version::new(1, 26),
    Version::new(1, 34),
    Version::new(1, 38),
];

#[test]
fn the_handshake_at_every_version_real_nix_speaks() {
    for client in VERSIONS {
        for server in VERSIONS {
            let mut p = pair(client, server, (&["a", "b"], &["b", "c"]));
            p.drive(host(nar(10))).expect("drive");
            let version = client.min(server);
            let connected = p.events.iter().find_map(|e| match e {
                ClientEvent::Connected {
                    version,
                    features,
                    info,
                    ..
                } => Some((*version, features.clone(), info.clone())),
                _ => None,
            });
            let (v, features, info) = connected.expect("connected");
            assert_eq!(v, version, "client {client} server {server}");
            let agreed: Vec<&str> = features.iter().collect();
            if version >= Version::new(1, 38) {
                assert_eq!(agreed, vec!["b"]);
            } else {
                assert!(agreed.is_empty());
            }
            let expected_daemon = if version >= Version::new(1, 33) {
                "2.34.8"
            } else {
                ""
            };
            assert_eq!(info.daemon_version, expected_daemon);
            let expected_trust = if version >= Version::new(1, 35) {
                Trust::Trusted
            } else {
                Trust::Unknown
            };
            assert_eq!(info.trust, expected_trust);
        }
    }
}

#[test]
fn answers_logs_activities_and_refusals_at_every_version() {
    for version in VERSIONS {
        let mut p = pair(version, version, (&[], &[]));
        let now = p.now;
        let blob = nar(5000);
        let valid = p
            .client
            .request(now, IsValidPath { path: path(1) })
            .expect("request");
        let query = p
            .client
            .request(
                now,
                QueryValidPaths {
                    paths: vec![path(1), path(2)],
                    substitute: false,
                },
            )
            .expect("request");
        let refused = p
            .client
            .request(now, NarFromPath { path: path(2) })
            .expect("request");
        let dumped = p
            .client
            .request(now, NarFromPath { path: path(1) })
            .expect("request");
        p.drive(host(blob.clone())).expect("drive");
        let mut replies = Vec::new();
        let mut failed = Vec::new();
        let mut logs = Vec::new();
        let mut nar_bytes = Vec::new();
        let mut activities = 0;
        for event in p.events.drain(..) {
            match event {
                ClientEvent::Reply { id, reply } => replies.push((id, reply)),
                ClientEvent::Failed { id, error } => failed.push((id, error)),
                ClientEvent::Log(log) => logs.push(log),
                ClientEvent::NarChunk { data, .. } => nar_bytes.extend_from_slice(&data),
                ClientEvent::Activity { .. } => activities += 1,
                _ => {}
            }
        }
        assert_eq!(replies.len(), 3, "{version}: {replies:?}");
        assert_eq!(replies[0], (valid, Reply::IsValidPath(true)));
        assert_eq!(replies[1], (query, Reply::QueryValidPaths(vec![path(1)])));
        assert_eq!(replies[2].0, dumped);
        assert_eq!(nar_bytes, blob.to_vec());
        let [(id, error)] = &failed[..] else {
            panic!("{version}: one refusal, got {failed:?}");
        };
        assert_eq!(*id, refused);
        assert_eq!(error.class(), ErrorClass::Refused);
        assert!(error.to_string().contains("path is not valid"), "{error}");
        // Four "working" messages, each with its request, and the build line.
        let working: Vec<_> = logs
            .iter()
            .filter(|l| l.source == LogSource::Message)
            .map(|l| l.request)
            .collect();
        assert_eq!(
            working,
            vec![Some(valid), Some(query), Some(refused), Some(dumped)]
        );
        assert!(
            logs.iter()
                .any(|l| l.source == LogSource::Build { activity: 7 }
                    && &l.text[..] == b"a build line"
                    && l.request == Some(dumped))
        );
        assert_eq!(activities, 1);
        assert!(p.client.error().is_none());
    }
}

#[test]
fn add_to_store_nar_is_pulled_before_1_23_and_framed_after() {
    for version in [
        Version::new(1, 21),
        Version::new(1, 22),
        Version::new(1, 23),
        Version::new(1, 38),
    ] {
        let mut p = pair(version, version, (&[], &[]));
        p.max_read = 1000;
        let now = p.now;
        let blob = nar(100_000);
        let add = AddToStoreNar {
            path: path(1),
            deriver: None,
            nar_hash: NarHash([0; 32]),
            references: vec![],
            registration_time: 0,
            nar_size: blob.len() as u64,
            ultimate: false,
            sigs: vec![],
            ca: None,
            provenance: None,
            repair: false,
            dont_check_sigs: true,
        };
        let id = p.client.request(now, add).expect("request");
        let after = p
            .client
            .request(now, IsValidPath { path: path(1) })
            .expect("request");
        let mut offered = 0;
        let mut host = host(blob.clone());
        for _ in 0..10_000 {
            p.drive(&mut host).expect("drive");
            let wanted = p.events.iter().rev().find_map(|e| match e {
                ClientEvent::BodyWanted { id: w, max } if *w == id => Some(*max),
                _ => None,
            });
            p.events
                .retain(|e| !matches!(e, ClientEvent::BodyWanted { .. }));
            let Some(max) = wanted else {
                break;
            };
            let end = max.map_or(blob.len(), |m| (offered + m as usize).min(blob.len()));
            let taken = p
                .client
                .offer_body(now, id, blob.slice(offered..end))
                .expect("offer");
            offered += taken;
        }
        p.drive(&mut host).expect("drive");
        assert_eq!(offered, blob.len(), "{version}");
        let replies: Vec<_> = p
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Reply { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(replies, vec![id, after], "{version}");
    }
}

#[test]
fn a_wrong_magic_from_the_daemon_shows_what_came() {
    let mut p = pair(Version::new(1, 38), Version::new(1, 38), (&[], &[]));
    let now = p.now;
    let err = nixwire_core::conn::Connection::handle_input(
        &mut p.client,
        now,
        Bytes::from_static(b"bash: nix-daemon: command not found\n"),
    )
    .expect_err("wrong magic");
    let text = err.to_string();
    assert!(text.contains("worker protocol's magic"), "{text}");
    assert!(text.contains("nix-daemon: command not found"), "{text}");
}

/// Found by the `worker_client` fuzz target: the handshake's feature list
/// (and every other value decoded at once: hellos, STDERR messages with
/// their fields and traces) was decoded again from its first byte on every
/// read, so a peer that sent a long list a byte at a time made the decoding
/// quadratic in it (the fuzzer's average fell from about 9 000 executions a
/// second to under 2 000 once it found such inputs). An inbox now runs a
/// decoder that ran out of input again only once the atom it stopped at can
/// be whole.
#[test]
fn a_value_decoded_at_once_is_retried_once_per_atom_however_it_is_cut() {
    use nixwire_core::wire::{Cx, Inbox, Limits, NixString, Wire, Worker};

    let cx = Cx::<Worker>::new(Version::new(1, 38));
    let limits = Limits::default();
    let names: Vec<NixString> = (0..1000)
        .map(|i| NixString::from(format!("feature-{i}")))
        .collect();
    let wire = names.to_wire(&cx);
    let mut inbox = Inbox::default();
    let mut runs = 0;
    let mut decoded = None;
    for byte in wire.chunks(1) {
        inbox.push(Bytes::copy_from_slice(byte));
        let step = inbox.decode_named(&limits, "a feature list", |r| {
            runs += 1;
            Vec::<NixString>::decode_at_once(&cx, r)
        });
        if let Some(list) = step.expect("a valid list") {
            assert!(decoded.is_none(), "decoded twice");
            decoded = Some(list);
        }
    }
    assert_eq!(decoded.as_ref(), Some(&names));
    // The count, then per name its length word and its bytes: one run each
    // at most, where every one of the reads used to cost a run.
    assert!(
        runs <= 1 + 2 * names.len() + 1,
        "{runs} runs for {} one-byte reads",
        wire.len()
    );
}

/// The same through a client: a daemon announcing 5 000 features, its
/// handshake handed over a byte at a time, is understood once it is whole
/// (the feature list keeps its progress between reads).
#[test]
fn a_long_feature_list_read_a_byte_at_a_time_is_decoded_whole() {
    assert_eq!(
        handshake_byte_by_byte(5000),
        Ok(vec!["feature-4999".to_owned()])
    );
}

/// A STDERR message is decoded at once, so the lists in it are short: a
/// daemon's activity with more fields than that is refused, and says so.
#[test]
fn a_stderr_message_with_too_many_fields_is_refused() {
    use nixwire_core::wire::{Cx, Wire};
    use nixwire_core::worker::stderr::MAX_WHOLE_LIST;

    let cx = Cx::new(Version::new(1, 38));
    let message = |n: u64| Stderr::Result {
        id: 1,
        result: 101,
        fields: (0..n).map(Field::Int).collect(),
    };
    let fine = message(MAX_WHOLE_LIST).to_wire(&cx);
    assert_eq!(
        Stderr::decode_exact(&cx, &fine)
            .expect("a list of the most")
            .0,
        message(MAX_WHOLE_LIST)
    );
    let long = message(MAX_WHOLE_LIST + 1).to_wire(&cx);
    let refused = Stderr::decode_exact(&cx, &long).expect_err("too many fields");
    assert!(refused.to_string().contains("field count"), "{refused}");
}

/// A 1.38 handshake with a daemon announcing `count` features, its bytes
/// given to the client one at a time: the features agreed on, or the
/// client's error.
fn handshake_byte_by_byte(count: u64) -> Result<Vec<String>, String> {
    use nixwire_core::conn::Connection;

    let many: Vec<String> = (0..count).map(|i| format!("feature-{i}")).collect();
    let theirs: Vec<&str> = many.iter().map(String::as_str).collect();
    let last = format!("feature-{}", count - 1);
    let mut p = pair(
        Version::new(1, 38),
        Version::new(1, 38),
        (&[last.as_str(), "not-theirs"], &theirs),
    );
    let now = p.now;
    // The client speaks first; the server's answers come back one byte per
    // read, until the client is connected.
    let mut connected = None;
    for _ in 0..8 {
        while let Some(out) = p.client.poll_transmit() {
            p.server
                .handle_input(now, out)
                .expect("the server reads the client");
        }
        while let Some(_event) = p.server.poll_event() {}
        while let Some(out) = p.server.poll_transmit() {
            for byte in out.chunks(1) {
                p.client
                    .handle_input(now, Bytes::copy_from_slice(byte))
                    .map_err(|e| e.to_string())?;
            }
        }
        while let Some(event) = p.client.poll_event() {
            if let ClientEvent::Connected { features, .. } = event {
                connected = Some(features.iter().map(str::to_owned).collect::<Vec<_>>());
            }
        }
        if let Some(features) = connected {
            return Ok(features);
        }
    }
    Err("the handshake did not end".to_owned())
}
