//! `sync-node key …`: Substrate's key utilities, plus `sign-peer-binding`, which signs with the
//! node's data-plane key the binding the chain asks for in `registerNode` / `updateNode`.
//!
//! `sign-peer-binding` reads the key file locally and prints the binding; there is no RPC for
//! it on purpose (a public method signing bindings for any account would let anyone bind this
//! node's peer id to their own account).
use codec::Encode;
use sc_cli::SubstrateCli;
use std::path::PathBuf;
use sync_primitives::hex::{hex, unhex};

/// Key management utilities.
#[derive(Debug, clap::Subcommand)]
pub enum KeySubcommand {
	/// Substrate's key utilities (`generate`, `inspect`, `insert`, …).
	#[command(flatten)]
	Substrate(sc_cli::KeySubcommand),

	/// Sign, with the node's data-plane key, the peer binding that lets an account register
	/// (or move to) this node's peer id: prints `{"peerId", "peerIdHex", "signature"}` as JSON,
	/// the `peerId` and `peerSignature` arguments of `syncRegistry.registerNode` /
	/// `updateNode`.
	SignPeerBinding(SignPeerBindingCmd),
}

impl KeySubcommand {
	/// Runs the subcommand.
	pub fn run<C: SubstrateCli>(&self, cli: &C) -> sc_cli::Result<()> {
		match self {
			KeySubcommand::Substrate(cmd) => cmd.run(cli),
			KeySubcommand::SignPeerBinding(cmd) => cmd.run(cli),
		}
	}
}

/// `sync-node key sign-peer-binding`.
///
/// The key file is found as the node finds it: `--sync-key-file`, else `network-key` in
/// `--sync-data-dir`, else in `<base path>/chains/<chain spec id>/sync/` (the node's default
/// base path unless `--base-path`; `--chain` as given to the node, default `local`).
#[derive(Debug, Clone, clap::Args)]
pub struct SignPeerBindingCmd {
	/// The account that will send `registerNode` / `updateNode`: SS58 address or `0x` and the
	/// hex of its 32 bytes.
	#[arg(long, value_name = "ACCOUNT")]
	pub account: String,

	/// Genesis hash of the chain, `0x` and 64 hex digits (polkadot.js: `api.genesisHash.toHex()`;
	/// RPC: `chain_getBlockHash(0)`). A binding is good on that chain only.
	#[arg(long, value_name = "HASH")]
	pub genesis_hash: String,

	/// The data-plane key file itself (32 secret bytes, as the node writes it).
	#[arg(long, value_name = "PATH", conflicts_with_all = ["sync_data_dir", "base_path", "chain"])]
	pub sync_key_file: Option<PathBuf>,

	/// The node's `--sync-data-dir`, if it runs with one.
	#[arg(long, value_name = "PATH", conflicts_with_all = ["base_path", "chain"])]
	pub sync_data_dir: Option<PathBuf>,

	/// The node's `--base-path` (default: the node's default base path).
	#[arg(long, short = 'd', value_name = "PATH")]
	pub base_path: Option<PathBuf>,

	/// The node's `--chain`: `dev`, `local` or a chain spec file (default: `local`, as the
	/// node's).
	#[arg(long, value_name = "CHAIN_SPEC")]
	pub chain: Option<String>,
}

impl SignPeerBindingCmd {
	/// Where the node keeps its data-plane key, by the node's own rule
	/// (`sync_service::config::data_dir`).
	fn key_file<C: SubstrateCli>(&self, cli: &C) -> sc_cli::Result<PathBuf> {
		if let Some(file) = &self.sync_key_file {
			return Ok(file.clone());
		}
		let chain_dir = match &self.sync_data_dir {
			Some(_) => PathBuf::new(),
			None => {
				let spec = cli.load_spec(self.chain.as_deref().unwrap_or(""))?;
				let base = match &self.base_path {
					Some(p) => sc_service::BasePath::new(p.clone()),
					None => sc_service::BasePath::from_project("", "", &C::executable_name()),
				};
				base.config_dir(spec.id())
			},
		};
		Ok(sync_service::config::data_dir(self.sync_data_dir.as_deref(), &chain_dir)
			.join(sync_service::config::KEY_FILE))
	}

	/// Prints the binding of the data-plane key's peer id to `--account` on `--genesis-hash`.
	pub fn run<C: SubstrateCli>(&self, cli: &C) -> sc_cli::Result<()> {
		let input = |e: String| sc_cli::Error::Input(e);
		let account: sync_runtime::AccountId = self
			.account
			.parse()
			.map_err(|e| input(format!("--account {}: {e}", self.account)))?;
		let genesis = unhex(&self.genesis_hash)
			.ok()
			.and_then(|b| <[u8; 32]>::try_from(b).ok())
			.ok_or_else(|| {
				input(format!(
					"--genesis-hash {}: expected 0x and 64 hex digits",
					self.genesis_hash
				))
			})?;
		let path = self.key_file(cli)?;
		let key = sync_service::config::load_key(&path).map_err(|e| {
			input(format!(
				"data-plane key: {e} (start the node once to create it, or pass --sync-key-file, \
				 --sync-data-dir or --base-path/--chain as given to the node)"
			))
		})?;
		let signature =
			sync_service::binding::sign(&key, &genesis, &account.encode()).map_err(input)?;
		let peer = sync_service::binding::peer_id(&key);
		println!(
			"{}",
			serde_json::json!({
				"peerId": peer.to_base58(),
				"peerIdHex": hex(&peer.to_bytes()),
				"signature": hex(&signature),
			})
		);
		Ok(())
	}
}
