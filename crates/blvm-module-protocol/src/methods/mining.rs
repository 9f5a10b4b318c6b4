//! Block templates and block submission.

use serde::{Deserialize, Serialize};

use crate::hash::{bytes_field, Hash32};

/// Params of `get_block_template`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BlockTemplateParams {
    /// Script the template's coinbase pays to; the node's default when nil.
    #[serde(with = "bytes_field::option", default)]
    pub coinbase_script: Option<Vec<u8>>,
    /// Block weight, in weight units, to leave free for the header, the
    /// transaction count and a coinbase the caller will rewrite (a Stratum
    /// V2 pool adds its own outputs). `nil`: the node's default (4000). At
    /// least [`BlockTemplateParams::MIN_COINBASE_RESERVED_WEIGHT`]: a lower
    /// value is raised to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coinbase_reserved_weight: Option<u32>,
    /// Sigop cost to leave free for that coinbase. `nil`: the node's
    /// default (400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coinbase_reserved_sigops: Option<u32>,
}

impl BlockTemplateParams {
    /// The least weight a template leaves for header and coinbase, as
    /// Bitcoin Core's `-blockreservedweight` minimum.
    pub const MIN_COINBASE_RESERVED_WEIGHT: u32 = 2000;
}

/// Result of `get_block_template`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockTemplate {
    /// Block version.
    pub version: i32,
    /// The tip the block builds on.
    pub prev_hash: Hash32,
    /// Height of the new block.
    pub height: u64,
    /// Compact target.
    pub bits: u32,
    /// Earliest valid timestamp (median time past + 1).
    pub min_time: u32,
    /// Suggested timestamp.
    pub cur_time: u32,
    /// Subsidy plus fees, satoshis.
    pub coinbase_value: u64,
    /// A coinbase transaction paying `coinbase_value` (consensus bytes).
    #[serde(with = "bytes_field")]
    pub coinbase_tx: Vec<u8>,
    /// The selected mempool transactions, consensus bytes, in block order.
    pub transactions: Vec<TemplateTransaction>,
}

/// One transaction of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateTransaction {
    /// Consensus bytes.
    #[serde(with = "bytes_field")]
    pub data: Vec<u8>,
    /// Its fee, satoshis.
    pub fee: u64,
}

/// Params of `submit_block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitBlock {
    /// The block's consensus bytes.
    #[serde(with = "bytes_field")]
    pub block: Vec<u8>,
}

/// Result of `submit_block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitBlockResult {
    /// One of [`SubmitBlockResult::STATUSES`].
    pub status: String,
    /// Why it was rejected, in Bitcoin Core's words where one exists.
    #[serde(default)]
    pub reason: Option<String>,
}

impl SubmitBlockResult {
    /// Valid, and on the active chain now (it extended it or made a
    /// reorganisation).
    pub const ACCEPTED: &'static str = "accepted";
    /// The node already had it.
    pub const DUPLICATE: &'static str = "duplicate";
    /// Valid as far as it could be checked, and stored on a side branch
    /// with no more work than the active chain (Core's BIP22 answer).
    pub const INCONCLUSIVE: &'static str = "inconclusive";
    /// Refused; `reason` says why.
    pub const REJECTED: &'static str = "rejected";
    /// Every `status` a node may answer. A module must treat another value
    /// (a later version's) as not accepted.
    pub const STATUSES: [&'static str; 4] = [Self::ACCEPTED, Self::DUPLICATE, Self::INCONCLUSIVE, Self::REJECTED];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_fields_are_optional_and_absent_when_unset() {
        // What a module built before them sends: decodes with no reserve.
        #[derive(Serialize)]
        struct Old {
            coinbase_script: Option<Vec<u8>>,
        }
        let old = rmp_serde::to_vec_named(&Old { coinbase_script: None }).expect("encodes");
        let params: BlockTemplateParams = rmp_serde::from_slice(&old).expect("decodes");
        assert_eq!(params, BlockTemplateParams::default());
        // Unset, they are not written: the bytes are the old ones.
        assert_eq!(rmp_serde::to_vec_named(&params).expect("encodes"), old);
        let params = BlockTemplateParams {
            coinbase_script: None,
            coinbase_reserved_weight: Some(5268),
            coinbase_reserved_sigops: Some(40),
        };
        let bytes = rmp_serde::to_vec_named(&params).expect("encodes");
        assert_eq!(
            rmp_serde::from_slice::<BlockTemplateParams>(&bytes).expect("decodes"),
            params
        );
    }
}
