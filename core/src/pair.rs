//! Two connections joined in memory, with a virtual clock, after
//! quinn-proto's test `Pair`: the way tests, examples and benchmarks drive a
//! client against a server without any I/O.
//!
//! [`Pair::drive`] moves bytes both ways until nothing moves any more, in a
//! bounded number of rounds, handing each server event to a host function
//! that answers it. Faults are injected on the way: reads cut into pieces of
//! at most [`Pair::max_read`] bytes, the server's stream ended after
//! [`Pair::cut_server_after`] bytes, a byte of it flipped. Time only moves
//! when a test says so ([`Pair::advance`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::conn::{Connection, Error};

/// A client and a server joined in memory.
#[derive(Debug)]
pub struct Pair<C: Connection, S: Connection> {
    /// The client end.
    pub client: C,
    /// The server end.
    pub server: S,
    /// The virtual clock, passed to every call.
    pub now: Instant,
    /// The most bytes delivered in one `handle_input` (a tiny value makes
    /// every message arrive in pieces).
    pub max_read: usize,
    /// End the server's stream (an end of file at the client) after this
    /// many bytes have been delivered.
    pub cut_server_after: Option<u64>,
    /// Flip the bits of the server's byte at this offset.
    pub corrupt_server_byte: Option<u64>,
    /// The client's events, in order, not yet taken by the test.
    pub events: VecDeque<C::Event>,
    /// The most rounds [`drive`](Self::drive) runs before giving up.
    pub max_rounds: usize,
    server_sent: u64,
    cut: bool,
}

/// Why [`Pair::drive`] stopped short.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// The client's connection failed.
    #[error("client: {0}")]
    Client(Error),
    /// The server's connection failed.
    #[error("server: {0}")]
    Server(Error),
    /// Bytes were still moving after `max_rounds` rounds.
    #[error("still busy after {0} rounds")]
    Busy(usize),
}

impl<C: Connection, S: Connection> Pair<C, S> {
    /// Joins `client` and `server`; the clock starts at `now`.
    pub fn new(client: C, server: S, now: Instant) -> Self {
        Self {
            client,
            server,
            now,
            max_read: usize::MAX,
            cut_server_after: None,
            corrupt_server_byte: None,
            events: VecDeque::new(),
            max_rounds: 100_000,
            server_sent: 0,
            cut: false,
        }
    }

    /// Moves bytes both ways until nothing moves: the client's bytes to the
    /// server, each server event to `host` (which answers through the
    /// server it is given), the server's bytes to the client, the client's
    /// events into [`events`](Self::events).
    pub fn drive(&mut self, mut host: impl FnMut(&mut S, S::Event)) -> Result<(), PairError> {
        for _ in 0..self.max_rounds {
            match self.round(&mut host) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => {
                    // What the client reported up to the failure (its
                    // `Broken` event among it) is the test's to look at.
                    self.events
                        .extend(std::iter::from_fn(|| self.client.poll_event()));
                    return Err(e);
                }
            }
        }
        Err(PairError::Busy(self.max_rounds))
    }

    /// One round; whether anything moved.
    fn round(&mut self, host: &mut impl FnMut(&mut S, S::Event)) -> Result<bool, PairError> {
        let mut moved = false;
        while let Some(bytes) = self.client.poll_transmit() {
            moved = true;
            for piece in pieces(bytes, self.max_read) {
                self.server
                    .handle_input(self.now, piece)
                    .map_err(PairError::Server)?;
            }
        }
        while let Some(event) = self.server.poll_event() {
            moved = true;
            host(&mut self.server, event);
        }
        while let Some(bytes) = self.server.poll_transmit() {
            moved = true;
            if self.cut {
                continue;
            }
            let bytes = self.fault(bytes);
            for piece in pieces(bytes, self.max_read) {
                self.client
                    .handle_input(self.now, piece)
                    .map_err(PairError::Client)?;
            }
            if self.cut {
                self.client
                    .handle_eof(self.now)
                    .map_err(PairError::Client)?;
            }
        }
        while let Some(event) = self.client.poll_event() {
            moved = true;
            self.events.push_back(event);
        }
        Ok(moved)
    }

    /// Applies the server-side faults to bytes on their way to the client.
    fn fault(&mut self, bytes: Bytes) -> Bytes {
        let start = self.server_sent;
        let mut bytes = bytes;
        if let Some(at) = self.corrupt_server_byte
            && (start..start + bytes.len() as u64).contains(&at)
        {
            let mut copy = bytes.to_vec();
            copy[(at - start) as usize] ^= 0xff;
            bytes = Bytes::from(copy);
        }
        if let Some(limit) = self.cut_server_after {
            let room = limit.saturating_sub(start);
            if room <= bytes.len() as u64 {
                bytes.truncate(room as usize);
                self.cut = true;
            }
        }
        self.server_sent += bytes.len() as u64;
        bytes
    }

    /// Moves the clock on by `by`, and lets both ends check their deadlines.
    pub fn advance(&mut self, by: Duration) -> Result<(), PairError> {
        self.now += by;
        if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
            self.client
                .handle_timeout(self.now)
                .map_err(PairError::Client)?;
        }
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server
                .handle_timeout(self.now)
                .map_err(PairError::Server)?;
        }
        while let Some(event) = self.client.poll_event() {
            self.events.push_back(event);
        }
        Ok(())
    }
}

/// `bytes` in pieces of at most `max` bytes, as slices of it.
fn pieces(bytes: Bytes, max: usize) -> impl Iterator<Item = Bytes> {
    let max = max.max(1);
    let len = bytes.len();
    (0..len)
        .step_by(max)
        .map(move |at| bytes.slice(at..(at + max).min(len)))
}
