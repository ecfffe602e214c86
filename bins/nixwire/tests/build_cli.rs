//! `nixwire build` against real Nix 2.8 (Debian's `nix-bin`): derivations
//! instantiated in a local chroot store, built on a chroot store behind the
//! loopback sshd over `ssh://` and `ssh-ng://` with each runtime, their
//! outputs checked by Nix in the local store afterwards; a failing build,
//! the embedded default (no machines: this machine without ssh), a machines
//! file of two machines, an interrupt mid-build, a machine that cannot be
//! reached.
//!
//! Without Nix or the sshd a test says why and passes, unless `CI=true` or
//! `NIXWIRE_REQUIRE_NIX=1` (see `nixwire-testkit`).

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nixwire_core::session::Protocol;
use nixwire_core::store::StorePath;
use nixwire_testkit as kit;

const RUNTIMES: [&str; 3] = ["tokio", "smol", "blocking"];

/// `nixwire` with the tests' Nix settings and no machines configured.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nixwire"));
    cmd.args(args)
        .envs(kit::nix_env())
        .env_remove("NIX_SSHOPTS")
        .env_remove("NIX_REMOTE_SYSTEMS")
        .env_remove("NIX_REMOTE");
    cmd
}

fn nixwire(args: &[&str]) -> Output {
    command(args).output().expect("run nixwire")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Instantiates `expr` in the chroot store `root`; its `.drv` path.
fn instantiate(root: &Path, expr: &str) -> String {
    kit::run_nix(
        "nix-instantiate",
        &["--store", &root.display().to_string(), "-E", expr],
    )
    .trim()
    .to_owned()
}

/// A chain of three derivations, each logging a line with `tag` and
/// referring to the one before; the last one's `.drv`.
fn chain(root: &Path, tag: &str) -> String {
    let expr = format!(
        "let step = n: prev: derivation {{ name = \"{tag}-${{n}}\"; \
         system = builtins.currentSystem; builder = \"/bin/sh\"; inherit prev; \
         args = [ \"-c\" \"echo log-of-{tag}-${{n}}; echo $prev > $out\" ]; }}; \
         in step \"c\" (step \"b\" (step \"a\" \"\"))"
    );
    instantiate(root, &expr)
}

/// Where a test builds: here (the embedded default, `None`), and on a
/// chroot store under `dir` behind the sshd with each protocol, by name.
fn build_stores(dir: &Path) -> Vec<(String, Option<String>)> {
    let mut stores = vec![("here".to_owned(), None)];
    if let Some(sshd) = kit::Sshd::from_env() {
        for protocol in [Protocol::Serve, Protocol::Worker] {
            let uri = sshd.uri(protocol, &dir.join(format!("remote-{protocol:?}")));
            stores.push((format!("{protocol:?}"), Some(uri)));
        }
    }
    stores
}

/// `nixwire build` of `drv` into the local store `local` on `store` (the
/// embedded default without one).
fn build_command(runtime: &str, local: &str, store: Option<&str>, drv: &str) -> Command {
    let mut args = vec!["build", "--runtime", runtime, "--local-store", local];
    if let Some(uri) = store {
        args.extend(["--store", uri]);
    }
    args.push(drv);
    command(&args)
}

/// Whether `path` is valid in `root` and its contents match, by Nix.
fn verified(root: &Path, path: &str) -> bool {
    kit::verify_path(root, path).is_ok() && kit::is_valid(root, &kit::store_path(path))
}

/// The closure of the output `top_out` in `root` (for a chain, every
/// step's output).
fn closure_of(root: &Path, top_out: &str) -> Vec<StorePath> {
    kit::run_nix(
        "nix-store",
        &["--store", &root.display().to_string(), "-qR", top_out],
    )
    .lines()
    .map(kit::store_path)
    .collect()
}

#[test]
fn a_chain_is_built_through_the_sshd_on_every_runtime_and_both_protocols() {
    if !kit::have_nix() {
        return;
    }
    let Some(sshd) = kit::Sshd::from_env() else {
        return;
    };
    let dir = kit::scratch("cli-build-ssh");
    let local = dir.join("local");
    let local_s = local.display().to_string();
    for runtime in RUNTIMES {
        for protocol in [Protocol::Serve, Protocol::Worker] {
            let tag = format!("chain-{runtime}-{protocol:?}").to_lowercase();
            let drv = chain(&local, &tag);
            let remote = dir.join(format!("remote-{tag}"));
            let uri = sshd.uri(protocol, &remote);
            let out = build_command(runtime, &local_s, Some(&uri), &drv)
                .output()
                .expect("run nixwire build");
            let stderr = text(&out.stderr);
            assert!(out.status.success(), "{tag}: {stderr}");
            // Each step's log, in order.
            let at = |n: &str| stderr.find(&format!("log-of-{tag}-{n}"));
            let (a, b, c) = (at("a"), at("b"), at("c"));
            assert!(a.is_some() && a < b && b < c, "{tag}: logs: {stderr}");
            // The top output on stdout; every step's output valid here.
            let stdout = text(&out.stdout);
            let printed: Vec<&str> = stdout.lines().collect();
            assert_eq!(printed.len(), 1, "{tag}: {stdout}");
            assert!(printed[0].ends_with(&format!("{tag}-c")), "{stdout}");
            let outputs = closure_of(&local, printed[0]);
            assert_eq!(outputs.len(), 3, "{tag}");
            for path in &outputs {
                assert!(verified(&local, &kit::full(path)), "{tag}: {path}");
                assert!(kit::is_valid(&remote, path), "{tag}: {path} remote");
            }
            // Built once: again, nothing runs and the same path comes out.
            let again = build_command(runtime, &local_s, Some(&uri), &drv)
                .output()
                .expect("run nixwire build");
            assert!(again.status.success(), "{}", text(&again.stderr));
            assert_eq!(text(&again.stdout), stdout);
            assert!(!text(&again.stderr).contains("building '"));
        }
    }
}

#[test]
fn a_failed_build_exits_100_naming_the_derivation_with_its_last_log_lines() {
    if !kit::have_nix() {
        return;
    }
    let dir = kit::scratch("cli-build-fail");
    let local = dir.join("local");
    let stores = build_stores(&dir);
    for runtime in RUNTIMES {
        for (tag, store) in &stores {
            let what = format!("{runtime} {tag}");
            let expr = format!(
                "derivation {{ name = \"fails-{runtime}-{tag}\"; system = builtins.currentSystem; \
                 builder = \"/bin/sh\"; args = [ \"-c\" \"echo first-words; echo last-words-{runtime}; exit 3\" ]; }}"
            );
            let drv = instantiate(&local, &expr);
            let local_s = local.display().to_string();
            let out = build_command(runtime, &local_s, store.as_deref(), &drv)
                .output()
                .expect("run nixwire build");
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(100), "{what}: {stderr}");
            assert!(out.stdout.is_empty(), "{what}");
            let error = stderr
                .lines()
                .find(|l| l.starts_with("error: building"))
                .unwrap_or_else(|| panic!("{what}: an error line: {stderr}"));
            assert!(error.contains(&drv), "{what}: {error}");
            assert!(
                stderr.contains(&format!("> last-words-{runtime}")),
                "{what}: the last log lines: {stderr}"
            );
            assert!(stderr.contains(&format!("{drv} was not built")), "{stderr}");
        }
    }
}

#[test]
fn the_embedded_default_builds_here_without_ssh() {
    if !kit::have_nix() {
        return;
    }
    let dir = kit::scratch("cli-build-default");
    let local = dir.join("local");
    let local_s = local.display().to_string();
    for runtime in RUNTIMES {
        let drv = chain(&local, &format!("default-{runtime}"));
        let out = nixwire(&[
            "-v",
            "build",
            "--runtime",
            runtime,
            "--local-store",
            &local_s,
            &drv,
        ]);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{runtime}: {stderr}");
        assert!(
            stderr.contains("building here through ssh://localhost"),
            "{runtime}: {stderr}"
        );
        assert!(stderr.contains("on 'ssh://localhost'"), "{stderr}");
        let top = text(&out.stdout);
        assert!(verified(&local, top.trim()), "{runtime}: {top}");
    }
}

#[test]
fn a_machines_file_spreads_independent_builds_over_its_machines() {
    if !kit::have_nix() {
        return;
    }
    let Some(sshd) = kit::Sshd::from_env() else {
        return;
    };
    let dir = kit::scratch("cli-build-machines");
    let local = dir.join("local");
    let (one, two) = (dir.join("one"), dir.join("two"));
    // Machines-file lines: URI, systems, key, jobs, speed, features,
    // mandatory features, host key.
    let line = |protocol, root: &Path| {
        let uri = sshd
            .uri(protocol, root)
            .split("&ssh-key")
            .next()
            .unwrap_or_default()
            .to_owned();
        format!(
            "{uri} x86_64-linux {} 1 1 - - {}\n",
            sshd.key.display(),
            sshd.host_key
        )
    };
    let file = dir.join("machines");
    std::fs::write(
        &file,
        line(Protocol::Serve, &one) + &line(Protocol::Worker, &two),
    )
    .expect("write the machines file");
    let expr = "let leaf = n: derivation { name = \"leaf-${n}\"; system = builtins.currentSystem; \
                builder = \"/bin/sh\"; args = [ \"-c\" \"echo ${n} > $out\" ]; }; in \
                derivation { name = \"top\"; system = builtins.currentSystem; builder = \"/bin/sh\"; \
                args = [ \"-c\" \"echo ${leaf \"1\"} ${leaf \"2\"} ${leaf \"3\"} ${leaf \"4\"} > $out\" ]; }";
    let drv = instantiate(&local, expr);
    let out = nixwire(&[
        "build",
        "--machines",
        &file.display().to_string(),
        "--local-store",
        &local.display().to_string(),
        &drv,
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(verified(&local, text(&out.stdout).trim()), "{stderr}");
    // Both machines got work: four leaves, one slot each. A store that
    // was only opened holds none of them (a bare directory count would
    // see its `.links`).
    let top = text(&out.stdout);
    let leaves: Vec<StorePath> = closure_of(&local, top.trim())
        .into_iter()
        .filter(|p| p.name().starts_with("leaf-"))
        .collect();
    assert_eq!(leaves.len(), 4, "{stderr}");
    for root in [&one, &two] {
        let built = leaves.iter().filter(|p| kit::is_valid(root, p)).count();
        assert!(built > 0, "{} built nothing: {stderr}", root.display());
    }
}

/// Reads `child`'s stderr on a thread until `needle` appears; whether it
/// did within `limit`. The rest is collected for the failure message.
fn wait_in_stderr(child: &mut Child, needle: &str, limit: Duration) -> (bool, String) {
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Read to the end even when no one listens any more: a closed
        // pipe would fail nixwire's next message.
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = tx.send(buf[..n].to_vec());
        }
    });
    let end = Instant::now() + limit;
    let mut seen = String::new();
    while Instant::now() < end {
        if let Ok(piece) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push_str(&text(&piece));
            if seen.contains(needle) {
                return (true, seen);
            }
        }
    }
    (false, seen)
}

/// Waits up to `limit` for `child` to exit; its exit code.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[test]
fn an_interrupt_cancels_the_build_on_the_machine_and_registers_nothing() {
    if !kit::have_nix() {
        return;
    }
    let dir = kit::scratch("cli-build-cancel");
    let local = dir.join("local");
    let local_s = local.display().to_string();
    let stores = build_stores(&dir);
    for runtime in RUNTIMES {
        for (tag, store) in &stores {
            let what = format!("{runtime} {tag}");
            let marker = kit::unique_number();
            let expr = format!(
                "derivation {{ name = \"cancelled\"; system = builtins.currentSystem; \
                 builder = \"/bin/sh\"; args = [ \"-c\" \"echo started-{marker}; exec /bin/sleep {marker}\" ]; }}"
            );
            let drv = instantiate(&local, &expr);
            let mut child = build_command(runtime, &local_s, store.as_deref(), &drv)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start nixwire build");
            let (started, seen) = wait_in_stderr(
                &mut child,
                &format!("started-{marker}"),
                Duration::from_secs(30),
            );
            assert!(started, "{what}: the build did not start: {seen}");
            let builder = format!("/bin/sleep {marker}");
            assert!(kit::wait_for(&builder, Duration::from_secs(10)), "{what}");
            // The shell's own `kill`: a fresh machine may lack procps.
            let kill = Command::new("/bin/sh")
                .args(["-c", &format!("kill -INT {}", child.id())])
                .status()
                .expect("kill -INT");
            assert!(kill.success());
            let code = wait_exit(&mut child, Duration::from_secs(20));
            assert_eq!(code, Some(130), "{what}");
            let left = kit::wait_gone(&builder, Duration::from_secs(20));
            assert!(left.is_empty(), "{what}: builder processes left: {left:?}");
            let drv_text = kit::run_nix(
                "nix-store",
                &["--store", &local_s, "--query", "--outputs", &drv],
            );
            assert!(
                !kit::is_valid(&local, &kit::store_path(drv_text.trim())),
                "{what}: the output was registered"
            );
        }
    }
}

#[test]
fn a_machine_that_cannot_be_reached_fails_in_one_line_after_retries() {
    if !kit::have_nix() {
        return;
    }
    let dir = kit::scratch("cli-build-unreachable");
    let local = dir.join("local");
    let drv = chain(&local, "unreachable");
    // Port 1 on loopback: nothing listens; ssh's connection is refused.
    let out = nixwire(&[
        "build",
        "--runtime",
        "smol",
        "--store",
        "ssh-ng://root@127.0.0.1:1",
        "--local-store",
        &local.display().to_string(),
        &drv,
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: building"))
        .collect();
    // Tried three times (the pool's one machine backed off in between).
    assert_eq!(errors.len(), 3, "{stderr}");
    assert!(
        errors[0].contains("the connection failed while connecting"),
        "{stderr}"
    );
    assert!(stderr.contains("was not built"), "{stderr}");
}
