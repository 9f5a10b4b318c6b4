//! Fee estimation from fee rates actually observed on this node.
//!
//! Every transaction that enters the mempool normally (not one re-added from a
//! disconnected block) has its fee rate and the tip height at entry recorded
//! in its [`Entry`](super::Entry). When a block confirms it,
//! [`FeeEstimator::record`] keeps a sample `(fee rate, blocks to confirm)`,
//! where "blocks to confirm" is `confirm height - entry tip height` (1 =
//! confirmed by the very next block).
//!
//! [`FeeEstimator::estimate`]`(target)` is the **median (50th percentile,
//! nearest-rank)** of the fee rates of the samples that confirmed within
//! `target` blocks, among samples from the last
//! [`MempoolConfig::fee_estimation_window_blocks`](super::MempoolConfig)
//! blocks (at most
//! [`MempoolConfig::fee_estimation_max_samples`](super::MempoolConfig) of
//! them). With no such sample there is no estimate: nothing is invented.

use std::collections::VecDeque;

/// The percentile of confirmed fee rates [`FeeEstimator::estimate`] returns.
pub const ESTIMATE_PERCENTILE: f64 = 0.5;

/// One confirmation observed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeeSample {
    /// The transaction's fee rate, sat/vB.
    pub fee_rate: f64,
    /// Blocks it took to confirm (at least 1).
    pub blocks: u32,
    /// Height of the confirming block.
    pub height: u32,
}

/// A bounded window of observed confirmations.
#[derive(Debug, Clone)]
pub struct FeeEstimator {
    samples: VecDeque<FeeSample>,
    window_blocks: u32,
    max_samples: usize,
}

impl FeeEstimator {
    /// An estimator keeping samples of the last `window_blocks` blocks, at most `max_samples`.
    pub fn new(window_blocks: u32, max_samples: usize) -> Self {
        FeeEstimator {
            samples: VecDeque::new(),
            window_blocks: window_blocks.max(1),
            max_samples: max_samples.max(1),
        }
    }

    /// Records that a transaction paying `fee_rate` sat/vB, which entered the
    /// mempool when the tip was at `entry_height`, was confirmed at `height`.
    pub fn record(&mut self, fee_rate: f64, entry_height: u32, height: u32) {
        if !fee_rate.is_finite() {
            return;
        }
        let blocks = height.saturating_sub(entry_height).max(1);
        self.samples.push_back(FeeSample {
            fee_rate,
            blocks,
            height,
        });
        while self.samples.len() > self.max_samples {
            self.samples.pop_front();
        }
    }

    /// Drops samples older than the window, counted back from `tip_height`.
    pub fn prune(&mut self, tip_height: u32) {
        let oldest = tip_height.saturating_sub(self.window_blocks - 1);
        self.samples.retain(|s| s.height >= oldest && s.height <= tip_height);
    }

    /// Forgets the samples recorded for a block at `height` or above (used
    /// when blocks are disconnected).
    pub fn forget_from(&mut self, height: u32) {
        self.samples.retain(|s| s.height < height);
    }

    /// The estimate for confirmation within `target` blocks (0 is read as
    /// 1), in sat/vB; `None` when no sample confirmed within `target`.
    pub fn estimate(&self, target: u32) -> Option<f64> {
        let target = target.max(1);
        let mut rates: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.blocks <= target)
            .map(|s| s.fee_rate)
            .collect();
        percentile(&mut rates, ESTIMATE_PERCENTILE)
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// The samples held, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = &FeeSample> {
        self.samples.iter()
    }
}

/// Nearest-rank percentile `p` (0..=1) of `values`; `None` when empty.
pub(crate) fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = (p * values.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, values.len()) - 1;
    Some(values[idx])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_data_no_estimate_then_median_of_confirmed_within_target() {
        let mut est = FeeEstimator::new(10, 100);
        assert_eq!(est.estimate(1), None);
        est.record(5.0, 100, 101);
        assert_eq!(est.estimate(1), Some(5.0));
        est.record(1.0, 100, 103);
        assert_eq!(est.estimate(1), Some(5.0));
        assert_eq!(est.estimate(3), Some(1.0));
        est.record(9.0, 102, 103);
        assert_eq!(est.estimate(6), Some(5.0));
    }

    #[test]
    fn window_and_capacity_bound_the_samples() {
        let mut est = FeeEstimator::new(5, 2);
        est.record(1.0, 0, 1);
        est.record(2.0, 1, 2);
        est.record(3.0, 2, 3);
        assert_eq!(est.sample_count(), 2);
        est.prune(7);
        assert_eq!(est.sample_count(), 1);
        est.prune(20);
        assert_eq!(est.estimate(1), None);
        est.record(4.0, 20, 21);
        est.forget_from(21);
        assert_eq!(est.estimate(1), None);
    }
}
