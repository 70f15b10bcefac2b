//! Builds the runtime's WASM blob (see scripts/setup.sh for the toolchain it needs).
fn main() {
	#[cfg(feature = "std")]
	substrate_wasm_builder::WasmBuilder::build_using_defaults();
}
