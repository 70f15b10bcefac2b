#!/usr/bin/env bash
# Regenerates pallets/sync-registry/src/weights.rs from the pallet's benchmarks, executed on the
# runtime's WASM (built with `runtime-benchmarks`) by frame-omni-bencher, and prints the
# weight of `submit_proof` as a share of the block's compute.
# Takes ≈ 30 min the first time (omni-bencher compiles the client stack), minutes afterwards.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/.env
tools="${SYNC_TOOLS_DIR:-$HOME/.cache/sync-registry/tools}"
if [ ! -x "$tools/bin/frame-omni-bencher" ]; then
  # omni-bencher's sc-cli dependency builds RocksDB, whose bindings need libclang.
  ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libclang-dev clang; }
  cargo install frame-omni-bencher --version 0.28.0 --root "$tools"
fi
if [ "${SKIP_RUNTIME_BUILD:-}" != 1 ]; then
  cargo build --release --locked -p sync-runtime --features runtime-benchmarks
fi
wasm="$CARGO_TARGET_DIR/release/wbuild/sync-runtime/sync_runtime.compact.compressed.wasm"
"$tools/bin/frame-omni-bencher" v1 benchmark pallet \
  --runtime "$wasm" \
  --pallet pallet_sync_registry --extrinsic '*' \
  --steps 20 --repeat 10 \
  --heap-pages 4096 \
  --output pallets/sync-registry/src/weights.rs \
  --header scripts/weights-header.txt \
  --template scripts/frame-weight-template.hbs \
  | tee /tmp/sync-registry-bench.txt
# Block compute: 2 s of ref time (runtime/src/configs.rs), 75 % for normal extrinsics.
awk '/Extrinsic: "submit_proof"/{f=1} f && /Time ~=/{print "submit_proof: " $0; exit}' /tmp/sync-registry-bench.txt || true
