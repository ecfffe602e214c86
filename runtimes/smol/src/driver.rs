//! The core's run loop on smol: one race of the peer's stdout, its stderr,
//! our pending write, the connection's deadline and a cancel.

use std::future::pending;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use nixwire_core::conn::Connection;
use nixwire_core::runtime::Error;
use smol::channel::{Receiver, Sender};
use smol::future::{or, race};
use smol::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::{Reader, Transport, Writer, within};

/// How much is read at once from the peer.
const READ_SIZE: usize = 64 * 1024;

/// Runs any [`Connection`] over a [`Transport`].
pub struct Driver<C: Connection> {
    conn: C,
    transport: Transport,
    /// Bytes taken from `poll_transmit` and not yet written.
    pending: Option<Bytes>,
    stdout_open: bool,
    stderr_open: bool,
    /// Whether the connection was told of the end of stdout.
    eof_told: bool,
    buf: BytesMut,
    errbuf: BytesMut,
    /// The sending end is kept to hand out, so the channel never closes
    /// and the loop's receive only ends on a cancel.
    cancel: (Sender<()>, Receiver<()>),
    cancelled: bool,
}

/// Cancels a [`Driver`] from another task or thread: the running
/// [`run`](Driver::run) returns [`Error::Cancelled`] and the peer's stdin is
/// closed, which makes Nix's servers stop their builds.
#[derive(Debug, Clone)]
pub struct Canceller(Sender<()>);

impl Canceller {
    /// Cancels; the driver's connection must not be reused.
    pub fn cancel(&self) {
        // Full means a cancel is already waiting; closed means the driver
        // is gone: either way nothing is left to do.
        let _ = self.0.try_send(());
    }
}

/// What woke the loop.
enum Woke {
    Stdout(std::io::Result<usize>),
    Stderr(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Deadline,
    Cancelled,
}

impl<C: Connection> Driver<C> {
    /// Drives `conn` over `transport`.
    pub fn new(conn: C, transport: Transport) -> Self {
        let stderr_open = transport.stderr.is_some();
        Self {
            conn,
            transport,
            pending: None,
            stdout_open: true,
            stderr_open,
            eof_told: false,
            buf: BytesMut::new(),
            errbuf: BytesMut::new(),
            cancel: smol::channel::bounded(1),
            cancelled: false,
        }
    }

    /// The connection, for requests and bodies.
    pub fn conn(&mut self) -> &mut C {
        &mut self.conn
    }

    /// A handle that cancels this driver from elsewhere.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.cancel.0.clone())
    }

    /// Runs the loop, handing every event to `handle` until it breaks.
    /// Events not handled yet stay queued for the next call. The stream
    /// ending with nothing breaking is [`Error::Ended`].
    pub async fn run<R>(
        &mut self,
        mut handle: impl FnMut(&mut C, C::Event) -> ControlFlow<R>,
    ) -> Result<R, Error> {
        loop {
            while let Some(event) = self.conn.poll_event() {
                if let ControlFlow::Break(r) = handle(&mut self.conn, event) {
                    return Ok(r);
                }
            }
            self.cancelled |= self.cancel.1.try_recv().is_ok();
            if self.cancelled {
                self.transport.close_input().await;
                return Err(Error::Cancelled {
                    during: "a request",
                });
            }
            if !self.stdout_open && !self.stderr_open && self.eof_told {
                return Err(Error::Ended {
                    during: "while a reply was awaited",
                });
            }
            self.step().await?;
        }
    }

    /// Waits for one thing to happen and gives it to the connection.
    async fn step(&mut self) -> Result<(), Error> {
        if self.pending.is_none() {
            self.pending = self.conn.poll_transmit();
        }
        let deadline = self.conn.poll_timeout();
        let Transport {
            stdin,
            stdout,
            stderr,
            ..
        } = &mut self.transport;
        let stdout = self.stdout_open.then_some(stdout);
        let stderr = stderr.as_mut().filter(|_| self.stderr_open);
        let (buf, errbuf, unsent) = (&mut self.buf, &mut self.errbuf, self.pending.as_ref());
        let cancel = &self.cancel.1;
        // `race` picks which to poll first at random, so a stream that is
        // always ready starves neither the other stream nor our writes; a
        // cancel goes before everything.
        let woke = or(
            async {
                let _ = cancel.recv().await;
                Woke::Cancelled
            },
            race(
                race(
                    async { Woke::Stdout(read_some(stdout, buf).await) },
                    async { Woke::Stderr(read_some(stderr, errbuf).await) },
                ),
                race(
                    async {
                        match (unsent, stdin.as_mut()) {
                            // Nothing to write: a branch that never ends stands in.
                            (None, _) => pending().await,
                            (Some(bytes), Some(stdin)) => {
                                Woke::Wrote(write_some(stdin, bytes).await)
                            }
                            // Our side is closed: nothing more can go.
                            (Some(_), None) => {
                                Woke::Wrote(Err(std::io::ErrorKind::BrokenPipe.into()))
                            }
                        }
                    },
                    async {
                        match deadline {
                            Some(at) => {
                                smol::Timer::at(at).await;
                                Woke::Deadline
                            }
                            None => pending().await,
                        }
                    },
                ),
            ),
        )
        .await;
        let now = Instant::now();
        match woke {
            Woke::Stdout(Ok(0)) | Woke::Stdout(Err(_)) => {
                self.stdout_open = false;
                // The end is told once both streams are read out, so that a
                // failed login's stderr is the error's text.
                self.tell_eof(now);
            }
            Woke::Stdout(Ok(n)) => {
                self.buf.truncate(n);
                let data = self.buf.split().freeze();
                let _ = self.conn.handle_input(now, data);
            }
            Woke::Stderr(Ok(0)) | Woke::Stderr(Err(_)) => {
                self.stderr_open = false;
                self.tell_eof(now);
            }
            Woke::Stderr(Ok(n)) => {
                self.errbuf.truncate(n);
                let data = self.errbuf.split().freeze();
                self.conn.handle_stderr(now, data);
            }
            Woke::Wrote(Ok(n)) => {
                if let Some(p) = &mut self.pending {
                    let _ = p.split_to(n.min(p.len()));
                    if p.is_empty() {
                        self.pending = None;
                    }
                }
            }
            Woke::Wrote(Err(e)) => {
                // The peer stopped reading: what it said (or its end) tells
                // the connection why; keep reading.
                self.pending = None;
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(Error::io("writing to the peer")(e));
                }
            }
            Woke::Deadline => {
                let _ = self.conn.handle_timeout(now);
            }
            Woke::Cancelled => self.cancelled = true,
        }
        Ok(())
    }

    fn tell_eof(&mut self, now: Instant) {
        if !self.stdout_open && !self.stderr_open && !self.eof_told {
            self.eof_told = true;
            let _ = self.conn.handle_eof(now);
        }
    }

    /// Ends our side once what is queued is written, hands the peer's
    /// remaining events to `handle`, and waits for the peer to exit within
    /// `grace`, killing it after. Gives the connection back, with how the
    /// end went.
    pub async fn finish(
        mut self,
        grace: Duration,
        mut handle: impl FnMut(&mut C, C::Event),
    ) -> (C, Result<(), Error>) {
        let drained = within(grace, async {
            // What is still queued goes out first, read concurrently: a peer
            // blocked on a full stderr pipe reads nothing.
            loop {
                if self.pending.is_none() {
                    self.pending = self.conn.poll_transmit();
                }
                if self.pending.is_none() || self.transport.stdin.is_none() {
                    break;
                }
                self.step().await?;
            }
            self.transport.close_input().await;
            while self.stdout_open || self.stderr_open {
                self.step().await?;
                while let Some(event) = self.conn.poll_event() {
                    handle(&mut self.conn, event);
                }
            }
            Ok::<(), Error>(())
        })
        .await;
        while let Some(event) = self.conn.poll_event() {
            handle(&mut self.conn, event);
        }
        let waited = self.transport.wait(grace).await;
        let result = match drained {
            Some(r) => r.and(waited),
            None => Err(Error::TimedOut {
                during: "waiting for the peer to end its output",
                after: grace,
            }),
        };
        (self.conn, result)
    }

    /// Closes our side without waiting, and kills the peer if it has not
    /// exited within `grace`: what a cancelled connection gets.
    pub async fn abort(mut self, grace: Duration) -> Result<(), Error> {
        self.transport.close_input().await;
        self.transport.wait(grace).await
    }
}

/// Reads what `reader` has into `buf` (kept `READ_SIZE` long as scratch
/// space; the caller cuts it to what was read). No reader (a stream that
/// ended, or a socket's missing stderr) never reads.
async fn read_some(reader: Option<&mut Reader>, buf: &mut BytesMut) -> std::io::Result<usize> {
    let Some(reader) = reader else {
        return pending().await;
    };
    if buf.len() < READ_SIZE {
        buf.resize(READ_SIZE, 0);
    }
    reader.read(buf).await
}

/// Writes what it can of `bytes`.
async fn write_some(stdin: &mut Writer, bytes: &Bytes) -> std::io::Result<usize> {
    let n = stdin.write(bytes).await?;
    stdin.flush().await?;
    Ok(n)
}
