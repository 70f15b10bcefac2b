//! `sync-node` commands and start-up checks an operator meets, against the real binary:
//! `purge-chain` removes the sync data too, and a misconfigured object API fails the start with
//! a clear error instead of a background task dying later. Alone:
//! `cargo test --release -p sync-node --test cli`.
use std::{
	process::{Command, Stdio},
	time::{Duration, Instant},
};
use sync_e2e::{free_port, node_binary};

fn bin() -> Command {
	sync_e2e::use_node_binary(env!("CARGO_BIN_EXE_sync-node"));
	Command::new(node_binary())
}

/// The defect: `purge-chain` removed the chain database and left the sync store (objects,
/// indexes, op logs) behind. Now both go; the data-plane key stays, as the network key does.
#[test]
fn purge_chain_also_removes_the_sync_data() {
	let base = tempfile::tempdir().unwrap();
	let chain = base.path().join("chains/sync_dev");
	std::fs::create_dir_all(chain.join("paritydb/full")).unwrap();
	std::fs::write(chain.join("paritydb/full/metadata"), b"x").unwrap();
	std::fs::create_dir_all(chain.join("sync/store/objects/00")).unwrap();
	std::fs::write(chain.join("sync/store/db.redb"), b"store").unwrap();
	std::fs::write(chain.join("sync/network-key"), [7u8; 32]).unwrap();
	let out = bin()
		.args(["purge-chain", "--dev", "-y", "--base-path"])
		.arg(base.path())
		.output()
		.unwrap();
	assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
	assert!(!chain.join("paritydb").exists(), "chain database left");
	let left: Vec<_> = std::fs::read_dir(chain.join("sync"))
		.unwrap()
		.map(|e| e.unwrap().file_name())
		.collect();
	assert_eq!(left, ["network-key"], "sync data left");
}

/// Without `-y`, a "no" keeps everything (Substrate's prompt semantics, for both).
#[test]
fn purge_chain_aborted_keeps_everything() {
	use std::io::Write;
	let base = tempfile::tempdir().unwrap();
	let sync = base.path().join("chains/sync_dev/sync/store");
	std::fs::create_dir_all(&sync).unwrap();
	std::fs::write(sync.join("db.redb"), b"store").unwrap();
	let mut child = bin()
		.args(["purge-chain", "--dev", "--base-path"])
		.arg(base.path())
		.stdin(Stdio::piped())
		.stdout(Stdio::piped())
		.spawn()
		.unwrap();
	child.stdin.take().unwrap().write_all(b"n\n").unwrap();
	let out = child.wait_with_output().unwrap();
	assert!(String::from_utf8_lossy(&out.stdout).contains("Aborted"));
	assert!(sync.join("db.redb").exists());
}

/// Runs a dev node with `extra` and expects it to stop on its own, unsuccessfully, within
/// two minutes; returns its stderr.
fn failed_start(extra: &[&str]) -> String {
	let base = tempfile::tempdir().unwrap();
	let mut child = bin()
		.args(["--dev", "--base-path"])
		.arg(base.path())
		.args(["--rpc-port", &free_port().to_string(), "--port", &free_port().to_string()])
		.args(["--sync-listen-addr", &format!("/ip4/127.0.0.1/tcp/{}", free_port())])
		.args(extra)
		.stdout(Stdio::null())
		.stderr(Stdio::piped())
		.spawn()
		.unwrap();
	let started = Instant::now();
	loop {
		if let Some(status) = child.try_wait().unwrap() {
			let mut err = String::new();
			std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
			assert!(!status.success(), "started despite {extra:?}");
			return err;
		}
		if started.elapsed() > Duration::from_secs(120) {
			let _ = child.kill();
			panic!("a node with {extra:?} kept running");
		}
		std::thread::sleep(Duration::from_millis(100));
	}
}

/// The defect: the object API bound its port in an essential background task, so a taken
/// port surfaced only as that task's log line while the node ran on without the API it was
/// asked for (and an `accept` error later would have stopped the whole node). Now the port is
/// bound at start and a failure is a start error naming the flag.
#[test]
fn taken_http_port_fails_the_start_clearly() {
	let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
	let addr = taken.local_addr().unwrap().to_string();
	let err = failed_start(&["--sync-http-addr", &addr]);
	assert!(err.contains(&format!("--sync-http-addr {addr}")), "{err}");
}

/// A token file that is missing or too weak to be a secret is a start error, not a silently
/// open (or silently closed) write API.
#[test]
fn weak_http_token_fails_the_start_clearly() {
	let dir = tempfile::tempdir().unwrap();
	let token = dir.path().join("token");
	std::fs::write(&token, "hunter2\n").unwrap();
	let addr = format!("127.0.0.1:{}", free_port());
	let token = token.to_str().unwrap();
	let err = failed_start(&["--sync-http-addr", &addr, "--sync-http-token-file", token]);
	assert!(err.contains("at least 32"), "{err}");
}
