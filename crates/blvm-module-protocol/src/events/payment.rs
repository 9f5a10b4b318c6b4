//! Payloads of the payment events, published by payment and Lightning
//! modules (the node itself does not process payments).

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// A payment request (invoice) was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRequestCreated {
    /// Identifier of the payment, chosen by the publishing module.
    pub payment_id: String,
    /// Requested amount in satoshis.
    pub amount_sats: u64,
    /// BOLT11 invoice or BIP21 URI, when one was produced.
    pub invoice: Option<String>,
}

/// A payment was settled on chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentSettled {
    /// Identifier of the payment.
    pub payment_id: String,
    /// Transaction that pays it.
    pub txid: Hash32,
    /// Confirmations of that transaction when the event was published.
    pub confirmations: u32,
}

/// A payment failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentFailed {
    /// Identifier of the payment.
    pub payment_id: String,
    /// Human-readable reason.
    pub reason: String,
}

/// A Lightning payment was verified as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentVerified {
    /// Identifier of the payment.
    pub payment_id: String,
    /// Amount received, in millisatoshis.
    pub amount_msats: u64,
    /// The BOLT11 invoice that was paid.
    pub invoice: String,
}

/// A route for an outgoing payment was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRouteFound {
    /// Identifier of the payment.
    pub payment_id: String,
    /// Number of hops in the route.
    pub route_hops: u32,
    /// Total routing fee of the route, in millisatoshis.
    pub route_cost_msats: u64,
}

/// No route could be found for an outgoing payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRouteFailed {
    /// Identifier of the payment.
    pub payment_id: String,
    /// Human-readable reason.
    pub reason: String,
}

/// A paid module was bought from the module marketplace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModulePurchaseCompleted {
    /// Name of the purchased module, as in its `module.toml`.
    pub module_name: String,
    /// Identifier of the payment that bought it.
    pub payment_id: String,
    /// Amount paid, in satoshis.
    pub amount_sats: u64,
}
