//! How the core's client reaches the recorded server: fed from memory, or
//! through a runtime and a real transport to `nixwire-replay`, which plays
//! the transcript's server side and checks the client's bytes as they come.
//!
//! The client role's checks are the same either way: the bytes the client
//! sent, what it surfaced, how it ended. Only the path of the bytes differs.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use nixwire_core::conn::{Connection, Error};

use crate::transcript::{From, Transcript};

/// The runtime that drives the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// The core alone, fed in memory (no runtime).
    Core,
    /// `nixwire-tokio`.
    Tokio,
    /// `nixwire-smol`.
    Smol,
    /// `nixwire-blocking`.
    Blocking,
}

impl std::str::FromStr for Runtime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "core" => Self::Core,
            "tokio" => Self::Tokio,
            "smol" => Self::Smol,
            "blocking" => Self::Blocking,
            other => {
                return Err(format!(
                    "unknown runtime {other:?}: expected core, tokio, smol or blocking"
                ));
            }
        })
    }
}

/// How the bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Fed from the transcript in memory (the core runtime only).
    Memory,
    /// `nixwire-replay` as a child process.
    Process,
    /// `nixwire-replay` run through an sshd.
    Ssh,
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "memory" => Self::Memory,
            "process" => Self::Process,
            "ssh" => Self::Ssh,
            other => {
                return Err(format!(
                    "unknown transport {other:?}: expected memory, process or ssh"
                ));
            }
        })
    }
}

/// Where the sshd is, for [`Transport::Ssh`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Its host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The user to log in as.
    pub user: Option<String>,
    /// The private key to log in with.
    pub key: Option<PathBuf>,
    /// The sshd's host key (base64 of its public key line, as a machines
    /// file's column 8), pinned; without it the user's known_hosts decide.
    pub host_key: Option<String>,
}

/// How the client reaches the recorded server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The runtime.
    pub runtime: Runtime,
    /// The transport.
    pub transport: Transport,
    /// The sshd, for the ssh transport.
    pub ssh: Option<SshTarget>,
    /// The `nixwire-replay` program.
    pub replay: PathBuf,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            runtime: Runtime::Core,
            transport: Transport::Memory,
            ssh: None,
            replay: PathBuf::from("nixwire-replay"),
        }
    }
}

impl Link {
    /// Whether the combination can run, or why not.
    pub fn check(&self) -> Result<(), String> {
        match (self.runtime, self.transport) {
            (Runtime::Core, Transport::Memory) => Ok(()),
            (Runtime::Core, _) => Err("the core runtime only has the memory transport".into()),
            (_, Transport::Memory) => {
                Err("a runtime needs a real transport: process or ssh".into())
            }
            (_, Transport::Ssh) if self.ssh.is_none() => {
                Err("the ssh transport needs --ssh-host and --ssh-port".into())
            }
            _ => Ok(()),
        }
    }
}

/// The part of the logs the client surfaced that is compared with the
/// recorded stderr. Through ssh, the remote user's login shell may print
/// before the replay starts (an rc file's noise: here, a pyenv rehash that
/// races its own lock file); the recording has none of it. So over ssh the
/// recorded stderr must be what the client surfaced last, after whatever the
/// shell said; elsewhere it must be all of it.
pub fn logs_to_compare<'a>(link: &Link, ours: &'a [u8], recorded: &[u8]) -> &'a [u8] {
    if link.transport == Transport::Ssh && ours.ends_with(recorded) {
        &ours[ours.len() - recorded.len()..]
    } else {
        ours
    }
}

/// What driving the client gave.
#[derive(Debug, Default)]
pub struct Driven {
    /// Every byte the client sent.
    pub sent: Vec<u8>,
    /// The first error a `handle_*` call returned (the connection broke).
    pub error: Option<String>,
}

/// A connection that records what it sends and the first error it
/// returns, so that a runtime's run is judged like the memory one.
#[derive(Debug)]
pub struct Tap<C> {
    /// The connection.
    pub inner: C,
    /// What it sent.
    pub sent: Vec<u8>,
    /// The first error a `handle_*` call returned.
    pub error: Option<String>,
}

impl<C> Tap<C> {
    /// Taps `inner`.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            sent: Vec::new(),
            error: None,
        }
    }

    fn note(&mut self, r: Result<(), Error>) -> Result<(), Error> {
        if let (Err(e), None) = (&r, &self.error) {
            self.error = Some(e.to_string());
        }
        r
    }
}

impl<C: Connection> Connection for Tap<C> {
    type Event = C::Event;

    fn handle_input(&mut self, now: Instant, data: Bytes) -> Result<(), Error> {
        let r = self.inner.handle_input(now, data);
        self.note(r)
    }

    fn handle_stderr(&mut self, now: Instant, data: Bytes) {
        self.inner.handle_stderr(now, data);
    }

    fn handle_eof(&mut self, now: Instant) -> Result<(), Error> {
        let r = self.inner.handle_eof(now);
        self.note(r)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        let r = self.inner.handle_timeout(now);
        self.note(r)
    }

    fn poll_transmit(&mut self) -> Option<Bytes> {
        let bytes = self.inner.poll_transmit()?;
        self.sent.extend_from_slice(&bytes);
        Some(bytes)
    }

    fn poll_event(&mut self) -> Option<C::Event> {
        self.inner.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
}

/// An event handler of the client role: `Err` stops the run; `Break` says
/// the client expects nothing more (every request answered, or the
/// connection over), so a runtime may end its side.
pub type Handler<'a, C> =
    dyn FnMut(&mut C, <C as Connection>::Event) -> Result<ControlFlow<()>, String> + 'a;

/// Drives `conn` against the recorded server of `t` (the file `path`) as
/// `link` says, handing every event to `handle`.
pub fn drive<C: Connection>(
    link: &Link,
    t: &Transcript,
    path: &Path,
    conn: C,
    handle: &mut Handler<'_, C>,
) -> Result<Driven, String> {
    link.check()?;
    let tap = Tap::new(conn);
    match link.runtime {
        Runtime::Core => memory(t, tap, handle),
        Runtime::Tokio => crate::runtimes::tokio(link, path, tap, handle),
        Runtime::Smol => crate::runtimes::smol(link, path, tap, handle),
        Runtime::Blocking => crate::runtimes::blocking(link, path, tap, handle),
    }
}

/// The core fed in memory: the run loop's steps with the transcript's
/// chunks as the peer.
fn memory<C: Connection>(
    t: &Transcript,
    mut conn: Tap<C>,
    handle: &mut Handler<'_, C>,
) -> Result<Driven, String> {
    let now = Instant::now();
    // Send what it has, handle its events; again while handling made it
    // send more.
    let mut drain = |conn: &mut Tap<C>| -> Result<(), String> {
        loop {
            while conn.poll_transmit().is_some() {}
            let Some(event) = conn.poll_event() else {
                return Ok(());
            };
            // In memory the whole transcript is fed whatever the client expects.
            let _ = handle(&mut conn.inner, event)?;
        }
    };
    drain(&mut conn)?;
    for chunk in &t.chunks {
        match chunk.from {
            From::Server => {
                let _ = conn.handle_input(now, Bytes::copy_from_slice(&chunk.data));
            }
            // Logs keep coming after a protocol error.
            From::Stderr => conn.handle_stderr(now, Bytes::copy_from_slice(&chunk.data)),
            From::Client => {}
        }
        drain(&mut conn)?;
    }
    if conn.error.is_none() {
        let _ = conn.handle_eof(now);
    }
    drain(&mut conn)?;
    Ok(Driven {
        sent: conn.sent,
        error: conn.error,
    })
}
