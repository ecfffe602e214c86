//! The core's foundations, one test (or a few) per point of the issue that
//! introduced them: strings are bytes, store types are validated, the
//! operation table types replies, three kinds of error, bodies on demand
//! without copies, time passed in, resumable decoding with bounded memory,
//! and Nix's NAR rules on the wire.

use std::time::{Duration, Instant};

use bytes::Bytes;
use nixwire_core::conn::{Connection, ErrorClass, ErrorKind};
use nixwire_core::nar::Node;
use nixwire_core::pair::Pair;
use nixwire_core::serve::messages::*;
use nixwire_core::serve::{
    Client, ClientConfig, ClientEvent, Command, Op, Reply, Request, Server, ServerConfig,
    ServerEvent,
};
use nixwire_core::store::{
    BasicDerivation, BuildResult, BuildStatus, NarHash, OutputName, StoreDir, StorePath,
};
use nixwire_core::wire::{Cx, DecodeErrorKind, Limits, NixString, Serve, Version, Wire};

type ServePair = Pair<Client, Server>;

fn pair_at(version: Version) -> ServePair {
    let now = Instant::now();
    let mut c = ClientConfig::default();
    c.version = version;
    let mut s = ServerConfig::default();
    s.version = version;
    Pair::new(Client::new(c, now), Server::new(s, now), now)
}

fn path(n: u32) -> StorePath {
    // A digest of its own per `n`; `from_digest` prints it in Nix's base 32.
    let mut digest = [0u8; 20];
    digest[..4].copy_from_slice(&n.to_le_bytes());
    StorePath::from_digest(&digest, &format!("p{n}")).expect("a valid store path")
}

fn replies(pair: &mut ServePair) -> Vec<Reply> {
    pair.events
        .drain(..)
        .filter_map(|e| match e {
            ClientEvent::Reply { reply, .. } => Some(reply),
            _ => None,
        })
        .collect()
}

/// A host that answers every query with the paths asked for.
fn echo(server: &mut Server, event: ServerEvent) {
    if let ServerEvent::Request { id, request } = event {
        let reply = match request {
            Request::QueryValidPaths(q) => Reply::QueryValidPaths(q.paths),
            Request::QueryClosure(q) => Reply::QueryClosure(q.paths),
            other => panic!("unexpected {other:?}"),
        };
        server.reply(id, &reply).expect("reply");
    }
}

/// Asks whether `p` is valid and checks the echoed answer: the connection
/// works.
fn check_still_usable(pair: &mut ServePair, p: StorePath) {
    let now = pair.now;
    pair.client
        .request(now, query(vec![p.clone()]))
        .expect("request");
    pair.drive(echo).expect("drive");
    assert_eq!(replies(pair), vec![Reply::QueryValidPaths(vec![p])]);
}

fn query(paths: Vec<StorePath>) -> QueryValidPaths {
    QueryValidPaths {
        lock: false,
        substitute: false,
        paths,
    }
}

fn drv(env_value: &[u8]) -> BuildDerivation {
    BuildDerivation {
        drv_path: path(1),
        drv: BasicDerivation {
            outputs: vec![],
            input_srcs: vec![],
            platform: "x86_64-linux".into(),
            builder: "/bin/sh".into(),
            args: vec![NixString::from(b"-c\xff".to_vec())],
            env: vec![("latin1".into(), NixString::from(env_value.to_vec()))],
        },
        options: BuildOptions::default(),
    }
}

// 1. Nix strings are bytes.

#[test]
fn a_latin1_error_message_is_a_failed_build_not_a_broken_connection() {
    for minor in [5, 7, 8] {
        let mut pair = pair_at(Version::new(2, minor));
        let now = pair.now;
        let failure = BuildResult::new(
            BuildStatus::PermanentFailure,
            NixString::from(b"builder failed: caf\xe9".to_vec()),
        );
        let expected = failure.clone();
        let mut env_seen = None;
        pair.client.request(now, drv(b"caf\xe9")).expect("request");
        pair.drive(|server, event| {
            if let ServerEvent::Request {
                id,
                request: Request::BuildDerivation(b),
            } = event
            {
                env_seen = Some(b.drv.env[0].1.clone());
                let reply = Reply::BuildDerivation(failure.clone());
                server.reply(id, &reply).expect("reply");
            }
        })
        .expect("drive");
        assert_eq!(
            env_seen.as_ref().map(NixString::as_bytes),
            Some(&b"caf\xe9"[..])
        );
        let got = replies(&mut pair);
        let [Reply::BuildDerivation(result)] = &got[..] else {
            panic!("expected one build result, got {got:?}");
        };
        assert_eq!(result.error_msg.as_bytes(), b"builder failed: caf\xe9");
        assert_eq!(result.status, expected.status);
        assert!(pair.client.error().is_none());
        // The connection goes on.
        check_still_usable(&mut pair, path(2));
    }
}

// 2. Domain types once; the store directory is the connection's.

#[test]
fn store_paths_travel_in_the_connections_store_directory() {
    let now = Instant::now();
    let gnu = StoreDir::new("/gnu/store").expect("a store dir");
    let mut c = ClientConfig::default();
    c.store_dir = gnu.clone();
    let mut s = ServerConfig::default();
    s.store_dir = gnu;
    let mut pair = Pair::new(Client::new(c, now), Server::new(s, now), now);
    pair.drive(echo).expect("handshake");
    pair.client
        .request(now, query(vec![path(7)]))
        .expect("request");
    let wire: Vec<u8> = std::iter::from_fn(|| pair.client.poll_transmit())
        .flat_map(|b| b.to_vec())
        .collect();
    let text = String::from_utf8_lossy(&wire);
    assert!(text.contains(&format!("/gnu/store/{}", path(7))), "{text}");
    pair.server
        .handle_input(now, Bytes::from(wire))
        .expect("server");
    pair.drive(echo).expect("drive");
    assert_eq!(
        replies(&mut pair),
        vec![Reply::QueryValidPaths(vec![path(7)])]
    );
}

#[test]
fn an_invalid_store_path_in_a_reply_names_the_field_and_what_was_expected() {
    let mut pair = pair_at(Version::new(2, 7));
    let now = pair.now;
    pair.client
        .request(now, query(vec![path(1)]))
        .expect("request");
    // The server's host never answers; a hostile or buggy server sends
    // bytes that are no store path instead.
    pair.drive(|_, _| {}).expect("drive");
    let mut bytes = Vec::new();
    nixwire_core::wire::encode_u64(1, &mut bytes);
    nixwire_core::wire::encode_bytes(b"/nix/store/not-a-valid-path", &mut bytes);
    let err = pair
        .client
        .handle_input(now, Bytes::from(bytes))
        .expect_err("invalid path");
    let text = err.to_string();
    assert!(text.contains("request 0 (QueryValidPaths)"), "{text}");
    assert!(text.contains("reply.QueryValidPaths[0]"), "{text}");
    assert!(text.contains("a store path in /nix/store"), "{text}");
    assert_eq!(err.class(), ErrorClass::Protocol);
}

// 3. One operation table; requests carry their reply type.

#[test]
fn the_operation_table_gives_codes_names_kinds_and_typed_replies() {
    assert_eq!(Command::ALL.len(), 8);
    assert_eq!(Command::AddToStoreNar.code(), 9);
    assert_eq!(Command::AddToStoreNar.since(), Version::new(2, 5));
    assert_eq!(Command::DumpStorePath.name(), "DumpStorePath");
    assert_eq!(<QueryClosure as Op>::COMMAND, Command::QueryClosure);
    let reply = Reply::QueryClosure(vec![path(3)]);
    let typed: Vec<StorePath> = QueryClosure::reply_of(reply.clone()).expect("its reply");
    assert_eq!(typed, vec![path(3)]);
    assert!(QueryValidPaths::reply_of(reply).is_err());
}

// 4. Three kinds of error.

#[test]
fn a_callers_mistake_is_returned_and_changes_nothing() {
    let mut pair = pair_at(Version::new(2, 7));
    let now = pair.now;
    let id = pair
        .client
        .request(now, query(vec![path(1)]))
        .expect("request");
    let err = pair
        .client
        .offer_body(now, id, Bytes::from_static(b"nothing wanted"))
        .expect_err("no body is wanted");
    assert_eq!(err.class(), ErrorClass::Usage);
    assert!(pair.client.error().is_none());
    // The server side: answering out of order is a mistake too.
    let mut pending = Vec::new();
    pair.client
        .request(now, query(vec![path(2)]))
        .expect("second");
    pair.drive(|_, event| {
        if let ServerEvent::Request { id, request } = event {
            pending.push((id, request));
        }
    })
    .expect("drive");
    let [(first, _), (second, _)] = &pending[..] else {
        panic!("two requests, got {pending:?}");
    };
    let err = pair
        .server
        .reply(*second, &Reply::QueryValidPaths(vec![]))
        .expect_err("out of order");
    assert_eq!(err.class(), ErrorClass::Usage);
    pair.server
        .reply(*first, &Reply::QueryValidPaths(vec![path(1)]))
        .expect("in order");
    pair.server
        .reply(*second, &Reply::QueryValidPaths(vec![path(2)]))
        .expect("in order");
    pair.drive(echo).expect("drive");
    assert_eq!(
        replies(&mut pair),
        vec![
            Reply::QueryValidPaths(vec![path(1)]),
            Reply::QueryValidPaths(vec![path(2)])
        ]
    );
}

#[test]
fn an_operation_the_peer_lacks_is_that_requests_failure_only() {
    let mut pair = pair_at(Version::new(2, 4));
    let now = pair.now;
    let nar = Node::Regular {
        executable: false,
        contents: b"x".to_vec(),
    }
    .to_nar();
    let add = AddToStoreNar {
        path: path(1),
        deriver: None,
        nar_hash: NarHash([0; 32]),
        references: vec![],
        registration_time: 0,
        nar_size: nar.len() as u64,
        ultimate: false,
        sigs: vec![],
        ca: None,
    };
    let refused = pair.client.request(now, add).expect("request");
    let fine = pair
        .client
        .request(now, query(vec![path(2)]))
        .expect("request");
    pair.drive(echo).expect("drive");
    let mut failed = None;
    let mut answered = None;
    for event in pair.events.drain(..) {
        match event {
            ClientEvent::Failed { id, error } => failed = Some((id, error)),
            ClientEvent::Reply { id, reply } => answered = Some((id, reply)),
            _ => {}
        }
    }
    let (id, error) = failed.expect("a failed request");
    assert_eq!(id, refused);
    assert_eq!(error.class(), ErrorClass::Refused);
    assert!(
        error
            .to_string()
            .contains("AddToStoreNar needs serve protocol 2.5"),
        "{error}"
    );
    assert_eq!(
        answered,
        Some((fine, Reply::QueryValidPaths(vec![path(2)])))
    );
}

#[test]
fn a_broken_connection_says_so_once_with_its_context() {
    let mut pair = pair_at(Version::new(2, 7));
    let now = pair.now;
    pair.client
        .request(now, query(vec![path(1)]))
        .expect("request");
    // Flip the top byte of the reply's count: about 2^63 items.
    pair.corrupt_server_byte = Some(23);
    let err = pair.drive(echo).expect_err("broken");
    let broken: Vec<_> = pair
        .events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Broken(_)))
        .collect();
    assert_eq!(broken.len(), 1, "{:?}", pair.events);
    let again = pair.client.request(now, query(vec![])).expect_err("broken");
    assert_eq!(
        again.to_string(),
        pair.client.error().expect("error").to_string()
    );
    let e = pair.client.error().expect("error");
    assert_eq!(e.class(), ErrorClass::Protocol);
    assert_eq!(e.op, Some("QueryValidPaths"));
    assert!(err.to_string().contains("item count"), "{err}");
}

// 5. Bodies on demand, without copies.

#[test]
fn nar_chunks_are_slices_of_the_bytes_received() {
    let mut pair = pair_at(Version::new(2, 7));
    let now = pair.now;
    let nar = Node::Regular {
        executable: false,
        contents: vec![7; 100_000],
    }
    .to_nar();
    let id = pair
        .client
        .request(now, DumpStorePath { path: path(1) })
        .expect("request");
    pair.drive(|_, _| {}).expect("drive");
    pair.events.clear();
    let range = nar.as_ptr() as usize..nar.as_ptr() as usize + nar.len();
    pair.client
        .handle_input(now, Bytes::from(nar))
        .expect("input");
    let mut total = 0;
    while let Some(event) = pair.client.poll_event() {
        match event {
            ClientEvent::NarChunk { id: i, data } => {
                assert_eq!(i, id);
                assert!(range.contains(&(data.as_ptr() as usize)), "a copy");
                total += data.len();
            }
            ClientEvent::Reply { reply, .. } => {
                assert_eq!(
                    reply,
                    Reply::DumpStorePath(NarDone {
                        nar_size: total as u64
                    })
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(total, range.len());
}

#[test]
fn an_offered_body_leaves_as_the_same_slices() {
    let mut pair = pair_at(Version::new(2, 7));
    let now = pair.now;
    let nar = Bytes::from(
        Node::Regular {
            executable: false,
            contents: vec![1; 50_000],
        }
        .to_nar(),
    );
    let add = AddToStoreNar {
        path: path(1),
        deriver: None,
        nar_hash: NarHash([0; 32]),
        references: vec![],
        registration_time: 0,
        nar_size: nar.len() as u64,
        ultimate: false,
        sigs: vec![],
        ca: None,
    };
    let id = pair.client.request(now, add).expect("request");
    pair.drive(|_, _| {}).expect("drive");
    let wanted = pair
        .events
        .iter()
        .find_map(|e| match e {
            ClientEvent::BodyWanted { id, max } => Some((*id, *max)),
            _ => None,
        })
        .expect("body wanted");
    assert_eq!(wanted, (id, Some(nar.len() as u64)));
    let half = nar.len() / 2;
    assert_eq!(
        pair.client
            .offer_body(now, id, nar.slice(..half))
            .expect("offer"),
        half
    );
    // More than the body: only the rest of it is taken.
    let mut more = nar.slice(half..).to_vec();
    more.extend_from_slice(b"not part of it");
    let taken = pair
        .client
        .offer_body(now, id, Bytes::from(more))
        .expect("offer");
    assert_eq!(taken, nar.len() - half);
    let first = pair.client.poll_transmit().expect("bytes");
    assert_eq!(
        first.as_ptr(),
        nar.as_ptr(),
        "the first half went out uncopied"
    );
    assert_eq!(first.len(), half);
}

// 6. Time and lifecycle.

#[test]
fn an_idle_kept_connection_does_not_time_out_on_its_next_request() {
    let now = Instant::now();
    let mut c = ClientConfig::default();
    c.stall_timeout = Some(Duration::from_secs(600));
    let mut pair = Pair::new(
        Client::new(c, now),
        Server::new(ServerConfig::default(), now),
        now,
    );
    pair.drive(echo).expect("handshake");
    pair.advance(Duration::from_secs(3600))
        .expect("an idle hour");
    let later = pair.now;
    pair.client
        .request(later, query(vec![path(1)]))
        .expect("request");
    assert_eq!(
        pair.client.poll_timeout(),
        Some(later + Duration::from_secs(600))
    );
    pair.client.handle_timeout(later).expect("not timed out");
    pair.advance(Duration::from_secs(599))
        .expect("still waiting");
    let err = pair.advance(Duration::from_secs(2)).expect_err("stalled");
    let nixwire_core::pair::PairError::Client(err) = err else {
        panic!("{err}");
    };
    assert_eq!(err.class(), ErrorClass::Timeout);
    assert_eq!(err.elapsed, Some(Duration::from_secs(601)));
}

#[test]
fn a_request_on_a_closed_connection_is_an_error_not_a_wait() {
    let mut pair = pair_at(Version::new(2, 7));
    let now = pair.now;
    pair.drive(echo).expect("handshake");
    pair.client.handle_eof(now).expect("clean close");
    assert!(matches!(
        pair.client.poll_event(),
        Some(ClientEvent::Closed)
    ));
    let err = pair.client.request(now, query(vec![])).expect_err("closed");
    assert!(matches!(*err.kind, ErrorKind::NotOpen));
    assert_eq!(err.class(), ErrorClass::Transport);
}

// 7. Resumable decoding; memory bounded by the limits.

fn big_reply(n: u32) -> Vec<u8> {
    let cx = Cx::<Serve>::new(Version::new(2, 7));
    let paths: Vec<StorePath> = (0..n).map(path).collect();
    paths.to_wire(&cx)
}

/// Time to take `bytes` as a QueryValidPaths reply, `piece` bytes at a time.
fn client_time(bytes: &[u8], piece: usize) -> Duration {
    let mut pair = pair_at(Version::new(2, 7));
    let now = pair.now;
    pair.client.request(now, query(vec![])).expect("request");
    pair.drive(|_, _| {}).expect("handshake");
    let start = Instant::now();
    for chunk in bytes.chunks(piece) {
        pair.client
            .handle_input(now, Bytes::copy_from_slice(chunk))
            .expect("input");
    }
    let elapsed = start.elapsed();
    assert!(
        pair.client
            .poll_event()
            .into_iter()
            .chain(std::iter::from_fn(|| pair.client.poll_event()))
            .any(|e| matches!(e, ClientEvent::Reply { .. }))
    );
    elapsed
}

#[test]
fn a_large_reply_in_small_reads_costs_time_linear_in_its_size() {
    let bytes = big_reply(50_000);
    let whole = client_time(&bytes, bytes.len());
    let small = client_time(&bytes, 4096);
    // Re-parsing from the start on every read made this about
    // (size / piece / 2) times slower: hundreds here. Linear decoding pays
    // only a per-read overhead; the factor is generous for noisy machines.
    assert!(
        small < whole * 10 + Duration::from_millis(200),
        "one read: {whole:?}, 4 KiB reads: {small:?}"
    );
}

fn server_with(limits: Limits, now: Instant) -> Server {
    let mut config = ServerConfig::default();
    config.limits = limits;
    Server::new(config, now)
}

/// What a client sends to ask `request`: its hello, then the request.
fn hello_and(request: impl Into<Request>) -> Vec<u8> {
    let cx = Cx::<Serve>::new(LATEST);
    let hello = ClientHello {
        magic: CLIENT_MAGIC,
        version: LATEST.to_wire(),
    };
    let mut bytes = hello.to_wire(&cx);
    request.into().encode(&cx, &mut bytes);
    bytes
}

#[test]
fn decoded_memory_counts_against_the_limit() {
    // Empty strings are 8 bytes on the wire and a whole string value in
    // memory: the decoded size is what must be bounded.
    let now = Instant::now();
    let mut limits = Limits::default();
    limits.max_decoded = 1 << 20;
    let mut server = server_with(limits, now);
    let bytes = hello_and(BuildPaths {
        paths: vec![NixString::new(); 100_000],
        options: BuildOptions::default(),
    });
    assert!(bytes.len() < 1 << 20, "the wire form is under the limit");
    let err = server
        .handle_input(now, Bytes::from(bytes))
        .expect_err("over the decoded limit");
    assert!(
        matches!(&*err.kind, ErrorKind::Decode { source, .. }
            if matches!(source.kind, DecodeErrorKind::TooLarge { what: "decoded message size", .. })),
        "{err}"
    );
}

#[test]
fn a_message_over_the_limit_is_refused_while_it_arrives() {
    let now = Instant::now();
    let mut limits = Limits::default();
    limits.max_message = 1 << 20;
    let mut server = server_with(limits, now);
    let big = NixString::from(vec![b'x'; 900 << 10]);
    let bytes = hello_and(BuildPaths {
        paths: vec![big; 5],
        options: BuildOptions::default(),
    });
    let mut fed = 0;
    let mut refused_at = None;
    for chunk in bytes.chunks(64 << 10) {
        fed += chunk.len();
        if server
            .handle_input(now, Bytes::copy_from_slice(chunk))
            .is_err()
        {
            refused_at = Some(fed);
            break;
        }
    }
    let at = refused_at.expect("refused");
    assert!(
        at <= (1 << 20) + (64 << 10) + 16,
        "refused only after {at} bytes"
    );
}

// 8. NAR rules as Nix has them, on the wire.

#[test]
fn a_nar_nix_refuses_breaks_the_download_before_it_reaches_a_store() {
    let mut pair = pair_at(Version::new(2, 7));
    let now = pair.now;
    let mut node = Node::Regular {
        executable: false,
        contents: b"deep".to_vec(),
    };
    for _ in 0..64 {
        node = Node::Directory(vec![(b"d".to_vec(), node)]);
    }
    pair.client
        .request(now, DumpStorePath { path: path(1) })
        .expect("request");
    pair.drive(|_, _| {}).expect("drive");
    let err = pair
        .client
        .handle_input(now, Bytes::from(node.to_nar()))
        .expect_err("too deep");
    assert!(matches!(*err.kind, ErrorKind::Nar { .. }), "{err}");
    assert!(err.to_string().contains("64"), "{err}");
}

#[test]
fn output_names_are_validated_where_nix_validates_them() {
    let cx = Cx::<Serve>::new(LATEST);
    let mut bytes = Vec::new();
    nixwire_core::wire::encode_bytes(b"bad/name", &mut bytes);
    let err = OutputName::decode_exact(&cx, &bytes).expect_err("invalid");
    assert!(err.to_string().contains("an output name"), "{err}");
}

#[test]
fn serve_logs_carry_the_request_they_belong_to() {
    // The same log event as the worker protocol's: a host handles the logs of
    // `ssh://` and `ssh-ng://` builds alike.
    let mut pair = pair_at(Version::new(2, 7));
    let now = pair.now;
    pair.drive(echo).expect("handshake");
    let id = pair.client.request(now, drv(b"x")).expect("request");
    pair.drive(|_, _| {}).expect("drive");
    pair.client
        .handle_stderr(now, Bytes::from_static(b"building...\n"));
    let log = std::iter::from_fn(|| pair.client.poll_event())
        .find_map(|e| match e {
            ClientEvent::Log(log) => Some(log),
            _ => None,
        })
        .expect("a log event");
    assert_eq!(log.request, Some(id));
    assert_eq!(log.source, nixwire_core::conn::LogSource::Stderr);
    assert_eq!(&log.text[..], b"building...\n");
}
