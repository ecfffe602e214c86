//! What every client and server keeps besides its protocol state.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{Error, ErrorKind, Outbox, Phase};

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

    /// Passes `result` through, breaking the connection if it is an error.
    pub(crate) fn fail_on<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            self.break_with(e.clone());
        }
        result
    }
}
