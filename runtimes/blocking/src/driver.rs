//! The core's run loop on threads: everything the driver waits for (the
//! peer's stdout and stderr, a finished write, a cancel) arrives on one
//! channel, which is waited on until the connection's next deadline.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use nixwire_core::conn::Connection;
use nixwire_core::runtime::{Error, Input as PumpInput, Pump};

use crate::transport::{Input, Transport};

/// How many bytes may be handed to the writer and not yet written: a peer
/// that reads slowly holds the connection back here, instead of a NAR
/// piling up in memory.
const MAX_IN_FLIGHT: usize = 1 << 20;

/// Runs any [`Connection`] over a [`Transport`].
pub struct Driver<C: Connection> {
    pump: Pump<C>,
    transport: Transport,
    /// Bytes given to the writer and not yet acknowledged.
    in_flight: usize,
    /// Whether bytes can still go out: our side is open and the peer has
    /// not stopped reading.
    writing: bool,
    cancelled: Arc<AtomicBool>,
}

/// Cancels a [`Driver`] from another thread: the running
/// [`run`](Driver::run) returns [`Error::Cancelled`] at once and the peer's
/// stdin is closed, which makes Nix's servers stop their builds.
#[derive(Clone)]
pub struct Canceller {
    cancelled: Arc<AtomicBool>,
    /// The driver's input channel, so that a waiting driver wakes now.
    wake: SyncSender<Input>,
}

impl Canceller {
    /// Cancels; the driver's connection must not be reused.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        // A full channel wakes the driver anyway, and it reads the flag
        // before it waits again.
        let _ = self.wake.try_send(Input::Cancel);
    }
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Canceller")
    }
}

impl<C: Connection> Driver<C> {
    /// Drives `conn` over `transport`.
    pub fn new(conn: C, transport: Transport) -> Self {
        let has_stderr = transport.has_stderr;
        Self {
            pump: Pump::new(conn, has_stderr),
            transport,
            in_flight: 0,
            writing: true,
            cancelled: Arc::default(),
        }
    }

    /// The connection, for requests and bodies.
    pub fn conn(&mut self) -> &mut C {
        self.pump.conn()
    }

    /// A handle that cancels this driver from elsewhere.
    pub fn canceller(&self) -> Canceller {
        Canceller {
            cancelled: self.cancelled.clone(),
            wake: self.transport.waker(),
        }
    }

    /// Runs the loop, handing every event to `handle` until it breaks.
    /// Events not handled yet stay queued for the next call. The stream
    /// ending with nothing breaking is [`Error::Ended`].
    pub fn run<R>(
        &mut self,
        mut handle: impl FnMut(&mut C, C::Event) -> ControlFlow<R>,
    ) -> Result<R, Error> {
        loop {
            if let Some(done) = self.pump.dispatch(&mut handle) {
                return done;
            }
            if self.cancelled.load(Ordering::SeqCst) {
                self.close_input(true);
                return Err(Error::Cancelled {
                    during: "a request",
                });
            }
            self.step(None)?;
        }
    }

    /// Hands what the connection has to send to the writer, within
    /// [`MAX_IN_FLIGHT`].
    fn transmit(&mut self) {
        while self.in_flight < MAX_IN_FLIGHT {
            let Some(bytes) = self.pump.conn().poll_transmit() else {
                break;
            };
            // Nothing can carry them any more: what the peer said (or its
            // end) tells the connection why.
            if !self.writing {
                continue;
            }
            self.in_flight += bytes.len();
            if !self.transport.send(bytes) {
                self.writing = false;
            }
        }
    }

    /// Waits for one thing to happen, until the connection's deadline or
    /// `limit`, and gives it to the connection. `false`: `limit` passed.
    fn step(&mut self, limit: Option<Instant>) -> Result<bool, Error> {
        self.transmit();
        let deadline = self.pump.deadline();
        let until = match (deadline, limit) {
            (Some(d), Some(l)) => Some(d.min(l)),
            (d, l) => d.or(l),
        };
        let received = match until {
            Some(t) => self
                .transport
                .inputs
                .recv_timeout(t.saturating_duration_since(Instant::now())),
            None => self
                .transport
                .inputs
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
        };
        let now = Instant::now();
        let input = match received {
            Ok(input) => input,
            Err(RecvTimeoutError::Timeout) => {
                if deadline.is_some_and(|d| d <= now) {
                    self.pump.handle(now, PumpInput::Deadline);
                }
                return Ok(limit.is_none_or(|l| l > now));
            }
            // The transport keeps a sender, so this is not expected; if it
            // happens, nothing more can come.
            Err(RecvTimeoutError::Disconnected) => {
                self.pump.handle(now, PumpInput::StdoutEnd);
                self.pump.handle(now, PumpInput::StderrEnd);
                return Ok(true);
            }
        };
        let input = match input {
            Input::Stdout(data) => PumpInput::Stdout(data),
            Input::Stderr(data) => PumpInput::Stderr(data),
            Input::StdoutEnd => PumpInput::StdoutEnd,
            Input::StderrEnd => PumpInput::StderrEnd,
            Input::Wrote(n) => {
                self.pump.sent(Instant::now(), n);
                self.in_flight = self.in_flight.saturating_sub(n);
                return Ok(true);
            }
            Input::WriteFailed(e) => {
                self.close_input(true);
                self.pump.write_failed(e)?;
                return Ok(true);
            }
            Input::Cancel => return Ok(true),
        };
        self.pump.handle(now, input);
        Ok(true)
    }

    fn close_input(&mut self, abandon: bool) {
        self.writing = false;
        self.in_flight = 0;
        self.transport.close_input(abandon);
    }

    /// Ends our side, hands the peer's remaining events to `handle`, and
    /// waits for the peer to exit within `grace`, killing it after. Gives
    /// the connection back, with how the end went.
    pub fn finish(
        mut self,
        grace: Duration,
        mut handle: impl FnMut(&mut C, C::Event),
    ) -> (C, Result<(), Error>) {
        // What is still queued goes out first: the writer writes what it
        // was given before it sees our side close.
        if self.writing {
            while let Some(bytes) = self.pump.conn().poll_transmit() {
                if !self.transport.send(bytes) {
                    break;
                }
            }
        }
        self.close_input(false);
        let end = Instant::now() + grace;
        let mut drained = Ok(());
        while self.pump.reading() {
            match self.step(Some(end)) {
                Ok(true) => {}
                Ok(false) => {
                    drained = Err(Error::TimedOut {
                        during: "waiting for the peer to end its output",
                        after: grace,
                    });
                    break;
                }
                Err(e) => {
                    drained = Err(e);
                    break;
                }
            }
            self.pump.drain(&mut handle);
        }
        self.pump.drain(&mut handle);
        let waited = self.transport.wait(grace);
        (self.pump.into_conn(), drained.and(waited))
    }

    /// Closes our side without waiting, and kills the peer if it has not
    /// exited within `grace`: what a cancelled connection gets.
    pub fn abort(mut self, grace: Duration) -> Result<(), Error> {
        self.close_input(true);
        self.transport.wait(grace)
    }
}
