//! `sync-node`: the Sync Registry chain node.
#![warn(missing_docs)]
// `sc_cli::Error` and `sc_service::Error` are large, and they are Substrate's: the run command
// and the service builders return them as every Substrate node does.
#![allow(clippy::result_large_err)]

mod chain_spec;
mod cli;
mod command;
mod key_cmd;
mod object_cmd;
mod rpc;
mod service;

fn main() -> sc_cli::Result<()> {
	command::run()
}
