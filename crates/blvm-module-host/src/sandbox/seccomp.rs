//! The system call filter, installed last: refuses `socket()` of any family
//! but `AF_UNIX` (unless `network_access`), every `io_uring` call (whose
//! operations would bypass this filter), and `ptrace`. A refused call
//! returns `EPERM` rather than killing the module, so an attempt fails
//! visibly and the module can report it.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

/// Compiles the program in the parent.
pub(super) fn program(network_access: bool) -> Result<BpfProgram, String> {
    if !seccomp_available() {
        return Err("this kernel has no seccomp filter mode".into());
    }
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: unsupported architecture: {e:?}"))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // An empty rule list matches the call unconditionally.
    for call in [
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_ptrace,
    ] {
        rules.insert(call, Vec::new());
    }
    if !network_access {
        let not_unix = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, libc::AF_UNIX as u64)
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(|e| format!("seccomp rule: {e}"))?;
        rules.insert(libc::SYS_socket, vec![not_unix]);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    filter.try_into().map_err(|e| format!("seccomp compile: {e}"))
}

/// `/proc/self/status` has a `Seccomp:` line when the kernel supports it.
fn seccomp_available() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
}

/// Child side: `prctl(NO_NEW_PRIVS)` and `seccomp(SET_MODE_FILTER)` on
/// the prepared program (no allocation: the program is borrowed).
pub(super) fn install(program: &BpfProgram) -> Result<(), i32> {
    seccompiler::apply_filter(program).map_err(|_| std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}
