//! The protocol-neutral session against the serve and worker servers of the
//! core, through the `Pair` harness: each operation must become the
//! messages its protocol and version call for, and come back as the same
//! answer whichever protocol carried it.

use std::time::Instant;

use bytes::Bytes;
use nixwire_core::conn::{Connection, ErrorClass, LogSource};
use nixwire_core::nar::Node;
use nixwire_core::pair::Pair;
use nixwire_core::serve;
use nixwire_core::session::{Answer, BuildSettings, Event, Op, Protocol, Session, SessionConfig};
use nixwire_core::store::{
    BasicDerivation, BuildResult, BuildStatus, NarHash, PathInfo, StorePath,
};
use nixwire_core::wire::{Features, NixString, Version};
use nixwire_core::worker;
use nixwire_core::worker::stderr::RemoteError;

fn path(n: u32) -> StorePath {
    let mut digest = [0u8; 20];
    digest[..4].copy_from_slice(&n.to_le_bytes());
    StorePath::from_digest(&digest, &format!("p{n}")).expect("a valid store path")
}

fn info(n: u32) -> PathInfo {
    PathInfo {
        nar_hash: Some(NarHash::new([n as u8; 32])),
        nar_size: u64::from(n) * 100,
        ..PathInfo::default()
    }
}

fn nar() -> Bytes {
    Bytes::from(
        Node::Regular {
            executable: false,
            contents: b"the contents".to_vec(),
        }
        .to_nar(),
    )
}

fn serve_pair(server: Version) -> Pair<Session, serve::Server> {
    let now = Instant::now();
    let mut s = serve::ServerConfig::default();
    s.version = server;
    let session = Session::new(SessionConfig::new(Protocol::Serve), now);
    Pair::new(session, serve::Server::new(s, now), now)
}

fn worker_pair(server: Version, features: &[&str]) -> Pair<Session, worker::Server> {
    let now = Instant::now();
    let mut config = SessionConfig::new(Protocol::Worker);
    config.worker.features = Features::new(features.iter().copied());
    let mut s = worker::ServerConfig::default();
    s.version = server;
    s.features = Features::new(features.iter().copied());
    Pair::new(Session::new(config, now), worker::Server::new(s, now), now)
}

/// The answer of request `id` among the session's events.
fn answer(
    events: &mut std::collections::VecDeque<Event>,
    id: nixwire_core::conn::RequestId,
) -> Result<Answer, nixwire_core::conn::Error> {
    events
        .iter()
        .find_map(|e| match e {
            Event::Done { id: done, result } if *done == id => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no answer for request {id} in {events:?}"))
}

#[test]
fn path_infos_come_in_the_order_asked_whatever_order_the_server_uses() {
    let mut p = serve_pair(Version::new(2, 7));
    let asked = vec![path(3), path(1), path(2)];
    let id = p
        .client
        .request(
            p.now,
            Op::QueryPathInfos {
                paths: asked.clone(),
            },
        )
        .expect("request");
    p.drive(|server, event| {
        if let serve::ServerEvent::Request { id, .. } = event {
            // A set's order, and path 2 unknown.
            let infos = vec![(path(1), info(1)), (path(3), info(3))];
            let reply = serve::Reply::QueryPathInfos(serve::messages::PathInfos(infos));
            server.reply(id, &reply).expect("reply");
        }
    })
    .expect("drive");
    let Answer::PathInfos(infos) = answer(&mut p.events, id).expect("answer") else {
        panic!("not path infos");
    };
    let order: Vec<_> = infos.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(order, vec![path(3), path(1)]);
}

#[test]
fn a_daemon_without_batched_path_infos_gets_one_request_per_path_pipelined() {
    for (version, features, batched) in [
        (Version::new(1, 34), &[][..], false),
        (Version::new(1, 38), &["queryPathInfos"][..], true),
    ] {
        let mut p = worker_pair(version, features);
        let asked = vec![path(1), path(2), path(3)];
        let id = p
            .client
            .request(
                p.now,
                Op::QueryPathInfos {
                    paths: asked.clone(),
                },
            )
            .expect("request");
        let mut seen = Vec::new();
        p.drive(|server, event| {
            if let worker::ServerEvent::Request { id, request } = event {
                seen.push(request.command());
                let reply = match request {
                    worker::Request::QueryPathInfo(q) => {
                        worker::Reply::QueryPathInfo((q.path != path(2)).then(|| info(1)))
                    }
                    worker::Request::QueryPathInfos(q) => worker::Reply::QueryPathInfos(
                        q.paths
                            .into_iter()
                            .filter(|p| *p != path(2))
                            .map(|path| worker::messages::ValidPathInfo {
                                path,
                                info: info(1),
                            })
                            .collect(),
                    ),
                    worker::Request::SetOptions(_) => worker::Reply::SetOptions(Default::default()),
                    other => panic!("unexpected {other:?}"),
                };
                server.reply(id, &reply).expect("reply");
            }
        })
        .expect("drive");
        let commands: Vec<_> = seen.iter().map(|c| c.name()).collect();
        let want = if batched {
            vec!["SetOptions", "QueryPathInfos"]
        } else {
            vec![
                "SetOptions",
                "QueryPathInfo",
                "QueryPathInfo",
                "QueryPathInfo",
            ]
        };
        assert_eq!(commands, want, "at {version}");
        let Answer::PathInfos(infos) = answer(&mut p.events, id).expect("answer") else {
            panic!("not path infos");
        };
        let order: Vec<_> = infos.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(order, vec![path(1), path(3)], "at {version}");
    }
}

#[test]
fn adding_a_path_is_import_paths_before_serve_2_5_and_add_to_store_nar_after() {
    for (version, op) in [
        (Version::new(2, 4), "ImportPaths"),
        (Version::new(2, 7), "AddToStoreNar"),
    ] {
        let mut p = serve_pair(version);
        // The version is known once the handshake is done.
        p.drive(|_, _| {}).expect("handshake");
        let nar = nar();
        let mut info = info(1);
        info.nar_size = nar.len() as u64;
        let id = p
            .client
            .request(
                p.now,
                Op::AddToStoreNar {
                    path: path(1),
                    info: Box::new(info),
                    repair: false,
                    dont_check_sigs: false,
                },
            )
            .expect("request");
        let mut received = Vec::new();
        let mut command = None;
        let mut offered = false;
        for _ in 0..4 {
            p.drive(|server, event| match event {
                serve::ServerEvent::Request { request, .. } => command = Some(request.command()),
                serve::ServerEvent::NarChunk { data, .. } => received.extend_from_slice(&data),
                serve::ServerEvent::BodyEnd { id } => {
                    server
                        .reply(id, &serve::Reply::AddToStoreNar(Default::default()))
                        .or_else(|_| {
                            server.reply(id, &serve::Reply::ImportPaths(Default::default()))
                        })
                        .expect("reply");
                }
                _ => {}
            })
            .expect("drive");
            if !offered && p.client.body_wanted().is_some_and(|(w, _)| w == id) {
                let taken = p.client.offer_body(p.now, id, nar.clone()).expect("offer");
                assert_eq!(taken, nar.len());
                offered = true;
            }
        }
        assert_eq!(command.map(|c| c.name()), Some(op), "at {version}");
        assert_eq!(received, nar.to_vec(), "at {version}");
        assert_eq!(answer(&mut p.events, id).expect("answer"), Answer::Added);
    }
}

#[test]
fn a_worker_build_sends_its_limits_as_settings_first() {
    let mut p = worker_pair(Version::new(1, 34), &[]);
    let drv = BasicDerivation {
        outputs: vec![],
        input_srcs: vec![],
        platform: "x86_64-linux".into(),
        builder: "/bin/sh".into(),
        args: vec![],
        env: vec![],
    };
    let mut settings = BuildSettings::default();
    settings.max_silent_time = 60;
    settings.build_timeout = 600;
    let id = p
        .client
        .request(
            p.now,
            Op::BuildDerivation {
                drv_path: path(9),
                drv: Box::new(drv),
                settings,
            },
        )
        .expect("request");
    let mut options = Vec::new();
    p.drive(|server, event| {
        if let worker::ServerEvent::Request { id, request } = event {
            match request {
                worker::Request::SetOptions(o) => {
                    options.push(o);
                    server
                        .reply(id, &worker::Reply::SetOptions(Default::default()))
                        .expect("reply");
                }
                worker::Request::BuildDerivation(_) => {
                    server.log(id, "building\n").expect("log");
                    let result = BuildResult::new(BuildStatus::Built, "");
                    server
                        .reply(id, &worker::Reply::BuildDerivation(result))
                        .expect("reply");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .expect("drive");
    // The session's own settings after the handshake, then the build's.
    assert_eq!(options.len(), 2);
    assert_eq!(options[0].verbose_build, 0, "build output as log lines");
    assert!(!options[0].use_substitutes);
    assert_eq!(options[1].max_silent_time, 60);
    let timeout = options[1]
        .overrides
        .iter()
        .find(|(k, _)| k.as_bytes() == b"timeout")
        .map(|(_, v)| v.clone());
    assert_eq!(timeout, Some(NixString::from("600")));
    let log = p
        .events
        .iter()
        .find_map(|e| match e {
            Event::Log(l) => Some(l.clone()),
            _ => None,
        })
        .expect("a log");
    assert_eq!(log.request, Some(id), "the log names the session's request");
    assert_eq!(log.source, LogSource::Message);
    let Answer::Built(result) = answer(&mut p.events, id).expect("answer") else {
        panic!("not a build");
    };
    assert_eq!(result.status, BuildStatus::Built);
}

#[test]
fn a_refusal_is_the_requests_alone() {
    let mut p = worker_pair(Version::new(1, 34), &[]);
    let a = p
        .client
        .request(p.now, Op::NarFromPath { path: path(1) })
        .expect("request");
    let b = p
        .client
        .request(
            p.now,
            Op::QueryValidPaths {
                paths: vec![path(1)],
                substitute: false,
            },
        )
        .expect("request");
    p.drive(|server, event| {
        if let worker::ServerEvent::Request { id, request } = event {
            match request {
                worker::Request::SetOptions(_) => server
                    .reply(id, &worker::Reply::SetOptions(Default::default()))
                    .expect("reply"),
                worker::Request::NarFromPath(_) => server
                    .fail(id, &RemoteError::new("path is not valid"))
                    .expect("fail"),
                worker::Request::QueryValidPaths(q) => server
                    .reply(id, &worker::Reply::QueryValidPaths(q.paths))
                    .expect("reply"),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .expect("drive");
    let error = answer(&mut p.events, a).expect_err("refused");
    assert_eq!(error.class(), ErrorClass::Refused);
    assert!(error.to_string().contains("path is not valid"), "{error}");
    assert_eq!(
        answer(&mut p.events, b).expect("answer"),
        Answer::ValidPaths(vec![path(1)])
    );
}

#[test]
fn what_ssh_said_before_the_handshake_is_the_error_not_a_log() {
    for protocol in [Protocol::Serve, Protocol::Worker] {
        let now = Instant::now();
        let mut session = Session::new(SessionConfig::new(protocol), now);
        session.handle_stderr(
            now,
            Bytes::from_static(b"root@host: Permission denied (publickey).\r\n"),
        );
        let _ = session.handle_eof(now);
        let mut events = Vec::new();
        while let Some(e) = session.poll_event() {
            events.push(e);
        }
        assert!(
            !events.iter().any(|e| matches!(e, Event::Log(_))),
            "{protocol}: {events:?}"
        );
        let Some(Event::Broken(error)) = events.last() else {
            panic!("{protocol}: not broken: {events:?}");
        };
        assert_eq!(error.class(), ErrorClass::Transport, "{error}");
        assert_eq!(
            error.peer_said.as_deref(),
            Some("root@host: Permission denied (publickey).")
        );
        assert!(
            error
                .to_string()
                .contains("the remote said: root@host: Permission denied")
        );
    }
}

#[test]
fn serve_logs_after_the_handshake_are_logs_of_the_request_under_way() {
    let mut p = serve_pair(Version::new(2, 7));
    p.drive(|_, _| {}).expect("handshake");
    let id = p
        .client
        .request(
            p.now,
            Op::QueryValidPaths {
                paths: vec![path(1)],
                substitute: false,
            },
        )
        .expect("request");
    p.drive(|_, _| {}).expect("sent");
    p.client
        .handle_stderr(p.now, Bytes::from_static(b"a build line\n"));
    let log = std::iter::from_fn(|| p.client.poll_event())
        .find_map(|e| match e {
            Event::Log(l) => Some(l),
            _ => None,
        })
        .expect("a log");
    assert_eq!(log.request, Some(id));
    assert_eq!(log.source, LogSource::Stderr);
    assert_eq!(&log.text[..], b"a build line\n");
}

/// Three paths with distinct NARs, each info stating its NAR's size.
fn batch() -> Vec<(StorePath, PathInfo, Bytes)> {
    (1..=3)
        .map(|n| {
            let nar = Bytes::from(
                Node::Regular {
                    executable: n == 2,
                    contents: format!("contents of path {n}")
                        .repeat(n as usize)
                        .into_bytes(),
                }
                .to_nar(),
            );
            let mut info = info(n);
            info.nar_size = nar.len() as u64;
            info.references = vec![path(n + 10)];
            (path(n), info, nar)
        })
        .collect()
}

fn add_multiple(batch: &[(StorePath, PathInfo, Bytes)]) -> Op {
    Op::AddMultiple {
        paths: batch
            .iter()
            .map(|(p, i, _)| (p.clone(), i.clone()))
            .collect(),
        repair: false,
        dont_check_sigs: true,
    }
}

/// Offers `body` while the session wants it, in pieces of at most 7 bytes
/// (so that pieces straddle the NARs' ends) and never more than it takes;
/// returns how many bytes were offered.
fn offer<S: Connection>(
    p: &mut Pair<Session, S>,
    id: nixwire_core::conn::RequestId,
    body: &[u8],
    at: usize,
) -> usize {
    let mut at = at;
    while let Some((wanted, max)) = p.client.body_wanted() {
        if wanted != id || at == body.len() {
            break;
        }
        let mut n = 7.min(body.len() - at);
        if let Some(max) = max {
            n = n.min(usize::try_from(max).expect("a small max"));
        }
        if n == 0 {
            break;
        }
        let piece = Bytes::copy_from_slice(&body[at..at + n]);
        let taken = p.client.offer_body(p.now, id, piece).expect("offer");
        assert_eq!(taken, n, "every byte offered within max is taken");
        at += taken;
    }
    at
}

#[test]
fn adding_many_paths_over_serve_is_one_add_to_store_nar_each_pipelined_from_2_5() {
    // Before 2.5: one ImportPaths with every trailer. From 2.5: one
    // AddToStoreNar per path, all written before any is answered (Nix
    // streams those into the store; ImportPaths holds each NAR whole).
    for (version, want) in [
        (Version::new(2, 4), vec!["ImportPaths"]),
        (Version::new(2, 7), vec!["AddToStoreNar"; 3]),
    ] {
        let mut p = serve_pair(version);
        p.drive(|_, _| {}).expect("handshake");
        let batch = batch();
        let body: Vec<u8> = batch.iter().flat_map(|(_, _, n)| n.to_vec()).collect();
        let id = p
            .client
            .request(p.now, add_multiple(&batch))
            .expect("request");
        let (mut requests, mut received, mut trailers, mut at) =
            (Vec::new(), Vec::new(), Vec::new(), 0);
        let mut ended = Vec::new();
        for _ in 0..200 {
            p.drive(|_, event| match event {
                serve::ServerEvent::Request { request, .. } => {
                    requests.push(request.command().name());
                    if let serve::Request::AddToStoreNar(m) = &request {
                        trailers.push((m.path.clone(), m.references.clone()));
                    }
                }
                serve::ServerEvent::NarChunk { data, .. } => received.extend_from_slice(&data),
                serve::ServerEvent::ImportedPath { trailer, .. } => {
                    trailers.push((trailer.path, trailer.references));
                }
                serve::ServerEvent::BodyEnd { id } => ended.push(id),
                _ => {}
            })
            .expect("drive");
            at = offer(&mut p, id, &body, at);
            // Answered only once every body is in: nothing waited for an
            // answer to send the next path.
            if at == body.len() && ended.len() == want.len() {
                for inner in ended.drain(..) {
                    let reply = match version.minor {
                        4 => serve::Reply::ImportPaths(Default::default()),
                        _ => serve::Reply::AddToStoreNar(Default::default()),
                    };
                    p.server.reply(inner, &reply).expect("reply");
                }
            }
        }
        assert_eq!(requests, want, "at {version}");
        assert_eq!(received, body, "at {version}");
        let paths: Vec<_> = trailers.iter().map(|t| t.0.clone()).collect();
        let refs: Vec<_> = trailers.iter().map(|t| t.1.clone()).collect();
        assert_eq!(paths, vec![path(1), path(2), path(3)]);
        assert_eq!(refs, vec![vec![path(11)], vec![path(12)], vec![path(13)]]);
        assert_eq!(answer(&mut p.events, id).expect("answer"), Answer::Added);
    }
}

#[test]
fn adding_many_paths_from_worker_1_32_is_one_add_multiple_to_store() {
    use nixwire_core::wire::{Cx, Wire};
    let mut p = worker_pair(Version::new(1, 34), &[]);
    p.drive(|server, event| {
        if let worker::ServerEvent::Request { id, .. } = event {
            server
                .reply(id, &worker::Reply::SetOptions(Default::default()))
                .expect("reply");
        }
    })
    .expect("handshake");
    let batch = batch();
    let nars: Vec<u8> = batch.iter().flat_map(|(_, _, n)| n.to_vec()).collect();
    let id = p
        .client
        .request(p.now, add_multiple(&batch))
        .expect("request");
    let (mut requests, mut received, mut at) = (Vec::new(), Vec::new(), 0);
    for _ in 0..200 {
        p.drive(|server, event| match event {
            worker::ServerEvent::Request { request, .. } => requests.push(request),
            worker::ServerEvent::BodyChunk { data, .. } => received.extend_from_slice(&data),
            worker::ServerEvent::BodyEnd { id } => server
                .reply(id, &worker::Reply::AddMultipleToStore(Default::default()))
                .expect("reply"),
            _ => {}
        })
        .expect("drive");
        at = offer(&mut p, id, &nars, at);
    }
    assert_eq!(requests.len(), 1, "{requests:?}");
    let worker::Request::AddMultipleToStore(m) = &requests[0] else {
        panic!("not AddMultipleToStore: {requests:?}");
    };
    assert!(m.dont_check_sigs && !m.repair);
    // The body as the daemon reads it: a count, then each path's info (at
    // 1.16, Nix's fixed choice) and its NAR.
    let cx = Cx::new(Version::new(1, 16));
    let (count, mut pos) = u64::decode_exact(&cx, &received).expect("a count");
    assert_eq!(count, 3);
    let mut seen_nars = Vec::new();
    for (path, info, nar) in &batch {
        let (item, n) = worker::messages::ValidPathInfo::decode_exact(&cx, &received[pos..])
            .expect("a path info");
        pos += n;
        assert_eq!(&item.path, path);
        assert_eq!(item.info.nar_hash, info.nar_hash);
        assert_eq!(item.info.nar_size, info.nar_size);
        assert_eq!(item.info.references, info.references);
        assert_eq!(&received[pos..pos + nar.len()], &nar[..]);
        seen_nars.extend_from_slice(&received[pos..pos + nar.len()]);
        pos += nar.len();
    }
    assert_eq!(pos, received.len(), "nothing after the last NAR");
    assert_eq!(seen_nars, nars);
    assert_eq!(answer(&mut p.events, id).expect("answer"), Answer::Added);
}

#[test]
fn adding_many_paths_before_worker_1_32_is_one_add_to_store_nar_each_pipelined() {
    let mut p = worker_pair(Version::new(1, 27), &[]);
    p.drive(|server, event| {
        if let worker::ServerEvent::Request { id, .. } = event {
            server
                .reply(id, &worker::Reply::SetOptions(Default::default()))
                .expect("reply");
        }
    })
    .expect("handshake");
    let batch = batch();
    let nars: Vec<u8> = batch.iter().flat_map(|(_, _, n)| n.to_vec()).collect();
    let id = p
        .client
        .request(p.now, add_multiple(&batch))
        .expect("request");
    let (mut requests, mut received, mut at) = (Vec::new(), Vec::new(), 0);
    let mut replies = Vec::new();
    for _ in 0..200 {
        p.drive(|_, event| match event {
            worker::ServerEvent::Request { request, .. } => requests.push(request),
            worker::ServerEvent::BodyChunk { data, .. } => received.extend_from_slice(&data),
            // Answered only once every body is in: the requests are all
            // sent without waiting for an answer.
            worker::ServerEvent::BodyEnd { id } => replies.push(id),
            _ => {}
        })
        .expect("drive");
        at = offer(&mut p, id, &nars, at);
        if replies.len() == batch.len() {
            for r in replies.drain(..) {
                p.server
                    .reply(r, &worker::Reply::AddToStoreNar(Default::default()))
                    .expect("reply");
            }
        }
        assert!(
            !p.events.iter().any(|e| matches!(e, Event::Done { .. })) || at == nars.len(),
            "no answer before every path was sent"
        );
    }
    let added: Vec<_> = requests
        .iter()
        .map(|r| match r {
            worker::Request::AddToStoreNar(m) => m.path.clone(),
            other => panic!("not AddToStoreNar: {other:?}"),
        })
        .collect();
    assert_eq!(added, vec![path(1), path(2), path(3)]);
    assert_eq!(received, nars);
    let dones = p
        .events
        .iter()
        .filter(|e| matches!(e, Event::Done { id: d, .. } if *d == id))
        .count();
    assert_eq!(dones, 1, "one answer for the whole batch");
    assert_eq!(answer(&mut p.events, id).expect("answer"), Answer::Added);
}

#[test]
fn adding_no_paths_is_answered_on_every_protocol() {
    let mut s = serve_pair(Version::new(2, 7));
    s.drive(|_, _| {}).expect("handshake");
    let empty = Op::AddMultiple {
        paths: Vec::new(),
        repair: false,
        dont_check_sigs: false,
    };
    let id = s.client.request(s.now, empty.clone()).expect("request");
    s.drive(|server, event| {
        if let serve::ServerEvent::BodyEnd { id } = event {
            server
                .reply(id, &serve::Reply::ImportPaths(Default::default()))
                .expect("reply");
        }
    })
    .expect("drive");
    assert_eq!(answer(&mut s.events, id).expect("answer"), Answer::Added);
    for version in [Version::new(1, 34), Version::new(1, 27)] {
        let mut p = worker_pair(version, &[]);
        let id = p.client.request(p.now, empty.clone()).expect("request");
        p.drive(|server, event| match event {
            worker::ServerEvent::Request { id, request } => {
                if matches!(request, worker::Request::SetOptions(_)) {
                    server
                        .reply(id, &worker::Reply::SetOptions(Default::default()))
                        .expect("reply");
                }
            }
            worker::ServerEvent::BodyEnd { id } => server
                .reply(id, &worker::Reply::AddMultipleToStore(Default::default()))
                .expect("reply"),
            _ => {}
        })
        .expect("drive");
        assert_eq!(
            answer(&mut p.events, id).expect("answer"),
            Answer::Added,
            "at {version}"
        );
    }
}

#[test]
fn a_nar_of_another_size_than_its_info_states_is_refused_before_it_ends() {
    let mut p = worker_pair(Version::new(1, 34), &[]);
    p.drive(|server, event| {
        if let worker::ServerEvent::Request { id, .. } = event {
            server
                .reply(id, &worker::Reply::SetOptions(Default::default()))
                .expect("reply");
        }
    })
    .expect("handshake");
    let mut batch = batch();
    batch[0].1.nar_size += 8;
    let id = p
        .client
        .request(p.now, add_multiple(&batch))
        .expect("request");
    p.drive(|_, _| {}).expect("drive");
    let error = p
        .client
        .offer_body(p.now, id, batch[0].2.clone())
        .expect_err("a NAR shorter than its info says");
    assert!(error.to_string().contains("path info states"), "{error}");
}

#[test]
fn an_upload_is_read_no_faster_than_it_is_sent() {
    use nixwire_core::session::WRITE_AHEAD;
    let mut p = worker_pair(Version::new(1, 34), &[]);
    p.drive(|_, _| {}).expect("handshake");
    let nar = Bytes::from(
        Node::Regular {
            executable: false,
            contents: vec![7u8; 4 * WRITE_AHEAD],
        }
        .to_nar(),
    );
    let mut info = info(1);
    info.nar_size = nar.len() as u64;
    let op = Op::AddToStoreNar {
        path: path(1),
        info: Box::new(info),
        repair: false,
        dont_check_sigs: true,
    };
    let id = p.client.request(p.now, op).expect("request");
    // The host reads while the session has room, and nothing is sent.
    const CHUNK: usize = 64 * 1024;
    let mut at = 0;
    while let Some(n) = p.client.body_room(id, CHUNK) {
        let piece = nar.slice(at..(at + n).min(nar.len()));
        at += p.client.offer_body(p.now, id, piece).expect("offer");
    }
    assert!(at >= WRITE_AHEAD - CHUNK, "stopped early, at {at}");
    assert!(
        at < WRITE_AHEAD + CHUNK,
        "read {at} bytes ahead of the wire"
    );
    assert!(p.client.queued_bytes() >= WRITE_AHEAD);
    // Sending drains the queue; once below the mark the session asks again.
    while let Some(e) = p.client.poll_event() {
        assert!(!matches!(e, Event::Done { .. }), "{e:?}");
    }
    let mut asked = false;
    while p.client.poll_transmit().is_some() {
        while let Some(e) = p.client.poll_event() {
            asked |= matches!(e, Event::BodyWanted { id: of, .. } if of == id);
        }
        if asked {
            break;
        }
    }
    assert!(asked, "no BodyWanted once the queue drained");
    assert!(p.client.queued_bytes() < WRITE_AHEAD);
    assert!(p.client.body_room(id, CHUNK).is_some());
}
