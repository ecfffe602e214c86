//! The core's run loop on smol: one race of the peer's stdout, its stderr,
//! our pending write, the connection's deadline and a cancel.

use std::future::pending;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use nixwire_core::conn::Connection;
use nixwire_core::runtime::{Error, Input, Pump};
use smol::channel::{Receiver, Sender};
use smol::future::{or, race};
use smol::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::{Reader, Transport, Writer, within};

/// How much is read at once from the peer.
const READ_SIZE: usize = 64 * 1024;

/// Runs any [`Connection`] over a [`Transport`].
pub struct Driver<C: Connection> {
    pump: Pump<C>,
    transport: Transport,
    /// Bytes taken from `poll_transmit` and not yet written.
    pending: Option<Bytes>,
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
        let has_stderr = transport.stderr.is_some();
        Self {
            pump: Pump::new(conn, has_stderr),
            transport,
            pending: None,
            buf: BytesMut::new(),
            errbuf: BytesMut::new(),
            cancel: smol::channel::bounded(1),
            cancelled: false,
        }
    }

    /// The connection, for requests and bodies.
    pub fn conn(&mut self) -> &mut C {
        self.pump.conn()
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
            if let Some(done) = self.pump.dispatch(&mut handle) {
                return done;
            }
            self.cancelled |= self.cancel.1.try_recv().is_ok();
            if self.cancelled {
                self.transport.close_input().await;
                return Err(Error::Cancelled {
                    during: "a request",
                });
            }
            self.step().await?;
        }
    }

    /// Waits for one thing to happen and gives it to the connection.
    async fn step(&mut self) -> Result<(), Error> {
        if self.pending.is_none() {
            self.pending = self.pump.conn().poll_transmit();
        }
        let deadline = self.pump.deadline();
        let Transport {
            stdin,
            stdout,
            stderr,
            ..
        } = &mut self.transport;
        let stdout = self.pump.reading_stdout().then_some(stdout);
        let stderr = stderr.as_mut().filter(|_| self.pump.reading_stderr());
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
        let input = match woke {
            Woke::Stdout(Ok(0) | Err(_)) => Input::StdoutEnd,
            Woke::Stdout(Ok(n)) => {
                self.buf.truncate(n);
                Input::Stdout(self.buf.split().freeze())
            }
            Woke::Stderr(Ok(0) | Err(_)) => Input::StderrEnd,
            Woke::Stderr(Ok(n)) => {
                self.errbuf.truncate(n);
                Input::Stderr(self.errbuf.split().freeze())
            }
            Woke::Deadline => Input::Deadline,
            Woke::Wrote(Ok(n)) => {
                self.pump.sent(Instant::now(), n);
                if let Some(p) = &mut self.pending {
                    let _ = p.split_to(n.min(p.len()));
                    if p.is_empty() {
                        self.pending = None;
                    }
                }
                return Ok(());
            }
            Woke::Wrote(Err(e)) => {
                self.pending = None;
                return self.pump.write_failed(e);
            }
            Woke::Cancelled => {
                self.cancelled = true;
                return Ok(());
            }
        };
        self.pump.handle(Instant::now(), input);
        Ok(())
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
                    self.pending = self.pump.conn().poll_transmit();
                }
                if self.pending.is_none() || self.transport.stdin.is_none() {
                    break;
                }
                self.step().await?;
            }
            self.transport.close_input().await;
            while self.pump.reading() {
                self.step().await?;
                self.pump.drain(&mut handle);
            }
            Ok::<(), Error>(())
        })
        .await;
        self.pump.drain(&mut handle);
        let waited = self.transport.wait(grace).await;
        let result = match drained {
            Some(r) => r.and(waited),
            None => Err(Error::TimedOut {
                during: "waiting for the peer to end its output",
                after: grace,
            }),
        };
        (self.pump.into_conn(), result)
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
