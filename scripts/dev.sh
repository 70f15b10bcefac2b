#!/usr/bin/env bash
# Builds sync-node (release) and starts a single-authority development chain.
# Extra arguments go to sync-node, e.g. `./scripts/dev.sh --rpc-port 9955`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/.env
cargo build --release --locked -p sync-node
exec "$CARGO_TARGET_DIR/release/sync-node" --dev "$@"
