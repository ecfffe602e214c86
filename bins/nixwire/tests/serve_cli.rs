//! `nixwire serve --stdio` as the remote program of real Nix 2.8's
//! `ssh://` store, through the loopback sshd: `nix copy` to and from it,
//! `nix-build --builders` building through it (a good build and a failing
//! one), and a read-only server refusing a copy. Every store is a scratch
//! chroot store, named to the server by the `--store` Nix 2.8 appends from
//! `remote-store=`; every copied path is checked by Nix itself
//! (`--verify-path`) in the store it went to.
//!
//! Without Nix or the sshd a test says why and passes, unless `CI=true` or
//! `NIXWIRE_REQUIRE_NIX=1` (see `nixwire-testkit`).

use std::path::Path;
use std::process::Output;

use nixwire_testkit as kit;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `remote-program` value that runs this build's `nixwire serve
/// --stdio`, spaces written `%20` as a store URI needs them; `extra` are
/// more arguments (`--read-only`).
fn remote_program(extra: &[&str]) -> String {
    let mut words = vec![env!("CARGO_BIN_EXE_nixwire"), "serve", "--stdio"];
    words.extend_from_slice(extra);
    words.join("%20")
}

/// The loopback sshd and the `ssh://` URI Nix 2.8 reaches `nixwire serve`
/// on it by, for the chroot store `root` (`remote-store=`), with the
/// `NIX_SSHOPTS` that gives the port.
fn serve_uri(sshd: &kit::Sshd, root: &Path, extra: &[&str]) -> (String, String) {
    let sshopts = format!("-p {}", sshd.port);
    let uri = format!(
        "ssh://{}@{}?remote-store={}&ssh-key={}&base64-ssh-public-host-key={}&remote-program={}",
        sshd.user,
        sshd.host,
        root.display(),
        sshd.key.display(),
        sshd.host_key,
        remote_program(extra)
    );
    (uri, sshopts)
}

/// Runs a Nix program with the tests' settings and `NIX_SSHOPTS`.
fn nix(program: &str, args: &[&str], sshopts: &str) -> Output {
    kit::nix_command(program)
        .args(args)
        .env("NIX_SSHOPTS", sshopts)
        .output()
        .expect("run nix")
}

/// `nix copy --no-check-sigs --from FROM --to TO TOP`.
fn nix_copy(from: &str, to: &str, top: &str, sshopts: &str) -> Output {
    nix(
        "nix",
        &["copy", "--no-check-sigs", "--from", from, "--to", to, top],
        sshopts,
    )
}

/// `nix-build` into the chroot store `local` with no local build slot
/// (`-j0`), so that the build goes to `builders`; `args` say what to build.
fn nix_build(local: &str, builders: &str, args: &[&str], sshopts: &str) -> Output {
    let mut all = vec![
        "--store",
        local,
        "--no-out-link",
        "-j0",
        "--builders",
        builders,
    ];
    all.extend_from_slice(args);
    nix("nix-build", &all, sshopts)
}

/// Both preconditions; `None` (the test passes, having said why) when
/// either is missing and neither is required.
fn setup() -> Option<kit::Sshd> {
    if !kit::have_nix() {
        return None;
    }
    kit::Sshd::from_env()
}

#[test]
fn nix_copy_to_and_from_nixwire_serve() {
    let Some(sshd) = setup() else { return };
    let dir = kit::scratch("serve-copy");
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    let closure = kit::wide_closure(&a, "serve-copy");
    let top = kit::full(&closure[closure.len() - 1]);
    let (to_b, sshopts) = serve_uri(&sshd, &b, &[]);

    let a_s = a.display().to_string();
    let out = nix_copy(&a_s, &to_b, &top, &sshopts);
    assert!(out.status.success(), "copy --to: {}", text(&out.stderr));
    kit::all_there(&b, &closure, "copied to nixwire serve");

    // Back out of b, through nixwire serve, into a fresh store.
    let c_s = c.display().to_string();
    let out = nix_copy(&to_b, &c_s, &top, &sshopts);
    assert!(out.status.success(), "copy --from: {}", text(&out.stderr));
    kit::all_there(&c, &closure, "copied from nixwire serve");

    // What Nix's ssh:// store reports of the paths is what the store holds.
    let info = |store: &str| {
        let out = nix(
            "nix",
            &["path-info", "--store", store, "-r", &top],
            &sshopts,
        );
        assert!(out.status.success(), "path-info: {}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(info(&to_b), info(&b.display().to_string()));
}

#[test]
fn nix_build_with_nixwire_serve_as_the_builder() {
    let Some(sshd) = setup() else { return };
    let dir = kit::scratch("serve-build");
    let (local, remote) = (dir.join("local"), dir.join("remote"));
    // The key and the host key go in the machine's columns, not the URI:
    // Nix names a lock file after the URI, which must stay short.
    let sshopts = format!("-p {}", sshd.port);
    let uri = format!(
        "ssh://{}@{}?remote-store={}&remote-program={}",
        sshd.user,
        sshd.host,
        remote.display(),
        remote_program(&[])
    );
    let builders = format!(
        "{uri} x86_64-linux {} 1 1 - - {}",
        sshd.key.display(),
        sshd.host_key
    );
    let local_s = local.display().to_string();
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hello.nix");
    let greeting = format!("served {}", kit::unique_number());
    let out = nix_build(
        &local_s,
        &builders,
        &[
            hello, "--argstr", "greeting", &greeting, "--argstr", "seconds", "0",
        ],
        &sshopts,
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "nix-build: {stderr}");
    // The builder's log came back through nixwire serve's stderr.
    assert!(stderr.contains("building nixwire-hello on"), "{stderr}");
    let built = kit::store_path(&text(&out.stdout));
    kit::all_there(&local, std::slice::from_ref(&built), "built remotely");
    assert!(
        kit::is_valid(&remote, &built),
        "the output is on the builder"
    );

    // A failing build: its log line and the failure reach nix-build.
    let expr = format!(
        "derivation {{ name = \"fails\"; system = builtins.currentSystem; \
         builder = \"/bin/sh\"; args = [ \"-c\" \"echo boom-$((6*7))-{}; exit 3\" ]; }}",
        kit::unique_number()
    );
    let out = nix_build(&local_s, &builders, &["-E", &expr], &sshopts);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "a failing build succeeded: {stderr}");
    assert!(stderr.contains("boom-42-"), "the log line: {stderr}");
    assert!(stderr.contains("failed with exit code 3"), "{stderr}");
}

#[test]
fn read_only_nixwire_serve_refuses_a_copy_and_registers_nothing() {
    let Some(sshd) = setup() else { return };
    let dir = kit::scratch("serve-read-only");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let closure = kit::small_closure(&a, "serve-ro");
    let top = kit::full(&closure[closure.len() - 1]);
    // Nix's ssh:// client always appends --write; --read-only wins.
    let (uri, sshopts) = serve_uri(&sshd, &b, &["--read-only"]);
    let a_s = a.display().to_string();
    let out = nix_copy(&a_s, &uri, &top, &sshopts);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "a read-only copy succeeded: {stderr}"
    );
    assert!(
        stderr.contains("error: importing paths is not allowed"),
        "{stderr}"
    );
    for path in &closure {
        assert!(!kit::is_valid(&b, path), "{path} was registered");
    }
    // Reading still works: nothing is there.
    let out = nix("nix", &["path-info", "--store", &uri, &top], &sshopts);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is not valid"),
        "{}",
        text(&out.stderr)
    );
}
