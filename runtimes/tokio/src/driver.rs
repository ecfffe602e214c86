//! The core's run loop on tokio: one `select!` over the peer's stdout, its
//! stderr, our pending write, the connection's deadline and a cancel.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use nixwire_core::conn::Connection;
use nixwire_core::runtime::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::transport::Transport;

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
            cancel: Arc::default(),
        }
    }

    /// The connection, for requests and bodies.
    pub fn conn(&mut self) -> &mut C {
        &mut self.conn
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
            while let Some(event) = self.conn.poll_event() {
                if let ControlFlow::Break(r) = handle(&mut self.conn, event) {
                    return Ok(r);
                }
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
        if self.stdout_open {
            self.buf.reserve(READ_SIZE);
        }
        if self.stderr_open {
            self.errbuf.reserve(READ_SIZE);
        }
        let Transport {
            stdin,
            stdout,
            stderr,
            ..
        } = &mut self.transport;
        let woke = tokio::select! {
            r = stdout.read_buf(&mut self.buf), if self.stdout_open => Woke::Stdout(r),
            r = read_stderr(stderr, &mut self.errbuf), if self.stderr_open => Woke::Stderr(r),
            r = write_some(stdin, self.pending.as_ref()), if self.pending.is_some() => Woke::Wrote(r),
            () = sleep_until(deadline), if deadline.is_some() => Woke::Deadline,
            () = self.cancel.notify.notified() => Woke::Cancelled,
        };
        let now = Instant::now();
        match woke {
            Woke::Stdout(Ok(0)) | Woke::Stdout(Err(_)) => {
                self.stdout_open = false;
                // The end is told once both streams are read out, so that a
                // failed login's stderr is the error's text.
                self.tell_eof(now);
            }
            Woke::Stdout(Ok(_)) => {
                let data = self.buf.split().freeze();
                let _ = self.conn.handle_input(now, data);
            }
            Woke::Stderr(Ok(0)) | Woke::Stderr(Err(_)) => {
                self.stderr_open = false;
                self.tell_eof(now);
            }
            Woke::Stderr(Ok(_)) => {
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
            Woke::Cancelled => {}
        }
        Ok(())
    }

    fn tell_eof(&mut self, now: Instant) {
        if !self.stdout_open && !self.stderr_open && !self.eof_told {
            self.eof_told = true;
            let _ = self.conn.handle_eof(now);
        }
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
                    self.pending = self.conn.poll_transmit();
                }
                if self.pending.is_none() || self.transport.stdin.is_none() {
                    break;
                }
                self.step().await?;
                while let Some(event) = self.conn.poll_event() {
                    handle(&mut self.conn, event);
                }
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
            Ok(r) => r.and(waited),
            Err(_) => Err(Error::TimedOut {
                during: "waiting for the peer to end its output",
                after: grace,
            }),
        };
        (self.conn, result)
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
