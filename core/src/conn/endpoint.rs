//! What every client and server keeps besides its protocol state.

use std::collections::VecDeque;
use std::fmt::Display;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Error, ErrorKind, Outbox, Phase, RequestId};

/// The bytes waiting to be sent, the events waiting to be polled, and the
/// error that broke the connection, if one did. Every client and server
/// holds one, so that the `poll_*` half of the [`Connection`](super::Connection)
/// contract and the breaking rule are written once.
#[derive(Debug)]
pub(crate) struct Endpoint<E> {
    pub(crate) out: Outbox,
    pub(crate) events: VecDeque<E>,
    broken: Option<Error>,
    /// Wraps the error into the side's "broken" event.
    broken_event: fn(Error) -> E,
}

impl<E> Endpoint<E> {
    pub(crate) fn new(broken_event: fn(Error) -> E) -> Self {
        Self {
            out: Outbox::default(),
            events: VecDeque::new(),
            broken: None,
            broken_event,
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop()
    }

    /// Bytes waiting for [`poll_transmit`](Self::poll_transmit).
    pub(crate) fn queued(&self) -> usize {
        self.out.len()
    }

    pub(crate) fn poll_event(&mut self) -> Option<E> {
        self.events.pop_front()
    }

    pub(crate) fn error(&self) -> Option<&Error> {
        self.broken.as_ref()
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// The breaking error again, for every call after it.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match &self.broken {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Breaks the connection: the first error is kept, reported once as an
    /// event, and returned by every later call.
    pub(crate) fn break_with(&mut self, error: Error) {
        if self.broken.is_none() {
            self.events.push_back((self.broken_event)(error.clone()));
            self.broken = Some(error);
        }
    }

    /// The peer's stream has ended: the connection breaks if something was
    /// `owed` (in that phase), and reports `closed` otherwise.
    pub(crate) fn end_of_stream(
        &mut self,
        owed: Option<(Phase, String)>,
        closed: E,
    ) -> Result<(), Error> {
        match owed {
            Some((phase, during)) => {
                self.fail_on(Err(Error::new(ErrorKind::Closed { during }, phase)))
            }
            None => {
                self.events.push_back(closed);
                Ok(())
            }
        }
    }

    /// Breaks the connection if `deadline` has passed at `now`; the error
    /// names the request under way (`front`: its id, operation and when it
    /// was sent), if one is.
    pub(crate) fn check_deadline(
        &mut self,
        now: Instant,
        deadline: Option<Deadline>,
        front: Option<(RequestId, &'static str, Instant)>,
    ) -> Result<(), Error> {
        self.check()?;
        let Some(deadline) = deadline.filter(|d| now >= d.at) else {
            return Ok(());
        };
        let kind = ErrorKind::TimedOut {
            during: deadline.during,
            after: deadline.after,
        };
        let mut error = Error::new(kind, deadline.phase);
        if let Some((id, op, sent_at)) = front {
            error = error
                .about(id, op)
                .after(now.saturating_duration_since(sent_at));
        }
        self.fail_on(Err(error))
    }

    /// Passes `result` through, breaking the connection if it is an error.
    pub(crate) fn fail_on<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            self.break_with(e.clone());
        }
        result
    }
}

/// A deadline a connection has armed: when, what it is waiting for, the
/// limit, and the phase it is in.
#[derive(Debug)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    pub(crate) during: String,
    pub(crate) after: Duration,
    pub(crate) phase: Phase,
}

impl Deadline {
    /// The deadline of a handshake that started at `started`, if there is
    /// a `limit`: waiting for the `peer`'s side of it.
    pub(crate) fn handshake(peer: &str, started: Instant, limit: Option<Duration>) -> Option<Self> {
        limit.map(|after| Self {
            at: started + after,
            during: format!("waiting for the {peer}'s handshake"),
            after,
            phase: Phase::Handshake,
        })
    }
}

/// What a client that completed its handshake still owes when the peer's
/// stream ends: the answer to the request under way, the rest of a message,
/// or the sending of a queued request; `None` if nothing.
pub(crate) fn owed_when_ready(
    in_flight: Option<(RequestId, impl Display)>,
    pending: usize,
    queued: Option<(RequestId, impl Display)>,
) -> Option<(Phase, String)> {
    if let Some((id, op)) = in_flight {
        Some((
            Phase::Receiving,
            format!("while waiting for the reply to {op} (request {id})"),
        ))
    } else if pending > 0 {
        Some((
            Phase::Receiving,
            format!("with {pending} bytes of an unfinished message"),
        ))
    } else {
        queued.map(|(id, op)| {
            (
                Phase::Sending,
                format!("before request {id} ({op}) could be sent"),
            )
        })
    }
}
