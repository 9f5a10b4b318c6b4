//! The 24 capabilities a module may ask for, and the set type the host
//! checks requests against.
//!
//! A capability is spelled in `snake_case` in `module.toml` and on the wire
//! (`read_blockchain`) and maps to one [`Permission`] variant
//! (`ReadBlockchain`). Which permission each request and each event
//! subscription needs is decided in one place each:
//! [`crate::methods::Method::required_permission`] and
//! [`crate::events::EventType::required_permission`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! permissions {
    ($($variant:ident => $name:literal, $doc:literal;)+) => {
        /// A capability a module may be granted.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Permission {
            $(#[doc = $doc] $variant,)+
        }

        impl Permission {
            /// Every permission, in declaration order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)+];

            /// The `snake_case` name used in `module.toml` and on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)+
                }
            }

            /// Parses the `snake_case` name; `None` for an unknown capability.
            pub fn from_name(name: &str) -> Option<Permission> {
                match name {
                    $($name => Some(Permission::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

permissions! {
    ReadBlockchain => "read_blockchain", "Read-only blockchain access (blocks, headers, transactions).";
    ReadUTXO => "read_utxo", "Query the UTXO set (read-only).";
    ReadChainState => "read_chain_state", "Query chain state (height, tip).";
    SubscribeEvents => "subscribe_events", "Subscribe to node events.";
    SendTransactions => "send_transactions", "Submit transactions (and mined blocks) to the node.";
    ReadMempool => "read_mempool", "Read mempool data (transactions, size, fee estimates).";
    ReadNetwork => "read_network", "Read network data (peers, stats).";
    NetworkAccess => "network_access", "Send network packets; also lifts the network sandbox.";
    ReadLightning => "read_lightning", "Read Lightning network data.";
    ReadPayment => "read_payment", "Read payment data.";
    ReadStorage => "read_storage", "Read from module storage.";
    WriteStorage => "write_storage", "Write to module storage.";
    ManageStorage => "manage_storage", "Manage storage (create/delete trees, quotas).";
    ReadFilesystem => "read_filesystem", "Read files from the module data directory.";
    WriteFilesystem => "write_filesystem", "Write files to the module data directory.";
    ManageFilesystem => "manage_filesystem", "Manage the module data directory (directories, quotas).";
    RegisterRpcEndpoint => "register_rpc_endpoint", "Register JSON-RPC endpoints on the node.";
    ManageTimers => "manage_timers", "Manage timers and scheduled tasks.";
    ReportMetrics => "report_metrics", "Report metrics.";
    ReadMetrics => "read_metrics", "Read metrics.";
    DiscoverModules => "discover_modules", "Discover other modules.";
    PublishEvents => "publish_events", "Publish the module's own namespaced events to other modules.";
    CallModule => "call_module", "Call other modules' APIs.";
    RegisterModuleApi => "register_module_api", "Register an API other modules may call.";
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a capability name that is not one of the 24.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability `{name}` (expected one of the {count} names in the permission table)", count = Permission::ALL.len())]
pub struct UnknownPermissionError {
    /// The name that was given.
    pub name: String,
}

impl FromStr for Permission {
    type Err = UnknownPermissionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::from_name(s).ok_or_else(|| UnknownPermissionError { name: s.to_owned() })
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Permission::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown capability `{name}`")))
    }
}

/// A set of permissions, stored as a bit set so that a check on the request
/// path is one AND.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(u32);

impl PermissionSet {
    /// The empty set.
    pub const fn empty() -> Self {
        PermissionSet(0)
    }

    /// Every permission.
    pub fn all() -> Self {
        Permission::ALL.iter().copied().collect()
    }

    /// Adds `permission` to the set.
    pub fn insert(&mut self, permission: Permission) {
        self.0 |= 1 << permission as u8;
    }

    /// Whether the set holds `permission`.
    pub const fn contains(&self, permission: Permission) -> bool {
        self.0 & (1 << permission as u8) != 0
    }

    /// The permissions in both sets: what a manifest asks for and the
    /// operator's policy allows.
    pub const fn intersection(&self, other: &PermissionSet) -> PermissionSet {
        PermissionSet(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The permissions in the set, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        Permission::ALL.iter().copied().filter(|p| self.contains(*p))
    }

    /// Parses a list of capability names, refusing the first unknown one.
    pub fn from_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Result<Self, UnknownPermissionError> {
        names.into_iter().map(|n| n.as_ref().parse::<Permission>()).collect()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = PermissionSet::empty();
        for p in iter {
            set.insert(p);
        }
        set
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    /// Unknown names are skipped rather than refused: a newer node may grant
    /// capabilities an older module has never heard of.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        Ok(names.iter().filter_map(|n| Permission::from_name(n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_24_permissions_and_names_round_trip() {
        assert_eq!(Permission::ALL.len(), 24);
        for p in Permission::ALL {
            assert_eq!(Permission::from_name(p.as_str()), Some(*p));
        }
    }

    #[test]
    fn seed_spellings_map_to_the_seed_variants() {
        assert_eq!("read_utxo".parse::<Permission>(), Ok(Permission::ReadUTXO));
        assert_eq!(
            "register_module_api".parse::<Permission>(),
            Ok(Permission::RegisterModuleApi)
        );
        assert!("ReadBlockchain".parse::<Permission>().is_err());
    }

    #[test]
    fn set_operations_work() {
        let set = PermissionSet::from_names(["read_blockchain", "subscribe_events"]).unwrap();
        assert!(set.contains(Permission::ReadBlockchain));
        assert!(!set.contains(Permission::ReadUTXO));
        let policy: PermissionSet = [Permission::ReadBlockchain].into_iter().collect();
        assert_eq!(
            set.intersection(&policy).iter().collect::<Vec<_>>(),
            vec![Permission::ReadBlockchain]
        );
        let err = PermissionSet::from_names(["read_everything"]).unwrap_err();
        assert_eq!(err.name, "read_everything");
    }
}
