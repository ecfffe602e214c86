//! ssh in-process through libssh2 (the `ssh2` crate): connect, check the
//! host key, log in, run the command, then one pump thread that owns the
//! session (libssh2 is not thread-safe per session) and moves bytes
//! between the channel and the driver.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use nixwire_core::runtime::{Error, Options};
use nixwire_core::uri::{HostKey, SshStore};
use rustix::event::{PollFd, PollFlags, Timespec};
use ssh2::{BlockDirections, Channel, CheckResult, KnownHostFileKind, Session};

use crate::transport::{Input, Outbound, Peer, READ_SIZE};

/// libssh2's "timed out" (`LIBSSH2_ERROR_TIMEOUT`).
const LIBSSH2_TIMEOUT: i32 = -9;

/// libssh2's "would block" (`LIBSSH2_ERROR_EAGAIN`).
const LIBSSH2_EAGAIN: i32 = -37;

/// Connects to `store`, runs `command` there and starts the pump, which
/// puts what the command prints on `inputs`.
pub(crate) fn open(
    store: &SshStore,
    command: &[String],
    options: &Options,
    inputs: SyncSender<Input>,
) -> Result<(Outbound, Peer), Error> {
    let target = store.to_string();
    let start = Instant::now();
    let left = || {
        options
            .connect_timeout
            .map(|t| t.saturating_sub(start.elapsed()))
    };
    let fail = |e: ssh2::Error| match e.code() {
        ssh2::ErrorCode::Session(LIBSSH2_TIMEOUT) => Error::TimedOut {
            during: "connecting through ssh",
            after: options.connect_timeout.unwrap_or_default(),
        },
        _ => Error::Connect {
            target: target.clone(),
            reason: e.message().to_owned(),
        },
    };
    let refuse = |reason: String| Error::Connect {
        target: target.clone(),
        reason,
    };

    let tcp = tcp_connect(store, options, left).map_err(refuse)?;
    let mut session = Session::new().map_err(fail)?;
    session.set_compress(store.params.compress);
    session.set_tcp_stream(
        tcp.try_clone()
            .map_err(|e| refuse(format!("cannot use the socket: {e}")))?,
    );
    // libssh2's blocking calls (handshake, login, exec) share what is left
    // of the connect timeout; 0 is no limit.
    let millis = left().map_or(0, |d| {
        u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
    });
    session.set_timeout(millis);
    session.handshake().map_err(fail)?;
    check_host_key(&session, store).map_err(refuse)?;
    log_in(&session, store).map_err(refuse)?;
    let mut channel = session.channel_session().map_err(fail)?;
    channel
        .exec(&nixwire_core::ssh::remote_command_line(command))
        .map_err(fail)?;
    session.set_timeout(0);
    session.set_blocking(false);
    let alive = options.ssh.server_alive_interval.map(|interval| {
        let secs = u32::try_from(interval.as_secs() + u64::from(interval.subsec_nanos() > 0))
            .unwrap_or(u32::MAX)
            .max(1);
        // want_reply: the server's answers are how a dead peer is noticed.
        session.set_keepalive(true, secs);
        // libssh2 makes an interval of 1 s one of 2 s.
        let every = Duration::from_secs(u64::from(secs.max(2)));
        every * options.ssh.server_alive_count_max.saturating_add(1)
    });

    let spawn_error = |e: std::io::Error| refuse(format!("cannot start the ssh pump: {e}"));
    let (wake_tx, wake_rx) = UnixStream::pair().map_err(spawn_error)?;
    wake_tx.set_nonblocking(true).map_err(spawn_error)?;
    wake_rx.set_nonblocking(true).map_err(spawn_error)?;
    let quit_wake = wake_tx.try_clone().map_err(spawn_error)?;
    let (tx, outgoing) = std::sync::mpsc::channel();
    let abandon = Arc::new(AtomicBool::new(false));
    let quit = Arc::new(AtomicBool::new(false));
    let pump = Pump {
        channel,
        session,
        socket: tcp,
        wake: wake_rx,
        outgoing,
        abandon: abandon.clone(),
        quit: quit.clone(),
        inputs,
        queue: VecDeque::new(),
        closing: false,
        eof_sent: false,
        writing: true,
        stdout_open: true,
        stderr_open: true,
        closed: false,
        alive,
        last_heard: Instant::now(),
        woke_writable: false,
        out_stale: false,
        host: store.host.clone(),
    };
    let pump = std::thread::Builder::new()
        .name("nixwire-ssh".to_owned())
        .spawn(move || pump.run())
        .map_err(spawn_error)?;
    Ok((
        Outbound {
            tx,
            abandon,
            wake: Some(wake_tx),
        },
        Peer::Ssh {
            pump,
            quit,
            wake: quit_wake,
        },
    ))
}

/// A TCP connection to the store's host and port, trying each address in
/// turn, each within what is left of both connect timeouts.
fn tcp_connect(
    store: &SshStore,
    options: &Options,
    left: impl Fn() -> Option<Duration>,
) -> Result<TcpStream, String> {
    let port = store.port_or_default();
    let addrs = (store.host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", store.host))?;
    let mut last = format!("{} has no address", store.host);
    for addr in addrs {
        let limit = match (options.ssh.connect_timeout, left()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let attempt = match limit {
            Some(l) if l.is_zero() => return Err(format!("timed out connecting to {addr}")),
            Some(l) => TcpStream::connect_timeout(&addr, l),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(tcp) => {
                // The protocol's small requests must not wait for more.
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

/// Accepts the server's host key only if it is the pinned one, or, with
/// no pin, if the user's known_hosts (or the system's) has it for this
/// host and port. Nothing is asked and nothing is learned: this runs before
/// any protocol byte and with nobody to answer.
fn check_host_key(session: &Session, store: &SshStore) -> Result<(), String> {
    let (blob, _) = session
        .host_key()
        .ok_or_else(|| "the server showed no host key".to_owned())?;
    if let Some(pinned) = &store.params.host_key {
        if blob == pinned.blob() {
            return Ok(());
        }
        return Err(format!(
            "its host key is not the one pinned by base64-ssh-public-host-key; it offers {}",
            describe(blob)
        ));
    }
    let mut known = session.known_hosts().map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        files.push(PathBuf::from(home).join(".ssh/known_hosts"));
    }
    files.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        // Line by line: libssh2 stops a whole file at the first line it
        // cannot read (a key type or marker it does not know).
        for line in text.lines() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                let _ = known.read_str(line, KnownHostFileKind::OpenSSH);
            }
        }
    }
    let offers = describe(blob);
    match known.check_port(&store.host, store.port_or_default(), blob) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(format!(
            "its host key is not the one ~/.ssh/known_hosts or /etc/ssh/ssh_known_hosts \
             has for it (the key changed, or someone is in the middle); it offers {offers}"
        )),
        CheckResult::NotFound => Err(format!(
            "its host key is not in ~/.ssh/known_hosts or /etc/ssh/ssh_known_hosts: add \
             it there, or pin it in the store URI (a machines file's 8th column), once \
             checked out of band; it offers {offers}"
        )),
        CheckResult::Failure => Err(format!(
            "its host key could not be checked against known_hosts; it offers {offers}"
        )),
    }
}

/// A key blob as a pin: `base64-ssh-public-host-key=…` for it, when it
/// reads as a key.
fn describe(blob: &[u8]) -> String {
    match HostKey::from_blob(blob) {
        Ok(key) => format!(
            "an {} key, base64-ssh-public-host-key={}",
            key.algorithm(),
            key.to_base64()
        ),
        Err(e) => format!("a key it cannot read ({e})"),
    }
}

/// Logs in with the store's `ssh-key`, else through the agent, as the
/// store's user, else the local one.
fn log_in(session: &Session, store: &SshStore) -> Result<(), String> {
    let user = store
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| "no user name: give one in the URI (user@host)".to_owned())?;
    let tried = match &store.params.ssh_key {
        Some(key) => session
            .userauth_pubkey_file(&user, None, key, None)
            .map_err(|e| {
                format!(
                    "cannot log in as {user} with the key {}: {}",
                    key.display(),
                    e.message()
                )
            }),
        None => session.userauth_agent(&user).map_err(|e| {
            format!(
                "cannot log in as {user} with the ssh agent's keys (no ssh-key given): {}",
                e.message()
            )
        }),
    };
    tried?;
    if session.authenticated() {
        Ok(())
    } else {
        Err(format!("the server did not accept {user}'s login"))
    }
}

/// The thread that owns the libssh2 session, non-blocking: it moves the
/// driver's bytes to the channel and the channel's stdout and stderr to the
/// driver, sends keepalives, and sleeps in `poll` on the socket and its
/// wake-up socket when nothing moves.
struct Pump {
    // Before the session: dropped first.
    channel: Channel,
    session: Session,
    socket: TcpStream,
    /// Readable when the driver queued bytes or closed our side.
    wake: UnixStream,
    outgoing: Receiver<Bytes>,
    abandon: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    inputs: SyncSender<Input>,
    /// What the driver gave and the channel has not taken yet.
    queue: VecDeque<Bytes>,
    /// The driver ended our side.
    closing: bool,
    eof_sent: bool,
    /// Whether the channel still takes bytes.
    writing: bool,
    stdout_open: bool,
    stderr_open: bool,
    /// The remote side closed the channel.
    closed: bool,
    /// How long the server may stay silent, keepalives unanswered, before
    /// it is taken for dead (ssh's `ServerAliveInterval` ×
    /// (`ServerAliveCountMax` + 1)).
    alive: Option<Duration>,
    last_heard: Instant,
    /// The last wait ended because the socket could be written.
    woke_writable: bool,
    /// libssh2's "blocked on sending" is left over from a send nothing
    /// retries (a keepalive): waiting for a writable socket would spin.
    out_stale: bool,
    host: String,
}

/// Whether the pump goes on.
type Go = Result<(), Gone>;

/// The pump ends: the command and our side are done, the driver is gone,
/// or the pump was told to quit.
struct Gone;

impl Pump {
    fn run(mut self) {
        let mut buf = BytesMut::new();
        while self.turn(&mut buf).is_ok() {}
        // Polite, and not waited for: the connection goes with the session.
        let _ = self.session.disconnect(None, "", None);
    }

    /// One round: what can move moves, else a wait for something to.
    fn turn(&mut self, buf: &mut BytesMut) -> Go {
        if self.quit.load(Ordering::SeqCst) {
            return Err(Gone);
        }
        let mut moved = self.take_outgoing();
        moved |= self.write()?;
        if self.closing && self.queue.is_empty() && !self.eof_sent {
            match self.channel.send_eof() {
                Err(e) if would_block(&e) => {}
                // Sent, or the channel is gone: either way nothing more goes.
                _ => {
                    self.eof_sent = true;
                    moved = true;
                }
            }
        }
        if self.stdout_open {
            moved |= self.read(buf, false)?;
        }
        if self.stderr_open {
            moved |= self.read(buf, true)?;
        }
        if !self.stdout_open && !self.stderr_open && !self.closed {
            // Reads what is left of the channel: its exit status, its close.
            match self.channel.wait_close() {
                Err(e) if would_block(&e) => {}
                _ => {
                    self.closed = true;
                    moved = true;
                }
            }
        }
        if self.closed && self.closing && (self.eof_sent || !self.writing) {
            // The command ended and our side is closed: done.
            return Err(Gone);
        }
        let mut timeout = None;
        if let (Some(limit), false) = (self.alive, self.closed) {
            if self.last_heard.elapsed() > limit {
                return self.dead(limit);
            }
            if let Ok(secs) = self.session.keepalive_send() {
                timeout = Some(Duration::from_secs(u64::from(secs.max(1))));
            }
        }
        if moved {
            self.out_stale = false;
            self.woke_writable = false;
        } else {
            // Woken for writing just before, and nothing moved: nothing is
            // waiting to be sent after all.
            self.out_stale = self.woke_writable;
            self.wait(timeout);
        }
        Ok(())
    }

    /// Takes what the driver queued; `true` if anything changed.
    fn take_outgoing(&mut self) -> bool {
        let mut byte = [0u8; 64];
        while matches!((&self.wake).read(&mut byte), Ok(n) if n > 0) {}
        let mut moved = false;
        loop {
            match self.outgoing.try_recv() {
                Ok(bytes) => {
                    moved = true;
                    if self.writing {
                        self.queue.push_back(bytes);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    moved |= !self.closing;
                    self.closing = true;
                    break;
                }
            }
        }
        if self.abandon.load(Ordering::SeqCst) {
            self.queue.clear();
        }
        moved
    }

    /// Writes what the channel takes of the queue, acknowledging it.
    fn write(&mut self) -> Result<bool, Gone> {
        let mut moved = false;
        while let Some(front) = self.queue.front_mut() {
            match self.channel.write(front) {
                Ok(0) => break,
                Ok(n) => {
                    moved = true;
                    front.advance(n);
                    if front.is_empty() {
                        self.queue.pop_front();
                    }
                    self.send(Input::Wrote(n))?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // The channel no longer takes bytes: told as a closed
                    // pipe, since what the command said (or its end)
                    // explains it.
                    self.writing = false;
                    self.queue.clear();
                    let e = std::io::Error::new(std::io::ErrorKind::BrokenPipe, e);
                    self.send(Input::WriteFailed(e))?;
                    return Ok(true);
                }
            }
        }
        Ok(moved)
    }

    /// Reads the command's stdout or stderr once.
    fn read(&mut self, buf: &mut BytesMut, stderr: bool) -> Result<bool, Gone> {
        buf.resize(READ_SIZE, 0);
        let read = if stderr {
            self.channel.stderr().read(buf)
        } else {
            self.channel.read(buf)
        };
        match read {
            Ok(n) if n > 0 => {
                buf.truncate(n);
                let data = buf.split().freeze();
                self.send(if stderr {
                    Input::Stderr(data)
                } else {
                    Input::Stdout(data)
                })?;
                // Also after a wait for room on the channel: the server was
                // not the silent one.
                self.last_heard = Instant::now();
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            // The end, or the connection failed: told as an end either way.
            _ => {
                if stderr {
                    self.stderr_open = false;
                    self.send(Input::StderrEnd)?;
                } else {
                    self.stdout_open = false;
                    self.send(Input::StdoutEnd)?;
                }
                Ok(true)
            }
        }
    }

    /// The server has not answered for `limit`: says so on stderr, as ssh
    /// does, and ends both streams.
    fn dead(&mut self, limit: Duration) -> Go {
        let text = format!(
            "nixwire: timeout, ssh server {} not responding for {}s\n",
            self.host,
            limit.as_secs()
        );
        self.send(Input::Stderr(Bytes::from(text)))?;
        if self.stdout_open {
            self.send(Input::StdoutEnd)?;
        }
        if self.stderr_open {
            self.send(Input::StderrEnd)?;
        }
        Err(Gone)
    }

    fn send(&self, input: Input) -> Go {
        self.inputs.send(input).map_err(|_| Gone)
    }

    /// Sleeps until the socket can move what libssh2 is waiting for, the
    /// driver wakes us, or `timeout`.
    fn wait(&mut self, timeout: Option<Duration>) {
        let mut wanted = PollFlags::IN;
        if !self.out_stale
            && matches!(
                self.session.block_directions(),
                BlockDirections::Outbound | BlockDirections::Both
            )
        {
            wanted |= PollFlags::OUT;
        }
        let timeout = timeout.and_then(|d| Timespec::try_from(d).ok());
        let mut fds = [
            PollFd::new(&self.wake, PollFlags::IN),
            PollFd::new(&self.socket, wanted),
        ];
        // Once the channel is closed the socket has nothing more for us,
        // and a hung-up socket would wake every poll.
        let n = if self.closed { 1 } else { 2 };
        let _ = rustix::event::poll(&mut fds[..n], timeout.as_ref());
        self.woke_writable = n == 2 && fds[1].revents().contains(PollFlags::OUT);
        if n == 2
            && fds[1]
                .revents()
                .intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
        {
            self.last_heard = Instant::now();
        }
    }
}

/// Whether libssh2 said "would block" (`LIBSSH2_ERROR_EAGAIN`).
fn would_block(e: &ssh2::Error) -> bool {
    matches!(e.code(), ssh2::ErrorCode::Session(LIBSSH2_EAGAIN))
}
