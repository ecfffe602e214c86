//! What the real-Nix tests share: Nix's settings and commands in a private
//! store, and a blocking driver of any [`Connection`] over a child's pipes.
//!
//! Every Nix command here gets the tests' own settings ([`NIX_CONF`], through
//! `NIX_CONF_DIR`), so the machine's /etc/nix may hold anything or be absent:
//! on a fresh Debian machine without /etc/nix/nix.conf, Nix's default
//! `build-users-group = nixbld` names a group that does not exist and every
//! build fails. Every command gets `--store DIR` too (a chroot store), so
//! nothing touches the machine's /nix.
//!
//! Without `nix-store` on PATH the tests say so and pass, unless
//! `NIXWIRE_REQUIRE_NIX=1` (set by `.ci/run`), which makes that a failure.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nixwire_core::conn::{Connection, Error};

/// Every test stops on its own: no single wait is longer than this.
pub const GUARD: Duration = Duration::from_secs(120);

/// Nix's settings for every command here, whatever the machine's /etc/nix
/// says:
/// - `build-users-group =`: build as the user running the tests (root in CI)
///   instead of Nix's default `nixbld`, a group a fresh machine lacks;
/// - `sandbox = true` with `sandbox-paths`: a chroot store (`--store DIR`) is
///   always built in a sandbox whatever `sandbox` says (its store lives
///   elsewhere than /nix/store), so say so, and let the builders see `/bin/sh`
///   and its libraries;
/// - `substituters =` and `builders =`: nothing from the network, nothing
///   offloaded to the machine's build machines;
/// - `experimental-features = nix-command`: for `nix show-derivation`.
pub const NIX_CONF: &str = "\
build-users-group =
sandbox = true
sandbox-paths = /bin /lib /lib64 /usr
substituters =
builders =
experimental-features = nix-command
";

/// The tests' Nix configuration directory (written once per test binary),
/// given to every Nix command as `NIX_CONF_DIR` in place of /etc/nix.
pub fn nix_conf_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nixwire-nix-conf");
        std::fs::create_dir_all(&dir).expect("nix conf dir");
        // Written beside and renamed, so a concurrent reader never sees half.
        let tmp = dir.join(format!("nix.conf.{}", std::process::id()));
        std::fs::write(&tmp, NIX_CONF).expect("nix.conf");
        std::fs::rename(&tmp, dir.join("nix.conf")).expect("nix.conf");
        dir
    })
}

/// A command for a Nix program (or a shell that runs one) with the tests'
/// settings and none of the caller's: `NIX_CONF_DIR` replaces /etc/nix, no
/// user configuration files are read, and variables that would redirect
/// Nix elsewhere are removed.
pub fn nix_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("NIX_CONF_DIR", nix_conf_dir())
        .env("NIX_USER_CONF_FILES", "")
        .env_remove("NIX_CONFIG")
        .env_remove("NIX_REMOTE")
        .env_remove("NIX_STORE_DIR")
        .env_remove("NIX_STORE");
    cmd
}

/// Whether `nix-store` can be run, found out once per test binary: the tests
/// run in parallel, and several Nix processes creating one new store at once
/// trip over each other. Not installed: the test says so and passes, unless
/// `NIXWIRE_REQUIRE_NIX` is set. Installed but failing: the test fails.
pub fn have_nix() -> bool {
    static PROBE: OnceLock<Result<bool, String>> = OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        // With `--store`: even `--version` opens a store, by default the
        // machine's /nix (creating it).
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nixwire-store-probe");
        let _ = std::fs::remove_dir_all(&dir);
        match nix_command("nix-store")
            .arg("--store")
            .arg(&dir)
            .arg("--version")
            .output()
        {
            Ok(out) if out.status.success() => Ok(true),
            Ok(out) => Err(format!(
                "nix-store --version failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("running nix-store: {e}")),
        }
    });
    match probe {
        Ok(true) => true,
        Ok(false) => {
            assert!(
                std::env::var_os("NIXWIRE_REQUIRE_NIX").is_none(),
                "NIXWIRE_REQUIRE_NIX is set but nix-store is not on PATH"
            );
            eprintln!("nix-store not found: skipping the real-Nix test (install nix-bin)");
            false
        }
        Err(e) => panic!("{e}"),
    }
}

/// A fresh chroot store for one test.
pub fn store(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("nixwire-store-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("store dir");
    dir
}

/// The options every Nix command here gets: the private store (the rest of
/// the settings are in [`NIX_CONF`]).
pub fn nix_args(store: &Path) -> Vec<String> {
    vec!["--store".into(), store.display().to_string()]
}

enum Input {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Eof,
}

/// A blocking driver of a connection over a child's pipes, following the
/// run loop in the crate docs. Reader threads feed one channel so that
/// stdout and stderr are drained concurrently.
pub struct Driver<C: Connection> {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<Input>,
    /// The connection.
    pub conn: C,
}

impl<C: Connection> Driver<C> {
    /// Starts `program` with `args` (and the tests' Nix settings) and joins
    /// `conn` to its pipes.
    pub fn spawn(program: &str, args: &[String], conn: C) -> Self {
        let mut child = nix_command(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (tx, rx) = mpsc::channel();
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Input::Stdout(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Input::Eof);
        });
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 || tx2.send(Input::Stderr(buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            rx,
            conn,
        }
    }

    /// Writes what the connection has to send.
    pub fn flush(&mut self) {
        while let Some(out) = self.conn.poll_transmit() {
            if let Some(stdin) = self.stdin.as_mut() {
                stdin.write_all(&out).expect("write to Nix");
            }
        }
    }

    /// Runs the loop, handing every event to `on_event` (which may call the
    /// connection, e.g. to offer a body) until it returns a value.
    pub fn run<T>(
        &mut self,
        mut on_event: impl FnMut(&mut C, C::Event) -> Result<Option<T>, Error>,
    ) -> Result<T, Error> {
        loop {
            self.flush();
            while let Some(event) = self.conn.poll_event() {
                if let Some(done) = on_event(&mut self.conn, event)? {
                    self.flush();
                    return Ok(done);
                }
                self.flush();
            }
            let now = Instant::now();
            let wait = self
                .conn
                .poll_timeout()
                .map_or(GUARD, |t| t.saturating_duration_since(now).min(GUARD));
            match self.rx.recv_timeout(wait) {
                Ok(Input::Stdout(b)) => self.conn.handle_input(Instant::now(), Bytes::from(b))?,
                Ok(Input::Stderr(b)) => self.conn.handle_stderr(Instant::now(), Bytes::from(b)),
                Ok(Input::Eof) => self.conn.handle_eof(Instant::now())?,
                Err(_) => self.conn.handle_timeout(Instant::now())?,
            }
        }
    }
}

impl<C: Connection> Drop for Driver<C> {
    fn drop(&mut self) {
        // Closing stdin is how a client says goodbye.
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run_nix(program: &str, args: &[String]) -> String {
    let out = nix_command(program).args(args).output().expect("nix");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The strings of a JSON array (none if it is not one).
pub fn items(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default()
}

// A store path parsed and printed, and a one-line derivation instantiated in
// a chroot store: what the runtimes' live tests use too.
pub use nixwire_testkit::{derivation, full, store_path};
