//! [`RpcMethods`]: the harness's JSON-RPC server, as the module's
//! `register_rpc_endpoint` sees it: it serves every name a module
//! registers (the node's own methods are not there to clash with) and
//! keeps each one's help.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use blvm_module_host::services::rpc_endpoints::{Endpoint, RpcEndpointSink};
use tokio::sync::Notify;

/// The endpoints being served, by method name, with their help.
#[derive(Default)]
pub struct RpcMethods {
    served: Mutex<BTreeMap<String, Endpoint>>,
    changed: Notify,
}

impl RpcMethods {
    /// The endpoint served as `method`, if any.
    pub fn get(&self, method: &str) -> Option<Endpoint> {
        self.lock().get(method).cloned()
    }

    /// Waits until `method` is served, at most `deadline`.
    pub async fn wait_for(&self, method: &str, deadline: Duration) -> Option<Endpoint> {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if let Some(found) = self.get(method) {
                    return found;
                }
                changed.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Endpoint>> {
        // Every update is one insert or removal.
        self.served.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RpcEndpointSink for RpcMethods {
    fn add(&self, endpoint: &Endpoint) -> Result<(), String> {
        self.lock().insert(endpoint.method.clone(), endpoint.clone());
        self.changed.notify_waiters();
        Ok(())
    }

    fn remove(&self, method: &str) {
        self.lock().remove(method);
        self.changed.notify_waiters();
    }
}
