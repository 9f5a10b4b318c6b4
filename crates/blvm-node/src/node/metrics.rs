//! The node's Prometheus exposition: its own metrics (chain, mempool,
//! JSON-RPC), the host's per-module metrics and every module's reported
//! series, served as text on `GET /metrics` at `--metrics-bind`.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use blvm_module_host::services::metrics::{self as host_metrics, Family, MetricsService};
use blvm_module_protocol::methods::metrics::MetricKind;
use tokio::sync::oneshot;

use super::Node;
use crate::rpc::MethodTable;

/// The node's own families: height, headers, mempool, RPC calls, uptime.
pub fn node_families(node: &Node, rpc: Option<&MethodTable>) -> Vec<Family> {
    let tip = node.chain.tip();
    let mempool = node.mempool.info();
    let mut families = vec![
        Family::new(
            "blvm_chain_height",
            "Height of the active chain's tip.",
            MetricKind::Gauge,
        )
        .with(&[], f64::from(tip.height)),
        Family::new(
            "blvm_chain_headers",
            "Headers of the active chain (the reference node has no headers-first sync: the tip height).",
            MetricKind::Gauge,
        )
        .with(&[], f64::from(tip.height)),
        Family::new(
            "blvm_mempool_transactions",
            "Transactions in the mempool.",
            MetricKind::Gauge,
        )
        .with(&[], mempool.size as f64),
        Family::new(
            "blvm_mempool_vsize_bytes",
            "Sum of the virtual sizes of the mempool's transactions.",
            MetricKind::Gauge,
        )
        .with(&[], mempool.bytes as f64),
        Family::new(
            "blvm_mempool_usage_bytes",
            "Approximate memory the mempool uses.",
            MetricKind::Gauge,
        )
        .with(&[], mempool.usage as f64),
        Family::new(
            "blvm_uptime_seconds",
            "Seconds since the node started.",
            MetricKind::Gauge,
        )
        .with(&[], node.uptime().as_secs_f64()),
    ];
    if let Some(rpc) = rpc {
        let mut calls = Family::new(
            "blvm_rpc_calls",
            "JSON-RPC calls by method (`unknown`: a method that does not exist).",
            MetricKind::Counter,
        );
        for (method, n) in rpc.call_counts() {
            calls = calls.with(&[("method", &method)], n as f64);
        }
        families.push(calls);
    }
    families
}

/// Makes `node`'s own metrics part of its manager's exposition and of
/// `read_metrics` (a weak reference: the exposition never keeps the node
/// alive).
pub fn install(node: &Arc<Node>, rpc: Option<Arc<MethodTable>>) {
    let weak: Weak<Node> = Arc::downgrade(node);
    node.manager.metrics().set_node_source(move || match weak.upgrade() {
        Some(node) => node_families(&node, rpc.as_deref()),
        None => Vec::new(),
    });
}

/// The HTTP server of `/metrics`; stops when dropped.
pub struct MetricsServer {
    local_addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl MetricsServer {
    /// Binds `addr` and serves `metrics` on `GET /metrics` (anything else:
    /// 404). Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr, metrics: Arc<MetricsService>) -> std::io::Result<MetricsServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move {
                    // Collecting reads module status (/proc): off the reactor.
                    match tokio::task::spawn_blocking(move || metrics.render()).await {
                        Ok(text) => ([(header::CONTENT_TYPE, host_metrics::CONTENT_TYPE)], text).into_response(),
                        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                    }
                }
            }),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!("metrics server: {e}");
            }
        });
        tracing::info!(addr = %local_addr, "metrics exposition listening on http://{local_addr}/metrics");
        Ok(MetricsServer {
            local_addr,
            _stop: stop,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}
