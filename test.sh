#!/usr/bin/env bash
# The test command (see README.md): formatting, lints, every test, and the
# conformance suite over the captured sessions.
set -euo pipefail
cd "$(dirname "$0")"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# Broken intra-doc links are errors too: the docs are part of the API.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo run -q -p nixwire-conformance -- conformance/captures conformance/recorded
