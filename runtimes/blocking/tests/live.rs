//! `nixwire-blocking` against real Nix (Debian's `nix-bin`): `nix-store --serve
//! --write` and `nix-daemon --stdio`, each run here as a child and through
//! the loopback sshd of `.ci/sshd.sh`, every server with a chroot store of
//! its own (so client and server are two stores).
//!
//! Without Nix or the sshd a test says why and passes, unless `CI=true` or
//! `NIXWIRE_REQUIRE_NIX=1` (see `nixwire-testkit`).

use std::path::Path;
use std::time::{Duration, Instant};

use nixwire_blocking::Store;
use nixwire_core::conn::ErrorClass;
use nixwire_core::runtime::{Error, Options, Plan};
use nixwire_core::session::{BuildSettings, Op, Protocol};
use nixwire_core::store::BuildStatus;
use nixwire_testkit as kit;

/// Where a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A child process here.
    Local,
    /// Through the loopback sshd.
    Ssh,
}

const PROTOCOLS: [Protocol; 2] = [Protocol::Serve, Protocol::Worker];

fn options() -> Options {
    let mut options = Options::default();
    options.env = kit::nix_env();
    options.connect_timeout = Some(Duration::from_secs(30));
    options
}

/// The places servers can run here: always locally with Nix; through ssh
/// when the sshd is up.
fn places() -> Vec<Via> {
    if !kit::have_nix() {
        return Vec::new();
    }
    let mut v = vec![Via::Local];
    if kit::Sshd::from_env().is_some() {
        v.push(Via::Ssh);
    }
    v
}

/// Opens the server of `protocol` on the chroot store `root`.
fn open(protocol: Protocol, via: Via, root: &Path) -> Result<Store, Error> {
    open_with(protocol, via, root, &options())
}

/// The same with `options`.
fn open_with(protocol: Protocol, via: Via, root: &Path, options: &Options) -> Result<Store, Error> {
    match via {
        Via::Local => {
            let (program, args) = kit::local_server(protocol, root);
            let plan = Plan::Process {
                program,
                args,
                protocol,
            };
            Store::open_plan(&plan, options)
        }
        Via::Ssh => {
            let sshd = kit::Sshd::from_env().expect("sshd");
            Store::open(&sshd.uri(protocol, root), options)
        }
    }
}

#[test]
fn ping_says_protocol_version_and_trust() {
    {
        for via in places() {
            for protocol in PROTOCOLS {
                let root = kit::scratch(&format!("ping-{protocol}-{via:?}"));
                let store = open(protocol, via, &root).expect("open");
                let info = store.info().clone();
                assert_eq!(info.protocol, protocol);
                match protocol {
                    // Nix 2.8 speaks serve 2.7 and worker 1.34.
                    Protocol::Serve => assert!(info.version.major == 2, "{info:?}"),
                    Protocol::Worker => {
                        assert!(info.version.major == 1, "{info:?}");
                        assert!(info.version.minor >= 21, "{info:?}");
                    }
                }
                store.close().expect("close");
            }
        }
    }
}

#[test]
fn a_closure_is_copied_to_a_server_and_back() {
    {
        for via in places() {
            for protocol in PROTOCOLS {
                let name = format!("copy-{protocol}-{via:?}");
                let here = kit::scratch(&format!("{name}-here"));
                let there = kit::scratch(&format!("{name}-there"));
                let back = kit::scratch(&format!("{name}-back"));
                let closure = kit::small_closure(&here, &name.to_lowercase());

                let mut source = open(Protocol::Serve, Via::Local, &here).expect("source");
                let mut server = open(protocol, via, &there).expect("server");
                copy(&mut source, &mut server, &closure);
                for path in &closure {
                    assert!(kit::is_valid(&there, path), "{path} copied to the server");
                }
                // Pipelined: both queries are in flight before either answer
                // is read, and are awaited out of order.
                let a = server
                    .start(Op::QueryValidPaths {
                        paths: closure.clone(),
                        substitute: false,
                    })
                    .expect("start");
                let b = server
                    .start(Op::QueryPathInfos {
                        paths: closure.clone(),
                    })
                    .expect("start");
                let infos = server.wait(b).expect("infos");
                let valid = server.wait(a).expect("valid");
                assert!(format!("{valid:?}").contains(&closure[1].to_string()));
                assert!(format!("{infos:?}").contains(&closure[0].to_string()));

                let mut sink = open(Protocol::Worker, Via::Local, &back).expect("sink");
                copy(&mut server, &mut sink, &closure);
                for path in &closure {
                    assert!(kit::is_valid(&back, path), "{path} copied back");
                }
                for store in [source, server, sink] {
                    store.close().expect("close");
                }
            }
        }
    }
}

/// Copies `closure` (dependencies first) from one store to another, each
/// NAR streamed through a pipe between the two connections.
fn copy(from: &mut Store, to: &mut Store, closure: &[nixwire_core::store::StorePath]) {
    let infos = from.query_path_infos(closure).expect("path infos");
    assert_eq!(
        infos.len(),
        closure.len(),
        "every path is valid at the source"
    );
    for (path, info) in infos {
        let mut nar = Vec::new();
        let size = from.nar_from_path(&path, &mut nar).expect("NAR out");
        assert_eq!(size, info.nar_size, "the NAR has the size its info says");
        to.add_to_store_nar(&path, &info, &mut nar.as_slice())
            .expect("NAR in");
    }
}

#[test]
fn a_closure_is_added_in_one_request() {
    {
        for via in places() {
            for protocol in PROTOCOLS {
                let name = format!("multi-{protocol}-{via:?}");
                let here = kit::scratch(&format!("{name}-here"));
                let there = kit::scratch(&format!("{name}-there"));
                let closure = kit::small_closure(&here, &name.to_lowercase());
                let mut source = open(Protocol::Serve, Via::Local, &here).expect("source");
                let mut server = open(protocol, via, &there).expect("server");
                // Dependencies first, every NAR one after another in one
                // reader, as `nixwire copy` streams them.
                let infos = source.query_path_infos(&closure).expect("path infos");
                assert_eq!(infos.len(), closure.len());
                let mut nars = Vec::new();
                for (path, _) in &infos {
                    source.nar_from_path(path, &mut nars).expect("NAR out");
                }
                server
                    .add_multiple(&infos, &mut nars.as_slice())
                    .expect("NARs in");
                for path in &closure {
                    assert!(kit::is_valid(&there, path), "{path} added ({name})");
                }
                for store in [source, server] {
                    store.close().expect("close");
                }
            }
        }
    }
}

#[test]
fn a_build_streams_its_log_while_it_runs() {
    {
        for via in places() {
            for protocol in PROTOCOLS {
                let name = format!("log-{protocol}-{via:?}").to_lowercase();
                let root = kit::scratch(&name);
                let (drv_path, drv) = kit::derivation(
                    &root,
                    &name,
                    "echo first-line; /bin/sleep 2; echo second-line; echo done > $out",
                );
                let mut store = open(protocol, via, &root).expect("open");
                let start = Instant::now();
                let mut seen = Vec::new();
                let result = store
                    .build_derivation(&drv_path, &drv, BuildSettings::default(), |log| {
                        seen.push((
                            start.elapsed(),
                            String::from_utf8_lossy(&log.text).into_owned(),
                        ));
                    })
                    .expect("build");
                let total = start.elapsed();
                assert!(result.status.is_success(), "{result:?}");
                let first = seen
                    .iter()
                    .find(|(_, text)| text.contains("first-line"))
                    .unwrap_or_else(|| panic!("no first line in {seen:?}"));
                assert!(
                    total - first.0 >= Duration::from_secs(1),
                    "the first line came {:?} into a build of {total:?}: not while it ran",
                    first.0
                );
                assert!(
                    seen.iter().any(|(_, t)| t.contains("second-line")),
                    "{seen:?}"
                );
                store.close().expect("close");
            }
        }
    }
}

#[test]
fn a_failing_build_gives_its_status_and_message() {
    {
        for via in places() {
            for protocol in PROTOCOLS {
                let name = format!("fail-{protocol}-{via:?}").to_lowercase();
                let root = kit::scratch(&name);
                let (drv_path, drv) = kit::derivation(&root, &name, "echo about-to-fail; exit 3");
                let mut store = open(protocol, via, &root).expect("open");
                let mut logs = String::new();
                let result = store
                    .build_derivation(&drv_path, &drv, BuildSettings::default(), |log| {
                        logs.push_str(&String::from_utf8_lossy(&log.text));
                    })
                    .expect("a failed build is a result");
                assert!(!result.status.is_success(), "{result:?}");
                assert_eq!(result.status, BuildStatus::PermanentFailure, "{result:?}");
                let message = String::from_utf8_lossy(result.error_msg.as_bytes()).into_owned();
                assert!(message.contains("failed"), "{message}");
                assert!(logs.contains("about-to-fail"), "{logs}");
                store.close().expect("close");
            }
        }
    }
}

#[test]
fn a_cancelled_build_leaves_no_builder_behind() {
    {
        for via in places() {
            for protocol in PROTOCOLS {
                let name = format!("cancel-{protocol}-{via:?}").to_lowercase();
                let root = kit::scratch(&name);
                // A sleep no other process has: how the builder is found.
                let marker = kit::unique_number().to_string();
                let (drv_path, drv) = kit::derivation(
                    &root,
                    &name,
                    &format!("echo started; exec /bin/sleep {marker}"),
                );
                let mut store = open(protocol, via, &root).expect("open");
                // Cancelled from another thread once the builder runs.
                let canceller = store.canceller();
                let builder = format!("/bin/sleep {marker}");
                let watcher = std::thread::spawn(move || {
                    let seen = kit::wait_for(&builder, Duration::from_secs(30));
                    canceller.cancel();
                    seen
                });
                let outcome =
                    store.build_derivation(&drv_path, &drv, BuildSettings::default(), |_| {});
                let started = watcher.join().expect("watcher");
                let error = outcome.expect_err("cancelled");
                assert_eq!(error.class(), ErrorClass::Cancelled, "{error}");
                assert!(started, "the builder ran before the cancel");
                let _ = store.abort();
                let left = kit::wait_gone(&format!("/bin/sleep {marker}"), Duration::from_secs(20));
                assert!(left.is_empty(), "builder processes left: {left:?}");
            }
        }
    }
}

#[test]
fn a_wrong_pinned_host_key_is_refused() {
    if !kit::have_nix() {
        return;
    }
    let Some(sshd) = kit::Sshd::from_env() else {
        return;
    };
    {
        let root = kit::scratch("wrong-key");
        // Another key of the same kind: the client's own public key.
        let other = std::fs::read_to_string(sshd.key.with_extension("pub")).expect("client pub");
        let other = kit::host_key_base64(other.trim());
        for protocol in PROTOCOLS {
            let uri = sshd.uri_with_key(protocol, &root, &other);
            let error = Store::open(&uri, &options()).expect_err("refused");
            assert_eq!(error.class(), ErrorClass::Transport, "{error}");
            let text = error.to_string();
            assert!(text.contains("cannot connect"), "{text}");
        }
    }
}

#[test]
fn a_peer_that_never_answers_times_out_at_the_handshake() {
    {
        let mut options = options();
        options.connect_timeout = Some(Duration::from_secs(1));
        options.exit_grace = Duration::from_secs(1);
        for protocol in PROTOCOLS {
            let plan = Plan::Process {
                program: "sleep".into(),
                args: vec!["30".into()],
                protocol,
            };
            let start = Instant::now();
            let error = Store::open_plan(&plan, &options).expect_err("timed out");
            assert_eq!(error.class(), ErrorClass::Timeout, "{error}");
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{:?}",
                start.elapsed()
            );
        }
    }
}

#[test]
fn a_silent_build_hits_the_stall_deadline_and_its_builder_is_stopped() {
    {
        for via in places() {
            for protocol in PROTOCOLS {
                let name = format!("stall-{protocol}-{via:?}").to_lowercase();
                let root = kit::scratch(&name);
                let marker = kit::unique_number().to_string();
                let (drv_path, drv) =
                    kit::derivation(&root, &name, &format!("exec /bin/sleep {marker}"));
                let mut options = options();
                options.stall_timeout = Some(Duration::from_secs(2));
                let mut store = open_with(protocol, via, &root, &options).expect("open");
                let start = Instant::now();
                let error = store
                    .build_derivation(&drv_path, &drv, BuildSettings::default(), |_| {})
                    .expect_err("stalled");
                assert_eq!(error.class(), ErrorClass::Timeout, "{error}");
                let took = start.elapsed();
                assert!(
                    took >= Duration::from_secs(2) && took < Duration::from_secs(10),
                    "{took:?}"
                );
                let _ = store.abort();
                let left = kit::wait_gone(&format!("/bin/sleep {marker}"), Duration::from_secs(20));
                assert!(left.is_empty(), "builder processes left: {left:?}");
            }
        }
    }
}

#[test]
fn a_refused_login_says_what_ssh_said() {
    if !kit::have_nix() {
        return;
    }
    let Some(sshd) = kit::Sshd::from_env() else {
        return;
    };
    {
        let dir = kit::scratch("refused-login");
        let key = dir.join("stranger");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(made.success());
        let stranger = kit::Sshd { key, ..sshd };
        let error =
            Store::open(&stranger.uri(Protocol::Worker, &dir), &options()).expect_err("refused");
        assert_eq!(error.class(), ErrorClass::Transport, "{error}");
        // The ssh client's own account: OpenSSH's words, or libssh2's for
        // the in-process client.
        let text = error.to_string();
        assert!(
            text.contains("Permission denied") || text.contains("cannot log in"),
            "{text}"
        );
    }
}

#[test]
fn a_machines_entry_opens_with_its_key_and_pinned_host_key() {
    if !kit::have_nix() {
        return;
    }
    let Some(sshd) = kit::Sshd::from_env() else {
        return;
    };
    {
        let root = kit::scratch("machine");
        for protocol in PROTOCOLS {
            let scheme = match protocol {
                Protocol::Serve => "ssh",
                Protocol::Worker => "ssh-ng",
            };
            // The key and the host key come from the entry's columns 3 and
            // 8, not the URI.
            let uri = format!(
                "{scheme}://{}@{}:{}?remote-store={}",
                sshd.user,
                sshd.host,
                sshd.port,
                root.display()
            );
            let mut machine = nixwire_core::machines::Machine::with_defaults(
                &uri,
                ["x86_64-linux".to_owned()].into(),
            );
            machine.ssh_key = Some(sshd.key.display().to_string());
            machine.ssh_public_host_key = Some(sshd.host_key.clone());
            let store = Store::open_machine(&machine, &options()).expect("open");
            assert_eq!(store.info().protocol, protocol);
            store.close().expect("close");
        }
    }
}

#[test]
fn a_daemon_socket_is_a_worker_store() {
    if !kit::have_nix() {
        return;
    }
    {
        let dir = kit::scratch("unix");
        let root = dir.join("root");
        let closure = kit::small_closure(&root, "unix");
        let daemon = kit::Daemon::start(&dir, &root);
        let uri = format!("unix://{}", daemon.socket.display());
        let mut store = Store::open(&uri, &options()).expect("open");
        assert_eq!(store.info().protocol, Protocol::Worker);
        let valid = store.query_valid_paths(&closure).expect("valid");
        assert_eq!(valid.len(), closure.len(), "{valid:?}");
        let mut nar = Vec::new();
        let size = store.nar_from_path(&closure[0], &mut nar).expect("NAR");
        assert_eq!(size as usize, nar.len());
        store.close().expect("close");
    }
}
