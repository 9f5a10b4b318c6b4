//! The JSON-RPC server, compatible with Bitcoin Core's: HTTP POST to `/`,
//! JSON-RPC 1.0 and 2.0 requests and batches, HTTP Basic authentication with
//! `rpcuser`/`rpcpassword` or the cookie file, and Core's error codes and HTTP
//! statuses, so `bitcoin-cli` and Core client libraries work unchanged.
//!
//! # Layout
//!
//! - [`server`]: [`RpcServer`], the HTTP side (routing, auth, body limit,
//!   work queue, blocking pool, shutdown).
//! - [`protocol`]: JSON-RPC without I/O: body bytes in, status and reply out,
//!   following Core v28; its docs tabulate the 1.0 / 2.0 differences.
//! - [`auth`]: [`RpcAuth`] and the [`CookieFile`].
//! - [`handler`]: the [`RpcHandler`] trait the server calls, and
//!   [`MethodTable`], a handler of named methods that modules extend at run time.
//! - [`params`]: [`Params`], typed access to positional or named arguments.
//! - [`error`]: [`RpcError`] and Core's error codes.
//!
//! # Key decision: synchronous handlers on the blocking pool
//!
//! Methods are plain functions (`Fn(Params) -> Result<Value, RpcError>`):
//! the node's methods read the store and return, and a synchronous signature
//! keeps them free of `.await` while holding locks. The cost is one blocking
//! thread per running request; the work queue (16 by default, as Core) bounds
//! it.
//!
//! # HTTP status codes (Core v28)
//!
//! A batch, and a 2.0 request whose method failed, get HTTP 200 with the
//! error in the body. A 1.0 request whose method failed gets 500, or 404 for
//! "Method not found". A request that is not valid JSON-RPC gets 400 (-32600),
//! one that is not JSON 500 (-32700).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use blvm_node::rpc::{CookieFile, MethodTable, RpcAuth, RpcServer};
//! use serde_json::json;
//!
//! # async fn run(datadir: &std::path::Path) -> anyhow::Result<()> {
//! let methods = Arc::new(MethodTable::new());
//! methods.register("getblockcount", "getblockcount\n\nReturns the height of the tip.", |_| Ok(json!(438)))?;
//! let auth = RpcAuth { user_pass: None, cookie: Some(CookieFile::create(datadir)?) };
//! let server = RpcServer::bind("127.0.0.1:18443".parse()?, auth, methods.clone())?;
//! // … later, a module adds a method on the running server:
//! methods.register("mymodule_hello", "mymodule_hello\n\nSays hello.", |_| Ok(json!("hello")))?;
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod error;
pub mod handler;
pub mod params;
pub mod protocol;
pub mod server;

pub use auth::{CookieFile, CookieFileError, RpcAuth};
pub use error::RpcError;
pub use handler::{MethodTable, MethodTableError, RpcHandler};
pub use params::Params;
pub use server::{RpcServer, RpcServerConfig, RpcServerError};
