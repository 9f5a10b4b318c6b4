//! Payloads of the governance events, published by governance modules:
//! proposals and votes, economic node signalling, veto thresholds, fork
//! detection and webhook delivery.
//!
//! Votes, decisions and node types travel as documented strings so that a
//! governance module can add values without breaking older subscribers.

use serde::{Deserialize, Serialize};

/// A governance proposal was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GovernanceProposalCreated {
    /// Identifier of the proposal.
    pub proposal_id: String,
    /// Repository the proposal targets, e.g. `"BTCDecoded/blvm-node"`.
    pub repository: String,
    /// Pull request number.
    pub pr_number: u64,
    /// Governance tier of the change.
    pub tier: String,
}

/// A vote was cast on a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GovernanceProposalVoted {
    /// Identifier of the proposal.
    pub proposal_id: String,
    /// Who voted.
    pub voter: String,
    /// The vote: `"approve"`, `"reject"` or `"abstain"`.
    pub vote: String,
}

/// A proposal was merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GovernanceProposalMerged {
    /// Identifier of the proposal.
    pub proposal_id: String,
    /// Repository it was merged into.
    pub repository: String,
    /// Pull request number.
    pub pr_number: u64,
}

/// An economic node registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EconomicNodeRegistered {
    /// Identifier of the economic node.
    pub node_id: String,
    /// Kind of node: `"miner"`, `"exchange"`, `"service"` ...
    pub node_type: String,
    /// Share of the network hash rate it controls, in percent, for miners.
    pub hashpower_percent: Option<f64>,
}

/// A status query to, or response from, an economic node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EconomicNodeStatus {
    /// Identifier pairing a query with its responses.
    pub request_id: String,
    /// What is asked: `"status"`, `"hashpower"`, `"uptime"` ...
    pub query_type: String,
    /// The node asked or answering; `None` for a query to all nodes.
    pub node_id: Option<String>,
    /// The response, as JSON text; `None` for a query.
    pub response_data: Option<String>,
}

/// An economic node announced its decision on a fork.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EconomicNodeForkDecision {
    /// Identifier of the announcement.
    pub message_id: String,
    /// The ruleset version decided on.
    pub ruleset_version: String,
    /// The decision: `"adopt"`, `"reject"` or `"abstain"`.
    pub decision: String,
    /// The deciding node.
    pub node_id: String,
    /// When it decided, in unix seconds.
    pub timestamp: u64,
}

/// An economic node signalled a veto on a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EconomicNodeVeto {
    /// The proposal vetoed.
    pub proposal_id: String,
    /// The vetoing node.
    pub node_id: String,
    /// Its stated reason.
    pub reason: String,
}

/// Vetoes on a proposal reached the threshold that blocks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VetoThresholdReached {
    /// The proposal.
    pub proposal_id: String,
    /// Weight of the vetoes, in percent.
    pub veto_percent: f64,
}

/// Diverging governance rulesets were detected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GovernanceForkDetected {
    /// Identifier of the fork.
    pub fork_id: String,
    /// The diverging ruleset version.
    pub ruleset_version: String,
    /// How many nodes adopted it.
    pub adoption_count: u64,
}

/// A webhook was delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookSent {
    /// The webhook's URL.
    pub webhook_url: String,
    /// Name of the event that was forwarded.
    pub event_type: String,
    /// Whether the receiver acknowledged it.
    pub success: bool,
}

/// A webhook could not be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookFailed {
    /// The webhook's URL.
    pub webhook_url: String,
    /// Name of the event that was to be forwarded.
    pub event_type: String,
    /// What went wrong.
    pub error: String,
}
