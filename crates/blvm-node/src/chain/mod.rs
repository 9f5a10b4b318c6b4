//! The chain: storage, validation, connection, reorganisation, import.

pub mod view;

pub use view::{ChainView, Coin};
