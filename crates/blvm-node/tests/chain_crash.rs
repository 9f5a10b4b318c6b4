//! `kill -9` during import leaves a store that reopens consistent.
//!
//! The test re-runs its own binary, selecting itself, with an environment
//! variable that turns the child into an importer: it imports mainnet
//! blocks one by one and prints each height; the parent SIGKILLs it at different points, reopens the store
//! and checks the tip and the UTXO set against a clean import to the same
//! height. Several rounds continue from the store the previous kill left.

mod chain;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bitcoin::Network;
use blvm_node::chain::Chain;
use chain::{framed_blocks, tempdir};

const DIR_VAR: &str = "BLVM_CHAIN_CRASH_DIR";

#[test]
fn kill_9_mid_import_restarts_consistent() {
    if let Some(dir) = std::env::var_os(DIR_VAR) {
        // This process is the child the test below starts and kills.
        import_until_killed(std::path::Path::new(&dir));
    }
    let dir = tempdir();
    let blocks = framed_blocks("blocks-000000-000438.dat");
    for kill_after in [40u32, 160, 300] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill_9_mid_import_restarts_consistent",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(h) = line.strip_prefix("height ") {
                if h.trim().parse::<u32>().unwrap() >= kill_after {
                    break;
                }
            }
        }
        // Child::kill is SIGKILL on Unix: no destructor, no flush, mid-commit or not.
        // The pipe stays open until the child is dead: closing it first would
        // let the child die of a failed `println!` (a panic that unwinds)
        // instead of the kill.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        drop(lines);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "the child died of the kill: {status:?}");

        let chain = Chain::open(dir.path(), Network::Bitcoin).unwrap();
        let tip = chain.tip();
        assert!(tip.height >= kill_after, "tip {} below {kill_after}", tip.height);
        assert_eq!(tip.hash, blocks[tip.height as usize].block_hash());
        assert_eq!(chain.block_hash(tip.height), Some(tip.hash));
        assert_eq!(chain.block_hash(tip.height + 1), None);
        assert_eq!(chain.utxo_stats(), chain.scan_utxo_set().unwrap());

        let fresh_dir = tempdir();
        let fresh = Chain::open(fresh_dir.path(), Network::Bitcoin).unwrap();
        for b in &blocks[1..=tip.height as usize] {
            fresh.process_block(b).unwrap();
        }
        assert_eq!(chain.utxo_stats(), fresh.utxo_stats(), "after kill at {}", tip.height);
        eprintln!("killed at height {}: consistent", tip.height);
    }
}

/// The child process: imports until it is killed; never returns.
fn import_until_killed(dir: &std::path::Path) -> ! {
    let chain = Chain::open(dir, Network::Bitcoin).unwrap();
    let blocks = framed_blocks("blocks-000000-000438.dat");
    let start = chain.tip().height as usize + 1;
    for b in &blocks[start..] {
        chain.process_block(b).unwrap();
        println!("height {}", chain.tip().height);
    }
    // Keep the store busy until killed: disconnect and reconnect the tip.
    loop {
        let tip = chain.tip().hash;
        chain.invalidate_block(&tip).unwrap();
        chain.reconsider_block(&tip).unwrap();
        println!("height {}", chain.tip().height);
    }
}
