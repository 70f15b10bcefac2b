//! Command line of `sync-node`: Substrate's standard run command and subcommands.

/// Subcommands besides running the node.
#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Subcommand {
	/// Key management cli utilities
	#[command(subcommand)]
	Key(sc_cli::KeySubcommand),

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
	pub sync: crate::sync_service::SyncParams,
}
