//! The Rust test harness for module authors.
//!
//! A test starts a [`ModuleTest`] with the module's binary and manifest:
//! a real module manager (manifest checks, the kernel sandbox, the IPC
//! server and every service: storage, metrics, timers, RPC endpoints,
//! inter-module calls, durable subscriptions) over real mainnet blocks
//! ([`TestChain`], the first 439 blocks embedded by `blvm-testkit`), and
//! the module as a real process. The test then moves the chain (a real
//! block connected, a reorg) or publishes any event, calls the module's
//! JSON-RPC methods and module API, waits on and asserts about the
//! requests it sent and the lines it logged, and ends with
//! [`ModuleTest::finish`], which unloads it and fails the test if any
//! frame it sent broke the protocol or it crashed.
//!
//! ```no_run
//! # async fn example() {
//! use blvm_module_testkit::ModuleTest;
//!
//! // In the module's own tests: env!("CARGO_BIN_EXE_block-stats") and
//! // concat!(env!("CARGO_MANIFEST_DIR"), "/module.toml").
//! let test = ModuleTest::builder("target/debug/block-stats", "modules/block-stats/module.toml")
//! .start()
//! .await
//! .expect("the module loads");
//! test.wait_for_request(|r| r.method == "subscribe_events").await;
//! let block = test.connect_block();
//! test.wait_for_log(|l| l.message.contains(&block.height.to_string())).await;
//! test.finish().await;
//! # }
//! ```
//!
//! Tests run on a multi-threaded tokio runtime
//! (`#[tokio::test(flavor = "multi_thread")]`): RPC calls wait on a
//! thread of their own. The module's logs are captured through a global
//! `tracing` subscriber the harness installs on first use.

mod chain;
mod cursors;
mod harness;
mod logs;
mod requests;
mod rpc;

/// The embedded mainnet blocks the harness's chain is made of.
pub use blvm_testkit::{MemoryChain, MAINNET_TIP_HEIGHT};
pub use chain::TestChain;
pub use cursors::MemoryCursors;
pub use harness::{HarnessError, ModuleTest, ModuleTestBuilder, DEADLINE};
pub use logs::{ModuleLogLine, ModuleLogs};
pub use requests::{RequestLog, SentRequest};
pub use rpc::RpcMethods;

/// A loopback TCP port free now, for a module's listening address in its
/// test config (the OS picks it; the module binds it a moment later).
///
/// # Panics
///
/// If no port can be bound on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
