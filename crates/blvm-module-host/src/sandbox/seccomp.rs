//! The system call filter, installed last: a deny-list, [`DENIED_CALLS`],
//! the one place that says which calls a module may not make and why
//! (docs/security.md 2.11 and the tests read it), plus three checks before
//! it:
//!
//! 1. every architecture but the native one is killed
//!    (`SECCOMP_RET_KILL_PROCESS`): seccompiler's program starts with that
//!    check. On x86_64 the native architecture has two ABIs: x32 calls
//!    arrive with the native `AUDIT_ARCH_X86_64` and their number ORed with
//!    `0x40000000`, so no rule below (written for x86_64 numbers) would
//!    match them and a kernel with x32 would run `unshare` or `keyctl`
//!    through that door. Any number with that bit set is killed too;
//! 2. a number above [`NEWEST_KNOWN_SYSCALL`] (a call added by a kernel
//!    newer than this table) is answered `ENOSYS`, which programs take as
//!    "not supported here", until someone reviews it;
//! 3. the rows answered `ENOSYS` (`clone3`).
//!
//! Why a deny-list with default Allow, not an allow-list: modules are
//! arbitrary programs (Rust with any crate, Python with C extensions), and
//! their runtimes start using new calls with each release (`rseq`,
//! `clone3`, `close_range`, `faccessat2`, `statx`, `futex_waitv`); an
//! allow-list turns each such upgrade into a module that fails where it
//! never failed before, with an `EPERM` from deep inside a library. What a
//! module must not reach is a short, stable list: namespaces, keyrings,
//! kernel extension points (eBPF, perf, userfaultfd, kernel modules,
//! kexec), mounts, other processes' memory and descriptors, and host-wide
//! settings; it mirrors what Docker's default profile refuses, and item 2
//! closes the door an allow-list closes against calls nobody has reviewed.
//!
//! A refused call returns `EPERM` rather than killing the module, so an
//! attempt fails visibly and the module can report it; only a foreign
//! architecture or ABI, which no module has a reason to use, kills.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// How the filter answers a refused call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `EPERM`: "you may not".
    Eperm,
    /// `ENOSYS`: "this kernel has no such call", for calls whose callers
    /// fall back to one the filter can check.
    Enosys,
}

impl Answer {
    /// The errno the module sees.
    pub fn errno(self) -> i32 {
        match self {
            Answer::Eperm => libc::EPERM,
            Answer::Enosys => libc::ENOSYS,
        }
    }
}

/// Which calls of a system call are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every call.
    Always,
    /// Calls whose flags (argument 0) have any of
    /// [`CLONE_NAMESPACE_FLAGS`]; thread and plain process clones pass.
    WithNamespaceFlag,
    /// Calls for any address family (argument 0) but `AF_UNIX`, in a
    /// module without `network_access` (with it, none).
    FamilyNotUnixWithoutNetwork,
    /// Calls setting any persona (argument 0) but these (Docker's list:
    /// `PER_LINUX`, `PER_LINUX32`, `UNAME26` and both, and `0xffffffff`,
    /// which only reads it).
    PersonaNotIn(&'static [u32]),
}

/// One row of the deny-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeniedCall {
    /// The call's name (as in `man 2`).
    pub name: &'static str,
    /// Its number on this architecture.
    pub nr: i64,
    /// Which of its calls are refused.
    pub refused: Refused,
    /// What the module is answered.
    pub answer: Answer,
    /// Why it is refused.
    pub reason: &'static str,
}

/// The namespace bits of `clone`'s flags: `CLONE_NEWNS`, `CLONE_NEWCGROUP`,
/// `CLONE_NEWUTS`, `CLONE_NEWIPC`, `CLONE_NEWUSER`, `CLONE_NEWPID`,
/// `CLONE_NEWNET`. (`CLONE_NEWTIME`, 0x80, exists only for `unshare` and
/// `clone3`: in `clone`'s flags that bit belongs to the exit signal.)
pub const CLONE_NAMESPACE_FLAGS: [i32; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// The highest system call number this table was reviewed against:
/// `file_setattr`, Linux 6.17 (the newest the 6.18 kernel of our test
/// hosts has). Numbers from 424 up are the same on every architecture.
pub const NEWEST_KNOWN_SYSCALL: i64 = 469;

/// `open_tree_attr` (Linux 6.15), not yet in the libc crate. The number is
/// the same on every architecture (unified numbering from 424 on).
const SYS_OPEN_TREE_ATTR: i64 = 467;

/// The x32 ABI's bit in the system call number (`__X32_SYSCALL_BIT`).
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Personas `personality` may set (Docker's default profile).
const ALLOWED_PERSONAS: &[u32] = &[0x0000_0000, 0x0000_0008, 0x0002_0000, 0x0002_0008, 0xffff_ffff];

const fn row(name: &'static str, nr: i64, reason: &'static str) -> DeniedCall {
    DeniedCall {
        name,
        nr,
        refused: Refused::Always,
        answer: Answer::Eperm,
        reason,
    }
}

/// Every call the filter refuses, with why. `socket` is refused only for
/// modules without `network_access`.
pub const DENIED_CALLS: &[DeniedCall] = &[
    // Namespaces: a new user namespace holds every capability inside it,
    // the start of most unprivileged kernel exploits.
    row("unshare", libc::SYS_unshare, "creates namespaces (a user namespace gives every capability inside it)"),
    row("setns", libc::SYS_setns, "joins another process's namespaces"),
    DeniedCall {
        name: "clone",
        nr: libc::SYS_clone,
        refused: Refused::WithNamespaceFlag,
        answer: Answer::Eperm,
        reason: "with a CLONE_NEW* flag it creates namespaces; threads and plain forks pass",
    },
    DeniedCall {
        name: "clone3",
        nr: libc::SYS_clone3,
        refused: Refused::Always,
        answer: Answer::Enosys,
        reason: "its flags are in memory the filter cannot read; on ENOSYS glibc and Rust's std fall back to clone, which is checked",
    },
    // Keyrings are the kernel's, shared by uid and by session: the node's
    // keys, and other modules'.
    row("keyctl", libc::SYS_keyctl, "reads and changes kernel keyrings shared beyond the module"),
    row("add_key", libc::SYS_add_key, "adds keys to kernel keyrings"),
    row("request_key", libc::SYS_request_key, "looks up keys, and can make the kernel run a helper"),
    // Kernel extension points and debugging interfaces.
    row("bpf", libc::SYS_bpf, "loads eBPF programs and maps: a large kernel attack surface"),
    row("userfaultfd", libc::SYS_userfaultfd, "holds kernel page faults at will, the usual aid to kernel exploits"),
    row("perf_event_open", libc::SYS_perf_event_open, "kernel profiling: information leaks and a long history of kernel bugs"),
    row("syslog", libc::SYS_syslog, "reads and clears the kernel log"),
    row("io_uring_setup", libc::SYS_io_uring_setup, "io_uring operations run without passing this filter"),
    row("io_uring_enter", libc::SYS_io_uring_enter, "io_uring operations run without passing this filter"),
    row("io_uring_register", libc::SYS_io_uring_register, "io_uring operations run without passing this filter"),
    // The mount family (the node sets up the module's mount namespace
    // before this filter is installed).
    row("mount", libc::SYS_mount, "changes the file system tree"),
    row("umount2", libc::SYS_umount2, "changes the file system tree"),
    row("pivot_root", libc::SYS_pivot_root, "changes the file system tree"),
    row("move_mount", libc::SYS_move_mount, "changes the file system tree"),
    row("open_tree", libc::SYS_open_tree, "clones mounts, the first step of the new mount API"),
    row("open_tree_attr", SYS_OPEN_TREE_ATTR, "clones mounts with new attributes"),
    row("fsopen", libc::SYS_fsopen, "creates file system contexts for new mounts"),
    row("fsconfig", libc::SYS_fsconfig, "configures new mounts"),
    row("fsmount", libc::SYS_fsmount, "creates mounts"),
    row("fspick", libc::SYS_fspick, "reconfigures existing mounts"),
    row("mount_setattr", libc::SYS_mount_setattr, "changes mount attributes"),
    // Kernel code.
    row("init_module", libc::SYS_init_module, "loads kernel code"),
    row("finit_module", libc::SYS_finit_module, "loads kernel code"),
    row("delete_module", libc::SYS_delete_module, "removes kernel code"),
    row("kexec_load", libc::SYS_kexec_load, "replaces the running kernel"),
    row("kexec_file_load", libc::SYS_kexec_file_load, "replaces the running kernel"),
    // Other processes.
    row("ptrace", libc::SYS_ptrace, "reads and controls other processes"),
    row("process_vm_readv", libc::SYS_process_vm_readv, "reads another process's memory"),
    row("process_vm_writev", libc::SYS_process_vm_writev, "writes another process's memory"),
    row("process_madvise", libc::SYS_process_madvise, "acts on another process's memory"),
    row("pidfd_getfd", libc::SYS_pidfd_getfd, "takes another process's file descriptors"),
    row("kcmp", libc::SYS_kcmp, "compares other processes' kernel objects (probes their descriptors)"),
    // File handles: open any file of a mount by number, past every path check.
    row("open_by_handle_at", libc::SYS_open_by_handle_at, "opens files by handle, past every path check (the 'shocker' escape)"),
    row("name_to_handle_at", libc::SYS_name_to_handle_at, "makes the handles open_by_handle_at takes"),
    // Host-wide settings (a root module keeps its capabilities when the
    // operator turns the uid drop off).
    row("reboot", libc::SYS_reboot, "reboots or halts the host"),
    row("swapon", libc::SYS_swapon, "changes the host's swap"),
    row("swapoff", libc::SYS_swapoff, "changes the host's swap"),
    row("acct", libc::SYS_acct, "switches process accounting for the host"),
    row("quotactl", libc::SYS_quotactl, "reads and changes disk quotas"),
    row("quotactl_fd", libc::SYS_quotactl_fd, "reads and changes disk quotas"),
    row("sethostname", libc::SYS_sethostname, "renames the host"),
    row("setdomainname", libc::SYS_setdomainname, "renames the host's domain"),
    row("settimeofday", libc::SYS_settimeofday, "sets the clock the node's block checks rely on"),
    row("clock_settime", libc::SYS_clock_settime, "sets the clock the node's block checks rely on"),
    row("clock_adjtime", libc::SYS_clock_adjtime, "adjusts the clock the node's block checks rely on"),
    row("adjtimex", libc::SYS_adjtimex, "adjusts the clock the node's block checks rely on"),
    #[cfg(target_arch = "x86_64")]
    row("iopl", libc::SYS_iopl, "direct access to the host's I/O ports"),
    #[cfg(target_arch = "x86_64")]
    row("ioperm", libc::SYS_ioperm, "direct access to the host's I/O ports"),
    DeniedCall {
        name: "personality",
        nr: libc::SYS_personality,
        refused: Refused::PersonaNotIn(ALLOWED_PERSONAS),
        answer: Answer::Eperm,
        reason: "other personas turn off address randomisation or make data executable in what the module runs",
    },
    DeniedCall {
        name: "socket",
        nr: libc::SYS_socket,
        refused: Refused::FamilyNotUnixWithoutNetwork,
        answer: Answer::Eperm,
        reason: "without network_access, only Unix sockets",
    },
];

/// Compiles the program in the parent.
pub(super) fn program(network_access: bool) -> Result<BpfProgram, String> {
    if !seccomp_available() {
        return Err("this kernel has no seccomp filter mode".into());
    }
    compile(network_access)
}

/// The program for this architecture (no kernel needed: unit-testable).
fn compile(network_access: bool) -> Result<BpfProgram, String> {
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: unsupported architecture: {e:?}"))?;
    let rule_error = |e: seccompiler::BackendError| format!("seccomp rule: {e}");
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for call in DENIED_CALLS.iter().filter(|c| c.answer == Answer::Eperm) {
        // An empty rule list matches the call unconditionally; rules of
        // one call match when any of them does.
        let chain = match call.refused {
            Refused::Always => Vec::new(),
            Refused::WithNamespaceFlag => CLONE_NAMESPACE_FLAGS
                .iter()
                .map(|&bit| {
                    // The kernel reads the lower 32 bits of clone's flags.
                    let bit = bit as u32 as u64;
                    SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(bit), bit)
                        .and_then(|c| SeccompRule::new(vec![c]))
                        .map_err(rule_error)
                })
                .collect::<Result<_, _>>()?,
            Refused::FamilyNotUnixWithoutNetwork if network_access => continue,
            Refused::FamilyNotUnixWithoutNetwork => {
                vec![
                    SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, libc::AF_UNIX as u64)
                        .and_then(|c| SeccompRule::new(vec![c]))
                        .map_err(rule_error)?,
                ]
            }
            Refused::PersonaNotIn(allowed) => {
                // One rule, all of its conditions true: none of them.
                let not_allowed = allowed
                    .iter()
                    .map(|&p| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, u64::from(p)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(rule_error)?;
                vec![SeccompRule::new(not_allowed).map_err(rule_error)?]
            }
        };
        rules.insert(call.nr, chain);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    let compiled: BpfProgram = filter.try_into().map_err(|e| format!("seccomp compile: {e}"))?;
    splice_prologue(compiled)
}

/// Instructions of seccompiler's architecture check at the start of its
/// program: load the architecture, skip the next if native, kill.
const ARCH_CHECK_LEN: usize = 3;

/// Inserts [`prologue`] right after seccompiler's architecture check (its
/// jump lands on the first instruction after it, ours now; every later
/// jump is relative and stays within seccompiler's part). Refuses a
/// program that does not start with that check, so a seccompiler upgrade
/// that changes it fails the build's tests and the spawn, not silently.
fn splice_prologue(compiled: BpfProgram) -> Result<BpfProgram, String> {
    let kill = stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_KILL_PROCESS);
    let starts_with_arch_check = compiled.len() > ARCH_CHECK_LEN
        && compiled[0] == stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, ARCH_OFFSET)
        && compiled[1].code == (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16
        && (compiled[1].jt, compiled[1].jf) == (1, 0)
        && compiled[2] == kill;
    if !starts_with_arch_check {
        return Err("seccomp: seccompiler's program does not start with its architecture check".into());
    }
    let mut program = compiled;
    let tail = program.split_off(ARCH_CHECK_LEN);
    program.extend(prologue());
    program.extend(tail);
    if program.len() > usize::from(u16::MAX) {
        return Err(format!("seccomp: program too long ({} instructions)", program.len()));
    }
    Ok(program)
}

/// `offsetof(struct seccomp_data, nr)` and `arch`.
const NR_OFFSET: u32 = std::mem::offset_of!(libc::seccomp_data, nr) as u32;
const ARCH_OFFSET: u32 = std::mem::offset_of!(libc::seccomp_data, arch) as u32;

/// Runs after the architecture check, before seccompiler's rules (which
/// reload the number): kill x32, `ENOSYS` above the newest known call and
/// for the rows answered `ENOSYS`.
fn prologue() -> Vec<sock_filter> {
    let ret = |action: u32| stmt(libc::BPF_RET | libc::BPF_K, action);
    let enosys = libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32 & libc::SECCOMP_RET_DATA);
    let mut p = vec![stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR_OFFSET)];
    #[cfg(target_arch = "x86_64")]
    {
        // jt 0: the next instruction (kill); jf 1: skip it.
        p.push(jump(
            libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K,
            X32_SYSCALL_BIT,
            0,
            1,
        ));
        p.push(ret(libc::SECCOMP_RET_KILL_PROCESS));
    }
    p.push(jump(
        libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K,
        NEWEST_KNOWN_SYSCALL as u32,
        0,
        1,
    ));
    p.push(ret(enosys));
    for call in DENIED_CALLS.iter().filter(|c| c.answer == Answer::Enosys) {
        p.push(jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, call.nr as u32, 0, 1));
        p.push(ret(enosys));
    }
    p
}

fn stmt(code: u32, k: u32) -> sock_filter {
    jump(code, k, 0, 0)
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    // BPF opcodes are 16 bits; libc declares them as u32.
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
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

#[cfg(test)]
#[path = "seccomp_tests.rs"]
mod tests;
