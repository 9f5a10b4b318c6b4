//! A listening socket of its own for each spawned module.
//!
//! The node's `node.sock` is one door for everyone who can reach it, and
//! its handshake slots are shared: whoever holds them keeps every module
//! from loading. So each spawn gets a socket only its module can use, and
//! the child is told that path in `BLVM_MODULE_SOCKET` (the v1 transport
//! is unchanged: a module still connects to a path it is given).
//!
//! # Layout
//!
//! ```text
//! <dir of node.sock>/m/          0711, the node's: nobody else can list it
//! <dir of node.sock>/m/<n>.sock  0600, the module's uid:gid when the node
//!                                drops privileges (else the node's)
//! ```
//!
//! `<n>` is a number per spawn (a restart gets a new one), short because a
//! Unix socket address holds at most 107 bytes of path.
//!
//! # At accept, in order
//!
//! 1. the peer's pid (`SO_PEERCRED`) must be the pid bound to the module,
//!    waiting up to 5 s for the spawner to bind it: any other pid is
//!    refused at once (`pid_mismatch`) on the accept thread, no thread
//!    started and no slot taken;
//! 2. at most [`IpcServerConfig::max_pending_per_module`] of this
//!    socket's connections may be in their handshake: one more is refused
//!    (`too_many_connections`), so a module can tie up only its own slots;
//! 3. the connection gets its thread and the handshake of `server`, whose
//!    `hello` must name this socket's module.
//!
//! The file and the thread go away when the module is forgotten (unload,
//! or the end of a spawn) and at server shutdown: the accept is woken with
//! `shutdown(2)` on the listening socket, as the node socket's is.
//!
//! [`IpcServerConfig::max_pending_per_module`]: super::IpcServerConfig::max_pending_per_module

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::server::{peer_pid, send_refusal, serve, Shared};
use super::slots::{ModuleSlot, ModuleSlots};

/// Name of the directory of module sockets, next to `node.sock`.
pub(super) const MODULE_SOCKET_DIR: &str = "m";

/// A Unix socket address holds 108 bytes of path, its NUL included.
const SUN_PATH_LEN: usize = 108;

/// Path of the `n`th module socket in `dir`, or an error saying why it
/// cannot be used: a path too long for a socket address would fail at
/// `bind` (or, worse, in the module's `connect`) with a bare
/// `InvalidInput`.
pub(super) fn socket_path(dir: &Path, n: u64) -> io::Result<PathBuf> {
    let path = dir.join(format!("{n}.sock"));
    let len = path.as_os_str().len();
    if len >= SUN_PATH_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "module socket path {} is {len} bytes; a Unix socket address holds at most {} (use a shorter socket directory)",
                path.display(),
                SUN_PATH_LEN - 1
            ),
        ));
    }
    Ok(path)
}

/// Makes `dir` the node's 0711 directory of module sockets: created if
/// missing; if it exists it must be a directory (not a link) of the
/// node's, and sockets a dead node left in it are removed (their numbers
/// would be reused).
pub(super) fn prepare_dir(dir: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let me = rustix::process::geteuid().as_raw();
            if meta.uid() != me {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{} belongs to uid {}, not to the node (uid {me})",
                        dir.display(),
                        meta.uid()
                    ),
                ));
            }
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_type()?.is_socket() {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", dir.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::DirBuilder::new().mode(0o711).create(dir)?,
        Err(e) => return Err(e),
    }
    // The umask may have narrowed the mode at creation; an existing
    // directory may have had another.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
}

/// Binds a listening Unix socket at `path` whose file has `mode` from the
/// moment it exists: Linux creates a socket's file with the mode of the
/// socket's inode (less the umask), so it is set with `fchmod` before
/// `bind`. A `chmod` after `bind` would leave a moment in which a loose
/// umask lets anyone connect.
pub(super) fn bind_with_mode(path: &Path, mode: u32) -> io::Result<UnixListener> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(mode))?;
    rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
    // The backlog std uses: connections beyond it wait in `connect`.
    rustix::net::listen(&fd, 128)?;
    Ok(UnixListener::from(fd))
}

/// The listening socket of one spawned module, and its accept thread.
pub(super) struct ModuleListener {
    path: PathBuf,
    /// The accept thread's socket, to wake its `accept` on close.
    socket: UnixListener,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ModuleListener {
    /// Binds `path` for `module_id` (mode 0600, given to `owner`'s
    /// uid:gid if set) and starts accepting.
    pub(super) fn start(
        shared: &Arc<Shared>,
        module_id: &str,
        path: PathBuf,
        owner: Option<(u32, u32)>,
    ) -> io::Result<ModuleListener> {
        // A file of a node that died with this number (prepare_dir removes
        // those at start; this covers one planted since by the node's uid).
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = bind_with_mode(&path, 0o600)?;
        if let Some((uid, gid)) = owner {
            // Connecting needs write permission on the file: with 0600,
            // only its owner (and root) may.
            let chowned = rustix::fs::chownat(
                rustix::fs::CWD,
                &path,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            );
            if let Err(e) = chowned {
                let _ = std::fs::remove_file(&path);
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!("cannot give {} to uid {uid} gid {gid}: {e}", path.display()),
                ));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let slots = ModuleSlots::new(shared.config.max_pending_per_module);
        let wake = listener.try_clone()?;
        let accept = Accept {
            shared: Arc::clone(shared),
            module_id: Arc::from(module_id),
            stop: Arc::clone(&stop),
            slots,
            refused: 0,
        };
        let thread = std::thread::Builder::new()
            .name("blvm-ipc-accept-m".into())
            .spawn(move || accept.run(listener));
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        tracing::debug!(module_id, path = %path.display(), ?owner, "module socket listening");
        Ok(ModuleListener {
            path,
            socket: wake,
            stop,
            shared: Arc::clone(shared),
            thread: Some(thread),
        })
    }

    /// The socket's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, waits for the accept thread, removes the file.
    /// Connections already accepted go on (their handshake fails once the
    /// module is forgotten).
    fn close(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.stop.store(true, Ordering::SeqCst);
        // The accept thread may be waiting for the module's pid to be
        // bound; wake it to see `stop`.
        self.shared.auth.wake_waiters();
        // `shutdown(2)` makes a blocked `accept` (and every later one)
        // fail at once, whether or not the file still exists.
        let _ = rustix::net::shutdown(&self.socket, rustix::net::Shutdown::Both);
        let _ = thread.join();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for ModuleListener {
    fn drop(&mut self) {
        self.close();
    }
}

/// The accept thread of one module socket.
struct Accept {
    shared: Arc<Shared>,
    module_id: Arc<str>,
    stop: Arc<AtomicBool>,
    slots: Arc<ModuleSlots>,
    /// Connections refused, for the log's rate.
    refused: u64,
}

impl Accept {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.shared.stopping.load(Ordering::SeqCst)
    }

    fn run(mut self, listener: UnixListener) {
        for stream in listener.incoming() {
            if self.stopping() {
                break;
            }
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(module_id = %self.module_id, error = %e, "accept failed");
                    // EMFILE and friends: back off instead of spinning.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let peer = peer_pid(&stream);
            let bound = self.shared.auth.bound_pid(&self.module_id, &self.stop);
            if self.stopping() {
                break;
            }
            let refusal = match (bound, peer) {
                (Some(bound), Some(peer)) if bound == peer => match self.slots.take() {
                    Some(slot) => {
                        self.start_handshake(stream, slot);
                        continue;
                    }
                    None => (
                        "too_many_connections",
                        format!(
                            "{} connections to module `{}`'s socket are already waiting to complete their handshake (the limit)",
                            self.slots.cap(), self.module_id
                        ),
                    ),
                },
                (Some(bound), peer) => (
                    "pid_mismatch",
                    format!(
                        "module `{}` runs as pid {bound}, the connection comes from {}",
                        self.module_id,
                        peer.map_or_else(|| "an unknown pid".to_owned(), |p| format!("pid {p}")),
                    ),
                ),
                (None, _) => (
                    "pid_mismatch",
                    format!("module `{}` has no process bound to it", self.module_id),
                ),
            };
            self.refuse(&stream, refusal.0, refusal.1);
        }
    }

    /// Refused on the accept thread: no thread, no buffer. The frame is
    /// small and the socket's buffer empty, so the write does not block.
    fn refuse(&mut self, stream: &std::os::unix::net::UnixStream, code: &str, reason: String) {
        // Logged once per 1 000: a connect loop must not flood the log.
        if self.refused % 1_000 == 0 {
            tracing::warn!(
                module_id = %self.module_id,
                code,
                refused = self.refused + 1,
                "connection to a module socket refused: {reason}"
            );
        }
        self.refused += 1;
        send_refusal(&self.shared, stream, Some(&self.module_id), code, reason);
    }

    fn start_handshake(&self, stream: std::os::unix::net::UnixStream, slot: ModuleSlot) {
        let shared = Arc::clone(&self.shared);
        let module_id = Arc::clone(&self.module_id);
        if let Err(e) = std::thread::Builder::new()
            .name("blvm-ipc-conn".into())
            .spawn(move || serve(shared, stream, slot, Some(module_id)))
        {
            tracing::error!(module_id = %self.module_id, error = %e, "cannot start a connection thread; connection dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_path_too_long_for_an_address_is_refused_with_its_length() {
        let dir = PathBuf::from(format!("/{}", "d".repeat(99)));
        assert!(socket_path(&dir, 1).is_ok(), "100 + 7 bytes fit");
        let err = socket_path(&dir, 1000).expect_err("too long");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("110 bytes"), "{err}");
    }

    #[test]
    fn a_socket_file_has_its_mode_from_its_creation() {
        let dir = std::env::temp_dir().join(format!("blvm-listener-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let _listener = bind_with_mode(&path, 0o600).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o7777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
