//! A healthy SDK module that never takes its invocation receiver: it waits
//! for `shutdown` and nothing else. The node's health checks must find it
//! alive (the SDK's reader answers them), however long it idles.

use blvm_sdk::{ModuleIntegration, SdkError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let integration = ModuleIntegration::from_env().await?;
    println!("IDLE");
    let shutdown = integration.shutdown_requested().await;
    println!("SHUTDOWN {:?}", shutdown.map(|s| s.reason));
    Ok(())
}
