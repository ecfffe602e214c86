//! A serve-protocol client (`nixwire_core::serve::Client`) that has queued
//! up to two requests, fed whatever the "server" sends, split into reads at
//! fuzzer-chosen points, then the end of input and a late deadline check.
//! Checks that no server bytes make it panic: it must answer with errors
//! (a `Broken` event) instead. Bodies are offered a small valid NAR.
//!
//! Input: `[split seed][op 1][op 2][server bytes...]`, where an op is a
//! serve command code (1 to 9, anything else: no request) and the split
//! seed is explained at `nixwire_fuzz::chunks`.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use nixwire_core::conn::Connection;
use nixwire_core::nar::Node;
use nixwire_core::serve::messages::*;
use nixwire_core::serve::{Client, ClientConfig, ClientEvent, ImportPaths, Request};
use nixwire_core::store::{BasicDerivation, NarHash, StorePath};

fn request(op: u8, nar_size: u64) -> Option<Request> {
    let path: StorePath = nixwire_fuzz::HELLO.parse().ok()?;
    Some(match op {
        1 => Request::QueryValidPaths(QueryValidPaths {
            lock: false,
            substitute: true,
            paths: vec![path],
        }),
        2 => Request::QueryPathInfos(QueryPathInfos { paths: vec![path] }),
        3 => Request::DumpStorePath(DumpStorePath { path }),
        4 => Request::ImportPaths(ImportPaths::default()),
        6 => Request::BuildPaths(BuildPaths {
            paths: vec![nixwire_fuzz::HELLO.into()],
            options: BuildOptions::default(),
        }),
        7 => Request::QueryClosure(QueryClosure {
            include_outputs: true,
            paths: vec![path],
        }),
        8 => Request::BuildDerivation(BuildDerivation {
            drv_path: path,
            drv: BasicDerivation {
                outputs: Vec::new(),
                input_srcs: Vec::new(),
                platform: "x86_64-linux".into(),
                builder: "/bin/sh".into(),
                args: Vec::new(),
                env: Vec::new(),
            },
            options: BuildOptions::default(),
        }),
        9 => Request::AddToStoreNar(AddToStoreNar {
            path,
            deriver: None,
            nar_hash: NarHash([0x5a; 32]),
            references: vec![],
            registration_time: 0,
            nar_size,
            ultimate: false,
            sigs: vec![],
            ca: None,
        }),
        _ => return None,
    })
}

fn drain(client: &mut Client, now: Instant, nar: &Bytes) {
    while client.poll_transmit().is_some() {}
    while let Some(event) = client.poll_event() {
        if let ClientEvent::BodyWanted { id, .. } = event {
            let _ = client.offer_body(now, id, nar.clone());
        }
    }
    while client.poll_transmit().is_some() {}
    let _ = client.poll_timeout();
}

fuzz_target!(|data: &[u8]| {
    let [split, op1, op2, rest @ ..] = data else {
        return;
    };
    let nar = Bytes::from(
        Node::Regular {
            executable: false,
            contents: b"fuzz".to_vec(),
        }
        .to_nar(),
    );
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    for op in [*op1, *op2] {
        if let Some(r) = request(op, nar.len() as u64) {
            let _ = client.request(now, r);
        }
    }
    drain(&mut client, now, &nar);
    for chunk in nixwire_fuzz::chunks(*split, rest) {
        if client.handle_input(now, chunk).is_err() {
            // Broken for good: every later call must say so again, and
            // there is nothing more to decode (feeding the rest one byte
            // at a time only cloned the error, most of the run time).
            assert!(client.handle_input(now, Bytes::new()).is_err());
            break;
        }
        drain(&mut client, now, &nar);
    }
    let _ = client.handle_eof(now);
    let _ = client.handle_timeout(now + Duration::from_secs(3600));
    drain(&mut client, now, &nar);
});
