//! `hold-slots`: the attack on handshake slots (issue 8, "the socket and
//! the handshake"). A module tries to hold every connection the node lets
//! wait for a `hello`, so that no other module can complete its handshake
//! (load or restart): from this process and from forked children (the node
//! socket capped connections per pid, so more processes held more), each
//! connection reopened as soon as the node closes it.
//!
//! The answer is `BLOCKED <error>` when the socket cannot be reached at
//! all, else `HOLDING ...` at once while a thread and the children keep at
//! it in the background (until the module is killed). The test then loads
//! another module and watches the node's refusals.

use std::mem::{size_of, zeroed};

/// Connections this process keeps open at once.
const OWN: usize = 64;
/// Forked children, and the connections each keeps open at once.
const CHILDREN: usize = 15;
const PER_CHILD: usize = 4;
/// How many times each connection is reopened after the node closed it:
/// enough to outlast a test by far while the node makes each connection
/// wait out its handshake deadline, few enough to end soon when the node
/// refuses them at once.
const ROUNDS: usize = 30;

/// Runs the attack against the socket at `arg`, or the module's own
/// (`BLVM_MODULE_SOCKET`) when empty.
pub fn hold_slots(arg: &str) -> String {
    let path = match arg {
        "" => std::env::var("BLVM_MODULE_SOCKET").unwrap_or_default(),
        p => p.to_owned(),
    };
    let Some(addr) = address(&path) else {
        return format!("BLOCKED {path} is too long for a socket address");
    };
    // Reachable at all? (A node socket mode 0600 of another uid: EACCES.)
    let first = match connect(&addr) {
        Ok(fd) => fd,
        Err(e) => return format!("BLOCKED {e}"),
    };
    let mut children = 0;
    for _ in 0..CHILDREN {
        // SAFETY: the child runs only `hold` (socket, connect, read, close
        // on the address prepared above; no allocation, no lock), then
        // `_exit`, as is required after forking a process with threads.
        #[allow(unsafe_code)]
        match unsafe { libc::fork() } {
            0 => {
                hold(&addr, None, PER_CHILD);
                // SAFETY: ends the child without running the parent's
                // atexit handlers or destructors.
                #[allow(unsafe_code)]
                unsafe {
                    libc::_exit(0)
                }
            }
            -1 => break,
            _ => children += 1,
        }
    }
    std::thread::spawn(move || hold(&addr, Some(first), OWN));
    format!("HOLDING up to {OWN} connections from this process and {PER_CHILD} from each of {children} children")
}

/// `path` as a socket address, if it fits.
fn address(path: &str) -> Option<libc::sockaddr_un> {
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid value.
    #[allow(unsafe_code)]
    let mut addr: libc::sockaddr_un = unsafe { zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    // Room for the terminating NUL (already zero).
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() {
        return None;
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Some(addr)
}

/// A connected socket, or the error (raw system calls only: also used in
/// forked children).
fn connect(addr: &libc::sockaddr_un) -> std::io::Result<libc::c_int> {
    // SAFETY: socket(2) takes integers only.
    #[allow(unsafe_code)]
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `addr` is a valid sockaddr_un of the length given.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::connect(
            fd,
            (addr as *const libc::sockaddr_un).cast::<libc::sockaddr>(),
            size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        close(fd);
        return Err(e);
    }
    Ok(fd)
}

fn close(fd: libc::c_int) {
    // SAFETY: closes a descriptor this code opened and uses no more.
    #[allow(unsafe_code)]
    unsafe {
        libc::close(fd);
    }
}

/// Keeps up to `n` connections open, never saying `hello`; each one is
/// read until the node closes it (after a refusal), then reopened, for
/// [`ROUNDS`] rounds. `first` is one already open.
fn hold(addr: &libc::sockaddr_un, mut first: Option<libc::c_int>, n: usize) {
    let mut fds = [-1 as libc::c_int; OWN];
    let n = n.min(OWN);
    for _ in 0..ROUNDS {
        for fd in fds.iter_mut().take(n) {
            *fd = match first.take() {
                Some(open) => open,
                None => connect(addr).unwrap_or(-1),
            };
        }
        for fd in fds.iter_mut().take(n) {
            if *fd < 0 {
                continue;
            }
            let mut buf = [0u8; 256];
            // SAFETY: reads into a buffer of the length given.
            #[allow(unsafe_code)]
            while unsafe { libc::read(*fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
            close(*fd);
            *fd = -1;
        }
    }
}
