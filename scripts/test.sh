#!/usr/bin/env bash
# Runs every test: Rust unit/integration tests of all crates, then the polkadot.js suite
# against a freshly started `sync-node --dev`.
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

step "polkadot.js suite"
export SYNC_NODE_BIN="$CARGO_TARGET_DIR/release/sync-node"
cd tests/js
npm ci --no-audit --no-fund --loglevel=error
npm test
