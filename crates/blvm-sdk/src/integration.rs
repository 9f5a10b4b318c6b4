//! [`ModuleIntegration`]: the one-call way for a module to join the node.

use std::path::Path;
use std::sync::Arc;

use blvm_module_protocol::{EventType, Shutdown, Welcome};

use crate::client::ModuleClient;
use crate::env::ModuleEnv;
use crate::error::SdkError;
use crate::events::EventReceiver;
use crate::invocation::InvocationReceiver;
use crate::ipc::ModuleIpcClient;
use crate::node_api::NodeApiIpc;

/// A module's connection to the node: handshake done, node API and event
/// stream at hand.
///
/// ```no_run
/// # async fn run() -> Result<(), blvm_sdk::SdkError> {
/// use blvm_sdk::{EventType, ModuleIntegration};
/// let mut integration = ModuleIntegration::from_env().await?;
/// integration.subscribe_events(vec![EventType::NewBlock]).await?;
/// let node_api = integration.node_api();
/// let mut events = integration.event_receiver()?;
/// while let Some(received) = events.recv().await {
///     let height = node_api.get_block_height().await?;
///     println!("event #{} at height {height}: {:?}", received.seq, received.event);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ModuleIntegration {
    client: ModuleClient,
    node_api: Arc<NodeApiIpc>,
}

impl ModuleIntegration {
    /// Connects as the seed shows. The handshake token is read from
    /// `BLVM_MODULE_TOKEN`, which the node sets for the process it spawns.
    pub async fn connect(
        socket_path: impl AsRef<Path>,
        module_id: impl AsRef<str>,
        module_name: impl AsRef<str>,
        version: impl AsRef<str>,
    ) -> Result<ModuleIntegration, SdkError> {
        let token = ModuleEnv::token()?;
        Self::connect_with_token(
            socket_path,
            module_id.as_ref(),
            module_name.as_ref(),
            version.as_ref(),
            &token,
        )
        .await
    }

    /// Connects with every detail from the environment the node sets
    /// (see [`crate::env`]).
    pub async fn from_env() -> Result<ModuleIntegration, SdkError> {
        let env = ModuleEnv::from_env()?;
        Self::connect_with_token(
            &env.socket_path,
            &env.module_id,
            &env.module_name,
            &env.version,
            &env.token,
        )
        .await
    }

    /// Connects with an explicit token.
    pub async fn connect_with_token(
        socket_path: impl AsRef<Path>,
        module_id: &str,
        module_name: &str,
        version: &str,
        token: &str,
    ) -> Result<ModuleIntegration, SdkError> {
        let client = ModuleClient::connect(socket_path, module_id, module_name, version, token).await?;
        Ok(Self::from_client(client))
    }

    /// Wraps an already handshaken [`ModuleClient`].
    pub fn from_client(client: ModuleClient) -> ModuleIntegration {
        let node_api = Arc::new(NodeApiIpc::new(client.ipc().clone()));
        ModuleIntegration { client, node_api }
    }

    /// Subscribes to `event_types`.
    pub async fn subscribe_events(&mut self, event_types: Vec<EventType>) -> Result<Vec<String>, SdkError> {
        self.client.subscribe_events(event_types).await
    }

    /// The node's API.
    pub fn node_api(&self) -> Arc<NodeApiIpc> {
        Arc::clone(&self.node_api)
    }

    /// Takes the event receiver.
    pub fn event_receiver(&mut self) -> Result<EventReceiver, SdkError> {
        self.client.event_receiver()
    }

    /// Takes the receiver of node invocations.
    pub fn invocation_receiver(&self) -> Result<InvocationReceiver, SdkError> {
        self.client.ipc().invocation_receiver()
    }

    /// What the node said in `welcome`.
    pub fn welcome(&self) -> &Welcome {
        self.client.welcome()
    }

    /// The underlying IPC client (custom requests, logs).
    pub fn ipc(&self) -> &ModuleIpcClient {
        self.client.ipc()
    }

    /// Waits until everything sent so far has been written to the socket
    /// (see [`ModuleIpcClient::flush`]): await it before the module exits,
    /// or its last log lines may never reach the node.
    pub async fn flush(&self) -> Result<(), SdkError> {
        self.client.ipc().flush().await
    }

    /// Waits for the node's `shutdown` (or `None` if the connection closed).
    pub async fn shutdown_requested(&self) -> Option<Shutdown> {
        self.client.ipc().shutdown_requested().await
    }
}
