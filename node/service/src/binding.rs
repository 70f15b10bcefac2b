//! Peer-id bindings: the data-plane key's consent that one account registers its peer id.
//!
//! The chain accepts `registerNode(role, peerId, addrs, signature)` and `updateNode([peerId,
//! signature], …)` only with an Ed25519 signature by the key inside `peerId` over
//! [`sync_primitives::peer_binding_message`] (tag ‖ genesis hash ‖ SCALE-encoded account ‖
//! peer id), so nobody can register another node's data plane as their own. This module is the
//! one place the node makes such signatures: the driver for the keystore's `sync` accounts
//! (`--sync-register`), and `sync-node key sign-peer-binding` for an operator registering from
//! polkadot.js.
//!
//! There is deliberately no RPC for it: a public method that signs a binding for any account
//! would let anyone bind this node's peer id to their own account.
use sync_net::{Keypair, PeerId};
use sync_primitives::{peer_binding_message, peer_id_ed25519_key, PeerSignature};

/// One binding: the SCALE-encoded account id and the data-plane key's signature for it.
pub type Binding = (Vec<u8>, PeerSignature);

/// The data-plane key's signature letting `account` (SCALE-encoded; 32 bytes for `AccountId32`)
/// register the key's peer id on the chain whose genesis hash is `genesis`.
///
/// Refused for a key whose peer id the chain cannot verify (not an Ed25519 identity peer id;
/// `sync-node` always makes Ed25519 keys).
pub fn sign(key: &Keypair, genesis: &[u8; 32], account: &[u8]) -> Result<PeerSignature, String> {
	let peer_id = key.public().to_peer_id().to_bytes();
	if peer_id_ed25519_key(&peer_id).is_none() {
		return Err("the data-plane key is not an Ed25519 key".into());
	}
	let signature = key
		.sign(&peer_binding_message(genesis, account, &peer_id))
		.map_err(|e| format!("signing the peer binding: {e}"))?;
	PeerSignature::try_from(signature.as_slice())
		.map_err(|_| format!("a signature of {} bytes, not 64", signature.len()))
}

/// A binding for each of `accounts` (SCALE-encoded account ids), in their order.
pub fn bindings(
	key: &Keypair,
	genesis: &[u8; 32],
	accounts: &[Vec<u8>],
) -> Result<Vec<Binding>, String> {
	accounts.iter().map(|a| Ok((a.clone(), sign(key, genesis, a)?))).collect()
}

/// The peer id a binding made with `key` is for.
pub fn peer_id(key: &Keypair) -> PeerId {
	key.public().to_peer_id()
}

#[cfg(test)]
mod tests {
	use super::*;

	fn key(n: u8) -> Keypair {
		let mut secret = [n; 32];
		Keypair::ed25519_from_bytes(&mut secret).expect("any 32 bytes are an Ed25519 secret")
	}

	#[test]
	fn the_signature_verifies_against_the_key_inside_the_peer_id() {
		use sp_core::{ed25519, Pair as _};
		let (k, genesis, account) = (key(1), [9u8; 32], [2u8; 32]);
		let sig = ed25519::Signature::from_raw(sign(&k, &genesis, &account).expect("signs"));
		let peer = peer_id(&k).to_bytes();
		// What the pallet does: the key comes out of the peer id, the message is rebuilt, and a
		// plain Ed25519 verification (another implementation than libp2p's) must accept it.
		let public =
			ed25519::Public::from_raw(peer_id_ed25519_key(&peer).expect("Ed25519 peer id"));
		let verify = |g: &[u8; 32], a: &[u8], p: &[u8]| {
			ed25519::Pair::verify(&sig, peer_binding_message(g, a, p), &public)
		};
		assert!(verify(&genesis, &account, &peer));
		assert!(!verify(&genesis, &[3u8; 32], &peer), "another account");
		assert!(!verify(&[8u8; 32], &account, &peer), "another chain");
		assert!(!verify(&genesis, &account, &peer_id(&key(2)).to_bytes()), "another peer id");
	}

	#[test]
	fn one_binding_per_account_in_order() {
		let (k, genesis) = (key(4), [0u8; 32]);
		let accounts = vec![vec![1u8; 32], vec![2u8; 32]];
		let got = bindings(&k, &genesis, &accounts).expect("signs");
		assert_eq!(got.len(), 2);
		assert_eq!(got[0].0, accounts[0]);
		assert_eq!(got[1].0, accounts[1]);
		assert_eq!(got[0].1, sign(&k, &genesis, &accounts[0]).expect("signs"));
		assert_ne!(got[0].1, got[1].1);
	}
}
