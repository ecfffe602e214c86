//! A worker-protocol client (`nixwire_core::worker::Client`) that has
//! queued up to two requests, fed whatever the "daemon" sends, split into
//! reads at fuzzer-chosen points, then the end of input and a late
//! deadline check. Checks that no daemon bytes (handshake, feature
//! exchange, STDERR stream, replies, NARs) make it panic: it must answer
//! with errors (a `Broken` event or a request's `Failed`) instead. Bodies
//! are offered a small valid NAR, at most what the daemon asked for.
//!
//! Input: `[split seed][op 1][op 2][daemon bytes...]`, where an op is a
//! worker command code (1, 19, 26, 31, 36, 38, 39; anything else: no
//! request) and the split seed is explained at `nixwire_fuzz::chunks`.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use nixwire_core::conn::Connection;
use nixwire_core::nar::Node;
use nixwire_core::store::{BasicDerivation, NarHash, StorePath};
use nixwire_core::worker::messages::*;
use nixwire_core::worker::{Client, ClientConfig, ClientEvent, Request};

fn request(op: u8, nar_size: u64) -> Option<Request> {
    let path: StorePath = nixwire_fuzz::HELLO.parse().ok()?;
    Some(match op {
        1 => Request::IsValidPath(IsValidPath { path }),
        19 => Request::SetOptions(SetOptions::default()),
        26 => Request::QueryPathInfo(QueryPathInfo { path }),
        31 => Request::QueryValidPaths(QueryValidPaths {
            paths: vec![path],
            substitute: false,
        }),
        36 => Request::BuildDerivation(BuildDerivation {
            drv_path: path,
            drv: BasicDerivation {
                outputs: Vec::new(),
                input_srcs: Vec::new(),
                platform: "x86_64-linux".into(),
                builder: "/bin/sh".into(),
                args: Vec::new(),
                env: Vec::new(),
            },
            mode: BuildMode::Normal,
        }),
        38 => Request::NarFromPath(NarFromPath { path }),
        39 => Request::AddToStoreNar(AddToStoreNar {
            path,
            deriver: None,
            nar_hash: NarHash([0x5a; 32]),
            references: vec![],
            registration_time: 0,
            nar_size,
            ultimate: false,
            sigs: vec![],
            ca: None,
            provenance: None,
            repair: false,
            dont_check_sigs: true,
        }),
        _ => return None,
    })
}

fn drain(client: &mut Client, now: Instant, nar: &Bytes, offered: &mut usize) {
    while client.poll_transmit().is_some() {}
    while let Some(event) = client.poll_event() {
        if let ClientEvent::BodyWanted { id, max } = event {
            let rest = nar.slice((*offered).min(nar.len())..);
            let n = max.map_or(rest.len(), |m| rest.len().min(m as usize));
            if let Ok(taken) = client.offer_body(now, id, rest.slice(..n)) {
                *offered += taken;
            }
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
    let mut offered = 0;
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    for op in [*op1, *op2] {
        if let Some(r) = request(op, nar.len() as u64) {
            let _ = client.request(now, r);
        }
    }
    drain(&mut client, now, &nar, &mut offered);
    for chunk in nixwire_fuzz::chunks(*split, rest) {
        if client.handle_input(now, chunk).is_err() {
            // Broken for good: every later call must say so again, and
            // there is nothing more to decode (feeding the rest one byte
            // at a time only cloned the error, most of the run time).
            assert!(client.handle_input(now, Bytes::new()).is_err());
            break;
        }
        drain(&mut client, now, &nar, &mut offered);
    }
    let _ = client.handle_eof(now);
    let _ = client.handle_timeout(now + Duration::from_secs(3600));
    drain(&mut client, now, &nar, &mut offered);
});
