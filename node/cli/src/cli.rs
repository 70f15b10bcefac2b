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

	/// Remove the whole chain: its database and this node's sync data (objects, indexes, op
	/// logs; the data-plane key is kept, as the network key is).
	PurgeChain(PurgeChainCmd),

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

/// `purge-chain`: Substrate's, plus the sync service's data directory.
#[derive(Debug, Clone, clap::Parser)]
pub struct PurgeChainCmd {
	#[allow(missing_docs)]
	#[clap(flatten)]
	pub chain: sc_cli::PurgeChainCmd,

	/// The node's `--sync-data-dir`, if it runs with one (default: `sync` in the chain's
	/// directory).
	#[arg(long, value_name = "PATH")]
	pub sync_data_dir: Option<std::path::PathBuf>,
}

impl sc_cli::CliConfiguration for PurgeChainCmd {
	fn shared_params(&self) -> &sc_cli::SharedParams {
		&self.chain.shared_params
	}

	fn database_params(&self) -> Option<&sc_cli::DatabaseParams> {
		Some(&self.chain.database_params)
	}
}

impl PurgeChainCmd {
	/// Asks once (unless `-y`) for both, then removes the chain database (Substrate's command)
	/// and everything in the sync data directory but its data-plane key.
	pub fn run(&self, config: sc_service::Configuration) -> sc_cli::Result<()> {
		use std::io::Write;
		let chain_dir = config.base_path.config_dir(config.chain_spec.id());
		let sync_dir = sync_service::config::data_dir(self.sync_data_dir.as_deref(), &chain_dir);
		if !self.chain.yes {
			let db = config.database.path().map(|p| p.display().to_string()).unwrap_or_default();
			print!(
				"Are you sure to remove the chain database {db} and the sync data in {} (its data-plane key is kept)? [y/N]: ",
				sync_dir.display()
			);
			std::io::stdout().flush()?;
			let mut input = String::new();
			std::io::stdin().read_line(&mut input)?;
			if !matches!(input.trim().chars().next(), Some('y' | 'Y')) {
				println!("Aborted");
				return Ok(());
			}
		}
		let mut chain = self.chain.clone();
		chain.yes = true;
		chain.run(config.database)?;
		match sync_service::config::purge_data_dir(&sync_dir)? {
			true => println!("{:?} removed (data-plane key kept).", sync_dir),
			false => eprintln!("{:?} did not exist.", sync_dir),
		}
		Ok(())
	}
}
