#!/usr/bin/env bash
# Runs every test: Rust unit/integration tests of all crates, the multi-process scenarios
# (real sync-node processes on the `local` chain), then the polkadot.js suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/.env

step() { printf '\n==> %s\n' "$*"; }

step "build sync-node (release, target dir $CARGO_TARGET_DIR)"
cargo build --release --locked -p sync-node

step "Rust tests"
cargo test --release --locked --workspace

export SYNC_NODE_BIN="$CARGO_TARGET_DIR/release/sync-node"

step "multi-node scenarios (tests/e2e: six sync-node processes, several minutes)"
cargo test --release --locked -p sync-e2e -- --ignored --nocapture --test-threads=1

step "polkadot.js suite"
cd tests/js
npm ci --no-audit --no-fund --loglevel=error
npm test
