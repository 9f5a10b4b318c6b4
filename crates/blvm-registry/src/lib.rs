//! The blvm module registry: where modules are published, and how a node
//! installs them without trusting the network, the server or any single
//! key of it.
//!
//! - [`tuf`]: the repository metadata, after The Update Framework (spec
//!   1.0): four roles, canonical JSON, ed25519 keys, a writer and the
//!   spec's client workflow. Following TUF exactly rather than designing
//!   our own signed index buys its list of attacks (rollback, freeze,
//!   mix-and-match, key compromise, endless data, slow retrieval) and an
//!   unmodified python-tuf client as a second opinion; the cost is its
//!   ceremony of roles and versioned files.
//! - [`layout`]: where a module version lives among the targets, what the
//!   registry signs about it, and the publisher's signed statements.
//! - [`server`]: `blvm-registry init|serve`, the repository over HTTP with
//!   search, publish and yank.
//! - [`client`]: the installer a node and `blvm-module` use: refresh,
//!   download within signed limits, resolve, apply the operator's policy,
//!   install atomically, roll back.
//! - [`maintainer`] and [`publish`]: the maintainer's tools (keygen, pack,
//!   sign, verify; publish, yank); [`cli`]: the operator's `blvm-module`
//!   commands.
//!
//! The maintainers' secp256k1 signatures of each manifest stay as they
//! are: TUF says the registry published these bytes, the maintainers'
//! signatures (checked against the operator's own keys) say who wrote
//! them.

pub mod cli;
pub mod client;
pub mod layout;
pub mod maintainer;
pub mod publish;
pub mod server;
pub mod tuf;
