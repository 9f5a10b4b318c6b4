//! Event categories, and the subscription permission each one needs.
//!
//! Every [`EventType`](super::EventType) belongs to exactly one category,
//! and the category alone decides which permission a module needs, beyond
//! `subscribe_events`, to subscribe to it. Keeping the rule per category
//! (rather than per event) means a new event cannot silently get a weaker
//! rule than its neighbours: it inherits its category's.

use std::fmt;

use crate::permissions::Permission;

use super::EventType;

macro_rules! categories {
    ($($(#[doc = $doc:literal])* $variant:ident => $permission:expr;)+) => {
        /// The group an event type belongs to; it decides the subscription
        /// permission (see [`EventCategory::required_permission`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventCategory {
            $($(#[doc = $doc])* $variant,)+
        }

        impl EventCategory {
            /// Every category, in declaration order.
            pub const ALL: &'static [EventCategory] = &[$(EventCategory::$variant,)+];

            /// The category's name, e.g. `"Blockchain"`. Only used in docs,
            /// logs and error messages; categories never travel on the wire.
            pub const fn name(self) -> &'static str {
                match self {
                    $(EventCategory::$variant => stringify!($variant),)+
                }
            }

            /// The permission a module needs, in addition to
            /// `subscribe_events`, to subscribe to events of this category;
            /// `None` when `subscribe_events` alone is enough.
            pub const fn required_permission(self) -> Option<Permission> {
                match self {
                    $(EventCategory::$variant => $permission,)+
                }
            }
        }
    };
}

categories! {
    /// Blocks connected and disconnected, reorgs, new transactions.
    Blockchain => Some(Permission::ReadBlockchain);
    /// Payment requests, settlement and routing (published by payment modules).
    Payment => Some(Permission::ReadPayment);
    /// Lightning channel lifecycle (published by Lightning modules).
    Lightning => Some(Permission::ReadLightning);
    /// Block templates, mined blocks, difficulty, pools and shares.
    Mining => Some(Permission::ReadChainState);
    /// Mesh packets the node received from the network.
    MeshNetworking => Some(Permission::ReadNetwork);
    /// Stratum V2 messages and miner connections.
    StratumV2 => Some(Permission::ReadNetwork);
    /// Modules loaded, unloaded, crashed, installed, updated.
    ModuleLifecycle => None;
    /// Node configuration loaded or changed.
    Configuration => None;
    /// Node startup and shutdown.
    NodeLifecycle => None;
    /// Maintenance windows, data maintenance requests and health checks.
    Maintenance => None;
    /// Disk space and resource limit warnings.
    Resource => None;
    /// Governance proposals, votes, economic nodes and webhooks.
    Governance => None;
    /// Peers, messages, addresses, bans, partitions and rate limits.
    Network => Some(Permission::ReadNetwork);
    /// Block, script and UTXO validation, difficulty adjustment, soft forks.
    Consensus => Some(Permission::ReadBlockchain);
    /// Headers and block synchronisation (IBD) progress.
    Sync => Some(Permission::ReadChainState);
    /// Mempool additions, removals, thresholds and fee rates.
    Mempool => Some(Permission::ReadMempool);
    /// Module storage operations and database backups.
    Storage => Some(Permission::ReadStorage);
    /// Dandelion++ stem and fluff phases.
    Dandelion => Some(Permission::ReadNetwork);
    /// BIP152 compact blocks and block reconstruction.
    CompactBlocks => Some(Permission::ReadNetwork);
    /// FIBRE block relay and companion UDP endpoints.
    Fibre => Some(Permission::ReadNetwork);
    /// Package relay (BIP331).
    PackageRelay => Some(Permission::ReadNetwork);
    /// UTXO set commitments received from peers and verified.
    UtxoCommitments => Some(Permission::ReadUTXO);
    /// Ban list sharing between peers.
    BanList => Some(Permission::ReadNetwork);
}

impl EventCategory {
    /// The event types of this category, in catalogue order.
    pub fn events(self) -> impl Iterator<Item = EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(move |event| event.category() == self)
    }
}

impl fmt::Display for EventCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
