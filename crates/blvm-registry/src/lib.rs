//! The blvm module registry.
//!
//! This crate will hold the registry's three parts: the server
//! (`blvm-registry serve`, a directory on disk behind an HTTP API), the
//! client the node and operators use to search, download, verify and
//! install modules, and the `blvm-module` CLI for maintainers (keygen,
//! pack, sign, verify, publish, yank).
//!
//! What exists today is their common ground, [`tuf`]: the registry's
//! repository metadata in the form of The Update Framework (spec 1.0),
//! a writer that signs it and a verifier that walks the spec's client
//! workflow. The key decision is to follow TUF exactly rather than design
//! our own signed index: the attacks on update systems (rollback, freeze,
//! mix-and-match, key compromise) are TUF's list, an unmodified python-tuf
//! client can check our repository, and the cost is TUF's ceremony of
//! four roles, canonical JSON and versioned files. The maintainers'
//! secp256k1 signatures of each module manifest stay as they are, inside
//! each target's `custom` data.

pub mod cli;
pub mod client;
pub mod layout;
pub mod maintainer;
pub mod publish;
pub mod server;
pub mod tuf;
