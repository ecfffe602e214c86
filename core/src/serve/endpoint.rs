//! What both ends of a serve connection keep besides their protocol state.

use std::collections::VecDeque;

use super::Error;

/// The bytes waiting to be sent, the events waiting to be polled, and the
/// error that poisoned the connection, if one did. [`Client`](super::Client)
/// and [`Server`](super::Server) each hold one, so that the `poll_*` half of
/// their shape and the poisoning rule are written once.
#[derive(Debug)]
pub(crate) struct Endpoint<E> {
    pub(crate) out: Vec<u8>,
    pub(crate) events: VecDeque<E>,
    poison: Option<Error>,
}

impl<E> Endpoint<E> {
    pub(crate) fn new(out: Vec<u8>) -> Self {
        Self {
            out,
            events: VecDeque::new(),
            poison: None,
        }
    }

    pub(crate) fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        let n = self.out.len();
        buf.append(&mut self.out);
        n
    }

    pub(crate) fn poll_event(&mut self) -> Option<E> {
        self.events.pop_front()
    }

    pub(crate) fn error(&self) -> Option<&Error> {
        self.poison.as_ref()
    }

    /// The poisoning error again, for every call after it.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match &self.poison {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    pub(crate) fn poison(&mut self, error: Error) {
        self.poison.get_or_insert(error);
    }

    /// The peer's stream has ended: an error naming what was `owed`, if
    /// anything was, else the `closed` event.
    pub(crate) fn end_of_stream(&mut self, owed: Option<String>, closed: E) -> Result<(), Error> {
        match owed {
            Some(during) => self.fail_on(Err(Error::Closed { during })),
            None => {
                self.events.push_back(closed);
                Ok(())
            }
        }
    }

    /// Passes `result` through, poisoning the connection if it is an error.
    pub(crate) fn fail_on<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            self.poison(e.clone());
        }
        result
    }
}
