//! `nixwire-smol` against real Nix (Debian's `nix-bin`): `nix-store --serve
//! --write` and `nix-daemon --stdio`, each run here as a child and through
//! the loopback sshd of `.ci/sshd.sh`, every server with a chroot store of
//! its own (so client and server are two stores).
//!
//! Without Nix or the sshd a test says why and passes, unless `CI=true` or
//! `NIXWIRE_REQUIRE_NIX=1` (see `nixwire-testkit`).

use nixwire_smol::Store;

/// smol's executor, shaped like tokio's runtime for the shared tests.
struct Runtime;

impl Runtime {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        smol::block_on(future)
    }
}

fn runtime() -> Runtime {
    Runtime
}

include!("../../testkit/live/async_tests.rs");
