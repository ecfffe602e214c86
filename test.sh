#!/usr/bin/env bash
# The test command (see README.md): formatting, lints, every test, and the
# conformance suite over the captured sessions, in memory and through every
# runtime (as a child process, and through the loopback sshd when
# NIXWIRE_SSH_* say where it is: see docs/conformance.md).
set -euo pipefail
cd "$(dirname "$0")"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# Broken intra-doc links are errors too: the docs are part of the API.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

TRANSCRIPTS=(conformance/captures conformance/recorded)
cargo build -q -p nixwire-conformance -p nixwire-replay
conformance() {
  echo "== conformance $*"
  # Every failing transcript's line, and the summary.
  ./target/debug/nixwire-conformance "$@" "${TRANSCRIPTS[@]}" | grep -v '^ok '
}
conformance --runtime core
for runtime in tokio smol blocking; do
  conformance --runtime "$runtime" --transport process
  if [ -n "${NIXWIRE_SSH_PORT:-}" ]; then
    conformance --runtime "$runtime" --transport ssh \
      --ssh-host "$NIXWIRE_SSH_HOST" --ssh-port "$NIXWIRE_SSH_PORT" \
      --ssh-user "$NIXWIRE_SSH_USER" --ssh-key "$NIXWIRE_SSH_KEY" \
      --ssh-host-key "$NIXWIRE_SSH_HOST_KEY" --jobs 8
  elif [ "${CI:-}" = true ]; then
    echo "CI=true but no loopback sshd (NIXWIRE_SSH_PORT unset)" >&2
    exit 1
  else
    echo "== conformance --runtime $runtime --transport ssh: skipped (no loopback sshd; see docs/conformance.md)"
  fi
done

# flake.nix cannot be built here (no network for nixpkgs); its structure is
# evaluated against a stub nixpkgs (.ci/flake-stub.nix).
if command -v nix-instantiate >/dev/null; then
  echo "== flake.nix: structure, against a stub nixpkgs"
  nix-instantiate --eval --strict .ci/flake-stub.nix >/dev/null
elif [ "${CI:-}" = true ]; then
  echo "CI=true but no nix-instantiate to evaluate flake.nix" >&2
  exit 1
fi

# The fuzz targets (fuzz/, docs/fuzzing.md) for a few seconds each, where a
# nightly toolchain with cargo-fuzz is installed; said when not.
if cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== fuzz: every target for 5 s"
  fuzz/run.sh 5
else
  echo "== fuzz: skipped (no nightly toolchain with cargo-fuzz; see docs/fuzzing.md)"
fi
