//! The core's run loop on threads: everything the driver waits for (the
//! peer's stdout and stderr, a finished write, a cancel) arrives on one
//! channel, which is waited on until the connection's next deadline.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use nixwire_core::conn::Connection;
use nixwire_core::runtime::Error;

use crate::transport::{Input, Transport};

/// How many bytes may be handed to the writer and not yet written: a peer
/// that reads slowly holds the connection back here, instead of a NAR
/// piling up in memory.
const MAX_IN_FLIGHT: usize = 1 << 20;

/// Runs any [`Connection`] over a [`Transport`].
pub struct Driver<C: Connection> {
    conn: C,
    transport: Transport,
    /// Bytes given to the writer and not yet acknowledged.
    in_flight: usize,
    /// Whether bytes can still go out: our side is open and the peer has
    /// not stopped reading.
    writing: bool,
    stdout_open: bool,
    stderr_open: bool,
    /// Whether the connection was told of the end of stdout.
    eof_told: bool,
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
        let stderr_open = transport.has_stderr;
        Self {
            conn,
            transport,
            in_flight: 0,
            writing: true,
            stdout_open: true,
            stderr_open,
            eof_told: false,
            cancelled: Arc::default(),
        }
    }

    /// The connection, for requests and bodies.
    pub fn conn(&mut self) -> &mut C {
        &mut self.conn
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
            while let Some(event) = self.conn.poll_event() {
                if let ControlFlow::Break(r) = handle(&mut self.conn, event) {
                    return Ok(r);
                }
            }
            if self.cancelled.load(Ordering::SeqCst) {
                self.close_input(true);
                return Err(Error::Cancelled {
                    during: "a request",
                });
            }
            if !self.stdout_open && !self.stderr_open && self.eof_told {
                return Err(Error::Ended {
                    during: "while a reply was awaited",
                });
            }
            self.step(None)?;
        }
    }

    /// Hands what the connection has to send to the writer, within
    /// [`MAX_IN_FLIGHT`].
    fn transmit(&mut self) {
        while self.in_flight < MAX_IN_FLIGHT {
            let Some(bytes) = self.conn.poll_transmit() else {
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
        let deadline = self.conn.poll_timeout();
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
                    let _ = self.conn.handle_timeout(now);
                }
                return Ok(limit.is_none_or(|l| l > now));
            }
            // The transport keeps a sender, so this is not expected; if it
            // happens, nothing more can come.
            Err(RecvTimeoutError::Disconnected) => {
                self.stdout_open = false;
                self.stderr_open = false;
                self.tell_eof(now);
                return Ok(true);
            }
        };
        match input {
            Input::Stdout(data) => {
                let _ = self.conn.handle_input(now, data);
            }
            Input::Stderr(data) => self.conn.handle_stderr(now, data),
            Input::StdoutEnd => {
                self.stdout_open = false;
                // The end is told once both streams are read out, so that a
                // failed login's stderr is the error's text.
                self.tell_eof(now);
            }
            Input::StderrEnd => {
                self.stderr_open = false;
                self.tell_eof(now);
            }
            Input::Wrote(n) => self.in_flight = self.in_flight.saturating_sub(n),
            Input::WriteFailed(e) => {
                // The peer stopped reading: what it said (or its end) tells
                // the connection why; keep reading.
                self.close_input(true);
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(Error::io("writing to the peer")(e));
                }
            }
            Input::Cancel => {}
        }
        Ok(true)
    }

    fn tell_eof(&mut self, now: Instant) {
        if !self.stdout_open && !self.stderr_open && !self.eof_told {
            self.eof_told = true;
            let _ = self.conn.handle_eof(now);
        }
    }

    /// Ends our side; with `abandon`, what is queued is dropped rather
    /// than written first.
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
            while let Some(bytes) = self.conn.poll_transmit() {
                if !self.transport.send(bytes) {
                    break;
                }
            }
        }
        self.close_input(false);
        let end = Instant::now() + grace;
        let mut drained = Ok(());
        while self.stdout_open || self.stderr_open {
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
            while let Some(event) = self.conn.poll_event() {
                handle(&mut self.conn, event);
            }
        }
        while let Some(event) = self.conn.poll_event() {
            handle(&mut self.conn, event);
        }
        let waited = self.transport.wait(grace);
        (self.conn, drained.and(waited))
    }

    /// Closes our side without waiting, and kills the peer if it has not
    /// exited within `grace`: what a cancelled connection gets.
    pub fn abort(mut self, grace: Duration) -> Result<(), Error> {
        self.close_input(true);
        self.transport.wait(grace)
    }
}
