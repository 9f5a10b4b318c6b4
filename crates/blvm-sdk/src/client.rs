//! [`ModuleClient`]: the legacy integration path (connection, handshake
//! and event subscription), kept for modules written against it. New
//! modules use [`crate::ModuleIntegration`], which is built on it.

use std::path::Path;

use blvm_module_protocol::{EventType, Hello, Welcome, SUPPORTED_VERSIONS};

use crate::error::SdkError;
use crate::events::EventReceiver;
use crate::ipc::ModuleIpcClient;
use crate::node_api::NodeApiIpc;

/// A handshaken connection that can subscribe to events.
#[derive(Debug)]
pub struct ModuleClient {
    ipc: ModuleIpcClient,
    welcome: Welcome,
}

impl ModuleClient {
    /// Connects to `socket_path` and handshakes with `token`.
    pub async fn connect(
        socket_path: impl AsRef<Path>,
        module_id: &str,
        module_name: &str,
        version: &str,
        token: &str,
    ) -> Result<ModuleClient, SdkError> {
        let ipc = ModuleIpcClient::connect(socket_path).await?;
        ModuleClient::handshake(ipc, module_id, module_name, version, token).await
    }

    /// Handshakes on an already connected client.
    pub async fn handshake(
        ipc: ModuleIpcClient,
        module_id: &str,
        module_name: &str,
        version: &str,
        token: &str,
    ) -> Result<ModuleClient, SdkError> {
        let welcome = ipc
            .handshake(&Hello {
                protocol_versions: SUPPORTED_VERSIONS.to_vec(),
                module_id: module_id.to_owned(),
                module_name: module_name.to_owned(),
                version: version.to_owned(),
                token: token.to_owned(),
            })
            .await?;
        Ok(ModuleClient { ipc, welcome })
    }

    /// What the node said in `welcome`: granted capabilities, config, data
    /// dir.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The underlying client.
    pub fn ipc(&self) -> &ModuleIpcClient {
        &self.ipc
    }

    /// Subscribes to `event_types`; see [`NodeApiIpc::subscribe_events`].
    pub async fn subscribe_events(&mut self, event_types: Vec<EventType>) -> Result<Vec<String>, SdkError> {
        NodeApiIpc::new(self.ipc.clone()).subscribe_events(&event_types).await
    }

    /// Takes the event receiver.
    pub fn event_receiver(&mut self) -> Result<EventReceiver, SdkError> {
        self.ipc.event_receiver()
    }
}
