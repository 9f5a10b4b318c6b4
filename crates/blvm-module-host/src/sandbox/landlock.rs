//! The filesystem layer: a Landlock ruleset that lets the module read and
//! execute its own binary and the system's libraries, use its own data dir
//! as its grant says ([`DataDirAccess`]), and nothing else (not the node's
//! data dir, keys, cookie, config, or other modules' folders).
//!
//! The data dir's rights follow the module's granted capabilities:
//! `read_filesystem` gives the read rights (list, read, execute),
//! `write_filesystem` the write rights (create, write, truncate, rename,
//! remove files, directories and links); without either the data dir has
//! no rule and the kernel refuses every access beneath it (`EACCES`). The
//! module's working directory is still its data dir: `chdir` is not a
//! Landlock right.
//!
//! Connecting to the node's Unix socket needs no rule: Landlock's
//! filesystem rights up to ABI 7 cover opening, creating and executing
//! files, not `connect` on a path socket (tested by every sandboxed
//! module's handshake).
//!
//! ABI 3 (Linux 6.2: adds truncate) is required; its rights are handled
//! with `HardRequirement`, so on an older kernel preparing the ruleset
//! fails, which strict mode refuses and permissive mode reports. The
//! rights of later ABIs, up to [`ABI_BEST`], are used where the kernel has
//! them (`BestEffort`): TCP `bind`/`connect` (ABI 4) for a module without
//! `network_access`, `ioctl` on devices (ABI 5), and the scoping of ABI 6:
//! no signal to a process outside the module's Landlock domain (another
//! module, a host process of the same uid) and no `connect` to an abstract
//! Unix socket created outside it. Scoping is its own layer
//! ([`super::Layer::LandlockScope`]), optional: reported when present and
//! as missing when the kernel is older, never a reason to refuse a module.

use std::path::Path;

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, Scope, ABI,
};

use super::Target;

/// The ABI whose rights are required.
const ABI_REQUIRED: ABI = ABI::V3;

/// The newest ABI whose rights are used where the kernel has them (Linux
/// 6.15; ABI 7 adds only audit-log switches, left at their defaults).
/// Newer ABIs wait until they are tested: ABI 9's `ResolveUnix` would
/// refuse the module's `connect` to the node's socket, which has no rule.
const ABI_BEST: ABI = ABI::V7;

/// The ABI that brought scoping.
const ABI_SCOPE: ABI = ABI::V6;

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

/// What the module may do with its data dir, from its granted
/// capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataDirAccess {
    /// `read_filesystem`: list directories, read (and execute) files.
    pub read: bool,
    /// `write_filesystem`: create, write, truncate, rename and remove.
    pub write: bool,
}

impl DataDirAccess {
    /// From a module's granted capabilities.
    pub fn granted(capabilities: blvm_module_protocol::PermissionSet) -> DataDirAccess {
        use blvm_module_protocol::Permission;
        DataDirAccess {
            read: capabilities.contains(Permission::ReadFilesystem),
            write: capabilities.contains(Permission::WriteFilesystem),
        }
    }

    /// The Landlock rights these give beneath the data dir.
    fn rights(self) -> BitFlags<AccessFs> {
        let mut rights = BitFlags::empty();
        if self.read {
            rights |= AccessFs::from_read(ABI_BEST);
        }
        if self.write {
            rights |= AccessFs::from_write(ABI_BEST);
        }
        rights
    }
}

/// A ruleset built in the parent, and whether it scopes signals and
/// abstract sockets (`Err` says why not).
pub(super) struct Built {
    /// The ruleset (its fd stays open until the child restricts itself).
    pub ruleset: RulesetCreated,
    /// Signal and abstract-socket scoping is in the ruleset.
    pub scoped: Result<(), String>,
}

/// Builds the ruleset in the parent. `network_access`: without it TCP
/// `bind` and `connect` are handled too, with no rule (refused).
/// `data_dir`: the rights beneath the data dir.
pub(super) fn ruleset(
    target: &Target<'_>,
    extra_read_only: &[std::path::PathBuf],
    network_access: bool,
    data_dir: DataDirAccess,
) -> Result<Built, String> {
    let scoped = scoping_available();
    let build = || -> Result<RulesetCreated, landlock::RulesetError> {
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(ABI_REQUIRED))?;
        if scoped {
            // Still HardRequirement: the probe said the kernel has it, and
            // the layer is reported active only if it is in the ruleset.
            ruleset = ruleset.scope(Scope::from_all(ABI_SCOPE))?;
        }
        // Everything after this is used where the kernel has it, rules too.
        ruleset = ruleset
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(ABI_BEST))?;
        if !network_access {
            ruleset = ruleset.handle_access(AccessNet::from_all(ABI_BEST))?;
        }
        let mut ruleset = ruleset.create()?;
        let read = AccessFs::from_read(ABI_BEST);
        let rw_file = AccessFs::from_file(ABI_BEST) & !AccessFs::Execute;
        let mut ro: Vec<&Path> = vec![target.binary];
        ro.extend(SYSTEM_READ_ONLY.iter().map(Path::new));
        ro.extend(extra_read_only.iter().map(|p| p.as_path()));
        for path in ro {
            ruleset = add(ruleset, path, read)?;
        }
        for dev in DEVICES {
            ruleset = add(ruleset, Path::new(dev), rw_file)?;
        }
        // No rule at all without either capability: everything beneath
        // the data dir is then refused.
        let rights = data_dir.rights();
        if !rights.is_empty() {
            ruleset = add(ruleset, target.data_dir, rights)?;
        }
        Ok(ruleset)
    };
    let ruleset = build().map_err(|e| format!("cannot build the Landlock ruleset (ABI 3 needed): {e}"))?;
    Ok(Built {
        ruleset,
        scoped: if scoped {
            Ok(())
        } else {
            Err("this kernel's Landlock has no scoping (ABI 6, Linux 6.12, needed)".into())
        },
    })
}

/// Whether the kernel's Landlock has signal and abstract-socket scoping:
/// asking for it as a hard requirement fails otherwise (one system call,
/// the ABI query; nothing is created).
fn scoping_available() -> bool {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .scope(Scope::from_all(ABI_SCOPE))
        .is_ok()
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
        access & AccessFs::from_file(ABI_BEST)
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
        // Partially: a right of ABI 4..7 the kernel lacks was left out;
        // the required ones (and scoping, when reported) are hard
        // requirements, so they are in.
        Ok(status)
            if matches!(
                status.ruleset,
                landlock::RulesetStatus::FullyEnforced | landlock::RulesetStatus::PartiallyEnforced
            ) =>
        {
            Ok(())
        }
        // Never claim a layer that is not enforced.
        Ok(_) => Err(rustix::io::Errno::NOSYS.raw_os_error()),
        Err(_) => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use blvm_module_protocol::{Permission, PermissionSet};

    use super::*;

    #[test]
    fn the_data_dir_rights_are_exactly_those_of_the_granted_filesystem_capabilities() {
        let rights =
            |perms: &[Permission]| DataDirAccess::granted(perms.iter().copied().collect::<PermissionSet>()).rights();
        assert!(rights(&[Permission::ManageFilesystem, Permission::ReadStorage]).is_empty());
        let read = rights(&[Permission::ReadFilesystem]);
        assert_eq!(read, AccessFs::from_read(ABI_BEST));
        assert!(!read.intersects(AccessFs::from_write(ABI_BEST)));
        let write = rights(&[Permission::WriteFilesystem]);
        assert_eq!(write, AccessFs::from_write(ABI_BEST));
        assert!(!write.contains(AccessFs::ReadFile) && !write.contains(AccessFs::ReadDir));
        assert_eq!(
            rights(&[Permission::ReadFilesystem, Permission::WriteFilesystem]),
            AccessFs::from_all(ABI_BEST)
        );
    }
}
