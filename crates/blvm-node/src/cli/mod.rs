//! The `blvm-node` command line, and the small JSON-RPC client its
//! `module` subcommands use to talk to a running node.

/// The maintainer tools, shared with `blvm-module`.
pub use blvm_registry::maintainer as signing;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::Settings;

/// `blvm-node`: a Bitcoin node hosting sandboxed modules.
#[derive(Debug, clap::Parser)]
#[command(name = "blvm-node", version, about)]
pub struct Cli {
    /// A TOML config file (default: `<datadir>/blvm.toml` when it exists).
    #[arg(long, global = true)]
    pub conf: Option<PathBuf>,
    /// Settings; each overrides the same key of the config file.
    #[command(flatten)]
    pub settings: Settings,
    /// The modules' sandbox mode, `strict` or `permissive` (the config
    /// file's `[sandbox] mode`; default strict). Permissive starts a module
    /// without a layer this host cannot apply and lists it as missing.
    #[arg(long, global = true)]
    pub sandbox_mode: Option<String>,
    /// What to do (default: run the node).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the node (the default).
    Run,
    /// Import blocks: Bitcoin Core `blk*.dat` files or raw blocks. Without
    /// `--rpc` into the data dir's chain, with no node running on it (and
    /// so no module sees the import).
    Import {
        /// Files to import, in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Ask the node running on this data dir to import them
        /// (`importblocks`): its modules receive the import's events.
        #[arg(long)]
        rpc: bool,
    },
    /// Administer the modules of a running node over JSON-RPC.
    Module {
        /// The action.
        #[command(subcommand)]
        action: ModuleAction,
    },
}

/// `blvm-node module …`
#[derive(Debug, clap::Subcommand)]
pub enum ModuleAction {
    /// List loaded modules (`listmodules`).
    List,
    /// Load a module from the modules directory (`loadmodule`).
    Load {
        /// Module name.
        name: String,
    },
    /// Unload a module (`unloadmodule`).
    Unload {
        /// Module name.
        name: String,
    },
    /// Reload a module from disk, verifying it again (`reloadmodule`).
    Reload {
        /// Module name.
        name: String,
    },
    /// Status of one module or all (`getmodulestatus`).
    Status {
        /// Module name; all when omitted.
        name: Option<String>,
    },
    /// Delete everything a module keeps in its module storage; refused
    /// while it is loaded (`removemodulestorage`).
    StorageRemove {
        /// Module name.
        name: String,
    },
    /// Install a module and its dependencies from the `[registry]`,
    /// verified before anything is written, and load them
    /// (`installmodule`).
    Install {
        /// Module name.
        name: String,
        /// A semver range (`^0.1`, `=0.1.2`); default: the highest
        /// acceptable version.
        #[arg(long = "version", value_name = "RANGE")]
        range: Option<String>,
        /// Install only; do not load.
        #[arg(long)]
        no_load: bool,
    },
    /// Update an installed module within the range it was installed with,
    /// reloading it if it runs (`updatemodule`).
    Update {
        /// Module name.
        name: String,
    },
    /// Remove a module installed from the registry, unloading it first
    /// (`removemodule`).
    Remove {
        /// Module name.
        name: String,
        /// Even when other installed modules depend on it.
        #[arg(long)]
        force: bool,
    },
    /// Put back the version before the last install or update, reloading
    /// it if it runs (`rollbackmodule`).
    Rollback {
        /// Module name.
        name: String,
    },
    /// Search the registry's signed metadata (`searchmodules`).
    Search {
        /// Text in a module's name or description; all when omitted.
        query: Option<String>,
    },
    /// Make a maintainer key: the secret goes to FILE (0600), the public
    /// key is printed for operators' `[trust.keys]`. Offline.
    Keygen {
        /// Where to write the secret key; must not exist.
        file: PathBuf,
    },
    /// Sign a manifest: prints the `[signatures] maintainers` entry to add.
    /// Signatures cover everything but `[signatures]`. Offline.
    Sign(signing::SignArgs),
    /// Check a manifest's signatures against this node's `[trust]`
    /// settings, as loading it would. Offline.
    Verify {
        /// The module's `module.toml`.
        manifest: PathBuf,
    },
}

impl ModuleAction {
    /// The RPC method and params of this action; `None` for the offline
    /// ones (keygen, sign, verify).
    pub fn request(&self) -> Option<(&'static str, Value)> {
        Some(match self {
            ModuleAction::List => ("listmodules", json!([])),
            ModuleAction::Load { name } => ("loadmodule", json!([name])),
            ModuleAction::Unload { name } => ("unloadmodule", json!([name])),
            ModuleAction::Reload { name } => ("reloadmodule", json!([name])),
            ModuleAction::Status { name: Some(name) } => ("getmodulestatus", json!([name])),
            ModuleAction::Status { name: None } => ("getmodulestatus", json!([])),
            ModuleAction::StorageRemove { name } => ("removemodulestorage", json!([name])),
            ModuleAction::Install { name, range, no_load } => (
                "installmodule",
                json!([name, range.as_deref().unwrap_or("*"), !no_load]),
            ),
            ModuleAction::Update { name } => ("updatemodule", json!([name])),
            ModuleAction::Remove { name, force } => ("removemodule", json!([name, force])),
            ModuleAction::Rollback { name } => ("rollbackmodule", json!([name])),
            ModuleAction::Search { query } => ("searchmodules", json!([query.as_deref().unwrap_or("")])),
            ModuleAction::Keygen { .. } | ModuleAction::Sign(_) | ModuleAction::Verify { .. } => return None,
        })
    }
}

/// Why a JSON-RPC call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed.
    #[error("cannot reach the node at {addr}: {source}")]
    Io {
        /// Where.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The cookie file could not be read.
    #[error("cannot read the cookie file {}: {source}", path.display())]
    Cookie {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node answered with an HTTP error and no JSON-RPC body.
    #[error("the node answered HTTP {status}{hint}")]
    Http {
        /// The status code.
        status: u16,
        /// What it likely means.
        hint: &'static str,
    },
    /// The node answered with a JSON-RPC error.
    #[error("error {code}: {message}")]
    Rpc {
        /// Core's error code.
        code: i64,
        /// The message.
        message: String,
    },
    /// The answer was not JSON-RPC.
    #[error("unreadable answer: {0}")]
    Malformed(String),
}

/// A minimal blocking JSON-RPC 1.0 client (HTTP/1.1, basic auth).
#[derive(Debug, Clone)]
pub struct RpcClient {
    addr: SocketAddr,
    auth: String,
}

impl RpcClient {
    /// A client with `user:password` credentials.
    pub fn new(addr: SocketAddr, user: &str, password: &str) -> Self {
        RpcClient {
            addr,
            auth: base64(format!("{user}:{password}").as_bytes()),
        }
    }

    /// A client authenticating with the node's cookie file.
    pub fn from_cookie(addr: SocketAddr, cookie: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(cookie).map_err(|source| ClientError::Cookie {
            path: cookie.to_path_buf(),
            source,
        })?;
        Ok(RpcClient {
            addr,
            auth: base64(text.trim().as_bytes()),
        })
    }

    /// Calls `method` and returns its `result`.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let body = json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params}).to_string();
        let io = |source| ClientError::Io {
            addr: self.addr,
            source,
        };
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10)).map_err(io)?;
        write!(
            stream,
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            self.auth,
            body.len()
        )
        .map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(io)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| ClientError::Malformed("no HTTP header end".into()))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Malformed("no HTTP status".into()))?;
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let reply: Value = match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(_) => {
                return Err(ClientError::Http {
                    status,
                    hint: if status == 401 {
                        " (wrong rpcuser/rpcpassword or cookie)"
                    } else {
                        ""
                    },
                })
            }
        };
        match reply.get("error") {
            Some(e) if !e.is_null() => Err(ClientError::Rpc {
                code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: e.get("message").and_then(Value::as_str).unwrap_or("").to_owned(),
            }),
            _ => Ok(reply.get("result").cloned().unwrap_or(Value::Null)),
        }
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// Standard base64 with padding (only for the `Authorization` header).
fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), "Wikipedia");
    }
}
