//! The merkle path and the rebuilt block, on real mainnet blocks
//! (`tests/data`, with their provenance in its README).

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, Transaction, Txid, Witness};
use blvm_sdk::protocol::methods::mining::{BlockTemplate as NodeTemplate, TemplateTransaction};
use blvm_sdk::Hash32;

use super::*;

fn block(name: &str) -> Block {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    deserialize(&bytes).expect("a block")
}

fn txids(block: &Block) -> Vec<Txid> {
    block.txdata[1..].iter().map(Transaction::compute_txid).collect()
}

#[test]
fn the_coinbase_merkle_path_of_real_blocks_leads_to_their_merkle_root() {
    for (name, txs, depth) in [("block-300025.raw", 461, 9), ("block-482683.raw", 12, 4)] {
        let b = block(name);
        assert_eq!(b.txdata.len(), txs, "{name}");
        let path = merkle_path(&txids(&b));
        assert_eq!(path.len(), depth, "{name}: one hash per level");
        assert_eq!(
            path[0],
            b.txdata[1].compute_txid().to_byte_array(),
            "{name}: the sibling leaf"
        );
        assert_eq!(
            merkle_root(b.txdata[0].compute_txid(), &path),
            b.header.merkle_root,
            "{name}"
        );
        // Any other coinbase gives another root.
        assert_ne!(merkle_root(Txid::all_zeros(), &path), b.header.merkle_root, "{name}");
    }
    assert!(merkle_path(&[]).is_empty());
    let alone = Txid::from_byte_array([7; 32]);
    assert_eq!(merkle_root(alone, &[]).to_byte_array(), [7; 32]);
}

/// The node's template that block `b` completes: its coinbase's first
/// output the payout, the rest kept.
fn node_template(b: &Block, height: u64) -> NodeTemplate {
    NodeTemplate {
        version: b.header.version.to_consensus(),
        prev_hash: Hash32(b.header.prev_blockhash.to_byte_array()),
        height,
        bits: b.header.bits.to_consensus(),
        min_time: b.header.time - 600,
        cur_time: b.header.time,
        coinbase_value: b.txdata[0].output[0].value.to_sat(),
        coinbase_tx: serialize(&b.txdata[0]),
        transactions: b.txdata[1..]
            .iter()
            .map(|tx| TemplateTransaction {
                data: serialize(tx),
                fee: 1,
            })
            .collect(),
    }
}

#[test]
fn a_real_segwit_block_is_rebuilt_from_its_template_and_a_witness_stripped_coinbase() {
    let b = block("block-482683.raw");
    let t = Template::from_node(9, &node_template(&b, 482_683)).expect("template");
    assert_eq!(t.id, 9);
    assert_eq!(t.height, 482_683);
    // The BIP34 push of 482683: 3 bytes, little-endian.
    assert_eq!(t.coinbase_prefix, [0x03, 0x7b, 0x5d, 0x07]);
    assert_eq!(t.coinbase_tx_value_remaining, b.txdata[0].output[0].value.to_sat());
    assert_eq!(t.coinbase_tx_outputs, b.txdata[0].output[1..].to_vec());
    assert!(t
        .coinbase_tx_outputs
        .iter()
        .any(|o| o.script_pubkey.as_bytes().starts_with(&WITNESS_COMMITMENT_PREFIX)));
    assert_eq!(t.transactions.len(), 11);
    assert_eq!(t.fees, 11);
    assert_eq!(t.target_le(), b.header.target().to_le_bytes());
    let serialized = t.serialized_outputs();
    let first: bitcoin::TxOut = deserialize(&serialized[..serialize(&t.coinbase_tx_outputs[0]).len()]).expect("out");
    assert_eq!(first, t.coinbase_tx_outputs[0]);

    assert_eq!(
        b.txdata[0].input[0].witness.to_vec(),
        vec![WITNESS_RESERVED_VALUE.to_vec()]
    );
    let mut stripped = b.txdata[0].clone();
    stripped.input[0].witness = Witness::new();
    let solution = Solution {
        template_id: 9,
        version: b.header.version.to_consensus() as u32,
        header_timestamp: b.header.time,
        header_nonce: b.header.nonce,
        coinbase_tx: serialize(&stripped),
    };
    let rebuilt = t.block(&solution).expect("a block");
    assert_eq!(rebuilt.block_hash(), b.block_hash());
    assert_eq!(
        serialize(&rebuilt),
        serialize(&b),
        "the same bytes, witness reserved value included"
    );
    assert!(rebuilt.check_witness_commitment());

    // The coinbase as it came is kept as it came.
    let as_is = Solution {
        coinbase_tx: serialize(&b.txdata[0]),
        ..solution.clone()
    };
    assert_eq!(serialize(&t.block(&as_is).expect("block")), serialize(&b));
    // Not a coinbase, or no transaction at all.
    let not_coinbase = Solution {
        coinbase_tx: serialize(&b.txdata[1]),
        ..solution.clone()
    };
    assert!(t.block(&not_coinbase).is_err());
    let garbage = Solution {
        coinbase_tx: vec![1, 2, 3],
        ..solution
    };
    assert!(t.block(&garbage).is_err());
}

#[test]
fn a_coinbase_without_outputs_or_with_a_long_height_push_is_refused() {
    let b = block("block-482683.raw");
    let mut template = node_template(&b, 482_683);
    let mut coinbase = b.txdata[0].clone();
    coinbase.output.clear();
    template.coinbase_tx = serialize(&coinbase);
    assert!(Template::from_node(1, &template).is_err());

    let mut coinbase = b.txdata[0].clone();
    coinbase.input[0].script_sig = bitcoin::ScriptBuf::from_bytes([vec![0x09], vec![1; 9], vec![0x01, 0x00]].concat());
    coinbase.output[0].value = Amount::from_sat(1);
    template.coinbase_tx = serialize(&coinbase);
    assert!(Template::from_node(1, &template).is_err());
}
