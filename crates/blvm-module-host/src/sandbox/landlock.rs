//! The filesystem layer: a Landlock ruleset that lets the module read and
//! execute its own binary and the system's libraries, read and write its
//! own data dir, and nothing else (not the node's data dir, keys, cookie,
//! config, or other modules' folders).
//!
//! Connecting to the node's Unix socket needs no rule: Landlock's
//! filesystem rights cover opening, creating and executing files, not
//! `connect` on a path socket (tested by every sandboxed module's
//! handshake).
//!
//! ABI 3 (Linux 6.2: adds truncate) is required; the ruleset is built with
//! `HardRequirement`, so on an older kernel preparing it fails, which
//! strict mode refuses and permissive mode reports.

use std::path::Path;

use landlock::{
    Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, ABI,
};

use super::Target;

/// The ABI the ruleset is written for.
const ABI_USED: ABI = ABI::V3;

/// Read-only (and executable) system paths the dynamic loader and the C
/// library need. Missing ones are skipped.
pub(super) const SYSTEM_READ_ONLY: [&str; 7] = [
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/dev/urandom",
];

/// Character devices every program may need to read and write.
pub(super) const DEVICES: [&str; 2] = ["/dev/null", "/dev/zero"];

/// Builds the ruleset in the parent (its fd stays open until the child
/// restricts itself).
pub(super) fn ruleset(target: &Target<'_>, extra_read_only: &[std::path::PathBuf]) -> Result<RulesetCreated, String> {
    let build = || -> Result<RulesetCreated, landlock::RulesetError> {
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(ABI_USED))?
            .create()?;
        let read = AccessFs::from_read(ABI_USED);
        let all = AccessFs::from_all(ABI_USED);
        let rw_file = AccessFs::from_file(ABI_USED) & !AccessFs::Execute;
        let mut ro: Vec<&Path> = vec![target.binary];
        ro.extend(SYSTEM_READ_ONLY.iter().map(Path::new));
        ro.extend(extra_read_only.iter().map(|p| p.as_path()));
        for path in ro {
            ruleset = add(ruleset, path, read)?;
        }
        for dev in DEVICES {
            ruleset = add(ruleset, Path::new(dev), rw_file)?;
        }
        ruleset = add(ruleset, target.data_dir, all)?;
        Ok(ruleset)
    };
    build().map_err(|e| format!("cannot build the Landlock ruleset (ABI 3 needed): {e}"))
}

/// Adds `path` with `access` (reduced to file rights for a file); a path
/// that does not exist is skipped.
fn add(
    ruleset: RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, landlock::RulesetError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(ruleset);
    };
    let access = if meta.is_dir() {
        access
    } else {
        access & AccessFs::from_file(ABI_USED)
    };
    let Ok(fd) = PathFd::new(path) else {
        return Ok(ruleset);
    };
    ruleset.add_rule(PathBeneath::new(fd, access))
}

/// Child side: `prctl(NO_NEW_PRIVS)` and `landlock_restrict_self` on the
/// prepared fd, then the fd is closed. Returns the errno on failure.
pub(super) fn restrict_self(ruleset: RulesetCreated) -> Result<(), i32> {
    match ruleset.restrict_self() {
        Ok(status) if status.ruleset == landlock::RulesetStatus::FullyEnforced => Ok(()),
        // HardRequirement makes anything else an error, but never claim
        // a layer that is not fully enforced.
        Ok(_) => Err(rustix::io::Errno::NOSYS.raw_os_error()),
        Err(_) => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
    }
}
