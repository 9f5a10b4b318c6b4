//! The registry client: refreshes the signed metadata of a repository,
//! downloads and checks targets, and installs module versions into a
//! node's `modules/` directory.
//!
//! - [`repository`]: where files come from (a directory; HTTP in `http`).

pub mod repository;

pub use repository::{read_verified, DirectoryRepository, Repository};
