//! The registry client: refreshes the signed metadata of a repository,
//! downloads and checks targets, and installs module versions into a
//! node's `modules/` directory.
//!
//! - [`repository`]: where files come from (a directory; HTTP in `http`).
//! - [`http`]: a registry over HTTP, with [`download`]'s timeouts and
//!   minimum rate and [`progress`]'s bar or lines.

pub mod download;
pub mod http;
pub mod progress;
pub mod repository;

pub use download::DownloadOptions;
pub use http::{HttpError, HttpRepository};
pub use progress::Progress;
pub use repository::{read_verified, DirectoryRepository, Repository};
