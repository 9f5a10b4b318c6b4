//! The compiled program against the table: a classic-BPF interpreter (the
//! instructions seccompiler and the prologue emit) runs it on
//! `seccomp_data` the way the kernel would, for every system call number.

use super::*;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// `AUDIT_ARCH_*` of this target (what the kernel reports for native
/// calls) and of a foreign one (i386, aarch64's arm32 compat).
#[cfg(target_arch = "x86_64")]
const NATIVE: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "x86_64")]
const FOREIGN: u32 = 3 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const NATIVE: u32 = 183 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const FOREIGN: u32 = 40 | 0x4000_0000;
#[cfg(target_arch = "riscv64")]
const NATIVE: u32 = 243 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "riscv64")]
const FOREIGN: u32 = 243 | 0x4000_0000;

/// Runs `program` on one call, as the kernel does; its return value.
fn run(program: &[sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
    let mut data = [0u8; std::mem::size_of::<libc::seccomp_data>()];
    data[0..4].copy_from_slice(&(nr as i32).to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    let args_at = std::mem::offset_of!(libc::seccomp_data, args);
    for (i, a) in args.iter().enumerate() {
        data[args_at + 8 * i..args_at + 8 * i + 8].copy_from_slice(&a.to_ne_bytes());
    }
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let ins = &program[pc];
        let code = u32::from(ins.code);
        let k = ins.k;
        pc += 1;
        let jump = |taken: bool| usize::from(if taken { ins.jt } else { ins.jf });
        match code {
            c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                let at = k as usize;
                acc = u32::from_ne_bytes(data[at..at + 4].try_into().expect("4 bytes"));
            }
            c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => acc &= k,
            c if c == libc::BPF_JMP | libc::BPF_JA => pc += k as usize,
            c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => pc += jump(acc == k),
            c if c == libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K => pc += jump(acc > k),
            c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => pc += jump(acc >= k),
            c if c == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => pc += jump(acc & k != 0),
            c if c == libc::BPF_RET | libc::BPF_K => return k,
            other => panic!("instruction {other:#x} at {} not interpreted", pc - 1),
        }
    }
}

fn native(program: &[sock_filter], nr: i64, args: [u64; 6]) -> u32 {
    run(program, NATIVE, nr, args)
}

fn expected(call: &DeniedCall) -> u32 {
    match call.answer {
        Answer::Eperm => EPERM,
        Answer::Enosys => ENOSYS,
    }
}

/// Arguments that make a conditional row refuse the call.
fn refused_args(call: &DeniedCall) -> [u64; 6] {
    match call.refused {
        Refused::Always => [0; 6],
        Refused::WithNamespaceFlag => [(libc::CLONE_NEWUSER | libc::SIGCHLD) as u64, 0, 0, 0, 0, 0],
        Refused::FamilyNotUnixWithoutNetwork => [libc::AF_INET as u64, 0, 0, 0, 0, 0],
        Refused::PersonaNotIn(_) => [libc::ADDR_NO_RANDOMIZE as u64, 0, 0, 0, 0, 0],
    }
}

#[test]
fn every_row_of_the_table_is_refused_with_its_answer_and_nothing_else_is() {
    let program = compile(false).expect("compiles");
    for call in DENIED_CALLS {
        assert_eq!(
            native(&program, call.nr, refused_args(call)),
            expected(call),
            "{}",
            call.name
        );
    }
    let denied: Vec<i64> = DENIED_CALLS.iter().map(|c| c.nr).collect();
    for nr in 0..=NEWEST_KNOWN_SYSCALL {
        if denied.contains(&nr) {
            continue;
        }
        for args in [[0; 6], [u64::MAX; 6]] {
            assert_eq!(native(&program, nr, args), ALLOW, "call {nr} with {args:?}");
        }
    }
}

#[test]
fn table_rows_are_unique_and_documented() {
    let security = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/security.md"));
    for (i, call) in DENIED_CALLS.iter().enumerate() {
        assert!(
            DENIED_CALLS[..i].iter().all(|c| c.nr != call.nr && c.name != call.name),
            "{} twice",
            call.name
        );
        assert!(!call.reason.is_empty(), "{} has a reason", call.name);
        assert!(
            security.contains(&format!("`{}`", call.name)),
            "docs/security.md names `{}`",
            call.name
        );
    }
}

#[test]
fn clone_is_refused_for_each_namespace_flag_and_allowed_for_threads_and_forks() {
    let program = compile(false).expect("compiles");
    for bit in CLONE_NAMESPACE_FLAGS {
        let flags = (bit | libc::SIGCHLD) as u32 as u64;
        assert_eq!(
            native(&program, libc::SYS_clone, [flags, 0, 0, 0, 0, 0]),
            EPERM,
            "{bit:#x}"
        );
        // Bits above the 32 the kernel reads change nothing.
        assert_eq!(
            native(&program, libc::SYS_clone, [flags | (1 << 40), 0, 0, 0, 0, 0]),
            EPERM,
            "{bit:#x}"
        );
    }
    // glibc's pthread_create and fork.
    let thread = libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID;
    let fork = libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD;
    let vfork = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    for flags in [thread, fork, vfork] {
        assert_eq!(
            native(&program, libc::SYS_clone, [flags as u32 as u64, 0, 0, 0, 0, 0]),
            ALLOW,
            "{flags:#x}"
        );
    }
}

#[test]
fn unix_sockets_pass_other_families_only_with_network_access() {
    let closed = compile(false).expect("compiles");
    let open = compile(true).expect("compiles");
    let socket = |program: &[sock_filter], family: i32| {
        native(
            program,
            libc::SYS_socket,
            [family as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
        )
    };
    assert_eq!(socket(&closed, libc::AF_UNIX), ALLOW);
    for family in [libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK, libc::AF_PACKET] {
        assert_eq!(socket(&closed, family), EPERM, "family {family}");
        assert_eq!(socket(&open, family), ALLOW, "family {family} with network_access");
    }
    // Everything else is the same.
    assert_eq!(native(&open, libc::SYS_bpf, [0; 6]), EPERM);
}

#[test]
fn personality_may_read_or_set_the_default_personas_only() {
    let program = compile(false).expect("compiles");
    for &persona in ALLOWED_PERSONAS {
        assert_eq!(
            native(&program, libc::SYS_personality, [u64::from(persona), 0, 0, 0, 0, 0]),
            ALLOW
        );
    }
    for persona in [libc::ADDR_NO_RANDOMIZE, 0x0400_0000 /* READ_IMPLIES_EXEC */] {
        assert_eq!(
            native(&program, libc::SYS_personality, [persona as u64, 0, 0, 0, 0, 0]),
            EPERM
        );
    }
}

#[test]
fn foreign_architectures_and_the_x32_abi_are_killed_and_unknown_calls_get_enosys() {
    let program = compile(true).expect("compiles");
    for nr in [0, libc::SYS_getpid, libc::SYS_unshare, 20 /* i386 getpid */] {
        assert_eq!(run(&program, FOREIGN, nr, [0; 6]), KILL, "foreign call {nr}");
    }
    #[cfg(target_arch = "x86_64")]
    for nr in [
        libc::SYS_getpid,
        libc::SYS_unshare,
        libc::SYS_keyctl,
        512, /* x32 rt_sigaction */
    ] {
        let x32 = nr | i64::from(X32_SYSCALL_BIT);
        assert_eq!(native(&program, x32, [0; 6]), KILL, "x32 call {nr}");
    }
    for nr in [NEWEST_KNOWN_SYSCALL + 1, 1000, 0x3fff_ffff] {
        assert_eq!(native(&program, nr, [0; 6]), ENOSYS, "call {nr}");
    }
}
