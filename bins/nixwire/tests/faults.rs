//! Fault injection: `nixwire copy` on every runtime and both protocols,
//! through the loopback sshd to a real Nix 2.8 server wrapped in
//! `nixwire-fault` (the testkit's injector, run as the store's
//! `remote-program`), with the stream broken on purpose: the server killed
//! or the stream truncated mid-NAR, a banner before the magic, 50 MB of
//! stderr, a stopped server, a slow link, an interrupt, a wrong host key,
//! shell metacharacters in the URI.
//!
//! Each case asserts its outcome (exit code, the message the user sees),
//! bounds the time from the fault to nixwire's exit, checks that no server
//! is left behind, and checks both stores with Nix (`--verify
//! --check-contents`, every copied path valid and whole or absent). Each
//! prints one line, `FAULT case=… runtime=… protocol=… …`, for
//! docs/reliability.md.
//!
//! Without Nix or the sshd a test says why and passes, unless `CI=true` or
//! `NIXWIRE_REQUIRE_NIX=1` (see `nixwire-testkit`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nixwire_core::session::Protocol;
use nixwire_core::store::StorePath;
use nixwire_testkit as kit;
use nixwire_testkit::fault::{Action, Direction, Fault};

const RUNTIMES: [&str; 3] = ["tokio", "smol", "blocking"];
const PROTOCOLS: [Protocol; 2] = [Protocol::Serve, Protocol::Worker];

/// The big path's size: a NAR of a few MiB.
const BIG: usize = 3 << 20;
/// Where mid-NAR faults happen: past the handshake and the path infos,
/// inside the big NAR.
const MID: u64 = 1 << 20;
/// No run may take longer than this; past it the test fails as a hang.
const HANG: Duration = Duration::from_secs(60);
/// The stall timeout of the stall cases, and the margin allowed over it.
const STALL: Duration = Duration::from_secs(2);
const MARGIN: Duration = Duration::from_millis(1500);

/// The injector, built next to `nixwire` (`cargo test --workspace` builds
/// it; for `cargo test -p nixwire` it is built here once).
fn injector() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let nixwire = Path::new(env!("CARGO_BIN_EXE_nixwire"));
        let path = nixwire.with_file_name("nixwire-fault");
        if let (Some(cargo), Some(profile_dir)) = (std::env::var_os("CARGO"), nixwire.parent()) {
            let target = profile_dir.parent().expect("a target directory");
            let mut build = Command::new(cargo);
            build.args(["build", "--quiet", "-p", "nixwire-testkit", "--bin"]);
            build.arg("nixwire-fault").arg("--target-dir").arg(target);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("cargo build nixwire-fault");
            assert!(status.success(), "cannot build nixwire-fault");
        }
        assert!(path.exists(), "no injector at {}", path.display());
        path
    })
}

/// The remote program that runs the protocol's Nix server behind the
/// injector, configured by `config`.
fn injector_program(protocol: Protocol, config: &Path) -> String {
    let server = match protocol {
        Protocol::Serve => "nix-store",
        Protocol::Worker => "nix-daemon",
    };
    format!("{} {} {server}", injector().display(), config.display())
}

/// The ssh URI of the chroot store `remote` served through the injector
/// configured by `config`.
fn injected_uri(sshd: &kit::Sshd, protocol: Protocol, remote: &Path, config: &Path) -> String {
    let program = injector_program(protocol, config);
    sshd.uri(protocol, remote) + &format!("&remote-program={}", encode(&program))
}

/// The direction a mid-NAR fault breaks: the one the NAR travels, towards
/// the server when copying to the remote, towards the client otherwise.
fn towards(to_remote: bool) -> Direction {
    if to_remote {
        Direction::ToServer
    } else {
        Direction::ToClient
    }
}

/// A fault `action` on the NAR's way, [`MID`] bytes in.
fn mid_nar(to_remote: bool, action: Action) -> Fault {
    Fault {
        direction: towards(to_remote),
        after: MID,
        action,
        ..Fault::default()
    }
}

/// Runs `case` for both protocols, copying each way: the cases whose
/// fault can strike either direction of the stream.
fn each_way(mut case: impl FnMut(Protocol, bool)) {
    for protocol in PROTOCOLS {
        for to_remote in [true, false] {
            case(protocol, to_remote);
        }
    }
}

/// No server is left running for the remote store `remote`.
fn assert_none_left(remote: &Path, what: &str) {
    let left = kit::wait_gone(&remote.display().to_string(), Duration::from_secs(10));
    assert!(left.is_empty(), "{what}: processes left: {left:?}");
}

/// Bytes that do not compress (ssh -C must not hide the size).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Adds the two test paths to the chroot store `root` (a small one and a
/// big one); they are content-addressed, so the same in every store.
fn add_paths(dir: &Path, root: &Path) -> Vec<StorePath> {
    let files = [
        ("fault-small", noise(1000, 1)),
        ("fault-big", noise(BIG, 2)),
    ];
    files
        .iter()
        .map(|(name, data)| {
            let file = dir.join(name);
            std::fs::write(&file, data).expect("write");
            let out = kit::run_nix(
                "nix-store",
                &[
                    "--store",
                    &root.display().to_string(),
                    "--add",
                    &file.display().to_string(),
                ],
            );
            kit::store_path(&out)
        })
        .collect()
}

/// What one run of a case is.
struct Run<'a> {
    case: &'a str,
    runtime: &'a str,
    protocol: Protocol,
    /// True: copy from the local store to the remote (bytes towards the
    /// server); false: from the remote into the local store.
    to_remote: bool,
    fault: Fault,
    stall: Option<Duration>,
    /// Another pinned host key (base64 of a key line).
    host_key: Option<String>,
    /// The remote store's directory name (the case's own characters).
    remote_name: String,
    /// Replaces the remote program (the injector is not used).
    remote_program: Option<String>,
    /// Sends SIGINT once the injector has recorded its count.
    interrupt: bool,
}

impl<'a> Run<'a> {
    fn new(case: &'a str, runtime: &'a str, protocol: Protocol, to_remote: bool) -> Self {
        Self {
            case,
            runtime,
            protocol,
            to_remote,
            fault: Fault::default(),
            stall: None,
            host_key: None,
            remote_name: "remote".into(),
            remote_program: None,
            interrupt: false,
        }
    }
}

/// What a run gave.
struct Outcome {
    code: Option<i32>,
    stderr: String,
    /// From the fault (the injector's record, or the interrupt) to exit.
    detect: Option<Duration>,
    total: Duration,
    /// Whether the injector started at all.
    started: bool,
    local: PathBuf,
    remote: PathBuf,
    paths: Vec<StorePath>,
    dir: PathBuf,
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Serve => "ssh",
        Protocol::Worker => "ssh-ng",
    }
}

/// Percent-encodes a URI parameter's value.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Runs one case: stores made, the injector configured, `nixwire copy`
/// run (and interrupted, if asked) under the hang limit; then the stores
/// checked and no server left behind.
fn run(sshd: &kit::Sshd, r: Run<'_>) -> Outcome {
    let dir = kit::scratch(&format!(
        "fault-{}-{}-{}-{}",
        r.case,
        r.runtime,
        protocol_name(r.protocol),
        if r.to_remote { "to" } else { "from" }
    ));
    let local = dir.join("local");
    let remote = dir.join(&r.remote_name);
    let paths = add_paths(&dir, if r.to_remote { &local } else { &remote });
    // Both stores made before the copy: a fresh chroot store's database is
    // created by its first client, which on a loaded machine can take
    // longer than a stall timeout.
    for root in [&local, &remote] {
        kit::is_valid(root, &paths[0]);
    }
    let record = dir.join("fault-at");
    let marker = dir.join("started");
    let config = dir.join("fault.conf");
    let mut fault = r.fault.clone();
    fault.record = Some(record.clone());
    fault.marker = Some(marker.clone());
    std::fs::write(&config, fault.to_config()).expect("config");
    let program = r
        .remote_program
        .clone()
        .unwrap_or_else(|| injector_program(r.protocol, &config));
    let base = match &r.host_key {
        Some(key) => sshd.uri_with_key(r.protocol, &dir, key),
        None => sshd.uri(r.protocol, &dir),
    };
    // The remote store in the URI, encoded (the case may put anything in
    // its name).
    let uri = base.replacen(
        &format!("remote-store={}", dir.display()),
        &format!("remote-store={}", encode(&remote.display().to_string())),
        1,
    ) + &format!("&remote-program={}", encode(&program));

    let local_s = local.display().to_string();
    let mut args: Vec<String> = vec!["copy".into(), "--runtime".into(), r.runtime.into()];
    if r.to_remote {
        args.extend(["--from-store".into(), local_s.clone(), "--to".into(), uri]);
    } else {
        args.extend(["--from".into(), uri, "--to-store".into(), local_s.clone()]);
    }
    if let Some(stall) = r.stall {
        args.extend(["--stall-timeout".into(), format!("{}", stall.as_secs_f64())]);
    }
    args.extend(paths.iter().map(kit::full));
    let stderr_file = dir.join("stderr");
    // Short: the ssh control socket under it must fit a socket address.
    let tmp = std::env::temp_dir().join(format!("nwf{}", kit::unique_number()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nixwire"))
        .args(&args)
        .envs(kit::nix_env())
        .env_remove("NIX_SSHOPTS")
        // Its own temporary directory: the ssh masters and control
        // sockets it makes are found (and must be gone) by that path.
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).expect("stderr file"))
        .spawn()
        .expect("run nixwire");
    let mut interrupted_at = None;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if r.interrupt && interrupted_at.is_none() && record.exists() {
            interrupted_at = Some(now_nanos());
            // The shell's own `kill`: a fresh machine may lack procps.
            let kill = Command::new("/bin/sh")
                .args(["-c", &format!("kill -INT {}", child.id())])
                .status()
                .expect("kill -INT");
            assert!(kill.success());
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {} {}: nixwire copy hung ({:?}): {}",
                r.case,
                r.runtime,
                protocol_name(r.protocol),
                HANG,
                std::fs::read_to_string(&stderr_file).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let exited = now_nanos();
    let total = start.elapsed();
    let fault_at = interrupted_at.or_else(|| {
        std::fs::read_to_string(&record)
            .ok()
            .and_then(|t| t.trim().parse::<u128>().ok())
    });
    let detect = fault_at.map(|at| {
        Duration::from_nanos(u64::try_from(exited.saturating_sub(at)).unwrap_or(u64::MAX))
    });
    let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
    // No server is left running for the remote store (a stopped one is
    // killed by the injector when its client goes away).
    let left = kit::wait_gone(&remote.display().to_string(), Duration::from_secs(10));
    let left: Vec<u32> = left
        .into_iter()
        .chain(kit::wait_gone(
            &tmp.display().to_string(),
            Duration::from_secs(10),
        ))
        .collect();
    assert!(
        left.is_empty(),
        "{} {} {}: processes left for the remote store or its ssh master: {left:?}",
        r.case,
        r.runtime,
        protocol_name(r.protocol)
    );
    let _ = std::fs::remove_dir_all(&tmp);
    Outcome {
        code: status.code(),
        stderr,
        detect,
        total,
        started: marker.exists(),
        local,
        remote,
        paths,
        dir,
    }
}

/// Both stores pass Nix's own check, and every test path is, in each,
/// either valid and whole or absent. Returns how many are valid in the
/// destination.
fn verify_stores(o: &Outcome, to_remote: bool, what: &str) -> usize {
    let mut valid_in_dest = 0;
    for (root, is_dest) in [(&o.local, !to_remote), (&o.remote, to_remote)] {
        if !root.exists() {
            continue;
        }
        let out = kit::verify_store(root);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("invalid") && !stderr.contains("modified"),
            "{what}: {} fails --verify --check-contents: {stderr}",
            root.display()
        );
        for path in &o.paths {
            if kit::is_valid(root, path) {
                assert!(
                    kit::verify_path(root, &kit::full(path)).is_ok(),
                    "{what}: {path} is valid but not whole"
                );
                if is_dest {
                    valid_in_dest += 1;
                }
            }
        }
    }
    valid_in_dest
}

/// The one parseable line of a case; then the case's scratch directory
/// is removed (it stays when an assertion failed first, to be looked at).
fn report(r_case: &str, runtime: &str, protocol: Protocol, to_remote: bool, o: &Outcome) {
    let ms = |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), |d| d.as_millis().to_string());
    let first = o
        .stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("nixwire:"))
        .unwrap_or("")
        .replace('"', "'");
    // The store URI (long, and the same in every line) as STORE.
    let mut first = first;
    while let Some(at) = first.find("ssh://").or_else(|| first.find("ssh-ng://")) {
        let end = first[at..].find(": ").map_or(first.len(), |e| at + e);
        first = format!("{}STORE{}", &first[..at], &first[end..]);
    }
    let error: String = first.chars().take(300).collect();
    println!(
        "FAULT case={r_case} runtime={runtime} protocol={} direction={} exit={} detect_ms={} total_ms={} verified=yes error=\"{error}\"",
        protocol_name(protocol),
        if to_remote {
            "to-remote"
        } else {
            "from-remote"
        },
        o.code
            .map_or_else(|| "signal".to_owned(), |c| c.to_string()),
        ms(o.detect),
        o.total.as_millis(),
    );
    let _ = std::fs::remove_dir_all(&o.dir);
}

/// Runs `case` for every runtime in turn: the cases that time a stall
/// timeout, where a loaded machine (a fresh chroot store's daemon slow to
/// answer its first request) must not be mistaken for a stall.
fn each_runtime_in_turn(case: impl Fn(&'static str)) {
    for runtime in RUNTIMES {
        case(runtime);
    }
}

/// Runs `case` for every runtime at once (each run has its own stores;
/// a panic in one fails the test): the cases with no stall timeout.
fn each_runtime(case: impl Fn(&'static str) + Sync) {
    std::thread::scope(|s| {
        for runtime in RUNTIMES {
            let case = &case;
            s.spawn(move || case(runtime));
        }
    });
}

fn setup() -> Option<kit::Sshd> {
    if !kit::have_nix() {
        return None;
    }
    let sshd = kit::Sshd::from_env()?;
    injector();
    Some(sshd)
}

/// A fault that ends the stream must fail the copy quickly, in one line,
/// and leave nothing half registered.
fn broken_stream(case: &str, action: Action) {
    let Some(sshd) = setup() else { return };
    each_runtime(|runtime| {
        each_way(|protocol, to_remote| {
            let mut r = Run::new(case, runtime, protocol, to_remote);
            r.fault = mid_nar(to_remote, action);
            let o = run(&sshd, r);
            let what = format!("{case} {runtime} {}", protocol_name(protocol));
            assert_eq!(o.code, Some(1), "{what}: {}", o.stderr);
            assert!(
                o.stderr.contains("nixwire: copy:"),
                "{what}: no error line: {}",
                o.stderr
            );
            let Some(detect) = o.detect else {
                panic!("{what}: failed before the fault: {}", o.stderr)
            };
            assert!(detect < Duration::from_secs(5), "{what}: {detect:?}");
            let valid = verify_stores(&o, to_remote, &what);
            // The big path did not arrive whole: it is absent.
            assert!(valid < o.paths.len(), "{what}: all copied?");
            report(case, runtime, protocol, to_remote, &o);
        });
    });
}

#[test]
fn a_server_killed_mid_nar_fails_the_copy_and_registers_nothing() {
    broken_stream("kill-mid-nar", Action::Kill);
}

#[test]
fn a_stream_truncated_mid_nar_fails_the_copy_and_registers_nothing() {
    broken_stream("truncate-mid-nar", Action::Truncate);
}

#[test]
fn a_banner_before_the_magic_is_shown_in_the_error() {
    let Some(sshd) = setup() else { return };
    each_runtime(|runtime| {
        for protocol in PROTOCOLS {
            let mut r = Run::new("banner", runtime, protocol, true);
            r.fault.banner = Some("hello from .bashrc\n".into());
            let o = run(&sshd, r);
            let what = format!("banner {runtime} {}", protocol_name(protocol));
            assert_eq!(o.code, Some(1), "{what}: {}", o.stderr);
            assert!(
                o.stderr.contains("hello from .bashrc"),
                "{what}: the banner is not shown: {}",
                o.stderr
            );
            verify_stores(&o, true, &what);
            assert!(o.total < Duration::from_secs(10), "{what}: {:?}", o.total);
            report("banner", runtime, protocol, true, &o);
        }
    });
}

#[test]
fn a_stopped_server_is_given_up_after_the_stall_timeout() {
    let Some(sshd) = setup() else { return };
    each_runtime_in_turn(|runtime| {
        each_way(|protocol, to_remote| {
            let mut r = Run::new("stop-mid-nar", runtime, protocol, to_remote);
            r.fault = mid_nar(to_remote, Action::Stop);
            r.stall = Some(STALL);
            let o = run(&sshd, r);
            let what = format!("stop {runtime} {}", protocol_name(protocol));
            assert_eq!(o.code, Some(1), "{what}: {}", o.stderr);
            let Some(detect) = o.detect else {
                panic!("{what}: failed before the fault: {}", o.stderr)
            };
            // Towards the server, the client stops getting rid of bytes
            // a little after the fault (ssh and the pipes buffer); from
            // the server, the last byte arrives just before it.
            assert!(
                detect < STALL + MARGIN && o.stderr.contains("timed out after 2.0s"),
                "{what}: detected after {detect:?}: {}",
                o.stderr
            );
            let valid = verify_stores(&o, to_remote, &what);
            assert!(valid < o.paths.len(), "{what}: all copied?");
            report("stop-mid-nar", runtime, protocol, to_remote, &o);
        });
    });
}

#[test]
fn fifty_megabytes_of_stderr_with_stdout_idle_do_not_deadlock() {
    let Some(sshd) = setup() else { return };
    each_runtime(|runtime| {
        for protocol in PROTOCOLS {
            let mut r = Run::new("stderr-flood", runtime, protocol, true);
            r.fault.stderr_flood = 50 << 20;
            let o = run(&sshd, r);
            let what = format!("stderr-flood {runtime} {}", protocol_name(protocol));
            assert_eq!(o.code, Some(0), "{what}: {}", tail(&o.stderr));
            let valid = verify_stores(&o, true, &what);
            assert_eq!(valid, o.paths.len(), "{what}: not all copied");
            report("stderr-flood", runtime, protocol, true, &o);
        }
    });
}

/// The last lines of a long text.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

#[test]
fn a_slow_link_completes_under_a_stall_timeout_shorter_than_the_transfer() {
    let Some(sshd) = setup() else { return };
    each_runtime_in_turn(|runtime| {
        each_way(|protocol, to_remote| {
            let mut r = Run::new("slow-link", runtime, protocol, to_remote);
            // 16 KiB every 10 ms each way: the 3 MiB NAR takes about 2 s
            // longer than the stall timeout allows for silence.
            r.fault.delay = Duration::from_millis(10);
            r.fault.chunk = 16 << 10;
            r.stall = Some(STALL);
            let o = run(&sshd, r);
            let what = format!("slow-link {runtime} {}", protocol_name(protocol));
            assert_eq!(o.code, Some(0), "{what}: {}", o.stderr);
            assert!(o.total > STALL, "{what}: not slow: {:?}", o.total);
            let valid = verify_stores(&o, to_remote, &what);
            assert_eq!(valid, o.paths.len(), "{what}: not all copied");
            report("slow-link", runtime, protocol, to_remote, &o);
        });
    });
}

#[test]
fn an_interrupt_mid_transfer_registers_nothing_and_leaves_nothing_running() {
    let Some(sshd) = setup() else { return };
    each_runtime_in_turn(|runtime| {
        each_way(|protocol, to_remote| {
            let mut r = Run::new("sigint-mid-nar", runtime, protocol, to_remote);
            // A slow link, and SIGINT once 64 KiB of the big NAR have
            // passed the injector: towards the server, ssh's window
            // (2 MiB) and the pipes hold less than the rest, so nixwire
            // is still sending.
            r.fault = Fault {
                direction: towards(to_remote),
                after: 64 << 10,
                delay: Duration::from_millis(10),
                chunk: 16 << 10,
                ..Fault::default()
            };
            r.interrupt = true;
            let o = run(&sshd, r);
            let what = format!("sigint {runtime} {}", protocol_name(protocol));
            // Killed by the signal (copy has no handler) or exit 130.
            assert!(
                o.code.is_none() || o.code == Some(130),
                "{what}: {:?} {}",
                o.code,
                o.stderr
            );
            let detect = o.detect.expect("interrupted");
            assert!(detect < Duration::from_secs(2), "{what}: {detect:?}");
            let valid = verify_stores(&o, to_remote, &what);
            assert!(valid < o.paths.len(), "{what}: all copied?");
            report("sigint-mid-nar", runtime, protocol, to_remote, &o);
        });
    });
}

/// A host key that is not the sshd's (an ed25519 key made for this test).
const OTHER_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGAonZwESmmj6nymtMZkRQ3LM6QkHKcqBTU/HZOdsp9a other";

#[test]
fn a_wrong_pinned_host_key_is_refused_before_the_remote_program_runs() {
    let Some(sshd) = setup() else { return };
    each_runtime(|runtime| {
        for protocol in PROTOCOLS {
            let mut r = Run::new("wrong-host-key", runtime, protocol, true);
            r.host_key = Some(kit::host_key_base64(OTHER_KEY));
            let o = run(&sshd, r);
            let what = format!("wrong-host-key {runtime} {}", protocol_name(protocol));
            assert_eq!(o.code, Some(1), "{what}: {}", o.stderr);
            assert!(!o.started, "{what}: the remote program ran");
            assert!(o.stderr.contains("cannot open"), "{what}: {}", o.stderr);
            verify_stores(&o, true, &what);
            report("wrong-host-key", runtime, protocol, true, &o);
        }
    });
}

#[test]
fn shell_metacharacters_in_the_uri_never_reach_a_shell() {
    let Some(sshd) = setup() else { return };
    let pwned = |dir: &Path| dir.join("pwned");
    each_runtime(|runtime| {
        for protocol in PROTOCOLS {
            let what = format!("{runtime} {}", protocol_name(protocol));
            // remote-store: a directory named with every metacharacter; the
            // copy works into that odd directory, and no command ran.
            let base = kit::scratch(&format!("fault-meta-{runtime}-{}", protocol_name(protocol)));
            let mark = pwned(&base);
            let m = mark.display();
            let name = format!("r;touch {m};$(touch {m})`touch {m}` '\"q\" sp ace\nline");
            let mut r = Run::new("meta-remote-store", runtime, protocol, true);
            r.remote_name = name.clone();
            let o = run(&sshd, r);
            assert_eq!(o.code, Some(0), "{what}: {}", o.stderr);
            assert!(!mark.exists(), "{what}: a shell ran a command");
            let valid = verify_stores(&o, true, &what);
            assert_eq!(valid, o.paths.len(), "{what}: not all copied");
            assert!(o.remote.ends_with(&name));
            report("meta-remote-store", runtime, protocol, true, &o);

            // remote-program: the words are the program and its arguments,
            // quoted; the program does not exist, which is what the user
            // is told.
            let mut r = Run::new("meta-remote-program", runtime, protocol, true);
            r.remote_program = Some(format!(
                "nix-store;touch${{IFS}}{m} $(touch${{IFS}}{m}) `touch${{IFS}}{m}`"
            ));
            let o = run(&sshd, r);
            assert_eq!(o.code, Some(1), "{what}: {}", o.stderr);
            assert!(!mark.exists(), "{what}: a shell ran a command");
            assert!(
                o.stderr.contains("not found") || o.stderr.contains("No such file"),
                "{what}: {}",
                o.stderr
            );
            verify_stores(&o, true, &what);
            report("meta-remote-program", runtime, protocol, true, &o);
            let _ = std::fs::remove_dir_all(&base);
        }
    });
}

/// What a cancelled store does next: the operation after the cancel.
fn after_cancel(
    nar: Result<u64, nixwire_core::runtime::Error>,
    next: Result<Vec<StorePath>, nixwire_core::runtime::Error>,
    want: nixwire_core::conn::ErrorClass,
    what: &str,
) {
    let error = nar.expect_err("cancelled or timed out");
    assert_eq!(error.class(), want, "{what}: {error}");
    // Poisoned: never a reply read from the middle of the broken NAR
    // (Hydra c2b21bd8 put such a connection back in its pool).
    let next = next.expect_err(&format!("{what}: the broken connection answered"));
    assert_eq!(next.class(), want, "{what}: {next}");
}

#[test]
fn a_cancelled_nar_stream_poisons_the_connection_on_every_runtime() {
    let Some(sshd) = setup() else { return };
    each_runtime_in_turn(|runtime| {
        for protocol in PROTOCOLS {
            store_api_case(&sshd, runtime, protocol, false);
        }
    });
}

#[test]
fn a_stalled_nar_stream_times_out_and_poisons_the_connection_on_every_runtime() {
    let Some(sshd) = setup() else { return };
    each_runtime_in_turn(|runtime| {
        for protocol in PROTOCOLS {
            store_api_case(&sshd, runtime, protocol, true);
        }
    });
}

/// `nar_from_path` through a runtime's `Store`, broken 1 MiB in: by the
/// `Canceller` (on a slow link), or (`stall`) by a stopped server under a
/// 2 s stall timeout. The operation fails with `Cancelled` or `Timeout`,
/// the next request on that store fails the same way, `abort()` leaves no
/// server, and the remote store is whole.
fn store_api_case(sshd: &kit::Sshd, runtime: &'static str, protocol: Protocol, stall: bool) {
    let case = if stall { "stall-api" } else { "cancel-api" };
    let want = if stall {
        nixwire_core::conn::ErrorClass::Timeout
    } else {
        nixwire_core::conn::ErrorClass::Cancelled
    };
    let what = format!("{case} {runtime} {}", protocol_name(protocol));
    let dir = kit::scratch(&format!(
        "fault-{case}-{runtime}-{}",
        protocol_name(protocol)
    ));
    let remote = dir.join("remote");
    let paths = add_paths(&dir, &remote);
    let record = dir.join("fault-at");
    let config = dir.join("fault.conf");
    let fault = if stall {
        Fault {
            direction: Direction::ToClient,
            after: MID,
            action: Action::Stop,
            record: Some(record.clone()),
            ..Fault::default()
        }
    } else {
        Fault {
            direction: Direction::ToClient,
            after: MID,
            delay: Duration::from_millis(10),
            chunk: 16 << 10,
            record: Some(record.clone()),
            ..Fault::default()
        }
    };
    std::fs::write(&config, fault.to_config()).expect("config");
    let uri = injected_uri(sshd, protocol, &remote, &config);
    let mut options = nixwire_core::runtime::Options::default();
    // The peer is still sending the NAR when the store is
    // aborted; it is killed after this.
    options.exit_grace = Duration::from_secs(1);
    if stall {
        options.stall_timeout = Some(STALL);
    }
    let big = &paths[1];
    // Cancels (or, for a stall, only notes) once the injector has
    // passed 1 MiB of the NAR; when.
    let watch = |cancel: Box<dyn FnOnce() + Send>| {
        let cancel: Box<dyn FnOnce() + Send> = if stall { Box::new(|| {}) } else { cancel };
        let record = record.clone();
        std::thread::spawn(move || {
            let end = Instant::now() + HANG;
            while !record.exists() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            cancel();
            Instant::now()
        })
    };
    let (cancelled_at, returned_at) = match runtime {
        "tokio" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio");
            rt.block_on(async {
                let mut store = nixwire_tokio::Store::open(&uri, &options)
                    .await
                    .expect("open");
                let c = store.canceller();
                let watcher = watch(Box::new(move || c.cancel()));
                let nar = store.nar_from_path(big, &mut tokio::io::sink()).await;
                let returned = Instant::now();
                let next = store.query_valid_paths(&paths).await;
                after_cancel(nar, next, want, &what);
                let _ = store.abort().await;
                (watcher.join().expect("watcher"), returned)
            })
        }
        "smol" => smol::block_on(async {
            let mut store = nixwire_smol::Store::open(&uri, &options)
                .await
                .expect("open");
            let c = store.canceller();
            let watcher = watch(Box::new(move || c.cancel()));
            let nar = store.nar_from_path(big, &mut smol::io::sink()).await;
            let returned = Instant::now();
            let next = store.query_valid_paths(&paths).await;
            after_cancel(nar, next, want, &what);
            let _ = store.abort().await;
            (watcher.join().expect("watcher"), returned)
        }),
        _ => {
            let mut store = nixwire_blocking::Store::open(&uri, &options).expect("open");
            let c = store.canceller();
            let watcher = watch(Box::new(move || c.cancel()));
            let nar = store.nar_from_path(big, &mut std::io::sink());
            let returned = Instant::now();
            let next = store.query_valid_paths(&paths);
            after_cancel(nar, next, want, &what);
            let _ = store.abort();
            (watcher.join().expect("watcher"), returned)
        }
    };
    let detect = returned_at.saturating_duration_since(cancelled_at);
    let bound = if stall {
        STALL + MARGIN
    } else {
        Duration::from_secs(1)
    };
    assert!(detect < bound, "{what}: {detect:?}");
    assert_none_left(&remote, &what);
    let o = Outcome {
        code: None,
        stderr: String::new(),
        detect: Some(detect),
        total: Duration::ZERO,
        started: true,
        local: dir.join("none"),
        remote,
        paths,
        dir,
    };
    verify_stores(&o, false, &what);
    println!(
        "FAULT case={case} runtime={runtime} protocol={} direction=from-remote exit=- detect_ms={} total_ms=- verified=yes error=\"{want:?}, then {want:?} for the next request\"",
        protocol_name(protocol),
        detect.as_millis()
    );
    let _ = std::fs::remove_dir_all(&o.dir);
}

/// `nixwire build` whose machine dies while the output comes back: each
/// try fails in one line, the build ends with exit 1 after its retries
/// (it hung for good when the worker reused its local-store connection,
/// left in the middle of the failed output's NAR), and the local store
/// holds no part of the output.
#[test]
fn a_build_whose_output_download_dies_fails_after_its_retries_and_never_hangs() {
    let Some(sshd) = setup() else { return };
    each_runtime(|runtime| {
        for protocol in PROTOCOLS {
            let what = format!("build-kill-output {runtime} {}", protocol_name(protocol));
            let dir = kit::scratch(&format!(
                "fault-build-{runtime}-{}",
                protocol_name(protocol)
            ));
            let local = dir.join("local");
            let remote = dir.join("remote");
            let (drv_path, drv) = kit::derivation(
                &local,
                "fault-bigout",
                "/usr/bin/head -c 3000000 /dev/urandom > $out",
            );
            let output = drv.outputs[0].path.clone().expect("an output path");
            let config = dir.join("fault.conf");
            let fault = Fault {
                direction: Direction::ToClient,
                after: MID,
                action: Action::Kill,
                record: Some(dir.join("fault-at")),
                ..Fault::default()
            };
            std::fs::write(&config, fault.to_config()).expect("config");
            let uri = injected_uri(&sshd, protocol, &remote, &config);
            let start = Instant::now();
            let mut child = Command::new(env!("CARGO_BIN_EXE_nixwire"))
                .args([
                    "build",
                    "--runtime",
                    runtime,
                    "--store",
                    &uri,
                    "--local-store",
                ])
                .arg(&local)
                .arg(kit::full(&drv_path))
                .envs(kit::nix_env())
                .env_remove("NIX_SSHOPTS")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr"))
                .spawn()
                .expect("nixwire build");
            let status = loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    break status;
                }
                if start.elapsed() > HANG {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{what}: nixwire build hung");
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            let total = start.elapsed();
            let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
            assert_eq!(status.code(), Some(1), "{what}: {stderr}");
            let tries = stderr
                .matches("the connection failed while receiving outputs")
                .count();
            assert!(tries >= 2, "{what}: retried? {stderr}");
            assert!(
                !kit::is_valid(&local, &output),
                "{what}: the output is here"
            );
            assert_none_left(&remote, &what);
            let o = Outcome {
                code: status.code(),
                stderr,
                detect: None,
                total,
                started: true,
                local,
                remote,
                paths: vec![output],
                dir,
            };
            verify_stores(&o, false, &what);
            report("build-kill-output", runtime, protocol, false, &o);
        }
    });
}
