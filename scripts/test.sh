#!/usr/bin/env bash
# Runs every test: formatting, then ONE cargo test graph for everything Rust (clippy with
# -D warnings as the compiler of the workspace crates, unit and integration tests of every crate,
# the multi-process scenarios of tests/e2e, which are an integration test of sync-node and get
# the node binary from the same graph), then the polkadot.js suites against that binary.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/.env

step() { printf '\n==> %s\n' "$*"; }

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "clippy -D warnings + Rust tests + multi-node scenarios (one cargo graph, target dir $CARGO_TARGET_DIR)"
cargo test --release --locked --workspace

step "polkadot.js suites"
export SYNC_NODE_BIN="$CARGO_TARGET_DIR/release/sync-node"
cd tests/js
npm ci --no-audit --no-fund --loglevel=error
npm test
