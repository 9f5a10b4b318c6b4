//! Signed repository metadata after The Update Framework, spec 1.0.
//!
//! <https://theupdateframework.github.io/specification/latest/>
//!
//! - [`metadata`]: the root, targets, snapshot and timestamp roles and the
//!   `{"signed", "signatures"}` envelope, with the spec's field names;
//! - [`canonical`]: the OLPC canonical JSON that signatures cover;
//! - [`keys`]: ed25519 role keys and their TUF key ids;
//! - [`writer`]: the repository side, which creates keys, signs the four
//!   roles for a set of target files, bumps versions and rotates keys;
//! - [`verify`]: the client side, the spec's client workflow (§5);
//! - [`source`]: where metadata files come from, with a limit on each;
//! - [`target`]: a target's signed length and hash, and the check of a
//!   download against them;
//! - [`error`]: why the verifier refused, named by the attack.
//!
//! Delegated targets are not modelled yet; a targets file with
//! `delegations` still verifies (the signature covers them) but they are
//! ignored.

pub mod canonical;
pub mod error;
pub mod keys;
pub mod metadata;
pub mod source;
pub mod target;
pub mod verify;
pub mod writer;

pub use error::{FetchError, VerifyError, WriteError};
pub use keys::{KeyId, PublicKey, SigningKey};
pub use metadata::{Expires, RoleName, Signed};
pub use source::{DirectorySource, MetadataSource};
pub use target::{TargetChecker, TargetInfo};
pub use verify::TrustedMetadata;
pub use writer::{Lifetimes, RepositoryKeys, RepositoryWriter, RoleSigners};
