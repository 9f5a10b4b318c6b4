//! Who a module comes from: the canonical form of its manifest that
//! maintainers sign, and the check of their signatures against the
//! operator's keyring (DESIGN.md "Verification"). What a module may do
//! once running is decided elsewhere: capabilities in `api`, the kernel
//! sandbox in `sandbox`.

pub mod canonical;
pub mod signatures;

pub use signatures::{verify, Keyring, SignatureError, SignaturePolicy, SignatureReport};
