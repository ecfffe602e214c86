//! `nixwire copy` against real Nix 2.8 (Debian's `nix-bin`), through each
//! runtime: a closure made in one chroot store copied into another locally,
//! then a 31-path closure into a store behind the loopback sshd (`ssh://`
//! and `ssh-ng://`) and back from there into a third; every copied path
//! checked by Nix itself (`--check-validity`, `--verify-path`) in the store
//! it went to. A path whose contents no longer match its hash is refused,
//! named, and registered nowhere.
//!
//! Without Nix or the sshd a test says why and passes, unless `CI=true` or
//! `NIXWIRE_REQUIRE_NIX=1` (see `nixwire-testkit`).

use std::process::{Command, Output};

use nixwire_core::session::Protocol;
use nixwire_core::store::StorePath;
use nixwire_testkit as kit;

const RUNTIMES: [&str; 3] = ["tokio", "smol", "blocking"];

fn nixwire(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nixwire"))
        .args(args)
        .envs(kit::nix_env())
        .env_remove("NIX_SSHOPTS")
        .output()
        .expect("run nixwire")
}

/// `nixwire copy --runtime RUNTIME --from-store FROM --to TO PATH`.
fn copy_to(runtime: &str, from: &str, to: &str, path: &StorePath) -> Output {
    let path = kit::full(path);
    nixwire(&[
        "copy",
        "--runtime",
        runtime,
        "--from-store",
        from,
        "--to",
        to,
        &path,
    ])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `nixwire copy` with `args` and the closure's top path; checks it
/// succeeded and said it copied `copied` paths, and returns its stdout.
fn copy(args: &[&str], top: &StorePath, copied: usize, runtime: &str) -> String {
    let top = kit::full(top);
    let mut all = vec!["copy", "--runtime", runtime];
    all.extend_from_slice(args);
    all.push(&top);
    let out = nixwire(&all);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{all:?}: {stderr}");
    assert!(
        stderr.contains(&format!("nixwire: copied {copied} paths (")),
        "{all:?}: {stderr}"
    );
    // Not a terminal: one plain line before the transfer, no bar.
    let announced = stderr.contains(&format!("nixwire: copying {copied} paths ("));
    assert_eq!(announced, copied > 0, "{all:?}: {stderr}");
    text(&out.stdout)
}

#[test]
fn copy_between_local_chroot_stores_then_again_copies_nothing() {
    if !kit::have_nix() {
        return;
    }
    let dir = kit::scratch("cli-copy-local");
    let a = dir.join("a");
    let closure = kit::small_closure(&a, "copy-local");
    let top = &closure[closure.len() - 1];
    let a_s = a.display().to_string();
    for runtime in RUNTIMES {
        let b = dir.join(format!("b-{runtime}"));
        let b_s = b.display().to_string();
        let printed = copy(
            &["--from-store", &a_s, "--to", &b_s],
            top,
            closure.len(),
            runtime,
        );
        // Dependencies first, one line each.
        let want: Vec<String> = closure.iter().map(kit::full).collect();
        assert_eq!(printed.lines().collect::<Vec<_>>(), want, "{runtime}");
        kit::all_there(&b, &closure, runtime);

        let out = copy_to(runtime, &a_s, &b_s, top);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{runtime}: {stderr}");
        assert!(stderr.contains("copied 0 paths (0 bytes)"), "{stderr}");
        assert!(
            stderr.contains(&format!("{} already there", closure.len())),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "{runtime}: {}", text(&out.stdout));
    }
}

#[test]
fn copy_of_a_path_the_source_lacks_fails_in_one_line() {
    if !kit::have_nix() {
        return;
    }
    let dir = kit::scratch("cli-copy-missing");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let missing = "/nix/store/00000000000000000000000000000000-missing";
    let out = nixwire(&[
        "copy",
        "--from-store",
        &a.display().to_string(),
        "--to",
        &b.display().to_string(),
        missing,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "nixwire: copy: 00000000000000000000000000000000-missing is not valid at the source"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn copy_to_and_from_stores_behind_the_sshd() {
    if !kit::have_nix() {
        return;
    }
    let Some(sshd) = kit::Sshd::from_env() else {
        return;
    };
    let dir = kit::scratch("cli-copy-ssh");
    let a = dir.join("a");
    let closure = kit::wide_closure(&a, "copy-ssh");
    assert_eq!(closure.len(), 31);
    let top = &closure[closure.len() - 1];
    let a_s = a.display().to_string();
    for runtime in RUNTIMES {
        for protocol in [Protocol::Serve, Protocol::Worker] {
            let tag = format!("{runtime}-{protocol:?}");
            let remote = dir.join(format!("remote-{tag}"));
            let uri = sshd.uri(protocol, &remote);
            copy(
                &["--from-store", &a_s, "--to", &uri],
                top,
                closure.len(),
                runtime,
            );
            kit::all_there(&remote, &closure, &tag);
            copy(&["--from-store", &a_s, "--to", &uri], top, 0, runtime);

            let back = dir.join(format!("back-{tag}"));
            copy(
                &["--from", &uri, "--to-store", &back.display().to_string()],
                top,
                closure.len(),
                runtime,
            );
            kit::all_there(&back, &closure, &tag);
        }
    }
}

#[test]
fn copy_over_the_maximum_size_is_refused_before_anything_moves() {
    if !kit::have_nix() {
        return;
    }
    let dir = kit::scratch("cli-copy-max");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let closure = kit::small_closure(&a, "copy-max");
    let top = kit::full(&closure[closure.len() - 1]);
    let out = nixwire(&[
        "copy",
        "--max-size",
        "1",
        "--from-store",
        &a.display().to_string(),
        "--to",
        &b.display().to_string(),
        &top,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("nixwire: copy: the closure is too large to copy"),
        "{stderr}"
    );
    assert!(stderr.contains("maximum of 1"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for path in &closure {
        assert!(!kit::is_valid(&b, path), "{path} was copied");
    }
}

#[test]
fn a_corrupted_nar_is_refused_named_and_registered_nowhere() {
    if !kit::have_nix() {
        return;
    }
    let dir = kit::scratch("cli-copy-corrupt");
    let a = dir.join("a");
    let closure = kit::wide_closure(&a, "copy-corrupt");
    let top = &closure[closure.len() - 1];
    // Change a file in the middle of the chain behind Nix's back: its
    // registered hash and size stay, its NAR no longer matches them.
    let victim = &closure[10];
    let file = a.join(kit::full(victim).trim_start_matches('/'));
    let mut perms = std::fs::metadata(&file).expect("the file").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&file, perms).expect("make it writable");
    let mut contents = std::fs::read(&file).expect("read it");
    contents[0] ^= 0x20;
    std::fs::write(&file, &contents).expect("corrupt it");

    let a_s = a.display().to_string();
    let sshd = kit::Sshd::from_env();
    for runtime in RUNTIMES {
        let local = dir.join(format!("b-{runtime}"));
        let mut dests = vec![(format!("{runtime} local"), local.clone(), None)];
        for protocol in [Protocol::Serve, Protocol::Worker] {
            if let Some(sshd) = &sshd {
                let root = dir.join(format!("remote-{runtime}-{protocol:?}"));
                let uri = sshd.uri(protocol, &root);
                dests.push((format!("{runtime} {protocol:?}"), root, Some(uri)));
            }
        }
        for (what, root, uri) in dests {
            let to = uri.unwrap_or_else(|| root.display().to_string());
            let out = copy_to(runtime, &a_s, &to, top);
            let stderr = text(&out.stderr);
            assert!(!out.status.success(), "{what}: {stderr}");
            assert!(
                stderr.contains(&kit::full(victim)),
                "{what}: names the path: {stderr}"
            );
            assert!(
                stderr.contains("does not match its path info"),
                "{what}: says why: {stderr}"
            );
            let errors = stderr.lines().filter(|l| l.starts_with("nixwire: copy:"));
            assert_eq!(errors.count(), 1, "{what}: one error line: {stderr}");
            // Neither the corrupted path nor anything after it is
            // registered; what is registered is whole.
            for path in &closure[10..] {
                assert!(!kit::is_valid(&root, path), "{what}: {path} was registered");
            }
            if root.exists() {
                let verify = kit::verify_store(&root);
                assert!(verify.status.success(), "{what}: {}", text(&verify.stderr));
                let verify_out = text(&verify.stderr);
                assert!(!verify_out.contains("was modified"), "{what}: {verify_out}");
            }
        }
    }
}
