//! `nixwire ping` and `nixwire path-info` against real Nix 2.8 (Debian's
//! `nix-bin`), through each runtime, on a chroot store reached locally and
//! through the loopback sshd (`ssh://` and `ssh-ng://`), compared with what
//! `nix path-info` prints for the same store.
//!
//! Without Nix or the sshd a test says why and passes, unless `CI=true` or
//! `NIXWIRE_REQUIRE_NIX=1` (see `nixwire-testkit`).

use std::path::Path;
use std::process::{Command, Output};

use nixwire_core::session::Protocol;
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The stores a chroot store `root` is reached as: its path (a local
/// `nix-daemon --stdio`), and through the sshd with both protocols.
fn stores(root: &Path) -> Vec<String> {
    let mut v = vec![root.display().to_string()];
    if let Some(sshd) = kit::Sshd::from_env() {
        v.push(sshd.uri(Protocol::Serve, root));
        v.push(sshd.uri(Protocol::Worker, root));
    }
    v
}

#[test]
fn ping_says_what_the_store_announced_and_fails_clearly() {
    if !kit::have_nix() {
        return;
    }
    let root = kit::scratch("cli-ping");
    for store in stores(&root) {
        for runtime in RUNTIMES {
            let out = nixwire(&["ping", "--runtime", runtime, &store]);
            let stdout = text(&out.stdout);
            assert!(
                out.status.success(),
                "{store} {runtime}: {}",
                text(&out.stderr)
            );
            let want = if store.starts_with("ssh://") {
                "protocol: serve 2."
            } else {
                "protocol: worker 1."
            };
            assert!(stdout.contains(want), "{store} {runtime}: {stdout}");
        }
    }
    // Nothing listens on port 1 here.
    let out = nixwire(&["ping", "ssh-ng://127.0.0.1:1?ssh-key=/nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("nixwire: cannot ping ssh-ng://127.0.0.1:1"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    let out = nixwire(&["ping", "ssh-ng://[::1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("host"), "{}", text(&out.stderr));
}

#[test]
fn path_info_json_is_what_nix_path_info_prints() {
    if !kit::have_nix() {
        return;
    }
    let root = kit::scratch("cli-path-info");
    let closure = kit::wide_closure(&root, "cli");
    let top = kit::full(&closure[closure.len() - 1]);
    for recursive in [false, true] {
        for (store, nix_store, sshopts) in stores_for_nix(&root) {
            let mut nix_args = vec!["path-info", "--store", &nix_store, "--json"];
            if recursive {
                nix_args.push("-r");
            }
            nix_args.push(&top);
            let want = kit::nix_command("nix")
                .args(&nix_args)
                .env("NIX_SSHOPTS", &sshopts)
                .output()
                .expect("nix path-info");
            assert!(want.status.success(), "{}", text(&want.stderr));
            for runtime in RUNTIMES {
                let mut args = vec![
                    "path-info",
                    "--runtime",
                    runtime,
                    "--store",
                    &store,
                    "--json",
                ];
                if recursive {
                    args.push("-r");
                }
                args.push(&top);
                let out = nixwire(&args);
                assert!(
                    out.status.success(),
                    "{store} {runtime}: {}",
                    text(&out.stderr)
                );
                assert_eq!(
                    text(&out.stdout).trim(),
                    text(&want.stdout).trim(),
                    "{store} {runtime} recursive={recursive}"
                );
            }
        }
    }
}

/// Each store of [`stores`], with the URI and `NIX_SSHOPTS` Nix 2.8 reaches
/// it by (it reads no port in a store URI): what each protocol carries
/// differs (the serve protocol has no registration time), so nixwire is
/// compared with Nix through the same protocol.
fn stores_for_nix(root: &Path) -> Vec<(String, String, String)> {
    let mut v = vec![(
        root.display().to_string(),
        root.display().to_string(),
        String::new(),
    )];
    if let Some(sshd) = kit::Sshd::from_env() {
        for protocol in [Protocol::Serve, Protocol::Worker] {
            let (nix_uri, sshopts) = sshd.uri_for_nix(protocol, root);
            v.push((sshd.uri(protocol, root), nix_uri, sshopts));
        }
    }
    v
}

#[test]
fn path_info_of_an_invalid_path_says_so_and_fails() {
    if !kit::have_nix() {
        return;
    }
    let root = kit::scratch("cli-invalid");
    let root_s = root.display().to_string();
    let missing = "/nix/store/00000000000000000000000000000000-missing";
    let out = nixwire(&["path-info", "--store", &root_s, missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not valid"),
        "{}",
        text(&out.stderr)
    );
    let out = nixwire(&["path-info", "--store", &root_s, "--json", missing]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("[{{\"path\":\"{missing}\",\"valid\":false}}]")
    );
    let out = nixwire(&["path-info", "--store", &root_s, "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a store path"),
        "{}",
        text(&out.stderr)
    );
}
