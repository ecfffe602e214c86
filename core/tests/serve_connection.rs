//! The serve client and server state machines: handshake, pipelining, owned
//! replies, streams, breaking, deadlines, and a client and server talking to
//! each other (through the in-memory [`Pair`]) at every pair of versions.

use std::time::{Duration, Instant};

use bytes::Bytes;
use nixwire_core::conn::{Connection, Error, ErrorClass, ErrorKind};
use nixwire_core::nar::Node;
use nixwire_core::pair::{Pair, PairError};
use nixwire_core::serve::messages::*;
use nixwire_core::serve::{
    Client, ClientConfig, ClientEvent, ImportPaths, Reply, ReplyPartial, Request, RequestId,
    RequestPartial, Server, ServerConfig, ServerEvent,
};
use nixwire_core::store::{
    BasicDerivation, BuildResult, BuildStatus, DerivationOutput, NarHash, OutputName, PathInfo,
    Realisation, Signature, StorePath,
};
use nixwire_core::wire::{Cx, Reader, Serve, Version, Wire, encode_u64};

/// A valid store path, as in the crate's examples.
const HELLO: &str = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12";

/// A valid store path named `name`, with a hash part of its own (derived
/// from the name, so different names get different hash parts).
fn path(name: &str) -> StorePath {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut digest = [0u8; 20];
    for d in &mut digest {
        h = h
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *d = (h >> 56) as u8;
    }
    StorePath::from_digest(&digest, name).expect("a valid store path")
}

fn hello() -> StorePath {
    HELLO.parse().expect("a valid store path")
}

fn server_hello(version: Version) -> Bytes {
    let mut out = Vec::new();
    encode_u64(SERVER_MAGIC, &mut out);
    encode_u64(version.to_wire(), &mut out);
    out.into()
}

fn u64_bytes(n: u64) -> Bytes {
    Bytes::copy_from_slice(&n.to_le_bytes())
}

fn events(client: &mut Client) -> Vec<ClientEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn server_events(server: &mut Server) -> Vec<ServerEvent> {
    std::iter::from_fn(|| server.poll_event()).collect()
}

/// Everything the client has to send, drained.
fn sent(client: &mut Client) -> Vec<u8> {
    std::iter::from_fn(|| client.poll_transmit())
        .flat_map(|b| b.to_vec())
        .collect()
}

fn server_sent(server: &mut Server) -> Vec<u8> {
    std::iter::from_fn(|| server.poll_transmit())
        .flat_map(|b| b.to_vec())
        .collect()
}

/// The errors of the `Broken` events among `evs`.
fn broken(evs: &[ClientEvent]) -> Vec<Error> {
    evs.iter()
        .filter_map(|e| match e {
            ClientEvent::Broken(err) => Some(err.clone()),
            _ => None,
        })
        .collect()
}

fn query(paths: Vec<StorePath>) -> Request {
    Request::QueryValidPaths(QueryValidPaths {
        lock: false,
        substitute: false,
        paths,
    })
}

fn add(path: StorePath, nar_size: u64) -> AddToStoreNar {
    AddToStoreNar {
        path,
        deriver: None,
        nar_hash: NarHash([0x5a; 32]),
        references: vec![],
        registration_time: 0,
        nar_size,
        ultimate: false,
        sigs: vec![],
        ca: None,
    }
}

fn trailer(p: &StorePath) -> ExportTrailer {
    ExportTrailer {
        magic: ExportMagic,
        path: p.clone(),
        references: vec![path("r")],
        deriver: None,
        legacy_signature: LegacySignature(None),
    }
}

/// A client that has completed the handshake at `LATEST`, its hello and
/// `Connected` event drained.
fn connected_client(now: Instant) -> Client {
    let mut client = Client::new(ClientConfig::default(), now);
    client
        .handle_input(now, server_hello(LATEST))
        .expect("handshake");
    sent(&mut client);
    assert!(matches!(
        events(&mut client)[..],
        [ClientEvent::Connected { version, .. }] if version == LATEST
    ));
    client
}

/// `request` as a server at `cx` decodes it after the client encoded it:
/// the fields the version lacks are gone. The whole encoding is used.
fn request_at(cx: &Cx<Serve>, request: &Request) -> Request {
    let mut b = Vec::new();
    request.encode(cx, &mut b);
    let mut r = Reader::new(&b, &cx.limits);
    let decoded = Request::decode(cx, &mut RequestPartial::default(), &mut r)
        .expect("decodes")
        .expect("complete");
    assert_eq!(r.position(), b.len(), "{request:?}");
    decoded
}

/// `reply` as a client at `cx` decodes it after the server encoded it.
fn reply_at(cx: &Cx<Serve>, reply: &Reply) -> Reply {
    let mut b = Vec::new();
    reply.encode(cx, &mut b);
    let mut r = Reader::new(&b, &cx.limits);
    let decoded = Reply::decode(reply.command(), cx, &mut ReplyPartial::default(), &mut r)
        .expect("decodes")
        .expect("complete");
    assert_eq!(r.position(), b.len(), "{reply:?}");
    decoded
}

#[test]
fn a_chatty_login_shell_shows_up_in_the_magic_error() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    let mut input = b"Welcome to builder-3! Last login: Tue\n".to_vec();
    input.extend_from_slice(&server_hello(LATEST));
    let err = client
        .handle_input(now, input.into())
        .expect_err("wrong magic");
    let text = err.to_string();
    assert!(text.contains("Welcome to builder-3!"), "{text}");
    assert!(
        text.contains("expected the serve protocol's magic 0x5452eecb from the server, found"),
        "{text}"
    );
    assert_eq!(err.class(), ErrorClass::Protocol);
    // Broken: reported once as an event, and the same error again from every
    // later call.
    assert_eq!(broken(&events(&mut client)), vec![err.clone()]);
    assert_eq!(
        client
            .handle_input(now, Bytes::from_static(b"x"))
            .expect_err("broken"),
        err
    );
    assert_eq!(client.request(now, query(vec![])).expect_err("broken"), err);
    assert_eq!(client.handle_eof(now).expect_err("broken"), err);
    assert_eq!(client.error(), Some(&err));
    assert!(broken(&events(&mut client)).is_empty(), "reported once");
}

#[test]
fn unsupported_versions_are_refused_with_what_was_expected() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    let err = client
        .handle_input(now, server_hello(Version::new(1, 38)))
        .expect_err("worker version");
    assert_eq!(
        err.to_string(),
        "the server announced serve protocol 1.38; expected major version 2 and at least 2.0"
    );
    assert_eq!(err.class(), ErrorClass::Protocol);
    let mut config = ClientConfig::default();
    config.minimum_version = Version::new(2, 5);
    let mut client = Client::new(config, now);
    let err = client
        .handle_input(now, server_hello(Version::new(2, 4)))
        .expect_err("too old");
    assert!(err.to_string().contains("at least 2.5"), "{err}");
}

#[test]
fn the_version_is_the_minimum_and_gates_what_is_sent() {
    let now = Instant::now();
    let mut config = ClientConfig::default();
    config.version = Version::new(2, 7);
    let mut client = Client::new(config, now);
    let hello = sent(&mut client);
    assert_eq!(hello[..8], CLIENT_MAGIC.to_le_bytes());
    assert_eq!(hello[8..16], Version::new(2, 7).to_wire().to_le_bytes());
    let build = Request::BuildPaths(BuildPaths {
        paths: vec![],
        options: BuildOptions::default(),
    });
    client.request(now, build).expect("request");
    // Nothing is encoded before the version is known.
    assert!(sent(&mut client).is_empty());
    client
        .handle_input(now, server_hello(Version::new(2, 3)))
        .expect("handshake");
    assert_eq!(client.version(), Some(Version::new(2, 3)));
    // cmd, empty list, then BuildOptions at 2.3: five fields.
    assert_eq!(sent(&mut client).len(), 8 * (2 + 5));
    assert!(matches!(
        events(&mut client)[..],
        [ClientEvent::Connected { version, server_version }]
            if version == Version::new(2, 3) && server_version == Version::new(2, 3)
    ));
}

#[test]
fn pipelined_requests_get_their_own_replies_in_order() {
    let now = Instant::now();
    let (pa, pb) = (hello(), path("b"));
    let mut client = Client::new(ClientConfig::default(), now);
    let a = client.request(now, query(vec![pa.clone()])).expect("a");
    let b = client.request(now, query(vec![pb])).expect("b");
    sent(&mut client);
    let cx = Cx::new(LATEST);
    let mut replies = server_hello(LATEST).to_vec();
    Reply::QueryValidPaths(vec![pa.clone()]).encode(&cx, &mut replies);
    Reply::QueryValidPaths(vec![]).encode(&cx, &mut replies);
    // One byte at a time: "need more" is normal.
    for byte in &replies {
        client
            .handle_input(now, Bytes::copy_from_slice(std::slice::from_ref(byte)))
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
            (a, Reply::QueryValidPaths(vec![pa])),
            (b, Reply::QueryValidPaths(vec![])),
        ]
    );
    assert!(client.is_idle());
    client.handle_eof(now).expect("clean close");
    assert_eq!(events(&mut client), vec![ClientEvent::Closed]);
}

#[test]
fn bytes_with_no_request_waiting_are_an_error() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    let mut input = server_hello(LATEST).to_vec();
    input.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    let err = client
        .handle_input(now, input.into())
        .expect_err("unexpected");
    assert!(
        matches!(*err.kind, ErrorKind::UnexpectedBytes { count: 8, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Protocol);
}

#[test]
fn add_to_store_nar_owns_its_acknowledgement() {
    let now = Instant::now();
    let nar = Bytes::from(
        Node::Regular {
            executable: false,
            contents: b"hello".to_vec(),
        }
        .to_nar(),
    );
    let x = path("x");
    let mut client = Client::new(ClientConfig::default(), now);
    client.handle_input(now, server_hello(LATEST)).expect("hs");
    let id = client
        .request(now, add(x.clone(), nar.len() as u64))
        .expect("add");
    let next = client.request(now, query(vec![])).expect("query");
    assert!(events(&mut client).contains(&ClientEvent::BodyWanted {
        id,
        max: Some(nar.len() as u64)
    }));
    assert_eq!(client.body_wanted(), Some((id, Some(nar.len() as u64))));
    // Only the AddToStoreNar header is on the wire: the next request waits
    // behind the body.
    let mut expected = Vec::new();
    encode_u64(CLIENT_MAGIC, &mut expected);
    encode_u64(LATEST.to_wire(), &mut expected);
    Request::from(add(x.clone(), nar.len() as u64)).encode(&Cx::new(LATEST), &mut expected);
    assert_eq!(sent(&mut client), expected);
    // A body for the wrong request is a caller's mistake: returned, and
    // nothing changes.
    let err = client
        .offer_body(now, next, nar.clone())
        .expect_err("not the request uploading");
    assert_eq!(err.class(), ErrorClass::Usage, "{err}");
    assert!(matches!(*err.kind, ErrorKind::Misuse(_)), "{err}");
    assert_eq!(client.error(), None);
    assert!(events(&mut client).is_empty());
    assert!(sent(&mut client).is_empty());
    assert_eq!(client.body_wanted(), Some((id, Some(nar.len() as u64))));
    // The connection is still usable: the right body goes out, then the
    // request queued behind it.
    assert_eq!(
        client.offer_body(now, id, nar.clone()).expect("body"),
        nar.len()
    );
    let mut after = nar.to_vec();
    query(vec![]).encode(&Cx::new(LATEST), &mut after);
    assert_eq!(sent(&mut client), after);

    let mut client = connected_client(now);
    let id = client
        .request(now, add(x.clone(), nar.len() as u64))
        .expect("add");
    let next = client.request(now, query(vec![])).expect("query");
    let (head, tail) = (nar.slice(..10), nar.slice(10..));
    assert_eq!(client.offer_body(now, id, head).expect("head"), 10);
    assert_eq!(
        client.offer_body(now, id, tail).expect("tail"),
        nar.len() - 10
    );
    let wire = sent(&mut client);
    assert!(wire.windows(nar.len()).any(|w| w == nar.as_ref()));
    // The ack belongs to AddToStoreNar, not to the query after it.
    client.handle_input(now, u64_bytes(1)).expect("ack");
    let evs = events(&mut client);
    assert!(evs.contains(&ClientEvent::Reply {
        id,
        reply: Reply::AddToStoreNar(Ack)
    }));
    assert!(
        !evs.iter()
            .any(|e| matches!(e, ClientEvent::Reply { id, .. } if *id == next))
    );
    // A failed import is reported, not mistaken for a reply.
    let mut client = connected_client(now);
    let id = client.request(now, add(x, nar.len() as u64)).expect("add");
    assert_eq!(
        client.offer_body(now, id, nar.clone()).expect("body"),
        nar.len()
    );
    let err = client.handle_input(now, u64_bytes(0)).expect_err("nack");
    assert!(err.to_string().contains("acknowledgement 1"), "{err}");
    assert_eq!(broken(&events(&mut client)), vec![err]);
}

#[test]
fn a_body_that_does_not_match_its_nar_size_is_refused() {
    let now = Instant::now();
    let nar = Node::Symlink {
        target: b"/x".to_vec(),
    }
    .to_nar();
    let mut garbage = b"not a NAR at all".to_vec();
    garbage.resize(nar.len(), 0);
    for (size, body, why) in [
        (
            nar.len() as u64 - 8,
            nar.clone(),
            "nar_size bytes were given but the NAR is incomplete",
        ),
        (
            nar.len() as u64 + 8,
            nar.clone(),
            "before the nar_size stated",
        ),
        (nar.len() as u64, garbage, "the request's NAR"),
    ] {
        let mut client = connected_client(now);
        let id = client.request(now, add(path("x"), size)).expect("add");
        let next = client.request(now, query(vec![])).expect("query");
        sent(&mut client);
        events(&mut client);
        let err = client
            .offer_body(now, id, body.into())
            .expect_err("bad body");
        assert!(err.to_string().contains(why), "{size}: {err}");
        assert_eq!(err.class(), ErrorClass::Protocol, "{err}");
        // A malformed body breaks the connection: the server could no longer
        // follow the stream.
        assert_eq!(broken(&events(&mut client)), vec![err.clone()]);
        assert_eq!(client.error(), Some(&err));
        assert_eq!(
            client
                .offer_body(now, id, Bytes::from_static(b"more"))
                .expect_err("broken"),
            err
        );
        assert_eq!(client.request(now, query(vec![])).expect_err("broken"), err);
        // Nothing of the bad body, nor the request behind it, went out.
        assert!(sent(&mut client).is_empty(), "{next}");
    }
}

#[test]
fn bytes_beyond_a_body_are_not_taken() {
    let now = Instant::now();
    let nar = Node::Symlink {
        target: b"/x".to_vec(),
    }
    .to_nar();
    let cx = Cx::new(LATEST);

    // AddToStoreNar: exactly nar_size bytes are taken, the rest is left.
    let mut client = connected_client(now);
    let id = client
        .request(now, add(path("x"), nar.len() as u64))
        .expect("add");
    let next = client.request(now, query(vec![])).expect("query");
    sent(&mut client);
    events(&mut client);
    let mut body = nar.clone();
    body.push(0);
    assert_eq!(
        client.offer_body(now, id, body.into()).expect("body"),
        nar.len()
    );
    assert_eq!(client.error(), None);
    assert_eq!(client.body_wanted(), None);
    let mut expected = nar.clone();
    query(vec![]).encode(&cx, &mut expected);
    assert_eq!(sent(&mut client), expected, "{next}");

    // ImportPaths: the NARs of its paths are taken, each followed by its
    // metadata; what comes after the last is left.
    let (i1, i2) = (path("i1"), path("i2"));
    let mut client = connected_client(now);
    let id = client
        .request(
            now,
            ImportPaths {
                paths: vec![trailer(&i1), trailer(&i2)],
            },
        )
        .expect("import");
    let next = client.request(now, query(vec![])).expect("query");
    assert!(events(&mut client).contains(&ClientEvent::BodyWanted { id, max: None }));
    let mut expected = Vec::new();
    encode_u64(4, &mut expected);
    encode_u64(1, &mut expected);
    assert_eq!(sent(&mut client), expected);
    let body = [nar.clone(), nar.clone(), b"extra!!!".to_vec()].concat();
    assert_eq!(
        client.offer_body(now, id, body.into()).expect("body"),
        2 * nar.len()
    );
    assert_eq!(client.error(), None);
    assert_eq!(client.body_wanted(), None);
    let mut expected = nar.clone();
    trailer(&i1).encode(&cx, &mut expected);
    encode_u64(1, &mut expected);
    expected.extend_from_slice(&nar);
    trailer(&i2).encode(&cx, &mut expected);
    encode_u64(0, &mut expected);
    query(vec![]).encode(&cx, &mut expected);
    assert_eq!(sent(&mut client), expected, "{next}");
    // Once complete, the request takes no more body.
    let err = client
        .offer_body(now, id, Bytes::from_static(b"extra!!!"))
        .expect_err("body complete");
    assert_eq!(err.class(), ErrorClass::Usage);
    assert_eq!(client.error(), None);
}

#[test]
fn dump_store_path_streams_without_waiting_for_the_end() {
    let now = Instant::now();
    let nar = Bytes::from(
        Node::Regular {
            executable: true,
            contents: vec![7u8; 4 << 20],
        }
        .to_nar(),
    );
    let mut client = Client::new(ClientConfig::default(), now);
    let id = client
        .request(now, DumpStorePath { path: path("big") })
        .expect("dump");
    let next = client.request(now, query(vec![])).expect("query");
    client.handle_input(now, server_hello(LATEST)).expect("hs");
    events(&mut client);
    let mut streamed = 0;
    let mut done = Vec::new();
    for at in (0..nar.len()).step_by(64 * 1024) {
        let chunk = nar.slice(at..(at + 64 * 1024).min(nar.len()));
        client.handle_input(now, chunk).expect("chunk");
        // Memory does not grow with the NAR: nothing is left buffered.
        assert!(client.buffered() < 4096, "{}", client.buffered());
        for e in events(&mut client) {
            match e {
                ClientEvent::NarChunk { id: cid, data } => {
                    assert_eq!(cid, id);
                    // Each chunk is passed on as it arrives: nothing
                    // accumulates.
                    assert!(data.len() <= 64 * 1024);
                    assert_eq!(data, nar.slice(streamed..streamed + data.len()));
                    streamed += data.len();
                }
                other => done.push(other),
            }
        }
    }
    assert_eq!(streamed, nar.len());
    // The NAR's end is found by its grammar, and ends the request.
    assert_eq!(
        done,
        vec![ClientEvent::Reply {
            id,
            reply: Reply::DumpStorePath(NarDone {
                nar_size: nar.len() as u64
            })
        }]
    );
    // The reply to the next request follows the NAR directly.
    let mut rest = Vec::new();
    Reply::QueryValidPaths(vec![]).encode(&Cx::new(LATEST), &mut rest);
    client.handle_input(now, rest.into()).expect("next");
    let evs = events(&mut client);
    assert_eq!(
        evs,
        vec![ClientEvent::Reply {
            id: next,
            reply: Reply::QueryValidPaths(vec![])
        }]
    );
    assert!(client.is_idle());
}

#[test]
fn stderr_becomes_logs_even_after_an_error() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    client.handle_stderr(now, Bytes::from_static(b"building '/nix/store/x.drv'...\n"));
    let _ = client.handle_input(now, Bytes::from_static(b"garbage!"));
    assert!(client.error().is_some());
    client.handle_stderr(
        now,
        Bytes::from_static(b"ssh: connect to host x port 22: refused\n"),
    );
    let logs: Vec<_> = events(&mut client)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Log(b) => Some(b.text),
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
    assert_eq!(err.class(), ErrorClass::Transport);

    let closure = || QueryClosure {
        include_outputs: false,
        paths: vec![],
    };
    let expected = "the connection closed while waiting for the reply to QueryClosure (request 0)";
    let mut client = connected_client(now);
    client.request(now, closure()).expect("closure");
    client
        .handle_input(now, Bytes::from_static(&[2, 0, 0]))
        .expect("partial");
    let err = client.handle_eof(now).expect_err("eof mid reply");
    assert_eq!(err.to_string(), expected);
    assert_eq!(err.class(), ErrorClass::Transport);
    assert_eq!(broken(&events(&mut client)), vec![err]);

    // The same against a server whose stream is cut 3 bytes into its reply.
    let mut pair = Pair::new(
        Client::new(ClientConfig::default(), now),
        Server::new(ServerConfig::default(), now),
        now,
    );
    pair.cut_server_after = Some(16 + 3);
    pair.client.request(now, closure()).expect("closure");
    let result = pair.drive(|server, event| {
        if let ServerEvent::Request { id, .. } = event {
            let reply = Reply::QueryClosure(vec![hello(), path("c")]);
            server.reply(id, &reply).expect("reply");
        }
    });
    match result {
        Err(PairError::Client(err)) => assert_eq!(err.to_string(), expected),
        other => panic!("expected the client to break, got {other:?}"),
    }
}

#[test]
fn abandoning_a_sent_request_breaks_the_connection() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    let queued = client.request(now, query(vec![])).expect("queued");
    client.abandon(queued);
    client.handle_input(now, server_hello(LATEST)).expect("hs");
    // The abandoned request was never sent: only the client's hello was.
    assert_eq!(sent(&mut client).len(), 16);
    assert_eq!(client.error(), None);
    let id = client.request(now, query(vec![])).expect("sent");
    assert_eq!(id, RequestId(1));
    client.abandon(id);
    let err = client.request(now, query(vec![])).expect_err("broken");
    assert!(matches!(*err.kind, ErrorKind::Abandoned), "{err}");
    assert_eq!(err.request, Some(RequestId(1)), "{err}");
    assert!(
        broken(&events(&mut client)).contains(&err),
        "reported as an event"
    );
}

#[test]
fn deadlines_come_out_of_poll_timeout() {
    let start = Instant::now();
    let mut config = ClientConfig::default();
    config.handshake_timeout = Some(Duration::from_secs(60));
    config.stall_timeout = Some(Duration::from_secs(600));
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
    assert_eq!(err.class(), ErrorClass::Timeout);

    // Against a server whose host never answers.
    let mut pair = Pair::new(
        Client::new(config, start),
        Server::new(ServerConfig::default(), start),
        start,
    );
    pair.drive(|_, _| {}).expect("handshake");
    assert_eq!(pair.client.version(), Some(LATEST));
    // Idle with nothing in flight: no deadline.
    assert_eq!(pair.client.poll_timeout(), None);
    let id = pair.client.request(pair.now, query(vec![])).expect("q");
    pair.drive(|_, _| {}).expect("sent");
    assert_eq!(
        pair.client.poll_timeout(),
        Some(start + Duration::from_secs(600))
    );
    pair.advance(Duration::from_secs(100)).expect("not yet");
    let later = pair.now;
    // Anything received, stderr too, restarts the stall clock.
    pair.client
        .handle_stderr(later, Bytes::from_static(b"still working\n"));
    assert_eq!(
        pair.client.poll_timeout(),
        Some(later + Duration::from_secs(600))
    );
    pair.advance(Duration::from_secs(599)).expect("not yet");
    match pair.advance(Duration::from_secs(1)) {
        Err(PairError::Client(err)) => {
            assert_eq!(err.class(), ErrorClass::Timeout, "{err}");
            assert_eq!(err.request, Some(id), "{err}");
            assert!(
                err.to_string()
                    .contains("waiting for the reply to QueryValidPaths"),
                "{err}"
            );
        }
        other => panic!("expected a stall timeout, got {other:?}"),
    }
}

#[test]
fn the_server_refuses_a_wrong_magic_and_answers_in_order() {
    let now = Instant::now();
    let mut server = Server::new(ServerConfig::default(), now);
    let err = server
        .handle_input(now, Bytes::from_static(b"GET / HTTP/1.1\r\n"))
        .expect_err("magic");
    assert!(err.to_string().contains("GET / HTTP/1.1"), "{err}");
    assert_eq!(err.class(), ErrorClass::Protocol);
    assert!(matches!(server_events(&mut server)[..], [ServerEvent::Broken(ref e)] if *e == err));

    let mut server = Server::new(ServerConfig::default(), now);
    let mut input = Vec::new();
    encode_u64(CLIENT_MAGIC, &mut input);
    encode_u64(Version::new(2, 5).to_wire(), &mut input);
    let cx = Cx::new(Version::new(2, 5));
    query(vec![hello()]).encode(&cx, &mut input);
    query(vec![path("b")]).encode(&cx, &mut input);
    server.handle_input(now, input.into()).expect("requests");
    let ids: Vec<RequestId> = server_events(&mut server)
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Request { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(server.version(), Some(Version::new(2, 5)));
    let err = server
        .reply(ids[1], &Reply::QueryValidPaths(vec![]))
        .expect_err("out of order");
    assert!(err.to_string().contains("must be answered first"), "{err}");
    assert_eq!(err.class(), ErrorClass::Usage);
    let err = server
        .reply(ids[0], &Reply::QueryClosure(vec![]))
        .expect_err("wrong kind");
    assert_eq!(err.class(), ErrorClass::Usage);
    // Caller's mistakes change nothing.
    assert_eq!(server.error(), None);
    server
        .reply(ids[0], &Reply::QueryValidPaths(vec![hello()]))
        .expect("in order");
    server
        .reply(ids[1], &Reply::QueryValidPaths(vec![]))
        .expect("in order");
    let mut expected = Vec::new();
    encode_u64(SERVER_MAGIC, &mut expected);
    encode_u64(LATEST.to_wire(), &mut expected);
    Reply::QueryValidPaths(vec![hello()]).encode(&cx, &mut expected);
    Reply::QueryValidPaths(vec![]).encode(&cx, &mut expected);
    assert_eq!(server_sent(&mut server), expected);
}

/// A client and a server of the core at versions `c` and `s`, joined by a
/// [`Pair`] delivering at most `max_read` bytes at a time, run every command;
/// the server must see what the client asked, the client must get what the
/// server answered.
fn converse(c: Version, s: Version, max_read: usize) {
    let now = Instant::now();
    let v = c.min(s);
    let cx = Cx::<Serve>::new(v);
    let mut client_config = ClientConfig::default();
    client_config.version = c;
    let mut server_config = ServerConfig::default();
    server_config.version = s;
    let mut pair = Pair::new(
        Client::new(client_config, now),
        Server::new(server_config, now),
        now,
    );
    pair.max_read = max_read;
    let file = Bytes::from(
        Node::Regular {
            executable: false,
            contents: b"a".repeat(1000),
        }
        .to_nar(),
    );
    let tree = Bytes::from(
        Node::Directory(vec![
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
        .to_nar(),
    );
    let (a, i1, i2, drv) = (hello(), path("i1"), path("i2"), path("d.drv"));
    let result = BuildResult {
        built_outputs: vec![(
            OutputName::out(),
            Realisation {
                id: None,
                out_path: path("o"),
                signatures: vec![],
            },
        )],
        times_built: 1,
        start_time: 100,
        stop_time: 200,
        cpu_user: Some(5),
        ..BuildResult::new(BuildStatus::Built, "")
    };
    let info = PathInfo {
        deriver: Some(path("d.drv")),
        nar_hash: Some(NarHash([0x11; 32])),
        references: vec![path("r")],
        registration_time: 0,
        nar_size: 8,
        download_size: 8,
        ultimate: false,
        sigs: vec![Signature::new("cache.example.org-1:c2lnbmF0dXJl")],
        ca: None,
        provenance: None,
    };
    let exchanges: Vec<(Request, Reply)> = vec![
        (
            query(vec![a.clone()]),
            Reply::QueryValidPaths(vec![a.clone()]),
        ),
        (
            Request::QueryPathInfos(QueryPathInfos {
                paths: vec![a.clone()],
            }),
            Reply::QueryPathInfos(PathInfos(vec![(a.clone(), info)])),
        ),
        (
            Request::DumpStorePath(DumpStorePath { path: a.clone() }),
            Reply::DumpStorePath(NarDone {
                nar_size: tree.len() as u64,
            }),
        ),
        (
            Request::ImportPaths(ImportPaths {
                paths: vec![trailer(&i1), trailer(&i2)],
            }),
            Reply::ImportPaths(Ack),
        ),
        (
            Request::BuildPaths(BuildPaths {
                paths: vec![format!("/nix/store/{drv}!out").into()],
                // Fields the older versions lack are set, so that gating
                // shows.
                options: BuildOptions {
                    max_silent_time: 5,
                    build_timeout: 6,
                    max_log_size: 7,
                    nr_repeats: 0,
                    enforce_determinism: true,
                    keep_failed: true,
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
            Reply::QueryClosure(vec![path("c")]),
        ),
        (
            Request::BuildDerivation(BuildDerivation {
                drv_path: drv.clone(),
                drv: BasicDerivation {
                    outputs: vec![DerivationOutput {
                        name: OutputName::out(),
                        path: Some(path("o")),
                        hash_algo: "".into(),
                        hash: "".into(),
                    }],
                    input_srcs: vec![a.clone()],
                    platform: "x86_64-linux".into(),
                    builder: "/bin/sh".into(),
                    args: vec!["-c".into(), "true".into()],
                    env: vec![("out".into(), "/nix/store/o".into())],
                },
                options: BuildOptions::default(),
            }),
            Reply::BuildDerivation(result),
        ),
        (
            Request::AddToStoreNar(add(path("n"), file.len() as u64)),
            Reply::AddToStoreNar(Ack),
        ),
    ];
    // AddToStoreNar came with 2.5: below, it never reaches the server.
    let has_add = v >= Version::new(2, 5);
    let reaches_server = |r: &Request| has_add || !matches!(r, Request::AddToStoreNar(_));

    let mut ids = Vec::new();
    for (request, _) in &exchanges {
        ids.push(
            pair.client
                .request(pair.now, request.clone())
                .expect("request"),
        );
    }
    let mut seen_requests = Vec::new();
    let mut imported = Vec::new();
    let mut server_bodies: Vec<u8> = Vec::new();
    let mut server_connected = Vec::new();
    let mut host = |server: &mut Server, e: ServerEvent| match e {
        ServerEvent::Connected {
            client_version,
            version,
        } => server_connected.push((client_version, version)),
        ServerEvent::Request { id, request } => {
            // Every request that reaches the server is answered with the
            // reply of the same place in the list.
            let index = seen_requests.len();
            assert_eq!(id, RequestId(index as u64));
            seen_requests.push(request);
            match &exchanges[index].1 {
                Reply::DumpStorePath(_) => {
                    for at in (0..tree.len()).step_by(100) {
                        let chunk = tree.slice(at..(at + 100).min(tree.len()));
                        let n = chunk.len();
                        assert_eq!(server.send_nar(id, chunk).expect("send nar"), n);
                    }
                }
                // These answer once their bodies have come.
                Reply::ImportPaths(_) | Reply::AddToStoreNar(_) => {}
                reply => server.reply(id, reply).expect("reply"),
            }
        }
        ServerEvent::NarChunk { data, .. } => server_bodies.extend_from_slice(&data),
        ServerEvent::ImportedPath { trailer, .. } => imported.push(trailer),
        ServerEvent::BodyEnd { id } => {
            let index = usize::try_from(id.0).expect("small");
            server.reply(id, &exchanges[index].1).expect("ack");
        }
        ServerEvent::NarEnd { .. } => {}
        other => panic!("server: unexpected {other:?}"),
    };
    let mut replies = Vec::new();
    let mut failed = Vec::new();
    let mut dumped: Vec<u8> = Vec::new();
    let mut connected = Vec::new();
    let mut bodies_wanted = Vec::new();
    for _round in 0..10 {
        pair.drive(&mut host).expect("drive");
        while let Some(e) = pair.events.pop_front() {
            match e {
                ClientEvent::Connected {
                    server_version,
                    version,
                } => connected.push((server_version, version)),
                ClientEvent::BodyWanted { id, max } => {
                    bodies_wanted.push((id, max));
                    let body = if id == ids[3] {
                        [file.clone(), tree.clone()].concat().into()
                    } else {
                        file.clone()
                    };
                    // Odd chunk sizes cross every boundary.
                    for at in (0..body.len()).step_by(333) {
                        let chunk = body.slice(at..(at + 333).min(body.len()));
                        let n = chunk.len();
                        let taken = pair.client.offer_body(pair.now, id, chunk).expect("body");
                        assert_eq!(taken, n);
                    }
                }
                ClientEvent::Reply { id, reply } => replies.push((id, reply)),
                ClientEvent::Failed { id, error } => failed.push((id, error)),
                ClientEvent::NarChunk { id, data } => {
                    assert_eq!(id, ids[2]);
                    dumped.extend_from_slice(&data);
                }
                other => panic!("client: unexpected {other:?}"),
            }
        }
        if pair.client.is_idle() {
            break;
        }
    }
    let at = format!("client {c} server {s}");
    assert!(pair.client.is_idle(), "{at}");
    assert_eq!(connected, vec![(s, v)], "{at}");
    assert_eq!(server_connected, vec![(c, v)], "{at}");

    // What the server saw, at the negotiated version (gated fields dropped;
    // an ImportPaths header carries nothing, its paths come with the body).
    let expected: Vec<Request> = exchanges
        .iter()
        .map(|(r, _)| r)
        .filter(|r| reaches_server(r))
        .map(|r| match r {
            Request::ImportPaths(_) => Request::ImportPaths(ImportPaths::default()),
            other => request_at(&cx, other),
        })
        .collect();
    assert_eq!(seen_requests, expected, "{at}");
    assert_eq!(imported, vec![trailer(&i1), trailer(&i2)], "{at}");
    let mut bodies = vec![file.clone(), tree.clone()];
    let mut wanted = vec![(ids[3], None)];
    if has_add {
        bodies.push(file.clone());
        wanted.push((ids[7], Some(file.len() as u64)));
    }
    assert_eq!(bodies_wanted, wanted, "{at}");
    assert_eq!(server_bodies, bodies.concat(), "{at}");
    assert_eq!(dumped, tree, "{at}");

    // What the client got, at the negotiated version, each owned by its
    // request.
    let want: Vec<(RequestId, Reply)> = ids
        .iter()
        .zip(&exchanges)
        .filter(|(_, (request, _))| reaches_server(request))
        .map(|(id, (_, reply))| {
            let reply = match reply {
                // Nothing of it is a message: the client counts the NAR.
                Reply::DumpStorePath(_) => reply.clone(),
                _ => reply_at(&cx, reply),
            };
            (*id, reply)
        })
        .collect();
    assert_eq!(replies, want, "{at}");

    // A request the negotiated version lacks fails on its own; the
    // connection goes on.
    if has_add {
        assert!(failed.is_empty(), "{at}: {failed:?}");
    } else {
        assert_eq!(failed.len(), 1, "{at}: {failed:?}");
        let (id, error) = &failed[0];
        assert_eq!(*id, ids[7], "{at}");
        assert_eq!(error.class(), ErrorClass::Refused, "{at}: {error}");
        assert!(
            matches!(*error.kind, ErrorKind::Unsupported { .. }),
            "{at}: {error}"
        );
        assert!(
            error
                .to_string()
                .contains("AddToStoreNar needs serve protocol 2.5"),
            "{at}: {error}"
        );
        assert_eq!(pair.client.error(), None, "{at}");
        let id = pair
            .client
            .request(pair.now, query(vec![a.clone()]))
            .expect("still usable");
        pair.drive(|server, e| {
            if let ServerEvent::Request { id, .. } = e {
                server
                    .reply(id, &Reply::QueryValidPaths(vec![]))
                    .expect("reply");
            }
        })
        .expect("drive");
        assert_eq!(
            pair.events.drain(..).collect::<Vec<_>>(),
            vec![ClientEvent::Reply {
                id,
                reply: Reply::QueryValidPaths(vec![])
            }],
            "{at}"
        );
    }
    assert_eq!(pair.client.error(), None, "{at}");
    assert_eq!(pair.server.error(), None, "{at}");
}

#[test]
fn client_and_server_agree_at_every_pair_of_versions() {
    for c in 0..=LATEST.minor {
        for s in 0..=LATEST.minor {
            for max_read in [usize::MAX, 13] {
                converse(Version::new(2, c), Version::new(2, s), max_read);
            }
        }
    }
}

/// A long upload (a NAR over a slow link; the server says nothing until it
/// ends) is progress: each write the runtime reports restarts the stall
/// clock, and a peer that stops taking bytes is given up a stall timeout
/// after the last one.
#[test]
fn bytes_going_out_keep_the_stall_clock_going() {
    let start = Instant::now();
    let mut config = ClientConfig::default();
    config.stall_timeout = Some(Duration::from_secs(2));
    let mut pair = Pair::new(
        Client::new(config, start),
        Server::new(ServerConfig::default(), start),
        start,
    );
    pair.drive(|_, _| {}).expect("handshake");
    let id = pair.client.request(pair.now, query(vec![])).expect("q");
    pair.drive(|_, _| {}).expect("sent");
    let sent = pair.now;
    assert_eq!(
        pair.client.poll_timeout(),
        Some(sent + Duration::from_secs(2))
    );
    // A write of nothing is no progress.
    pair.client.handle_sent(sent + Duration::from_secs(1), 0);
    assert_eq!(
        pair.client.poll_timeout(),
        Some(sent + Duration::from_secs(2))
    );
    for s in 1..=5 {
        let at = sent + Duration::from_millis(1500 * s);
        pair.client.handle_sent(at, 4096);
        assert_eq!(
            pair.client.poll_timeout(),
            Some(at + Duration::from_secs(2))
        );
        pair.client.handle_timeout(at).expect("still moving");
    }
    let last = sent + Duration::from_millis(7500);
    pair.client
        .handle_timeout(last + Duration::from_millis(1999))
        .expect("not yet");
    let err = pair
        .client
        .handle_timeout(last + Duration::from_secs(2))
        .expect_err("stalled");
    assert_eq!(err.class(), ErrorClass::Timeout, "{err}");
    assert_eq!(err.request, Some(id), "{err}");
    assert!(
        err.to_string().contains("nothing received or sent"),
        "{err}"
    );
}
