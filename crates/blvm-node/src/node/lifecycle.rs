//! The node's startup and shutdown events, in the order `blvm-node` goes
//! through them (and tests with it).
//!
//! # At start
//!
//! Once the modules found at start are loaded, [`Node::announce_startup`]
//! publishes `ConfigLoaded`, then `NodeStartupCompleted`. The event bus
//! keeps both and replays them to a module that subscribes later
//! (`blvm_module_host::api::events`, "Events replayed at subscription"): a
//! module that opens its database first still learns that the node is up.
//!
//! # At shutdown
//!
//! [`Node::shut_down`], in order:
//!
//! 1. `NodeShutdown` (`timeout_ms`: the grace period each module gets
//!    after its `shutdown`);
//! 2. `DataMaintenance` `flush`, `high` (same `timeout_ms`);
//! 3. the RPC server stops (running requests finish first);
//! 4. the module host unloads every module, dependents first: `shutdown`,
//!    the grace period, then its process tree is killed;
//! 5. `NodeShutdownCompleted`, with the time since step 1. Every module is
//!    gone by then, so no module receives it: it is published for code in
//!    the node's process (and the log line that follows says the same).

use std::time::{Duration, Instant};

use blvm_module_protocol::events as ev;

use super::Node;
use crate::rpc::RpcServer;

/// What the node says it started, in `NodeStartupCompleted`.
const COMPONENTS: [&str; 5] = ["chain", "mempool", "miner", "rpc", "modules"];

/// The configuration sections `ConfigLoaded` names at start.
const SECTIONS: [&str; 4] = ["network", "rpc", "modules", "mining"];

impl Node {
    /// Publishes `ConfigLoaded` and `NodeStartupCompleted` (with the time
    /// since `started`, the process's start): call once the modules found
    /// at start are loaded.
    pub fn announce_startup(&self, started: Instant) {
        self.publish(ev::ConfigLoaded {
            changed_sections: SECTIONS.iter().map(|s| (*s).to_owned()).collect(),
            reload: false,
        });
        self.publish(ev::NodeStartupCompleted {
            duration_ms: millis(started.elapsed()),
            components: COMPONENTS.iter().map(|c| (*c).to_owned()).collect(),
        });
    }

    /// Shuts the node down in the order of the module docs, stopping `rpc`
    /// when given; returns how long it took, as `NodeShutdownCompleted`
    /// says. Stop the node's timers first: what they publish after this
    /// starts reaches modules that are about to stop.
    pub async fn shut_down(&self, reason: &str, rpc: Option<RpcServer>) -> Duration {
        let started = Instant::now();
        let grace = millis(self.manager.config().shutdown_grace);
        self.publish(ev::NodeShutdown {
            reason: reason.to_owned(),
            timeout_ms: grace,
        });
        self.publish(ev::DataMaintenance {
            operation: "flush".into(),
            urgency: "high".into(),
            reason: "node shutting down".into(),
            target_age_ms: None,
            timeout_ms: Some(grace),
        });
        if let Some(rpc) = rpc {
            rpc.shutdown().await;
        }
        self.manager.shutdown().await;
        let took = started.elapsed();
        self.publish(ev::NodeShutdownCompleted {
            duration_ms: millis(took),
        });
        took
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
