//! Byte streams to a peer on threads: a child process, a command over ssh
//! (in-process, [`crate::ssh`]), or a daemon's unix socket. Reader threads
//! and a writer thread (or the ssh pump) put all they see on one channel
//! of [`Input`]s, which the driver waits on.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use nixwire_core::runtime::{Error, Options, Plan};
use nixwire_core::uri::SshStore;

/// How much is read from the peer at once.
pub(crate) const READ_SIZE: usize = 64 * 1024;

/// How many inputs may wait for the driver: with reads of at most
/// [`READ_SIZE`], about 1 MiB. A full channel stops the readers, so a peer
/// that sends faster than the host takes is held back by its pipe.
const QUEUE: usize = 16;

/// How often a peer's exit is looked for while waiting for it.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// What the driver waits for, from every thread of a transport and from
/// cancellers.
pub(crate) enum Input {
    /// Bytes from the peer's stdout.
    Stdout(Bytes),
    /// Bytes from the peer's stderr.
    Stderr(Bytes),
    /// The peer's stdout ended (or failed, which is told the same way).
    StdoutEnd,
    /// The peer's stderr ended.
    StderrEnd,
    /// This many bytes given to the writer were written.
    Wrote(usize),
    /// Writing failed; nothing more is written.
    WriteFailed(std::io::Error),
    /// A [`Canceller`](crate::Canceller) was used.
    Cancel,
}

/// The way to the writer (or the ssh pump): bytes to write, and the end of
/// our side when it is dropped.
pub(crate) struct Outbound {
    pub(crate) tx: Sender<Bytes>,
    /// Set when our side ends by a cancel or a failure: queued bytes are
    /// dropped instead of written first.
    pub(crate) abandon: Arc<AtomicBool>,
    /// The ssh pump's wake-up socket: it waits in `poll`, not on `tx`.
    pub(crate) wake: Option<UnixStream>,
}

impl Outbound {
    fn wake(&self) {
        if let Some(w) = &self.wake {
            // Non-blocking: a full socket already holds a wake-up.
            let _ = (&*w).write(&[1]);
        }
    }
}

/// Who is at the other end, for waiting on it and killing it.
pub(crate) enum Peer {
    Child(Child),
    /// The ssh pump thread, which owns the libssh2 session.
    Ssh {
        pump: JoinHandle<()>,
        /// Tells the pump to drop the session now.
        quit: Arc<AtomicBool>,
        wake: UnixStream,
    },
    /// A socket, kept to end our direction even while the writer is
    /// blocked in a write.
    Socket(UnixStream),
}

/// The byte stream to a peer: its stdin, its stdout and, when it has one,
/// its stderr.
pub struct Transport {
    pub(crate) inputs: Receiver<Input>,
    /// A sender of [`inputs`](Self::inputs), for cancellers.
    waker: SyncSender<Input>,
    out: Option<Outbound>,
    pub(crate) has_stderr: bool,
    peer: Peer,
    /// What the peer is, for messages.
    name: String,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("peer", &self.name)
            .finish()
    }
}

impl Transport {
    /// Runs `program` here with `args` and extra environment `envs`.
    pub fn spawn(program: &str, args: &[String], envs: &[(String, String)]) -> Result<Self, Error> {
        let mut child = Command::new(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                program: program.to_owned(),
                source,
            })?;
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (inputs_tx, inputs) = std::sync::mpsc::sync_channel(QUEUE);
        let (tx, rx) = std::sync::mpsc::channel();
        let abandon = Arc::new(AtomicBool::new(false));
        // Built before the threads start, so that a failure kills the child.
        let transport = Self {
            inputs,
            waker: inputs_tx.clone(),
            out: Some(Outbound {
                tx,
                abandon: abandon.clone(),
                wake: None,
            }),
            has_stderr: true,
            peer: Peer::Child(child),
            name: program.to_owned(),
        };
        let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
            return Err(Error::Unsupported("a child without pipes".to_owned()));
        };
        reader(
            "stdout",
            stdout,
            inputs_tx.clone(),
            Input::Stdout,
            Input::StdoutEnd,
        )?;
        reader(
            "stderr",
            stderr,
            inputs_tx.clone(),
            Input::Stderr,
            Input::StderrEnd,
        )?;
        // Dropping stdin when the writer ends closes it: the peer reads EOF.
        writer(stdin, rx, abandon, inputs_tx, drop)?;
        Ok(transport)
    }

    /// Runs `command` on the ssh host of `store`, in-process through
    /// libssh2: see the [crate documentation](crate) for what is checked
    /// and what is not read.
    pub fn ssh(store: &SshStore, command: &[String], options: &Options) -> Result<Self, Error> {
        let (inputs_tx, inputs) = std::sync::mpsc::sync_channel(QUEUE);
        let (out, peer) = crate::ssh::open(store, command, options, inputs_tx.clone())?;
        Ok(Self {
            inputs,
            waker: inputs_tx,
            out: Some(out),
            has_stderr: true,
            peer,
            name: store.to_string(),
        })
    }

    /// Connects to a daemon's unix socket (which has no stderr: the daemon
    /// sends its logs in the protocol).
    pub fn unix(path: &Path) -> Result<Self, Error> {
        let target = || format!("unix://{}", path.display());
        let connect_error = |e: std::io::Error| Error::Connect {
            target: target(),
            reason: e.to_string(),
        };
        let stream = UnixStream::connect(path).map_err(connect_error)?;
        let read = stream.try_clone().map_err(connect_error)?;
        let write = stream.try_clone().map_err(connect_error)?;
        let (inputs_tx, inputs) = std::sync::mpsc::sync_channel(QUEUE);
        let (tx, rx) = std::sync::mpsc::channel();
        let abandon = Arc::new(AtomicBool::new(false));
        reader(
            "socket",
            read,
            inputs_tx.clone(),
            Input::Stdout,
            Input::StdoutEnd,
        )?;
        writer(write, rx, abandon.clone(), inputs_tx.clone(), |s| {
            let _ = s.shutdown(std::net::Shutdown::Write);
        })?;
        Ok(Self {
            inputs,
            waker: inputs_tx,
            out: Some(Outbound {
                tx,
                abandon,
                wake: None,
            }),
            has_stderr: false,
            peer: Peer::Socket(stream),
            name: path.display().to_string(),
        })
    }

    /// The transport `plan` says.
    pub fn open(plan: &Plan, options: &Options) -> Result<Self, Error> {
        match plan {
            Plan::Process { program, args, .. } => Self::spawn(program, args, &options.env),
            Plan::Ssh { store, command, .. } => Self::ssh(store, command, options),
            Plan::Unix { path } => Self::unix(path),
            other => Err(Error::Unsupported(format!("cannot open {other:?}"))),
        }
    }

    /// What the peer is.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A sender of the driver's inputs, for a canceller.
    pub(crate) fn waker(&self) -> SyncSender<Input> {
        self.waker.clone()
    }

    /// Queues `bytes` for the peer; `false` if the writer has ended.
    pub(crate) fn send(&mut self, bytes: Bytes) -> bool {
        let Some(out) = &self.out else {
            return false;
        };
        let sent = out.tx.send(bytes).is_ok();
        out.wake();
        sent
    }

    /// Ends our side: the peer reads end of file once what is queued is
    /// written, or at once with `abandon`.
    pub(crate) fn close_input(&mut self, abandon: bool) {
        let Some(out) = self.out.take() else {
            return;
        };
        if abandon {
            out.abandon.store(true, Ordering::SeqCst);
            if let Peer::Socket(s) = &self.peer {
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
        }
        // Dropping the sender is what the writer (or the pump) takes as
        // the end; the wake-up makes the pump look.
        let Outbound { tx, wake, .. } = out;
        drop(tx);
        if let Some(w) = wake {
            let _ = (&w).write(&[1]);
        }
    }

    /// Waits for the peer to exit within `grace`, then kills it (a child
    /// here) or drops the ssh connection (which ends the remote command).
    pub(crate) fn wait(&mut self, grace: Duration) -> Result<(), Error> {
        self.close_input(false);
        let end = Instant::now() + grace;
        // Nothing reads the inputs any more: dropping them keeps the
        // readers (and the ssh pump) from blocking on a full channel, and
        // so the peer from blocking on its output, while it exits.
        let drop_inputs = || while self.inputs.try_recv().is_ok() {};
        match &mut self.peer {
            Peer::Child(child) => loop {
                drop_inputs();
                match child.try_wait() {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) if Instant::now() < end => std::thread::sleep(EXIT_POLL),
                    Ok(None) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(Error::TimedOut {
                            during: "waiting for the peer to exit (killed)",
                            after: grace,
                        });
                    }
                    Err(e) => return Err(Error::io("waiting for the peer to exit")(e)),
                }
            },
            Peer::Ssh { pump, quit, wake } => {
                // The pump ends once the remote command has closed the
                // channel (it then exited) and our side is closed.
                while !pump.is_finished() {
                    drop_inputs();
                    if Instant::now() >= end {
                        quit.store(true, Ordering::SeqCst);
                        let _ = (&*wake).write(&[1]);
                        return Err(Error::TimedOut {
                            during: "waiting for the remote command to exit",
                            after: grace,
                        });
                    }
                    std::thread::sleep(EXIT_POLL);
                }
                Ok(())
            }
            Peer::Socket(_) => Ok(()),
        }
    }
}

impl Drop for Transport {
    /// A transport dropped without [`Driver::finish`](crate::Driver::finish)
    /// leaves nothing behind: the child is killed, the ssh connection
    /// dropped.
    fn drop(&mut self) {
        match &mut self.peer {
            Peer::Child(child) => {
                if let Ok(None) = child.try_wait() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            Peer::Ssh { quit, wake, .. } => {
                quit.store(true, Ordering::SeqCst);
                let _ = (&*wake).write(&[1]);
            }
            Peer::Socket(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Starts a thread that reads `source` into the driver's inputs until it
/// ends: stdout and stderr each have one, so that neither waits for the
/// other (a serve server blocks forever on a full stderr pipe:
/// NixOS/nix#16437).
fn reader(
    what: &str,
    mut source: impl Read + Send + 'static,
    inputs: SyncSender<Input>,
    data: fn(Bytes) -> Input,
    end: Input,
) -> Result<(), Error> {
    std::thread::Builder::new()
        .name(format!("nixwire-{what}"))
        .spawn(move || {
            let mut buf = BytesMut::new();
            loop {
                buf.resize(READ_SIZE, 0);
                match source.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if inputs.send(data(buf.split().freeze())).is_err() {
                            // The driver is gone.
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // Told as an end: what the peer said explains it.
                    Err(_) => break,
                }
            }
            let _ = inputs.send(end);
        })
        .map(drop)
        .map_err(Error::io("starting a reader thread"))
}

/// Starts the thread that writes what the driver queues to `sink`,
/// acknowledging each piece, until the driver ends our side; `close` then
/// ends the stream.
fn writer<W: Write + Send + 'static>(
    mut sink: W,
    queue: Receiver<Bytes>,
    abandon: Arc<AtomicBool>,
    inputs: SyncSender<Input>,
    close: impl FnOnce(W) + Send + 'static,
) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("nixwire-writer".to_owned())
        .spawn(move || {
            while let Ok(bytes) = queue.recv() {
                if abandon.load(Ordering::SeqCst) {
                    break;
                }
                match sink.write_all(&bytes).and_then(|()| sink.flush()) {
                    Ok(()) => {
                        if inputs.send(Input::Wrote(bytes.len())).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = inputs.send(Input::WriteFailed(e));
                        break;
                    }
                }
            }
            close(sink);
        })
        .map(drop)
        .map_err(Error::io("starting the writer thread"))
}
