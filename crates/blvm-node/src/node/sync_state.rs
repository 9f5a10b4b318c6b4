//! Whether the node is synced: `get_chain_info.is_synced` for modules and
//! `getblockchaininfo.initialblockdownload` (its negation) for RPC.
//!
//! Bitcoin Core's rule, without peers to compare with: the node is synced
//! when it is not importing blocks and its tip's timestamp is less than
//! [`MAX_TIP_AGE`] old (Core's `-maxtipage` default, the same on every
//! network). So a fresh regtest node, whose tip is the 2011 genesis block,
//! is not synced until a block is mined, and a mainnet node that imported
//! 2009 blocks is not either. Unlike Core, the answer is not latched: a
//! node whose tip grows old (no blocks for a day) is no longer synced.

use super::Node;

/// How old a tip may be for the node to count as synced, in seconds: 24 h.
pub const MAX_TIP_AGE: u32 = 24 * 60 * 60;

/// The rule: not importing, and `tip_time` (unix seconds, the tip's header
/// time) within [`MAX_TIP_AGE`] of `now`. A tip from the future (clock
/// skew) counts as recent.
pub fn is_synced(importing: bool, tip_time: u32, now: u32) -> bool {
    !importing && now.saturating_sub(tip_time) < MAX_TIP_AGE
}

impl Node {
    /// Whether blocks are being imported (`BlockSyncStarted` was published
    /// and `BlockSyncCompleted` not yet).
    pub fn is_importing(&self) -> bool {
        self.sync.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// [`is_synced`] for this node, now.
    pub fn is_synced(&self) -> bool {
        let tip = self.chain.tip();
        let time = self.chain.header(&tip.hash).map_or(0, |h| h.header.time);
        is_synced(self.is_importing(), time, super::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_only_when_not_importing_and_the_tip_is_less_than_a_day_old() {
        let now = 1_700_000_000;
        assert!(is_synced(false, now - 600, now));
        assert!(is_synced(false, now + 7200, now), "a tip ahead of our clock is recent");
        assert!(!is_synced(false, now - MAX_TIP_AGE, now));
        // Regtest's genesis, 2011.
        assert!(!is_synced(false, 1_296_688_602, now));
        assert!(!is_synced(true, now - 600, now), "importing is never synced");
    }
}
