//! JSON-RPC extensions of `sync-node`: system (nonces), transaction-payment queries, and the
//! sync service's object API and status (`sync_*`).
use std::sync::Arc;

use jsonrpsee::RpcModule;
use sc_transaction_pool_api::TransactionPool;
use sp_api::ProvideRuntimeApi;
use sp_block_builder::BlockBuilder;
use sp_blockchain::{Error as BlockChainError, HeaderBackend, HeaderMetadata};
use sync_runtime::{opaque::Block, AccountId, Balance, Nonce};

/// Dependencies of the full node's RPC.
pub struct FullDeps<C, P> {
	/// The client instance to use.
	pub client: Arc<C>,
	/// Transaction pool instance.
	pub pool: Arc<P>,
	/// The sync service.
	pub sync: Arc<sync_service::SyncHandle>,
}

/// The node's RPC extensions.
pub fn create_full<C, P>(
	deps: FullDeps<C, P>,
) -> Result<RpcModule<()>, Box<dyn std::error::Error + Send + Sync>>
where
	C: ProvideRuntimeApi<Block>,
	C: HeaderBackend<Block> + HeaderMetadata<Block, Error = BlockChainError> + 'static,
	C: Send + Sync + 'static,
	C::Api: substrate_frame_rpc_system::AccountNonceApi<Block, AccountId, Nonce>,
	C::Api: pallet_transaction_payment_rpc::TransactionPaymentRuntimeApi<Block, Balance>,
	C::Api: BlockBuilder<Block>,
	P: TransactionPool + 'static,
{
	use pallet_transaction_payment_rpc::{TransactionPayment, TransactionPaymentApiServer};
	use substrate_frame_rpc_system::{System, SystemApiServer};

	let mut module = RpcModule::new(());
	let FullDeps { client, pool, sync } = deps;

	module.merge(System::<P, C, Block>::new(client.clone(), pool).into_rpc())?;
	module.merge(TransactionPayment::<C, Block>::new(client).into_rpc())?;
	module.merge(sync_service::rpc_module(sync)?)?;
	Ok(module)
}
