//! Every syscall a thread makes, counted by the kernel: one perf counter
//! on the `raw_syscalls:sys_enter` tracepoint per measured thread.
//!
//! procfs only counts read-class and write-class calls (`/proc/*/io`'s
//! `syscr`/`syscw`), and not the socket calls (`sendmsg`, `recvfrom`,
//! `epoll_wait`, `futex` …) that the IPC paths are made of, so a full
//! count per operation needs the kernel's tracepoint. A counter is opened
//! the first time a thread is sampled and read at every later sample, so
//! the difference of two samples counts exactly the syscalls in between,
//! as long as the thread existed at the first one (the measured processes
//! keep their threads alive across a window; see `procstat`).
//!
//! Needs the tracepoint's id from tracefs (mounted here if it is not and
//! we may) and the right to open a tracepoint counter on another process
//! (root, or `kernel.perf_event_paranoid` ≤ -1). Without either,
//! [`available`] is false and the bench falls back to procfs's
//! read/write counts.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::{Mutex, OnceLock};

use perf_event_open_sys as sys;

/// Where tracefs keeps the tracepoint's id, in the order tried.
const ID_FILES: [&str; 2] = [
    "/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
    "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
];

/// How many counters may be open before those of exited threads are
/// closed.
const PRUNE_AT: usize = 256;

/// The tracepoint id of `raw_syscalls:sys_enter`, when the kernel gives
/// one and this process may count it.
fn tracepoint() -> Option<u64> {
    static ID: OnceLock<Option<u64>> = OnceLock::new();
    *ID.get_or_init(|| {
        let read = || {
            ID_FILES
                .iter()
                .find_map(|f| std::fs::read_to_string(f).ok()?.trim().parse().ok())
        };
        let id = read().or_else(|| {
            // tracefs is often not mounted in containers; as root, mount it
            // where the kernel documents it (a no-op failure otherwise).
            let _ = std::process::Command::new("mount")
                .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
                .stderr(std::process::Stdio::null())
                .status();
            read()
        })?;
        // Try it on this thread: the right to count is checked at open.
        open(id, 0).map(|_| id)
    })
}

/// Whether syscalls are counted (else [`count`] is always `None`).
pub(crate) fn available() -> bool {
    tracepoint().is_some()
}

/// Opens a counter of tracepoint `id` on thread `tid` (0: this thread).
fn open(id: u64, tid: i32) -> Option<File> {
    let mut attr = sys::bindings::perf_event_attr {
        type_: sys::bindings::PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<sys::bindings::perf_event_attr>() as u32,
        config: id,
        ..Default::default()
    };
    // Counts from the open on; the kernel's calls on the thread's behalf
    // are its syscalls too, so nothing is excluded.
    #[allow(unsafe_code)]
    // SAFETY: `attr` is a valid, fully initialised perf_event_attr whose
    // `size` is its own; the call only reads it. The returned descriptor,
    // when valid, is owned by nobody else and moves into the `File`.
    let fd = unsafe { sys::perf_event_open(&mut attr, tid, -1, -1, u64::from(sys::bindings::PERF_FLAG_FD_CLOEXEC)) };
    if fd < 0 {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: `fd` was just returned by perf_event_open and is not shared.
    Some(unsafe { File::from_raw_fd(fd) })
}

/// The syscalls thread `tid` made since it was first sampled (0 at that
/// first sample), or `None` when they cannot be counted.
pub(crate) fn count(tid: i32) -> Option<u64> {
    static COUNTERS: OnceLock<Mutex<HashMap<i32, File>>> = OnceLock::new();
    let id = tracepoint()?;
    let mut counters = COUNTERS.get_or_init(Default::default).lock().ok()?;
    if counters.len() >= PRUNE_AT {
        // Each counter holds a descriptor: those of threads that exited
        // (the bench starts and stops hundreds of modules) are closed
        // before they exhaust the process's descriptors.
        counters.retain(|tid, _| std::path::Path::new(&format!("/proc/{tid}")).exists());
    }
    // A tid can be reused by a later thread; the counter then counts
    // from the first sample, which is what `since` subtracts.
    let counter = match counters.entry(tid) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(open(id, tid)?),
    };
    let mut value = [0u8; 8];
    counter.read_exact(&mut value).ok()?;
    Some(u64::from_ne_bytes(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_makes_syscalls_is_counted_making_them() {
        if !available() {
            eprintln!("syscalls are not countable here (no tracefs or no right to perf_event_open)");
            return;
        }
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        let before = count(tid).expect("counted");
        for _ in 0..100 {
            let _ = std::fs::metadata("/");
        }
        let spent = count(tid).expect("counted") - before;
        assert!(spent >= 100, "100 stat calls counted as {spent}");
    }
}
