//! The serve client and server state machines: handshake, pipelining, owned
//! replies, streams, poisoning, deadlines, and a client and server talking to
//! each other at every pair of versions.

use std::time::{Duration, Instant};

use nixwire_core::nar::Node;
use nixwire_core::serve::messages::*;
use nixwire_core::serve::{
    Client, ClientConfig, ClientEvent, Error, ImportPaths, Reply, Request, RequestId, Server,
    ServerConfig, ServerEvent,
};
use nixwire_core::wire::{Cx, Version, encode_u64};

fn server_hello(version: Version) -> Vec<u8> {
    let mut out = Vec::new();
    encode_u64(SERVER_MAGIC, &mut out);
    encode_u64(version.to_wire(), &mut out);
    out
}

fn events(client: &mut Client) -> Vec<ClientEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn sent(client: &mut Client) -> Vec<u8> {
    let mut out = Vec::new();
    client.poll_transmit(&mut out);
    out
}

fn query(paths: &[&str]) -> Request {
    Request::QueryValidPaths(QueryValidPaths {
        lock: false,
        substitute: false,
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[test]
fn a_chatty_login_shell_shows_up_in_the_magic_error() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    let mut input = b"Welcome to builder-3! Last login: Tue\n".to_vec();
    input.extend_from_slice(&server_hello(LATEST));
    let err = client.handle_input(now, &input).expect_err("wrong magic");
    let text = err.to_string();
    assert!(text.contains("Welcome to builder-3!"), "{text}");
    assert!(text.contains("0x5452eecb"), "{text}");
    // Poisoned: the same error again.
    assert_eq!(client.handle_input(now, b"x").expect_err("poisoned"), err);
    assert!(client.request(query(&[])).is_err());
}

#[test]
fn unsupported_versions_are_refused_with_what_was_expected() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    let err = client
        .handle_input(now, &server_hello(Version::new(1, 38)))
        .expect_err("worker version");
    assert_eq!(
        err.to_string(),
        "the server announced serve protocol 1.38; expected major version 2 and at least 2.0"
    );
    let config = ClientConfig {
        minimum_version: Version::new(2, 5),
        ..ClientConfig::default()
    };
    let mut client = Client::new(config, now);
    let err = client
        .handle_input(now, &server_hello(Version::new(2, 4)))
        .expect_err("too old");
    assert!(err.to_string().contains("at least 2.5"), "{err}");
}

#[test]
fn the_version_is_the_minimum_and_gates_what_is_sent() {
    let now = Instant::now();
    let config = ClientConfig {
        version: Version::new(2, 7),
        ..ClientConfig::default()
    };
    let mut client = Client::new(config, now);
    let hello = sent(&mut client);
    assert_eq!(hello[8..16], Version::new(2, 7).to_wire().to_le_bytes());
    let build = Request::BuildPaths(BuildPaths {
        paths: vec![],
        options: BuildOptions::default(),
    });
    client.request(build).expect("request");
    // Nothing is encoded before the version is known.
    assert!(sent(&mut client).is_empty());
    client
        .handle_input(now, &server_hello(Version::new(2, 3)))
        .expect("handshake");
    assert_eq!(client.version(), Some(Version::new(2, 3)));
    // cmd, empty list, then BuildOptions at 2.3: five fields.
    assert_eq!(sent(&mut client).len(), 8 * (2 + 5));
    assert!(matches!(
        events(&mut client)[..],
        [ClientEvent::Connected { version, .. }] if version == Version::new(2, 3)
    ));
}

#[test]
fn pipelined_requests_get_their_own_replies_in_order() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    let a = client.request(query(&["/nix/store/a"])).expect("a");
    let b = client.request(query(&["/nix/store/b"])).expect("b");
    sent(&mut client);
    let cx = Cx::new(LATEST);
    let mut replies = server_hello(LATEST);
    Reply::QueryValidPaths(vec!["/nix/store/a".into()]).encode(&cx, &mut replies);
    Reply::QueryValidPaths(vec![]).encode(&cx, &mut replies);
    // One byte at a time: "need more" is normal.
    for byte in &replies {
        client
            .handle_input(now, std::slice::from_ref(byte))
            .expect("input");
    }
    let got: Vec<_> = events(&mut client)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Reply { id, reply } => Some((id, reply)),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (a, Reply::QueryValidPaths(vec!["/nix/store/a".into()])),
            (b, Reply::QueryValidPaths(vec![])),
        ]
    );
    assert!(client.is_idle());
    client.handle_eof(now).expect("clean close");
}

#[test]
fn bytes_with_no_request_waiting_are_an_error() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    let mut input = server_hello(LATEST);
    input.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    let err = client.handle_input(now, &input).expect_err("unexpected");
    assert!(
        matches!(err, Error::UnexpectedBytes { count: 8, .. }),
        "{err}"
    );
}

#[test]
fn add_to_store_nar_owns_its_acknowledgement() {
    let now = Instant::now();
    let nar = Node::Regular {
        executable: false,
        contents: b"hello".to_vec(),
    }
    .to_nar();
    let mut client = Client::new(ClientConfig::default(), now);
    client.handle_input(now, &server_hello(LATEST)).expect("hs");
    let add = |size| {
        Request::AddToStoreNar(AddToStoreNar {
            path: "/nix/store/x".into(),
            nar_size: size,
            ..AddToStoreNar::default()
        })
    };
    let id = client.request(add(nar.len() as u64)).expect("add");
    let next = client.request(query(&[])).expect("query");
    assert!(events(&mut client).contains(&ClientEvent::SendNar { id }));
    // Only the AddToStoreNar header is on the wire: the next request waits
    // behind the body.
    let mut expected = Vec::new();
    encode_u64(CLIENT_MAGIC, &mut expected);
    encode_u64(LATEST.to_wire(), &mut expected);
    add(nar.len() as u64).encode_header(&Cx::new(LATEST), &mut expected);
    assert_eq!(sent(&mut client), expected);
    assert!(matches!(
        client.write_nar(next, &nar),
        Err(Error::Misuse(_))
    ));
    let mut client = Client::new(ClientConfig::default(), now);
    client.handle_input(now, &server_hello(LATEST)).expect("hs");
    let id = client.request(add(nar.len() as u64)).expect("add");
    let next = client.request(query(&[])).expect("query");
    let (head, tail) = nar.split_at(10);
    client.write_nar(id, head).expect("head");
    client.write_nar(id, tail).expect("tail");
    let wire = sent(&mut client);
    assert!(wire.windows(nar.len()).any(|w| w == nar.as_slice()));
    // The ack belongs to AddToStoreNar, not to the query after it.
    client.handle_input(now, &1u64.to_le_bytes()).expect("ack");
    let evs = events(&mut client);
    assert!(evs.contains(&ClientEvent::Reply {
        id,
        reply: Reply::AddToStoreNar
    }));
    assert!(
        !evs.iter()
            .any(|e| matches!(e, ClientEvent::Reply { id, .. } if *id == next))
    );
    // A failed import is reported, not mistaken for a reply.
    let mut client = Client::new(ClientConfig::default(), now);
    client.handle_input(now, &server_hello(LATEST)).expect("hs");
    let id = client.request(add(nar.len() as u64)).expect("add");
    client.write_nar(id, &nar).expect("body");
    let err = client
        .handle_input(now, &0u64.to_le_bytes())
        .expect_err("nack");
    assert!(err.to_string().contains("acknowledgement 1"), "{err}");
}

#[test]
fn a_body_that_does_not_match_its_nar_size_is_refused() {
    let now = Instant::now();
    let nar = Node::Symlink {
        target: b"/x".to_vec(),
    }
    .to_nar();
    for (size, extra, why) in [
        (nar.len() as u64 - 8, 0, "nar_size leaves"),
        (nar.len() as u64 + 8, 0, "before nar_size"),
        (nar.len() as u64, 1, "nar_size leaves"),
    ] {
        let mut client = Client::new(ClientConfig::default(), now);
        client.handle_input(now, &server_hello(LATEST)).expect("hs");
        let id = client
            .request(Request::AddToStoreNar(AddToStoreNar {
                nar_size: size,
                ..AddToStoreNar::default()
            }))
            .expect("add");
        let mut body = nar.clone();
        body.extend(std::iter::repeat_n(0, extra));
        let err = client.write_nar(id, &body).expect_err("bad body");
        assert!(err.to_string().contains(why), "{size}: {err}");
    }
}

#[test]
fn dump_store_path_streams_without_waiting_for_the_end() {
    let now = Instant::now();
    let nar = Node::Regular {
        executable: true,
        contents: vec![7u8; 4 << 20],
    }
    .to_nar();
    let mut client = Client::new(ClientConfig::default(), now);
    let id = client
        .request(Request::DumpStorePath(DumpStorePath {
            path: "/nix/store/big".into(),
        }))
        .expect("dump");
    let next = client.request(query(&[])).expect("query");
    client.handle_input(now, &server_hello(LATEST)).expect("hs");
    events(&mut client);
    let mut streamed = 0;
    for chunk in nar.chunks(64 * 1024) {
        client.handle_input(now, chunk).expect("chunk");
        // Memory does not grow with the NAR: nothing is left buffered.
        assert!(client.buffered() < 4096, "{}", client.buffered());
        for e in events(&mut client) {
            if let ClientEvent::NarChunk { id: cid, data } = e {
                assert_eq!(cid, id);
                // Each chunk is passed on as it arrives: nothing accumulates.
                assert!(data.len() <= 64 * 1024);
                streamed += data.len();
            }
        }
    }
    assert_eq!(streamed, nar.len());
    // The reply to the next request follows the NAR directly.
    let mut rest = Vec::new();
    Reply::QueryValidPaths(vec![]).encode(&Cx::new(LATEST), &mut rest);
    client.handle_input(now, &rest).expect("next");
    let evs = events(&mut client);
    assert_eq!(
        evs,
        vec![ClientEvent::Reply {
            id: next,
            reply: Reply::QueryValidPaths(vec![])
        }]
    );
}

#[test]
fn stderr_becomes_logs_even_after_an_error() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    client.handle_stderr(now, b"building '/nix/store/x.drv'...\n");
    let _ = client.handle_input(now, b"garbage!");
    client.handle_stderr(now, b"ssh: connect to host x port 22: refused\n");
    let logs: Vec<_> = events(&mut client)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Log(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(logs.len(), 2);
    assert!(logs[1].starts_with(b"ssh: connect"));
}

#[test]
fn eof_says_what_was_still_owed() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    let err = client.handle_eof(now).expect_err("eof in handshake");
    assert!(
        err.to_string().contains("before the server's handshake"),
        "{err}"
    );

    let mut client = Client::new(ClientConfig::default(), now);
    client.handle_input(now, &server_hello(LATEST)).expect("hs");
    client
        .request(Request::QueryClosure(QueryClosure::default()))
        .expect("closure");
    client.handle_input(now, &[2, 0, 0]).expect("partial");
    let err = client.handle_eof(now).expect_err("eof mid reply");
    assert_eq!(
        err.to_string(),
        "the connection closed while waiting for the reply to QueryClosure (request 0)"
    );
}

#[test]
fn abandoning_a_sent_request_poisons_the_connection() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    let queued = client.request(query(&[])).expect("queued");
    client.abandon(queued);
    client.handle_input(now, &server_hello(LATEST)).expect("hs");
    // The abandoned request was never sent.
    assert!(sent(&mut client).len() == 16);
    let id = client.request(query(&[])).expect("sent");
    client.abandon(id);
    let err = client.request(query(&[])).expect_err("poisoned");
    assert!(matches!(err, Error::Abandoned { id: 1, .. }), "{err}");
}

#[test]
fn deadlines_come_out_of_poll_timeout() {
    let start = Instant::now();
    let config = ClientConfig {
        handshake_timeout: Some(Duration::from_secs(60)),
        stall_timeout: Some(Duration::from_secs(600)),
        ..ClientConfig::default()
    };
    let mut client = Client::new(config.clone(), start);
    assert_eq!(client.poll_timeout(), Some(start + Duration::from_secs(60)));
    client
        .handle_timeout(start + Duration::from_secs(59))
        .expect("not yet");
    let err = client
        .handle_timeout(start + Duration::from_secs(60))
        .expect_err("timed out");
    assert!(
        err.to_string()
            .contains("waiting for the server's handshake"),
        "{err}"
    );

    let mut client = Client::new(config, start);
    client
        .handle_input(start, &server_hello(LATEST))
        .expect("hs");
    // Idle with nothing in flight: no deadline.
    assert_eq!(client.poll_timeout(), None);
    client.request(query(&[])).expect("q");
    let later = start + Duration::from_secs(100);
    client.handle_stderr(later, b"still working\n");
    assert_eq!(
        client.poll_timeout(),
        Some(later + Duration::from_secs(600))
    );
}

#[test]
fn the_server_refuses_a_wrong_magic_and_answers_in_order() {
    let mut server = Server::new(ServerConfig::default());
    let err = server
        .handle_input(b"GET / HTTP/1.1\r\n")
        .expect_err("magic");
    assert!(err.to_string().contains("GET / HTTP/1.1"), "{err}");

    let mut server = Server::new(ServerConfig::default());
    let mut input = Vec::new();
    encode_u64(CLIENT_MAGIC, &mut input);
    encode_u64(Version::new(2, 5).to_wire(), &mut input);
    let cx = Cx::new(Version::new(2, 5));
    query(&["/nix/store/a"]).encode_header(&cx, &mut input);
    query(&["/nix/store/b"]).encode_header(&cx, &mut input);
    server.handle_input(&input).expect("requests");
    let ids: Vec<RequestId> = std::iter::from_fn(|| server.poll_event())
        .filter_map(|e| match e {
            ServerEvent::Request { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(server.version(), Some(Version::new(2, 5)));
    let err = server
        .reply(ids[1], &Reply::QueryValidPaths(vec![]))
        .expect_err("out of order");
    assert!(err.to_string().contains("must be answered first"), "{err}");
    server
        .reply(ids[0], &Reply::QueryClosure(vec![]))
        .expect_err("wrong kind");
    server
        .reply(ids[0], &Reply::QueryValidPaths(vec![]))
        .expect("in order");
}

/// A client and a server of the core at versions `c` and `s` run every
/// command; the server must see what the client asked, the client must get
/// what the server answered.
fn converse(c: Version, s: Version) {
    let now = Instant::now();
    let v = c.min(s);
    let mut client = Client::new(
        ClientConfig {
            version: c,
            ..ClientConfig::default()
        },
        now,
    );
    let mut server = Server::new(ServerConfig {
        version: s,
        ..ServerConfig::default()
    });
    let file = Node::Regular {
        executable: false,
        contents: b"a".repeat(1000),
    }
    .to_nar();
    let tree = Node::Directory(vec![
        (
            b"bin".to_vec(),
            Node::Symlink {
                target: b"x".to_vec(),
            },
        ),
        (
            b"x".to_vec(),
            Node::Regular {
                executable: true,
                contents: vec![],
            },
        ),
    ])
    .to_nar();
    let trailer = |p: &str| ExportTrailer {
        path: p.into(),
        references: vec!["/nix/store/r".into()],
        deriver: String::new(),
        ..ExportTrailer::default()
    };
    let result = BuildResult {
        status: BuildStatus::Built,
        built_outputs: BuiltOutputs::Structured(vec![(
            "out".into(),
            Realisation {
                out_path: "/nix/store/o".into(),
                signatures: vec![],
            },
        )])
        .for_version(v, DEFAULT_STORE_DIR),
        ..BuildResult::default()
    };
    let exchanges: Vec<(Request, Reply)> = vec![
        (
            query(&["/nix/store/a"]),
            Reply::QueryValidPaths(vec!["/nix/store/a".into()]),
        ),
        (
            Request::QueryPathInfos(QueryPathInfos {
                paths: vec!["/nix/store/a".into()],
            }),
            Reply::QueryPathInfos(PathInfos(vec![(
                "/nix/store/a".into(),
                UnkeyedValidPathInfo {
                    nar_size: 8,
                    ..UnkeyedValidPathInfo::default()
                },
            )])),
        ),
        (
            Request::DumpStorePath(DumpStorePath {
                path: "/nix/store/a".into(),
            }),
            Reply::DumpStorePath {
                nar_size: tree.len() as u64,
            },
        ),
        (
            Request::ImportPaths(ImportPaths {
                paths: vec![trailer("/nix/store/i1"), trailer("/nix/store/i2")],
            }),
            Reply::ImportPaths,
        ),
        (
            Request::BuildPaths(BuildPaths {
                paths: vec!["/nix/store/d.drv!out".into()],
                options: BuildOptions {
                    max_silent_time: 5,
                    ..BuildOptions::default()
                },
            }),
            Reply::BuildPaths(BuildPathsResult {
                status: 1,
                error_msg: "no".into(),
            }),
        ),
        (
            Request::QueryClosure(QueryClosure {
                include_outputs: true,
                paths: vec![],
            }),
            Reply::QueryClosure(vec!["/nix/store/c".into()]),
        ),
        (
            Request::BuildDerivation(BuildDerivation {
                drv_path: "/nix/store/d.drv".into(),
                drv: BasicDerivation {
                    platform: "x86_64-linux".into(),
                    ..BasicDerivation::default()
                },
                options: BuildOptions::default(),
            }),
            Reply::BuildDerivation(result),
        ),
        (
            Request::AddToStoreNar(AddToStoreNar {
                path: "/nix/store/n".into(),
                nar_size: file.len() as u64,
                ..AddToStoreNar::default()
            }),
            Reply::AddToStoreNar,
        ),
    ];
    let mut ids = Vec::new();
    for (request, _) in &exchanges {
        ids.push(client.request(request.clone()).expect("request"));
    }
    let mut seen_requests = Vec::new();
    let mut imported = Vec::new();
    let mut server_bodies: Vec<u8> = Vec::new();
    let mut replies = Vec::new();
    let mut dumped = Vec::new();
    let mut wire = Vec::new();
    for _round in 0..20 {
        while let Some(e) = client.poll_event() {
            match e {
                ClientEvent::SendNar { id } => {
                    let body: Vec<u8> = if id == ids[3] {
                        [file.clone(), tree.clone()].concat()
                    } else {
                        file.clone()
                    };
                    // Odd chunk sizes cross every boundary.
                    for chunk in body.chunks(333) {
                        client.write_nar(id, chunk).expect("body");
                    }
                }
                ClientEvent::Reply { id, reply } => replies.push((id, reply)),
                ClientEvent::NarChunk { data, .. } => dumped.extend_from_slice(&data),
                _ => {}
            }
        }
        client.poll_transmit(&mut wire);
        server.handle_input(&wire).expect("server input");
        wire.clear();
        while let Some(e) = server.poll_event() {
            match e {
                ServerEvent::Request { id, request } => {
                    let index = seen_requests.len();
                    seen_requests.push(request);
                    let reply = &exchanges[index].1;
                    match reply {
                        Reply::DumpStorePath { .. } => {
                            for chunk in tree.chunks(100) {
                                server.send_nar(id, chunk).expect("send nar");
                            }
                        }
                        Reply::ImportPaths | Reply::AddToStoreNar => {}
                        _ => server.reply(id, reply).expect("reply"),
                    }
                }
                ServerEvent::NarChunk { data, .. } => server_bodies.extend_from_slice(&data),
                ServerEvent::ImportedPath { trailer, .. } => imported.push(trailer),
                ServerEvent::BodyEnd { id } => {
                    let index = usize::try_from(id.0).expect("small");
                    server.reply(id, &exchanges[index].1).expect("ack");
                }
                _ => {}
            }
        }
        server.poll_transmit(&mut wire);
        client.handle_input(now, &wire).expect("client input");
        wire.clear();
    }
    let expected_requests: Vec<Request> = exchanges
        .iter()
        .map(|(r, _)| match r {
            Request::ImportPaths(_) => Request::ImportPaths(ImportPaths::default()),
            other => other.clone(),
        })
        .collect();
    // What the server saw, at the negotiated version (gated fields dropped).
    let gate = |r: &Request| {
        let cx = Cx::new(v);
        let mut b = Vec::new();
        r.encode_header(&cx, &mut b);
        Request::decode_header(&cx, &b).map(|(_, r)| r).ok()
    };
    let expected: Vec<_> = expected_requests.iter().map(gate).collect();
    let seen: Vec<_> = seen_requests.iter().map(|r| Some(r.clone())).collect();
    assert_eq!(seen, expected, "client {c} server {s}");
    assert_eq!(
        imported,
        vec![trailer("/nix/store/i1"), trailer("/nix/store/i2")]
    );
    assert_eq!(
        server_bodies,
        [file.clone(), tree.clone(), file.clone()].concat()
    );
    assert_eq!(dumped, tree);
    let got: Vec<Reply> = replies.into_iter().map(|(_, r)| r).collect();
    let want: Vec<Reply> = exchanges
        .iter()
        .map(|(_, r)| {
            let cx = Cx::new(v);
            let mut b = Vec::new();
            r.encode(&cx, &mut b);
            match r {
                Reply::DumpStorePath { .. } => r.clone(),
                _ => Reply::decode(r.command(), &cx, &b)
                    .map(|(_, r)| r)
                    .expect("gated"),
            }
        })
        .collect();
    assert_eq!(got, want, "client {c} server {s}");
    assert!(client.is_idle());
}

#[test]
fn client_and_server_agree_at_every_pair_of_versions() {
    for c in 2..=LATEST.minor {
        for s in 2..=LATEST.minor {
            converse(Version::new(2, c), Version::new(2, s));
        }
    }
}
