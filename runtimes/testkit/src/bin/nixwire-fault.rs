//! `nixwire-fault CONFIG PROGRAM [ARGS...]`: a remote program that breaks
//! the stream on purpose (see `nixwire_testkit::fault` for what it does
//! and the config file it reads).
//!
//! Two threads pump bytes: stdin to the server's stdin, the server's stdout
//! to stdout; the server's stderr is inherited (it goes to the ssh
//! channel's stderr as it would without the injector). The fault is
//! checked on the counted direction as each chunk passes.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nixwire_testkit::fault::{Action, Direction, Fault};
use rustix::process::{Pid, Signal, kill_process};

/// How long a stopped injector waits for its client to go away.
const STOP_LIMIT: Duration = Duration::from_secs(120);

/// What both pumps share.
struct Shared {
    fault: Fault,
    server: Pid,
    /// The fault happened (it happens once).
    fired: AtomicBool,
    /// Forwarding has stopped (the stop action).
    frozen: AtomicBool,
}

impl Shared {
    /// Marks the fault as happened; false if it already had.
    fn fire(&self) -> bool {
        if self.fired.swap(true, Ordering::SeqCst) {
            return false;
        }
        if let Some(record) = &self.fault.record {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let _ = std::fs::write(record, now.to_string());
        }
        true
    }

    fn signal(&self, signal: Signal) {
        let _ = kill_process(self.server, signal);
    }

    /// Ends the injector now, the server killed (a stopped one too).
    fn end(&self, code: u8) -> ! {
        self.signal(Signal::KILL);
        std::process::exit(i32::from(code));
    }

    /// How many bytes of a `len`-byte chunk, `count` having passed before
    /// it in `direction`, go on before the fault; `None` if it does not
    /// happen in this chunk.
    fn cut(&self, direction: Direction, count: u64, len: usize) -> Option<usize> {
        let f = &self.fault;
        // With no action, a count still records the moment it is passed
        // (a test waits for it to act mid-transfer itself).
        if (f.action == Action::None && f.after == 0)
            || f.direction != direction
            || self.fired.load(Ordering::SeqCst)
            || count + len as u64 <= f.after
        {
            return None;
        }
        Some(usize::try_from(f.after.saturating_sub(count)).unwrap_or(len))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, program, rest @ ..] = args.as_slice() else {
        eprintln!("usage: nixwire-fault CONFIG PROGRAM [ARGS...]");
        return ExitCode::from(2);
    };
    let fault = match std::fs::read_to_string(config)
        .map_err(|e| format!("{config}: {e}"))
        .and_then(|t| Fault::parse(&t).map_err(|e| e.to_string()))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("nixwire-fault: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(marker) = &fault.marker {
        let _ = std::fs::write(marker, args.join("\n"));
    }
    if let Some(banner) = &fault.banner {
        let mut out = std::io::stdout();
        let _ = out.write_all(banner.as_bytes());
        let _ = out.flush();
    }
    let mut child = match std::process::Command::new(program)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nixwire-fault: cannot run {program}: {e}");
            return ExitCode::from(127);
        }
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return ExitCode::from(2);
    };
    let shared = Arc::new(Shared {
        server: Pid::from_child(&child),
        fault,
        fired: AtomicBool::new(false),
        frozen: AtomicBool::new(false),
    });
    {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || to_server(&shared, stdin));
    }
    if shared.fault.stderr_flood > 0 {
        flood(shared.fault.stderr_flood);
    }
    to_client(&shared, stdout);
    finish(&shared, &mut child)
}

/// The server's exit status as the injector's (its stdout has ended).
fn finish(shared: &Shared, child: &mut Child) -> ExitCode {
    let _ = std::io::stdout().flush();
    if shared.frozen.load(Ordering::SeqCst) {
        park(shared);
    }
    match child.wait() {
        Ok(s) => ExitCode::from(s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1)),
        Err(_) => ExitCode::from(1),
    }
}

/// Stopped: nothing moves until the client goes away (the stdin pump ends
/// the process) or the limit passes.
fn park(shared: &Shared) -> ! {
    std::thread::sleep(STOP_LIMIT);
    shared.end(1)
}

/// Lines of text on stderr, `total` bytes.
fn flood(total: u64) {
    let line = b"nixwire-fault: stderr flood, the client must keep reading this\n";
    let mut err = std::io::stderr().lock();
    let mut left = total;
    while left > 0 {
        let n = usize::try_from(left.min(line.len() as u64)).unwrap_or(line.len());
        if err.write_all(&line[..n]).is_err() {
            return;
        }
        left -= n as u64;
    }
    let _ = err.flush();
}

/// The pump towards the server.
fn to_server(shared: &Shared, stdin: ChildStdin) {
    let mut input = std::io::stdin().lock();
    let mut buf = vec![0u8; shared.fault.chunk];
    let mut count = 0u64;
    // Owned, so that dropping it closes the server's stdin (truncate).
    let mut server: Option<ChildStdin> = Some(stdin);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.frozen.load(Ordering::SeqCst) {
            // Stopped: what the client sends is dropped.
            continue;
        }
        pause(shared);
        let mut chunk = &buf[..n];
        if let Some(keep) = shared.cut(Direction::ToServer, count, n)
            && shared.fire()
            && shared.fault.action != Action::None
        {
            if let Some(s) = server.as_mut() {
                let _ = s.write_all(&chunk[..keep]);
                let _ = s.flush();
            }
            match shared.fault.action {
                Action::Kill => shared.signal(Signal::KILL),
                Action::Stop => {
                    shared.signal(Signal::STOP);
                    shared.frozen.store(true, Ordering::SeqCst);
                }
                Action::Truncate | Action::None => {}
            }
            // The server sees EOF (truncate) or is gone; the rest is dropped.
            server = None;
            chunk = &[];
        }
        count += n as u64;
        if let Some(s) = server.as_mut()
            && s.write_all(chunk).and_then(|()| s.flush()).is_err()
        {
            server = None;
        }
    }
    // The client went away.
    if shared.frozen.load(Ordering::SeqCst) {
        shared.end(1);
    }
    drop(server);
}

/// The pump towards the client.
fn to_client(shared: &Shared, mut server: impl Read) {
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; shared.fault.chunk];
    let mut count = 0u64;
    loop {
        if shared.frozen.load(Ordering::SeqCst) {
            return;
        }
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if shared.frozen.load(Ordering::SeqCst) {
            return;
        }
        pause(shared);
        if let Some(keep) = shared.cut(Direction::ToClient, count, n)
            && shared.fire()
        {
            match shared.fault.action {
                Action::Kill => {
                    // What the server wrote before it died still arrives.
                    shared.signal(Signal::KILL);
                }
                Action::Truncate => {
                    let _ = out.write_all(&buf[..keep]);
                    let _ = out.flush();
                    shared.end(0);
                }
                Action::Stop => {
                    let _ = out.write_all(&buf[..keep]);
                    let _ = out.flush();
                    shared.signal(Signal::STOP);
                    shared.frozen.store(true, Ordering::SeqCst);
                    return;
                }
                Action::None => {}
            }
        }
        count += n as u64;
        if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
            shared.end(1);
        }
    }
}

fn pause(shared: &Shared) {
    if !shared.fault.delay.is_zero() {
        std::thread::sleep(shared.fault.delay);
    }
}
