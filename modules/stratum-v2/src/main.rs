//! Module: a Stratum V2 Template Provider (see the library's docs and the
//! operator guide's "Stratum V2 Template Provider").
//!
//! Loads (or makes) its authority key, registers the JSON-RPC method
//! `stratumv2_status`, follows `NewBlock` and the mempool's additions and
//! removals, and serves Stratum V2 clients on its `listen` address. When
//! it cannot listen (without `network_access` the sandbox refuses it a
//! socket), it keeps running so that its status says why.

use std::sync::Arc;

use blvm_sdk::protocol::{Event, RemoteError};
use blvm_sdk::{EventType, Invocation, ModuleIntegration, Permission, SdkError};
use stratum_v2::authority::Authority;
use stratum_v2::config::Config;
use stratum_v2::provider::Provider;
use stratum_v2::{connection, Error};
use tokio::net::TcpListener;
use tracing_subscriber::filter::LevelFilter;

/// The JSON-RPC method.
const RPC_METHOD: &str = "stratumv2_status";
/// Its help.
const RPC_HELP: &str = "The Stratum V2 Template Provider's state: where it listens (or why it cannot), its \
authority public key, the connected clients (address, vendor, coinbase constraints, templates sent), templates \
and solutions in all, the last solution and the NewBlock to SetNewPrevHash latency.\n\nResult:\n{ \"listening\": \
\"ip:port\" or null, \"listen_error\": str or null, \"network_access\": bool, \"authority_public_key\": str, \
\"clients\": [...], \"templates_sent\": n, \"prev_hashes_sent\": n, \"clients_refused\": n, \"solutions\": {...}, \
\"last_solution\": {...} or null, \"new_block_to_prev_hash\": { \"count\": n, \"p50_ms\": x, \"p99_ms\": x, \
\"max_ms\": x } }";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    run().await.map_err(|e| e.to_string())
}

fn answer(provider: &Provider, inv: Invocation) -> Result<(), SdkError> {
    match inv.rpc_call() {
        Some(call) if call.as_ref().is_ok_and(|c| c.method == RPC_METHOD) => {
            match serde_json::to_string(&provider.status()) {
                Ok(json) => inv.respond_json(json),
                Err(e) => inv.respond_rpc_error(-32603, e.to_string()),
            }
        }
        _ => {
            let method = inv.method().to_owned();
            inv.reject(RemoteError::method_not_found(&method));
            Ok(())
        }
    }
}

async fn listen(provider: Arc<Provider>, network_access: bool) {
    let addr = provider.config.listen;
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            let why = if network_access {
                format!("cannot listen on {addr}: {e}")
            } else {
                format!(
                    "cannot listen on {addr}: {e}: the module was not granted `network_access` (add it to \
                     module.toml's capabilities and allow it in the node's policy)"
                )
            };
            tracing::error!("{why}");
            provider.set_listen_error(why);
            return;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    provider.set_listening(local);
    tracing::info!(
        "stratum-v2 listening on {local}; authority public key {}",
        provider.authority.public_key_base58()
    );
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(connection::serve(Arc::clone(&provider), stream, peer));
            }
            Err(e) => tracing::warn!(error = %e, "accept failed"),
        }
    }
}

async fn run() -> Result<(), Error> {
    let mut integration = ModuleIntegration::from_env().await?;
    stratum_v2::log::init(integration.ipc().clone(), LevelFilter::INFO);
    let api = integration.node_api();
    let welcome = integration.welcome().clone();
    let config = Config::from_map(&welcome.config)?;
    let network_access = welcome.capabilities.contains(Permission::NetworkAccess);
    let (authority, created) = Authority::load_or_create(&api).await?;
    if created {
        tracing::info!(
            "made a new authority key, kept in module storage; its public key is {}",
            authority.public_key_base58()
        );
    }
    let (provider, queues) = Provider::new(Arc::clone(&api), config, authority, network_access);
    provider.start(queues);
    let mut invocations = integration.invocation_receiver()?;
    api.register_rpc_endpoint(RPC_METHOD, "", RPC_HELP).await?;
    integration
        .subscribe_events(vec![
            EventType::NewBlock,
            EventType::MempoolTransactionAdded,
            EventType::MempoolTransactionRemoved,
        ])
        .await?;
    let mut events = integration.event_receiver()?;
    tokio::spawn(listen(Arc::clone(&provider), network_access));
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => {
                tracing::info!("shutting down");
                return Ok(integration.flush().await?);
            }
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Err(SdkError::ConnectionClosed.into()) };
                answer(&provider, inv)?;
            }
            received = events.recv() => {
                let Some(received) = received else { return Err(SdkError::ConnectionClosed.into()) };
                match received.event {
                    Event::NewBlock(b) => provider.new_tip(b.height, b.block_hash),
                    Event::MempoolTransactionAdded(_) | Event::MempoolTransactionRemoved(_) => provider.mempool_changed(),
                    _ => {}
                }
            }
        }
    }
}
