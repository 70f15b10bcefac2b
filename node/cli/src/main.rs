//! `sync-node`: the Sync Registry chain node.
#![warn(missing_docs)]

mod chain_spec;
mod cli;
mod command;
mod duties;
mod object_cmd;
mod object_http;
mod rpc;
mod service;
mod sync_service;

fn main() -> sc_cli::Result<()> {
	command::run()
}
