//! A module that uses its data dir, driven by the test with `module_call`
//! invocations: the method is a command, the params its space-separated
//! arguments, the answer one line of text. Paths are relative to its data
//! dir (`BLVM_MODULE_DATA_DIR`).
//!
//! What the process does itself (the kernel decides; a refusal answers
//! `ERRNO <errno>`, `ERRNO 13` being `EACCES`):
//! - `write <path> <text>` → `OK`; `read <path>` → `READ <text>`;
//!   `list <path>` → `LIST <name,name,...>` (sorted);
//!   `symlink <target> <path>` → `OK`.
//!
//! What it asks the node (`manage_filesystem`; a refusal answers `ERR
//! <code> <capability, or the node's message>`):
//! - `mkdir <path>` → `OK <changed>`; `rmdir <path> [recursive]` → `OK
//!   <removed>`; `usage` → `USAGE <used> <free> <quota> <used inodes>
//!   <inodes>` (`-` for none).

use std::path::PathBuf;

use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult};
use blvm_sdk::{ModuleIntegration, NodeApiIpc, SdkError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let integration = ModuleIntegration::from_env().await?;
    let api = integration.node_api();
    let mut invocations = integration.invocation_receiver()?;
    println!("FILESYSTEM READY");
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => return Ok(()),
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Ok(()) };
                let call: ModuleCall = inv.params()?;
                let args = String::from_utf8_lossy(&call.params).into_owned();
                let args: Vec<&str> = args.split(' ').filter(|a| !a.is_empty()).collect();
                let answer = match command(&api, &call.method, &args).await {
                    Ok(text) => text,
                    Err(SdkError::Remote(e)) => {
                        format!("ERR {} {}", e.code, e.capability.unwrap_or(e.message))
                    }
                    Err(e) => format!("ERR {e}"),
                };
                inv.respond(&ModuleCallResult { result: answer.into_bytes() })?;
            }
        }
    }
}

fn arg<'a>(args: &[&'a str], i: usize) -> &'a str {
    args.get(i).copied().unwrap_or_default()
}

fn in_data_dir(path: &str) -> PathBuf {
    PathBuf::from(std::env::var("BLVM_MODULE_DATA_DIR").unwrap_or_default()).join(path)
}

fn io(result: std::io::Result<String>) -> String {
    match result {
        Ok(text) => text,
        Err(e) => format!("ERRNO {}", e.raw_os_error().unwrap_or(-1)),
    }
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

async fn command(api: &NodeApiIpc, method: &str, args: &[&str]) -> Result<String, SdkError> {
    let path = arg(args, 0);
    Ok(match method {
        "write" => io(std::fs::write(in_data_dir(path), arg(args, 1)).map(|()| "OK".into())),
        "read" => io(std::fs::read_to_string(in_data_dir(path)).map(|t| format!("READ {t}"))),
        "list" => io(std::fs::read_dir(in_data_dir(path)).and_then(|dir| {
            let mut names = dir
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<std::io::Result<Vec<_>>>()?;
            names.sort();
            Ok(format!("LIST {}", names.join(",")))
        })),
        "symlink" => io(std::os::unix::fs::symlink(path, in_data_dir(arg(args, 1))).map(|()| "OK".into())),
        "mkdir" => format!("OK {}", api.fs_create_dir(path).await?),
        "rmdir" => format!("OK {}", api.fs_remove_dir(path, arg(args, 1) == "recursive").await?),
        "usage" => {
            let u = api.fs_usage().await?;
            format!(
                "USAGE {} {} {} {} {}",
                show(u.used_bytes),
                show(u.free_bytes),
                show(u.quota_bytes),
                show(u.used_inodes),
                show(u.total_inodes)
            )
        }
        other => format!("ERR unknown command {other}"),
    })
}
