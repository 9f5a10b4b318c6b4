//! The network namespace layer: a module without `network_access` gets a
//! new, empty network namespace (only a loopback device, down), so it can
//! reach no network address even through a socket seccomp would allow.
//! Unix sockets bound to a path live in the filesystem, not the network
//! namespace, so the node's socket stays reachable.

use rustix::thread::UnshareFlags;

/// Whether `unshare(CLONE_NEWNET)` can succeed: it needs `CAP_SYS_ADMIN`,
/// which a root node has (a non-root node would need a user namespace,
/// which is not used).
pub(super) fn available() -> Result<(), String> {
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return Err("this kernel has no network namespaces".into());
    }
    if !rustix::process::geteuid().is_root() {
        return Err("the node is not root (CAP_SYS_ADMIN is needed to create a network namespace)".into());
    }
    Ok(())
}

/// Child side: one `unshare` system call.
#[allow(unsafe_code)]
pub(super) fn unshare_in_child() -> Result<(), rustix::io::Errno> {
    // SAFETY: `unshare_unsafe` is unsafe because unsharing some namespaces
    // (files, fs) can break assumptions of other threads of the process.
    // This runs in the forked child, which has a single thread, and
    // unshares only the network namespace, which no memory of the process
    // depends on.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }
}
