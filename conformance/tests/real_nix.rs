//! The core's serve client against a real `nix-store --serve --write` from
//! Debian's `nix-bin`, over pipes, in a private store under the build
//! directory (a chroot store: every Nix command here gets `--store`, so
//! nothing touches the machine's /nix).
//! The tests bring their own Nix settings and skip without Nix: see the
//! `support` module.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nixwire_core::conn::{Error, ErrorKind, RequestId};
use nixwire_core::nar::Node;
use nixwire_core::serve::messages::*;
use nixwire_core::serve::{Client, ClientConfig, ClientEvent, ImportPaths, Reply, Request};
use nixwire_core::store::{BuildStatus, DrvOutput, NarHash, OutputName};
use nixwire_core::wire::Version;
use sha2::{Digest, Sha256};
use support::{derivation, full, have_nix, nix_args, nix_command, store, store_path};

/// The serve client over a child's pipes, with the build logs it collected.
struct Driver {
    inner: support::Driver<Client>,
    logs: Vec<u8>,
}

impl Driver {
    fn spawn(program: &str, args: &[String], config: ClientConfig) -> Self {
        let client = Client::new(config, Instant::now());
        Self {
            inner: support::Driver::spawn(program, args, client),
            logs: Vec::new(),
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
        let logs = &mut self.logs;
        self.inner.run(|client, event| {
            match event {
                ClientEvent::BodyWanted { id: body_id, .. } => {
                    for body in bodies {
                        let taken = client.offer_body(
                            Instant::now(),
                            body_id,
                            Bytes::copy_from_slice(body),
                        )?;
                        assert_eq!(taken, body.len(), "the whole body is taken");
                    }
                }
                ClientEvent::NarChunk { data, .. } => nar_out.extend_from_slice(&data),
                ClientEvent::Log(log) => logs.extend_from_slice(&log.text),
                ClientEvent::Reply { id: done, reply } if done == id => return Ok(Some(reply)),
                _ => {}
            }
            Ok(None)
        })
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
            .inner
            .conn
            .request(Instant::now(), request)
            .expect("request");
        let mut nar = Vec::new();
        let reply = self.run(id, bodies, &mut nar).expect("reply");
        (reply, nar)
    }
}

fn serve(store: &Path) -> Driver {
    let mut args = nix_args(store);
    args.extend(["--serve".into(), "--write".into()]);
    let mut config = ClientConfig::default();
    config.handshake_timeout = Some(Duration::from_secs(30));
    Driver::spawn("nix-store", &args, config)
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
    let version = nix.inner.conn.version().expect("handshake done");
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
        .inner
        .conn
        .request(Instant::now(), QueryValidPaths::default())
        .expect("request");
    let err = nix.run(id, &[], &mut Vec::new()).expect_err("wrong magic");
    assert!(matches!(*err.kind, ErrorKind::WrongMagic { .. }), "{err}");
    assert!(
        err.to_string().contains("Welcome to the build farm"),
        "{err}"
    );
}
