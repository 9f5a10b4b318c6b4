//! The registry client: refreshes the signed metadata of a repository,
//! downloads and checks targets, and installs module versions into a
//! node's `modules/` directory.
//!
//! - [`repository`]: where files come from (a directory; HTTP in `http`).
//! - [`http`]: a registry over HTTP, with [`download`]'s timeouts and
//!   minimum rate and [`progress`]'s bar or lines.
//! - [`state`]: the metadata trusted between runs, kept in a state
//!   directory for TUF's rollback checks.
//! - [`resolve`]: which versions to install, from the signed targets.
//! - [`policy`]: the operator's tiers, review periods and maintainer keys.
//! - [`install`](mod@install): install and update, checked then written all or
//!   nothing; [`remove`](mod@remove): remove and rollback; [`search`](mod@search): search and list;
//!   [`report`] and [`error`]: what they return.
//! - [`lock`]: `modules/blvm.lock`, the exact versions installed.

pub mod download;
pub mod error;
mod folders;
mod fsutil;
pub mod http;
pub mod install;
pub mod lock;
pub mod policy;
pub mod progress;
pub mod remove;
pub mod report;
pub mod repository;
pub mod resolve;
pub mod search;
pub mod state;

pub use download::DownloadOptions;
pub use error::{InstallError, PinField};
pub use folders::{PREVIOUS_DIR, STAGING_DIR};
pub use fsutil::PathError;
pub use http::{HttpError, HttpRepository};
pub use install::{install, update, Registry};
pub use lock::{LockEntry, LockError, LockFile, LockedVersion};
pub use policy::{Approval, InstallPolicy, PolicyError, UNTIERED};
pub use progress::Progress;
pub use remove::{remove, rollback};
pub use report::{Change, ChangeKind, Report};
pub use repository::{read_verified, DirectoryRepository, Repository};
pub use resolve::{Catalog, Installed, ResolveError, Resolved};
pub use search::{list, search, ListedModule, SearchHit, VersionSummary};
pub use state::{StateError, TrustedState};
