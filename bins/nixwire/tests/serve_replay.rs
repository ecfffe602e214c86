//! The client side of every recorded serve session (`conformance/captures`
//! and `conformance/recorded`) replayed against `nixwire serve --stdio
//! --write` on a fresh chroot store, and what it answered compared with
//! what the recorded `nix-store --serve` answered.
//!
//! The connections of one recorded run (a folder) go in order to one store,
//! as they went to one server. `nixwire serve` announces the version the
//! recorded server announced (the client's bytes are at the version those
//! two negotiated) and is fed the recorded client bytes whole; both
//! servers' answers are decoded with the conformance suite's codec walk
//! (the core's serve codec), and must have the same kinds in the same
//! order, and the same contents wherever the store holds the same thing.
//!
//! The recorded server had paths before the session (a copy from it, a
//! `path-info` of what it built). Those whose NAR the transcript carries (a
//! `DumpStorePath` reply) and whose metadata it carries (a `QueryPathInfos`
//! reply) are seeded into the fresh store first, unless the client added
//! them or a build in the run made them. Every other path the recorded
//! server had beforehand is *unknown*: answers about it (its validity, its
//! info, its closure) are compared only on the known paths, and ours must
//! never claim a path the recorded server did not. Builds are compared by
//! status and output paths (times and messages differ by run).
//!
//! This lives in the `nixwire` package, not `nixwire-conformance`, because
//! it runs the `nixwire` binary (`CARGO_BIN_EXE_nixwire`) and so needs
//! Nix: without it, it says so and passes, unless `CI=true` or
//! `NIXWIRE_REQUIRE_NIX=1`.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nixwire_conformance::serve::{CodecWalk, RecordedReply, codec_walk};
use nixwire_conformance::transcript::{self, Chunk, From, Transcript};
use nixwire_core::runtime::Options;
use nixwire_core::serve::{Reply, Request};
use nixwire_core::store::{NarHash, PathInfo, StorePath};
use nixwire_testkit as kit;
use sha2::{Digest, Sha256};

/// Every recorded serve run: its folder.
fn serve_runs() -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance");
    let mut runs = Vec::new();
    for set in ["captures", "recorded"] {
        let Ok(entries) = std::fs::read_dir(base.join(set)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("serve-") && entry.path().is_dir() {
                runs.push(entry.path());
            }
        }
    }
    runs.sort();
    runs
}

/// One connection of a run, decoded.
struct Conn {
    t: Transcript,
    walk: CodecWalk,
}

/// What a run's transcripts say about its paths.
#[derive(Default)]
struct Paths {
    /// Seeded before the run: path, info, NAR.
    seed: Vec<(StorePath, PathInfo, Vec<u8>)>,
    /// Paths whose answers can be compared: seeded, added by the client,
    /// made or fetched during the run.
    known: BTreeSet<StorePath>,
}

fn paths_of(conns: &[Conn]) -> Paths {
    let mut added = BTreeSet::new();
    let mut built = BTreeSet::new();
    let mut infos = Vec::new();
    // Dumped paths, and whether a BuildPaths came before (then it may be
    // one of its outputs, which the serve request does not name).
    let mut dumped: Vec<(StorePath, Vec<u8>, bool)> = Vec::new();
    let mut after_build_paths = false;
    for conn in conns {
        for (n, r) in conn.walk.requests.iter().enumerate() {
            match &r.request {
                Request::AddToStoreNar(m) => {
                    added.insert(m.path.clone());
                }
                Request::ImportPaths(m) => {
                    added.extend(m.paths.iter().map(|t| t.path.clone()));
                }
                Request::BuildDerivation(m) => {
                    built.extend(m.drv.outputs.iter().filter_map(|o| o.path.clone()));
                }
                Request::BuildPaths(_) => after_build_paths = true,
                Request::DumpStorePath(m) => {
                    if let Some(RecordedReply { nar, .. }) = conn.walk.replies.get(n) {
                        dumped.push((m.path.clone(), nar.clone(), after_build_paths));
                    }
                }
                _ => {}
            }
            if let Some(RecordedReply {
                reply: Reply::QueryPathInfos(found),
                ..
            }) = conn.walk.replies.get(n)
            {
                infos.extend(found.0.iter().cloned());
            }
        }
    }
    let mut paths = Paths::default();
    for (path, nar, after) in dumped {
        paths.known.insert(path.clone());
        if after || added.contains(&path) || built.contains(&path) {
            continue;
        }
        if paths.seed.iter().any(|(p, _, _)| *p == path) {
            continue;
        }
        let Some((_, info)) = infos.iter().find(|(p, _)| *p == path) else {
            continue;
        };
        let mut info = info.clone();
        // Before serve 2.4 the hash is not sent; the NAR is here.
        info.nar_hash
            .get_or_insert_with(|| NarHash::new(Sha256::digest(&nar).into()));
        info.nar_size = nar.len() as u64;
        paths.seed.push((path, info, nar));
    }
    paths.known.extend(added);
    paths.known.extend(built);
    paths
}

/// Adds the seed to the chroot store `root`, dependencies first.
fn seed(root: &Path, mut seed: Vec<(StorePath, PathInfo, Vec<u8>)>) -> Result<usize, String> {
    if seed.is_empty() {
        return Ok(0);
    }
    let mut options = Options::default();
    options.env = kit::nix_env();
    let mut store = nixwire_blocking::Store::open(&root.display().to_string(), &options)
        .map_err(|e| format!("opening the store to seed: {e}"))?;
    let mut done: BTreeSet<StorePath> = BTreeSet::new();
    let count = seed.len();
    while !seed.is_empty() {
        let ready = seed.iter().position(|(p, info, _)| {
            info.references
                .iter()
                .all(|r| r == p || done.contains(r) || !seed.iter().any(|(s, _, _)| s == r))
        });
        let Some(at) = ready else {
            return Err("the seed's references form a cycle".into());
        };
        let (path, info, nar) = seed.remove(at);
        store
            .add_to_store_nar(&path, &info, &mut nar.as_slice())
            .map_err(|e| format!("seeding {path}: {e}"))?;
        done.insert(path);
    }
    store.close().map_err(|e| e.to_string())?;
    Ok(count)
}

/// Feeds the recorded client bytes of `t` to `nixwire serve` on `root`,
/// announcing what the recorded server announced; our stdout and stderr.
///
/// Stdin stays open until our answers to every recorded request are in
/// (or our stdout ends): the recorded client kept its side open while it
/// waited, and `nixwire serve`, like `nix-store --serve`, stops a build
/// whose client has hung up.
fn run_server(t: &Transcript, walk: &CodecWalk, root: &Path) -> Result<(Vec<u8>, String), String> {
    run_server_with(t, walk, root, true).map(|(out, err, _)| (out, err))
}

/// [`run_server`], with `--write` or without; also whether it exited 0.
fn run_server_with(
    t: &Transcript,
    walk: &CodecWalk,
    root: &Path,
    write: bool,
) -> Result<(Vec<u8>, String, bool), String> {
    let version = walk
        .server_version
        .ok_or("the recorded server announced no version")?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nixwire"))
        .args(["serve", "--stdio", "--store"])
        .arg(root)
        .args(write.then_some("--write"))
        .arg("--protocol-version")
        .arg(format!("{}.{}", version.major, version.minor))
        .envs(kit::nix_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nixwire serve: {e}"))?;
    let client = t.stream(From::Client);
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let (answered, wait) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        // A server that stops early stops reading: not this test's error.
        let _ = stdin.write_all(&client);
        let _ = wait.recv_timeout(Duration::from_secs(300));
    });
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let mut ours = t.clone();
    ours.chunks = vec![Chunk {
        from: From::Client,
        data: t.stream(From::Client),
    }];
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stdout
            .read(&mut buf)
            .map_err(|e| format!("reading nixwire serve: {e}"))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        ours.chunks.truncate(1);
        ours.chunks.push(Chunk {
            from: From::Server,
            data: out.clone(),
        });
        if codec_walk(&ours).replies.len() >= walk.requests.len() {
            let _ = answered.send(());
        }
    }
    let _ = answered.send(());
    let _ = writer.join();
    let stderr = errors.join().unwrap_or_default();
    let status = child
        .wait()
        .map_err(|e| format!("waiting for nixwire serve: {e}"))?;
    Ok((
        out,
        String::from_utf8_lossy(&stderr).into_owned(),
        status.success(),
    ))
}

/// Only the known paths of `paths`, sorted.
fn known_of<'a>(
    paths: impl IntoIterator<Item = &'a StorePath>,
    known: &BTreeSet<StorePath>,
) -> Vec<StorePath> {
    let mut v: Vec<StorePath> = paths
        .into_iter()
        .filter(|p| known.contains(*p))
        .cloned()
        .collect();
    v.sort();
    v
}

/// Ours must name no path the recorded server did not.
fn subset(ours: &[StorePath], recorded: &[StorePath], what: &str) -> Result<(), String> {
    match ours.iter().find(|p| !recorded.contains(p)) {
        Some(p) => Err(format!("{what}: ours has {p}, the recorded server not")),
        None => Ok(()),
    }
}

/// Compares one reply of ours with the recorded one.
fn same_reply(
    n: usize,
    ours: &RecordedReply,
    recorded: &RecordedReply,
    known: &BTreeSet<StorePath>,
) -> Result<(), String> {
    let what = format!("reply {n} ({})", recorded.reply.command());
    match (&ours.reply, &recorded.reply) {
        (Reply::QueryValidPaths(a), Reply::QueryValidPaths(b))
        | (Reply::QueryClosure(a), Reply::QueryClosure(b)) => {
            subset(a, b, &what)?;
            if known_of(a, known) != known_of(b, known) {
                return Err(format!("{what}: ours {a:?}, recorded {b:?}"));
            }
        }
        (Reply::QueryPathInfos(a), Reply::QueryPathInfos(b)) => {
            let ap: Vec<StorePath> = a.0.iter().map(|(p, _)| p.clone()).collect();
            let bp: Vec<StorePath> = b.0.iter().map(|(p, _)| p.clone()).collect();
            subset(&ap, &bp, &what)?;
            let pick = |v: &[(StorePath, PathInfo)]| {
                let mut v: Vec<(StorePath, PathInfo)> = v
                    .iter()
                    .filter(|(p, _)| known.contains(p))
                    .cloned()
                    .collect();
                v.sort_by(|x, y| x.0.cmp(&y.0));
                v
            };
            if pick(&a.0) != pick(&b.0) {
                return Err(format!("{what}: ours {:?}, recorded {:?}", a.0, b.0));
            }
        }
        (Reply::DumpStorePath(_), Reply::DumpStorePath(_)) => {
            if ours.nar != recorded.nar {
                return Err(format!(
                    "{what}: NARs differ ({} and {} bytes)",
                    ours.nar.len(),
                    recorded.nar.len()
                ));
            }
        }
        (Reply::BuildDerivation(a), Reply::BuildDerivation(b)) => {
            if a.status != b.status {
                return Err(format!(
                    "{what}: ours {:?} ({}), recorded {:?} ({})",
                    a.status, a.error_msg, b.status, b.error_msg
                ));
            }
            let outs = |r: &nixwire_core::store::BuildResult| {
                let mut v: Vec<(String, StorePath)> = r
                    .built_outputs
                    .iter()
                    .map(|(name, real)| (name.to_string(), real.out_path.clone()))
                    .collect();
                v.sort();
                v
            };
            if outs(a) != outs(b) {
                return Err(format!("{what}: outputs {:?} and {:?}", outs(a), outs(b)));
            }
        }
        (Reply::BuildPaths(a), Reply::BuildPaths(b)) => {
            if (a.status == 0) != (b.status == 0) {
                return Err(format!(
                    "{what}: ours {} ({}), recorded {} ({})",
                    a.status, a.error_msg, b.status, b.error_msg
                ));
            }
        }
        (a, b) if a == b => {}
        (a, b) => return Err(format!("{what}: ours {a:?}, recorded {b:?}")),
    }
    Ok(())
}

/// How a replayed connection went.
enum Outcome {
    /// Every reply compared.
    Full,
    /// The replies compared up to a point the transcript cannot take us
    /// past; the text says which and why.
    Partial(String),
}

/// Replays one connection; how it went, or how it differed.
fn replay(conn: &Conn, root: &Path, known: &BTreeSet<StorePath>) -> Result<Outcome, String> {
    let recorded = &conn.walk;
    if let Some(e) = &recorded.client_error {
        return Err(format!("the recorded client stream does not decode: {e}"));
    }
    let (stdout, stderr) = run_server(&conn.t, recorded, root)?;
    let mut ours_t = conn.t.clone();
    ours_t.chunks = vec![
        Chunk {
            from: From::Client,
            data: conn.t.stream(From::Client),
        },
        Chunk {
            from: From::Server,
            data: stdout,
        },
    ];
    let ours = codec_walk(&ours_t);
    if ours.server_version != recorded.server_version {
        return Err(format!(
            "announced {:?}, recorded {:?}",
            ours.server_version, recorded.server_version
        ));
    }
    for (n, (a, b)) in ours.replies.iter().zip(&recorded.replies).enumerate() {
        same_reply(n, a, b, known).map_err(|e| format!("{e}; our stderr: {stderr}"))?;
    }
    let (got, want) = (ours.replies.len(), recorded.replies.len());
    if got == want && ours.server_error.is_none() {
        return Ok(Outcome::Full);
    }
    // The recorded server's own stream stops decoding (Nix 2.8 sends
    // built outputs to clients older than 2.6): ours goes on, correctly.
    if got > want
        && let Some(e) = &recorded.server_error
    {
        return Ok(Outcome::Partial(format!(
            "{want} replies compared; the recorded server's stream breaks there: {e}"
        )));
    }
    // We stopped at a request about a path the recorded server had from
    // before and the transcript does not carry: Nix stops there too.
    if got < want
        && let Some(request) = recorded.requests.get(got)
    {
        let unknown = request_paths(&request.request).into_iter().find(|p| {
            !known.contains(p) && stderr.contains(&format!("path '{}' is not valid", kit::full(p)))
        });
        if let Some(p) = unknown {
            return Ok(Outcome::Partial(format!(
                "{got} of {want} replies compared; request {got} ({}) is about {p}, which the transcript does not carry",
                request.request.command()
            )));
        }
    }
    Err(format!(
        "{got} replies, recorded {want} ({:?}); our stderr: {stderr}",
        ours.server_error
    ))
}

/// `t` with `stdout` as the server's answer after its client stream.
fn with_answer(t: &Transcript, stdout: Vec<u8>) -> Transcript {
    let mut ours = t.clone();
    ours.chunks.push(Chunk {
        from: From::Server,
        data: stdout,
    });
    ours
}

/// The store paths a request names.
fn request_paths(request: &Request) -> Vec<StorePath> {
    match request {
        Request::QueryValidPaths(m) => m.paths.clone(),
        Request::QueryPathInfos(m) => m.paths.clone(),
        Request::QueryClosure(m) => m.paths.clone(),
        Request::DumpStorePath(m) => vec![m.path.clone()],
        _ => Vec::new(),
    }
}

#[test]
fn every_recorded_serve_session_replays_against_nixwire_serve() {
    if !kit::have_nix() {
        return;
    }
    let runs = serve_runs();
    assert!(!runs.is_empty(), "no serve transcripts found");
    let started = std::time::Instant::now();
    let (mut full, mut partial, mut failed) = (0, Vec::new(), Vec::new());
    for (i, run) in runs.iter().enumerate() {
        let set = run
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let files = transcript::find(run).unwrap_or_else(|e| panic!("{e}"));
        let conns: Vec<Conn> = files
            .iter()
            .map(|f| {
                let t = transcript::load(f).unwrap_or_else(|e| panic!("{e}"));
                let walk = codec_walk(&t);
                Conn { t, walk }
            })
            .collect();
        let paths = paths_of(&conns);
        let root = kit::scratch(&format!("serve-replay-{i}"));
        let name = |c: &Conn| format!("{set}/{}", c.t.name);
        if let Err(e) = seed(&root, paths.seed) {
            failed.extend(conns.iter().map(|c| format!("{}: {e}", name(c))));
            continue;
        }
        for conn in &conns {
            match replay(conn, &root, &paths.known) {
                Ok(Outcome::Full) => full += 1,
                Ok(Outcome::Partial(why)) => partial.push(format!("{}: {why}", name(conn))),
                Err(e) => failed.push(format!("{}: {e}", name(conn))),
            }
        }
        let _ = std::fs::remove_dir_all(&root);
    }
    eprintln!(
        "serve replay: of {} transcripts, {full} passed in full, {} up to where the transcript ends what can be compared, {} failed ({:.1?})",
        full + partial.len() + failed.len(),
        partial.len(),
        failed.len(),
        started.elapsed()
    );
    for p in &partial {
        eprintln!("  partial: {p}");
    }
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// A session made here, for what no transcript has: `ImportPaths`,
/// `BuildPaths`, `QueryValidPaths` with `lock`, `QueryClosure` with
/// `include_outputs`; and the same writes refused without `--write`.
#[test]
fn a_made_session_imports_builds_locks_and_refuses_without_write() {
    use nixwire_conformance::serve::{RecordedRequest, reencode};
    use nixwire_core::serve::messages as sm;
    use nixwire_core::wire::{NixString, Version};

    if !kit::have_nix() {
        return;
    }
    let dir = kit::scratch("serve-made");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let closure = kit::small_closure(&a, "serve-made");
    let (dep, top) = (closure[0].clone(), closure[1].clone());
    let (drv, basic) = kit::derivation(&a, "serve-made-built", "echo made > $out");
    let out = basic.outputs[0]
        .path
        .clone()
        .expect("an input-addressed output");
    // The NARs and infos to import, from a.
    let mut options = Options::default();
    options.env = kit::nix_env();
    let mut source =
        nixwire_blocking::Store::open(&a.display().to_string(), &options).expect("open a");
    let infos = source
        .query_path_infos(&[dep.clone(), top.clone(), drv.clone()])
        .expect("path infos");
    assert_eq!(infos.len(), 3);
    let mut bodies = Vec::new();
    let mut trailers = Vec::new();
    for (path, info) in &infos {
        let mut nar = Vec::new();
        source.nar_from_path(path, &mut nar).expect("nar");
        bodies.push(nar);
        trailers.push(sm::ExportTrailer {
            magic: sm::ExportMagic,
            path: path.clone(),
            references: info.references.clone(),
            deriver: info.deriver.clone(),
            legacy_signature: sm::LegacySignature(None),
        });
    }
    source.close().expect("close a");
    let top_nar = bodies[1].clone();

    let request = |request: Request| RecordedRequest {
        request,
        bodies: Vec::new(),
    };
    let both = vec![dep.clone(), top.clone()];
    // Asked before the import (none valid) and after it (both).
    let query_both = || {
        request(
            sm::QueryValidPaths {
                lock: true,
                substitute: false,
                paths: both.clone(),
            }
            .into(),
        )
    };
    let requests = vec![
        query_both(),
        RecordedRequest {
            request: sm::ImportPaths { paths: trailers }.into(),
            bodies,
        },
        query_both(),
        request(
            sm::BuildPaths {
                paths: vec![NixString::from(format!("{}!out", kit::full(&drv)))],
                options: sm::BuildOptions::default(),
            }
            .into(),
        ),
        request(
            sm::QueryClosure {
                include_outputs: true,
                paths: vec![drv.clone()],
            }
            .into(),
        ),
        request(sm::DumpStorePath { path: top.clone() }.into()),
    ];
    let walk = CodecWalk {
        client_version: Some(Version::new(2, 7)),
        server_version: Some(Version::new(2, 8)),
        requests,
        ..CodecWalk::default()
    };
    let (client, _) = reencode(&walk);
    let t = Transcript {
        name: "made/conn0".into(),
        protocol: "serve".into(),
        scenario: "made".into(),
        client: "nixwire".into(),
        server: "nixwire".into(),
        client_exit: 0,
        client_stderr: String::new(),
        last_connection: true,
        chunks: vec![Chunk {
            from: From::Client,
            data: client.clone(),
        }],
    };

    // Read-only: the import is refused, after the first answer.
    let (stdout, stderr, ok) = run_server_with(&t, &walk, &b, false).expect("run");
    assert!(!ok, "a read-only server imported");
    assert!(
        stderr.contains("error: importing paths is not allowed"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let ours = with_answer(&t, stdout);
    assert_eq!(codec_walk(&ours).replies.len(), 1);
    for path in [&dep, &top, &drv] {
        assert!(!kit::is_valid(&b, path), "{path} was registered");
    }

    // With --write, every request is answered.
    let (stdout, stderr, ok) = run_server_with(&t, &walk, &b, true).expect("run");
    assert!(ok, "{stderr}");
    let ours = with_answer(&t, stdout);
    let got = codec_walk(&ours);
    assert_eq!(got.server_error, None, "{stderr}");
    let replies: Vec<&Reply> = got.replies.iter().map(|r| &r.reply).collect();
    assert_eq!(replies.len(), 6, "{replies:?}");
    assert_eq!(replies[0], &Reply::QueryValidPaths(Vec::new()));
    assert!(matches!(replies[1], Reply::ImportPaths(_)));
    let mut sorted = both.clone();
    sorted.sort();
    assert_eq!(replies[2], &Reply::QueryValidPaths(sorted));
    match replies[3] {
        Reply::BuildPaths(r) => assert_eq!(r.status, 0, "{}", r.error_msg),
        other => panic!("{other:?}"),
    }
    let mut closure = vec![drv.clone(), out.clone()];
    closure.sort();
    assert_eq!(replies[4], &Reply::QueryClosure(closure));
    assert_eq!(got.replies[5].nar, top_nar);
    for path in [&dep, &top, &drv, &out] {
        assert!(kit::is_valid(&b, path), "{path} is not valid in b");
    }
}
