//! A Stratum V2 Template Provider as a blvm module.
//!
//! The Template Distribution Protocol (TDP), server side, on the Stratum
//! V2 reference implementation's crates: `noise_sv2` and `codec_sv2` for
//! the Noise NX handshake and the encrypted transport, `framing_sv2` and
//! `binary_sv2` for frames and their encoding, `common_messages_sv2` and
//! `template_distribution_sv2` for the messages. Nothing here encodes or
//! encrypts by hand.
//!
//! - [`authority`]: the authority key pools pin, kept in module storage;
//! - [`config`]: the module's `config.toml`;
//! - [`template`]: the node's block template as a TDP `NewTemplate`, and
//!   the block a `SubmitSolution` completes;
//! - [`wire`]: Noise over TCP, frames in and out;
//! - [`messages`]: client messages decoded, server messages built;
//! - [`provider`]: what every connection shares (templates from the node,
//!   status, metrics, published events);
//! - [`connection`]: one client, from handshake to disconnection;
//! - [`status`]: what `stratumv2_status` answers;
//! - [`log`]: `tracing` events as the node's log lines.

pub mod authority;
pub mod config;
pub mod connection;
pub mod error;
pub mod log;
pub mod messages;
pub mod provider;
pub mod status;
pub mod template;
pub mod wire;

pub use error::Error;
