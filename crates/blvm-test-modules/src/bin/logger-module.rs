//! A module that attacks the node's log through `log` frames, for the log
//! tests. It serves `module_call` invocations; the params (UTF-8) are
//! `<tag>` or `<count> <tag>`, and every line it logs carries the tag so a
//! test finds its own lines:
//!
//! - `flood <count> <tag>`: `count` info lines `flood <tag> <i>`, as fast as
//!   the SDK writes them;
//! - `oversize <tag>`: one line of 4 MiB, `oversize <tag> xxxx…`;
//! - `inject <tag>`: a line whose message, target and fields hold CR, LF
//!   and escape sequences (a forged node line), and a stdout line with CR
//!   and escape sequences.
//!
//! Each then pings the node before it answers. The node handles a
//! connection's frames in order, so once the ping is answered (served or
//! refused `rate_limited`) every log frame before it has been logged or
//! dropped: the answer means the node is done with them.

use std::io::Write;

use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult};
use blvm_sdk::protocol::{LogLevel, LogRecord, RemoteError};
use blvm_sdk::{ModuleIntegration, SdkError};

fn record(message: String, target: &str, fields: &[(&str, &str)]) -> LogRecord {
    LogRecord {
        level: LogLevel::Info,
        target: target.into(),
        message,
        fields: fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let integration = ModuleIntegration::from_env().await?;
    let mut invocations = integration.invocation_receiver()?;
    let ipc = integration.ipc().clone();
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => return Ok(()),
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Ok(()) };
                let call: ModuleCall = inv.params()?;
                let arg = String::from_utf8_lossy(&call.params).into_owned();
                let mut words = arg.split_whitespace();
                let sent = match call.method.as_str() {
                    "flood" => {
                        let count: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                        let tag = words.next().unwrap_or("untagged");
                        for i in 0..count {
                            ipc.log(&record(format!("flood {tag} {i}"), "logger", &[]))?;
                        }
                        count
                    }
                    "oversize" => {
                        let tag = words.next().unwrap_or("untagged");
                        let mut message = format!("oversize {tag} ");
                        message.push_str(&"x".repeat(4 << 20));
                        ipc.log(&record(message, "logger", &[]))?;
                        1
                    }
                    "inject" => {
                        let tag = words.next().unwrap_or("untagged");
                        let forged = format!(
                            "inject {tag} first\nINFO blvm_node::node: forged by {tag}\r\x1b[2K\x1b[31mred\x1b[0m"
                        );
                        ipc.log(&record(forged, "logger\x1b[8m", &[("key\n", "value\r\nINFO"), ("bell", "\x07")]))?;
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "stdout-inject {tag} a\rb\x1b[31mc\u{202e}d");
                        let _ = out.flush();
                        1
                    }
                    other => {
                        inv.reject(RemoteError::method_not_found(other));
                        continue;
                    }
                };
                // Served or `rate_limited`: either way it was handled after
                // every log frame above.
                let _ = integration.node_api().ping().await;
                inv.respond(&ModuleCallResult { result: format!("SENT {sent}").into_bytes() })?;
            }
        }
    }
}
