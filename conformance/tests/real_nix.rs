//! The core's serve client against a real `nix-store --serve --write` from
//! Debian's `nix-bin`, over pipes, in a private store under the build
//! directory (a chroot store: every Nix command here gets `--store`, so
//! nothing touches the machine's /nix).
//!
//! Every Nix command also gets the tests' own settings ([`NIX_CONF`], through
//! `NIX_CONF_DIR`), so the machine's /etc/nix may hold anything or be absent:
//! on a fresh Debian machine without /etc/nix/nix.conf, Nix's default
//! `build-users-group = nixbld` names a group that does not exist and every
//! build fails.
//!
//! Without `nix-store` on PATH these tests say so and pass, unless
//! `NIXWIRE_REQUIRE_NIX=1` (set by `.ci/run`), which makes that a failure.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nixwire_core::conn::{Connection, Error, ErrorKind, RequestId};
use nixwire_core::nar::Node;
use nixwire_core::serve::messages::*;
use nixwire_core::serve::{Client, ClientConfig, ClientEvent, ImportPaths, Reply, Request};
use nixwire_core::store::{
    BasicDerivation, BuildStatus, DerivationOutput, DrvOutput, NarHash, OutputName, StoreDir,
    StorePath,
};
use nixwire_core::wire::{NixString, Version};
use sha2::{Digest, Sha256};

/// Every test stops on its own: no single wait is longer than this.
const GUARD: Duration = Duration::from_secs(120);

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
const NIX_CONF: &str = "\
build-users-group =
sandbox = true
sandbox-paths = /bin /lib /lib64 /usr
substituters =
builders =
experimental-features = nix-command
";

/// The tests' Nix configuration directory (written once per test binary),
/// given to every Nix command as `NIX_CONF_DIR` in place of /etc/nix.
fn nix_conf_dir() -> &'static Path {
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
fn nix_command(program: &str) -> Command {
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
fn have_nix() -> bool {
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
fn store(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("nixwire-store-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("store dir");
    dir
}

/// The options every Nix command here gets: the private store (the rest of
/// the settings are in [`NIX_CONF`]).
fn nix_args(store: &Path) -> Vec<String> {
    vec!["--store".into(), store.display().to_string()]
}

enum Input {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Eof,
}

/// A minimal blocking driver of the core's client over a child's pipes,
/// following the run loop in the crate docs. Reader threads feed one channel
/// so that stdout and stderr are drained concurrently.
struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<Input>,
    client: Client,
    logs: Vec<u8>,
}

impl Driver {
    fn spawn(program: &str, args: &[String], config: ClientConfig) -> Self {
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
            client: Client::new(config, Instant::now()),
            logs: Vec::new(),
        }
    }

    fn flush(&mut self) {
        while let Some(out) = self.client.poll_transmit() {
            if let Some(stdin) = self.stdin.as_mut() {
                stdin.write_all(&out).expect("write to nix-store");
            }
        }
    }

    /// Runs the loop until `id` has its reply; NAR chunks and bodies go
    /// through `nar_out` and `bodies`.
    fn run(
        &mut self,
        id: RequestId,
        bodies: &[Vec<u8>],
        nar_out: &mut Vec<u8>,
    ) -> Result<Reply, Error> {
        loop {
            self.flush();
            while let Some(event) = self.client.poll_event() {
                match event {
                    ClientEvent::BodyWanted { id: body_id, .. } => {
                        for body in bodies {
                            let taken = self.client.offer_body(
                                Instant::now(),
                                body_id,
                                Bytes::copy_from_slice(body),
                            )?;
                            assert_eq!(taken, body.len(), "the whole body is taken");
                        }
                        self.flush();
                    }
                    ClientEvent::NarChunk { data, .. } => nar_out.extend_from_slice(&data),
                    ClientEvent::Log(data) => self.logs.extend_from_slice(&data),
                    ClientEvent::Reply { id: done, reply } if done == id => return Ok(reply),
                    _ => {}
                }
            }
            let now = Instant::now();
            let wait = self
                .client
                .poll_timeout()
                .map_or(GUARD, |t| t.saturating_duration_since(now).min(GUARD));
            match self.rx.recv_timeout(wait) {
                Ok(Input::Stdout(b)) => self.client.handle_input(Instant::now(), Bytes::from(b))?,
                Ok(Input::Stderr(b)) => self.client.handle_stderr(Instant::now(), Bytes::from(b)),
                Ok(Input::Eof) => self.client.handle_eof(Instant::now())?,
                Err(_) => self.client.handle_timeout(Instant::now())?,
            }
        }
    }

    fn request(&mut self, request: impl Into<Request>) -> Reply {
        self.request_with(request, &[]).0
    }

    fn request_with(
        &mut self,
        request: impl Into<Request>,
        bodies: &[Vec<u8>],
    ) -> (Reply, Vec<u8>) {
        let id = self
            .client
            .request(Instant::now(), request)
            .expect("request");
        let mut nar = Vec::new();
        let reply = self.run(id, bodies, &mut nar).expect("reply");
        (reply, nar)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Closing stdin is how a serve client says goodbye.
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

fn serve(store: &Path) -> Driver {
    let mut args = nix_args(store);
    args.extend(["--serve".into(), "--write".into()]);
    let mut config = ClientConfig::default();
    config.handshake_timeout = Some(Duration::from_secs(30));
    Driver::spawn("nix-store", &args, config)
}

fn run_nix(program: &str, args: &[String]) -> String {
    let out = nix_command(program).args(args).output().expect("nix");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A full store path as Nix prints it, as the [`StorePath`] it names.
fn store_path(full: &str) -> StorePath {
    StoreDir::default()
        .parse_path(full.as_bytes())
        .unwrap_or_else(|e| panic!("{full:?}: {e}"))
}

/// A store path's full form, as Nix prints it.
fn full(path: &StorePath) -> String {
    StoreDir::default().display_path(path)
}

/// The strings of a JSON array (none if it is not one).
fn items(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default()
}

/// Instantiates a one-line derivation in `store` and returns its path and
/// its `BasicDerivation`, read back with `nix show-derivation`.
fn derivation(store: &Path, name: &str, script: &str) -> (StorePath, BasicDerivation) {
    let expr = format!(
        "derivation {{ name = \"{name}\"; system = builtins.currentSystem; \
         builder = \"/bin/sh\"; args = [ \"-c\" \"{script}\" ]; }}"
    );
    let mut args = nix_args(store);
    args.extend(["-E".into(), expr]);
    let drv = run_nix("nix-instantiate", &args).trim().to_owned();
    let mut args = vec!["show-derivation".into()];
    args.extend(nix_args(store));
    args.push(drv.clone());
    let json: serde_json::Value =
        serde_json::from_str(&run_nix("nix", &args)).expect("derivation JSON");
    let d = &json[&drv];
    let text = |v: &serde_json::Value| NixString::from(v.as_str().unwrap_or_default());
    let outputs = d["outputs"]
        .as_object()
        .expect("outputs")
        .iter()
        .map(|(name, o)| DerivationOutput {
            name: OutputName::new(name).expect("an output name"),
            path: o["path"].as_str().map(store_path),
            hash_algo: NixString::new(),
            hash: NixString::new(),
        })
        .collect();
    let env = d["env"]
        .as_object()
        .expect("env")
        .iter()
        .map(|(k, v)| (NixString::from(k.as_str()), text(v)))
        .collect();
    let basic = BasicDerivation {
        outputs,
        input_srcs: items(&d["inputSrcs"]).into_iter().map(store_path).collect(),
        platform: text(&d["system"]),
        builder: text(&d["builder"]),
        args: items(&d["args"]).into_iter().map(NixString::from).collect(),
        env,
    };
    (store_path(&drv), basic)
}

fn options() -> BuildOptions {
    BuildOptions {
        max_silent_time: 60,
        build_timeout: 120,
        ..BuildOptions::default()
    }
}

#[test]
fn build_query_and_dump_against_real_nix() {
    if !have_nix() {
        return;
    }
    let store = store("build");
    let (drv_path, drv) = derivation(
        &store,
        "nixwire-ok",
        "echo hello from the builder; echo to stderr >&2; /bin/mkdir $out; echo hi > $out/file; /bin/ln -s file $out/link",
    );
    let out = drv.outputs[0]
        .path
        .clone()
        .expect("an input-addressed output");
    let mut nix = serve(&store);

    let reply = nix.request(Request::BuildDerivation(BuildDerivation {
        drv_path,
        drv,
        options: options(),
    }));
    let version = nix.client.version().expect("handshake done");
    assert_eq!(version.major, 2);
    let Reply::BuildDerivation(result) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(result.status, BuildStatus::Built, "{}", result.error_msg);
    assert!(result.start_time > 0 && result.stop_time >= result.start_time);
    if version >= Version::new(2, 6) {
        let outputs: Vec<_> = result
            .built_outputs
            .iter()
            .map(|(name, r)| (name.clone(), r.out_path.clone()))
            .collect();
        assert_eq!(outputs, vec![(OutputName::out(), out.clone())]);
        if version < Version::new(2, 8) {
            // 2.6 and 2.7 name each output `<drv hash>!<output>` too.
            for (name, r) in &result.built_outputs {
                let id = r.id.as_ref().expect("a JSON realisation's id");
                assert_eq!(id.output(), name, "{r:?}");
                assert!(
                    matches!(id, DrvOutput::Hash { drv_hash, .. }
                        if drv_hash.to_string_lossy().starts_with("sha256:")),
                    "{r:?}"
                );
            }
        }
    }
    // The builder's output came through stderr as logs, while it ran.
    let logs = String::from_utf8_lossy(&nix.logs).into_owned();
    assert!(logs.contains("hello from the builder"), "{logs}");

    let valid = nix.request(Request::QueryValidPaths(QueryValidPaths {
        lock: true,
        substitute: false,
        paths: vec![
            out.clone(),
            store_path("/nix/store/00000000000000000000000000000000-nope"),
        ],
    }));
    assert_eq!(valid, Reply::QueryValidPaths(vec![out.clone()]));

    let Reply::QueryPathInfos(PathInfos(infos)) =
        nix.request(Request::QueryPathInfos(QueryPathInfos {
            paths: vec![out.clone()],
        }))
    else {
        panic!("path infos")
    };
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].0, out);
    let info = &infos[0].1;
    assert!(info.nar_hash.is_some(), "{info:?}");

    let (reply, nar) = nix.request_with(
        Request::DumpStorePath(DumpStorePath { path: out.clone() }),
        &[],
    );
    assert_eq!(
        reply,
        Reply::DumpStorePath(NarDone {
            nar_size: nar.len() as u64
        })
    );
    assert_eq!(nar.len() as u64, info.nar_size);
    assert_eq!(info.nar_hash, Some(NarHash(Sha256::digest(&nar).into())));
    // Nix's own serialisation of the same path agrees byte for byte.
    // (`--dump` serialises a file-system path: the output's real location.)
    // `--store` too, or `nix-store` opens (and creates) the machine's /nix.
    let on_disk = format!("{}{}", store.display(), full(&out));
    let mut args = nix_args(&store);
    args.extend(["--dump".into(), on_disk]);
    let dumped = nix_command("nix-store").args(&args).output().expect("dump");
    assert!(
        dumped.status.success(),
        "{}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    assert_eq!(nar, dumped.stdout);

    let closure = nix.request(Request::QueryClosure(QueryClosure {
        include_outputs: false,
        paths: vec![out.clone()],
    }));
    assert_eq!(closure, Reply::QueryClosure(vec![out]));
}

#[test]
fn a_failing_build_is_reported_not_thrown() {
    if !have_nix() {
        return;
    }
    let store = store("fail");
    let (drv_path, drv) = derivation(&store, "nixwire-fail", "echo about to fail; exit 3");
    let mut nix = serve(&store);
    let reply = nix.request(Request::BuildDerivation(BuildDerivation {
        drv_path,
        drv,
        options: options(),
    }));
    let Reply::BuildDerivation(result) = reply else {
        panic!("{reply:?}")
    };
    assert!(!result.status.is_success(), "{result:?}");
    assert!(
        result.error_msg.to_string_lossy().contains("exit code 3"),
        "{}",
        result.error_msg
    );
    assert!(String::from_utf8_lossy(&nix.logs).contains("about to fail"));
    // The connection is still good.
    let r = nix.request(Request::QueryValidPaths(QueryValidPaths::default()));
    assert_eq!(r, Reply::QueryValidPaths(vec![]));
}

fn nix32_hash(seed: u8) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    (0..32)
        .map(|i| ALPHABET[(usize::from(seed) * 7 + i * 13) % 32] as char)
        .collect()
}

#[test]
fn add_and_import_paths_into_real_nix() {
    if !have_nix() {
        return;
    }
    let store = store("add");
    let mut nix = serve(&store);
    let file = Node::Regular {
        executable: false,
        contents: b"added by nixwire\n".to_vec(),
    }
    .to_nar();
    let added = store_path(&format!("/nix/store/{}-nixwire-added", nix32_hash(1)));
    let reply = nix.request_with(
        Request::AddToStoreNar(AddToStoreNar {
            path: added.clone(),
            deriver: None,
            nar_hash: NarHash(Sha256::digest(&file).into()),
            references: Vec::new(),
            registration_time: 0,
            nar_size: file.len() as u64,
            ultimate: false,
            sigs: Vec::new(),
            ca: None,
        }),
        std::slice::from_ref(&file),
    );
    assert_eq!(reply.0, Reply::AddToStoreNar(Ack));

    let tree = Node::Directory(vec![
        (
            b"bin".to_vec(),
            Node::Directory(vec![(
                b"tool".to_vec(),
                Node::Regular {
                    executable: true,
                    contents: b"#!/bin/sh\n".to_vec(),
                },
            )]),
        ),
        (
            b"ref".to_vec(),
            Node::Symlink {
                target: full(&added).into_bytes(),
            },
        ),
    ])
    .to_nar();
    let imported = store_path(&format!("/nix/store/{}-nixwire-imported", nix32_hash(2)));
    let reply = nix.request_with(
        Request::ImportPaths(ImportPaths {
            paths: vec![ExportTrailer {
                magic: ExportMagic,
                path: imported.clone(),
                references: vec![added.clone()],
                deriver: None,
                legacy_signature: LegacySignature::default(),
            }],
        }),
        std::slice::from_ref(&tree),
    );
    assert_eq!(reply.0, Reply::ImportPaths(Ack));

    let valid = nix.request(Request::QueryValidPaths(QueryValidPaths {
        lock: false,
        substitute: false,
        paths: vec![added.clone(), imported.clone()],
    }));
    assert_eq!(
        valid,
        Reply::QueryValidPaths(vec![added.clone(), imported.clone()])
    );
    let closure = nix.request(Request::QueryClosure(QueryClosure {
        include_outputs: false,
        paths: vec![imported.clone()],
    }));
    assert_eq!(
        closure,
        Reply::QueryClosure(vec![added.clone(), imported.clone()])
    );
    for (path, nar) in [(added, file), (imported, tree)] {
        let (_, dumped) = nix.request_with(Request::DumpStorePath(DumpStorePath { path }), &[]);
        assert_eq!(dumped, nar);
    }
}

#[test]
fn a_chatty_shell_before_nix_store_is_named_in_the_error() {
    if !have_nix() {
        return;
    }
    let store = store("chatty");
    let script = format!(
        "echo 'Welcome to the build farm'; exec nix-store --store {} --serve --write",
        store.display()
    );
    let mut nix = Driver::spawn("sh", &["-c".into(), script], ClientConfig::default());
    let id = nix
        .client
        .request(Instant::now(), QueryValidPaths::default())
        .expect("request");
    let err = nix.run(id, &[], &mut Vec::new()).expect_err("wrong magic");
    assert!(matches!(*err.kind, ErrorKind::WrongMagic { .. }), "{err}");
    assert!(
        err.to_string().contains("Welcome to the build farm"),
        "{err}"
    );
}
