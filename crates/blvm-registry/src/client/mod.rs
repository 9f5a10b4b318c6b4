//! The registry client: refreshes the signed metadata of a repository,
//! downloads and checks targets, and installs module versions into a
//! node's `modules/` directory.
//!
//! - [`repository`]: where files come from (a directory; HTTP in `http`).
//! - [`state`]: the metadata trusted between runs, kept in a state
//!   directory for TUF's rollback checks.
//! - [`resolve`]: which versions to install, from the signed targets.
//! - [`policy`]: the operator's tiers, review periods and maintainer keys.
//! - [`install`]: install, update, remove, rollback, search and list.
//! - [`lock`]: `modules/blvm.lock`, the exact versions installed.

mod fsutil;
pub mod install;
pub mod lock;
pub mod policy;
pub mod repository;
pub mod resolve;
pub mod state;

pub use fsutil::PathError;
pub use install::{
    install, list, remove, rollback, search, update, Change, ChangeKind, InstallError, ListedModule, PinField,
    Registry, Report, SearchHit, VersionSummary,
};
pub use lock::{LockEntry, LockError, LockFile, LockedVersion};
pub use policy::{Approval, InstallPolicy, PolicyError, UNTIERED};
pub use repository::{read_verified, DirectoryRepository, Repository};
pub use resolve::{Catalog, Installed, ResolveError, Resolved};
pub use state::{StateError, TrustedState};
