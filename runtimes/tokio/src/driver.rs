//! The core's run loop on tokio: one `select!` over the peer's stdout, its
//! stderr, our pending write, the connection's deadline and a cancel.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use nixwire_core::conn::Connection;
use nixwire_core::runtime::{Error, Input, Pump};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::transport::Transport;

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
    cancel: Arc<Cancel>,
}

#[derive(Default)]
struct Cancel {
    notify: Notify,
    cancelled: std::sync::atomic::AtomicBool,
}

/// Cancels a [`Driver`] from another task: the running
/// [`run`](Driver::run) returns [`Error::Cancelled`] and the peer's stdin is
/// closed, which makes Nix's servers stop their builds.
#[derive(Clone)]
pub struct Canceller(Arc<Cancel>);

impl Canceller {
    /// Cancels; the driver's connection must not be reused.
    pub fn cancel(&self) {
        self.0
            .cancelled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.0.notify.notify_waiters();
        self.0.notify.notify_one();
    }
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Canceller")
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
            cancel: Arc::default(),
        }
    }

    /// The connection, for requests and bodies.
    pub fn conn(&mut self) -> &mut C {
        self.pump.conn()
    }

    /// A handle that cancels this driver from elsewhere.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.cancel.clone())
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
            if self
                .cancel
                .cancelled
                .load(std::sync::atomic::Ordering::SeqCst)
            {
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
        let (reading_stdout, reading_stderr) =
            (self.pump.reading_stdout(), self.pump.reading_stderr());
        if reading_stdout {
            self.buf.reserve(READ_SIZE);
        }
        if reading_stderr {
            self.errbuf.reserve(READ_SIZE);
        }
        let Transport {
            stdin,
            stdout,
            stderr,
            ..
        } = &mut self.transport;
        let woke = tokio::select! {
            r = stdout.read_buf(&mut self.buf), if reading_stdout => Woke::Stdout(r),
            r = read_stderr(stderr, &mut self.errbuf), if reading_stderr => Woke::Stderr(r),
            r = write_some(stdin, self.pending.as_ref()), if self.pending.is_some() => Woke::Wrote(r),
            () = sleep_until(deadline), if deadline.is_some() => Woke::Deadline,
            () = self.cancel.notify.notified() => Woke::Cancelled,
        };
        let input = match woke {
            Woke::Stdout(Ok(0) | Err(_)) => Input::StdoutEnd,
            Woke::Stdout(Ok(_)) => Input::Stdout(self.buf.split().freeze()),
            Woke::Stderr(Ok(0) | Err(_)) => Input::StderrEnd,
            Woke::Stderr(Ok(_)) => Input::Stderr(self.errbuf.split().freeze()),
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
            Woke::Cancelled => return Ok(()),
        };
        self.pump.handle(Instant::now(), input);
        Ok(())
    }

    /// Ends our side, hands the peer's remaining events to `handle`, and
    /// waits for the peer to exit within `grace`, killing it after. Gives
    /// the connection back, with how the end went.
    pub async fn finish(
        mut self,
        grace: std::time::Duration,
        mut handle: impl FnMut(&mut C, C::Event),
    ) -> (C, Result<(), Error>) {
        let drained = tokio::time::timeout(grace, async {
            // What is still queued goes out first, the peer's output read
            // meanwhile (a peer stuck on a full stderr pipe reads nothing).
            loop {
                if self.pending.is_none() {
                    self.pending = self.pump.conn().poll_transmit();
                }
                if self.pending.is_none() || self.transport.stdin.is_none() {
                    break;
                }
                self.step().await?;
                self.pump.drain(&mut handle);
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
            Ok(r) => r.and(waited),
            Err(_) => Err(Error::TimedOut {
                during: "waiting for the peer to end its output",
                after: grace,
            }),
        };
        (self.pump.into_conn(), result)
    }

    /// Closes our side without waiting, and kills the peer if it has not
    /// exited within `grace`: what a cancelled connection gets.
    pub async fn abort(mut self, grace: std::time::Duration) -> Result<(), Error> {
        self.transport.close_input().await;
        self.transport.wait(grace).await
    }
}

/// Reads the peer's stderr, when it has one.
async fn read_stderr(
    stderr: &mut Option<crate::transport::Reader>,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    match stderr {
        Some(s) => s.read_buf(buf).await,
        // No stderr (a socket): nothing ever comes.
        None => std::future::pending().await,
    }
}

/// Writes what it can of `pending`.
async fn write_some(
    stdin: &mut Option<crate::transport::Writer>,
    pending: Option<&Bytes>,
) -> std::io::Result<usize> {
    let (Some(bytes), Some(stdin)) = (pending, stdin.as_mut()) else {
        // Our side is closed: nothing more can go.
        return Err(std::io::ErrorKind::BrokenPipe.into());
    };
    let n = stdin.write(bytes).await?;
    stdin.flush().await?;
    Ok(n)
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d.into()).await;
    }
}
