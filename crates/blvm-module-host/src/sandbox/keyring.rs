//! A fresh session keyring for each module.
//!
//! A forked process inherits its parent's session keyring, and possessing
//! a keyring (having it as one's session keyring) grants its possessor
//! rights whatever the uid: without this step a module would read and
//! change the keys of the node's session (and, when the node has none of
//! its own, share the user-session keyring of its uid with every process
//! of that uid). The child joins a new, empty, anonymous session keyring
//! after the uid drop, so the keyring is the module's uid's and counts
//! against that uid's key quota, not root's. The seccomp filter refuses
//! `keyctl`, `add_key` and `request_key` on top of this; this step holds
//! even where the filter is missing (permissive mode).

/// Whether the kernel has keyrings and the node may use them: an unknown
/// `keyctl` command is answered `EOPNOTSUPP` then (nothing is looked up or
/// created); `ENOSYS` (no `CONFIG_KEYS`) or `EPERM` (a filter of the
/// node's own, which its modules inherit) mean no keyring can be shared
/// and there is nothing to do.
pub(super) fn available() -> bool {
    // An operation number no kernel defines.
    const UNKNOWN_COMMAND: libc::c_long = 0x7fff_ffff;
    // SAFETY: keyctl with an unknown command reads no argument and
    // touches no memory of ours.
    #[allow(unsafe_code)]
    let r = unsafe { libc::syscall(libc::SYS_keyctl, UNKNOWN_COMMAND, 0, 0, 0, 0) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EOPNOTSUPP)
}

/// Child side: `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`, one system
/// call: a new anonymous session keyring replaces the inherited one.
/// Returns the errno on failure.
pub(super) fn join_fresh_in_child() -> Result<(), i32> {
    // SAFETY: a null name asks for an anonymous keyring: the kernel reads
    // no memory of ours; the call changes only this (single-threaded,
    // forked) process's credentials.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_JOIN_SESSION_KEYRING as libc::c_long,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    /// Set when this test binary is re-executed as the probe.
    const PROBE_ENV: &str = "BLVM_KEYRING_PROBE";

    /// The id of the calling thread's session keyring (not created: the
    /// user-session keyring when it has none of its own).
    #[allow(unsafe_code)]
    fn session_keyring() -> i64 {
        // SAFETY: integers only.
        let id = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                libc::KEYCTL_GET_KEYRING_ID as libc::c_long,
                libc::KEY_SPEC_SESSION_KEYRING as libc::c_long,
                0 as libc::c_long,
            )
        };
        assert!(id > 0, "keyctl: {}", std::io::Error::last_os_error());
        id
    }

    /// The re-executed side: prints its session keyring.
    #[test]
    fn session_keyring_probe() {
        if std::env::var_os(PROBE_ENV).is_some() {
            println!("PROBE session keyring {}", session_keyring());
        }
    }

    /// Re-executes this test binary as the probe, with the step in its
    /// `pre_exec` or not; the session keyring it reports.
    #[allow(unsafe_code)]
    fn child_session_keyring(fresh: bool) -> i64 {
        let exe = std::env::current_exe().expect("test binary");
        let mut cmd = std::process::Command::new(exe);
        cmd.args([
            "--exact",
            "sandbox::keyring::tests::session_keyring_probe",
            "--nocapture",
        ])
        .env(PROBE_ENV, "1");
        if fresh {
            // SAFETY: the step is one raw system call, as in a module's
            // spawn.
            unsafe {
                cmd.pre_exec(|| super::join_fresh_in_child().map_err(std::io::Error::from_raw_os_error));
            }
        }
        let out = cmd.output().expect("probe runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("PROBE session keyring ")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no keyring in the probe's output: {stdout}"))
    }

    #[test]
    fn a_spawned_child_gets_a_session_keyring_of_its_own() {
        if !super::available() {
            eprintln!("this kernel offers no keyrings: nothing is shared");
            return;
        }
        let ours = session_keyring();
        assert_eq!(child_session_keyring(false), ours, "a child inherits its parent's");
        let fresh = child_session_keyring(true);
        assert_ne!(fresh, ours, "the step gives it another");
        assert_ne!(fresh, child_session_keyring(true), "a new one for each");
    }
}
