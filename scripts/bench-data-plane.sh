#!/usr/bin/env bash
# Data-plane benchmark: verified snapshot sync MB/s, Primary egress with n = 1, 2, 4, 8 Replicas,
# bytes re-fetched after kill -9 at 50 %, peak RSS. Prints a table; asserts nothing.
# Arguments go to sync-bench: --size-mib N (default 1024), --large-mib N (256), --egress-mib N
# (128), --dir PATH (default: the system temp dir), --only-sync.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/.env
cargo build --release --locked -p sync-net --bin sync-bench
exec "$CARGO_TARGET_DIR/release/sync-bench" "$@"
