#!/usr/bin/env bash
# RUSTC_WORKSPACE_WRAPPER for every build (set in scripts/.env): the workspace's crates are
# compiled by clippy-driver, which is rustc plus clippy's lints, so the test graph *is* the
# clippy run (`cargo clippy` works the same way, on `cargo check`) and lints cost no second
# build. Lint levels come from CLIPPY_ARGS (scripts/.env: -D warnings).
# Cargo calls `$0 <rustc> <args…>`. The runtime's WASM build (substrate-wasm-builder runs cargo
# for wasm32, possibly with another toolchain that has no clippy) gets plain rustc.
rustc="$1"
shift
for a in "$@"; do
  case "$a" in
    wasm32*|--target=wasm32*) exec "$rustc" "$@" ;;
  esac
done
exec clippy-driver "$rustc" "$@"
