//! The requests of a client connection, whichever the protocol: queued (not
//! sent yet) and in flight (sent, answer pending), in order, with the ids
//! they were given. The rules about them live here once: ids, abandoning,
//! what is owed when the peer goes away, the stall deadline.

use std::collections::VecDeque;
use std::fmt::Display;
use std::time::{Duration, Instant};

use super::endpoint::{Deadline, owed_when_ready};
use bytes::Bytes;

use super::{Error, ErrorKind, Log, LogSource, Phase, RequestId};
use crate::wire::{Cx, Decoded, Inbox, Protocol, Reader};

/// An operation code of a protocol's table.
pub(crate) trait OpCode: Copy + Display {
    /// Its name, as Nix spells it.
    fn op_name(self) -> &'static str;
}

/// A request of a protocol's table.
pub(crate) trait OpRequest {
    /// The table's operation codes.
    type Code: OpCode;
    /// The request's operation.
    fn op(&self) -> Self::Code;
}

/// A request sent and waiting for (the rest of) its answer; `A` is where
/// the protocol is in reading it.
#[derive(Debug)]
pub(crate) struct Sent<C, A> {
    pub(crate) id: RequestId,
    pub(crate) command: C,
    pub(crate) sent_at: Instant,
    pub(crate) answer: A,
}

/// A client's requests.
#[derive(Debug)]
pub(crate) struct Book<R: OpRequest, A> {
    pub(crate) queued: VecDeque<(RequestId, R)>,
    pub(crate) in_flight: VecDeque<Sent<R::Code, A>>,
    next_id: u64,
}

impl<R: OpRequest, A> Default for Book<R, A> {
    fn default() -> Self {
        Self {
            queued: VecDeque::new(),
            in_flight: VecDeque::new(),
            next_id: 0,
        }
    }
}

impl<R: OpRequest, A> Book<R, A> {
    /// Queues a request under the next id.
    pub(crate) fn push(&mut self, request: R) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.queued.push_back((id, request));
        id
    }

    /// Records that a request's bytes went out at `now`.
    pub(crate) fn sent(&mut self, id: RequestId, command: R::Code, now: Instant, answer: A) {
        self.in_flight.push_back(Sent {
            id,
            command,
            sent_at: now,
            answer,
        });
    }

    /// Whether nothing is queued or in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_empty()
    }

    /// Gives up on a request: one still queued is dropped (`None`); one in
    /// flight can no longer be told apart from the next one's answer, so
    /// the error that must break the connection comes back.
    pub(crate) fn abandon(&mut self, id: RequestId) -> Option<Error> {
        if let Some(pos) = self.queued.iter().position(|(qid, _)| *qid == id) {
            self.queued.remove(pos);
            return None;
        }
        let f = self.in_flight.iter().find(|f| f.id == id)?;
        let op = f.command.op_name();
        Some(Error::new(ErrorKind::Abandoned, Phase::Receiving).about(id, op))
    }

    /// The request under way: its id, operation and when it was sent.
    pub(crate) fn front(&self) -> Option<(RequestId, &'static str, Instant)> {
        self.in_flight
            .front()
            .map(|f| (f.id, f.command.op_name(), f.sent_at))
    }

    /// What is still owed when the peer's stream ends after the handshake,
    /// with `pending` bytes of a message received.
    pub(crate) fn owed(&self, pending: usize) -> Option<(Phase, String)> {
        owed_when_ready(
            self.in_flight.front().map(|f| (f.id, f.command)),
            pending,
            self.queued.front().map(|(id, r)| (*id, r.op())),
        )
    }

    /// What the peer wrote to its stderr, as a log of the request under way
    /// (none for no bytes).
    pub(crate) fn stderr_log(&self, text: Bytes) -> Option<Log> {
        (!text.is_empty()).then(|| Log {
            request: self.in_flight.front().map(|f| f.id),
            source: LogSource::Stderr,
            text,
        })
    }

    /// The stall deadline of the request under way: `limit` after its bytes
    /// went out or the last byte came, whichever is later.
    pub(crate) fn stall(&self, limit: Option<Duration>, last_input: Instant) -> Option<Deadline> {
        let f = self.in_flight.front()?;
        let after = limit?;
        Some(Deadline {
            at: last_input.max(f.sent_at) + after,
            during: format!(
                "with nothing received or sent while waiting for the reply to {} (request {})",
                f.command, f.id
            ),
            after,
            phase: Phase::Receiving,
        })
    }
}

/// Decodes one message from a connection's receive buffer, naming `what`
/// it was and the `phase` in the error if the bytes do not decode.
pub(crate) fn decode_in<P: Protocol, T>(
    inbox: &mut Inbox,
    cx: &Cx<P>,
    what: &str,
    phase: Phase,
    decode: impl FnOnce(&Cx<P>, &mut Reader<'_>) -> Decoded<T>,
) -> Result<Option<T>, Error> {
    inbox
        .decode_named(&cx.limits, what, |r| decode(cx, r))
        .map_err(|source| {
            let what = what.into();
            Error::new(ErrorKind::Decode { what, source }, phase)
        })
}

/// The requests a server is receiving: the partial state of the one
/// arriving, and the id the next one gets.
#[derive(Debug, Default)]
pub(crate) struct Incoming<RP> {
    partial: RP,
    next_id: u64,
}

impl<RP: Default> Incoming<RP> {
    /// Continues decoding the request arriving; once it is whole, gives it
    /// with its id.
    pub(crate) fn next<P: Protocol, R>(
        &mut self,
        inbox: &mut Inbox,
        cx: &Cx<P>,
        decode: impl FnOnce(&Cx<P>, &mut RP, &mut Reader<'_>) -> Decoded<R>,
    ) -> Result<Option<(RequestId, R)>, Error> {
        let partial = &mut self.partial;
        let decoded = decode_in(inbox, cx, "a request", Phase::Receiving, |cx, r| {
            decode(cx, partial, r)
        })?;
        let Some(request) = decoded else {
            return Ok(None);
        };
        self.partial = RP::default();
        let id = RequestId(self.next_id);
        self.next_id += 1;
        Ok(Some((id, request)))
    }
}
