//! What `stratumv2_status` answers (as JSON).

use std::collections::VecDeque;

use serde::Serialize;

/// How many latency samples the status keeps.
pub const LATENCY_SAMPLES: usize = 1000;

/// One connected client.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClientStatus {
    /// The module's number for the connection.
    pub id: u64,
    /// Its address (`ip:port`).
    pub peer: String,
    /// Whether `SetupConnection` succeeded.
    pub setup: bool,
    /// The version agreed (2).
    pub protocol_version: Option<u16>,
    /// From its `SetupConnection`.
    pub vendor: String,
    /// From its `SetupConnection`.
    pub hardware_version: String,
    /// From its `SetupConnection`.
    pub firmware: String,
    /// From its `SetupConnection`.
    pub device_id: String,
    /// When it connected (Unix seconds).
    pub connected_at: u64,
    /// Its `CoinbaseOutputConstraints`, once sent.
    pub coinbase_output_max_additional_size: Option<u32>,
    /// Its `CoinbaseOutputConstraints`, once sent.
    pub coinbase_output_max_additional_sigops: Option<u16>,
    /// The weight its templates leave for the coinbase.
    pub reserved_weight: Option<u32>,
    /// The sigop cost they leave.
    pub reserved_sigops: Option<u32>,
    /// `NewTemplate`s sent to it.
    pub templates_sent: u64,
    /// The last one's id.
    pub last_template_id: Option<u64>,
    /// The last one's fees, satoshis.
    pub last_template_fees: Option<u64>,
    /// Mempool changes looked at for it (whether or not a template went).
    pub mempool_updates: u64,
    /// Solutions it sent.
    pub solutions: u64,
}

/// Solutions, by outcome.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Solutions {
    /// Submitted to the node.
    pub submitted: u64,
    /// The node took them onto its active chain.
    pub accepted: u64,
    /// The node answered otherwise (rejected, duplicate, inconclusive).
    pub not_accepted: u64,
    /// For a template of an earlier tip: not submitted.
    pub stale: u64,
    /// For a template id never sent: not submitted.
    pub unknown_template: u64,
    /// That did not make a block (a coinbase that does not parse).
    pub invalid: u64,
}

/// The last solution submitted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LastSolution {
    /// The client's address.
    pub client: String,
    /// The template it solved.
    pub template_id: u64,
    /// The block's hash, as Core prints it.
    pub block_hash: String,
    /// Its height.
    pub height: u64,
    /// The node's `submit_block` status.
    pub status: String,
    /// The node's reason, when not accepted.
    pub reason: Option<String>,
}

/// The latency from the node's `NewBlock` (as the module receives it) to
/// the `SetNewPrevHash` written to a client, over the last samples.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Samples in all (not only those kept).
    pub count: u64,
    /// Median of those kept, milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile of those kept, milliseconds.
    pub p99_ms: Option<f64>,
    /// Largest of those kept, milliseconds.
    pub max_ms: Option<f64>,
}

/// A bounded record of latencies.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    kept: VecDeque<f64>,
    count: u64,
}

impl Samples {
    /// Records one, in seconds.
    pub fn push(&mut self, seconds: f64) {
        if self.kept.len() == LATENCY_SAMPLES {
            self.kept.pop_front();
        }
        self.kept.push_back(seconds);
        self.count += 1;
    }

    /// Their summary.
    pub fn summary(&self) -> Latency {
        let mut sorted: Vec<f64> = self.kept.iter().map(|s| s * 1000.0).collect();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| -> Option<f64> {
            let last = sorted.len().checked_sub(1)?;
            sorted.get(((last as f64) * q).round() as usize).copied()
        };
        Latency {
            count: self.count,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: sorted.last().copied(),
        }
    }
}

/// The whole answer.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Status {
    /// The address listened on, once listening.
    pub listening: Option<String>,
    /// Why the module does not listen, if it does not.
    pub listen_error: Option<String>,
    /// Whether the node granted `network_access`.
    pub network_access: bool,
    /// The authority public key pools pin (base58check).
    pub authority_public_key: String,
    /// The connected clients.
    pub clients: Vec<ClientStatus>,
    /// `NewTemplate`s sent, to every client.
    pub templates_sent: u64,
    /// `SetNewPrevHash`es sent.
    pub prev_hashes_sent: u64,
    /// Connections closed for a protocol error (garbage, oversized frames,
    /// unknown messages, a failed handshake or setup).
    pub clients_refused: u64,
    /// Solutions, by outcome.
    pub solutions: Solutions,
    /// The last solution submitted.
    pub last_solution: Option<LastSolution>,
    /// `NewBlock` to `SetNewPrevHash`.
    pub new_block_to_prev_hash: Latency,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_the_samples_kept() {
        let mut s = Samples::default();
        assert_eq!(s.summary().p50_ms, None);
        for ms in 1..=100 {
            s.push(f64::from(ms) / 1000.0);
        }
        let l = s.summary();
        assert_eq!(l.count, 100);
        assert!((l.p50_ms.expect("p50") - 51.0).abs() < 1e-9, "{l:?}");
        assert!((l.p99_ms.expect("p99") - 99.0).abs() < 1e-9, "{l:?}");
        assert!((l.max_ms.expect("max") - 100.0).abs() < 1e-9);
        for _ in 0..LATENCY_SAMPLES {
            s.push(0.0);
        }
        assert_eq!(s.summary().max_ms, Some(0.0));
        assert_eq!(s.summary().count, 100 + LATENCY_SAMPLES as u64);
    }
}
