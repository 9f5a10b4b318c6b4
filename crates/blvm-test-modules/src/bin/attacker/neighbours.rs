//! Attacks on other modules and on the host around the module: signal,
//! freeze, renice or `prlimit` another process, change another module's
//! files, share SysV IPC, reach sockets and watch paths outside, fill the
//! disk. Each answers `ALLOWED …` or `BLOCKED <error>` like the rest.
//!
//! Several are also run from *outside* any sandbox (`attacker-module
//! --direct <attack> <arg>`, by a host process with a chosen uid) to show
//! what a local user can no longer do to a module.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use super::{errno_result, outcome};

fn c_path(path: &str) -> CString {
    CString::new(std::path::Path::new(path).as_os_str().as_bytes()).unwrap_or_default()
}

fn pid_of(arg: &str) -> libc::pid_t {
    arg.trim().parse().unwrap_or(-1)
}

/// Runs one attack of this file, or `None` if `method` is not one.
#[allow(unsafe_code)]
pub(super) fn attack(method: &str, arg: &str) -> Option<String> {
    Some(match method {
        "getpid" => {
            // SAFETY: getpid(2) takes nothing and cannot fail.
            format!("PID {}", unsafe { libc::getpid() })
        }
        "kill" | "stop" => {
            let sig = if method == "kill" { libc::SIGKILL } else { libc::SIGSTOP };
            let pid = pid_of(arg);
            // SAFETY: kill(2) takes two integers.
            let r = unsafe { libc::kill(pid, sig) };
            outcome(errno_result(r), |_| format!("signal {sig} sent to {pid}"))
        }
        "renice" => {
            let pid = pid_of(arg);
            // SAFETY: setpriority(2) takes integers.
            let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, 19) };
            outcome(errno_result(r), |_| format!("{pid} reniced to 19"))
        }
        "sched-idle" => {
            let pid = pid_of(arg);
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: sched_setscheduler(2) reads `param` for the call.
            let r = unsafe { libc::sched_setscheduler(pid, libc::SCHED_IDLE, &param) };
            outcome(errno_result(r), |_| format!("{pid} set to SCHED_IDLE"))
        }
        "ioprio" => {
            // IOPRIO_WHO_PROCESS = 1; class IDLE (3) << 13.
            let pid = pid_of(arg);
            // SAFETY: ioprio_set(2) takes integers.
            let r = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, pid, 3 << 13) };
            outcome(errno_result(r as libc::c_int), |_| format!("{pid} set to idle I/O"))
        }
        "prlimit" => {
            let pid = pid_of(arg);
            let limit = libc::rlimit {
                rlim_cur: 3,
                rlim_max: 3,
            };
            // SAFETY: prlimit(2) reads `limit` for the call; old is null.
            let r = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
            outcome(errno_result(r), |_| format!("{pid} limited to 3 files"))
        }
        "chmod" => outcome(
            std::fs::set_permissions(arg, std::os::unix::fs::PermissionsExt::from_mode(0o777)),
            |()| "mode 0777".into(),
        ),
        "setxattr" => {
            let path = c_path(arg);
            // SAFETY: the path and name are NUL-terminated, the value is 4
            // bytes that live across the call.
            let r = unsafe { libc::setxattr(path.as_ptr(), c"user.pwned".as_ptr(), b"yes!".as_ptr().cast(), 4, 0) };
            outcome(errno_result(r), |_| "xattr set".into())
        }
        "utime" => {
            let path = c_path(arg);
            let times = [libc::timespec { tv_sec: 0, tv_nsec: 0 }; 2];
            // SAFETY: the path is NUL-terminated, `times` two timespecs.
            let r = unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) };
            outcome(errno_result(r), |_| "times set to 1970".into())
        }
        "stat" => outcome(std::fs::metadata(arg), |m| format!("{} bytes", m.len())),
        "inotify" => {
            // SAFETY: inotify_init1(2) takes flags; the path is NUL-terminated.
            let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
            if fd < 0 {
                return Some(format!("BLOCKED {}", std::io::Error::last_os_error()));
            }
            let path = c_path(arg);
            let r = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_ALL_EVENTS) };
            let answer = outcome(errno_result(r), |_| "watching".into());
            // SAFETY: `fd` is ours.
            unsafe { libc::close(fd) };
            answer
        }
        "unix-connect" => outcome(std::os::unix::net::UnixStream::connect(arg), |_| "connected".into()),
        "unix-listen" => outcome(std::os::unix::net::UnixListener::bind(arg), |l| {
            // Kept open for the module's life: another module must not reach it.
            std::mem::forget(l);
            "listening".into()
        }),
        "shm-create" => {
            // A SysV segment under key `arg`, written, left in place.
            let key: libc::key_t = arg.trim().parse().unwrap_or(0x5eed);
            // SAFETY: shmget(2) takes integers.
            let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o666) };
            if id < 0 {
                return Some(format!("BLOCKED {}", std::io::Error::last_os_error()));
            }
            // SAFETY: attaching a fresh 4096-byte segment; written within it.
            let at = unsafe { libc::shmat(id, std::ptr::null(), 0) };
            if at as isize == -1 {
                return Some(format!("BLOCKED {}", std::io::Error::last_os_error()));
            }
            unsafe { std::ptr::copy_nonoverlapping(b"secret".as_ptr(), at.cast::<u8>(), 6) };
            format!("CREATED {id}")
        }
        "shm-open" => {
            let key: libc::key_t = arg.trim().parse().unwrap_or(0x5eed);
            // SAFETY: shmget(2) takes integers.
            let id = unsafe { libc::shmget(key, 0, 0) };
            outcome(errno_result(id), |id| format!("segment {id} found"))
        }
        "msgq-create" => {
            let key: libc::key_t = arg.trim().parse().unwrap_or(0x5eed);
            // SAFETY: msgget(2) takes integers.
            let id = unsafe { libc::msgget(key, libc::IPC_CREAT | 0o666) };
            outcome(errno_result(id), |id| format!("CREATED {id}"))
        }
        "msgq-open" => {
            let key: libc::key_t = arg.trim().parse().unwrap_or(0x5eed);
            // SAFETY: msgget(2) takes integers.
            let id = unsafe { libc::msgget(key, 0) };
            outcome(errno_result(id), |id| format!("queue {id} found"))
        }
        "fill-disk" => {
            // Writes 1 MiB chunks into `arg/fill-N` (default: its data
            // dir) until refused; answers how much it wrote and the error.
            let dir = match arg {
                "" => std::env::var("BLVM_MODULE_DATA_DIR").unwrap_or_default(),
                dir => dir.to_owned(),
            };
            let arg = dir.as_str();
            let mut written: u64 = 0;
            let chunk = vec![0x55u8; 1 << 20];
            let err = 'outer: loop {
                let path = format!("{arg}/fill-{}", written >> 26);
                let mut file = match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                    Ok(f) => f,
                    Err(e) => break e,
                };
                for _ in 0..64 {
                    match file.write_all(&chunk).and_then(|()| file.sync_data()) {
                        Ok(()) => written += chunk.len() as u64,
                        Err(e) => break 'outer e,
                    }
                    if written >= 64 << 30 {
                        return Some(format!("ALLOWED {written} bytes"));
                    }
                }
            };
            format!("BLOCKED after {written} bytes: {err}")
        }
        "ptrace-seize" => {
            let pid = pid_of(arg);
            // SAFETY: PTRACE_SEIZE reads no memory of ours.
            let r = unsafe {
                libc::ptrace(
                    libc::PTRACE_SEIZE,
                    pid,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                )
            };
            outcome(errno_result(r as libc::c_int), |_| format!("seized {pid}"))
        }
        "pidfd-getfd" => {
            // `arg` is `<pid> <fd>`: takes a copy of that process's fd.
            let mut parts = arg.split_whitespace();
            let pid = parts.next().map_or(-1, pid_of);
            let target: libc::c_int = parts.next().and_then(|f| f.parse().ok()).unwrap_or(3);
            // SAFETY: pidfd_open(2) and pidfd_getfd(2) take integers.
            let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
            if pidfd < 0 {
                return Some(format!("BLOCKED {}", std::io::Error::last_os_error()));
            }
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) } as libc::c_int;
            outcome(errno_result(fd), |fd| format!("took fd {target} as {fd}"))
        }
        _ => return None,
    })
}
