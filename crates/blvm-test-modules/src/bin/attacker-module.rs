//! A module that attacks its sandbox, for the adversarial tests.
//!
//! It serves `module_call` invocations: the method names the attack, the
//! params (UTF-8) its target. The answer is `BLOCKED <error>` when the
//! attack failed and `ALLOWED <detail>` when it succeeded; the test
//! asserts on it. Attacks that cannot fail gracefully (allocating past the
//! memory limit) end the process instead, which the node reports as a crash.

use std::io::{Read, Write};

use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult};
use blvm_sdk::protocol::RemoteError;
use blvm_sdk::{ModuleIntegration, SdkError};

fn outcome<T>(r: std::io::Result<T>, ok: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => format!("ALLOWED {}", ok(v)),
        Err(e) => format!("BLOCKED {e}"),
    }
}

/// Runs one attack; `arg` is its target.
fn attack(method: &str, arg: &str) -> Option<String> {
    Some(match method {
        "read" => outcome(std::fs::read(arg), |b| format!("{} bytes", b.len())),
        "write" => outcome(std::fs::write(arg, b"pwned"), |()| "written".into()),
        "tcp" => outcome(std::net::TcpStream::connect(arg), |mut s| {
            let _ = s.write_all(b"hi");
            "connected".into()
        }),
        "udp" => outcome(std::net::UdpSocket::bind("127.0.0.1:0"), |_| "bound".into()),
        "nofile" => {
            // Opens /dev/null until refused; reports how many it got.
            let mut files = Vec::new();
            let err = loop {
                match std::fs::File::open("/dev/null") {
                    Ok(f) => files.push(f),
                    Err(e) => break e,
                }
                if files.len() > 100_000 {
                    return Some(format!("ALLOWED {} files", files.len()));
                }
            };
            format!("BLOCKED after {} files: {err}", files.len())
        }
        "status" => {
            // The line of /proc/self/status named by `arg` (e.g. NoNewPrivs).
            let mut s = String::new();
            let _ = std::fs::File::open("/proc/self/status").and_then(|mut f| f.read_to_string(&mut s));
            s.lines().find(|l| l.starts_with(arg)).unwrap_or("absent").to_owned()
        }
        "alloc" => {
            // Touches `arg` MiB one page at a time: past the limit, either
            // the allocation fails (RLIMIT_DATA aborts the process) or the
            // cgroup's OOM killer kills it. Either way, no answer.
            let mib: usize = arg.parse().unwrap_or(1024);
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mib {
                let mut b = vec![0u8; 1 << 20];
                for i in (0..b.len()).step_by(4096) {
                    b[i] = 1;
                }
                blocks.push(b);
            }
            format!("ALLOWED {} MiB", blocks.len())
        }
        _ => return None,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let integration = ModuleIntegration::from_env().await?;
    let mut invocations = integration.invocation_receiver()?;
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => return Ok(()),
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Ok(()) };
                let call: ModuleCall = inv.params()?;
                let arg = String::from_utf8_lossy(&call.params).into_owned();
                match attack(&call.method, &arg) {
                    Some(answer) => inv.respond(&ModuleCallResult { result: answer.into_bytes() })?,
                    None => inv.reject(RemoteError::method_not_found(&call.method)),
                }
            }
        }
    }
}
