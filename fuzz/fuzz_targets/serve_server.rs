//! A serve-protocol server (`nixwire_core::serve::Server`) fed whatever the
//! "client" sends, split into reads at fuzzer-chosen points, then the end
//! of input. Checks that no client bytes make it panic: it must answer
//! with errors (a `Broken` event) instead. Requests are not answered: the
//! server decodes what follows them all the same.
//!
//! Input: `[split seed][client bytes...]` (the split seed is explained at
//! `nixwire_fuzz::chunks`).
#![no_main]

use std::time::Instant;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use nixwire_core::conn::Connection;
use nixwire_core::serve::{Server, ServerConfig};

fn drain(server: &mut Server) {
    while server.poll_transmit().is_some() {}
    while server.poll_event().is_some() {}
    while server.poll_transmit().is_some() {}
    let _ = server.poll_timeout();
}

fuzz_target!(|data: &[u8]| {
    let [split, rest @ ..] = data else {
        return;
    };
    let now = Instant::now();
    let mut server = Server::new(ServerConfig::default(), now);
    drain(&mut server);
    for chunk in nixwire_fuzz::chunks(*split, rest) {
        if server.handle_input(now, chunk).is_err() {
            // Broken for good: every later call must say so again, and
            // there is nothing more to decode (feeding the rest one byte
            // at a time only cloned the error, most of the run time).
            assert!(server.handle_input(now, Bytes::new()).is_err());
            break;
        }
        drain(&mut server);
    }
    let _ = server.handle_eof(now);
    drain(&mut server);
});
