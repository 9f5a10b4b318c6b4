//! Attacks on the kernel surface (issue 8, "Kernel surface"): every system
//! call the node's seccomp filter refuses, the x32 and i386 ABIs, the
//! node's keyring, and what Landlock scoping closes (signals and abstract
//! Unix sockets outside the module's domain).
//!
//! `syscall <name>` makes one harmless call of that name: its arguments
//! are chosen so that a kernel *without* the filter would answer a module
//! (no capabilities) something other than `EPERM` where the kernel allows
//! it (success, `EFAULT`, `EINVAL`, `EBADF`, `ENOKEY`), so an `EPERM` is
//! the filter's. Calls the kernel refuses a process without capabilities
//! first (`pivot_root`, the module loaders, `kexec_*`, `reboot`,
//! `open_by_handle_at`, ...) answer `EPERM` either way; for them the
//! node's unit test on the compiled program is the proof. No argument can
//! do harm where the call goes through even as root (bad magic numbers,
//! flags or pointers), and what a call creates is undone.

// Every unsafe block here is one raw system call (or `int 0x80`) whose
// arguments are integers, null, bogus addresses the kernel checks, or
// pointers to locals that outlive the call.
#![allow(unsafe_code)]

use std::ffi::CStr;

/// The attacks this file answers.
pub const METHODS: &[&str] = &["syscall", "x32", "i386", "spawn", "keyring", "abstract-connect", "kill"];

/// Runs the kernel attack `method` on `arg`, or `None` if it is not one.
pub fn attack(method: &str, arg: &str) -> Option<String> {
    Some(match method {
        "syscall" => match denied_call(arg) {
            Some(r) => answer(r),
            None => format!("UNKNOWN {arg}"),
        },
        "x32" => x32(arg),
        "i386" => i386_getpid(),
        "spawn" => spawn(),
        "keyring" => keyring(arg),
        "abstract-connect" => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(arg.as_bytes());
            match addr.and_then(|a| std::os::unix::net::UnixStream::connect_addr(&a)) {
                Ok(_) => "ALLOWED connected".into(),
                Err(e) => blocked(e),
            }
        }
        "kill" => {
            let pid: libc::pid_t = arg.trim().parse().unwrap_or(0);
            if pid <= 0 {
                return Some(format!("UNKNOWN pid {arg}"));
            }
            answer(raw(libc::SYS_kill, [pid as i64, libc::SIGKILL as i64, 0, 0, 0, 0]).map(|_| 0))
        }
        _ => return None,
    })
}

/// `ALLOWED <value>` or `BLOCKED <errno name>: <message>`.
fn answer(r: Result<i64, std::io::Error>) -> String {
    match r {
        Ok(v) => format!("ALLOWED {v}"),
        Err(e) => blocked(e),
    }
}

fn blocked(e: std::io::Error) -> String {
    format!("BLOCKED {}: {e}", errno_name(e.raw_os_error().unwrap_or(0)))
}

fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EINVAL => "EINVAL",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ENOKEY => "ENOKEY",
        _ => "errno",
    }
}

/// One raw system call; -1 is the errno.
fn raw(nr: i64, a: [i64; 6]) -> Result<i64, std::io::Error> {
    // SAFETY: see the module comment: every caller passes integers, null,
    // unmapped addresses or pointers to its own live locals.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn ptr(s: &CStr) -> i64 {
    s.as_ptr() as i64
}

/// An address no process has mapped (the kernel answers `EFAULT`).
const BOGUS: i64 = 1;

/// Makes the harmless call of `name` (see the module doc); `None` for a
/// name this module does not know.
fn denied_call(name: &str) -> Option<Result<i64, std::io::Error>> {
    let me = i64::from(std::process::id());
    let ns_user = i64::from(libc::CLONE_NEWUSER);
    Some(match name {
        // In a child of the module (under the same filter), which would
        // otherwise be left in a user namespace where its uid has no
        // mapping, and every later namespace attempt fail for that reason.
        // Unfiltered: 0.
        "unshare" => in_child(|| raw(libc::SYS_unshare, [ns_user, 0, 0, 0, 0, 0])),
        "setns" => raw(libc::SYS_setns, [-1, 0, 0, 0, 0, 0]), // EBADF
        // Unfiltered: a child in a new user namespace (it exits at once).
        "clone" => reap(raw(
            libc::SYS_clone,
            [ns_user | i64::from(libc::SIGCHLD), 0, 0, 0, 0, 0],
        )),
        "clone3" => {
            // SAFETY: all-zero is a valid clone_args (plain integers).
            let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
            args.flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID) as u64;
            args.exit_signal = libc::SIGCHLD as u64;
            let size = std::mem::size_of::<libc::clone_args>() as i64;
            reap(raw(libc::SYS_clone3, [&args as *const _ as i64, size, 0, 0, 0, 0]))
        }
        "keyctl" => raw(
            libc::SYS_keyctl,
            [
                libc::KEYCTL_GET_KEYRING_ID as i64,
                libc::KEY_SPEC_SESSION_KEYRING as i64,
                0,
                0,
                0,
                0,
            ],
        ), // a keyring id
        "add_key" => raw(
            libc::SYS_add_key,
            [
                ptr(c"user"),
                ptr(c"blvm-attack"),
                ptr(c"x"),
                1,
                libc::KEY_SPEC_SESSION_KEYRING as i64,
                0,
            ],
        ), // a key id
        "request_key" => raw(
            libc::SYS_request_key,
            [ptr(c"user"), ptr(c"blvm-attack-absent"), 0, 0, 0, 0],
        ), // ENOKEY
        "bpf" => raw(libc::SYS_bpf, [0x7fff, 0, 0, 0, 0, 0]), // EINVAL: no such command
        "userfaultfd" => {
            // UFFD_USER_MODE_ONLY: allowed without privileges; a descriptor.
            let r = raw(libc::SYS_userfaultfd, [1, 0, 0, 0, 0, 0]);
            close(r)
        }
        "perf_event_open" => raw(libc::SYS_perf_event_open, [0, 0, -1, -1, 0, 0]), // EFAULT
        // SYSLOG_ACTION_SIZE_BUFFER: the size, where dmesg_restrict is 0.
        "syslog" => raw(libc::SYS_syslog, [10, 0, 0, 0, 0, 0]),
        "io_uring_setup" => raw(libc::SYS_io_uring_setup, [0, 0, 0, 0, 0, 0]), // EFAULT
        "io_uring_enter" => raw(libc::SYS_io_uring_enter, [-1, 0, 0, 0, 0, 0]), // EBADF
        "io_uring_register" => raw(libc::SYS_io_uring_register, [-1, 0, 0, 0, 0, 0]), // EBADF
        "mount" => raw(libc::SYS_mount, [0, 0, 0, 0, 0, 0]),                   // EFAULT
        "umount2" => raw(libc::SYS_umount2, [0, -1, 0, 0, 0, 0]),              // EINVAL
        "pivot_root" => raw(libc::SYS_pivot_root, [0, 0, 0, 0, 0, 0]),         // EPERM (capability)
        "move_mount" => raw(libc::SYS_move_mount, [-1, 0, -1, 0, -1, 0]),      // EPERM (capability)
        "open_tree" => raw(libc::SYS_open_tree, [-1, 0, -1, 0, 0, 0]),         // EINVAL
        "open_tree_attr" => raw(467, [-1, 0, -1, 0, 0, 0]),                    // EINVAL
        "fsopen" => raw(libc::SYS_fsopen, [0, -1, 0, 0, 0, 0]),                // EPERM (capability)
        "fsconfig" => raw(libc::SYS_fsconfig, [-1, 0, 0, 0, 0, 0]),            // EINVAL
        "fsmount" => raw(libc::SYS_fsmount, [-1, -1, 0, 0, 0, 0]),             // EPERM (capability)
        "fspick" => raw(libc::SYS_fspick, [-1, 0, -1, 0, 0, 0]),               // EPERM (capability)
        "mount_setattr" => raw(libc::SYS_mount_setattr, [-1, 0, -1, 0, 0, 0]), // EINVAL
        "init_module" => raw(libc::SYS_init_module, [0, 0, 0, 0, 0, 0]),       // EPERM (capability)
        "finit_module" => raw(libc::SYS_finit_module, [-1, 0, 0, 0, 0, 0]),    // EPERM (capability)
        "delete_module" => raw(libc::SYS_delete_module, [0, 0, 0, 0, 0, 0]),   // EPERM (capability)
        "kexec_load" => raw(libc::SYS_kexec_load, [0, 0, 0, -1, 0, 0]),        // EPERM (capability)
        "kexec_file_load" => raw(libc::SYS_kexec_file_load, [-1, -1, 0, 0, -1, 0]), // EPERM (capability)
        "ptrace" => raw(libc::SYS_ptrace, [-1, 0, 0, 0, 0, 0]),                // ESRCH
        // Zero bytes of its own memory: 0.
        "process_vm_readv" => raw(libc::SYS_process_vm_readv, [me, 0, 0, 0, 0, 0]),
        "process_vm_writev" => raw(libc::SYS_process_vm_writev, [me, 0, 0, 0, 0, 0]),
        "process_madvise" => raw(libc::SYS_process_madvise, [-1, 0, 0, 0, 0, 0]), // EBADF
        "pidfd_getfd" => raw(libc::SYS_pidfd_getfd, [-1, 0, 0, 0, 0, 0]),         // EBADF
        // KCMP_FILE of its own stdin with itself: 0.
        "kcmp" => raw(libc::SYS_kcmp, [me, me, 0, 0, 0, 0]),
        "open_by_handle_at" => raw(libc::SYS_open_by_handle_at, [-1, 0, 0, 0, 0, 0]), // EPERM (capability)
        "name_to_handle_at" => raw(libc::SYS_name_to_handle_at, [-1, 0, 0, 0, -1, 0]), // EINVAL
        "reboot" => raw(libc::SYS_reboot, [0, 0, 0, 0, 0, 0]),                        // EPERM (capability); bad magic
        "swapon" => raw(libc::SYS_swapon, [0, 0, 0, 0, 0, 0]),                        // EPERM (capability)
        "swapoff" => raw(libc::SYS_swapoff, [0, 0, 0, 0, 0, 0]),                      // EPERM (capability)
        "acct" => raw(libc::SYS_acct, [BOGUS, 0, 0, 0, 0, 0]),                        // EPERM (capability)
        "quotactl" => raw(libc::SYS_quotactl, [-1, 0, 0, 0, 0, 0]),                   // EINVAL
        "quotactl_fd" => raw(libc::SYS_quotactl_fd, [-1, 0, 0, 0, 0, 0]),             // EBADF
        "sethostname" => raw(libc::SYS_sethostname, [0, 4096, 0, 0, 0, 0]),           // EPERM (capability)
        "setdomainname" => raw(libc::SYS_setdomainname, [0, 4096, 0, 0, 0, 0]),       // EPERM (capability)
        "settimeofday" => raw(libc::SYS_settimeofday, [BOGUS, 0, 0, 0, 0, 0]),        // EFAULT
        "clock_settime" => raw(libc::SYS_clock_settime, [0, 0, 0, 0, 0, 0]),          // EFAULT
        "clock_adjtime" => raw(libc::SYS_clock_adjtime, [0, 0, 0, 0, 0, 0]),          // EFAULT
        "adjtimex" => raw(libc::SYS_adjtimex, [0, 0, 0, 0, 0, 0]),                    // EFAULT
        #[cfg(target_arch = "x86_64")]
        "iopl" => raw(libc::SYS_iopl, [99, 0, 0, 0, 0, 0]), // EINVAL
        #[cfg(target_arch = "x86_64")]
        "ioperm" => raw(libc::SYS_ioperm, [0, 0, 0, 0, 0, 0]), // EINVAL
        "personality" => {
            // Unfiltered: the old persona; it is put back.
            let r = raw(
                libc::SYS_personality,
                [i64::from(libc::ADDR_NO_RANDOMIZE), 0, 0, 0, 0, 0],
            );
            if let Ok(old) = r {
                let _ = raw(libc::SYS_personality, [old, 0, 0, 0, 0, 0]);
            }
            r
        }
        // Unfiltered (in its own network namespace): a descriptor.
        "socket" => close(raw(
            libc::SYS_socket,
            [i64::from(libc::AF_INET), i64::from(libc::SOCK_STREAM), 0, 0, 0, 0],
        )),
        _ => return None,
    })
}

/// After a `clone` that went through: the child exits at once (it runs
/// on a copy of this stack and makes no other call), the parent reaps it.
fn reap(r: Result<i64, std::io::Error>) -> Result<i64, std::io::Error> {
    match r {
        Ok(0) => {
            // SAFETY: the child: _exit makes no call into libc state.
            unsafe { libc::_exit(0) }
        }
        Ok(child) => {
            let mut status = 0;
            // SAFETY: waits for our own child; `status` is a live local.
            unsafe { libc::waitpid(child as libc::pid_t, &mut status, 0) };
            Ok(child)
        }
        Err(e) => Err(e),
    }
}

/// Runs `call` in a forked child and returns what it returned there: the
/// child makes that one raw call (no allocation: `io::Error` holds the
/// errno inline) and exits with 0 or the errno.
fn in_child(call: impl FnOnce() -> Result<i64, std::io::Error>) -> Result<i64, std::io::Error> {
    // SAFETY: the module is single-threaded (a current-thread runtime),
    // and the child only makes `call`'s system call and `_exit`.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let code = match call() {
            Ok(_) => 0,
            Err(e) => e.raw_os_error().unwrap_or(255),
        };
        // SAFETY: the child: _exit makes no call into libc state.
        unsafe { libc::_exit(code) }
    }
    if child < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a live local.
    unsafe { libc::waitpid(child, &mut status, 0) };
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(0),
        (true, errno) => Err(std::io::Error::from_raw_os_error(errno)),
        _ => Err(std::io::Error::other(format!("child ended with status {status:#x}"))),
    }
}

/// Closes the descriptor a call that went through returned.
fn close(r: Result<i64, std::io::Error>) -> Result<i64, std::io::Error> {
    if let Ok(fd) = r {
        // SAFETY: the descriptor was just returned to us and is used by
        // nothing else.
        unsafe { libc::close(fd as libc::c_int) };
    }
    r
}

/// An x32 system call (`name`: `getpid` or `unshare`) from this process:
/// the filter kills it with SIGSYS, so an answer means it was not.
fn x32(name: &str) -> String {
    #[cfg(target_arch = "x86_64")]
    {
        const X32: i64 = 0x4000_0000;
        let r = match name {
            "unshare" => raw(X32 | libc::SYS_unshare, [i64::from(libc::CLONE_NEWUSER), 0, 0, 0, 0, 0]),
            _ => raw(X32 | libc::SYS_getpid, [0; 6]),
        };
        answer(r)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        format!("UNKNOWN x32 {name} (not x86_64)")
    }
}

/// `getpid` through the i386 ABI (`int 0x80`, number 20) from this
/// process: the filter kills it with SIGSYS (a kernel without ia32
/// emulation answers the instruction with SIGSEGV).
fn i386_getpid() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let mut r: i64 = 20;
        // SAFETY: getpid reads and writes no memory; int 0x80 from 64-bit
        // code returns in rax and may clear r8-r11, declared clobbered.
        unsafe {
            std::arch::asm!(
                "int 0x80",
                inout("rax") r,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                options(nostack)
            );
        }
        format!("ALLOWED {r}")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "UNKNOWN i386 (not x86_64)".to_string()
    }
}

/// A thread and a child process (what glibc starts with `clone3` and
/// falls back to `clone` for when the filter answers ENOSYS).
fn spawn() -> String {
    let thread = std::thread::spawn(|| 42).join();
    let child = std::process::Command::new("/bin/true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match (thread, child) {
        (Ok(42), Ok(s)) if s.success() => "ALLOWED a thread and a child ran".into(),
        (thread, child) => format!("BLOCKED thread {thread:?}, child {child:?}"),
    }
}

/// The node's key `arg` (its serial): read it, change it, find it from
/// the session keyring. `ALLOWED` if any of them went through.
fn keyring(arg: &str) -> String {
    let id: i64 = arg.trim().parse().unwrap_or(0);
    let mut buf = [0u8; 64];
    let read = raw(
        libc::SYS_keyctl,
        [
            libc::KEYCTL_READ as i64,
            id,
            buf.as_mut_ptr() as i64,
            buf.len() as i64,
            0,
            0,
        ],
    );
    let pwned = c"pwned";
    let update = raw(libc::SYS_keyctl, [libc::KEYCTL_UPDATE as i64, id, ptr(pwned), 5, 0, 0]);
    let search = raw(
        libc::SYS_keyctl,
        [
            libc::KEYCTL_SEARCH as i64,
            libc::KEY_SPEC_SESSION_KEYRING as i64,
            ptr(c"user"),
            ptr(c"blvm-it-node-secret"),
            0,
            0,
        ],
    );
    let outcome = |what: &str, r: &Result<i64, std::io::Error>| match r {
        Ok(v) => format!("{what} {v}"),
        Err(e) => format!("{what} {}", errno_name(e.raw_os_error().unwrap_or(0))),
    };
    let all = [
        outcome("read", &read),
        outcome("update", &update),
        outcome("search", &search),
    ]
    .join(", ");
    if read.is_ok() || update.is_ok() || search.is_ok() {
        format!("ALLOWED {all}")
    } else {
        format!("BLOCKED {all}")
    }
}
