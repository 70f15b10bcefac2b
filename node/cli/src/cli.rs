//! Command line of `sync-node`: Substrate's standard run command and subcommands.

/// Subcommands besides running the node.
#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Subcommand {
	/// Key management cli utilities: Substrate's, and `sign-peer-binding` (the data-plane
	/// key's signature that lets an account register this node's peer id).
	#[command(subcommand)]
	Key(crate::key_cmd::KeySubcommand),

	/// Build a chain specification.
	/// DEPRECATED: `export-chain-spec` is the replacement.
	BuildSpec(sc_cli::BuildSpecCmd),

	/// Export the chain specification.
	ExportChainSpec(sc_cli::ExportChainSpecCmd),

	/// Validate blocks.
	CheckBlock(sc_cli::CheckBlockCmd),

	/// Export blocks.
	ExportBlocks(sc_cli::ExportBlocksCmd),

	/// Export the state of a given block into a chain spec.
	ExportState(sc_cli::ExportStateCmd),

	/// Import blocks.
	ImportBlocks(sc_cli::ImportBlocksCmd),

	/// Remove the whole chain.
	PurgeChain(sc_cli::PurgeChainCmd),

	/// Revert the chain to a previous state.
	Revert(sc_cli::RevertCmd),

	/// Db meta columns information.
	ChainInfo(sc_cli::ChainInfoCmd),

	/// Write a file as an object into a segment a running node owns (through its RPC).
	Put(crate::object_cmd::PutCmd),

	/// Read an object by key from a running node holding the segment (through its RPC).
	Get(crate::object_cmd::GetCmd),

	/// Print a running node's sync status (through its RPC).
	Status(crate::object_cmd::StatusCmd),
}

/// The `sync-node` command line.
#[derive(Debug, clap::Parser)]
pub struct Cli {
	/// Subcommand, if any; without one the node runs.
	#[command(subcommand)]
	pub subcommand: Option<Subcommand>,

	/// Standard Substrate node options.
	#[clap(flatten)]
	pub run: sc_cli::RunCmd,

	/// Data-plane (sync service) options.
	#[clap(flatten)]
	pub sync: sync_service::SyncParams,
}
