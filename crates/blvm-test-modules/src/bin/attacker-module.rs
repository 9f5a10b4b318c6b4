//! A module that attacks its sandbox, for the adversarial tests.
//!
//! It serves `module_call` invocations: the method names the attack, the
//! params (UTF-8) its target. The answer is `BLOCKED <error>` when the
//! attack failed and `ALLOWED <detail>` when it succeeded; the test
//! asserts on it. Attacks that cannot fail gracefully (allocating past the
//! memory limit) end the process instead, which the node reports as a crash.
//!
//! `attacker-module --direct <attack> [arg]` runs one attack at once and
//! prints the answer, for attacks made from outside any sandbox.

use std::io::{Read, Write};

#[path = "attacker/neighbours.rs"]
mod neighbours;

use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult};
use blvm_sdk::protocol::RemoteError;
use blvm_sdk::{ModuleIntegration, SdkError};

#[path = "attacker/kernel.rs"]
mod kernel;
#[path = "attacker/slots.rs"]
mod slots;

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
        "hold-files" => {
            // Opens /dev/null until refused, gives 8 back (so it can still
            // answer), and keeps the rest open for good.
            let mut files = Vec::new();
            while let Ok(f) = std::fs::File::open("/dev/null") {
                files.push(f);
                if files.len() > 100_000 {
                    break;
                }
            }
            files.truncate(files.len().saturating_sub(8));
            let held = files.len();
            std::mem::forget(files);
            format!("HOLDING {held} files")
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
        "hold" => {
            // Touches `arg` MiB and keeps it for the life of the process
            // (leaked on purpose), so the node sees the usage stay up.
            let mib: usize = arg.parse().unwrap_or(0);
            for _ in 0..mib {
                let b = Box::leak(vec![0u8; 1 << 20].into_boxed_slice());
                for i in (0..b.len()).step_by(4096) {
                    b[i] = 1;
                }
            }
            format!("HELD {mib} MiB")
        }
        "fork-bomb" => {
            // Starts processes until the kernel refuses; keeps every one
            // (never waited for), so the task count stays at the limit.
            let mut started = 0u32;
            let err = loop {
                let child = std::process::Command::new("/bin/sleep")
                    .arg("600")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
                match child {
                    Ok(c) => {
                        std::mem::forget(c);
                        started += 1;
                    }
                    Err(e) => break e,
                }
                if started >= 10_000 {
                    return Some(format!("ALLOWED {started} processes"));
                }
            };
            format!("BLOCKED after {started} processes: {err}")
        }
        "spin" => {
            // Busy threads, `arg` of them (default: one per CPU), forever.
            let n: usize = arg
                .parse()
                .unwrap_or_else(|_| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let mut spinning = 0;
            for _ in 0..n {
                let spawned = std::thread::Builder::new().spawn(|| loop {
                    std::hint::spin_loop();
                });
                if spawned.is_ok() {
                    spinning += 1;
                }
            }
            format!("SPINNING {spinning} threads")
        }
        "setsid" => {
            // A grandchild in its own session, its parent (the shell)
            // gone: it has left the module's process group and tree. It
            // prints its pid only after `setsid` ran (it is the program
            // `setsid` executes), so the answer means "escaped".
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", "setsid /bin/sh -c 'echo $$; exec sleep 600 >/dev/null 2>&1' &"])
                .stdin(std::process::Stdio::null())
                .output();
            outcome(out, |o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        }
        "signal-node" => {
            // SIGTERM to the node: `arg` is its pid, or empty for the parent.
            let pid = node_pid(arg);
            // SAFETY: kill(2) takes two integers and touches no memory.
            #[allow(unsafe_code)]
            let r = unsafe { libc::kill(pid, libc::SIGTERM) };
            outcome(errno_result(r), |_| format!("SIGTERM sent to {pid}"))
        }
        "ptrace-node" => {
            // PTRACE_ATTACH to the node (`arg` as for signal-node).
            let pid = node_pid(arg);
            // SAFETY: PTRACE_ATTACH reads no memory of ours; the address
            // and data arguments are ignored (null).
            #[allow(unsafe_code)]
            let r = unsafe {
                libc::ptrace(
                    libc::PTRACE_ATTACH,
                    pid,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                )
            };
            outcome(errno_result(r as libc::c_int), |_| format!("attached to {pid}"))
        }
        "hold-slots" => slots::hold_slots(arg),
        "exec" => {
            // Runs the program `arg` (say, a setuid copy of `id`) and
            // answers `RAN <its stdout>`, or BLOCKED if it cannot start.
            match std::process::Command::new(arg).output() {
                Ok(out) => format!("RAN {}", String::from_utf8_lossy(&out.stdout).trim()),
                Err(e) => format!("BLOCKED {e}"),
            }
        }
        m if kernel::METHODS.contains(&m) => return kernel::attack(m, arg),
        _ => return neighbours::attack(method, arg),
    })
}

/// The pid in `arg`, or the parent's (the node spawned the module).
fn node_pid(arg: &str) -> libc::pid_t {
    // SAFETY: getppid(2) cannot fail and touches no memory.
    #[allow(unsafe_code)]
    let parent = unsafe { libc::getppid() };
    arg.trim().parse().unwrap_or(parent)
}

/// A libc return value as a result: -1 is the errno.
fn errno_result(r: libc::c_int) -> std::io::Result<libc::c_int> {
    if r == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    // `attacker-module --direct <attack> [arg]`: one attack from outside
    // any sandbox (a host process of the test's choosing), answer on stdout.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--direct") {
        let method = args.get(2).map_or("", String::as_str);
        let arg = args.get(3).map_or("", String::as_str);
        println!("{}", attack(method, arg).unwrap_or_else(|| format!("UNKNOWN {method}")));
        return Ok(());
    }
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
